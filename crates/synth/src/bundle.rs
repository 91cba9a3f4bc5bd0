//! The output for the gatekeeper: a patient as a FHIR `transaction` Bundle.

use crate::PatientRecord;
use serde_json::{Value, json};

/// A FHIR `transaction` Bundle that stores `record` with one `PUT Type/id` entry per
/// resource, the Patient first: the body `POST /fhir` of the gatekeeper takes.
pub fn transaction_bundle(record: &PatientRecord) -> Value {
    let entries: Vec<Value> = record
        .all()
        .map(|r| {
            let url = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap_or_default(),
                r["id"].as_str().unwrap_or_default()
            );
            json!({"resource": r, "request": {"method": "PUT", "url": url}})
        })
        .collect();
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}
