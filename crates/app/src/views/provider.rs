//! The provider's pages: the enrolled patients with their relationship's status, what an
//! import or a publication did in a sentence, and the gatekeeper's health. Pure
//! functions over what the chain, the gatekeeper and `relationships.json` said.

use super::{short_id, status_words};
use alloy::primitives::B256;
use medrec_client::provider::{import::ImportReport, publish::PublishReport, state::Enrollments};
use medrec_primitives::Status;
use serde_json::Value;
use std::collections::HashMap;

/// One enrolled patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatientRow {
    /// The patient's address.
    pub patient: String,
    /// The patient's id in the record store.
    pub patient_id: String,
    /// The relationship, shortened.
    pub relationship: String,
    /// Its status on chain, in words.
    pub status: String,
    /// `new`, `accepted`, … for styling.
    pub slug: &'static str,
    /// How many data pointers it has.
    pub pointers: usize,
    /// Whether the gatekeeper was told (an interrupted enrollment is finished by Publish).
    pub served: bool,
}

/// The enrolled patients, those waiting for the patient's answer first.
pub fn patients(
    enrolled: &Enrollments,
    statuses: &HashMap<B256, Option<Status>>,
) -> Vec<PatientRow> {
    let mut rows: Vec<PatientRow> = enrolled
        .relationships
        .iter()
        .map(|(id, e)| {
            let status = statuses.get(id).copied().flatten();
            // An offer the patient has not taken is not on chain: the patient's key
            // creates the relationship when they take it.
            let offered = status.is_none() && e.offer.is_some();
            PatientRow {
                patient: e.patient.to_string(),
                patient_id: e.patient_id.clone(),
                relationship: short_id(*id),
                status: match status {
                    Some(s) => status_words(s).replace("your answer", "the patient's answer"),
                    None if offered => "offered: waiting for the patient to take it".to_owned(),
                    None => "not found on chain".to_owned(),
                },
                slug: match status {
                    Some(Status::New) => "new",
                    Some(Status::UpdatePending) => "pending",
                    Some(Status::Accepted) => "accepted",
                    Some(Status::Rejected) => "rejected",
                    Some(Status::Deleted) => "deleted",
                    None if offered => "new",
                    None => "unknown",
                },
                pointers: e.pointers.len(),
                served: e.gatekeeper_enrolled,
            }
        })
        .collect();
    rows.sort_by_key(|r| !matches!(r.slug, "new" | "pending"));
    rows
}

/// A FHIR Patient's name as people write it (`Ana Testperson`), with the birth date.
pub fn patient_name(p: &Value) -> String {
    let name = &p["name"][0];
    let given: Vec<&str> =
        name["given"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    let full = [given.join(" "), name["family"].as_str().unwrap_or("").to_owned()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    let full = if full.is_empty() { "(no name)".to_owned() } else { full };
    match p["birthDate"].as_str() {
        Some(born) => format!("{full}, born {born}"),
        None => full,
    }
}

/// What an import did, in a sentence.
pub fn import_sentence(r: &ImportReport) -> String {
    let kinds: Vec<String> = r.resource_types.iter().map(|(k, n)| format!("{n} {k}")).collect();
    let mut text = format!(
        "Imported {} ({}): {} created, {} updated",
        if r.entries == 1 { "1 entry".to_owned() } else { format!("{} entries", r.entries) },
        kinds.join(", "),
        r.created,
        r.updated
    );
    if r.failed > 0 {
        text.push_str(&format!(", {} failed", r.failed));
    }
    text.push_str(". Publish to put the changed data's hashes on chain.");
    text
}

/// What a publication did, in a sentence.
pub fn publish_sentence(r: &PublishReport) -> String {
    if r.changes.is_empty() {
        return format!(
            "Nothing changed: the data behind all {} matches the chain.",
            medrec_client::plural(r.unchanged, "pointer")
        );
    }
    let patients =
        r.changes.iter().map(|c| c.relationship).collect::<std::collections::BTreeSet<_>>().len();
    format!(
        "Published {} for {}; {} unchanged. Each patient is notified and decides whether to accept the update{}.",
        medrec_client::plural(r.changes.len(), "changed pointer"),
        medrec_client::plural(patients, "patient"),
        r.unchanged,
        r.bounty
            .as_ref()
            .map_or_else(String::new, |_| "; each update carries the policy's bounty query"
                .to_owned())
    )
}

/// The provider's newest anchor on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// Its block.
    pub block: u64,
    /// The access log's size it anchors.
    pub size: u64,
    /// The log's head.
    pub head: B256,
}

/// The gatekeeper's health, in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// Whether it answers and is ready to decide.
    pub ready: bool,
    /// Its state in a sentence.
    pub sentence: String,
    /// Blocks its consent index is behind the chain's head.
    pub lag: Option<u64>,
    /// The last anchor in a sentence.
    pub anchor: String,
}

