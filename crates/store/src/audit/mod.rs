//! The access log: every request a gatekeeper decides, allowed or denied, in one
//! hash chain, under a Merkle tree whose root the provider anchors on chain now and
//! then.
//!
//! # The log
//!
//! Entries are numbered from 1 without gaps ([`LoggedEntry::seq`]). An entry records
//! who asked ([`NewEntry::requester`]), for what ([`Action`]), under which relationship
//! and pointer, which resource (type and id only, never content), the [`Decision`], the
//! SHA-256 of the body served and, for research releases, the privacy budget spent.
//! Nothing else: no patient data.
//!
//! [`AccessLog::append`] and [`AccessLog::append_batch`] assign sequence numbers and
//! previous hashes in one transaction, serialised against every other append (an
//! `IMMEDIATE` transaction on SQLite; on PostgreSQL and MySQL/MariaDB a lock on the one
//! row of `audit_head`), so concurrent callers never leave a gap or fork the chain. The
//! gatekeeper does not call them on its hot path: it enqueues into an [`AuditWriter`],
//! which appends in batches.
//!
//! # Hashes
//!
//! All hashes are SHA-256 (as the pointers' data hashes are). Each entry has a
//! *content digest* `d` and an *entry hash* `h`:
//!
//! ```text
//! d_i = SHA-256(encoding of entry i, below)
//! h_i = SHA-256(h_{i-1} ‖ d_i)        with h_0 = 32 zero bytes
//! ```
//!
//! The encoding of an entry is the
//! concatenation of these fields, integers big-endian, with no separators (every field
//! has a fixed size or a length prefix, so the encoding is unambiguous):
//!
//! | field | bytes |
//! |---|---|
//! | domain tag | the 15 ASCII bytes `medrec-audit-v1` |
//! | seq | u64 |
//! | time (unix ms) | i64, two's complement |
//! | requester | 20-byte address |
//! | action | u8: [`Action::code`] |
//! | relationship | `00`, or `01` then 32 bytes |
//! | pointer | `00`, or `01` then u8 |
//! | resource | `00`, or `01`, u8 length, type name (ASCII), then `00` or `01`, u8 length, id (ASCII) |
//! | decision | u8: 1 allow-patient, 2 allow-viewer, 3 allow-provider, 4 deny; after 4: u8 length, reason code (ASCII) |
//! | response hash | `00`, or `01` then 32 bytes |
//! | epsilon | `00`, or `01` then the 8 bytes of the IEEE 754 binary64 value |
//!
//! Epsilon is kept exactly, as its binary64 bits (the SQL backends store those bits in
//! an integer column, `epsilon_bits`), so it hashes the same after a round trip.
//!
//! # The tree, anchors and proofs
//!
//! Over the entry hashes the log keeps a Merkle tree as Certificate Transparency does
//! (RFC 6962; [`tree`]): leaf `i` is `SHA-256(0x00 ‖ h_i)`, an inner node
//! `SHA-256(0x01 ‖ left ‖ right)`, and the tree of the first `n` entries splits at the
//! largest power of two below `n`. The log's head ([`LogHead`]) is its size, the hash
//! of its last entry, and the root of the tree of all its entries.
//!
//! What the provider anchors on chain (the `bytes32` of `AccessAnchors.anchor`, which
//! the contract calls `head`) is that **root** with the size ([`Anchor`]). To show that
//! entry `i` is covered by an anchor of size `n >= i`, a [`Proof`] carries the entry
//! (all its fields and `h_{i-1}`) and the inclusion path of its leaf in the tree of the
//! first `n` entries: at most `⌈log2 n⌉` hashes, however many entries came between.
//! [`verify`] recomputes `d_i` from the fields, `h_i`, the leaf, then climbs the path
//! to the root, which must be the anchored one. Changing any field of the entry, its
//! previous hash or any hash of the path changes the root. [`prove`] builds a proof
//! with the first anchor that covers the entry. [`verify`] trusts the anchor it is
//! given: a verifier must also check that the anchor is on chain (`AccessAnchors.latest`,
//! or the `Anchored` events), the size and the root together: one path can climb to
//! the same root for a few neighbouring sizes, so the root means nothing without its
//! size.
//!
//! The backends store each complete subtree of the tree (a [`tree::Node`]) above the
//! leaves when its last entry is appended, in the same transaction: they never change
//! afterwards, so the root of any prefix and any inclusion path are read from at most
//! `2·log2 n` stored hashes ([`AccessLog::nodes`]), not recomputed from the entries. A
//! leaf is not stored: it is computed from its entry's hash, which the entry's row holds
//! ([`tree::is_stored`]).

mod entry;
mod proof;
mod row;
mod writer;

pub mod sql;
pub mod sqlite;
pub mod tree;

#[cfg(feature = "test-utils")]
pub mod conformance;

