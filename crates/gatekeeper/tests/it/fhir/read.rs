//! Reading and searching: the patient's compartment, a viewer's grants, a stranger,
//! the provider's paging, bearer tokens.

use super::fixture;
use crate::client::{As, ids};
use alloy::primitives::keccak256;
use medrec_gatekeeper::{pointer::PointerQuery, server::Enrollment};
use medrec_testkit::medrec::{PATIENT, PROVIDER, STRANGER, VIEWER};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_patient_sees_their_whole_compartment_and_nothing_else() {
    let f = fixture().await;
    assert_eq!(f.ids("/fhir/Observation", PATIENT).await, ["a1", "a2", "a3"]);
    assert_eq!(f.ids("/fhir/Condition", PATIENT).await, ["c1"]);
    assert_eq!(f.ids("/fhir/Patient", PATIENT).await, ["p1"]);
    let read = f.get("/fhir/Observation/a2", PATIENT).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["id"], "a2");
    assert_eq!(read.headers["etag"], "W/\"1\"");
    // Another patient's resource reads as not found, exactly like one that does not exist.
    let other = f.get("/fhir/Observation/b1", PATIENT).await;
    let missing = f.get("/fhir/Observation/zz", PATIENT).await;
    assert_eq!((other.status, missing.status), (404, 404));
    assert_eq!(other.body, missing.body);
    assert!(other.is_outcome("not-found"));
    // Searching for the other patient explicitly finds nothing.
    assert!(f.ids("/fhir/Observation?patient=p2", PATIENT).await.is_empty());
    assert!(f.ids("/fhir/Observation?subject=Patient/p2&_id=b1", PATIENT).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_sees_exactly_the_granted_pointer_until_it_is_revoked() {
    let mut f = fixture().await;
    assert_eq!(f.ids("/fhir/Observation", VIEWER).await, ["a1", "a3"]);
    assert_eq!(f.ids("/fhir/Observation?date=ge2025", VIEWER).await, ["a1"]);
    assert_eq!(f.ids("/fhir/Observation?_id=a1,a2,b1", VIEWER).await, ["a1"]);
    assert!(f.ids("/fhir/Condition", VIEWER).await.is_empty(), "not in the pointer");
    assert_eq!(f.get("/fhir/Observation/a1", VIEWER).await.status, 200);
    for outside in
        ["/fhir/Observation/a2", "/fhir/Observation/b1", "/fhir/Condition/c1", "/fhir/Patient/p1"]
    {
        let a = f.get(outside, VIEWER).await;
        assert_eq!(a.status, 404, "{outside}: {}", a.body);
        assert!(!a.body.to_string().contains("Patient/p"), "nothing leaks: {}", a.body);
    }

    f.m.revoke(VIEWER).await;
    f.catch_up().await;
    let a = f.get("/fhir/Observation/a1", VIEWER).await;
    assert_eq!(a.status, 403, "refused the moment the revocation is indexed: {}", a.body);
    assert!(a.is_outcome("forbidden"));
    assert_eq!(f.get("/fhir/Observation", VIEWER).await.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_sees_nothing_and_cannot_write() {
    let f = fixture().await;
    for path in
        ["/fhir/Observation", "/fhir/Observation/a1", "/fhir/Patient/p1", "/fhir/Condition?_id=zz"]
    {
        let a = f.get(path, STRANGER).await;
        assert_eq!(a.status, 403, "{path}");
        assert!(a.is_outcome("forbidden"));
    }
    let new = json!({"resourceType": "Patient", "id": "x9"});
    for who in [STRANGER, PATIENT, VIEWER] {
        assert_eq!(f.send("PUT", "/fhir/Patient/x9", &new, who).await.status, 403);
        assert_eq!(f.send("POST", "/fhir/Patient", &new, who).await.status, 403);
    }
    assert_eq!(f.get("/fhir/Patient/x9", PROVIDER).await.status, 404, "nothing was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_reads_everything_and_pages_through_searches() {
    let f = fixture().await;
    assert_eq!(f.ids("/fhir/Observation", PROVIDER).await, ["a1", "a2", "a3", "b1"]);
    let page = f.get("/fhir/Observation?_count=2&_sort=-date", PROVIDER).await;
    assert_eq!(page.body["total"], 4);
    assert_eq!(ids(&page.body), ["a2", "a1"]);
    let links = page.body["link"].as_array().unwrap();
    let next = links.iter().find(|l| l["relation"] == "next").unwrap()["url"].as_str().unwrap();
    assert!(next.contains("_offset=2") && next.contains("_sort=-date"), "{next}");
    let path = &next[next.find("/fhir/").unwrap()..];
    let second = f.get(path, PROVIDER).await;
    assert_eq!(ids(&second.body), ["b1", "a3"]);
    assert!(second.body["link"].as_array().unwrap().iter().all(|l| l["relation"] != "next"));
    let code =
        "/fhir/Observation?code=http://loinc.org|2498-4&category=laboratory&_lastUpdated=ge2000";
    assert_eq!(f.ids(code, PROVIDER).await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_with_two_pointers_pages_through_their_union() {
    use alloy::primitives::aliases::U40;
    use medrec_contracts::Relationships;
    use medrec_testkit::medrec::DELEGATE;
    let mut f = fixture().await;
    // The provider adds pointer 1 (vital signs), the patient accepts it and grants
    // the viewer both pointers.
    let vitals = PointerQuery::parse("Observation?category=vital-signs").unwrap();
    let (patient, delegate, viewer) =
        (f.m.address(PATIENT), f.m.address(DELEGATE), f.m.address(VIEWER));
    let by_delegate = Relationships::new(f.m.at.relationships, f.m.wallet(DELEGATE));
    let pending = by_delegate
        .addPointer(patient, vitals.commitment(), keccak256("data"), keccak256("bounty"))
        .send()
        .await
        .unwrap();
    assert!(pending.get_receipt().await.unwrap().status());
    let by_patient = Relationships::new(f.m.at.relationships, f.m.wallet(PATIENT));
    let accept = by_patient.accept(delegate).send().await.unwrap();
    assert!(accept.get_receipt().await.unwrap().status());
    let grant = by_patient.grant(
        delegate,
        viewer,
        0b11,
        U40::ZERO,
        U40::from(4_000_000_000u64),
        Default::default(),
    );
    assert!(grant.send().await.unwrap().get_receipt().await.unwrap().status());
    let labs = PointerQuery::parse("Observation?category=laboratory").unwrap();
    f.gk.enroll(
        f.rel,
        Enrollment { patient: "p1".parse().unwrap(), pointers: vec![labs, vitals], offer: None },
    )
    .unwrap();
    f.catch_up().await;

    assert_eq!(f.ids("/fhir/Observation", VIEWER).await, ["a1", "a2", "a3"]);
    let page = f.get("/fhir/Observation?_count=2&_sort=-date", VIEWER).await;
    assert_eq!(
        (ids(&page.body), page.body["total"].as_u64()),
        (vec!["a2".into(), "a1".into()], Some(3))
    );
    let page = f.get("/fhir/Observation?_count=2&_offset=2&_sort=-date", VIEWER).await;
    assert_eq!(ids(&page.body), ["a3"]);
    assert!(f.ids("/fhir/Observation?patient=p2", VIEWER).await.is_empty());
    assert_eq!(f.get("/fhir/Observation/b1", VIEWER).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ordinary_fhir_client_signs_in_once_and_uses_a_bearer_token() {
    let f = fixture().await;
    let bearer = f.sign_in(PATIENT).await;
    let a = f.client.get("/fhir/Observation?category=laboratory", &bearer).await;
    assert_eq!(a.status, 200);
    assert_eq!(ids(&a.body), ["a1", "a3"]);
    assert_eq!(f.client.get("/fhir/Observation/b1", &bearer).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_never_outlives_a_revocation() {
    let mut f = fixture().await;
    let bearer = f.sign_in(VIEWER).await;
    assert_eq!(f.client.get("/fhir/Observation/a1", &bearer).await.status, 200);
    f.m.revoke(VIEWER).await;
    f.catch_up().await;
    let a = f.client.get("/fhir/Observation/a1", &bearer).await;
    assert_eq!(a.status, 403, "the token still authenticates, but the grant is gone: {}", a.body);
    assert!(a.is_outcome("forbidden"));
    let path = f.pointer(0);
    assert_eq!(f.client.get(&path, &bearer).await.status, 403);
    // Forged and foreign tokens are refused outright.
    assert_eq!(
        f.client
            .get("/fhir/Observation/a1", &As::Authorization("Bearer not-a-token".into()))
            .await
            .status,
        401
    );
}
