//! Aggregates: the selection against a hand computation, k-anonymity, the shape of
//! releases.

use crate::{day, observation, person};
use medrec_research::{
    aggregate::{Answer, PatientData, exact, release},
    policy::Policy,
    query::BountyQuery,
};
use medrec_synth::{self as synthetic, Options};
use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
use serde_json::json;
use std::collections::BTreeMap;

fn q(text: &str) -> BountyQuery {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn synthetic_cohort(patients: usize) -> Vec<PatientData> {
    synthetic::generate(&Options { patients, years: 5, seed: 11, ..Options::default() })
        .into_iter()
        .map(|r| PatientData { patient: r.patient, resources: r.resources })
        .collect()
}

/// The two most recent glucose values of each patient in 2023-2025, clamped to
/// 50..200, computed directly from the JSON without the crate's code.
fn hand_glucose(cohort: &[PatientData]) -> (usize, Vec<f64>) {
    let mut patients = 0;
    let mut all = Vec::new();
    for p in cohort {
        let mut mine: Vec<(String, f64)> = Vec::new();
        for r in &p.resources {
            if r["resourceType"] != "Observation"
                || r["code"]["coding"][0]["code"] != "2345-7"
                || r["category"][0]["coding"][0]["code"] != "laboratory"
            {
                continue;
            }
            let when = r["effectiveDateTime"].as_str().expect("a date").to_owned();
            if when.as_str() < "2023-01-01" || when.as_str() >= "2026-01-01" {
                continue;
            }
            mine.push((when, r["valueQuantity"]["value"].as_f64().expect("a value")));
        }
        mine.sort_by(|a, b| b.0.cmp(&a.0));
        mine.truncate(2);
        if !mine.is_empty() {
            patients += 1;
        }
        all.extend(mine.into_iter().map(|(_, v)| v.clamp(50.0, 200.0)));
    }
    all.sort_by(f64::total_cmp);
    (patients, all)
}

#[test]
fn exact_equals_a_hand_computation_on_a_synthetic_cohort() {
    let cohort = synthetic_cohort(40);
    let policy = Policy { max_values_per_patient: 2, ..Policy::default() };
    let (patients, values) = hand_glucose(&cohort);
    assert!(patients >= 10, "the synthetic cohort has glucose values: {patients}");
    let n = values.len();
    let sum: f64 = values.iter().sum();
    let base = "where code = http://loinc.org|2345-7 and category = laboratory and date >= 2023-01-01 and date < 2026-01-01 and range 50..200";
    let as_of = day(2026, 1, 1);

    let cell = |text: &str| {
        let r = exact(&q(text), &policy, &cohort, as_of);
        assert_eq!(r.cells.len(), 1);
        let cell = r.cells.into_iter().next().expect("one cell");
        assert_eq!(cell.patients, patients);
        assert_eq!(cell.values, values);
        assert!(cell.group.is_empty());
        cell.answer
    };
    assert_eq!(
        cell(&format!("count(Observation.valueQuantity) {base}")),
        Some(Answer::Count(n as u64))
    );
    assert_eq!(cell(&format!("sum(Observation.valueQuantity) {base}")), Some(Answer::Sum(sum)));
    assert_eq!(
        cell(&format!("mean(Observation.valueQuantity) {base}")),
        Some(Answer::Mean(sum / n as f64))
    );
    assert_eq!(
        cell(&format!("min(Observation.valueQuantity) {base}")),
        Some(Answer::Min(values[0]))
    );
    assert_eq!(
        cell(&format!("max(Observation.valueQuantity) {base}")),
        Some(Answer::Max(values[n - 1]))
    );
    let median = values[(n as f64 * 0.5).ceil() as usize - 1];
    match cell(&format!("quantiles(Observation.valueQuantity, 50) {base}")) {
        Some(Answer::Quantiles(qs)) => assert_eq!(qs[0].value, median),
        other => panic!("{other:?}"),
    }
    match cell(&format!("histogram(Observation.valueQuantity, 50) {base}")) {
        Some(Answer::Histogram(bins)) => {
            let counts: Vec<u64> = bins.iter().map(|b| b.count).collect();
            let hand = [
                values.iter().filter(|v| **v < 100.0).count() as u64,
                values.iter().filter(|v| (100.0..150.0).contains(*v)).count() as u64,
                values.iter().filter(|v| **v >= 150.0).count() as u64,
            ];
            assert_eq!(counts, hand);
        }
        other => panic!("{other:?}"),
    }

    // Grouped cells partition the same patients and values.
    let grouped = exact(
        &q(&format!("count(Observation.valueQuantity) {base} group by sex, age_band")),
        &policy,
        &cohort,
        as_of,
    );
    assert_eq!(grouped.cells.len(), 4 * 12);
    assert_eq!(grouped.cells.iter().map(|c| c.patients).sum::<usize>(), patients);
    assert_eq!(grouped.cells.iter().map(|c| c.values.len()).sum::<usize>(), n);
}

#[test]
fn selection_follows_the_rules() {
    let iron = "http://loinc.org|2498-4";
    let resources = vec![
        observation("a", "2498-4", "laboratory", "2026-01-10", 80.0),
        // the most recent in the window: chosen with max_values_per_patient 1
        observation("b", "2498-4", "laboratory", "2026-01-12", 90.0),
        // outside the window (the end is exclusive)
        observation("c", "2498-4", "laboratory", "2026-01-15", 95.0),
        observation("d", "2498-4", "laboratory", "2026-01-07", 96.0),
        // another code
        observation("e", "718-7", "laboratory", "2026-01-13", 12.0),
        // an excluded category
        observation("f", "2498-4", "behavioral-health", "2026-01-14", 70.0),
    ];
    let mut entered_in_error = observation("g", "2498-4", "laboratory", "2026-01-14", 60.0);
    entered_in_error["status"] = json!("entered-in-error");
    let mut with_excluded_category_too =
        observation("h", "2498-4", "laboratory", "2026-01-14", 50.0);
    with_excluded_category_too["category"]
        .as_array_mut()
        .expect("categories")
        .push(json!({"coding": [{"code": "sexual-health"}]}));
    let mut all = resources;
    all.push(entered_in_error);
    all.push(with_excluded_category_too);
    let cohort = vec![person("female", "1980-05-05", all)];
    let text = format!(
        "count(Observation.valueQuantity) where code = {iron} and date >= 2026-01-08 and date < 2026-01-15 and range 0..85"
    );
    let as_of = day(2026, 1, 15);

    let one = exact(&q(&text), &Policy::default(), &cohort, as_of);
    assert_eq!(one.cells[0].values, vec![85.0], "the latest value, clamped to the range");
    let many = Policy { max_values_per_patient: 10, ..Policy::default() };
    let all = exact(&q(&text), &many, &cohort, as_of);
    assert_eq!(all.cells[0].values, vec![80.0, 85.0]);
    assert_eq!(all.cells[0].patients, 1);
    let codes = Policy { excluded_codes: vec![iron.into()], ..many };
    assert!(exact(&q(&text), &codes, &cohort, as_of).cells[0].values.is_empty());
}

/// `n` patients of one sex, each with one iron value.
fn iron_patients(sex: &str, n: usize, value: f64) -> Vec<PatientData> {
    (0..n)
        .map(|i| {
            person(
                sex,
                "1980-01-01",
                vec![observation(
                    &format!("{sex}-{i}"),
                    "2498-4",
                    "laboratory",
                    "2026-01-10",
                    value,
                )],
            )
        })
        .collect()
}

#[test]
fn cells_below_k_are_suppressed_and_cells_at_k_released() {
    // With the default ε the decision is noisy within k ± L (L = 4 for k = 10): a cell
    // of k + L patients is always released and one of k − L − 1 never; the exact
    // boundary at k is checked below with an ε so large that the noise vanishes.
    let policy = Policy::default();
    let spread = (policy.k - 1) / 2;
    let mut cohort = iron_patients("female", policy.k + spread, 100.0);
    cohort.extend(iron_patients("male", policy.k - spread - 1, 120.0));
    let text = "mean(Observation.valueQuantity) where code = http://loinc.org|2498-4 and date >= 2026-01-08 and date < 2026-01-15 and range 0..500 group by sex";
    for seed in 0..20 {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let r = release(&q(text), &policy, &cohort, day(2026, 1, 15), &mut rng).expect("released");
        assert_eq!(r.query, text);
        assert_eq!(r.epsilon, 0.5);
        assert_eq!(r.patient_budget, Some(policy.patient_budget()));
        let by_sex: BTreeMap<&str, _> =
            r.cells.iter().map(|c| (c.group["sex"].as_str(), c)).collect();
        assert_eq!(
            by_sex.keys().copied().collect::<Vec<_>>(),
            ["female", "male", "other", "unknown"]
        );
        let female = by_sex["female"];
        assert!(!female.suppressed);
        match female.value {
            Some(Answer::Mean(m)) => assert!((0.0..=500.0).contains(&m)),
            ref other => panic!("{other:?}"),
        }
        for sex in ["male", "other", "unknown"] {
            assert!(by_sex[sex].suppressed, "{sex}");
            assert_eq!(by_sex[sex].value, None);
        }
    }

    // Without noise (ε 10⁶): exactly k patients are released and k − 1 suppressed.
    let sharp = Policy { epsilon_per_bounty: 1e6, ..Policy::default() };
    let mut cohort = iron_patients("female", sharp.k, 100.0);
    cohort.extend(iron_patients("male", sharp.k - 1, 120.0));
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let r = release(&q(text), &sharp, &cohort, day(2026, 1, 15), &mut rng).expect("released");
    let by_sex: BTreeMap<&str, _> = r.cells.iter().map(|c| (c.group["sex"].as_str(), c)).collect();
    assert!(!by_sex["female"].suppressed);
    for sex in ["male", "other", "unknown"] {
        assert!(by_sex[sex].suppressed, "{sex}");
        assert_eq!(by_sex[sex].value, None);
    }

    // Ungrouped, the whole cohort is one cell: 19 patients pass k = 10 (19 ≥ k + L),
    // but k = 20 suppresses it (sharp), and so does k = 40 at the default ε
    // (19 < k − L = 21).
    let whole = "count(Observation.valueQuantity) where code = http://loinc.org|2498-4 and date >= 2026-01-08 and date < 2026-01-15 and range 0..500";
    let r = release(&q(whole), &policy, &cohort, day(2026, 1, 15), &mut rng).expect("released");
    assert_eq!(r.cells.len(), 1);
    assert!(!r.cells[0].suppressed);
    let strict = Policy { k: 20, ..sharp };
    let r = release(&q(whole), &strict, &cohort, day(2026, 1, 15), &mut rng).expect("released");
    assert!(r.cells[0].suppressed);
    assert_eq!(r.cells[0].value, None);
    let strict = Policy { k: 40, ..Policy::default() };
    let r = release(&q(whole), &strict, &cohort, day(2026, 1, 15), &mut rng).expect("released");
    assert!(r.cells[0].suppressed);
}

#[test]
fn releases_are_reproducible_from_a_seed_and_stable_json() {
    let cohort = synthetic_cohort(60);
    let policy = Policy { k: 5, ..Policy::default() };
    let texts = [
        "quantiles(Observation.valueQuantity, 25, 50, 75) where code = http://loinc.org|2345-7 and date >= 2021-01-01 and date < 2026-01-01 and range 50..200",
        "histogram(Observation.valueQuantity, 25) where code = http://loinc.org|2345-7 and date >= 2021-01-01 and date < 2026-01-01 and range 50..200 group by sex",
        "max(Observation.valueQuantity) where code = http://loinc.org|2345-7 and date >= 2021-01-01 and date < 2026-01-01 and range 50..200 group by age_band",
    ];
    for text in texts {
        let run = |seed| {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            release(&q(text), &policy, &cohort, day(2026, 1, 1), &mut rng).expect("released")
        };
        let (a, b, c) = (run(5), run(5), run(6));
        assert_eq!(a, b);
        assert_ne!(a, c, "another seed gives other noise");
        let json = serde_json::to_string(&a).expect("json");
        assert_eq!(
            serde_json::from_str::<medrec_research::aggregate::Release>(&json).expect("back"),
            a
        );
        for cell in &a.cells {
            match &cell.value {
                Some(Answer::Quantiles(qs)) => {
                    assert_eq!(qs.iter().map(|q| q.p).collect::<Vec<_>>(), [25.0, 50.0, 75.0]);
                    assert!(qs.windows(2).all(|w| w[0].value <= w[1].value));
                    assert!(qs.iter().all(|q| (50.0..=200.0).contains(&q.value)));
                }
                Some(Answer::Histogram(bins)) => {
                    assert_eq!(bins.len(), 6);
                    assert_eq!((bins[0].from, bins[5].to), (50.0, 200.0));
                }
                Some(Answer::Max(m)) => assert!((50.0..=200.0).contains(m)),
                None => assert!(cell.suppressed),
                other => panic!("{other:?}"),
            }
        }
    }
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let r = release(&q(texts[0]), &policy, &cohort, day(2026, 1, 1), &mut rng).expect("released");
    let json = serde_json::to_value(&r).expect("json");
    assert_eq!(json["cells"][0]["group"], json!({}));
    assert!(json["cells"][0]["value"]["quantiles"].is_array());
}

#[test]
fn hand_built_invalid_queries_are_refused_not_panicking() {
    let mut query = q(
        "mean(Observation.valueQuantity) where code = http://loinc.org|2498-4 and date >= 2026-01-08 and date < 2026-01-15 and range 0..500",
    );
    query.lo = 600.0;
    let cohort = crate::iron_cohort(12);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let err = release(&query, &Policy::default(), &cohort, day(2026, 1, 15), &mut rng)
        .expect_err("inverted range");
    assert_eq!(
        err.to_string(),
        "the query is not valid: the range is empty or inverted: 600 is not below 500"
    );
    query.lo = f64::NAN;
    assert!(release(&query, &Policy::default(), &cohort, day(2026, 1, 15), &mut rng).is_err());
    // The exact computation does not panic either.
    let _ = exact(&query, &Policy::default(), &cohort, day(2026, 1, 15));
}
