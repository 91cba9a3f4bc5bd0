//! The provider's Database Gatekeeper (issue 4).
//!
//! Will serve FHIR R4 over HTTP to requesters the chain authorizes: EIP-712 and
//! Sign-In with Ethereum authentication, the consent pipeline decided before any
//! row is read, the hash-chained access log and bounty redemption.
//!
//! What is here so far:
//!
//! - [`auth`]: who is asking. Per-request EIP-712 signatures with a replay cache,
//!   Sign-In with Ethereum (EIP-4361) trading a signed message for a short-lived bearer
//!   token, the `/auth/nonce` and `/auth/siwe` routes, and an extractor that yields the
//!   requester's address from either kind of credential.
//! - [`pointer`]: a data pointer's FHIR query, its on-chain commitment, and running it
//!   for one patient with the data hash the chain holds.
//! - [`server`]: the HTTP pipeline — ready? who? may they? then data — with
//!   `/healthz`, `/readyz`, the sign-in routes and `/pointers/{relationship}/{pointer}`.
//! - [`limits`]: rate limits per authenticated requester and per IP address signing in
//!   (429 with `Retry-After`), with bounded memory.
//! - [`serve`]: running it for real — open the store from a URL (SQLite, PostgreSQL,
//!   MySQL/MariaDB), follow the chain, serve HTTP or HTTPS (rustls) with a body limit
//!   (413), rate limits, request logs without patient data, and graceful shutdown
//!   (`medrec provider serve`).

mod access;
pub mod anchor;
pub mod audit;
pub mod auth;
pub mod bench;
pub mod limits;
pub mod pointer;
mod rest;
pub mod serve;
pub mod server;
