//! Inclusion proofs against anchored roots, and the check of a whole log.

use super::{
    AccessLog, Anchor, LogHead, LoggedEntry,
    row::corrupt,
    tree::{self, Frontier, Node},
};
use crate::{Result, StoreError};
use alloy_primitives::B256;
use std::collections::BTreeMap;

/// Why a [`Proof`] does not hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The entry's fields and previous hash do not give its hash: it was changed.
    #[error("entry {seq}'s hash does not match its contents: the entry was altered")]
    EntryAltered {
        /// The entry.
        seq: u64,
    },
    /// The anchor does not cover the entry.
    #[error("the anchor of size {anchor_size} does not cover entry {seq}")]
    NotCovered {
        /// The entry.
        seq: u64,
        /// The anchor's size.
        anchor_size: u64,
    },
    /// The inclusion path is not as long as the entry's place in the tree needs.
    #[error(
        "the proof has {got} path hashes where entry's place in the anchored tree needs {expected}"
    )]
    WrongLength {
        /// The length the entry's position and the anchor's size give.
        expected: u64,
        /// How many it has.
        got: u64,
    },
    /// Climbing the path from the entry does not reach the anchored root.
    #[error("the path from entry {seq} does not lead to the root anchored at size {anchor_size}")]
    RootMismatch {
        /// The entry.
        seq: u64,
        /// The anchor's size.
        anchor_size: u64,
    },
}

/// Evidence that an entry is in the tree whose root was anchored.
#[derive(Debug, Clone, PartialEq)]
pub struct Proof {
    /// The entry, with its previous hash.
    pub entry: LoggedEntry,
    /// The inclusion path of the entry's leaf in the tree of the first `anchor.size`
    /// entries, from the leaf's sibling up to the root's child (RFC 6962 `PATH`):
    /// at most `⌈log2(anchor.size)⌉` hashes.
    pub path: Vec<B256>,
    /// The anchor.
    pub anchor: Anchor,
}

/// Checks `proof`: the entry's hash from its fields and previous hash, its leaf, then
/// the path up to the anchored root (see the module docs). Needs nothing but the
/// proof; whether the anchor is on chain is for the caller to check.
pub fn verify(proof: &Proof) -> std::result::Result<(), ProofError> {
    let Proof { entry, path, anchor } = proof;
    let (seq, anchor_size) = (entry.seq, anchor.size);
    if seq == 0 || seq > anchor_size {
        return Err(ProofError::NotCovered { seq, anchor_size });
    }
    // The first entry has no previous entry: its previous hash must be zero.
    if seq == 1 && entry.prev_hash != B256::ZERO {
        return Err(ProofError::EntryAltered { seq });
    }
    if !entry.is_consistent() {
        return Err(ProofError::EntryAltered { seq });
    }
    let expected = tree::path_ranges(seq - 1, anchor_size).len() as u64;
    let got = path.len() as u64;
    if got != expected {
        return Err(ProofError::WrongLength { expected, got });
    }
    let leaf = tree::leaf_hash(&entry.hash);
    match tree::root_from_path(seq - 1, anchor_size, leaf, path) {
        Some(root) if root == anchor.root => Ok(()),
        _ => Err(ProofError::RootMismatch { seq, anchor_size }),
    }
}

/// Reads the stored subtrees `nodes` once each and gives the root of each range
/// (as [`tree::decompose`] splits it).
async fn ranges_roots(log: &dyn AccessLog, ranges: &[(u64, u64)]) -> Result<Vec<B256>> {
    let split: Vec<Vec<Node>> = ranges.iter().map(|&(lo, hi)| tree::decompose(lo, hi)).collect();
    let wanted: Vec<Node> = {
        let mut all: Vec<Node> = split.iter().flatten().copied().collect();
        all.sort_unstable();
        all.dedup();
        all
    };
    let hashes = log.nodes(&wanted).await?;
    if hashes.len() != wanted.len() {
        return Err(corrupt(&format!(
            "gave {} tree nodes where {} were asked",
            hashes.len(),
            wanted.len()
        )));
    }
    let found: BTreeMap<Node, B256> = wanted.into_iter().zip(hashes).collect();
    Ok(split
        .iter()
        .map(|nodes| tree::fold(&nodes.iter().map(|n| found[n]).collect::<Vec<_>>()))
        .collect())
}

/// The Merkle root of the first `size` entries of `log`, from at most `log2(size)`
/// stored subtrees. The log must hold at least `size` entries.
pub async fn root_at(log: &dyn AccessLog, size: u64) -> Result<B256> {
    Ok(ranges_roots(log, &[(0, size)]).await?.pop().unwrap_or(tree::EMPTY_ROOT))
}

