//! The Access log: who read what of the patient's records and when, allowed or refused,
//! each entry's proof checked against its anchor on chain.

use super::{Names, date, short_id};
use alloy::primitives::{Address, B256};
use medrec_client::{
    patient::access_log::{AccessEntry, ProofStatus},
    timeline::short_address,
};
use serde_json::Value;
use std::collections::BTreeMap;

/// One entry, for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// When it was decided.
    pub when: String,
    /// The provider whose gatekeeper logged it.
    pub provider: String,
    /// Who asked: `You`, `The provider`, or their address.
    pub who: String,
    /// What was asked for, in words.
    pub what: String,
    /// Whether it was allowed.
    pub allowed: bool,
    /// The decision in words.
    pub decision: String,
    /// Whether the proof checked out against an anchor on chain.
    pub proven: bool,
    /// The proof's state in words.
    pub proof: String,
}

/// Builds one row; `pointers` names pointers in words.
pub fn row(
    e: &AccessEntry,
    me: Address,
    names: &Names,
    pointers: &BTreeMap<(B256, u8), String>,
) -> Row {
    let entry = &e.entry;
    let when =
        entry["time"].as_u64().map_or_else(|| "unknown time".to_owned(), |ms| date(ms / 1000));
    let requester = entry["requester"].as_str().and_then(|r| r.parse::<Address>().ok());
    let who = match requester {
        Some(r) if r == me => "You".to_owned(),
        Some(r) if r == e.provider => "The provider".to_owned(),
        Some(r) => r.to_string(),
        None => "Someone".to_owned(),
    };
    let relationship = entry["relationship"].as_str().and_then(|r| r.parse::<B256>().ok());
    let what = match (&entry["pointer"], &entry["resource"], relationship) {
        (Value::Number(n), _, Some(rel)) => {
            let n = n.as_u64().and_then(|n| u8::try_from(n).ok()).unwrap_or(u8::MAX);
            pointers.get(&(rel, n)).map_or_else(
                || format!("pointer {n} of relationship {}", short_id(rel)),
                |name| format!("{name}, pointer {n} of relationship {}", short_id(rel)),
            )
        }
        (_, Value::Object(res), _) => {
            let kind = res.get("type").and_then(Value::as_str).unwrap_or("records");
            match res.get("id").and_then(Value::as_str) {
                Some(id) => format!("{kind} {id}"),
                None => format!("a search of {kind}"),
            }
        }
        _ => match entry["action"].as_str() {
            Some("bounty-redemption") => "an aggregate for a research bounty".to_owned(),
            Some("fhir-write") => "new or changed records, written by the provider".to_owned(),
            Some("log-read") => "your access log".to_owned(),
            Some("auth") => "a sign-in".to_owned(),
            Some(action) => action.replace('-', " "),
            None => "records".to_owned(),
        },
    };
    let decision_text = entry["decision"].as_str().unwrap_or_default();
    let allowed = decision_text.starts_with("allow");
    let decision = if decision_text == "allow-break-glass" {
        "Allowed: emergency access (break-glass), without a grant".to_owned()
    } else if allowed {
        "Allowed".to_owned()
    } else {
        let reason = decision_text.strip_prefix("deny:").unwrap_or(decision_text).replace('-', " ");
        format!("Refused ({reason})")
    };
    let (proven, proof) = match &e.proof {
        ProofStatus::Verified { block } => {
            (true, format!("Checked against its anchor on chain (block {block})"))
        }
        ProofStatus::Pending => {
            (false, "Waiting for the provider's next anchor on chain".to_owned())
        }
        ProofStatus::Invalid { message } => (false, format!("Does not check out: {message}")),
    };
    Row { when, provider: names.provider(e.provider), who, what, allowed, decision, proven, proof }
}

/// Every entry, newest first.
pub fn rows(
    entries: &[AccessEntry],
    me: Address,
    names: &Names,
    pointers: &BTreeMap<(B256, u8), String>,
) -> Vec<Row> {
    entries.iter().rev().map(|e| row(e, me, names, pointers)).collect()
}

