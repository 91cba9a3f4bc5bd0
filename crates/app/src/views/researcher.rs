//! The researcher's pages: the bounties owned (redeemed or pending), the privacy budget
//! (ε) each provider has spent on the researcher, and every released result as bars
//! per group. Pure functions over the chain's bounties and the answers kept on disk.

use super::{Names, chart, short_id};
use alloy::primitives::Address;
use medrec_client::researcher::Bounty;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

/// One bounty, as the Overview lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct BountyRow {
    /// `<relationship id>:<sequence>`, for the Redeem form.
    pub id: String,
    /// The same, shortened for reading.
    pub short: String,
    /// The block that posted it (the one the researcher's miner sealed).
    pub block: String,
    /// The provider whose gatekeeper redeems it.
    pub provider: String,
    /// The ε its release spent, once redeemed.
    pub epsilon: Option<String>,
}

/// What a provider has spent of the researcher's privacy budget.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    /// The provider.
    pub provider: String,
    /// ε spent so far.
    pub spent: String,
    /// The provider's budget per researcher.
    pub budget: String,
    /// Spent, in percent of the budget.
    pub percent: f64,
}

/// One released result.
#[derive(Debug, Clone, PartialEq)]
pub struct Result {
    /// The bounty.
    pub bounty: String,
    /// The provider.
    pub provider: String,
    /// The query's published text.
    pub query: String,
    /// What was computed (`mean`, `count`, …).
    pub measure: String,
    /// ε spent and k.
    pub terms: String,
    /// One bar per group.
    pub bars: Vec<chart::Bar>,
}

/// The bounties, newest first, with what each redemption spent.
pub fn bounties(
    owned: &[Bounty],
    answers: &BTreeMap<String, Value>,
    providers: &HashMap<alloy::primitives::B256, Address>,
    names: &Names,
) -> Vec<BountyRow> {
    let mut rows: Vec<BountyRow> = owned
        .iter()
        .map(|b| BountyRow {
            id: b.id(),
            short: format!("{}:{}", short_id(b.relationship.0), b.seq),
            block: b.block.map_or_else(|| "pending".to_owned(), |n| n.to_string()),
            provider: providers.get(&b.relationship.0).map_or_else(
                || "the provider that answers (the chain does not name it)".to_owned(),
                |p| names.provider(*p),
            ),
            epsilon: answers
                .get(&b.id())
                .map(|a| chart::number(a["epsilon"].as_f64().unwrap_or(0.0))),
        })
        .collect();
    rows.reverse();
    rows
}

/// Each provider's spending of the researcher's budget, from the newest answer it gave.
pub fn budgets(
    answers: &BTreeMap<String, Value>,
    providers: &HashMap<alloy::primitives::B256, Address>,
    names: &Names,
) -> Vec<Budget> {
    let mut newest: BTreeMap<Address, (f64, f64)> = BTreeMap::new();
    for (id, a) in answers {
        let Some(provider) = relationship_of(id).and_then(|r| providers.get(&r)) else { continue };
        let (spent, budget) =
            (a["spent"].as_f64().unwrap_or(0.0), a["budget"].as_f64().unwrap_or(0.0));
        let entry = newest.entry(*provider).or_insert((spent, budget));
        if spent > entry.0 {
            *entry = (spent, budget);
        }
    }
    newest
        .into_iter()
        .map(|(p, (spent, budget))| Budget {
            provider: names.provider(p),
            spent: chart::number(spent),
            budget: chart::number(budget),
            percent: if budget > 0.0 { (spent / budget * 100.0).min(100.0).round() } else { 0.0 },
        })
        .collect()
}

/// The relationship of a bounty id.
pub fn relationship_of(id: &str) -> Option<alloy::primitives::B256> {
    id.split_once(':').and_then(|(r, _)| r.parse().ok())
}

/// A group in words: `sex = female, age_band = 40-49`, or `everyone`.
fn group_words(group: &Value) -> String {
    let words: Vec<String> = group
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k} = {}", v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
        .collect();
    if words.is_empty() { "everyone".to_owned() } else { words.join(", ") }
}

