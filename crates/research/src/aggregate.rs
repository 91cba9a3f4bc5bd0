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
//! **k-anonymity.** A cell with fewer than [`Policy::k`] distinct contributing patients
//! is suppressed: `suppressed: true` and no value. (The decision uses the exact
//! number of patients, as k-anonymity does; it is not itself noisy.)
//!
//! **Differential privacy** with ε = [`Policy::epsilon_per_bounty`] and m =
//! [`Policy::max_values_per_patient`], B = max(|lo|, |hi|), and Lap(b) the Laplace
//! distribution of scale b:
//!
//! | aggregate | mechanism |
//! |---|---|
//! | `count` | n + Lap(m/ε), rounded, at least 0 |
//! | `sum` | Σ + Lap(m·B/ε) |
//! | `mean` | c + (Σ(v − c) + Lap(2·m·H/ε)) / max(1, n + Lap(2·m/ε)), clamped into the range (ε/2 each), where c = (lo + hi)/2 and H = (hi − lo)/2: the values are centred so that the noise scales with the range's width, not its distance from 0 |
//! | `histogram(w)` | each bin + Lap(m/ε) (one patient moves at most m values: L1 sensitivity m), rounded, at least 0 |
//! | `min`, `max`, `quantiles(p…)` | exponential mechanism over the sorted clamped values (see [`crate::noise::quantile`]), rank sensitivity m, ε split evenly over the percentiles; `min` is percentile 0 and `max` percentile 100; results sorted so they never decrease with p |
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
    /// The ε this release spent.
    pub epsilon: f64,
    /// The k below which cells are suppressed.
    pub k: usize,
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
    /// True when fewer than k patients contributed: no value is released.
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
    let m = policy.max_values_per_patient as f64;
    let bound = query.lo.abs().max(query.hi.abs());
    let cells = collect(query, policy, cohort, as_of)
        .into_iter()
        .map(|(group, patients, values)| {
            if patients < policy.k {
                return Cell { group, suppressed: true, value: None };
            }
            let n = values.len() as f64;
            let sum: f64 = values.iter().sum();
            let value = match &query.aggregate {
                Aggregate::Count => {
                    Answer::Count(round_count(n + noise::laplace(m / epsilon, rng)))
                }
                Aggregate::Sum => Answer::Sum(sum + noise::laplace(m * bound / epsilon, rng)),
                Aggregate::Mean => {
                    // Centred on the range's midpoint: one patient moves the centred
                    // sum by at most m·(hi − lo)/2, half of what the raw sum's bound
                    // allows when the range starts at 0 (less noise for the same ε).
                    let mid = f64::midpoint(query.lo, query.hi);
                    let half = (query.hi - query.lo) / 2.0;
                    let centred = sum - n * mid;
                    let s = centred + noise::laplace(2.0 * m * half / epsilon, rng);
                    let c = n + noise::laplace(2.0 * m / epsilon, rng);
                    Answer::Mean((mid + s / c.max(1.0)).max(query.lo).min(query.hi))
                }
                Aggregate::Min => {
                    Answer::Min(noise::quantile(&values, 0.0, query.lo, query.hi, epsilon, m, rng))
                }
                Aggregate::Max => {
                    Answer::Max(noise::quantile(&values, 1.0, query.lo, query.hi, epsilon, m, rng))
                }
                Aggregate::Quantiles(ps) => {
                    let each = epsilon / ps.len() as f64;
                    let mut got: Vec<f64> = ps
                        .iter()
                        .map(|p| {
                            noise::quantile(&values, p / 100.0, query.lo, query.hi, each, m, rng)
                        })
                        .collect();
                    got.sort_by(f64::total_cmp);
                    Answer::Quantiles(
                        ps.iter().zip(got).map(|(p, value)| Quantile { p: *p, value }).collect(),
                    )
                }
                Aggregate::Histogram(w) => Answer::Histogram(
                    histogram(&values, query.lo, query.hi, *w)
                        .into_iter()
                        .map(|(from, to, count)| Bin {
                            from,
                            to,
                            count: round_count(count as f64 + noise::laplace(m / epsilon, rng)),
                        })
                        .collect(),
                ),
            };
            Cell { group, suppressed: false, value: Some(value) }
        })
        .collect();
    Ok(Release {
        query: query.canonical(),
        epsilon,
        k: policy.k,
        max_values_per_patient: policy.max_values_per_patient,
        as_of: date_text(as_of),
        cells,
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

fn round_count(x: f64) -> u64 {
    // Post-processing: round and floor at 0 (the cast saturates).
    x.round().max(0.0) as u64
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
