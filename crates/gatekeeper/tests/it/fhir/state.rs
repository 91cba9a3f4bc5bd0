//! MedRec's state as FHIR: grants as Consent, access log entries as AuditEvent, pointer
//! publications as Provenance, each pointing to what proves it on chain; and who may
//! see which.

use super::fixture;
use alloy::primitives::B256;
use medrec_testkit::medrec::{PATIENT, PROVIDER, STRANGER, VIEWER};
use serde_json::{Value, json};

const CHAIN_EVENT: &str = "https://medrec.dev/fhir/StructureDefinition/chain-event";

/// The resources of a searchset.
fn resources(body: &Value) -> Vec<Value> {
    body["entry"].as_array().unwrap().iter().map(|e| e["resource"].clone()).collect()
}

/// The `name` sub-extension of the chain-event extension of `event` on `r`.
fn chain_event(r: &Value, event: &str, name: &str) -> Option<Value> {
    r["extension"]
        .as_array()?
        .iter()
        .filter(|e| e["url"] == CHAIN_EVENT)
        .find(|e| e["extension"].as_array().unwrap().iter().any(|x| x["valueCode"] == event))?
        ["extension"]
        .as_array()?
        .iter()
        .find(|x| x["url"] == name)
        .map(|x| x.get("valueUnsignedInt").or(x.get("valueString")).unwrap().clone())
}

