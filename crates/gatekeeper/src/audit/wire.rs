//! The access log's wire format: entries, proofs and a page of `GET /audit`, as typed
//! serde structs. Every field the proof needs to recompute an entry's hash is there, so
//! a patient checks a proof with [`medrec_store::audit::verify`] and its anchor on chain.
//! A proof is the entry, its inclusion path in the Merkle tree whose root was anchored
//! (at most `⌈log2 size⌉` hashes, however much traffic came between) and the anchor.
//!
//! ```json
//! {"entries": [{"seq": 7, "time": 1767225600000, "requester": "0x…", "action": "fhir-read",
//!   "relationship": "0x…", "pointer": null, "resource": {"type": "Observation", "id": "o1"},
//!   "decision": "allow-patient", "response_hash": "0x…", "epsilon_bits": null,
//!   "prev_hash": "0x…", "hash": "0x…",
//!   "proof": {"entry": {…}, "path": ["0x…", "0x…", "0x…", "0x…"],
//!             "anchor": {"size": 9, "root": "0x…", "block": 41, "tx": "0x…"}}}],
//!  "head": {"size": 9, "head": "0x…", "root": "0x…"}}
//! ```

use alloy::primitives::{Address, B256};
use medrec_store::audit::{Anchor, LoggedEntry, NewEntry, Proof, ResourceRef};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One access log entry as served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryWire {
    /// Its position in the log, from 1.
    pub seq: u64,
    /// When it was decided, unix milliseconds.
    pub time: i64,
    /// Who asked.
    pub requester: Address,
    /// What was asked (`pointer-read`, `fhir-read`, …).
    pub action: String,
    /// The relationship it concerned, if any.
    pub relationship: Option<B256>,
    /// The pointer, for pointer reads.
    pub pointer: Option<u8>,
    /// The resource the request named, if any.
    pub resource: Option<ResourceWire>,
    /// The decision (`allow-patient`, …, `deny:<reason>`).
    pub decision: String,
    /// SHA-256 of the response body served.
    pub response_hash: Option<B256>,
    /// The ε of a research release, as the bits of the `f64` in decimal (exact).
    pub epsilon_bits: Option<String>,
    /// The previous entry's hash.
    pub prev_hash: B256,
    /// This entry's hash.
    pub hash: B256,
}

/// The resource an entry names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceWire {
    /// Its FHIR type.
    #[serde(rename = "type")]
    pub resource_type: String,
    /// Its id, for reads.
    pub id: Option<String>,
}

/// A proof that an anchored root covers an entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProofWire {
    /// The entry.
    pub entry: EntryWire,
    /// The entry's inclusion path in the tree of the anchor's size, from the leaf up
    /// (see [`medrec_store::audit::Proof::path`]).
    pub path: Vec<B256>,
    /// The anchor.
    pub anchor: AnchorWire,
}

/// An anchor of the log on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnchorWire {
    /// Entries covered.
    pub size: u64,
    /// The Merkle root of those entries, as anchored.
    pub root: B256,
    /// The block of the anchoring transaction.
    pub block: u64,
    /// The anchoring transaction.
    pub tx: B256,
}

/// Where an entry of a page sits under an anchored root: its inclusion path and the
/// anchor. The entry itself is the page entry it belongs to, so it is sent once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InclusionWire {
    /// The entry's inclusion path in the tree of the anchor's size, from the leaf up.
    pub path: Vec<B256>,
    /// The anchor.
    pub anchor: AnchorWire,
}

/// An entry of a `GET /audit` page with where it sits under an anchor (`null` until an
/// anchor covers it); [`ProvenEntry::proof`] puts the two together into a [`Proof`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProvenEntry {
    /// The entry.
    #[serde(flatten)]
    pub entry: EntryWire,
    /// Its inclusion under an anchor.
    pub proof: Option<InclusionWire>,
}

impl ProvenEntry {
    /// The proof that an anchored root covers this entry, once one does.
    ///
    /// # Errors
    /// When a field of the entry cannot be read back.
    pub fn proof(&self) -> Result<Option<Proof>, ProofJsonError> {
        let Some(inclusion) = &self.proof else { return Ok(None) };
        let a = inclusion.anchor;
        Ok(Some(Proof {
            entry: LoggedEntry::try_from(&self.entry)?,
            path: inclusion.path.clone(),
            anchor: Anchor { size: a.size, root: a.root, block: a.block, tx: a.tx },
        }))
    }
}

/// The log's head: how many entries it holds, the hash of the last and the Merkle root
/// of all of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeadWire {
    /// Entries in the whole log.
    pub size: u64,
    /// The last entry's hash.
    pub head: B256,
    /// The Merkle root of all the entries.
    pub root: B256,
}

/// A page of `GET /audit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    /// The requester's entries, oldest first.
    pub entries: Vec<ProvenEntry>,
    /// The head of the whole log.
    pub head: HeadWire,
}

