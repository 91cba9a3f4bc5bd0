//! Bad input: tampered or unpublished query texts, malformed paths and queries,
//! publishing by someone other than the provider.

use super::{
    Clinic, FIRST_PATIENT, HEART_RATE, PROVIDER, RESEARCHER_A, STRANGER, WINDOW, heart_rate,
    refused, sharp_policy,
};
use alloy::primitives::B256;
use medrec_devchain::node::SealMode;
use medrec_research::{
    policy::{Offer, Policy},
    query::{BountyQuery, commitment_of_text},
};

/// A stored text that no longer matches the commitment on chain, or a commitment to a
/// text the provider never published, releases nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_or_unpublished_bounty_text_is_rejected() {
    let clinic = Clinic::new("tamper", SealMode::Instant, 2, sharp_policy(1)).await;
    clinic.consent(0..2, true).await;
    let b = clinic.bounty(RESEARCHER_A, &heart_rate("mean")).await;
    assert_eq!(clinic.bounty_text(b.commitment).await.unwrap(), heart_rate("mean"));
    // Someone rewrites the published text behind the gatekeeper's back.
    let db = rusqlite::Connection::open(clinic.dir.join("research.db")).unwrap();
    let changed = db
        .execute(
            "UPDATE research_queries SET text = ?1 WHERE commitment = ?2",
            [heart_rate("count"), b.commitment.to_string()],
        )
        .unwrap();
    assert_eq!(changed, 1, "the row was rewritten");
    let (status, why) = refused(clinic.redeem(RESEARCHER_A, &b).await);
    assert_eq!(status, 409, "{why}");
    assert!(why.contains("does not match the commitment on chain"), "{why}");
    assert!(!clinic.released(&b), "nothing released");
    assert_eq!(clinic.spent(RESEARCHER_A), 0.0);
    let (status, why) = refused(clinic.bounty_text(b.commitment).await);
    assert_eq!(
        status, 409,
        "the gatekeeper does not serve a text that fails its commitment: {why}"
    );

    // A commitment on chain to a text never published.
    let unpublished = commitment_of_text(&heart_rate("sum"));
    let b = clinic
        .world
        .bounty_mined_by(clinic.world.address(RESEARCHER_A), FIRST_PATIENT, unpublished)
        .await;
    clinic.caught_up().await;
    let (status, why) = refused(clinic.redeem(RESEARCHER_A, &b).await);
    assert_eq!(status, 404, "{why}");
    assert!(why.contains("has not published the text"), "{why}");
    assert!(!clinic.released(&b));
    assert_eq!(clinic.spent(RESEARCHER_A), 0.0);
    clinic.shutdown().await;
}

/// Malformed ids, unknown bounties, bad or excluded or unoffered queries, and
/// publishing by someone other than the provider: clear errors, nothing released, and
/// the gatekeeper keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_clearly_and_the_gatekeeper_keeps_serving() {
    let offered = heart_rate("mean");
    let policy = Policy {
        offers: vec![Offer { name: "heart-rate".into(), query: offered.clone() }],
        ..sharp_policy(1)
    };
    let clinic = Clinic::new("bad-input", SealMode::Instant, 1, policy).await;
    clinic.consent([0], true).await;
    let rel = clinic.relationships[0];

    // Redemption paths.
    let cases = [
        ("/research/redeem/not-an-id/0".to_owned(), 400, "the path must be /research/redeem/"),
        (format!("/research/redeem/{}/first", rel.0), 400, "the path must be /research/redeem/"),
        (format!("/research/redeem/{}/-1", rel.0), 400, "the path must be /research/redeem/"),
        (format!("/research/redeem/{}/0", rel.0), 404, "there is no bounty"),
        (format!("/research/redeem/{}/0", B256::repeat_byte(7)), 404, "there is no bounty"),
    ];
    for (path, status, says) in &cases {
        let a = clinic.signed(RESEARCHER_A, "POST", path, b"").await;
        assert_eq!(a.status, *status, "{path}: {}", a.body);
        assert!(a.diagnostics().contains(says), "{path}: {}", a.body);
    }
    // Query texts.
    let a = clinic.signed(STRANGER, "GET", "/research/queries/xyz", b"").await;
    assert_eq!(a.status, 400, "{}", a.body);
    let unknown = format!("/research/queries/{}", B256::repeat_byte(9));
    let a = clinic.signed(STRANGER, "GET", &unknown, b"").await;
    assert_eq!(a.status, 404, "{}", a.body);
    assert!(a.diagnostics().contains("no query with that commitment"), "{}", a.body);

    // Publishing.
    let median = offered.replacen("mean", "median", 1);
    let excluded = format!(
        "mean(Observation.valueQuantity) where code = {HEART_RATE} and category = psychotherapy-notes and {WINDOW} and range 0..300"
    );
    let not_offered = heart_rate("count").replace("8867-4", "2498-4");
    let texts = [
        (median.as_str(), 400, "unknown aggregate 'median'"),
        ("", 400, "the query is empty"),
        (
            "mean(Observation.valueQuantity) where code = http://loinc.org|8867-4",
            400,
            "the query needs",
        ),
        (excluded.as_str(), 422, "excluded by the provider's policy"),
        (not_offered.as_str(), 422, "does not offer this query"),
    ];
    for (text, status, says) in texts {
        let (got, why) = refused(clinic.publish_as(PROVIDER, text).await);
        assert_eq!(got, status, "{text}: {why}");
        assert!(why.contains(says), "{text}: {why}");
    }
    let a = clinic.signed(PROVIDER, "PUT", "/research/queries", &[0xff, 0xfe, 0x00]).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.diagnostics().contains("UTF-8"), "{}", a.body);
    // A stranger the chain does not know is refused before any handler; an admitted
    // researcher by the route itself.
    for (who, says) in
        [(STRANGER, "nothing here for your address"), (RESEARCHER_A, "only the provider")]
    {
        let (got, why) = refused(clinic.publish_as(who, &offered).await);
        assert_eq!(got, 403, "{why}");
        assert!(why.contains(says), "{why}");
    }
    assert!(clinic.bounty_text(commitment_of_text(&offered)).await.is_err());
    assert_eq!(clinic.spent(RESEARCHER_A), 0.0, "nothing released");

    // Still serving: the policy, publishing the offered query, and a redemption.
    let policy = clinic.research_policy().await;
    assert_eq!(policy["k"], 1);
    assert_eq!(policy["offers"][0]["query"], offered.as_str());
    let commitment = offered.parse::<BountyQuery>().unwrap().commitment();
    assert_eq!(policy["offers"][0]["commitment"], commitment.to_string());
    let b = clinic.bounty(RESEARCHER_A, &offered).await;
    assert_eq!(b.commitment, commitment);
    let answer = clinic.redeem(RESEARCHER_A, &b).await.expect("served");
    assert_eq!(answer["release"]["query"], offered.as_str());
    clinic.shutdown().await;
}
