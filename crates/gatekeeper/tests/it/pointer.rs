//! Pointers run against a real SQLite store.

use alloy::primitives::{B256, keccak256};
use medrec_gatekeeper::pointer::{PointerError, PointerQuery, run};
use medrec_store::{fhir::Resource, hash::data_hash, sqlite::SqliteStore};
use serde_json::json;

fn obs(id: &str, patient: &str, category: &str, date: &str) -> Resource {
    Resource::parse(json!({
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "subject": {"reference": format!("Patient/{patient}")},
        "category": [{"coding": [{"code": category}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "2498-4"}]},
        "effectiveDateTime": date
    }))
    .unwrap()
}

async fn store() -> SqliteStore {
    let s = SqliteStore::open_in_memory().unwrap();
    s.update_all(vec![
        obs("a1", "p1", "laboratory", "2025-01-02"),
        obs("a2", "p1", "laboratory", "2024-06-01"),
        obs("a3", "p1", "vital-signs", "2025-02-01"),
        obs("b1", "p2", "laboratory", "2025-01-03"),
    ])
    .await
    .unwrap();
    s
}

#[tokio::test]
async fn a_pointer_returns_its_patients_matches_and_the_hash_the_chain_holds() {
    let store = store().await;
    let pointer = PointerQuery::parse("Observation?category=laboratory&date=ge2025-01-01").unwrap();
    assert_eq!(
        pointer.commitment(),
        keccak256("Observation?category=laboratory&date=ge2025-01-01")
    );
    let p1 = run(&store, &pointer, &"p1".parse().unwrap()).await.unwrap();
    let ids: Vec<&str> = p1.resources.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a1"], "only p1's laboratory results from 2025");
    assert_eq!(p1.data_hash, B256::from(data_hash(&p1.resources).unwrap()));
    let p2 = run(&store, &pointer, &"p2".parse().unwrap()).await.unwrap();
    assert_eq!(p2.resources.len(), 1);
    assert_ne!(p2.data_hash, p1.data_hash);
    // New data behind the pointer: a new hash, which the provider publishes.
    store.update(obs("a4", "p1", "laboratory", "2025-03-01")).await.unwrap();
    let again = run(&store, &pointer, &"p1".parse().unwrap()).await.unwrap();
    assert_eq!(again.resources.len(), 2);
    assert_ne!(again.data_hash, p1.data_hash);
    // An empty result has a hash too (of `[]`).
    let none = run(&store, &pointer, &"p9".parse().unwrap()).await.unwrap();
    assert!(none.resources.is_empty());
    assert_eq!(none.data_hash, B256::from(data_hash(&[]).unwrap()));
}

#[tokio::test]
async fn a_pointer_reads_every_page() {
    let store = SqliteStore::open_in_memory().unwrap();
    let many: Vec<Resource> =
        (0..1_050).map(|i| obs(&format!("m{i:04}"), "p1", "laboratory", "2025-01-01")).collect();
    store.update_all(many).await.unwrap();
    let pointer = PointerQuery::parse("Observation").unwrap();
    let data = run(&store, &pointer, &"p1".parse().unwrap()).await.unwrap();
    assert_eq!(data.resources.len(), 1_050);
    assert_eq!(data.resources[0]["id"], "m0000");
    assert_eq!(data.resources[1_049]["id"], "m1049");
}

#[test]
fn pointers_that_could_leave_their_patient_or_mean_less_are_refused() {
    for text in [
        "Observation?patient=p2",
        "Observation?subject=Patient/p2",
        "Observation?_count=1",
        "Observation?_offset=5",
        "Observation?_sort=date",
        "Observation?name=smith",
        "Basic?code=x",
        "Observation?date=ne2025",
        "Observation?category",
    ] {
        let err = PointerQuery::parse(text).unwrap_err();
        assert!(matches!(err, PointerError::InvalidQuery { .. }), "{text}: {err}");
        assert!(err.to_string().contains(text), "the message names the query: {err}");
    }
    let encoded = PointerQuery::parse("Observation?code=http%3A%2F%2Floinc.org%7C2498-4").unwrap();
    assert_eq!(encoded.text(), "Observation?code=http%3A%2F%2Floinc.org%7C2498-4");
}
