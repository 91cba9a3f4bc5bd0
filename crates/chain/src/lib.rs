//! Chain client for MedRec (issue 3 onward).
//!
//! Will hold the alloy `Provider` setup used by every party, sending with
//! confirmation, the event follower and the consent index that the gatekeeper
//! decides requests against. Nothing lives here yet: the contract bindings it will
//! use are in `medrec-contracts`.
