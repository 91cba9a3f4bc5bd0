//! The access log of FHIR and pointer reads, and the patient's proofs against the
//! anchors on chain.

use super::fixture;
use crate::client::As;
use alloy::primitives::Address;
use medrec_store::audit::verify;
use medrec_testkit::medrec::{PATIENT, PROVIDER, STRANGER, VIEWER};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_logged_and_the_patient_verifies_the_entries_against_the_chain() {
    use medrec_chain::anchors::{AnchorClaim, check_anchor};
    use medrec_gatekeeper::{
        anchor::{AnchorConfig, Anchorer},
        audit::wire::ProvenEntry,
    };
    let f = fixture().await;
    // The viewer reads, a stranger is refused, the patient searches, the viewer asks
    // for a pointer it holds no grant for.
    assert_eq!(f.get("/fhir/Observation/a1", VIEWER).await.status, 200);
    assert_eq!(f.get(&f.pointer(0), VIEWER).await.status, 200);
    assert_eq!(f.get("/fhir/Observation/a1", STRANGER).await.status, 403);
    assert_eq!(f.get(&f.pointer(0), STRANGER).await.status, 403);
    assert_eq!(f.get("/fhir/Observation", PATIENT).await.status, 200);
    let unsigned = f.client.get("/fhir/Observation/a1", &As::Nobody).await;
    assert_eq!(unsigned.status, 401);
    assert_eq!(f.get(&f.pointer(1), VIEWER).await.status, 403);
    f.gk.flush_access_log().await;
    let all = f.log.entries(0, 100).await.unwrap();
    let decisions: Vec<String> = all.iter().map(|e| e.entry.decision.to_string()).collect();
    assert_eq!(
        decisions,
        ["allow-viewer", "allow-viewer", "allow-patient", "deny:unknown-pointer"],
        "every decision about the patient's records, allowed or denied, is one entry; the \
         stranger and the request without credentials never authenticated and are not logged"
    );
    let refused = f.gk.refusals();
    assert_eq!(
        (refused.unknown_requester, refused.unauthenticated),
        (2, 1),
        "the refusals before the handler are counted instead"
    );
    assert!(all.iter().all(|e| e.entry.requester != f.m.address(STRANGER)));
    assert!(all[0].entry.response_hash.is_some() && all[3].entry.response_hash.is_none());
    assert_eq!(all[1].entry.pointer, Some(0));
    assert_eq!(all[3].entry.pointer, Some(1));

    // Before any anchor the patient sees the entries about their records, unproven.
    let page = f.get("/audit", PATIENT).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let entries = page.body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 4, "every entry about the patient's relationship: {}", page.body);
    assert!(entries.iter().all(|e| e["proof"].is_null()));
    assert_eq!(entries[0]["resource"], json!({"type": "Observation", "id": "a1"}));
    assert_eq!(entries[0]["requester"], json!(f.m.address(VIEWER)));

    // The provider anchors the log's root (with the patient's log read above in it):
    // one transaction.
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
    let page = f.get("/audit", PATIENT).await;
    let entries = page.body["entries"].as_array().unwrap().clone();
    assert!(entries.len() >= 4);
    for e in &entries {
        assert!(
            e["proof"].get("entry").is_none(),
            "the entry is sent once, not again in its proof"
        );
        let proven: ProvenEntry = serde_json::from_value(e.clone()).expect("a typed entry");
        let proof = proven.proof().expect("well formed").expect("every entry now has a proof");
        verify(&proof).expect("the proof holds");
        let claim = AnchorClaim {
            size: proof.anchor.size,
            root: proof.anchor.root,
            block: proof.anchor.block,
        };
        check_anchor(&f.m.reader(), f.m.at.anchors, f.m.address(PROVIDER), claim)
            .await
            .expect("the anchor is on chain");
        // The proof is a path of at most ⌈log2 size⌉ hashes.
        let size = proof.anchor.size;
        assert!(proof.path.len() <= (64 - (size - 1).leading_zeros()) as usize, "size {size}");
        // Any change to the entry or the path breaks the proof.
        let mut forged = proof.clone();
        forged.entry.entry.requester = Address::repeat_byte(0xee);
        assert!(verify(&forged).is_err());
        for i in 0..proof.path.len() {
            let mut forged = proof.clone();
            forged.path[i].0[0] ^= 0x80;
            assert!(verify(&forged).is_err());
        }
    }
    // Someone else gets nothing about this patient's records.
    let other = f.get("/audit", VIEWER).await;
    assert_eq!((other.status, other.body["entries"].as_array().map(Vec::len)), (200, Some(0)));
    assert_eq!(f.get("/audit?after=x", PATIENT).await.status, 400);

    // The provider reads its whole log, every patient's entries; that read is an entry.
    f.gk.flush_access_log().await;
    let before = f.log.entries(0, 500).await.unwrap().len();
    let own = f.get("/audit?after=0&limit=500", PROVIDER).await;
    assert_eq!(own.status, 200);
    let entries = own.body["entries"].as_array().unwrap();
    assert_eq!(entries.len(), before, "every entry, not only one patient's");
    let requesters: std::collections::BTreeSet<&str> =
        entries.iter().filter_map(|e| e["requester"].as_str()).collect();
    assert!(requesters.len() >= 2, "the patient's and the viewer's entries: {requesters:?}");
    f.gk.flush_access_log().await;
    let after = f.log.entries(0, 500).await.unwrap();
    assert_eq!(after.len(), before + 1);
    assert_eq!(after.last().unwrap().entry.decision.to_string(), "allow-provider");
    // Paged by entry number: after the first `before`, only the provider's own read.
    let page = f.get(&format!("/audit?after={before}"), PROVIDER).await;
    let rest = page.body["entries"].as_array().unwrap();
    assert_eq!(rest.len(), 1, "{}", page.body);
    assert_eq!(rest[0]["decision"], "allow-provider");
}
