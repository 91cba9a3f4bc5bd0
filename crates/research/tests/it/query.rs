//! The language: canonical texts, commitments and errors.

use crate::day;
use alloy_primitives::{b256, keccak256};
use medrec_research::query::{
    Aggregate, BountyQuery, COMMITMENT_DOMAIN, QueryError, commitment_of_text,
};

const IRON: &str = "mean(Observation.valueQuantity) where code = http://loinc.org|2498-4 and category = laboratory and date >= 2026-01-08 and date < 2026-01-15 and range 0..500 group by sex";

#[test]
fn canonical_texts_round_trip() {
    let texts = [
        IRON,
        "count(Observation.valueQuantity) where code = http://loinc.org|2345-7 and date >= 2025-01-01 and date < 2026-01-01 and range 0..1000",
        "sum(Observation.valueQuantity) where code = http://loinc.org|2345-7 and date >= 2025-01-01 and date < 2026-01-01 and range -5.25..1000 group by age_band",
        "min(Observation.valueQuantity) where code = http://loinc.org|718-7 and category = http://terminology.hl7.org/CodeSystem/observation-category|laboratory and date >= 2025-01-01 and date < 2025-01-02 and range 0..25",
        "max(Observation.valueQuantity) where code = http://loinc.org|718-7 and date >= 2024-02-29 and date < 2025-03-01 and range 0..25 group by sex, age_band",
        "quantiles(Observation.valueQuantity, 0, 2.5, 50, 97.5, 100) where code = http://loinc.org|4548-4 and date >= 2025-01-01 and date < 2026-01-01 and range 3..15",
        "histogram(Observation.valueQuantity, 0.5) where code = http://loinc.org|4548-4 and date >= 2025-01-01 and date < 2026-01-01 and range 3..15 group by sex",
    ];
    for text in texts {
        let q: BountyQuery = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(q.canonical(), text);
        assert_eq!(q.canonical().parse::<BountyQuery>().expect("reparses"), q);
        assert_eq!(q.commitment(), commitment_of_text(text));
    }
}

#[test]
fn lenient_text_has_the_same_commitment_as_its_canonical_form() {
    let loose = "Mean( Observation.valueQuantity )\n WHERE Date >= 2026-01-08 AND date<2026-01-15\tand range 0 .. 500.0 and code=http://loinc.org|2498-4 and CATEGORY = laboratory GROUP BY SEX";
    let q: BountyQuery = loose.parse().expect("parses");
    assert_eq!(q.canonical(), IRON);
    assert_eq!(q.commitment(), commitment_of_text(IRON));
    // The commitment of a text is of the text as given: a loose text differs.
    assert_ne!(commitment_of_text(loose), q.commitment());
}

#[test]
fn commitment_is_stable_and_domain_separated() {
    let q: BountyQuery = IRON.parse().expect("parses");
    // Fixed for all time: changing it breaks every commitment already on chain.
    assert_eq!(
        q.commitment(),
        b256!("0xe8309b7ea151641ecd6e9028128e102fdd741edb05c281ce607f0ea460f0586d")
    );
    let mut bytes = COMMITMENT_DOMAIN.to_vec();
    bytes.extend_from_slice(IRON.as_bytes());
    assert_eq!(q.commitment(), keccak256(&bytes));
    assert_ne!(q.commitment(), keccak256(IRON.as_bytes()));
}

#[test]
fn relative_windows_become_absolute() {
    let text = "mean(Observation.valueQuantity) where code = http://loinc.org|2498-4 and category = laboratory and date in last 7 days and range 0..500 group by sex";
    let q = BountyQuery::parse_relative(text, day(2026, 1, 15)).expect("parses");
    assert_eq!(q.canonical(), IRON);
    assert_eq!(text.parse::<BountyQuery>(), Err(QueryError::RelativeWindow));
    // Absolute texts parse the same either way.
    assert_eq!(BountyQuery::parse_relative(IRON, day(2000, 1, 1)), IRON.parse());
}

#[test]
fn quantiles_are_sorted_and_min_max_are_aggregates() {
    let q: BountyQuery = "quantiles(Observation.valueQuantity, 90, 10, 50) where code = a|b and date >= 2026-01-01 and date < 2026-01-02 and range 0..1"
        .parse()
        .expect("parses");
    assert_eq!(q.aggregate, Aggregate::Quantiles(vec![10.0, 50.0, 90.0]));
}

