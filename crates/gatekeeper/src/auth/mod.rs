//! Who is asking: authentication of the gatekeeper's requesters.
//!
//! Two standard ways, both ending in an Ethereum [`Address`](alloy::primitives::Address)
//! that the consent pipeline then decides on:
//!
//! - **Per-request EIP-712 signatures** ([`request`]): the requester signs the method,
//!   path and query, body hash, time and a nonce, for this gatekeeper on this chain. A
//!   short time window and a replay cache of (signer, nonce) stop replays.
//!   [`RequestVerifier`] checks them; [`sign_request`] makes them.
//! - **Sign-In with Ethereum** (EIP-4361, [`siwe`]): the requester signs one message
//!   with a nonce from `GET /auth/nonce` and gets a short-lived opaque bearer token from
//!   `POST /auth/siwe`, so ordinary FHIR clients work.
//!
//! [`routes`] has the HTTP side: the two sign-in routes ([`router`]) and the
//! [`Authenticated`] extractor for the FHIR handlers.
//!
//! Everything that depends on time takes `now` in unix seconds, so tests control time;
//! only the HTTP layer reads a [`Clock`]. Every cache (replays, nonces, tokens) is
//! bounded and refuses new entries when full rather than grow.
//!
//! Signatures are recovered with libsecp256k1 (alloy-primitives' `secp256k1` feature):
//! the pure-Rust k256 recovery is about five times slower.

pub mod bench;
mod clock;
mod error;
pub(crate) mod expiring;
pub(crate) mod random;
pub mod request;
pub mod routes;
pub mod siwe;
pub mod token;

pub use clock::{Clock, unix_now};
pub use error::AuthError;
pub use request::{Request, RequestVerifier, random_nonce, sign_request};
pub use routes::{AuthRejection, AuthState, Authenticated, router};
pub use siwe::{NonceIssuer, SiweAuthenticator, SiweConfig};
pub use token::{Session, Token, TokenStore};