impl From<&LoggedEntry> for EntryWire {
    fn from(e: &LoggedEntry) -> Self {
        let n = &e.entry;
        Self {
            seq: e.seq,
            time: n.time,
            requester: n.requester,
            action: n.action.as_str().to_owned(),
            relationship: n.relationship,
            pointer: n.pointer,
            resource: n.resource.as_ref().map(|r| ResourceWire {
                resource_type: r.resource_type.as_str().to_owned(),
                id: r.id.as_ref().map(ToString::to_string),
            }),
            decision: n.decision.to_string(),
            response_hash: n.response_hash,
            epsilon_bits: n.epsilon.map(|x| x.to_bits().to_string()),
            prev_hash: e.prev_hash,
            hash: e.hash,
        }
    }
}

impl From<&Proof> for InclusionWire {
    fn from(p: &Proof) -> Self {
        let a = p.anchor;
        Self {
            path: p.path.clone(),
            anchor: AnchorWire { size: a.size, root: a.root, block: a.block, tx: a.tx },
        }
    }
}

impl From<&Proof> for ProofWire {
    fn from(p: &Proof) -> Self {
        let a = p.anchor;
        Self {
            entry: EntryWire::from(&p.entry),
            path: p.path.clone(),
            anchor: AnchorWire { size: a.size, root: a.root, block: a.block, tx: a.tx },
        }
    }
}

/// Why an entry or proof on the wire could not be read.
#[derive(Debug, thiserror::Error)]
#[error("the access log proof is malformed: {0}")]
pub struct ProofJsonError(String);

impl TryFrom<&EntryWire> for LoggedEntry {
    type Error = ProofJsonError;

    fn try_from(w: &EntryWire) -> Result<Self, ProofJsonError> {
        let bad = |what: &str| ProofJsonError(what.to_owned());
        let action = w.action.parse().map_err(|_| bad("entry.action"))?;
        let decision = w.decision.parse().map_err(|_| bad("entry.decision"))?;
        let mut entry = NewEntry::new(w.time, w.requester, action, decision);
        entry.relationship = w.relationship;
        entry.pointer = w.pointer;
        entry.resource = match &w.resource {
            None => None,
            Some(r) => Some(ResourceRef {
                resource_type: r.resource_type.parse().map_err(|_| bad("entry.resource.type"))?,
                id: match &r.id {
                    None => None,
                    Some(id) => Some(id.parse().map_err(|_| bad("entry.resource.id"))?),
                },
            }),
        };
        entry.response_hash = w.response_hash;
        entry.epsilon = match &w.epsilon_bits {
            None => None,
            Some(bits) => {
                Some(f64::from_bits(bits.parse().map_err(|_| bad("entry.epsilon_bits"))?))
            }
        };
        Ok(Self { seq: w.seq, entry, prev_hash: w.prev_hash, hash: w.hash })
    }
}

impl TryFrom<&ProofWire> for Proof {
    type Error = ProofJsonError;

    fn try_from(w: &ProofWire) -> Result<Self, ProofJsonError> {
        let a = w.anchor;
        Ok(Self {
            entry: LoggedEntry::try_from(&w.entry)?,
            path: w.path.clone(),
            anchor: Anchor { size: a.size, root: a.root, block: a.block, tx: a.tx },
        })
    }
}

/// An entry as JSON: every field the proof needs to recompute its hash.
pub fn entry_json(e: &LoggedEntry) -> Value {
    serde_json::to_value(EntryWire::from(e)).expect("an entry serialises")
}

/// A proof as JSON: the entry, its inclusion path and the anchor.
pub fn proof_json(p: &Proof) -> Value {
    serde_json::to_value(ProofWire::from(p)).expect("a proof serialises")
}

/// Reads a proof written by [`proof_json`].
pub fn proof_from_json(v: &Value) -> Result<Proof, ProofJsonError> {
    let wire: ProofWire =
        serde_json::from_value(v.clone()).map_err(|e| ProofJsonError(e.to_string()))?;
    Proof::try_from(&wire)
}

#[cfg(test)]
mod tests {
    use super::*;
    use medrec_store::audit::{Action, Decision};

    fn logged() -> LoggedEntry {
        let mut e = NewEntry::new(
            1_767_225_600_000,
            Address::repeat_byte(7),
            Action::BountyRedemption,
            Decision::AllowResearcher,
        );
        e.relationship = Some(B256::repeat_byte(1));
        e.resource = Some(ResourceRef {
            resource_type: "Observation".parse().unwrap(),
            id: Some("o1".parse().unwrap()),
        });
        e.response_hash = Some(B256::repeat_byte(2));
        e.epsilon = Some(0.1);
        LoggedEntry::chain(3, B256::repeat_byte(9), e)
    }

