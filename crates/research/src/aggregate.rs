//! Private aggregates over a cohort's FHIR Observations.
//!
//! **Which values count.** For each patient, an Observation contributes when it
//! has the query's code (any coding with that system and code), the query's category
//! (if any), a status other than `entered-in-error` or `cancelled`, an
//! `effectiveDateTime` (or `effectiveInstant`, or `effectivePeriod.start`) whose date
//! (its first ten characters, as written) lies in the window, and a numeric
//! `valueQuantity.value`. Observations with an excluded category or code
//! ([`Policy::excluded_categories`], [`Policy::excluded_codes`]) never contribute.
//! Each patient contributes at most [`Policy::max_values_per_patient`] values, the most
//! recent in the window first, and every value is clamped into the query's range.
//!
//! **Cells.** Without grouping there is one cell, the cohort. `group by sex` makes a
//! cell for each of `female`, `male`, `other`, `unknown` (from `Patient.gender`);
//! `group by age_band` one for each of `0-9` … `90-99`, `100+` and `unknown` (age at
//! `as_of` from `Patient.birthDate`; a partial birth date counts from the first day
//! it may mean); both give every combination. The set of cells is fixed by the query,
//! never by the data, so an empty group does not reveal itself. Each patient falls in
//! exactly one cell, so the cells are disjoint and each uses the full ε (parallel
//! composition): a release spends [`BountyQuery::epsilon_cost`] once.
//!
//! **Suppression (about k).** Whether a cell is released is decided from a noisy
//! count of its distinct contributing patients, never from the exact one, so one
//! patient cannot flip it for sure: with ε_s = [`Policy::suppression_share`] · ε and
//! `L = ⌊(k − 1)/2⌋`, a cell of n patients is released when `n + Z ≥ k`, `Z` discrete
//! Laplace with parameter `exp(−ε_s)` truncated to `−L..=L`
//! ([`noise::Suppression`]). A released cell therefore always has at least `k − L`
//! patients (more than k/2), a cell of at least `k + L` is always released, and the
//! decision is `(ε_s, δ)`-differentially private with
//! `δ = exp(−ε_s·L) / Σ_{|z|≤L} exp(−ε_s·|z|)` (0.088 for the default k = 10, ε =
//! 0.5; the release says its rule, `suppression`). A suppressed cell has
//! `suppressed: true` and no value. Cells are disjoint, so the decisions of all cells
//! spend ε_s once (parallel composition).
//!
//! **Differential privacy** of the values with ε = ε_v = (1 − share) ·
//! [`Policy::epsilon_per_bounty`] (the release's total ε is ε_s + ε_v, what budgets
//! are charged), m = [`Policy::max_values_per_patient`], B = max(|lo|, |hi|), and
//! DLap(t) the discrete Laplace distribution `P(x) ∝ exp(−|x|/t)`; every draw is
//! exact integer sampling ([`crate::sampler`]), never floating-point noise:
//!
//! | aggregate | mechanism |
//! |---|---|
//! | `count` | n + DLap(m/ε), at least 0 |
//! | `sum` | values snapped to a power-of-two grid g (at most 1/4096 of m·B/ε; [`noise::grid`]), then g · (Σ steps + DLap(m·⌈B/g⌉/ε)) |
//! | `mean` | c + g·(Σ steps of (v − c) + DLap(m·⌈H/g⌉/(ε/2))) / max(1, n + DLap(m/(ε/2))), clamped into the range, where c = (lo + hi)/2 and H = (hi − lo)/2: the values are centred so that the noise scales with the range's width, not its distance from 0 |
//! | `histogram(w)` | each bin + DLap(m/ε) (one patient moves at most m values: L1 sensitivity m), at least 0 |
//! | `min`, `max`, `quantiles(p…)` | permute-and-flip over a fixed grid of 1001 points of the range (see [`noise::quantile`]), rank sensitivity m, ε split evenly over the percentiles; `min` is percentile 0 and `max` percentile 100; results sorted so they never decrease with p |
//!
//! **Per-patient budget.** The caller leaves out, before calling [`release`], every
//! patient whose cumulative ε at the provider would pass [`Policy::patient_budget`]
//! with this release (the gatekeeper does, from the [`crate::ledger`]); the release
//! states that budget (`patient_budget`) but not how many were left out (see
//! [`crate::ledger`] for why).
//!
//! Histogram bins are `[lo + i·w, lo + (i+1)·w)`, the last one closed at `hi`.

