//! The EHR manager: the web app a party runs beside its wallet (`medrec app`).
//!
//! This first increment serves the patient: Home (providers connected, what is new),
//! Inbox (live, with Accept / Reject / Delete), Records (one timeline across providers
//! by category, each record's source and its check against the chain, Export as one
//! FHIR Bundle), Share (grants with a window, Revoke), Access log (each entry checked
//! against its anchor on chain) and Research (opt in or out per relationship).
//!
//! - [`server`]: the axum router, the listener on loopback and [`AppConfig`].
//! - [`csrf`]: requests from other origins or hosts are refused before any handler.
//! - `state`: the unlocked session, the records held in memory (and in the client's
//!   encrypted cache on disk, never in plaintext), the live feed of chain notices.
//! - `routes`: one module per page; `views`: the data each page shows, built by pure
//!   functions (unit-tested); `templates/`: compiled, autoescaped askama templates.
//! - `assets`: the CSS and the little JavaScript, embedded in the binary.
//!
//! Every workflow step is the client library's ([`medrec_client::patient`]): the app
//! verifies exactly as the CLI does.

mod assets;
pub mod csrf;
mod error;
mod keys;
mod research;
mod routes;
pub mod server;
mod session;
mod state;
pub mod views;

pub use server::{AppConfig, AppError, Role, RunningApp, spawn};