#[test]
fn malformed_queries_say_what_is_wrong() {
    const TAIL: &str = "where code = http://loinc.org|2498-4 and date >= 2026-01-08 and date < 2026-01-15 and range 0..500";
    let cases: Vec<(String, &str)> = vec![
        ("".into(), "the query is empty: write e.g. 'mean(Observation.valueQuantity) where code = http://loinc.org|2498-4 and date >= 2026-01-08 and date < 2026-01-15 and range 0..500'"),
        (format!("median(Observation.valueQuantity) {TAIL}"), "unknown aggregate 'median': use count, sum, mean, min, max, quantiles(...) or histogram(...)"),
        (format!("mean(Patient.birthDate) {TAIL}"), "unsupported element 'Patient.birthDate': only Observation.valueQuantity can be aggregated"),
        (format!("mean Observation.valueQuantity {TAIL}"), "expected '(' after mean but found 'Observation.valueQuantity'"),
        (format!("mean(Observation.valueQuantity, 5) {TAIL}"), "expected ')' (mean takes only the element) but found '5'"),
        ("mean(Observation.valueQuantity) where code = http://loinc.org|2498-4 and date >= 2026-01-08 and date < 2026-01-15".into(), "the query needs a value range: add 'range lo..hi'"),
        ("mean(Observation.valueQuantity) where date >= 2026-01-08 and date < 2026-01-15 and range 0..500".into(), "the query needs a code filter: add 'code = system|code'"),
        ("mean(Observation.valueQuantity) where code = a|b and date < 2026-01-15 and range 0..500".into(), "the query needs the start of the date window: add 'date >= YYYY-MM-DD'"),
        ("mean(Observation.valueQuantity) where code = a|b and date >= 2026-01-15 and range 0..500".into(), "the query needs the end of the date window: add 'date < YYYY-MM-DD'"),
        ("mean(Observation.valueQuantity) where code = 2498-4 and date >= 2026-01-08 and date < 2026-01-15 and range 0..500".into(), "'2498-4' is not a code: write it as system|code, e.g. http://loinc.org|2498-4"),
        ("mean(Observation.valueQuantity) where code = a|b and date >= 2026-01-15 and date < 2026-01-08 and range 0..500".into(), "the date window is empty or inverted: 2026-01-15 is not before 2026-01-08"),
        ("mean(Observation.valueQuantity) where code = a|b and date >= 2026-02-30 and date < 2026-03-08 and range 0..500".into(), "'2026-02-30' is not a date: write it as YYYY-MM-DD, e.g. 2026-01-08"),
        ("mean(Observation.valueQuantity) where code = a|b and date >= 2026-01-08 and date < 2026-01-15 and range 500..0".into(), "the range is empty or inverted: 500 is not below 0"),
        ("mean(Observation.valueQuantity) where code = a|b and date >= 2026-01-08 and date < 2026-01-15 and range 5..5".into(), "the range is empty or inverted: 5 is not below 5"),
        ("mean(Observation.valueQuantity) where code = a|b and date >= 2026-01-08 and date < 2026-01-15 and range NaN..5".into(), "'NaN' is not a number: write a decimal like 12 or -0.5"),
        ("mean(Observation.valueQuantity) where code = a|b and date >= 2026-01-08 and date < 2026-01-15 and range 0..inf".into(), "'inf' is not a number: write a decimal like 12 or -0.5"),
        ("mean(Observation.valueQuantity) where code = a|b and date >= 2026-01-08 and date < 2026-01-15 and range 0..1e400".into(), "'1e400' is not a number: write a decimal like 12 or -0.5"),
        ("mean(Observation.valueQuantity) where code = a|b and date >= 2026-01-08 and date < 2026-01-15 and range 0..99999999999999".into(), "99999999999999 is too large: numbers must be within ±1e12"),
        ("mean(Observation.valueQuantity) where code = a|b and date >= 2026-01-08 and date < 2026-01-15 and range 0-500".into(), "'0-500' is not a range: write it as lo..hi, e.g. range 0..500"),
        ("quantiles(Observation.valueQuantity) where code = a|b and date >= 2026-01-08 and date < 2026-01-15 and range 0..500".into(), "quantiles needs at least one percentile, e.g. quantiles(Observation.valueQuantity, 25, 50, 75)"),
        ("quantiles(Observation.valueQuantity, 50, 101) where code = a|b and date >= 2026-01-08 and date < 2026-01-15 and range 0..500".into(), "percentile 101 is outside 0..100"),
        ("quantiles(Observation.valueQuantity, 50, 50.0) where code = a|b and date >= 2026-01-08 and date < 2026-01-15 and range 0..500".into(), "percentile 50 is asked for twice"),
        ("histogram(Observation.valueQuantity, 0) where code = a|b and date >= 2026-01-08 and date < 2026-01-15 and range 0..500".into(), "the histogram width must be positive, not 0"),
        ("histogram(Observation.valueQuantity, 0.1) where code = a|b and date >= 2026-01-08 and date < 2026-01-15 and range 0..500".into(), "the histogram would have 5000 bins: at most 1000 are allowed, so use a wider bin or a narrower range"),
        ("histogram(Observation.valueQuantity) where code = a|b and date >= 2026-01-08 and date < 2026-01-15 and range 0..500".into(), "expected one bin width, e.g. histogram(Observation.valueQuantity, 10) but found 0 arguments"),
        (format!("mean(Observation.valueQuantity) {TAIL} group by race"), "cannot group by 'race': use sex, age_band or both"),
        (format!("mean(Observation.valueQuantity) {TAIL} and patient = 123"), "unknown filter 'patient': use code, category, date or range"),
        (format!("mean(Observation.valueQuantity) {TAIL} and code = a|b"), "the filter 'code' is given twice"),
        (format!("mean(Observation.valueQuantity) {TAIL} limit 5"), "unexpected 'limit' after the end of the query"),
        (format!("mean(Observation.valueQuantity) {TAIL} and date in last 7 days"), "the date window is given both as 'date in last N days' and as dates: use one"),
        ("mean(Observation.valueQuantity) where code = a|b and date > 2026-01-08 and date < 2026-01-15 and range 0..500".into(), "expected '>=' (windows are date >= start and date < end) but found '>'"),
        ("mean(Observation.valueQuantity) where code = a|b and date >= 2026-01-08 and date <= 2026-01-15 and range 0..500".into(), "expected '<' (windows end before a date: date < end) but found '<='"),
    ];
    for (text, message) in cases {
        match text.parse::<BountyQuery>() {
            Ok(q) => panic!("{text} parsed as {q}"),
            Err(e) => assert_eq!(e.to_string(), message, "for {text}"),
        }
    }
    let days = BountyQuery::parse_relative(
        "mean(Observation.valueQuantity) where code = a|b and date in last 0 days and range 0..500",
        day(2026, 1, 15),
    );
    assert_eq!(
        days.expect_err("zero days").to_string(),
        "'0' is not a number of days: write date in last N days with N between 1 and 36600"
    );
}

