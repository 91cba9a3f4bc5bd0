//! The `history` interaction, `GET /fhir/{type}/{id}/_history`, and the version read
//! beside it: scoped exactly like a read, a version served only to a requester who may
//! read the resource now, anything else answered like an id that does not exist.

use super::{condition, fixture};
use crate::client::As;
use medrec_testkit::medrec::{PATIENT, PROVIDER, STRANGER, VIEWER};
use serde_json::{Value, json};

/// The versions of the entries of a history Bundle, in order.
fn versions(bundle: &Value) -> Vec<String> {
    bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["resource"]["meta"]["versionId"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_history_of_a_resource_is_its_versions_newest_first() {
    let f = fixture().await;
    for status in ["resolved", "active"] {
        let mut c = condition("c1", "p1").json;
        c["clinicalStatus"] = json!({"coding": [{"code": status}]});
        assert_eq!(f.send("PUT", "/fhir/Condition/c1", &c, PROVIDER).await.status, 200);
    }
    let h = f.get("/fhir/Condition/c1/_history", PROVIDER).await;
    assert_eq!(h.status, 200, "{}", h.body);
    assert_eq!(h.header("content-type"), Some("application/fhir+json"));
    let b = &h.body;
    assert_eq!(
        (&b["resourceType"], &b["type"], &b["total"]),
        (&json!("Bundle"), &json!("history"), &json!(3))
    );
    assert_eq!(versions(b), ["3", "2", "1"]);
    assert_eq!(b["entry"][0]["resource"]["clinicalStatus"]["coding"][0]["code"], "active");
    assert!(b["entry"][2]["resource"].get("clinicalStatus").is_none());
    for (e, v) in b["entry"].as_array().unwrap().iter().zip([3, 2, 1]) {
        assert!(e["fullUrl"].as_str().unwrap().ends_with("/fhir/Condition/c1"), "{e}");
        assert_eq!(e["request"], json!({"method": "PUT", "url": "Condition/c1"}));
        let status = if v == 1 { "201 Created" } else { "200 OK" };
        assert_eq!(e["response"]["status"], status);
        assert_eq!(e["response"]["etag"], format!("W/\"{v}\""));
        assert_eq!(e["response"]["lastModified"], e["resource"]["meta"]["lastUpdated"]);
    }
    // Paged newest first by `_count` and `_offset`, with links to the pages around.
    let page = f.get("/fhir/Condition/c1/_history?_count=1&_offset=1", PROVIDER).await.body;
    assert_eq!((versions(&page), &page["total"]), (vec!["2".to_owned()], &json!(3)));
    let links: Vec<&str> =
        page["link"].as_array().unwrap().iter().map(|l| l["relation"].as_str().unwrap()).collect();
    assert_eq!(links, ["self", "next", "previous"]);
    let next = page["link"][1]["url"].as_str().unwrap();
    assert!(next.ends_with("/fhir/Condition/c1/_history?_count=1&_offset=2"), "{next}");
    let last = f.get("/fhir/Condition/c1/_history?_count=1&_offset=2", PROVIDER).await.body;
    assert_eq!(versions(&last), ["1"]);
    // Unknown parameters are ignored unless the client asks for strict handling.
    assert_eq!(f.get("/fhir/Condition/c1/_history?_since=2020-01-01", PROVIDER).await.status, 200);
    let strict = f
        .client
        .send_with(
            "GET",
            "/fhir/Condition/c1/_history?_since=2020-01-01",
            Vec::new(),
            &f.key(PROVIDER),
            &[("prefer", "handling=strict")],
        )
        .await;
    assert_eq!(strict.status, 400, "{}", strict.body);
    assert_eq!(f.get("/fhir/Condition/c1/_history?_count=x", PROVIDER).await.status, 400);
    // With a trailing slash too; and the patient of the compartment reads it all.
    let patient = f.get("/fhir/Condition/c1/_history/", PATIENT).await;
    assert_eq!(
        (patient.status, versions(&patient.body)),
        (200, vec!["3".into(), "2".into(), "1".into()])
    );
    assert_eq!(f.get("/fhir/Condition/c1/_history/2", PATIENT).await.status, 200);
    assert_eq!(f.get("/fhir/Condition/c1/_history/4", PROVIDER).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_and_versions_are_scoped_exactly_like_a_read() {
    let f = fixture().await;
    let missing = f.get("/fhir/Observation/zz/_history", PATIENT).await;
    assert_eq!(missing.status, 404);
    // Another patient's resource looks exactly like one that does not exist.
    for (path, who) in [
        ("/fhir/Observation/b1/_history", PATIENT),
        ("/fhir/Observation/b1/_history/1", PATIENT),
        // The viewer is granted p1's laboratory results only.
        ("/fhir/Observation/a2/_history", VIEWER),
        ("/fhir/Observation/a2/_history/1", VIEWER),
        ("/fhir/Observation/b1/_history", VIEWER),
    ] {
        let a = f.get(path, who).await;
        assert_eq!((a.status, &a.text), (404, &missing.text), "{path}");
    }
    let logged = f.log_size().await;
    let granted = f.get("/fhir/Observation/a1/_history", VIEWER).await;
    assert_eq!((granted.status, versions(&granted.body)), (200, vec!["1".to_owned()]));
    assert_eq!(f.log_size().await, logged + 1, "a history is logged like a read");
    assert_eq!(f.get("/fhir/Observation/a1/_history/1", VIEWER).await.status, 200);
    assert_eq!(f.get("/fhir/Observation/a1/_history", STRANGER).await.status, 403);
    assert_eq!(f.client.get("/fhir/Observation/a1/_history", &As::Nobody).await.status, 401);

    // A resource moved from p2's compartment into p1's: p1 sees the version in their
    // compartment only; the provider sees both.
    let moved = |patient: &str| {
        json!({"resourceType": "Observation", "id": "m1", "status": "final",
            "subject": {"reference": format!("Patient/{patient}")},
            "code": {"coding": [{"system": "http://loinc.org", "code": "2498-4"}]}})
    };
    assert_eq!(f.send("PUT", "/fhir/Observation/m1", &moved("p2"), PROVIDER).await.status, 201);
    assert_eq!(f.send("PUT", "/fhir/Observation/m1", &moved("p1"), PROVIDER).await.status, 200);
    let mine = f.get("/fhir/Observation/m1/_history", PATIENT).await;
    assert_eq!((mine.status, versions(&mine.body)), (200, vec!["2".to_owned()]));
    assert_eq!(f.get("/fhir/Observation/m1/_history/1", PATIENT).await.status, 404);
    assert_eq!(f.get("/fhir/Observation/m1/_history/1", PROVIDER).await.status, 200);
    let all = f.get("/fhir/Observation/m1/_history", PROVIDER).await;
    assert_eq!(versions(&all.body), ["2", "1"]);

    // Revoked: the viewer's history goes at once, like its reads.
    let mut f = f;
    f.m.revoke(VIEWER).await;
    f.catch_up().await;
    assert_eq!(f.get("/fhir/Observation/a1/_history", VIEWER).await.status, 403);
    assert_eq!(f.get("/fhir/Observation/a1/_history/1", VIEWER).await.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capability_statement_names_history_for_record_types_only() {
    let f = fixture().await;
    let c = f.client.get("/fhir/metadata", &As::Nobody).await.body;
    for r in c["rest"][0]["resource"].as_array().unwrap() {
        let codes: Vec<&str> = r["interaction"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["code"].as_str().unwrap())
            .collect();
        let derived =
            ["Consent", "AuditEvent", "Provenance"].contains(&r["type"].as_str().unwrap());
        assert_eq!(codes.contains(&"history-instance"), !derived, "{r}");
        assert_eq!(codes.contains(&"vread"), !derived, "{r}");
    }
}
