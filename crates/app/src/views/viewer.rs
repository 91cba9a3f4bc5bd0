//! The viewer's pages: what patients shared with the viewer and until when, and the
//! shared records as the same timeline the patient sees (each verified against the
//! chain). Pure functions over what the chain and the gatekeepers said.

use super::{Names, date, short_id};
use medrec_client::{
    patient::records::{CachedPointer, CachedRelationship, Problem, ProblemKind, Records},
    viewer::{Fetched, GrantState, Shared},
};
use medrec_primitives::Status;
use std::collections::BTreeMap;

/// One grant, as the "Shared with me" page lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    /// The provider that holds the records, named.
    pub provider: String,
    /// The relationship, shortened.
    pub relationship: String,
    /// The pointers shared, in words (`data pointers 0 and 1`).
    pub pointers: String,
    /// From when (a date), or empty when valid from the moment it was given or revoked.
    pub from: String,
    /// Until when (a date), or empty once revoked.
    pub until: String,
    /// Whether the records can be read now.
    pub valid: bool,
    /// `valid`, `revoked`, `expired`, `not-yet-valid`, `inactive`.
    pub state: &'static str,
    /// Where the grant stands, in a sentence.
    pub sentence: String,
}

/// The numbers of a list in words: `0`, `0 and 1`, `0, 1 and 2`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Where a grant stands, in a sentence a pharmacist understands.
pub fn state_sentence(s: &Shared) -> String {
    match (s.state, s.grant) {
        (GrantState::Valid, Some((_, _, until))) => {
            format!("You may read these records until {}.", date(until))
        }
        (GrantState::Expired, Some((_, _, until))) => {
            format!("Access refused: the patient's grant expired at {}.", date(until))
        }
        (GrantState::NotYetValid, Some((_, from, _))) => {
            format!("Not yet: the patient's grant starts at {}.", date(from))
        }
        (GrantState::Inactive, _) => format!(
            "Access refused: the patient's relationship with this provider is {}.",
            s.status.map_or_else(|| "unknown".to_owned(), |st| st.to_string())
        ),
        _ => "Access refused: the patient revoked this grant.".to_owned(),
    }
}

/// The words shown for what a grant says of its provider: named when the key sealed
/// for the viewer opened it, else found by asking the directory's gatekeepers.
pub const FOUND_BY_ASKING: &str = "A provider found by asking the network's gatekeepers (the patient's grant did not name it to you)";

/// The provider of a shared relationship, in words.
pub fn provider_words(s: &Shared, names: &Names) -> String {
    s.provider.map_or_else(|| FOUND_BY_ASKING.to_owned(), |p| names.provider(p))
}

/// The rows of "Shared with me": grants in force first, then the others.
pub fn grants(shared: &[Shared], names: &Names) -> Vec<GrantRow> {
    let mut rows: Vec<GrantRow> = shared
        .iter()
        .map(|s| {
            let (pointers, from, until) = match s.grant {
                Some((set, from, until)) => {
                    let ids: Vec<String> = set.ids().map(|p| p.to_string()).collect();
                    let noun = if ids.len() == 1 { "data pointer" } else { "data pointers" };
                    // A grant valid from the moment it was given has no start to show.
                    let from = if from == 0 { String::new() } else { date(from) };
                    (format!("{noun} {}", and_list(&ids)), from, date(until))
                }
                None => (String::new(), String::new(), String::new()),
            };
            GrantRow {
                provider: provider_words(s, names),
                relationship: short_id(s.id.0),
                pointers,
                from,
                until,
                valid: s.state == GrantState::Valid,
                state: s.state.as_str(),
                sentence: state_sentence(s),
            }
        })
        .collect();
    rows.sort_by_key(|r| !r.valid);
    rows
}

/// What was fetched, held as the patient's records are (one relationship per grant,
/// its pointers' verified data), so the same timeline and Bundle serve the viewer.
pub fn records(fetched: &Fetched, chain_id: u64, fetched_at: u64) -> Records {
    let mut by: BTreeMap<(alloy::primitives::B256, u8), CachedPointer> = BTreeMap::new();
    let mut relationships: BTreeMap<alloy::primitives::B256, CachedRelationship> = BTreeMap::new();
    for r in &fetched.records {
        relationships.entry(r.relationship.0).or_insert_with(|| CachedRelationship {
            id: r.relationship.0,
            provider: r.provider,
            endpoint: r.endpoint.clone(),
            status: Status::Accepted,
            pointers: Vec::new(),
        });
        by.entry((r.relationship.0, r.pointer))
            .or_insert_with(|| CachedPointer {
                pointer: r.pointer,
                data_hash: r.data_hash,
                fetched_at,
                resources: Vec::new(),
            })
            .resources
            .push(r.resource.clone());
    }
    for ((id, _), pointer) in by {
        if let Some(r) = relationships.get_mut(&id) {
            r.pointers.push(pointer);
        }
    }
    Records { saved_at: fetched_at, chain_id, relationships: relationships.into_values().collect() }
}

