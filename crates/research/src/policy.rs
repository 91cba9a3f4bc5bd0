//! A provider's research policy: k, ε per bounty (and the share of it that decides
//! suppression), the per-researcher and per-patient ε budgets, how much each patient
//! may contribute, what is never released, and which queries are offered.
//!
//! A policy file is JSON; every field may be left out and takes its default:
//!
//! ```json
//! {
//!   "k": 10,
//!   "epsilon_per_bounty": 0.5,
//!   "budget_per_researcher": 5.0,
//!   "budget_per_patient": 10.0,
//!   "suppression_share": 0.25,
//!   "max_values_per_patient": 1,
//!   "excluded_categories": ["psychotherapy-notes", "behavioral-health"],
//!   "excluded_codes": [],
//!   "offers": [
//!     { "name": "weekly-iron",
//!       "query": "mean(Observation.valueQuantity) where code = http://loinc.org|2498-4 and date in last 7 days and range 0..500" }
//!   ]
//! }
//! ```
//!
//! Policy files written before `budget_per_patient` and `suppression_share` existed
//! keep working: the first then defaults to twice `budget_per_researcher`, the second
//! to 0.25.

use crate::query::{self, BountyQuery, QueryError};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use time::Date;

/// The categories excluded by default: psychotherapy notes, behavioral and mental
/// health, substance use (42 CFR Part 2 records), sexual and reproductive health, and
/// genetic testing. A resource with any of them as a category code (or as the code of
/// `system|code`) never contributes to an aggregate, and no query may filter on them.
pub const DEFAULT_EXCLUDED_CATEGORIES: &[&str] = &[
    "psychotherapy-notes",
    "psychotherapy",
    "behavioral-health",
    "mental-health",
    "substance-use",
    "substance-abuse",
    "sexual-health",
    "reproductive-health",
    "hiv",
    "genetic",
];

/// The default [`Policy::suppression_share`].
pub const DEFAULT_SUPPRESSION_SHARE: f64 = 0.25;

/// A query the provider offers: a name and its text (absolute, or relative with
/// `date in last N days`, resolved on the day it is published).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    /// A short name, unique in the policy.
    pub name: String,
    /// The query text.
    pub query: String,
}

/// A provider's research policy (see the module docs for the file format).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Cells (or the cohort) with fewer distinct contributing patients than about k
    /// are suppressed, decided from a noisy count (see [`crate::noise::Suppression`]).
    pub k: usize,
    /// The ε each bounty spends in all (the suppression decision's share included).
    pub epsilon_per_bounty: f64,
    /// The share of [`Policy::epsilon_per_bounty`] spent on the noisy patient count that
    /// decides suppression; the rest goes to the values. Strictly between 0 and 1.
    pub suppression_share: f64,
    /// The total ε a researcher may spend at this provider.
    pub budget_per_researcher: f64,
    /// The total ε each patient's records may contribute to at this provider, across
    /// all researchers and bounties (kept per relationship); a patient whose next
    /// release would pass it is left out of the cohort. When absent, twice
    /// [`Policy::budget_per_researcher`] ([`Policy::patient_budget`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_per_patient: Option<f64>,
    /// Each patient contributes at most this many values (the most recent in the
    /// window); it bounds the sensitivity.
    pub max_values_per_patient: usize,
    /// Category codes (or `system|code`) whose resources never contribute.
    pub excluded_categories: Vec<String>,
    /// Observation codes (`system|code`, or a bare code) that never contribute.
    pub excluded_codes: Vec<String>,
    /// The queries offered; when empty, any query that passes the exclusions is.
    pub offers: Vec<Offer>,
}

impl Default for Policy {
    /// k = 10, ε = 0.5 per bounty of which a quarter decides suppression, a budget of
    /// 5.0 per researcher and (by default) 10.0 per patient, one value per patient,
    /// [`DEFAULT_EXCLUDED_CATEGORIES`], no excluded codes, no offers.
    fn default() -> Self {
        Self {
            k: 10,
            epsilon_per_bounty: 0.5,
            suppression_share: DEFAULT_SUPPRESSION_SHARE,
            budget_per_researcher: 5.0,
            budget_per_patient: None,
            max_values_per_patient: 1,
            excluded_categories: DEFAULT_EXCLUDED_CATEGORIES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            excluded_codes: Vec::new(),
            offers: Vec::new(),
        }
    }
}

/// Why a policy cannot be loaded, or refuses a query.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file cannot be read.
    #[error("cannot read the research policy {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid policy.
    #[error("the research policy {path} is not valid JSON for a policy: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// A setting is out of bounds.
    #[error("invalid research policy: {0}")]
    Invalid(String),
    /// An offer's text is not a valid query.
    #[error("the offered query '{name}' is not valid: {source}")]
    Offer {
        /// The offer's name.
        name: String,
        /// Why.
        source: QueryError,
    },
    /// The query filters on an excluded category.
    #[error("category '{0}' is excluded by the provider's policy and is never released")]
    ExcludedCategory(String),
    /// The query's code is excluded.
    #[error("code '{0}' is excluded by the provider's policy and is never released")]
    ExcludedCode(String),
    /// The query is not one the provider offers.
    #[error("the provider does not offer this query; it offers: {0}")]
    NotOffered(String),
}

