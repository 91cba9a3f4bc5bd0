//! The provider's Database Gatekeeper (issue 4).
//!
//! Will serve FHIR R4 over HTTP to requesters the chain authorizes: EIP-712 and
//! Sign-In with Ethereum authentication, the consent pipeline decided before any
//! row is read, the hash-chained access log and bounty redemption. Nothing lives
//! here yet.
