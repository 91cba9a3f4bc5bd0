//! What every backend shares: an entry as stored ([`Row`]), hex columns, and the
//! checks of an anchor before it is recorded.

use super::{
    Anchor, AuditError, LoggedEntry, NewEntry, ResourceRef,
    tree::{self, Node},
};
use crate::{Result, StoreError};
use alloy_primitives::{B256, hex};
use std::collections::HashMap;

/// A database error about the access log's contents.
pub(super) fn corrupt(what: &str) -> StoreError {
    StoreError::Database(format!("the access log {what}"))
}

/// The columns of a stored entry, as every backend keeps them (hashes and addresses as
/// lowercase `0x` hex, `epsilon_bits` as the binary64 bits in a signed integer).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Row {
    pub(super) seq: i64,
    pub(super) time: i64,
    pub(super) requester: String,
    pub(super) action: String,
    pub(super) relationship: Option<String>,
    pub(super) pointer: Option<i64>,
    pub(super) resource_type: Option<String>,
    pub(super) resource_id: Option<String>,
    pub(super) decision: String,
    pub(super) response_hash: Option<String>,
    pub(super) epsilon_bits: Option<i64>,
    pub(super) prev_hash: String,
    pub(super) digest: String,
    pub(super) hash: String,
}

/// The columns of [`Row`] in order, for `SELECT`s and `INSERT`s.
pub(super) const COLUMNS: &str = "seq, at_ms, requester, action, relationship, pointer, resource_type, \
    resource_id, decision, response_hash, epsilon_bits, prev_hash, digest, hash";

pub(super) fn hex32(b: &B256) -> String {
    hex::encode_prefixed(b)
}

pub(super) fn parse_b256(s: &str, what: &str) -> Result<B256> {
    s.parse().map_err(|_| corrupt(&format!("holds {what} that is not a 32-byte hex value")))
}

pub(super) fn to_i64(n: u64, what: &str) -> Result<i64> {
    i64::try_from(n).map_err(|_| StoreError::Database(format!("{what} {n} is out of range")))
}

impl Row {
    #[cfg(test)]
    pub(super) fn from_logged(logged: &LoggedEntry) -> Result<Self> {
        Self::from_chained(logged, &logged.digest())
    }

    /// The row of `logged`, whose content digest is `digest` (as
    /// [`LoggedEntry::chain_with_digest`] gave it: not hashed again).
    pub(super) fn from_chained(logged: &LoggedEntry, digest: &B256) -> Result<Self> {
        let e = &logged.entry;
        Ok(Self {
            seq: to_i64(logged.seq, "sequence number")?,
            time: e.time,
            requester: hex::encode_prefixed(e.requester),
            action: e.action.as_str().to_owned(),
            relationship: e.relationship.as_ref().map(hex32),
            pointer: e.pointer.map(i64::from),
            resource_type: e.resource.as_ref().map(|r| r.resource_type.as_str().to_owned()),
            resource_id: e
                .resource
                .as_ref()
                .and_then(|r| r.id.as_ref())
                .map(|id| id.as_str().to_owned()),
            decision: e.decision.to_string(),
            response_hash: e.response_hash.as_ref().map(hex32),
            epsilon_bits: e.epsilon.map(|x| i64::from_be_bytes(x.to_bits().to_be_bytes())),
            prev_hash: hex32(&logged.prev_hash),
            digest: hex32(digest),
            hash: hex32(&logged.hash),
        })
    }