/// A sentence about the whole log.
pub fn summary(entries: &[AccessEntry]) -> String {
    let invalid = entries.iter().filter(|e| matches!(e.proof, ProofStatus::Invalid { .. })).count();
    let pending = entries.iter().filter(|e| e.proof == ProofStatus::Pending).count();
    match (entries.len(), invalid, pending) {
        (0, _, _) => "Nobody has read your records yet.".to_owned(),
        (n, 0, 0) => format!("{}, each checked against its anchor on chain.", count(n)),
        (n, 0, p) => format!(
            "{}: {} checked against the chain, {p} waiting for the provider's next anchor.",
            count(n),
            n - p
        ),
        (n, i, _) => format!(
            "Warning: {i} of {n} entries could not be proven against the chain. The provider's log may have been altered."
        ),
    }
}

/// `1 entry`, `2 entries`.
fn count(n: usize) -> String {
    if n == 1 { "1 entry".to_owned() } else { format!("{n} entries") }
}

/// The research releases in the log: when, which provider, ε spent.
pub fn releases(entries: &[AccessEntry], names: &Names) -> Vec<(String, String, String)> {
    entries
        .iter()
        .rev()
        .filter(|e| e.entry["action"] == "bounty-redemption")
        .map(|e| {
            // The wire carries the f64's bits as a decimal string (exact, and no JSON
            // number loses them).
            let bits = &e.entry["epsilon_bits"];
            let eps = bits
                .as_str()
                .and_then(|s| s.parse::<u64>().ok())
                .or_else(|| bits.as_u64())
                .map_or_else(|| "unknown".to_owned(), |b| super::chart::number(f64::from_bits(b)));
            let when = e.entry["time"].as_u64().map_or_else(String::new, |ms| date(ms / 1000));
            (when, names.provider(e.provider), eps)
        })
        .collect()
}

/// `0x1234…abcd` for an address in a sentence.
pub fn short(a: Address) -> String {
    short_address(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entry(requester: Address, decision: &str, proof: ProofStatus) -> AccessEntry {
        AccessEntry {
            provider: Address::repeat_byte(1),
            entry: json!({"seq": 1, "time": 60_000, "requester": requester, "action": "pointer-read",
                "relationship": B256::repeat_byte(7), "pointer": 0, "resource": null, "decision": decision}),
            proof,
        }
    }

    #[test]
    fn entries_say_who_read_what_and_whether_it_is_proven() {
        let me = Address::repeat_byte(2);
        let viewer = Address::repeat_byte(4);
        let mut pointers = BTreeMap::new();
        pointers.insert((B256::repeat_byte(7), 0), "Lab results (3 records)".to_owned());
        let entries = [
            entry(me, "allow-patient", ProofStatus::Verified { block: 12 }),
            entry(viewer, "deny:not-a-viewer", ProofStatus::Pending),
        ];
        let list = rows(&entries, me, &Names::default(), &pointers);
        assert_eq!(list[0].who, viewer.to_string());
        assert!(!list[0].allowed);
        assert_eq!(list[0].decision, "Refused (not a viewer)");
        assert!(!list[0].proven);
        assert_eq!(list[1].who, "You");
        assert_eq!(list[1].what, "Lab results (3 records), pointer 0 of relationship 0x07070707…");
        assert_eq!(list[1].proof, "Checked against its anchor on chain (block 12)");
        assert_eq!(list[1].when, "1970-01-01 00:01 UTC");
        assert_eq!(
            summary(&entries),
            "2 entries: 1 checked against the chain, 1 waiting for the provider's next anchor."
        );
        let bad = [entry(me, "allow-patient", ProofStatus::Invalid { message: "x".into() })];
        assert!(summary(&bad).starts_with("Warning: 1 of 1"));
        assert_eq!(summary(&[]), "Nobody has read your records yet.");
    }

    #[test]
    fn a_break_glass_read_says_so() {
        let glass = entry(Address::repeat_byte(6), "allow-break-glass", ProofStatus::Pending);
        let list = rows(&[glass], Address::repeat_byte(1), &Names::default(), &BTreeMap::new());
        assert!(list[0].allowed, "{:?}", list[0]);
        assert_eq!(list[0].decision, "Allowed: emergency access (break-glass), without a grant");
    }

    #[test]
    fn a_release_names_the_epsilon_it_spent_as_the_wire_carries_it() {
        let mut release = entry(Address::repeat_byte(5), "allow-researcher", ProofStatus::Pending);
        release.entry["action"] = json!("bounty-redemption");
        release.entry["epsilon_bits"] = json!(2.0f64.to_bits().to_string());
        let list = releases(&[release], &Names::default());
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].2, "2");
    }
}
