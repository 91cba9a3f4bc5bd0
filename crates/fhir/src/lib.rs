//! Pure FHIR R4 for MedRec: what needs no database driver and does no I/O.
//!
//! - [`fhir`]: the resource types MedRec serves, checked resources and ids, and the
//!   search index extracted from a resource (patient compartment, date, tokens);
//! - [`search`]: a FHIR search parsed at the edge into a typed [`search::SearchQuery`]
//!   that every record store runs the same way;
//! - [`hash`]: the data hash of a pointer, SHA-256 over the RFC 8785 canonical JSON of
//!   the result set, so that anyone holding the resources can recompute it.
//!
//! `medrec-store` re-exports these modules under its own paths
//! (`medrec_store::fhir`, `medrec_store::search`, `medrec_store::hash`).

pub mod fhir;
pub mod hash;
pub mod search;
