//! The provider's policy: defaults, files, exclusions and offers.

use crate::{day, temp_path};
use medrec_research::{
    policy::{Offer, Policy, PolicyError},
    query::BountyQuery,
};

const WEEKLY_IRON: &str = "mean(Observation.valueQuantity) where code = http://loinc.org|2498-4 and category = laboratory and date in last 7 days and range 0..500 group by sex";

fn q(text: &str) -> BountyQuery {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn offering() -> Policy {
    Policy {
        offers: vec![Offer { name: "weekly-iron".into(), query: WEEKLY_IRON.into() }],
        ..Policy::default()
    }
}

#[test]
fn defaults_are_the_documented_ones() {
    let p = Policy::default();
    assert_eq!(p.k, 10);
    assert_eq!(p.epsilon_per_bounty, 0.5);
    assert_eq!(p.budget_per_researcher, 5.0);
    assert_eq!(p.max_values_per_patient, 1);
    for c in ["psychotherapy-notes", "behavioral-health", "substance-use", "sexual-health"] {
        assert!(p.excluded_categories.iter().any(|e| e == c), "{c}");
    }
    assert!(p.offers.is_empty());
}

#[test]
fn excluded_categories_and_codes_are_refused() {
    let mut p = Policy::default();
    p.excluded_codes.push("http://loinc.org|11349-9".into());
    let text = |extra: &str| {
        format!(
            "count(Observation.valueQuantity) where code = {extra} and date >= 2026-01-01 and date < 2026-02-01 and range 0..100"
        )
    };
    let err = p
        .check(&q(&format!(
            "{} and category = psychotherapy-notes",
            text("http://loinc.org|2498-4")
        )))
        .expect_err("excluded category");
    assert!(matches!(err, PolicyError::ExcludedCategory(_)));
    assert_eq!(
        err.to_string(),
        "category 'psychotherapy-notes' is excluded by the provider's policy and is never released"
    );
    let err = p
        .check(&q(&format!("{} and category = http://example.org/cat|Substance-Use", text("a|b"))))
        .expect_err("excluded category with a system");
    assert!(matches!(err, PolicyError::ExcludedCategory(_)));
    let err = p.check(&q(&text("http://loinc.org|11349-9"))).expect_err("excluded code");
    assert_eq!(
        err.to_string(),
        "code 'http://loinc.org|11349-9' is excluded by the provider's policy and is never released"
    );
    p.check(&q(&text("http://loinc.org|2498-4"))).expect("allowed with no offers listed");
}

#[test]
fn only_offered_queries_pass_when_offers_are_listed() {
    let p = offering();
    // Any 7-day window of the offered shape.
    p.check(&q("mean(Observation.valueQuantity) where code = http://loinc.org|2498-4 and category = laboratory and date >= 2025-03-03 and date < 2025-03-10 and range 0..500 group by sex")).expect("offered");
    for other in [
        // another window length
        "mean(Observation.valueQuantity) where code = http://loinc.org|2498-4 and category = laboratory and date >= 2025-03-03 and date < 2025-03-11 and range 0..500 group by sex",
        // another grouping
        "mean(Observation.valueQuantity) where code = http://loinc.org|2498-4 and category = laboratory and date >= 2025-03-03 and date < 2025-03-10 and range 0..500 group by sex, age_band",
        // another aggregate
        "sum(Observation.valueQuantity) where code = http://loinc.org|2498-4 and category = laboratory and date >= 2025-03-03 and date < 2025-03-10 and range 0..500 group by sex",
        // another range
        "mean(Observation.valueQuantity) where code = http://loinc.org|2498-4 and category = laboratory and date >= 2025-03-03 and date < 2025-03-10 and range 0..5000 group by sex",
    ] {
        let err = p.check(&q(other)).expect_err(other);
        assert_eq!(
            err.to_string(),
            "the provider does not offer this query; it offers: weekly-iron"
        );
    }
}

#[test]
fn offers_resolve_for_a_day() {
    let p = offering();
    let q = p.offer("weekly-iron", day(2026, 1, 15)).expect("offered");
    assert_eq!(
        q.canonical(),
        "mean(Observation.valueQuantity) where code = http://loinc.org|2498-4 and category = laboratory and date >= 2026-01-08 and date < 2026-01-15 and range 0..500 group by sex"
    );
    p.check(&q).expect("a resolved offer passes its policy");
    assert!(p.offer("nothing", day(2026, 1, 15)).is_none());
}

#[test]
fn policy_files_load_with_defaults_and_are_checked() {
    let path = temp_path("policy.json");
    let json = serde_json::json!({
        "k": 5,
        "offers": [{"name": "weekly-iron", "query": WEEKLY_IRON}],
    });
    std::fs::write(&path, json.to_string()).expect("write");
    let p = Policy::load(&path).expect("loads");
    assert_eq!(p.k, 5);
    assert_eq!(p.epsilon_per_bounty, 0.5);
    assert_eq!(p.offers.len(), 1);

    let bad = [
        (serde_json::json!({"k": 0}), "invalid research policy: k must be at least 1"),
        (
            serde_json::json!({"epsilon_per_bounty": -1.0}),
            "invalid research policy: epsilon_per_bounty must be a positive number",
        ),
        (
            serde_json::json!({"offers": [{"name": "x", "query": "median(Observation.valueQuantity)"}]}),
            "the offered query 'x' is not valid: unknown aggregate 'median': use count, sum, mean, min, max, quantiles(...) or histogram(...)",
        ),
        (
            serde_json::json!({"offers": [{"name": "notes", "query": "count(Observation.valueQuantity) where code = a|b and category = psychotherapy-notes and date in last 7 days and range 0..1"}]}),
            "category 'psychotherapy-notes' is excluded by the provider's policy and is never released",
        ),
    ];
    for (json, message) in bad {
        std::fs::write(&path, json.to_string()).expect("write");
        assert_eq!(Policy::load(&path).expect_err("invalid").to_string(), message);
    }
    std::fs::write(&path, "{\"kk\": 3}").expect("write");
    assert!(matches!(Policy::load(&path), Err(PolicyError::Json { .. })));
    let missing = temp_path("no-such-policy.json");
    assert!(matches!(Policy::load(&missing), Err(PolicyError::Read { .. })));
}