    pub(super) fn into_logged(self) -> Result<LoggedEntry> {
        let bad = |what: &str| corrupt(&format!("holds {what}"));
        let seq = u64::try_from(self.seq).map_err(|_| bad("a negative sequence number"))?;
        let requester =
            self.requester.parse().map_err(|_| bad("a requester that is no address"))?;
        let action = self.action.parse().map_err(|e: AuditError| bad(&e.to_string()))?;
        let relationship =
            self.relationship.as_deref().map(|s| parse_b256(s, "a relationship")).transpose()?;
        let pointer = self
            .pointer
            .map(|p| u8::try_from(p).map_err(|_| bad("a pointer out of range")))
            .transpose()?;
        let resource = match self.resource_type {
            None => None,
            Some(ty) => Some(ResourceRef {
                resource_type: ty.parse().map_err(|_| bad("an unknown resource type"))?,
                id: self
                    .resource_id
                    .map(|id| id.parse().map_err(|_| bad("an invalid resource id")))
                    .transpose()?,
            }),
        };
        let decision = self.decision.parse().map_err(|e: AuditError| bad(&e.to_string()))?;
        let response_hash =
            self.response_hash.as_deref().map(|s| parse_b256(s, "a response hash")).transpose()?;
        let epsilon =
            self.epsilon_bits.map(|b| f64::from_bits(u64::from_be_bytes(b.to_be_bytes())));
        Ok(LoggedEntry {
            seq,
            entry: NewEntry {
                time: self.time,
                requester,
                action,
                relationship,
                pointer,
                resource,
                decision,
                response_hash,
                epsilon,
            },
            prev_hash: parse_b256(&self.prev_hash, "a previous hash")?,
            hash: parse_b256(&self.hash, "an entry hash")?,
        })
    }
}

/// The sequence numbers of the entries whose hashes give the leaves among `nodes`
/// (leaves are not stored: [`tree::is_stored`]).
pub(super) fn leaf_seqs(nodes: &[Node]) -> Vec<u64> {
    nodes.iter().filter(|n| !tree::is_stored(**n)).map(|n| n.index + 1).collect()
}

/// The hashes of `nodes` in order: a stored subtree from `stored` (by level and index),
/// a leaf from its entry's hash in `entries` (by sequence number). A missing one is an
/// error.
pub(super) fn assemble(
    nodes: &[Node],
    stored: &HashMap<(i64, i64), B256>,
    entries: &HashMap<u64, B256>,
) -> Result<Vec<B256>> {
    nodes
        .iter()
        .map(|n| {
            let found = if tree::is_stored(*n) {
                stored.get(&(i64::from(n.level), to_i64(n.index, "tree index")?)).copied()
            } else {
                entries.get(&(n.index + 1)).map(tree::leaf_hash)
            };
            found.ok_or_else(|| {
                corrupt(&format!("has no tree node at level {} index {}", n.level, n.index))
            })
        })
        .collect()
}

/// Checks an anchor against the log's own root of its first `anchor.size` entries
/// (`None`: the log has fewer entries).
pub(super) fn check_anchor(anchor: &Anchor, own: Option<B256>) -> Result<()> {
    match own {
        None => Err(StoreError::Database(format!(
            "cannot record an anchor of size {}: the access log has no entry {}",
            anchor.size, anchor.size
        ))),
        Some(own) if own != anchor.root => Err(StoreError::Database(format!(
            "cannot record an anchor of size {}: its root {} is not the access log's root {own} \
             at that size",
            anchor.size, anchor.root
        ))),
        Some(_) => Ok(()),
    }
}

/// Checks that an anchor recorded before at the same size is the same anchor.
pub(super) fn check_same_anchor(new: &Anchor, old: &Anchor) -> Result<()> {
    if new == old {
        Ok(())
    } else {
        Err(StoreError::Database(format!(
            "an anchor of size {} is already recorded, from block {} (now block {})",
            new.size, old.block, new.block
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::entry::tests::sample;

    #[test]
    fn rows_round_trip() {
        let logged = LoggedEntry::chain(9, B256::repeat_byte(3), sample());
        let row = Row::from_logged(&logged).unwrap();
        assert_eq!(row.requester, format!("0x{}", "ab".repeat(20)));
        assert_eq!(row.into_logged().unwrap(), logged);
        let mut negative = sample();
        negative.epsilon = Some(-0.0);
        let logged = LoggedEntry::chain(1, B256::ZERO, negative);
        let back = Row::from_logged(&logged).unwrap().into_logged().unwrap();
        assert_eq!(back.entry.epsilon.unwrap().to_bits(), (-0.0f64).to_bits());
        assert!(back.is_consistent());
    }
}
