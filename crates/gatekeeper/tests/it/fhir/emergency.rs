//! Care beyond one viewer through the FHIR API: a grant to a group reaches its members,
//! and an emergency clinician who broke the glass reads the patient's emergency set,
//! logged as such, until the patient refuses or the clinician leaves the group.

use super::fixture;
use crate::fixture::Fixture;
use alloy::{primitives::U256, providers::Provider};
use medrec_chain::care::{EmergencyReason, group_address};
use medrec_contracts::{Registrar, Relationships};
use medrec_testkit::medrec::{DELEGATE, INSTITUTION, PATIENT, STRANGER};

/// STRANGER, a clinician, joins a new group (id 1) defined by the institution.
async fn join_group(f: &mut Fixture, emergency: bool) {
    let registrar = Registrar::new(f.m.at.registrar, f.m.wallet(INSTITUTION));
    let name = if emergency { "Emergency departments" } else { "Pharmacists" };
    let r = registrar.createGroup(name.into(), emergency).send().await.unwrap();
    assert!(r.get_receipt().await.unwrap().status());
    let member = f.m.address(STRANGER);
    let r = registrar.addMember(U256::from(1), member).send().await.unwrap();
    assert!(r.get_receipt().await.unwrap().status());
    f.catch_up().await;
}

async fn as_account(f: &Fixture, who: usize, call: alloy::rpc::types::TransactionRequest) {
    let wallet = f.m.wallet(who);
    let r = wallet.send_transaction(call).await.unwrap().get_receipt().await.unwrap();
    assert!(r.status(), "the transaction failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_to_a_group_reaches_its_member() {
    let mut f = fixture().await;
    join_group(&mut f, false).await;
    assert_eq!(f.get("/fhir/Observation", STRANGER).await.status, 403, "no grant yet");
    let rels = Relationships::new(f.m.at.relationships, f.m.wallet(PATIENT));
    let delegate = f.m.address(DELEGATE);
    let grant = rels.grant(
        delegate,
        group_address(1),
        1,
        Default::default(),
        alloy::primitives::aliases::U40::from(4_000_000_000u64),
        Default::default(),
    );
    as_account(&f, PATIENT, grant.into_transaction_request()).await;
    f.catch_up().await;
    assert_eq!(
        f.ids("/fhir/Observation", STRANGER).await,
        ["a1", "a3"],
        "the pointer, as for a viewer"
    );
    assert_eq!(f.get("/fhir/Condition/c1", STRANGER).await.status, 404, "nothing else");
    // As FHIR, the member sees the group's grant, not the viewer's grant beside it.
    let consents = f.get("/fhir/Consent", STRANGER).await;
    assert_eq!(consents.status, 200, "{}", consents.body);
    let entries = consents.body["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "only the grant that reaches the member: {}", consents.body);
    let actor = &entries[0]["resource"]["provision"]["actor"][0]["reference"];
    assert_eq!(actor["type"], "Group");
    assert_eq!(actor["identifier"]["value"], group_address(1).to_checksum(None).as_str());
    assert_eq!(f.ids("/fhir/Consent", PATIENT).await.len(), 2, "the patient sees both grants");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn break_glass_opens_the_emergency_set_logged_until_the_patient_refuses() {
    let mut f = fixture().await;
    join_group(&mut f, true).await;
    assert_eq!(f.get("/fhir/Condition", STRANGER).await.status, 403, "no opening yet");
    let rels = Relationships::new(f.m.at.relationships, f.m.wallet(STRANGER));
    let patient = f.m.address(PATIENT);
    let open = rels.breakGlass(patient, U256::from(1), EmergencyReason::Unconscious.code());
    as_account(&f, STRANGER, open.into_transaction_request()).await;
    f.catch_up().await;

    // The emergency set, and only it.
    assert_eq!(f.ids("/fhir/Condition", STRANGER).await, ["c1"]);
    assert_eq!(f.get("/fhir/Condition/c1", STRANGER).await.status, 200);
    assert!(f.ids("/fhir/Observation", STRANGER).await.is_empty(), "labs are not in the set");
    assert_eq!(f.get("/fhir/Observation/a1", STRANGER).await.status, 404);
    // Break-glass opens records, not the patient's grants, publications or log.
    for view in ["/fhir/Consent", "/fhir/Provenance", "/fhir/AuditEvent"] {
        assert_eq!(f.get(view, STRANGER).await.status, 403, "{view}");
    }
    assert_eq!(f.get("/fhir/Patient/p1", STRANGER).await.status, 404);
    f.gk.flush_access_log().await;
    let entries = f.log.entries(0, 100).await.unwrap();
    let by_clinician: Vec<String> = entries
        .iter()
        .filter(|e| e.entry.requester == f.m.address(STRANGER) && e.entry.decision.is_allowed())
        .map(|e| e.entry.decision.to_string())
        .collect();
    assert!(!by_clinician.is_empty());
    assert!(by_clinician.iter().all(|d| d == "allow-break-glass"), "{by_clinician:?}");
    assert!(
        entries
            .iter()
            .filter(|e| e.entry.decision.to_string() == "allow-break-glass")
            .all(|e| e.entry.relationship == Some(f.rel.0)),
        "each break-glass read names the relationship, so the patient sees it in their log"
    );
    let page = f.get("/audit", PATIENT).await;
    assert!(page.body.to_string().contains("allow-break-glass"), "{}", page.body);

    // The patient refuses break-glass: the opening ends at once.
    let by_patient = Relationships::new(f.m.at.relationships, f.m.wallet(PATIENT));
    as_account(&f, PATIENT, by_patient.setBreakGlass(false).into_transaction_request()).await;
    f.catch_up().await;
    assert_eq!(f.get("/fhir/Condition", STRANGER).await.status, 403);
}