use crate::{
    noise,
    policy::Policy,
    query::{Aggregate, BountyQuery, date_text, parse_date},
};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use time::{Date, Month};

/// One patient of the cohort.
#[derive(Debug, Clone, PartialEq)]
pub struct PatientData {
    /// The FHIR Patient (for `gender` and `birthDate`).
    pub patient: Value,
    /// The patient's resources; only Observations are read.
    pub resources: Vec<Value>,
}

/// A released aggregate: JSON-stable (serde).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    /// The canonical query text.
    pub query: String,
    /// The ε this release spent in all (values and suppression).
    pub epsilon: f64,
    /// The k below which (about) cells are suppressed.
    pub k: usize,
    /// The rule that decided suppression (absent in releases stored before it was
    /// noisy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppression: Option<noise::Suppression>,
    /// The per-patient budget in force: patients whose cumulative ε at the provider
    /// would have passed it were left out (how many is not released).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient_budget: Option<f64>,
    /// The most values one patient contributed.
    pub max_values_per_patient: usize,
    /// The day age bands were computed at (`YYYY-MM-DD`).
    pub as_of: String,
    /// The cells, in a fixed order.
    pub cells: Vec<Cell>,
}

/// One cell of a release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cell {
    /// The group (`sex`, `age_band`); empty when ungrouped.
    pub group: BTreeMap<String, String>,
    /// True when the noisy patient count fell below k: no value is released.
    pub suppressed: bool,
    /// The noisy value, absent when suppressed.
    pub value: Option<Answer>,
}

/// An aggregate's value, tagged by its kind (`{"mean": 12.5}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Answer {
    /// A number of values.
    Count(u64),
    /// A sum.
    Sum(f64),
    /// A mean.
    Mean(f64),
    /// A minimum.
    Min(f64),
    /// A maximum.
    Max(f64),
    /// Percentiles.
    Quantiles(Vec<Quantile>),
    /// Bin counts.
    Histogram(Vec<Bin>),
}

/// One percentile's value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Quantile {
    /// The percentile, 0..=100.
    pub p: f64,
    /// Its value.
    pub value: f64,
}

/// One histogram bin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    /// Lower bound (inclusive).
    pub from: f64,
    /// Upper bound (exclusive, except for the last bin).
    pub to: f64,
    /// The number of values.
    pub count: u64,
}

/// The exact computation, without noise or suppression: for tests and checks.
#[derive(Debug, Clone, PartialEq)]
pub struct ExactResult {
    /// The cells, in the same order as a release's.
    pub cells: Vec<ExactCell>,
}

/// One exact cell.
#[derive(Debug, Clone, PartialEq)]
pub struct ExactCell {
    /// The group; empty when ungrouped.
    pub group: BTreeMap<String, String>,
    /// Distinct contributing patients.
    pub patients: usize,
    /// The contributed values, clamped, sorted ascending.
    pub values: Vec<f64>,
    /// The exact aggregate (`None` for a mean, min, max or quantile of no values).
    /// Quantiles use the nearest rank: the value at rank ⌈p/100 · n⌉ (the first at p 0).
    pub answer: Option<Answer>,
}

/// Why an aggregate cannot be released.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AggregateError {
    /// The policy's numbers are unusable.
    #[error("the research policy cannot be applied: {0}")]
    Policy(String),
    /// The query was built by hand and is not a valid one.
    #[error("the query is not valid: {0}")]
    Query(String),
    /// The noise cannot be drawn for these numbers.
    #[error("the noise cannot be drawn: {0}")]
    Noise(#[from] noise::NoiseError),
}

const SEXES: [&str; 4] = ["female", "male", "other", "unknown"];
const AGE_BANDS: [&str; 12] = [
    "0-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "70-79", "80-89", "90-99", "100+",
    "unknown",
];

