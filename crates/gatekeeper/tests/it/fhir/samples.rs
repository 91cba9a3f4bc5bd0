//! Every kind of FHIR response the gatekeeper gives, each checked here for its status
//! and written, when `MEDREC_FHIR_SAMPLES` names a directory, for the FHIR validator
//! that `scripts/test` runs over them (`fhir-validate/`, invariants included).

use super::fixture;
use crate::client::{Answer, As};
use medrec_testkit::medrec::{PATIENT, PROVIDER, STRANGER, VIEWER};
use serde_json::json;

/// Checks `answer`'s status and writes its body as `name.json`.
fn sample(name: &str, answer: &Answer, status: u16) {
    assert_eq!(answer.status, status, "{name}: {}", answer.body);
    assert!(
        answer.body.get("resourceType").is_some(),
        "{name} is a FHIR resource: {}",
        answer.body
    );
    if let Ok(dir) = std::env::var("MEDREC_FHIR_SAMPLES") {
        std::fs::create_dir_all(&dir).unwrap();
        let path = std::path::Path::new(&dir).join(format!("{name}.json"));
        std::fs::write(path, serde_json::to_vec_pretty(&answer.body).unwrap()).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_fhir_response_is_sampled_for_the_validator() {
    let f = fixture().await;
    sample("metadata", &f.client.get("/fhir/metadata", &As::Nobody).await, 200);
    sample("read-observation", &f.get("/fhir/Observation/a1", VIEWER).await, 200);
    sample("read-patient", &f.get("/fhir/Patient/p1", PATIENT).await, 200);
    sample("vread", &f.get("/fhir/Condition/c1/_history/1", PROVIDER).await, 200);
    sample("read-summary", &f.get("/fhir/Observation/a1?_summary=true", PATIENT).await, 200);
    sample(
        "searchset-paged",
        &f.get("/fhir/Observation?_count=1&_offset=1&_sort=-date", PROVIDER).await,
        200,
    );
    sample(
        "searchset-include",
        &f.get("/fhir/Observation?_include=Observation:patient", PATIENT).await,
        200,
    );
    sample(
        "searchset-revinclude",
        &f.get("/fhir/Patient?_revinclude=Condition:subject", PATIENT).await,
        200,
    );
    sample("searchset-elements", &f.get("/fhir/Observation?_elements=subject", VIEWER).await, 200);
    sample("searchset-count", &f.get("/fhir/Observation?_summary=count", PATIENT).await, 200);
    sample("searchset-empty", &f.get("/fhir/Condition", VIEWER).await, 200);
    sample("everything", &f.get("/fhir/Patient/p1/$everything", PATIENT).await, 200);
    sample("pointer", &f.get(&f.pointer(0), VIEWER).await, 200);
    // MedRec's state as FHIR (read-only views).
    f.gk.flush_access_log().await;
    let consents = f.get("/fhir/Consent", PATIENT).await;
    sample("consent-searchset", &consents, 200);
    let id = consents.body["entry"][0]["resource"]["id"].as_str().unwrap().to_owned();
    sample("consent-read", &f.get(&format!("/fhir/Consent/{id}"), VIEWER).await, 200);
    sample("auditevent-searchset", &f.get("/fhir/AuditEvent?_count=5", PATIENT).await, 200);
    sample("auditevent-read", &f.get("/fhir/AuditEvent/1", PROVIDER).await, 200);
    sample("provenance-searchset", &f.get("/fhir/Provenance", PATIENT).await, 200);
    sample("provenance-viewer", &f.get("/fhir/Provenance", VIEWER).await, 200);
    let transaction = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p8"}, "request": {"method": "PUT", "url": "Patient/p8"}},
        {"resource": {"resourceType": "Patient"}, "request": {"method": "POST", "url": "Patient"}}
    ]});
    sample("transaction-response", &f.send("POST", "/fhir", &transaction, PROVIDER).await, 200);
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p7"}, "request": {"method": "PUT", "url": "Patient/p7"}},
        {"resource": {"resourceType": "Spaceship"}, "request": {"method": "POST", "url": "Spaceship"}}
    ]});
    sample("batch-response", &f.send("POST", "/fhir", &batch, PROVIDER).await, 200);
    let created =
        f.send("POST", "/fhir/Patient", &json!({"resourceType": "Patient"}), PROVIDER).await;
    sample("create", &created, 201);

    // An OperationOutcome for each error status a FHIR request can meet here.
    sample("outcome-400", &f.get("/fhir/Observation?date=soon", PATIENT).await, 400);
    sample("outcome-401", &f.client.get("/fhir/Observation", &As::Nobody).await, 401);
    sample("outcome-403", &f.get("/fhir/Observation", STRANGER).await, 403);
    sample("outcome-404", &f.get("/fhir/Observation/zz", PATIENT).await, 404);
    let xml =
        f.client.send_with("GET", "/fhir/metadata?_format=xml", Vec::new(), &As::Nobody, &[]).await;
    sample("outcome-406", &xml, 406);
    let exists = json!({"resourceType": "Bundle", "type": "transaction", "entry": [
        {"resource": {"resourceType": "Patient", "id": "p1"}, "request": {"method": "POST", "url": "Patient"}}
    ]});
    let conflict = f.send("POST", "/fhir", &exists, PROVIDER).await;
    if conflict.status == 409 {
        sample("outcome-409", &conflict, 409);
    }
}
