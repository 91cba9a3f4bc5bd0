//! The whole read path in process: a devchain, the follower, a SQLite store and the
//! gatekeeper's router, requests signed with EIP-712; and enrollments on disk.

use crate::{
    client::As,
    fixture::{Fixture, GATEKEEPER, LABORATORY, resource},
};
use alloy::primitives::{B256, keccak256};
use medrec_chain::{consent::ConsentIndex, follower::Health};
use medrec_gatekeeper::{
    auth::{AuthState, RequestVerifier, SiweAuthenticator, SiweConfig},
    pointer::PointerQuery,
    server::{DATA_HASH_HEADER, Enrollment, Gatekeeper, Readiness},
};
use medrec_primitives::RelationshipId;
use medrec_store::{RecordStore, fhir::Resource, sqlite::SqliteStore};
use medrec_testkit::medrec::{DELEGATE, PATIENT, STRANGER, VIEWER};
use serde_json::json;
use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

fn obs(id: &str, patient: &str, category: &str) -> Resource {
    resource(json!({
        "resourceType": "Observation", "id": id, "status": "final",
        "subject": {"reference": format!("Patient/{patient}")},
        "category": [{"coding": [{"code": category}]}],
        "effectiveDateTime": "2025-01-02"
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_authorized_requesters_get_the_data_and_its_hash_matches_the_chain() {
    // The provider's records; the chain: the provider publishes the pointer, the
    // patient accepts and shares; the gatekeeper.
    let records = vec![
        obs("a1", "p1", "laboratory"),
        obs("a2", "p1", "vital-signs"),
        obs("b1", "p2", "laboratory"),
    ];
    let mut f = Fixture::new(records).await;
    let (rel, client) = (f.rel, f.client.clone());
    let (viewer, patient, stranger) = (f.key(VIEWER), f.key(PATIENT), f.key(STRANGER));

    assert_eq!(client.get("/healthz", &As::Nobody).await.status, 200);
    assert_eq!(client.get("/readyz", &As::Nobody).await.status, 200);
    let capability = client.get("/fhir/metadata", &As::Nobody).await;
    assert_eq!(capability.status, 200);
    let capability = capability.body;
    assert_eq!(capability["resourceType"], "CapabilityStatement");
    assert_eq!(capability["fhirVersion"], "4.0.1");
    assert_eq!(capability["rest"][0]["resource"].as_array().unwrap().len(), 13);
    let path = f.pointer(0);

    // The viewer gets the patient's laboratory results, with the hash on chain.
    let a = client.get(&path, &viewer).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let bundle = &a.body;
    assert_eq!(bundle["resourceType"], "Bundle");
    let ids: Vec<&str> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a1"], "nothing of another patient, nothing outside the pointer");
    let on_chain = f.index.read().unwrap().pointer(&rel, 0).unwrap().data_hash;
    let hash = a.header(DATA_HASH_HEADER.as_str()).unwrap();
    assert_eq!(hash.parse::<B256>().unwrap(), on_chain, "the data hash matches the chain");
    // The patient reads their own data.
    assert_eq!(client.get(&path, &patient).await.status, 200);

    // A stranger is refused, exactly as for a relationship that does not exist.
    let refused = client.get(&path, &stranger).await;
    assert_eq!(refused.status, 403);
    let nowhere = RelationshipId::derive(f.m.address(STRANGER), f.m.address(DELEGATE));
    let refused_nowhere = client.get(&format!("/pointers/{}/0", nowhere.0), &stranger).await;
    assert_eq!(
        (refused_nowhere.status, &refused_nowhere.text),
        (403, &refused.text),
        "a denial looks the same whether or not anything exists"
    );
    let refused = refused.text;
    assert!(!refused.contains("a1") && refused.contains("OperationOutcome"));
    // The viewer has no grant for a pointer that does not exist; no credentials at all.
    assert_eq!(client.get(&f.pointer(1), &viewer).await.status, 403);
    assert_eq!(client.get(&path, &As::Nobody).await.status, 401);
    assert_eq!(client.get("/pointers/nonsense/0", &viewer).await.status, 400);

    // Revoked: refused as soon as the follower has seen the block.
    f.m.revoke(VIEWER).await;
    f.catch_up().await;
    assert_eq!(client.get(&path, &viewer).await.status, 403);

    // An index that cannot vouch for the chain fails closed.
    f.health.send_replace(Health { head: 100, indexed: 10, since_ok: Duration::ZERO });
    let a = client.get(&path, &patient).await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert_eq!(client.get("/readyz", &As::Nobody).await.status, 503);
}

#[tokio::test]
async fn enrollments_survive_a_restart_and_a_corrupt_file_is_refused() {
    use medrec_gatekeeper::server::EnrollmentFile;
    let dir = std::env::temp_dir().join(format!("medrec-enroll-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("enrollments.json");
    let _ = std::fs::remove_file(&path);
    let make = |file: EnrollmentFile| {
        let (_tx, rx) =
            tokio::sync::watch::channel(Health { head: 0, indexed: 0, since_ok: Duration::ZERO });
        let auth = AuthState::new(
            RequestVerifier::new(31337, GATEKEEPER),
            SiweAuthenticator::new(SiweConfig::new("gk.example".parse().unwrap(), 31337)),
        );
        let store: Arc<dyn RecordStore> = Arc::new(SqliteStore::open_in_memory().unwrap());
        Gatekeeper::with_enrollment_file(
            store,
            Arc::new(RwLock::new(ConsentIndex::new(0))),
            rx,
            Readiness::default(),
            auth,
            file,
        )
    };
    let rel = RelationshipId(keccak256("rel"));
    {
        let gk = make(EnrollmentFile::new(&path)).unwrap();
        assert!(gk.enrollment(&rel).is_none());
        let pointers = vec![
            PointerQuery::parse(LABORATORY).unwrap(),
            PointerQuery::parse("Immunization").unwrap(),
        ];
        gk.enroll(rel, Enrollment { patient: "p1".parse().unwrap(), pointers, offer: None })
            .unwrap();
    }
    let again = make(EnrollmentFile::new(&path)).unwrap();
    let e = again.enrollment(&rel).expect("kept across the restart");
    assert_eq!(e.patient.as_str(), "p1");
    assert_eq!(
        e.pointers.iter().map(PointerQuery::text).collect::<Vec<_>>(),
        ["Observation?category=laboratory", "Immunization"]
    );
    std::fs::write(&path, "{\"0xnot-a-hash\": {}}").unwrap();
    let err = make(EnrollmentFile::new(&path)).unwrap_err();
    assert!(err.to_string().contains("is corrupt"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
