//! The provider's Database Gatekeeper (issue 4): a FHIR R4 server beside the
//! provider's records that serves only what the chain authorizes.
//!
//! - [`auth`]: who is asking. Per-request EIP-712 signatures with a replay cache,
//!   Sign-In with Ethereum (EIP-4361) trading a signed message for a short-lived bearer
//!   token, the `/auth/nonce` and `/auth/siwe` routes, and an extractor that yields the
//!   requester's address from either kind of credential.
//! - [`limits`]: rate limits per authenticated requester and per IP address signing in
//!   (429 with `Retry-After`), with bounded memory.
//! - [`pointer`](mod@pointer): a data pointer's FHIR query, its on-chain commitment, and running it
//!   for one patient with the data hash the chain holds.
//! - [`server`]: the HTTP pipeline — ready? who? may they? then data, then the access
//!   log — with `/healthz`, `/readyz`, `/fhir/metadata`, the sign-in routes,
//!   `/pointers/{relationship}/{pointer}`, the FHIR API under `/fhir` (who sees what is
//!   decided by the private `access` module, the routes are in the private `rest`
//!   module), `/audit` and `/enrollments/{relationship}`.
//! - [`audit`]: the access log as the gatekeeper keeps it, and its entries and proofs
//!   as JSON; [`anchor`]: anchoring the log's head on chain every period.
//! - [`serve`]: running it for real — open the store from a URL (SQLite, PostgreSQL,
//!   MySQL/MariaDB, or a provider's own database read-only through a mapping), follow
//!   the chain, serve HTTP or HTTPS (rustls) with a body limit (413), rate limits, the
//!   access log and its anchoring, request logs without patient data, and graceful
//!   shutdown (`medrec provider serve`).
//! - [`client`]: the other side — a client of a gatekeeper for patients, viewers and
//!   providers that checks data hashes.
//! - [`bench`](mod@bench): the load generator of `medrec bench gatekeeper`.

mod access;
pub mod anchor;
pub mod audit;
pub mod auth;
pub mod bench;
pub mod client;
pub mod limits;
pub mod pointer;
pub mod research;
mod rest;
pub mod serve;
pub mod server;