/// The inclusion path of entry `seq` in the tree of the first `size` entries of `log`
/// (see [`Proof::path`]), from at most `2·log2(size)` stored subtrees.
pub async fn inclusion_path(log: &dyn AccessLog, seq: u64, size: u64) -> Result<Vec<B256>> {
    if seq == 0 || seq > size {
        return Err(StoreError::Database(format!(
            "entry {seq} is not in the first {size} entries of the access log"
        )));
    }
    ranges_roots(log, &tree::path_ranges(seq - 1, size)).await
}

/// A proof that entry `seq` of `log` is covered by the first anchor at or after it;
/// `None` when there is no such entry or no anchor covers it yet.
pub async fn prove(log: &dyn AccessLog, seq: u64) -> Result<Option<Proof>> {
    if seq == 0 {
        return Ok(None);
    }
    let Some(entry) = log.entries(seq - 1, 1).await?.pop().filter(|e| e.seq == seq) else {
        return Ok(None);
    };
    Ok(prove_entries(log, vec![entry]).await?.pop().flatten())
}

/// Proofs of `entries` (as read from `log`), each against the first anchor that covers
/// it (`None` until one does), reading the anchors once and every stored subtree the
/// paths need in one read.
pub async fn prove_entries(
    log: &dyn AccessLog,
    entries: Vec<LoggedEntry>,
) -> Result<Vec<Option<Proof>>> {
    let anchors = log.anchors().await?;
    let covering: Vec<Option<Anchor>> = entries
        .iter()
        .map(|e| {
            let first = anchors.partition_point(|a| a.size < e.seq);
            anchors.get(first).copied().filter(|_| e.seq > 0)
        })
        .collect();
    let ranges: Vec<Vec<(u64, u64)>> = entries
        .iter()
        .zip(&covering)
        .map(|(e, anchor)| anchor.map_or_else(Vec::new, |a| tree::path_ranges(e.seq - 1, a.size)))
        .collect();
    let mut roots = ranges_roots(log, &ranges.concat()).await?.into_iter();
    Ok(entries
        .into_iter()
        .zip(covering)
        .zip(&ranges)
        .map(|((entry, anchor), ranges)| {
            let path: Vec<B256> = roots.by_ref().take(ranges.len()).collect();
            anchor.map(|anchor| Proof { entry, path, anchor })
        })
        .collect())
}

/// Reads the whole log from the start, `page` entries at a time, and checks that
/// sequence numbers have no gaps, each entry's hash follows from its fields and the
/// previous hash, the last hash is the head, and every stored subtree of the Merkle
/// tree is the one the entries give. Returns the head it recomputed.
pub async fn check_chain(log: &dyn AccessLog, page: u32) -> Result<LogHead, ChainError> {
    let (mut size, mut head) = (0, B256::ZERO);
    let mut tree = Frontier::new(0, Vec::new()).expect("the empty frontier");
    loop {
        let entries = log.entries(size, page.max(1)).await?;
        if entries.is_empty() {
            break;
        }
        let mut completed = Vec::new();
        for entry in entries {
            let seq = size + 1;
            if entry.seq != seq {
                return Err(ChainError::Gap { expected: seq, found: entry.seq });
            }
            if entry.prev_hash != head || !entry.is_consistent() {
                return Err(ChainError::Broken { seq });
            }
            completed.extend(tree.push(&entry.hash));
            (size, head) = (seq, entry.hash);
        }
        let nodes: Vec<Node> = completed.iter().map(|(n, _)| *n).collect();
        let stored = log.nodes(&nodes).await?;
        for ((node, expected), stored) in completed.iter().zip(stored) {
            if stored != *expected {
                return Err(ChainError::TreeMismatch { level: node.level, index: node.index });
            }
        }
    }
    let computed = LogHead { size, head, root: tree.root() };
    let stored = log.head().await?;
    if stored != computed {
        return Err(ChainError::HeadMismatch { size: stored.size });
    }
    Ok(computed)
}

