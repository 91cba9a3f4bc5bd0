//! The workflows of every MedRec party, as a library: each step exists once, here, and
//! the `medrec` CLI, the demo, the benchmarks, the tests and the web app call it.
//!
//! - [`chain`]: the one way to connect to the chain ([`ChainSpec`] → [`Chain`]).
//! - [`tx`]: the one send-and-confirm, which turns every revert into the contract's
//!   typed error ([`medrec_contracts::ContractError`]).
//! - [`retry`]: asking a gatekeeper that is still catching up with the chain.
//! - [`provider`]: register, import, enroll, publish ([`provider::ProviderSession`]).
//! - [`patient`]: accept, reject, delete, share, revoke, research consent, verified
//!   records and their cache, the access log with proofs ([`patient::PatientSession`]).
//! - [`viewer`]: what was shared, and fetching it verified ([`viewer::ViewerSession`]).
//! - [`researcher`]: admission by vote, owned bounties, redemption.
//! - [`care`]: groups granted like one viewer, and break-glass: an institution's groups
//!   ([`care::InstitutionSession`]), a patient's choice to allow it, an emergency
//!   clinician's opening and reading of the emergency set ([`care::ClinicianSession`]).
//! - [`cache`]: a party's encrypted local cache.
//! - [`timeline`]: records as one timeline or one FHIR Bundle, and time helpers.
//!
//! Nothing here prints: steps return values and typed [`Error`]s.

pub mod cache;
pub mod care;
pub mod chain;
mod error;
pub mod patient;
pub mod privacy;
pub mod provider;
pub mod researcher;
pub mod retry;
pub mod timeline;
pub mod tx;
pub mod viewer;

pub use chain::{Chain, ChainSpec};
pub use error::{Error, Result};

/// `n word` or `n words`.
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}
