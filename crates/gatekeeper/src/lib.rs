//! The provider's Database Gatekeeper: a FHIR R4 server beside the provider's records
//! that serves only what the chain authorizes.
//!
//! A request goes through one pipeline (see [`server`] for the order and
//! ARCHITECTURE.md for the path of a read from socket to SQL):
//!
//! - [`server`]: the shared state ([`server::Gatekeeper`]) and the decisions every route
//!   shares: ready? who is known? what may they see?
//! - `routes`: every route assembled in one place; the pointer, `/audit`, enrollment and
//!   public routes.
//! - `pipeline`: who is asking (bearer token or EIP-712 signature of an address the
//!   chain knows) and how fast (rate limits), before any handler; refusals there are
//!   counted, never logged.
//! - [`audit`]: the access log as a layer around the data routes, and its typed wire
//!   format; [`anchor`]: anchoring the log's Merkle root on chain every period.
//! - `fhir`: the FHIR R4 REST API (read, search, the provider's writes), scoped by the
//!   private `access` module before the store is read.
//! - [`research`]: bounty queries published and redeemed.
//! - [`smart`]: SMART App Launch 2.x standalone launch (discovery, `/authorize` with a
//!   Sign-In with Ethereum consent page, `/token` with PKCE, refresh, `/revoke`), whose
//!   scopes only narrow what the chain allows.
//! - `error`: the one error type, carrying status, OperationOutcome and log reason.
//! - [`auth`]: EIP-712 per-request signatures, Sign-In with Ethereum and their routes;
//!   [`limits`]: rate limits with bounded memory.
//! - [`pointer`](mod@pointer): a data pointer's FHIR query, its on-chain commitment,
//!   and running it for one patient with the data hash the chain holds.
//! - [`enrollment`]: what a relationship serves, on the wire and on disk.
//! - [`serve`]: running it for real (store from a URL, chain checks, TLS, timeouts,
//!   graceful shutdown; `medrec provider serve`).
//! - [`client`]: the other side, a client for patients, viewers and providers that
//!   checks data hashes; [`bench`](mod@bench): the load generator of
//!   `medrec bench gatekeeper`.

mod access;
pub mod anchor;
pub mod audit;
pub mod auth;
pub mod bench;
pub mod client;
pub mod enrollment;
mod error;
mod fhir;
pub mod limits;
pub mod offer;
mod pipeline;
pub mod pointer;
pub mod research;
mod routes;
pub mod serve;
pub mod server;
pub mod smart;

pub use access::EMERGENCY_SET;
pub use error::AUTH_ERROR_SYSTEM;
