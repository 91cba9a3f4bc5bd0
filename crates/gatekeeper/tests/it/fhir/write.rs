//! The provider's writes: create, update, transaction and batch Bundles, malformed
//! requests, and enrollment over HTTP.

use super::{condition, fixture, patient};
use medrec_testkit::medrec::{PATIENT, PROVIDER, STRANGER, VIEWER};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_creates_updates_and_imports_bundles() {
    let f = fixture().await;
    // Create: a new id, 201 with Location and ETag.
    let created =
        f.send("POST", "/fhir/Condition", &condition("ignored", "p1").json, PROVIDER).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    assert_ne!(id, "ignored");
    assert!(
        created.headers["location"]
            .to_str()
            .unwrap()
            .ends_with(&format!("/fhir/Condition/{id}/_history/1"))
    );
    // The patient sees it at once.
    assert!(f.ids("/fhir/Condition", PATIENT).await.contains(&id));

    // Update: version 2; the id must match the URL.
    let mut c = condition("c1", "p1").json;
    c["clinicalStatus"] = json!({"coding": [{"code": "resolved"}]});
    let updated = f.send("PUT", "/fhir/Condition/c1", &c, PROVIDER).await;
    assert_eq!((updated.status, updated.body["meta"]["versionId"].clone()), (200, json!("2")));
    let v1 = f.get("/fhir/Condition/c1/_history/1", PROVIDER).await;
    assert_eq!((v1.status, v1.body.get("clinicalStatus")), (200, None));
    // A version is read like the resource: the patient of its compartment may.
    assert_eq!(f.get("/fhir/Condition/c1/_history/1", PATIENT).await.status, 200);
    assert_eq!(f.get("/fhir/Condition/c1/_history/1", STRANGER).await.status, 403);
    let wrong = f.send("PUT", "/fhir/Condition/c2", &c, PROVIDER).await;
    assert_eq!(wrong.status, 400);
    assert!(wrong.is_outcome("invalid"));

    // A transaction: new patient and an observation referring to it by urn:uuid.
    let tx = json!({
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:6f1c0c3e-1b8a-4a53-9d5e-1c2b3a4d5e6f",
             "resource": {"resourceType": "Patient", "gender": "male"},
             "request": {"method": "POST", "url": "Patient"}},
            {"resource": {"resourceType": "Observation", "status": "final",
                          "subject": {"reference": "urn:uuid:6f1c0c3e-1b8a-4a53-9d5e-1c2b3a4d5e6f"},
                          "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]}},
             "request": {"method": "POST", "url": "Observation"}},
            {"resource": patient("p3").json, "request": {"method": "PUT", "url": "Patient/p3"}}
        ]
    });
    let a = f.send("POST", "/fhir", &tx, PROVIDER).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.body["type"], "transaction-response");
    let locations: Vec<&str> = a.body["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["response"]["location"].as_str().unwrap())
        .collect();
    assert_eq!(locations.len(), 3);
    let new_patient = locations[0].split('/').nth_back(2).unwrap();
    let found = f.ids(&format!("/fhir/Observation?patient={new_patient}"), PROVIDER).await;
    assert_eq!(found.len(), 1, "the reference was rewritten to the new patient");

    // A transaction with one bad entry stores nothing.
    let bad = json!({
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            {"resource": patient("p4").json, "request": {"method": "PUT", "url": "Patient/p4"}},
            {"resource": {"resourceType": "Spaceship"}, "request": {"method": "POST", "url": "Spaceship"}}
        ]
    });
    let a = f.send("POST", "/fhir", &bad, PROVIDER).await;
    assert_eq!(a.status, 400);
    assert!(a.body["issue"][0]["diagnostics"].as_str().unwrap().starts_with("entry 1"));
    assert_eq!(f.get("/fhir/Patient/p4", PROVIDER).await.status, 404, "all or none");

    // A batch: each entry on its own.
    let batch = json!({"resourceType": "Bundle", "type": "batch", "entry": bad["entry"]});
    let a = f.send("POST", "/fhir", &batch, PROVIDER).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["entry"][0]["response"]["status"], "201 Created");
    assert!(a.body["entry"][1]["response"]["status"].as_str().unwrap().starts_with("400"));
    assert_eq!(f.get("/fhir/Patient/p4", PROVIDER).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_an_operation_outcome_and_the_server_keeps_serving() {
    let f = fixture().await;
    let cases: &[(&str, &str, Option<&str>, u16)] = &[
        ("GET", "/fhir/Spaceship", None, 400),
        ("GET", "/fhir/Observation/not%20an%20id", None, 400),
        // An unknown parameter is ignored (Prefer: handling=strict refuses it: see
        // `api.rs`); a bad value of a known one is refused.
        ("GET", "/fhir/Observation?name=smith", None, 200),
        ("GET", "/fhir/Observation?date=ne2025", None, 400),
        ("GET", "/fhir/Observation?_count=100000", None, 400),
        ("GET", "/fhir/Observation?code=%27%20OR%201=1%20--", None, 200),
        ("GET", "/fhir/Observation?category=x%27);DELETE%20FROM%20resources;--", None, 200),
        ("GET", "/fhir/Observation?_id=a1%27;DROP%20TABLE%20resources;--", None, 400),
        ("GET", "/fhir/Observation?patient=p1%22%20OR%20%221%22=%221", None, 400),
        ("GET", "/fhir/Observation/a1/_history/x", None, 400),
        ("POST", "/fhir/Observation", Some("{not json"), 400),
        ("POST", "/fhir/Observation", Some("[1,2]"), 400),
        ("POST", "/fhir/Observation", Some(r#"{"resourceType":"Patient"}"#), 400),
        (
            "POST",
            "/fhir/Observation",
            Some(r#"{"resourceType":"Observation","effectiveDateTime":"yesterday"}"#),
            400,
        ),
        ("POST", "/fhir", Some(r#"{"resourceType":"Bundle","type":"collection"}"#), 400),
        (
            "POST",
            "/fhir",
            Some(
                r#"{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"DELETE","url":"Patient/p1"}}]}"#,
            ),
            400,
        ),
    ];
    for (method, path, body, status) in cases {
        // JSON goes as serde_json writes it, anything else as it is.
        let body = body
            .map(|b| {
                serde_json::from_str::<Value>(b).map_or_else(|_| b.to_owned(), |v| v.to_string())
            })
            .unwrap_or_default();
        let a = f.client.send(method, path, body, &f.key(PROVIDER)).await;
        assert_eq!(a.status, *status, "{method} {path}: {}", a.body);
        if *status != 200 {
            assert_eq!(a.body["resourceType"], "OperationOutcome", "{method} {path}");
            assert!(!a.body["issue"][0]["diagnostics"].as_str().unwrap().is_empty());
        }
    }
    // The records are intact and the server still serves.
    assert_eq!(f.ids("/fhir/Observation", PROVIDER).await.len(), 4);
    assert_eq!(f.get("/fhir/Observation/a1", PATIENT).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_provider_enrolls_over_http_and_the_chain_must_agree() {
    let f = fixture().await;
    let path = format!("/enrollments/{}", f.rel.0);
    let good = json!({"patient": "p1", "pointers": ["Observation?category=laboratory"]});
    assert_eq!(f.send("PUT", &path, &good, PROVIDER).await.status, 204);
    for who in [PATIENT, VIEWER, STRANGER] {
        let a = f.send("PUT", &path, &good, who).await;
        assert_eq!(a.status, 403, "only the provider enrolls");
    }
    // A query whose commitment is not the one on chain is refused, and nothing changes.
    let tampered = json!({"patient": "p2", "pointers": ["Observation?category=vital-signs"]});
    let a = f.send("PUT", &path, &tampered, PROVIDER).await;
    assert_eq!(a.status, 409, "{}", a.body);
    assert!(a.is_outcome("conflict"));
    assert_eq!(f.ids("/fhir/Observation", VIEWER).await, ["a1", "a3"]);
    // A relationship the chain does not know, and malformed bodies.
    let unknown = format!("/enrollments/{}", alloy::primitives::B256::repeat_byte(7));
    assert_eq!(f.send("PUT", &unknown, &good, PROVIDER).await.status, 409);
    for bad in [
        json!({"pointers": []}),
        json!({"patient": "p1"}),
        json!({"patient": "p1", "pointers": ["Observation?patient=p2"]}),
        json!({"patient": "no spaces", "pointers": []}),
    ] {
        let a = f.send("PUT", &path, &bad, PROVIDER).await;
        assert_eq!(a.status, 400, "{bad}: {}", a.body);
    }
    assert_eq!(f.send("PUT", "/enrollments/xyz", &good, PROVIDER).await.status, 400);
}
