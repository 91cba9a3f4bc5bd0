//! Research mining for MedRec (issue 6): bounty queries and their private aggregates.
//!
//! A provider's pointer update carries the commitment of a *bounty query*; the miner of
//! the block that includes it redeems the bounty at the provider's gatekeeper, which
//! computes the aggregate with this crate. No HTTP and no chain here:
//!
//! - [`query`]: the typed aggregate language, its canonical text and its commitment;
//! - [`policy`]: what a provider offers and never releases, k, ε and budgets;
//! - [`aggregate`]: the selection of values, noisy suppression below about k and
//!   differential privacy;
//! - [`noise`]: the floating-point-safe mechanisms (discrete Laplace, permute-and-flip
//!   on a grid, the noisy suppression rule);
//! - [`sampler`]: exact integer samplers (Bernoulli(exp(−γ)), discrete Laplace);
//! - [`ledger`]: published texts, stored answers, and the ε spent by each researcher
//!   and by each patient (relationship), in SQLite.
//!
//! # The query language
//!
//! ```text
//! query     = aggregate "where" filter { "and" filter } [ "group by" group { "," group } ]
//! aggregate = ( "count" | "sum" | "mean" | "min" | "max" ) "(" element ")"
//!           | "quantiles" "(" element "," percent { "," percent } ")"   (1 to 20, each 0..100)
//!           | "histogram" "(" element "," width ")"                    (at most 1000 bins)
//! element   = "Observation.valueQuantity"                              (its numeric value)
//! filter    = "code" "=" system "|" code                               (required)
//!           | "category" "=" ( code | system "|" code )                (optional)
//!           | "date" ">=" YYYY-MM-DD                                   (required, inclusive)
//!           | "date" "<" YYYY-MM-DD                                    (required, exclusive)
//!           | "range" number ".." number                               (required, lo < hi)
//! group     = "sex" | "age_band"                                       (10-year bands)
//! number    = [ "-" | "+" ] digits [ "." digits ]                      (within ±1e12)
//! ```
//!
//! Keywords and the element are case-insensitive, spacing is free and filters may
//! come in any order. Values are clamped into the range, which bounds the
//! sensitivity. [`query::BountyQuery::parse_relative`] also takes
//! `date in last N days` (the window `[today − N days, today)`), which a provider
//! uses in its policy; published texts always carry absolute dates.
//!
//! The canonical text has the filters in the order code, category, date >=, date <,
//! range, single spaces, lower-case keywords, percentiles sorted ascending and numbers
//! in their shortest form (`25.5`, never `25.50` or `+25.5`):
//!
//! ```text
//! mean(Observation.valueQuantity) where code = http://loinc.org|2498-4 and category = laboratory and date >= 2026-01-08 and date < 2026-01-15 and range 0..500 group by sex
//! quantiles(Observation.valueQuantity, 25, 50, 75) where code = http://loinc.org|4548-4 and date >= 2026-01-01 and date < 2026-02-01 and range 3..15
//! histogram(Observation.valueQuantity, 10) where code = http://loinc.org|2345-7 and date >= 2026-01-01 and date < 2026-02-01 and range 40..400 group by sex, age_band
//! ```
//!
//! The commitment is `keccak256("medrec/bounty-query/v1\n" ‖ text)`
//! ([`query::commitment_of_text`]); anyone holding the published text can recompute it
//! and compare it with the commitment on chain.
//!
//! ```
//! use medrec_research::{policy::Policy, query::BountyQuery};
//!
//! let q: BountyQuery = "MEAN(Observation.valueQuantity) where range 0..500 and \
//!     code = http://loinc.org|2498-4 and date >= 2026-01-08 and date < 2026-01-15"
//!     .parse()?;
//! assert_eq!(
//!     q.canonical(),
//!     "mean(Observation.valueQuantity) where code = http://loinc.org|2498-4 \
//!      and date >= 2026-01-08 and date < 2026-01-15 and range 0..500"
//! );
//! assert_eq!(q.canonical().parse::<BountyQuery>()?, q);
//! assert_eq!(q.epsilon_cost(&Policy::default()), 0.5);
//!
//! let err = "median(Observation.valueQuantity) where code = a|b".parse::<BountyQuery>();
//! assert_eq!(
//!     err.unwrap_err().to_string(),
//!     "unknown aggregate 'median': use count, sum, mean, min, max, quantiles(...) or histogram(...)"
//! );
//! # Ok::<(), medrec_research::query::QueryError>(())
//! ```
//!
//! # Privacy
//!
//! See [`aggregate`] for exactly which values count, the cells, the noisy suppression
//! rule and the noise of each aggregate, [`noise`] for why no floating-point noise is
//! ever drawn, and [`ledger`] for the per-researcher and per-patient budgets. Whether a
//! patient opted in, or has budget left, is the caller's business: pass only the
//! opted-in patients with budget left ([`ledger::Ledger::patients_within`]).

pub mod aggregate;
pub mod ledger;
pub mod noise;
pub mod policy;
pub mod query;
pub mod sampler;