#[test]
fn random_queries_round_trip_through_their_canonical_text() {
    use medrec_research::query::{Coding, GroupBy};
    use rand_chacha::{
        ChaCha20Rng,
        rand_core::{RngCore, SeedableRng},
    };
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    let mut unit = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    for i in 0..2_000 {
        // Numbers with many digits, negative and tiny ones.
        let lo = (unit() - 0.5) * 10f64.powi((unit() * 12.0) as i32);
        let hi = lo + unit() * 1000.0 + 1e-3;
        let aggregate = match i % 7 {
            0 => Aggregate::Count,
            1 => Aggregate::Sum,
            2 => Aggregate::Mean,
            3 => Aggregate::Min,
            4 => Aggregate::Max,
            5 => {
                let mut ps: Vec<f64> = (0..1 + i % 5).map(|_| unit() * 100.0).collect();
                ps.sort_by(f64::total_cmp);
                ps.dedup();
                Aggregate::Quantiles(ps)
            }
            _ => Aggregate::Histogram((hi - lo) / (1.0 + unit() * 900.0)),
        };
        let from = day(2000, 1, 1) + time::Duration::days((unit() * 9000.0) as i64);
        let q = BountyQuery {
            aggregate,
            code: Coding { system: "http://loinc.org".into(), code: format!("{i}-4") },
            category: (i % 3 == 0).then(|| "laboratory".to_owned()),
            from,
            until: from + time::Duration::days(1 + (unit() * 400.0) as i64),
            lo,
            hi,
            group_by: GroupBy { sex: i % 2 == 0, age_band: i % 4 < 2 },
        };
        let text = q.canonical();
        let back: BountyQuery = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(back, q, "{text}");
        assert_eq!(back.canonical(), text);
    }
}