/// Releases `query` over `cohort` under `policy`, with noise from `rng` and age bands
/// at `as_of` (see the module docs for the mechanisms).
pub fn release(
    query: &BountyQuery,
    policy: &Policy,
    cohort: &[PatientData],
    as_of: Date,
    rng: &mut impl CryptoRng,
) -> Result<Release, AggregateError> {
    // A query built field by field (not parsed) must be one its text parses back to.
    match query.canonical().parse::<BountyQuery>() {
        Ok(q) if q == *query => {}
        Ok(_) => return Err(AggregateError::Query("its fields are not in canonical form".into())),
        Err(e) => return Err(AggregateError::Query(e.to_string())),
    }
    let epsilon = query.epsilon_cost(policy);
    if !(epsilon.is_finite() && epsilon > 0.0) {
        return Err(AggregateError::Policy("epsilon_per_bounty must be a positive number".into()));
    }
    if policy.k == 0 {
        return Err(AggregateError::Policy("k must be at least 1".into()));
    }
    if policy.max_values_per_patient == 0 {
        return Err(AggregateError::Policy("max_values_per_patient must be at least 1".into()));
    }
    if !(policy.suppression_share > 0.0 && policy.suppression_share < 1.0) {
        return Err(AggregateError::Policy("suppression_share must be between 0 and 1".into()));
    }
    let suppression = noise::Suppression::new(policy.k, policy.suppression_share * epsilon);
    let values_epsilon = epsilon - suppression.epsilon;
    let cells = collect(query, policy, cohort, as_of)
        .into_iter()
        .map(|(group, patients, values)| {
            if !suppression.released(patients, policy.k, rng) {
                return Ok(Cell { group, suppressed: true, value: None });
            }
            let value = noisy_value(query, policy, &values, values_epsilon, rng)?;
            Ok(Cell { group, suppressed: false, value: Some(value) })
        })
        .collect::<Result<_, AggregateError>>()?;
    Ok(Release {
        query: query.canonical(),
        epsilon,
        k: policy.k,
        suppression: Some(suppression),
        patient_budget: Some(policy.patient_budget()),
        max_values_per_patient: policy.max_values_per_patient,
        as_of: date_text(as_of),
        cells,
    })
}

/// The noisy aggregate of one released cell's sorted `values`, with `epsilon`.
fn noisy_value(
    query: &BountyQuery,
    policy: &Policy,
    values: &[f64],
    epsilon: f64,
    rng: &mut impl CryptoRng,
) -> Result<Answer, AggregateError> {
    let per_patient = policy.max_values_per_patient;
    let m = per_patient as f64;
    let n = values.len() as i128;
    let bound = query.lo.abs().max(query.hi.abs());
    let (lo, hi) = (query.lo, query.hi);
    Ok(match &query.aggregate {
        Aggregate::Count => Answer::Count(count(noise::noisy_integer(n, m / epsilon, rng)?)),
        Aggregate::Sum => {
            Answer::Sum(noise::noisy_sum(values.iter().copied(), bound, m, epsilon, rng)?)
        }
        Aggregate::Mean => {
            // Centred on the range's midpoint: one patient moves the centred sum by at
            // most m·(hi − lo)/2, half of what the raw sum's bound allows when the
            // range starts at 0 (less noise for the same ε). ε/2 for the sum, ε/2 for
            // the count.
            let mid = f64::midpoint(lo, hi);
            let half = (hi - lo) / 2.0;
            let centred = values.iter().map(|v| v - mid);
            let s = noise::noisy_sum(centred, half, m, epsilon / 2.0, rng)?;
            let c = noise::noisy_integer(n, 2.0 * m / epsilon, rng)?;
            Answer::Mean((mid + s / (c.max(1) as f64)).max(lo).min(hi))
        }
        Aggregate::Min => {
            Answer::Min(noise::quantile(values, 0.0, lo, hi, epsilon, per_patient, rng))
        }
        Aggregate::Max => {
            Answer::Max(noise::quantile(values, 100.0, lo, hi, epsilon, per_patient, rng))
        }
        Aggregate::Quantiles(ps) => {
            let each = epsilon / ps.len() as f64;
            let mut got: Vec<f64> = ps
                .iter()
                .map(|p| noise::quantile(values, *p, lo, hi, each, per_patient, rng))
                .collect();
            got.sort_by(f64::total_cmp);
            Answer::Quantiles(
                ps.iter().zip(got).map(|(p, value)| Quantile { p: *p, value }).collect(),
            )
        }
        Aggregate::Histogram(w) => Answer::Histogram(
            histogram(values, lo, hi, *w)
                .into_iter()
                .map(|(from, to, c)| {
                    let noisy = noise::noisy_integer(i128::from(c), m / epsilon, rng)?;
                    Ok(Bin { from, to, count: count(noisy) })
                })
                .collect::<Result<_, noise::NoiseError>>()?,
        ),
    })
}