impl Policy {
    /// Reads and validates a JSON policy file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, PolicyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| PolicyError::Read { path: path.to_owned(), source })?;
        let policy: Self = serde_json::from_str(&text)
            .map_err(|source| PolicyError::Json { path: path.to_owned(), source })?;
        policy.validate()?;
        Ok(policy)
    }

    /// Checks the settings and that every offer parses and passes the exclusions.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let invalid = |s: &str| Err(PolicyError::Invalid(s.to_owned()));
        if self.k == 0 {
            return invalid("k must be at least 1");
        }
        if !(self.epsilon_per_bounty.is_finite() && self.epsilon_per_bounty > 0.0) {
            return invalid("epsilon_per_bounty must be a positive number");
        }
        if !(self.suppression_share > 0.0 && self.suppression_share < 1.0) {
            return invalid("suppression_share must be between 0 and 1 (exclusive)");
        }
        if !(self.budget_per_researcher.is_finite() && self.budget_per_researcher >= 0.0) {
            return invalid("budget_per_researcher must be a number of at least 0");
        }
        if !(self.patient_budget().is_finite() && self.patient_budget() >= 0.0) {
            return invalid("budget_per_patient must be a number of at least 0");
        }
        if self.max_values_per_patient == 0 || self.max_values_per_patient > 1000 {
            return invalid("max_values_per_patient must be between 1 and 1000");
        }
        for (i, o) in self.offers.iter().enumerate() {
            if o.name.trim().is_empty() {
                return invalid("every offer needs a name");
            }
            if self.offers[..i].iter().any(|p| p.name == o.name) {
                return Err(PolicyError::Invalid(format!("the offer '{}' is named twice", o.name)));
            }
            let parsed = query::parse(&o.query)
                .map_err(|source| PolicyError::Offer { name: o.name.clone(), source })?;
            // Any day will do to check the exclusions; the last one leaves room for
            // any relative window.
            let q = parsed
                .resolve(Date::MAX)
                .map_err(|source| PolicyError::Offer { name: o.name.clone(), source })?;
            self.check_exclusions(&q)?;
        }
        Ok(())
    }

    /// The per-patient budget in force: [`Policy::budget_per_patient`], or twice
    /// [`Policy::budget_per_researcher`] when it is absent.
    pub fn patient_budget(&self) -> f64 {
        self.budget_per_patient.unwrap_or(2.0 * self.budget_per_researcher)
    }

    /// Accepts `q` if it passes the exclusions and, when the policy lists offers,
    /// matches one of them: the same query, where a relative offer (`date in last N
    /// days`) matches any window of N days.
    pub fn check(&self, q: &BountyQuery) -> Result<(), PolicyError> {
        self.check_exclusions(q)?;
        if self.offers.is_empty() {
            return Ok(());
        }
        let offered =
            self.offers.iter().any(|o| query::parse(&o.query).is_ok_and(|p| p.shape_matches(q)));
        if offered {
            Ok(())
        } else {
            let names: Vec<&str> = self.offers.iter().map(|o| o.name.as_str()).collect();
            Err(PolicyError::NotOffered(names.join(", ")))
        }
    }

    /// The offer named `name`, resolved for `today` (relative windows become dates).
    pub fn offer(&self, name: &str, today: Date) -> Option<BountyQuery> {
        let o = self.offers.iter().find(|o| o.name == name)?;
        BountyQuery::parse_relative(&o.query, today).ok()
    }

    fn check_exclusions(&self, q: &BountyQuery) -> Result<(), PolicyError> {
        if let Some(c) = &q.category
            && (self.category_excluded(None, c)
                || c.split_once('|').is_some_and(|(s, code)| self.category_excluded(Some(s), code)))
        {
            return Err(PolicyError::ExcludedCategory(c.clone()));
        }
        if self.code_excluded(&q.code.system, &q.code.code) {
            return Err(PolicyError::ExcludedCode(q.code.to_string()));
        }
        Ok(())
    }

    /// Whether a category coding is excluded: listed as its bare code (compared
    /// without regard to case) or as `system|code`.
    pub fn category_excluded(&self, system: Option<&str>, code: &str) -> bool {
        listed(&self.excluded_categories, system, code)
    }

    /// Whether an Observation code is excluded: listed as `system|code` or as a bare
    /// code.
    pub fn code_excluded(&self, system: &str, code: &str) -> bool {
        listed(&self.excluded_codes, Some(system), code)
    }
}

fn listed(list: &[String], system: Option<&str>, code: &str) -> bool {
    list.iter().any(|entry| match entry.split_once('|') {
        Some((s, c)) => system == Some(s) && c == code,
        None => entry.eq_ignore_ascii_case(code),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_valid() {
        Policy::default().validate().expect("valid");
    }

    #[test]
    fn a_policy_file_without_the_new_fields_gets_their_defaults() {
        let old: Policy = serde_json::from_str(r#"{"k": 5, "budget_per_researcher": 3.0}"#)
            .expect("an older policy file parses");
        old.validate().expect("valid");
        assert_eq!(old.budget_per_patient, None);
        assert_eq!(old.patient_budget(), 6.0, "twice the per-researcher budget");
        assert_eq!(old.suppression_share, DEFAULT_SUPPRESSION_SHARE);
        assert_eq!(Policy::default().patient_budget(), 10.0);
        let set: Policy = serde_json::from_str(r#"{"budget_per_patient": 2.5}"#).expect("parses");
        assert_eq!(set.patient_budget(), 2.5);
        for bad in [r#"{"budget_per_patient": -1}"#, r#"{"suppression_share": 1.0}"#] {
            let p: Policy = serde_json::from_str(bad).expect("parses");
            assert!(matches!(p.validate(), Err(PolicyError::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn excluded_category_refused() {
        let q: BountyQuery = "count(Observation.valueQuantity) where code = a|b and category = Behavioral-Health and date >= 2026-01-01 and date < 2026-01-02 and range 0..1"
            .parse()
            .expect("parses");
        assert!(matches!(Policy::default().check(&q), Err(PolicyError::ExcludedCategory(_))));
    }
}
