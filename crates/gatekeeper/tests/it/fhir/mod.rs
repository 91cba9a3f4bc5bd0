//! The FHIR REST API in process: what the provider, the patient, a viewer and a
//! stranger may read, search and write, against a devchain, the follower and a SQLite
//! store.

mod api;
mod audit;
mod emergency;
mod history;
mod read;
mod samples;
mod state;
mod write;

use crate::fixture::{Fixture, obs, resource};
use medrec_store::fhir::Resource;
use serde_json::json;

pub(crate) fn patient(id: &str) -> Resource {
    resource(json!({"resourceType": "Patient", "id": id, "gender": "female"}))
}

pub(crate) fn condition(id: &str, patient: &str) -> Resource {
    resource(json!({
        "resourceType": "Condition", "id": id,
        "subject": {"reference": format!("Patient/{patient}")},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "44054006"}]}
    }))
}

/// Records of two patients; `p1` is enrolled with pointer 0 =
/// `Observation?category=laboratory`, accepted and granted to the viewer.
pub(crate) fn records() -> Vec<Resource> {
    vec![
        patient("p1"),
        patient("p2"),
        obs("a1", "p1", "laboratory", "2025-01-02"),
        obs("a2", "p1", "vital-signs", "2025-01-03"),
        obs("a3", "p1", "laboratory", "2024-06-01"),
        obs("b1", "p2", "laboratory", "2025-01-02"),
        condition("c1", "p1"),
    ]
}

/// The gatekeeper over [`records`].
pub(crate) async fn fixture() -> Fixture {
    Fixture::new(records()).await
}