/// The same selection and cells as [`release`], exactly: no noise, no suppression.
pub fn exact(
    query: &BountyQuery,
    policy: &Policy,
    cohort: &[PatientData],
    as_of: Date,
) -> ExactResult {
    let cells = collect(query, policy, cohort, as_of)
        .into_iter()
        .map(|(group, patients, values)| {
            let n = values.len();
            let rank = |p: f64| -> Option<f64> {
                let r = (p / 100.0 * n as f64).ceil() as usize;
                values.get(r.clamp(1, n.max(1)) - 1).copied()
            };
            let sum: f64 = values.iter().sum();
            let answer = match &query.aggregate {
                Aggregate::Count => Some(Answer::Count(n as u64)),
                Aggregate::Sum => Some(Answer::Sum(sum)),
                Aggregate::Mean => (n > 0).then(|| Answer::Mean(sum / n as f64)),
                Aggregate::Min => values.first().map(|v| Answer::Min(*v)),
                Aggregate::Max => values.last().map(|v| Answer::Max(*v)),
                Aggregate::Quantiles(ps) => (n > 0).then(|| {
                    Answer::Quantiles(
                        ps.iter()
                            .map(|p| Quantile { p: *p, value: rank(*p).unwrap_or(query.lo) })
                            .collect(),
                    )
                }),
                Aggregate::Histogram(w) => Some(Answer::Histogram(
                    histogram(&values, query.lo, query.hi, *w)
                        .into_iter()
                        .map(|(from, to, count)| Bin { from, to, count })
                        .collect(),
                )),
            };
            ExactCell { group, patients, values, answer }
        })
        .collect();
    ExactResult { cells }
}

fn count(x: i128) -> u64 {
    // Post-processing: floor at 0.
    u64::try_from(x.max(0)).unwrap_or(u64::MAX)
}

/// Bins `(from, to, count)` of `values` (all within lo..=hi).
fn histogram(values: &[f64], lo: f64, hi: f64, w: f64) -> Vec<(f64, f64, u64)> {
    let bins = crate::query::bin_count(lo, hi, w).clamp(1, crate::query::MAX_BINS);
    let mut counts = vec![0u64; bins];
    for v in values {
        let i = (((v - lo) / w).floor().max(0.0) as usize).min(bins - 1);
        counts[i] += 1;
    }
    counts
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let from = lo + i as f64 * w;
            let to = if i + 1 == bins { hi } else { lo + (i + 1) as f64 * w };
            (from, to, c)
        })
        .collect()
}

/// The query's cells in fixed order: (group, contributing patients, sorted values).
fn collect(
    query: &BountyQuery,
    policy: &Policy,
    cohort: &[PatientData],
    as_of: Date,
) -> Vec<(BTreeMap<String, String>, usize, Vec<f64>)> {
    let sexes: &[&str] = if query.group_by.sex { &SEXES } else { &[""] };
    let bands: &[&str] = if query.group_by.age_band { &AGE_BANDS } else { &[""] };
    let mut cells: Vec<(BTreeMap<String, String>, usize, Vec<f64>)> = Vec::new();
    let mut index = BTreeMap::new();
    for sex in sexes {
        for band in bands {
            let mut group = BTreeMap::new();
            if query.group_by.sex {
                group.insert("sex".to_owned(), (*sex).to_owned());
            }
            if query.group_by.age_band {
                group.insert("age_band".to_owned(), (*band).to_owned());
            }
            index.insert((*sex, *band), cells.len());
            cells.push((group, 0, Vec::new()));
        }
    }
    for person in cohort {
        let values = values_of(query, policy, person);
        if values.is_empty() {
            continue;
        }
        let sex = if query.group_by.sex { sex_of(&person.patient) } else { "" };
        let band = if query.group_by.age_band { age_band(&person.patient, as_of) } else { "" };
        if let Some(&i) = index.get(&(sex, band)) {
            cells[i].1 += 1;
            cells[i].2.extend(values);
        }
    }
    for cell in &mut cells {
        cell.2.sort_by(f64::total_cmp);
    }
    cells
}

