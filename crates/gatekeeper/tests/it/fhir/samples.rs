//! Every kind of FHIR response the gatekeeper gives, each checked here for its status
//! and written, when `MEDREC_FHIR_SAMPLES` names a directory, for the FHIR validator
//! that `scripts/test` runs over them (`fhir-validate/`, invariants included).

use super::{fixture, records};
use crate::{
    client::{Answer, As},
    fixture::Fixture,
    serve::{Chain, GATEKEEPER, assembled::legacy, in_process, temp_dir, wait_ready},
};
use medrec_chain::follower::Health;
use medrec_gatekeeper::{
    limits::{RateLimit, RateLimits},
    serve::{StoreUrl, assemble},
};
use medrec_store::sqlite::SqliteStore;
use medrec_testkit::medrec::{PATIENT, PROVIDER, STRANGER, VIEWER};
use serde_json::json;
use std::time::Duration;

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
    sample("vread-patient", &f.get("/fhir/Condition/c1/_history/1", PATIENT).await, 200);
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
    // A history of three versions, the newest first, and one page of it.
    let id = created.body["id"].as_str().unwrap().to_owned();
    for gender in ["female", "male"] {
        let v = json!({"resourceType": "Patient", "id": id, "gender": gender});
        assert_eq!(f.send("PUT", &format!("/fhir/Patient/{id}"), &v, PROVIDER).await.status, 200);
    }
    let history = f.get(&format!("/fhir/Patient/{id}/_history"), PROVIDER).await;
    assert_eq!(history.body["entry"].as_array().map(Vec::len), Some(3));
    sample("history", &history, 200);
    let page = f.get(&format!("/fhir/Patient/{id}/_history?_count=1&_offset=1"), PROVIDER).await;
    sample("history-page", &page, 200);
    sample("history-patient", &f.get("/fhir/Observation/a1/_history", PATIENT).await, 200);

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
        sample("outcome-409-transaction", &conflict, 409);
    }
    // A write to a read-only view.
    let consent = json!({"resourceType": "Consent"});
    let view = f.send("POST", "/fhir/Consent", &consent, PROVIDER).await;
    assert!(view.diagnostics().contains("read-only view"), "{}", view.body);
    sample("outcome-405", &view, 405);
    // An enrollment the chain does not back.
    let unknown = format!("/enrollments/{}", alloy::primitives::B256::repeat_byte(7));
    let enrollment = json!({"patient": "p1", "pointers": ["Observation?category=laboratory"]});
    sample("outcome-409", &f.send("PUT", &unknown, &enrollment, PROVIDER).await, 409);
    // An index that cannot vouch for the chain: not ready, and data requests fail closed.
    f.health.send_replace(Health { head: 100, indexed: 10, since_ok: Duration::ZERO });
    sample("outcome-503", &f.get("/fhir/Observation", PATIENT).await, 503);
}

/// A requester over its rate limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_request_is_sampled() {
    let one_per_second = RateLimit::new(1, 1);
    let limits = RateLimits { requester: one_per_second, ..RateLimits::off() };
    let f = Fixture::with_limits(records(), limits).await;
    for _ in 0..50 {
        let answer = f.get("/fhir/Observation", PATIENT).await;
        if answer.status == 429 {
            sample("outcome-429", &answer, 429);
            return;
        }
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    panic!("the limit never bit");
}

/// A body larger than the served router's limit, on a FHIR route, and a write to the
/// provider's own database mapped read-only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_sampled() {
    let dir = temp_dir("samples-body");
    let store = SqliteStore::open(dir.join("records.db")).unwrap();
    let chain = Chain::new(&store).await;
    drop(store);
    let mut config = chain.config(StoreUrl::Sqlite(dir.join("records.db")));
    config.body_limit = 1024;
    let served = assemble(&config).await.unwrap();
    chain.enroll(served.gatekeeper());
    let client = in_process(&served, GATEKEEPER);
    wait_ready(&client, 200).await;
    let big = json!({"resourceType": "Patient", "name": [{"text": "x".repeat(4096)}]});
    let answer = client.json("POST", "/fhir/Patient", &big, &chain.key(PROVIDER)).await;
    sample("outcome-413", &answer, 413);
    served.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A write to the provider's own database, served read-only through its mapping, and
/// the history of one of its resources (the current version alone).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_legacy_stores_refusal_and_history_are_sampled() {
    let (chain, config, database) = legacy("samples-legacy").await;
    let served = assemble(&config).await.unwrap();
    let client = in_process(&served, config.gatekeeper);
    wait_ready(&client, 200).await;
    let as_provider = chain.key(PROVIDER);
    let write = json!({"resourceType": "Patient", "id": "1001"});
    let refused = client.json("PUT", "/fhir/Patient/1001", &write, &as_provider).await;
    assert!(refused.diagnostics().contains("read-only"), "{}", refused.body);
    sample("outcome-405-legacy", &refused, 405);
    sample("metadata-legacy", &client.get("/fhir/metadata", &As::Nobody).await, 200);
    sample("history-legacy", &client.get("/fhir/Patient/1001/_history", &as_provider).await, 200);
    served.shutdown().await;
    std::fs::remove_dir_all(database.parent().unwrap()).unwrap();
}