pub use entry::{
    Action, AuditError, DOMAIN_TAG, Decision, DenyReason, LoggedEntry, NewEntry, ResourceRef,
    chain_hash,
};
pub use proof::{
    ChainError, Proof, ProofError, check_chain, inclusion_path, prove, prove_entries, root_at,
    verify,
};
pub use writer::{AuditWriter, EnqueueError, WriterConfig};

use crate::Result;
use alloy_primitives::B256;
use std::fmt;
use tree::Node;

/// The log's size, last hash and Merkle root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogHead {
    /// How many entries there are.
    pub size: u64,
    /// The hash of the last entry (zero when empty).
    pub head: B256,
    /// The Merkle root of all the entries ([`tree::EMPTY_ROOT`] when empty): what an
    /// anchor of this size puts on chain.
    pub root: B256,
}

impl LogHead {
    /// The head of the empty log.
    pub const EMPTY: Self = Self { size: 0, head: B256::ZERO, root: tree::EMPTY_ROOT };
}

/// A root that was put on chain: the `(head, size)` of an `AccessAnchors.anchor`
/// transaction, where the contract's `head` is the Merkle root of the first `size`
/// entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Anchor {
    /// The log's size then.
    pub size: u64,
    /// The Merkle root of entries `1..=size`.
    pub root: B256,
    /// The block that included the anchoring transaction.
    pub block: u64,
    /// The anchoring transaction.
    pub tx: B256,
}

/// Where access log entries are kept.
#[async_trait::async_trait]
pub trait AccessLog: Send + Sync + fmt::Debug {
    /// Appends one entry, atomically: its sequence number and previous hash are assigned
    /// in the same transaction, serialised against other appends.
    async fn append(&self, entry: NewEntry) -> Result<LoggedEntry> {
        let mut logged = self.append_batch(vec![entry]).await?;
        logged.pop().ok_or_else(|| row::corrupt("no entry after an append"))
    }

    /// Appends `entries` in order in one transaction: all or none.
    async fn append_batch(&self, entries: Vec<NewEntry>) -> Result<Vec<LoggedEntry>>;

    /// The log's size, last hash and Merkle root.
    async fn head(&self) -> Result<LogHead>;

    /// Records a root that was anchored on chain. It must be the log's own Merkle root
    /// of its first `anchor.size` entries; recording the same anchor again does nothing.
    async fn record_anchor(&self, anchor: Anchor) -> Result<()>;

    /// The anchors recorded, ascending by size.
    async fn anchors(&self) -> Result<Vec<Anchor>>;

    /// Up to `limit` entries after `after_seq`, ascending.
    async fn entries(&self, after_seq: u64, limit: u32) -> Result<Vec<LoggedEntry>>;

    /// Up to `limit` entries after `after_seq` about any of `relationships`, ascending.
    async fn entries_about(
        &self,
        relationships: &[B256],
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<LoggedEntry>>;

    /// The entry hashes of `from_seq ..= to_seq_inclusive` (those that exist), in order.
    async fn hashes(&self, from_seq: u64, to_seq_inclusive: u64) -> Result<Vec<B256>>;

    /// The content digests of `from_seq ..= to_seq_inclusive` (those that exist), in
    /// order.
    async fn digests(&self, from_seq: u64, to_seq_inclusive: u64) -> Result<Vec<B256>>;

    /// The stored hashes of the complete subtrees `nodes` (see [`tree`]), in the order
    /// asked, in one read. A subtree that is not complete yet is an error.
    async fn nodes(&self, nodes: &[Node]) -> Result<Vec<B256>>;
}

#[async_trait::async_trait]
impl<T: AccessLog + ?Sized> AccessLog for std::sync::Arc<T> {
    async fn append(&self, entry: NewEntry) -> Result<LoggedEntry> {
        (**self).append(entry).await
    }

    async fn append_batch(&self, entries: Vec<NewEntry>) -> Result<Vec<LoggedEntry>> {
        (**self).append_batch(entries).await
    }

    async fn head(&self) -> Result<LogHead> {
        (**self).head().await
    }

    async fn record_anchor(&self, anchor: Anchor) -> Result<()> {
        (**self).record_anchor(anchor).await
    }

    async fn anchors(&self) -> Result<Vec<Anchor>> {
        (**self).anchors().await
    }

    async fn entries(&self, after_seq: u64, limit: u32) -> Result<Vec<LoggedEntry>> {
        (**self).entries(after_seq, limit).await
    }

    async fn entries_about(
        &self,
        relationships: &[B256],
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<LoggedEntry>> {
        (**self).entries_about(relationships, after_seq, limit).await
    }

    async fn hashes(&self, from_seq: u64, to_seq_inclusive: u64) -> Result<Vec<B256>> {
        (**self).hashes(from_seq, to_seq_inclusive).await
    }

    async fn digests(&self, from_seq: u64, to_seq_inclusive: u64) -> Result<Vec<B256>> {
        (**self).digests(from_seq, to_seq_inclusive).await
    }

    async fn nodes(&self, nodes: &[Node]) -> Result<Vec<B256>> {
        (**self).nodes(nodes).await
    }
}