    #[test]
    fn a_proof_round_trips_through_json_exactly() {
        let proof = Proof {
            entry: logged(),
            path: vec![B256::repeat_byte(4), B256::repeat_byte(6)],
            anchor: Anchor { size: 4, root: B256::repeat_byte(5), block: 12, tx: B256::ZERO },
        };
        let json = proof_json(&proof);
        assert_eq!(json["entry"]["action"], "bounty-redemption");
        assert_eq!(json["entry"]["resource"]["type"], "Observation");
        assert_eq!(json["path"].as_array().map(Vec::len), Some(2));
        assert_eq!(json["anchor"]["root"], format!("0x{}", "05".repeat(32)));
        let back = proof_from_json(&json).unwrap();
        assert_eq!(back, proof);
        assert_eq!(back.entry.entry.epsilon.unwrap().to_bits(), 0.1f64.to_bits());
    }

    #[test]
    fn a_malformed_proof_says_which_field() {
        let mut json = proof_json(&Proof {
            entry: logged(),
            path: Vec::new(),
            anchor: Anchor { size: 3, root: B256::ZERO, block: 1, tx: B256::ZERO },
        });
        json["entry"]["action"] = "dance".into();
        assert!(proof_from_json(&json).unwrap_err().to_string().contains("entry.action"));
        json["entry"]["seq"] = "three".into();
        assert!(proof_from_json(&json).is_err());
    }

    /// A page of 100 proven entries about one relationship, in a log of `size` entries
    /// where they are spread evenly and one anchor covers them all: (bytes of the page's
    /// JSON, bytes of its largest proof, longest path).
    async fn page_at(size: u64) -> (usize, usize, usize) {
        use medrec_store::audit::{AccessLog, prove_entries, sqlite::SqliteAccessLog};
        let mine = B256::repeat_byte(0x42);
        let log = SqliteAccessLog::open_in_memory().unwrap();
        let entries = (0..size)
            .map(|i| {
                let mut e = logged().entry;
                e.time += i64::try_from(i).unwrap();
                e.relationship =
                    Some(if i % (size / 100) == 0 { mine } else { B256::repeat_byte(1) });
                e
            })
            .collect();
        log.append_batch(entries).await.unwrap();
        let head = log.head().await.unwrap();
        log.record_anchor(Anchor { size, root: head.root, block: 7, tx: B256::repeat_byte(7) })
            .await
            .unwrap();
        let about = log.entries_about(&[mine], 0, 100).await.unwrap();
        assert_eq!(about.len(), 100);
        let wires: Vec<EntryWire> = about.iter().map(EntryWire::from).collect();
        let proofs = prove_entries(&log, about).await.unwrap();
        let (mut largest, mut longest) = (0, 0);
        let mut out = Vec::new();
        for (entry, proof) in wires.into_iter().zip(proofs) {
            let proof = proof.expect("anchored");
            medrec_store::audit::verify(&proof).unwrap();
            let wire = InclusionWire::from(&proof);
            largest = largest.max(serde_json::to_vec(&wire).unwrap().len());
            longest = longest.max(proof.path.len());
            let proven = ProvenEntry { entry, proof: Some(wire) };
            assert_eq!(proven.proof().unwrap(), Some(proof), "the page gives the proof back");
            out.push(proven);
        }
        let page = AuditPage {
            entries: out,
            head: HeadWire { size: head.size, head: head.head, root: head.root },
        };
        (serde_json::to_vec(&page).unwrap().len(), largest, longest)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_page_of_proofs_stays_small_however_large_the_log() {
        let (small_page, small_proof, small_path) = page_at(1_000).await;
        let (large_page, large_proof, large_path) = page_at(100_000).await;
        eprintln!(
            "100-entry /audit page: {small_page} bytes at 1,000 entries (proofs up to \
             {small_proof} bytes, {small_path} hashes), {large_page} bytes at 100,000 \
             (proofs up to {large_proof} bytes, {large_path} hashes)"
        );
        assert!(small_path <= 10 && large_path <= 17, "⌈log2 n⌉ hashes at most");
        // A hundredfold more traffic adds a few hashes per proof, not a hundredfold.
        assert!(large_proof <= small_proof + 7 * 70, "{small_proof} -> {large_proof}");
        assert!(large_page <= small_page + 100 * 7 * 70, "{small_page} -> {large_page}");
        assert!(large_page < 300_000, "{large_page} bytes for 100 entries");
        // Each entry is sent once: a page is its entries plus their paths and anchors.
        let page_json: Value = serde_json::from_slice(
            &serde_json::to_vec(&AuditPage {
                entries: Vec::new(),
                head: HeadWire { size: 0, head: B256::ZERO, root: B256::ZERO },
            })
            .unwrap(),
        )
        .unwrap();
        assert!(page_json["entries"].as_array().unwrap().is_empty());
    }
}