/// Why [`check_chain`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The log could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A sequence number is missing.
    #[error("the access log skips from entry {} to entry {found}", expected - 1)]
    Gap {
        /// The sequence number that should have come.
        expected: u64,
        /// The one that came.
        found: u64,
    },
    /// An entry does not follow from the one before it.
    #[error("access log entry {seq} does not follow from its contents and the entry before it")]
    Broken {
        /// The entry.
        seq: u64,
    },
    /// The stored head is not the last entry's hash and the root of the entries.
    #[error(
        "the access log's stored head (size {size}) is not the hash of its last entry and the \
         root of its entries"
    )]
    HeadMismatch {
        /// The stored size.
        size: u64,
    },
    /// A stored subtree of the Merkle tree is not the one the entries give.
    #[error(
        "the access log's stored Merkle tree node at level {level}, index {index} does not match its entries"
    )]
    TreeMismatch {
        /// The subtree's level.
        level: u8,
        /// Its index.
        index: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Decision, entry::tests::sample};

    fn chain_of(n: u64) -> Vec<LoggedEntry> {
        let mut prev = B256::ZERO;
        (1..=n)
            .map(|seq| {
                let mut e = sample();
                e.time += i64::try_from(seq).unwrap();
                let logged = LoggedEntry::chain(seq, prev, e);
                prev = logged.hash;
                logged
            })
            .collect()
    }

    /// The proof of `seq` against an anchor of `size`, built in memory.
    fn proof_of(chain: &[LoggedEntry], seq: u64, size: u64) -> Proof {
        let mut stored = BTreeMap::new();
        let mut frontier = Frontier::new(0, Vec::new()).unwrap();
        for e in &chain[..usize::try_from(size).unwrap()] {
            stored.extend(frontier.push(&e.hash));
        }
        let root_of = |lo, hi| {
            tree::fold(&tree::decompose(lo, hi).iter().map(|n| stored[n]).collect::<Vec<_>>())
        };
        Proof {
            entry: chain[usize::try_from(seq - 1).unwrap()].clone(),
            path: tree::path_ranges(seq - 1, size)
                .iter()
                .map(|&(lo, hi)| root_of(lo, hi))
                .collect(),
            anchor: Anchor { size, root: frontier.root(), block: 7, tx: B256::repeat_byte(9) },
        }
    }

    #[test]
    fn every_entry_proves_against_every_covering_anchor() {
        let chain = chain_of(20);
        for size in 1..=20 {
            for seq in 1..=size {
                let proof = proof_of(&chain, seq, size);
                verify(&proof).unwrap();
                assert!(proof.path.len() <= 5, "{seq} of {size}");
            }
        }
    }

    #[test]
    fn proofs_catch_changes_to_the_entry_the_path_and_the_anchor() {
        let chain = chain_of(6);
        let mut p = proof_of(&chain, 2, 5);
        p.entry.entry.decision = Decision::AllowProvider;
        assert_eq!(verify(&p), Err(ProofError::EntryAltered { seq: 2 }));
        // Altered fields with a hash recomputed to match: the path no longer leads to
        // the anchored root.
        p.entry = LoggedEntry::chain(2, p.entry.prev_hash, p.entry.entry.clone());
        assert_eq!(verify(&p), Err(ProofError::RootMismatch { seq: 2, anchor_size: 5 }));
        // Another previous hash, with the entry's hash recomputed.
        let mut p = proof_of(&chain, 4, 5);
        p.entry = LoggedEntry::chain(4, B256::repeat_byte(1), p.entry.entry);
        assert_eq!(verify(&p), Err(ProofError::RootMismatch { seq: 4, anchor_size: 5 }));
        // Any path element changed, or two swapped.
        let good = proof_of(&chain, 2, 6);
        for i in 0..good.path.len() {
            let mut p = good.clone();
            p.path[i].0[31] ^= 1;
            assert_eq!(verify(&p), Err(ProofError::RootMismatch { seq: 2, anchor_size: 6 }));
        }
        let mut p = good.clone();
        p.path.swap(0, 1);
        assert_eq!(verify(&p), Err(ProofError::RootMismatch { seq: 2, anchor_size: 6 }));
        // Another root, size, or position.
        let mut p = good.clone();
        p.anchor.root.0[0] ^= 1;
        assert_eq!(verify(&p), Err(ProofError::RootMismatch { seq: 2, anchor_size: 6 }));
        // A size that moves the entry in the tree. (A size where the path climbs the
        // same way, 5 to 8 here, gives the same root: the size and the root are
        // checked together, as the chain's `Anchored` event holds them.)
        let mut p = good.clone();
        p.anchor.size = 3;
        assert_eq!(verify(&p), Err(ProofError::WrongLength { expected: 2, got: 3 }));
        let mut p = proof_of(&chain, 6, 6);
        p.anchor.size = 7;
        assert_eq!(verify(&p), Err(ProofError::WrongLength { expected: 3, got: 2 }));
        p.path.push(p.anchor.root);
        assert_eq!(verify(&p), Err(ProofError::RootMismatch { seq: 6, anchor_size: 7 }));
        let mut p = good.clone();
        p.entry.seq = 1;
        assert_eq!(verify(&p), Err(ProofError::EntryAltered { seq: 1 }));
        // A path of the wrong length.
        let mut p = good.clone();
        p.path.pop();
        assert_eq!(verify(&p), Err(ProofError::WrongLength { expected: 3, got: 2 }));
        let mut p = good;
        p.path.push(B256::ZERO);
        assert_eq!(verify(&p), Err(ProofError::WrongLength { expected: 3, got: 4 }));
        // Not covered.
        let mut p = proof_of(&chain, 2, 5);
        p.anchor.size = 1;
        assert_eq!(verify(&p), Err(ProofError::NotCovered { seq: 2, anchor_size: 1 }));
        let mut p = proof_of(&chain, 1, 3);
        p.entry = LoggedEntry::chain(1, B256::repeat_byte(1), p.entry.entry);
        assert_eq!(verify(&p), Err(ProofError::EntryAltered { seq: 1 }));
    }
}