/// The health from `/readyz`'s answer (`None`: no answer) and the last anchor.
pub fn health(ready: Option<&Value>, anchor: Option<Anchor>) -> Health {
    let anchor = anchor.map_or_else(
        || "No anchor on chain yet: the access log is anchored once it holds entries.".to_owned(),
        |a| {
            format!(
                "The access log was last anchored in block {} at {} entries (head {}).",
                a.block,
                a.size,
                short_id(a.head)
            )
        },
    );
    let Some(r) = ready else {
        return Health {
            ready: false,
            sentence: "The gatekeeper does not answer: start it (`medrec provider serve`)."
                .to_owned(),
            lag: None,
            anchor,
        };
    };
    let (head, indexed) = (r["head"].as_u64().unwrap_or(0), r["indexed"].as_u64().unwrap_or(0));
    let lag = head.saturating_sub(indexed);
    let is_ready = r["ready"] == true;
    let sentence = if is_ready {
        format!(
            "Ready: the consent index is at block {indexed}, {} behind the chain's head ({head}).",
            medrec_client::plural(lag as usize, "block")
        )
    } else {
        format!(
            "Not ready: the consent index is at block {indexed}, {lag} behind the head ({head}); requests are refused until it catches up."
        )
    };
    Health { ready: is_ready, sentence, lag: Some(lag), anchor }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn health_reads_as_sentences() {
        let h = health(
            Some(&json!({"ready": true, "head": 120, "indexed": 119})),
            Some(Anchor { block: 118, size: 42, head: B256::repeat_byte(1) }),
        );
        assert!(h.ready);
        assert_eq!(h.lag, Some(1));
        assert_eq!(
            h.sentence,
            "Ready: the consent index is at block 119, 1 block behind the chain's head (120)."
        );
        assert!(
            h.anchor.starts_with("The access log was last anchored in block 118 at 42 entries"),
            "{}",
            h.anchor
        );
        let down = health(None, None);
        assert!(!down.ready && down.sentence.contains("does not answer"));
        assert!(down.anchor.starts_with("No anchor on chain yet"));
        let behind = health(Some(&json!({"ready": false, "head": 130, "indexed": 100})), None);
        assert!(
            behind.sentence.starts_with("Not ready") && behind.sentence.contains("30 behind"),
            "{}",
            behind.sentence
        );
    }

    #[test]
    fn an_offer_not_taken_yet_is_waiting_for_the_patient_not_missing() {
        use alloy::primitives::{Address, Bytes};
        use medrec_client::provider::state::{Enrolled, OfferBody};
        let enrolled = |offer: bool| Enrolled {
            delegate_index: 0,
            delegate: Address::repeat_byte(1),
            patient: Address::repeat_byte(2),
            patient_id: "p1".into(),
            pointers: vec![],
            gatekeeper_enrolled: true,
            offer: offer.then(|| OfferBody {
                provider: Address::repeat_byte(3),
                account: Address::repeat_byte(2),
                delegate: Address::repeat_byte(1),
                data_hash: B256::repeat_byte(4),
                signature: Bytes::new(),
            }),
        };
        let mut all = Enrollments::default();
        all.relationships.insert(B256::repeat_byte(5), enrolled(true));
        all.relationships.insert(B256::repeat_byte(6), enrolled(false));
        let accepted = B256::repeat_byte(7);
        all.relationships.insert(accepted, enrolled(true));
        let statuses = HashMap::from([(accepted, Some(Status::Accepted))]);
        let rows = patients(&all, &statuses);
        let by = |id: u8| {
            rows.iter().find(|r| r.relationship == short_id(B256::repeat_byte(id))).unwrap()
        };
        assert_eq!(
            (by(5).status.as_str(), by(5).slug),
            ("offered: waiting for the patient to take it", "new")
        );
        assert_eq!((by(6).status.as_str(), by(6).slug), ("not found on chain", "unknown"));
        assert_eq!(by(7).slug, "accepted");
        assert_eq!(rows[0].slug, "new", "waiting offers first");
    }

    #[test]
    fn patients_are_named_with_their_birth_date() {
        let p = json!({"name": [{"given": ["Ana", "B."], "family": "Testperson"}], "birthDate": "1980-02-01"});
        assert_eq!(patient_name(&p), "Ana B. Testperson, born 1980-02-01");
        assert_eq!(patient_name(&json!({})), "(no name)");
    }

    #[test]
    fn reports_read_as_sentences() {
        let mut r = ImportReport { entries: 3, created: 2, updated: 1, ..ImportReport::default() };
        r.resource_types.insert("Observation".into(), 3);
        assert_eq!(
            import_sentence(&r),
            "Imported 3 entries (3 Observation): 2 created, 1 updated. Publish to put the changed data's hashes on chain."
        );
        let p = PublishReport { unchanged: 5, ..PublishReport::default() };
        assert_eq!(
            publish_sentence(&p),
            "Nothing changed: the data behind all 5 pointers matches the chain."
        );
    }
}