fn hex(b: B256) -> String {
    alloy::hex::encode_prefixed(b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_are_consents_that_end_with_the_revocation_and_point_to_their_transactions() {
    let mut f = fixture().await;
    let reader = f.m.reader();
    let granted = medrec_contracts::Relationships::new(f.m.at.relationships, &reader)
        .ViewerGranted_filter()
        .from_block(0)
        .query()
        .await
        .unwrap();
    let (_, granted_log) = granted.last().expect("the viewer was granted");
    let viewer = f.m.address(VIEWER).to_checksum(None);

    let a = f.get("/fhir/Consent", PATIENT).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let consents = resources(&a.body);
    assert_eq!(consents.len(), 1, "the patient's one grant: {}", a.body);
    let c = &consents[0];
    assert_eq!(c["status"], "active");
    assert_eq!(c["patient"]["reference"], "Patient/p1");
    assert_eq!(c["provision"]["actor"][0]["reference"]["identifier"]["value"], viewer.as_str());
    assert_eq!(
        c["provision"]["class"],
        json!([{"system": "http://hl7.org/fhir/resource-types", "code": "Observation"}])
    );
    assert_eq!(c["provision"]["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        chain_event(c, "ViewerGranted", "block"),
        Some(json!(granted_log.block_number.unwrap())),
        "the block of the ViewerGranted event"
    );
    assert_eq!(
        chain_event(c, "ViewerGranted", "transaction"),
        Some(json!(hex(granted_log.transaction_hash.unwrap()))),
        "and its transaction"
    );
    assert_eq!(chain_event(c, "ViewerRevoked", "block"), None);

    // Read by id, as the patient and as the viewer it names; nobody else.
    let id = c["id"].as_str().unwrap();
    let read = f.get(&format!("/fhir/Consent/{id}"), PATIENT).await;
    assert_eq!((read.status, &read.body), (200, c));
    assert_eq!(f.ids("/fhir/Consent", VIEWER).await, [id]);
    assert_eq!(f.get(&format!("/fhir/Consent/{id}"), VIEWER).await.status, 200);
    assert_eq!(f.get("/fhir/Consent", STRANGER).await.status, 403);
    assert_eq!(f.get(&format!("/fhir/Consent/{id}"), STRANGER).await.status, 403);
    assert_eq!(f.get("/fhir/Consent/grant-0", PATIENT).await.status, 404);
    assert_eq!(f.ids("/fhir/Consent?status=inactive", PATIENT).await, Vec::<String>::new());
    assert_eq!(f.ids("/fhir/Consent?patient=p2", PATIENT).await, Vec::<String>::new());
    // Read-only.
    assert_eq!(f.send("POST", "/fhir/Consent", c, PROVIDER).await.status, 405);
    assert_eq!(f.send("PUT", &format!("/fhir/Consent/{id}"), c, PROVIDER).await.status, 405);

    // Revoked: inactive, with the revocation's event; the viewer no longer sees it.
    f.m.revoke(VIEWER).await;
    f.catch_up().await;
    let c = f.get(&format!("/fhir/Consent/{id}"), PATIENT).await.body;
    assert_eq!(c["status"], "inactive", "{c}");
    let revoked_block = chain_event(&c, "ViewerRevoked", "block").expect("the revocation");
    assert!(revoked_block.as_u64().unwrap() > granted_log.block_number.unwrap());
    assert_eq!(f.ids("/fhir/Consent?status=inactive", PATIENT).await, [id]);
    assert_eq!(f.get("/fhir/Consent", VIEWER).await.status, 403);
    // The provider sees every grant it holds.
    assert_eq!(f.ids("/fhir/Consent", PROVIDER).await, [id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_entries_are_audit_events_with_the_anchor_that_covers_them() {
    use medrec_gatekeeper::anchor::{AnchorConfig, Anchorer};
    let f = fixture().await;
    assert_eq!(f.get("/fhir/Observation/a1", VIEWER).await.status, 200);
    assert_eq!(f.get(&f.pointer(1), VIEWER).await.status, 403);
    f.gk.flush_access_log().await;
    let logged = f.log.entries(0, 10).await.unwrap();
    assert_eq!(logged.len(), 2);

    let a = f.get("/fhir/AuditEvent", PATIENT).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let events = resources(&a.body);
    assert_eq!(events.len(), 2, "{}", a.body);
    let read = &events[0];
    assert_eq!(read["id"], "1");
    assert_eq!(read["action"], "R");
    assert_eq!(read["outcome"], "0");
    assert_eq!(
        read["agent"][0]["who"]["identifier"]["value"],
        f.m.address(VIEWER).to_checksum(None).as_str()
    );
    assert_eq!(read["entity"][0]["what"]["reference"], "Observation/a1");
    let entry = read["entity"].as_array().unwrap().last().unwrap();
    assert_eq!(entry["what"]["identifier"]["value"], hex(logged[0].hash).as_str());
    assert!(
        !entry["detail"].as_array().unwrap().iter().any(|d| d["type"] == "anchor-root"),
        "not anchored yet"
    );
    let denied = &events[1];
    assert_eq!(
        (&denied["outcome"], &denied["outcomeDesc"]),
        (&json!("4"), &json!("deny:unknown-pointer"))
    );

    // Anchored: each event carries the anchor's root, size, block and transaction.
    f.gk.flush_access_log().await;
    let anchorer = Anchorer::new(
        f.m.wallet(PROVIDER),
        f.log.clone(),
        AnchorConfig::new(
            f.m.at.anchors,
            f.m.address(PROVIDER),
            std::time::Duration::from_secs(3600),
        ),
    );
    anchorer.anchor_now().await.unwrap();
    let anchor = *f.log.anchors().await.unwrap().last().unwrap();
    let one = f.get("/fhir/AuditEvent/1", PATIENT).await;
    assert_eq!(one.status, 200, "{}", one.body);
    let detail = one.body["entity"].as_array().unwrap().last().unwrap()["detail"].clone();
    let get = |t: &str| {
        detail.as_array().unwrap().iter().find(|d| d["type"] == t).map(|d| d["valueString"].clone())
    };
    assert_eq!(get("anchor-root"), Some(json!(hex(anchor.root))));
    assert_eq!(get("anchor-block"), Some(json!(anchor.block.to_string())));
    assert_eq!(get("anchor-transaction"), Some(json!(hex(anchor.tx))));

    // The log is the patient's (and the provider's): a viewer and a stranger are refused.
    assert_eq!(f.get("/fhir/AuditEvent", VIEWER).await.status, 403);
    assert_eq!(f.get("/fhir/AuditEvent/1", VIEWER).await.status, 403);
    assert_eq!(f.get("/fhir/AuditEvent", STRANGER).await.status, 403);
    let all = f.get("/fhir/AuditEvent?_count=500", PROVIDER).await;
    assert!(resources(&all.body).len() >= 2);
    // The provider's own read of the log is an entry about no relationship: not the
    // patient's.
    let own = f.log_size().await;
    assert_eq!(f.get(&format!("/fhir/AuditEvent/{own}"), PROVIDER).await.status, 200);
    assert_eq!(f.get(&format!("/fhir/AuditEvent/{own}"), PATIENT).await.status, 404);
    // Paging: one per page, the next link after the entry it ended with.
    let page = f.get("/fhir/AuditEvent?_count=1", PATIENT).await;
    let next =
        page.body["link"].as_array().unwrap().iter().find(|l| l["relation"] == "next").unwrap();
    assert!(next["url"].as_str().unwrap().contains("_offset=1"), "{next}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pointer_publications_are_provenance_naming_the_provider_only_to_the_patient() {
    let f = fixture().await;
    let reader = f.m.reader();
    let added = medrec_contracts::Relationships::new(f.m.at.relationships, &reader)
        .PointerAdded_filter()
        .from_block(0)
        .query()
        .await
        .unwrap();
    let (event, log) = added.first().unwrap();
    let provider = f.m.address(PROVIDER).to_checksum(None);

    let a = f.get("/fhir/Provenance", PATIENT).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let all = resources(&a.body);
    assert_eq!(all.len(), 1, "{}", a.body);
    let p = &all[0];
    assert_eq!(p["target"][0]["reference"], "Observation?category=laboratory&patient=p1");
    assert_eq!(p["entity"][0]["what"]["identifier"]["value"], hex(event.dataHash).as_str());
    assert_eq!(
        p["agent"][0]["who"]["identifier"]["value"],
        provider.as_str(),
        "the patient knows its provider"
    );
    assert_eq!(chain_event(p, "PointerPublished", "block"), Some(json!(log.block_number.unwrap())));
    assert_eq!(
        chain_event(p, "PointerPublished", "transaction"),
        Some(json!(hex(log.transaction_hash.unwrap())))
    );

    // The viewer granted the pointer sees its publication, without the provider's name.
    let v = f.get("/fhir/Provenance", VIEWER).await;
    assert_eq!(v.status, 200, "{}", v.body);
    let seen = resources(&v.body);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["id"], p["id"]);
    assert!(seen[0]["agent"][0]["who"].get("identifier").is_none());
    let text = v.body.to_string().to_lowercase();
    assert!(!text.contains(&provider.to_lowercase()), "the provider is never named to a viewer");
    let id = p["id"].as_str().unwrap();
    assert_eq!(f.get(&format!("/fhir/Provenance/{id}"), VIEWER).await.status, 200);
    assert_eq!(f.get("/fhir/Provenance", STRANGER).await.status, 403);
    assert_eq!(f.get(&format!("/fhir/Provenance/{id}"), STRANGER).await.status, 403);
    assert_eq!(f.ids("/fhir/Provenance?patient=p1", PATIENT).await, [id]);
    assert_eq!(f.ids("/fhir/Provenance?patient=p2", PATIENT).await, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capability_statement_lists_the_derived_types_as_read_only() {
    let f = fixture().await;
    let meta = f.client.get("/fhir/metadata", &crate::client::As::Nobody).await;
    for ty in ["Consent", "AuditEvent", "Provenance"] {
        let r = meta.body["rest"][0]["resource"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["type"] == ty)
            .unwrap_or_else(|| panic!("{ty} is advertised"))
            .clone();
        assert_eq!(r["interaction"], json!([{"code": "read"}, {"code": "search-type"}]), "{ty}");
    }
}
