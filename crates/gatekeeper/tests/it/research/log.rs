//! The access log of releases.

use super::{
    Clinic, FIRST_PATIENT, RESEARCHER_A, RESEARCHER_B, SHARP, heart_rate, refused, sharp_policy,
};
use alloy::primitives::{Address, B256};
use medrec_devchain::node::SealMode;
use medrec_store::audit::{AccessLog, Action, Decision, sqlite::SqliteAccessLog};
use serde_json::Value;

/// Every release is in the access log, once per contributing relationship, with its
/// ε; contributing patients see it, others do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_release_is_in_the_access_log_with_its_epsilon() {
    let clinic = Clinic::new("log", SealMode::Instant, 3, sharp_policy(1)).await;
    clinic.consent(0..2, true).await;
    let b = clinic.bounty(RESEARCHER_A, &heart_rate("mean")).await;
    let answer = clinic.redeem(RESEARCHER_A, &b).await.expect("served");
    let epsilon = answer["epsilon"].as_f64().unwrap();
    assert_eq!(epsilon, SHARP);
    clinic.redeem(RESEARCHER_A, &b).await.expect("a replay");
    refused(clinic.redeem(RESEARCHER_B, &b).await);
    clinic.gk.flush_access_log().await;

    // Through GET /audit, as each patient.
    let researcher = clinic.world.address(RESEARCHER_A);
    for i in 0..3 {
        let entries = clinic.audit(FIRST_PATIENT + i).await;
        let releases: Vec<&Value> =
            entries.iter().filter(|e| e["action"] == "bounty-redemption").collect();
        if i == 2 {
            assert!(releases.is_empty(), "an opted-out patient's data was not used: {releases:?}");
            continue;
        }
        assert_eq!(releases.len(), 1, "patient {i}: one release: {releases:?}");
        let e = releases[0];
        assert_eq!(e["decision"], "allow-researcher");
        assert_eq!(e["requester"].as_str().unwrap().parse::<Address>().unwrap(), researcher);
        let about: B256 = e["relationship"].as_str().unwrap().parse().unwrap();
        assert_eq!(about, clinic.relationships[i].0);
        assert_eq!(e["epsilon_bits"], epsilon.to_bits().to_string(), "{e}");
    }

    // Through the store's access log.
    let log = SqliteAccessLog::open(clinic.dir.join("records.db")).unwrap();
    let all = log.entries(0, 1000).await.unwrap();
    let redemptions: Vec<_> =
        all.iter().map(|e| &e.entry).filter(|e| e.action == Action::BountyRedemption).collect();
    let released: Vec<_> = redemptions
        .iter()
        .filter(|e| e.decision == Decision::AllowResearcher && e.epsilon.is_some())
        .collect();
    assert_eq!(released.len(), 2, "one entry per contributing relationship");
    let mut about: Vec<B256> = released.iter().map(|e| e.relationship.unwrap()).collect();
    about.sort();
    let mut expected = vec![clinic.relationships[0].0, clinic.relationships[1].0];
    expected.sort();
    assert_eq!(about, expected);
    assert!(released.iter().all(|e| e.epsilon == Some(SHARP) && e.requester == researcher));
    let replays = redemptions
        .iter()
        .filter(|e| e.decision == Decision::AllowResearcher && e.epsilon.is_none())
        .count();
    assert_eq!(replays, 1, "the replay is logged, spending nothing");
    let refusals: Vec<_> =
        redemptions.iter().filter(|e| e.decision.to_string() == "deny:not-owner").collect();
    assert_eq!(refusals.len(), 1);
    assert_eq!(refusals[0].requester, clinic.world.address(RESEARCHER_B));
    clinic.shutdown().await;
}