/// The values one patient contributes: selected, most recent first, capped, clamped.
fn values_of(query: &BountyQuery, policy: &Policy, person: &PatientData) -> Vec<f64> {
    let mut found: Vec<(&str, &str, f64)> = person
        .resources
        .iter()
        .filter_map(|r| {
            if r["resourceType"] != "Observation" {
                return None;
            }
            if matches!(r["status"].as_str(), Some("entered-in-error" | "cancelled")) {
                return None;
            }
            let categories = codings(&r["category"]);
            if categories.iter().any(|(s, c)| policy.category_excluded(*s, c)) {
                return None;
            }
            let codes = codings(&r["code"]);
            if codes.iter().any(|(s, c)| policy.code_excluded(s.unwrap_or_default(), c)) {
                return None;
            }
            if !codes
                .iter()
                .any(|(s, c)| *s == Some(query.code.system.as_str()) && *c == query.code.code)
            {
                return None;
            }
            if let Some(wanted) = &query.category {
                let hit = match wanted.split_once('|') {
                    Some((ws, wc)) => categories.iter().any(|(s, c)| *s == Some(ws) && *c == wc),
                    None => categories.iter().any(|(_, c)| *c == wanted.as_str()),
                };
                if !hit {
                    return None;
                }
            }
            let when = r["effectiveDateTime"]
                .as_str()
                .or_else(|| r["effectiveInstant"].as_str())
                .or_else(|| r["effectivePeriod"]["start"].as_str())?;
            let day = parse_date(when.get(..10)?).ok()?;
            if day < query.from || day >= query.until {
                return None;
            }
            let value = r["valueQuantity"]["value"].as_f64().filter(|v| v.is_finite())?;
            let id = r["id"].as_str().unwrap_or_default();
            Some((when, id, value.max(query.lo).min(query.hi)))
        })
        .collect();
    // Most recent first; ties broken by id so the choice is deterministic.
    found.sort_by(|a, b| b.0.cmp(a.0).then_with(|| a.1.cmp(b.1)));
    found.into_iter().take(policy.max_values_per_patient).map(|(_, _, v)| v).collect()
}

/// The `(system, code)` of each coding of a CodeableConcept or a list of them.
fn codings(concept: &Value) -> Vec<(Option<&str>, &str)> {
    let concepts: Vec<&Value> = match concept {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![concept],
        _ => Vec::new(),
    };
    concepts
        .into_iter()
        .filter_map(|c| c["coding"].as_array())
        .flatten()
        .filter_map(|coding| Some((coding["system"].as_str(), coding["code"].as_str()?)))
        .collect()
}

fn sex_of(patient: &Value) -> &'static str {
    match patient["gender"].as_str() {
        Some("female") => "female",
        Some("male") => "male",
        Some("other") => "other",
        _ => "unknown",
    }
}

fn age_band(patient: &Value, as_of: Date) -> &'static str {
    let Some(birth) = patient["birthDate"].as_str().and_then(birth_date) else {
        return "unknown";
    };
    if birth > as_of {
        return "unknown";
    }
    let mut age = as_of.year() - birth.year();
    if (u8::from(as_of.month()), as_of.day()) < (u8::from(birth.month()), birth.day()) {
        age -= 1;
    }
    match usize::try_from(age / 10) {
        Ok(band) if band < 10 => AGE_BANDS[band],
        Ok(_) => "100+",
        Err(_) => "unknown",
    }
}

/// A FHIR date `YYYY`, `YYYY-MM` or `YYYY-MM-DD`, at its first day.
fn birth_date(text: &str) -> Option<Date> {
    match text.len() {
        10 => parse_date(text).ok(),
        7 => parse_date(&format!("{text}-01")).ok(),
        4 => {
            let year: i32 = text.parse().ok()?;
            Date::from_calendar_date(year, Month::January, 1).ok()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn day(y: i32, m: u8, d: u8) -> Date {
        Date::from_calendar_date(y, Month::try_from(m).expect("month"), d).expect("date")
    }

    #[test]
    fn age_bands() {
        let as_of = day(2026, 1, 15);
        assert_eq!(age_band(&json!({"birthDate": "1986-01-15"}), as_of), "40-49");
        assert_eq!(age_band(&json!({"birthDate": "1986-01-16"}), as_of), "30-39");
        assert_eq!(age_band(&json!({"birthDate": "1920"}), as_of), "100+");
        assert_eq!(age_band(&json!({"birthDate": "2030-01-01"}), as_of), "unknown");
        assert_eq!(age_band(&json!({}), as_of), "unknown");
    }

    #[test]
    fn histogram_bins_close_the_last() {
        let h = histogram(&[0.0, 9.99, 10.0, 25.0], 0.0, 25.0, 10.0);
        assert_eq!(h, vec![(0.0, 10.0, 2), (10.0, 20.0, 1), (20.0, 25.0, 1)]);
    }
}
