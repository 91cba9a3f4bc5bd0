//! Privacy: only opted-in patients contribute, small cohorts are suppressed, and each
//! researcher's ε budget holds.

use super::{
    Clinic, RESEARCHER_A, RESEARCHER_B, heart_rate, refused, sharp_policy, single_cell,
    single_value,
};
use medrec_devchain::node::SealMode;
use medrec_research::policy::Policy;

/// Only the patients opted in at redemption time contribute: compared with the exact
/// computation over the opted-in patients only (and shown to differ from including
/// the others).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opted_out_patients_never_contribute() {
    const N: usize = 14;
    let clinic = Clinic::new("opt-out", SealMode::Instant, N, sharp_policy(10)).await;
    let (count, mean) = (heart_rate("count"), heart_rate("mean"));
    assert_eq!(clinic.exact_over(&count, 0..N), (N, N as f64), "every patient has values");

    // Patients 0..11 opt in; 11..14 never do.
    clinic.consent(0..11, true).await;
    let b = clinic.bounty(RESEARCHER_A, &count).await;
    let answer = clinic.redeem(RESEARCHER_A, &b).await.expect("served");
    assert_eq!(single_value(&answer["release"]), 11.0, "the eleven opted in: {answer}");

    // Patient 10 opts out again: from now on, ten.
    clinic.consent([10], false).await;
    let b = clinic.bounty(RESEARCHER_A, &count).await;
    let answer = clinic.redeem(RESEARCHER_A, &b).await.expect("served");
    assert_eq!(single_value(&answer["release"]), 10.0, "patient 10 left: {answer}");

    let (patients, opted_in) = clinic.exact_over(&mean, 0..10);
    assert_eq!(patients, 10);
    let (_, with_10) = clinic.exact_over(&mean, 0..11);
    let (_, everyone) = clinic.exact_over(&mean, 0..N);
    // The check below can tell the cohorts apart.
    assert!((with_10 - opted_in).abs() > 0.01, "{with_10} vs {opted_in}");
    assert!((everyone - opted_in).abs() > 0.01, "{everyone} vs {opted_in}");
    let b = clinic.bounty(RESEARCHER_A, &mean).await;
    let answer = clinic.redeem(RESEARCHER_A, &b).await.expect("served");
    let released = single_value(&answer["release"]);
    assert!(
        (released - opted_in).abs() < 0.001,
        "released {released}, exact over the opted-in {opted_in} (with patient 10: {with_10}, everyone: {everyone})"
    );
    clinic.shutdown().await;
}

/// A cohort below k (10) is suppressed: no value; at k it is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cohort_below_k_is_suppressed() {
    let clinic = Clinic::new("below-k", SealMode::Instant, 10, sharp_policy(10)).await;
    let text = heart_rate("mean");
    clinic.consent(0..9, true).await;
    let b = clinic.bounty(RESEARCHER_A, &text).await;
    let answer = clinic.redeem(RESEARCHER_A, &b).await.expect("answered");
    let cell = single_cell(&answer["release"]);
    assert_eq!(cell["suppressed"], true, "{answer}");
    assert!(cell["value"].is_null(), "no value below k: {answer}");
    assert_eq!(answer["k"], 10);
    let (patients, exact_mean) = clinic.exact_over(&text, 0..9);
    assert_eq!(patients, 9, "nine contributed");
    assert!(!answer.to_string().contains(&format!("{exact_mean}")), "{answer}");

    clinic.consent([9], true).await;
    let b = clinic.bounty(RESEARCHER_A, &text).await;
    let answer = clinic.redeem(RESEARCHER_A, &b).await.expect("answered");
    let (_, exact_mean) = clinic.exact_over(&text, 0..10);
    assert!((single_value(&answer["release"]) - exact_mean).abs() < 0.001, "{answer}");
    clinic.shutdown().await;
}

