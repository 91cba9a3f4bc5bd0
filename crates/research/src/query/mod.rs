//! Bounty queries: the typed aggregate language, its canonical text and commitment.
//!
//! See the crate documentation for the grammar. [`BountyQuery`]'s `FromStr` accepts
//! only absolute date windows; [`BountyQuery::parse_relative`] also accepts
//! `date in last N days` and resolves it against a given day. [`BountyQuery::canonical`]
//! prints the one canonical text, and `canonical(parse(t))` parses back to the same query.
//!
//! The query types, their canonical text and commitment are here; the errors are in
//! `error` ([`QueryError`], re-exported here) and the tokenizer and parser of query
//! texts in `parse`.

mod error;
mod parse;

pub use error::QueryError;
pub(crate) use parse::{bin_count, parse, parse_date};

use crate::policy::Policy;
use alloy_primitives::{B256, keccak256};
use parse::Window;
use std::{fmt, str::FromStr};
use time::Date;

/// The only element aggregates read: `Observation.valueQuantity.value`.
pub const ELEMENT: &str = "Observation.valueQuantity";

/// The prefix hashed before a query's text, so that a bounty commitment can never
/// equal the commitment of another kind of text (e.g. a data pointer's query).
pub const COMMITMENT_DOMAIN: &[u8] = b"medrec/bounty-query/v1\n";

/// At most this many quantiles in one query.
pub const MAX_QUANTILES: usize = 20;

/// At most this many histogram bins.
pub const MAX_BINS: usize = 1000;

/// Bounds and numbers in a query must lie within ±this value.
pub const MAX_MAGNITUDE: f64 = 1e12;

/// A relative window is at most this many days long.
pub const MAX_RELATIVE_DAYS: i64 = 36_600;

/// The keccak256 commitment of a query text: `keccak256(COMMITMENT_DOMAIN || text)`,
/// over the text exactly as given (no parsing, no canonicalization).
pub fn commitment_of_text(text: &str) -> B256 {
    let mut bytes = Vec::with_capacity(COMMITMENT_DOMAIN.len() + text.len());
    bytes.extend_from_slice(COMMITMENT_DOMAIN);
    bytes.extend_from_slice(text.as_bytes());
    keccak256(&bytes)
}

/// What a bounty computes over the selected values.
#[derive(Debug, Clone, PartialEq)]
pub enum Aggregate {
    /// The number of values.
    Count,
    /// The sum of the (clamped) values.
    Sum,
    /// The mean of the (clamped) values.
    Mean,
    /// The smallest value (the 0th percentile).
    Min,
    /// The largest value (the 100th percentile).
    Max,
    /// Percentiles, each in 0..=100, strictly increasing.
    Quantiles(Vec<f64>),
    /// Counts of values in bins of this width from the range's low bound.
    Histogram(f64),
}

impl Aggregate {
    /// The aggregate's keyword.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Sum => "sum",
            Self::Mean => "mean",
            Self::Min => "min",
            Self::Max => "max",
            Self::Quantiles(_) => "quantiles",
            Self::Histogram(_) => "histogram",
        }
    }
}

/// A coded filter: `system|code`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Coding {
    /// The code system URI, e.g. `http://loinc.org`.
    pub system: String,
    /// The code, e.g. `2498-4`.
    pub code: String,
}

impl fmt::Display for Coding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}|{}", self.system, self.code)
    }
}

/// How cells are grouped; both false means one cell for the whole cohort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GroupBy {
    /// One cell per `Patient.gender`.
    pub sex: bool,
    /// One cell per 10-year age band at the release date.
    pub age_band: bool,
}

/// A parsed, valid bounty query.
#[derive(Debug, Clone, PartialEq)]
pub struct BountyQuery {
    /// What is computed.
    pub aggregate: Aggregate,
    /// The Observation code the values must have.
    pub code: Coding,
    /// A category the Observation must have: a code (`laboratory`) or `system|code`.
    pub category: Option<String>,
    /// First day of the window (inclusive).
    pub from: Date,
    /// Day after the window (exclusive).
    pub until: Date,
    /// Values are clamped into `lo..=hi`.
    pub lo: f64,
    /// Upper bound of the value range.
    pub hi: f64,
    /// The grouping.
    pub group_by: GroupBy,
}