/// The pointers whose data did not match the chain, as problems the timeline shows
/// plainly (their records are not shown).
pub fn mismatches(fetched: &Fetched, shared: &[Shared]) -> Vec<Problem> {
    fetched
        .mismatches
        .iter()
        .map(|(id, pointer, why)| Problem {
            kind: ProblemKind::HashMismatch,
            relationship: id.0,
            provider: shared
                .iter()
                .find(|s| s.id == *id)
                .and_then(|s| s.provider)
                .unwrap_or_default(),
            pointer: Some(*pointer),
            message: format!(
                "the data of pointer {pointer} did not match the hash on the chain and is not shown ({why})"
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::{Address, B256};
    use medrec_client::viewer::SharedRecord;
    use medrec_primitives::{PointerSet, RelationshipId};
    use serde_json::json;

    fn shared(byte: u8, state: GrantState, grant: Option<(PointerSet, u64, u64)>) -> Shared {
        Shared {
            id: RelationshipId(B256::repeat_byte(byte)),
            provider: (byte != 4).then(|| Address::repeat_byte(byte)),
            status: Some(Status::Accepted),
            grant,
            accepted: 2,
            state,
        }
    }

    #[test]
    fn grants_in_force_come_first_and_every_state_reads_as_a_sentence() {
        let set = PointerSet::from_ids([0u8, 1]).unwrap();
        let list = [
            shared(1, GrantState::Revoked, None),
            shared(2, GrantState::Expired, Some((set, 0, 1_796_000_000))),
            shared(3, GrantState::Valid, Some((set, 0, 1_796_000_000))),
        ];
        let rows = grants(&list, &Names::default());
        assert_eq!(
            rows.iter().map(|r| r.state).collect::<Vec<_>>(),
            ["valid", "revoked", "expired"]
        );
        assert!(rows[0].valid);
        assert_eq!(rows[0].pointers, "data pointers 0 and 1");
        assert_eq!(rows[0].until, "2026-11-30 00:53 UTC");
        assert_eq!(rows[0].sentence, "You may read these records until 2026-11-30 00:53 UTC.");
        assert_eq!(rows[1].sentence, "Access refused: the patient revoked this grant.");
        assert!(rows[1].pointers.is_empty() && rows[1].until.is_empty());
        assert!(rows[0].from.is_empty(), "valid from the moment it was given: no start shown");
        assert_eq!(
            rows[2].sentence,
            "Access refused: the patient's grant expired at 2026-11-30 00:53 UTC."
        );
        assert!(rows.iter().skip(1).all(|r| !r.valid));
        assert_eq!(rows[0].provider, "Provider 0x0303…0303");
        // A grant without a key sealed for the viewer does not name its provider.
        let unnamed = grants(
            &[shared(4, GrantState::Valid, Some((set, 0, 1_796_000_000)))],
            &Names::default(),
        );
        assert_eq!(unnamed[0].provider, FOUND_BY_ASKING);
    }

    #[test]
    fn fetched_records_are_held_per_relationship_and_pointer() {
        let rel = RelationshipId(B256::repeat_byte(7));
        let record = |pointer: u8, id: &str| SharedRecord {
            provider: Address::repeat_byte(7),
            relationship: rel,
            pointer,
            data_hash: B256::repeat_byte(pointer),
            endpoint: "http://127.0.0.1:8080".to_owned(),
            resource: json!({"resourceType": "Observation", "id": id}),
        };
        let fetched = Fetched {
            records: vec![record(0, "a"), record(1, "b"), record(0, "c")],
            refused: Vec::new(),
            mismatches: vec![(rel, 2, "computed 0x01".to_owned())],
        };
        let held = records(&fetched, 31337, 100);
        assert_eq!(held.count(), 3);
        assert_eq!(held.relationships.len(), 1);
        let pointers = &held.relationships[0].pointers;
        assert_eq!(pointers.iter().map(|p| p.resources.len()).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(pointers[1].data_hash, B256::repeat_byte(1));
        let problems = mismatches(&fetched, &[shared(7, GrantState::Valid, None)]);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].provider, Address::repeat_byte(7));
        assert!(problems[0].message.contains("pointer 2 did not match"));
    }
}