/// Asking again returns the stored answer and spends nothing; an exhausted budget is
/// refused and releases nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_are_free_and_an_exhausted_budget_is_refused() {
    let policy =
        Policy { k: 1, epsilon_per_bounty: 0.5, budget_per_researcher: 1.0, ..Policy::default() };
    let clinic = Clinic::new("budget", SealMode::Instant, 3, policy).await;
    clinic.consent(0..3, true).await;
    let text = heart_rate("mean");
    let first = clinic.bounty(RESEARCHER_A, &text).await;
    let answer = clinic.redeem(RESEARCHER_A, &first).await.expect("served");
    assert_eq!(
        (&answer["epsilon"], &answer["spent"], &answer["replayed"]),
        (&0.5.into(), &0.5.into(), &false.into())
    );
    assert_eq!(clinic.spent(RESEARCHER_A), 0.5);
    for _ in 0..3 {
        let again = clinic.redeem(RESEARCHER_A, &first).await.expect("served again");
        assert_eq!(again["release"], answer["release"], "the same noisy answer");
        assert_eq!(again["replayed"], true);
        assert_eq!(clinic.spent(RESEARCHER_A), 0.5, "asking again spends nothing");
    }
    let second = clinic.bounty(RESEARCHER_A, &text).await;
    clinic.redeem(RESEARCHER_A, &second).await.expect("within the budget");
    assert_eq!(clinic.spent(RESEARCHER_A), 1.0);

    let third = clinic.bounty(RESEARCHER_A, &text).await;
    let (status, why) = refused(clinic.redeem(RESEARCHER_A, &third).await);
    assert_eq!(status, 403, "{why}");
    assert!(why.contains("privacy budget is exhausted"), "{why}");
    assert!(why.contains("1 of 1 spent"), "{why}");
    assert!(!clinic.released(&third), "nothing released");
    assert_eq!(clinic.spent(RESEARCHER_A), 1.0, "nothing spent");
    // The stored answers stay available; another researcher has its own budget.
    let again = clinic.redeem(RESEARCHER_A, &first).await.expect("a replay spends nothing");
    assert_eq!(again["release"], answer["release"]);
    let other = clinic.bounty(RESEARCHER_B, &text).await;
    clinic.redeem(RESEARCHER_B, &other).await.expect("B's budget is B's");
    assert_eq!(clinic.spent(RESEARCHER_B), 0.5);
    clinic.shutdown().await;
}

/// Each patient's ε budget is shared by every researcher: once two researchers' releases
/// have spent it, that patient is left out of any later release, whoever asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patients_budget_is_spent_across_researchers() {
    use super::SHARP;
    let policy = Policy { budget_per_patient: Some(2.0 * SHARP), ..sharp_policy(1) };
    let clinic = Clinic::new("patient-budget", SealMode::Instant, 3, policy).await;
    clinic.consent(0..3, true).await;
    let count = heart_rate("count");
    let first = clinic.bounty(RESEARCHER_A, &count).await;
    let answer = clinic.redeem(RESEARCHER_A, &first).await.expect("served");
    assert_eq!(single_value(&answer["release"]), 3.0, "all three: {answer}");
    assert_eq!(answer["patient_budget"], 2.0 * SHARP, "the budget in force is stated");
    let second = clinic.bounty(RESEARCHER_B, &count).await;
    let answer = clinic.redeem(RESEARCHER_B, &second).await.expect("served");
    assert_eq!(single_value(&answer["release"]), 3.0, "another researcher, same patients");
    // Each patient has now spent 2 ε-units of 2: researcher A's own budget is far from
    // spent, but no patient may contribute to a third release.
    let third = clinic.bounty(RESEARCHER_A, &count).await;
    let answer = clinic.redeem(RESEARCHER_A, &third).await.expect("answered");
    let cell = single_cell(&answer["release"]);
    assert_eq!(cell["suppressed"], true, "nobody left to count: {answer}");
    assert!(cell["value"].is_null(), "{answer}");
    assert!(clinic.spent(RESEARCHER_A) < SHARP * 1e6, "the researcher's budget was not the limit");
    // Patient 0 leaves research on that relationship and takes a new one with this
    // provider, opted in: the budget is the patient's, not the relationship's, so it is
    // not fresh.
    clinic.consent([0], false).await;
    clinic.second_relationship(0).await;
    let fourth = clinic.bounty(RESEARCHER_B, &count).await;
    let answer = clinic.redeem(RESEARCHER_B, &fourth).await.expect("answered");
    assert_eq!(single_cell(&answer["release"])["suppressed"], true, "still nobody: {answer}");
    clinic.shutdown().await;
}