impl BountyQuery {
    /// Parses `text`, also accepting a relative window `date in last N days`, which
    /// becomes `date >= today - N days and date < today`.
    pub fn parse_relative(text: &str, today: Date) -> Result<Self, QueryError> {
        parse(text)?.resolve(today)
    }

    /// The one canonical text of this query.
    pub fn canonical(&self) -> String {
        let element = match &self.aggregate {
            Aggregate::Quantiles(ps) => {
                let ps: Vec<String> = ps.iter().map(|p| number(*p)).collect();
                format!("{ELEMENT}, {}", ps.join(", "))
            }
            Aggregate::Histogram(w) => format!("{ELEMENT}, {}", number(*w)),
            _ => ELEMENT.to_owned(),
        };
        let mut s = format!("{}({element}) where code = {}", self.aggregate.name(), self.code);
        if let Some(c) = &self.category {
            s.push_str(" and category = ");
            s.push_str(c);
        }
        s.push_str(&format!(
            " and date >= {} and date < {} and range {}..{}",
            date_text(self.from),
            date_text(self.until),
            number(self.lo),
            number(self.hi)
        ));
        match (self.group_by.sex, self.group_by.age_band) {
            (true, true) => s.push_str(" group by sex, age_band"),
            (true, false) => s.push_str(" group by sex"),
            (false, true) => s.push_str(" group by age_band"),
            (false, false) => {}
        }
        s
    }

    /// The commitment of the canonical text (see [`commitment_of_text`]).
    pub fn commitment(&self) -> B256 {
        commitment_of_text(&self.canonical())
    }

    /// The ε this bounty spends: the policy's ε per bounty. Groups partition the
    /// patients, so every cell uses the full ε (parallel composition).
    pub fn epsilon_cost(&self, policy: &Policy) -> f64 {
        policy.epsilon_per_bounty
    }

    /// The number of histogram bins, or 0 for other aggregates.
    pub fn bins(&self) -> usize {
        match self.aggregate {
            Aggregate::Histogram(w) => bin_count(self.lo, self.hi, w),
            _ => 0,
        }
    }
}

impl FromStr for BountyQuery {
    type Err = QueryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed = parse(s)?;
        match parsed.window {
            Window::Absolute(from, until) => Ok(parsed.with_window(from, until)),
            Window::Relative(_) => Err(QueryError::RelativeWindow),
        }
    }
}

impl fmt::Display for BountyQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// `YYYY-MM-DD`.
pub(crate) fn date_text(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// A number's canonical text: the shortest decimal that reads back as the same `f64`.
pub(crate) fn number(v: f64) -> String {
    if v == 0.0 { "0".to_owned() } else { format!("{v}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "mean(Observation.valueQuantity) where code = http://loinc.org|2498-4 and category = laboratory and date >= 2026-01-08 and date < 2026-01-15 and range 0..500 group by sex";

    #[test]
    fn canonical_round_trip() {
        let q: BountyQuery = TEXT.parse().expect("parses");
        assert_eq!(q.canonical(), TEXT);
        assert_eq!(q.canonical().parse::<BountyQuery>().expect("parses"), q);
    }
    #[test]
    fn numbers_are_canonical() {
        let q: BountyQuery = "quantiles(Observation.valueQuantity, 75, 25.50, 0) where code = a|b and date >= 2026-01-01 and date < 2026-01-02 and range -0.0..+12.50"
            .parse()
            .expect("parses");
        assert_eq!(
            q.canonical(),
            "quantiles(Observation.valueQuantity, 0, 25.5, 75) where code = a|b and date >= 2026-01-01 and date < 2026-01-02 and range 0..12.5"
        );
        assert_eq!(q.canonical().parse::<BountyQuery>().expect("parses"), q);
    }
}
