//! The inbox against the real contracts on the in-process devchain.

use alloy::primitives::keccak256;
use medrec_chain::inbox::{Notice, read, read_relationships, summarize};
use medrec_primitives::Status;
use medrec_testkit::medrec::{DELEGATE, Medrec, PATIENT, PROVIDER, STRANGER, VIEWER};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_party_sees_what_happened_to_its_relationships() {
    let m = Medrec::new().await;
    let rel = m.relate(keccak256("query"), keccak256("data")).await;
    m.grant(VIEWER).await;
    let chain = m.reader();
    let at = m.at.relationships;

    let patient = read(&chain, at, 0, m.address(PATIENT), 0, None).await.unwrap();
    assert!(patient.iter().all(|d| d.relationship == rel));
    let kinds: Vec<&Notice> = patient.iter().map(|d| &d.notice).collect();
    assert!(matches!(kinds[0], Notice::Created { patient, identity, .. }
        if *patient == m.address(PATIENT) && identity.len() == 36));
    assert_eq!(patient[0].actor, Some(m.address(PATIENT)), "every act names its key");
    assert!(
        kinds
            .iter()
            .any(|n| matches!(n, Notice::Granted { viewer, .. } if *viewer == m.address(VIEWER)))
    );
    assert!(patient.windows(2).all(|w| w[0].block <= w[1].block), "in chain order");

    // The chain does not name the provider: by its address it finds nothing; by the
    // relationship it knows (its delegate's), everything. The viewer sees only its grant;
    // a stranger nothing.
    assert!(read(&chain, at, 0, m.address(PROVIDER), 0, None).await.unwrap().is_empty());
    let ids = std::collections::BTreeSet::from([rel.0]);
    let provider = read_relationships(&chain, at, 0, &ids, 0, None).await.unwrap();
    assert_eq!(provider, patient);
    let viewer = read(&chain, at, 0, m.address(VIEWER), 0, None).await.unwrap();
    assert_eq!(viewer.len(), 1);
    assert!(matches!(viewer[0].notice, Notice::Granted { .. }));
    assert!(read(&chain, at, 0, m.address(STRANGER), 0, None).await.unwrap().is_empty());

    // The summary: accepted (the patient created it), one pointer, the viewer's grant;
    // revoked, the grant goes.
    let s = &summarize(&patient)[&rel];
    assert_eq!(s.status, Some(Status::Accepted));
    assert_eq!(s.delegate, Some(m.address(DELEGATE)));
    assert_eq!(s.pointers, vec![(keccak256("query"), keccak256("data"))]);
    assert!(s.grants.contains_key(&m.address(VIEWER)));
    m.revoke(VIEWER).await;
    let after = read(&chain, at, 0, m.address(PATIENT), 0, None).await.unwrap();
    assert!(summarize(&after)[&rel].grants.is_empty());
    // A stranger's revocation is recorded on chain but is not the patient's: left out.
    m.grant(VIEWER).await;
    m.revoke_as(STRANGER, VIEWER).await;
    let now = read(&chain, at, 0, m.address(PATIENT), 0, None).await.unwrap();
    assert!(summarize(&now)[&rel].grants.contains_key(&m.address(VIEWER)));
    m.revoke(VIEWER).await;
    let after = read(&chain, at, 0, m.address(PATIENT), 0, None).await.unwrap();
    let viewer = read(&chain, at, 0, m.address(VIEWER), 0, None).await.unwrap();
    assert!(matches!(viewer.last().unwrap().notice, Notice::Revoked { .. }));
    // A later block range holds only what happened since.
    let head = after.last().unwrap().block;
    let since = read(&chain, at, 0, m.address(PATIENT), head, None).await.unwrap();
    assert_eq!(since.len(), 1);
}