/// The number a cell released, for its bar (counts, sums, means, minima and maxima; the
/// median for quantiles; the total for histograms).
fn cell_number(value: &Value) -> Option<(String, f64)> {
    let (kind, v) = value.as_object()?.iter().next()?;
    let n = match kind.as_str() {
        "quantiles" => v
            .as_array()?
            .iter()
            .find(|q| q["p"].as_f64() == Some(50.0))
            .or_else(|| v.as_array()?.first())?["value"]
            .as_f64()?,
        "histogram" => v.as_array()?.iter().filter_map(|b| b["count"].as_f64()).sum(),
        _ => v.as_f64()?,
    };
    Some((kind.clone(), n))
}

/// Every released result, as bars per group.
pub fn results(
    answers: &BTreeMap<String, Value>,
    providers: &HashMap<alloy::primitives::B256, Address>,
    names: &Names,
) -> Vec<Result> {
    answers
        .iter()
        .rev()
        .map(|(id, a)| {
            let release = &a["release"];
            let k = release["k"].as_u64().unwrap_or(0) as usize;
            let mut measure = String::new();
            let cells: Vec<(String, Option<f64>)> = release["cells"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    let value =
                        if c["suppressed"] == true { None } else { cell_number(&c["value"]) };
                    if let Some((kind, _)) = &value {
                        measure.clone_from(kind);
                    }
                    (group_words(&c["group"]), value.map(|v| v.1))
                })
                .collect();
            Result {
                bounty: id.split_once(':').map_or_else(
                    || id.clone(),
                    |(r, s)| format!("{}:{s}", r.get(..10).unwrap_or(r)),
                ),
                provider: relationship_of(id)
                    .and_then(|r| providers.get(&r))
                    .map_or_else(|| "the provider that answers (the chain does not name it)".to_owned(), |p| names.provider(*p)),
                query: a["query"]
                    .as_str()
                    .or_else(|| release["query"].as_str())
                    .unwrap_or("")
                    .to_owned(),
                measure: if measure.is_empty() { "value".to_owned() } else { measure },
                terms: format!(
                    "ε = {} spent, groups of about {k} patients or fewer not released (decided on a noisy count), as of {}",
                    chart::number(a["epsilon"].as_f64().unwrap_or(0.0)),
                    release["as_of"].as_str().unwrap_or("?")
                ),
                bars: chart::bars(&cells, k),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::B256;
    use medrec_primitives::RelationshipId;
    use serde_json::json;

    fn answer(epsilon: f64, spent: f64) -> Value {
        json!({"epsilon": epsilon, "spent": spent, "budget": 10.0, "query": "mean(...) group by sex",
        "release": {"k": 10, "as_of": "2026-12-03", "cells": [
            {"group": {"sex": "female"}, "suppressed": false, "value": {"mean": 71.5}},
            {"group": {"sex": "male"}, "suppressed": true, "value": null}
        ]}})
    }

    #[test]
    fn bounties_show_what_each_redemption_spent_and_results_become_bars() {
        let rel = B256::repeat_byte(3);
        let provider = Address::repeat_byte(3);
        let owned: Vec<Bounty> = (0..2)
            .map(|seq| Bounty {
                relationship: RelationshipId(rel),
                seq,
                owner: Address::ZERO,
                commitment: B256::ZERO,
                block: Some(10 + seq),
                tx: None,
            })
            .collect();
        let mut answers = BTreeMap::new();
        answers.insert(format!("{rel}:0"), answer(2.0, 2.0));
        let providers = HashMap::from([(rel, provider)]);
        let names = Names::default();
        let rows = bounties(&owned, &answers, &providers, &names);
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].block.as_str(), rows[0].epsilon.as_deref()),
            ("11", None),
            "newest first, pending"
        );
        assert_eq!(rows[1].epsilon.as_deref(), Some("2"));
        assert_eq!(rows[1].provider, "Provider 0x0303…0303");

        answers.insert(format!("{rel}:1"), answer(2.0, 4.0));
        let b = budgets(&answers, &providers, &names);
        assert_eq!((b[0].spent.as_str(), b[0].budget.as_str(), b[0].percent), ("4", "10", 40.0));

        let r = results(&answers, &providers, &names);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].measure, "mean");
        assert_eq!(r[0].bars[0].label, "sex = female");
        assert_eq!(r[0].bars[0].value, "71.5");
        assert!(r[0].bars[1].suppressed);
        assert!(
            r[0].terms
                .starts_with("ε = 2 spent, groups of about 10 patients or fewer not released"),
            "{}",
            r[0].terms
        );
    }
}
