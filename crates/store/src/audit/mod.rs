//! The access log: every request a gatekeeper decides, allowed or denied, in one
//! hash chain that the provider anchors on chain now and then.
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
//! The log's head ([`LogHead`]) is `(size, h_size)`. The encoding of an entry is the
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
//! # Proofs
//!
//! An [`Anchor`] is a head the provider put on chain (see the `AccessAnchors`
//! contract). To show that entry `i` is covered by an anchor of size `n >= i`, a
//! [`Proof`] carries the entry (all its fields and `h_{i-1}`) and the content digests
//! `d_{i+1}, ..., d_n`. [`verify`] recomputes `d_i` from the fields, `h_i`, then
//! `h_{i+1} = SHA-256(h_i ‖ d_{i+1})` and so on up to `h_n`, which must equal the
//! anchored head. Changing any field of the entry, or any entry before it, changes
//! `h_n`. [`prove`] builds a proof from a log with the first anchor that covers the
//! entry. [`verify`] trusts the anchor it is given: a verifier must also check that the
//! anchor is on chain (`AccessAnchors.latest`, or the `Anchored` events).

mod writer;

pub mod sql;
pub mod sqlite;

#[cfg(feature = "test-utils")]
pub mod conformance;

pub use writer::{AuditWriter, EnqueueError, WriterConfig};

use crate::{
    Result, StoreError,
    fhir::{ResourceId, ResourceType},
};
use alloy_primitives::{Address, B256, hex};
use sha2::{Digest, Sha256};
use std::{fmt, str::FromStr};

/// The first bytes of every entry's encoding.
pub const DOMAIN_TAG: &[u8; 15] = b"medrec-audit-v1";

/// What a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// Running a data pointer's query.
    PointerRead,
    /// Reading one FHIR resource.
    FhirRead,
    /// A FHIR search.
    FhirSearch,
    /// Creating or updating a FHIR resource.
    FhirWrite,
    /// Redeeming a research bounty.
    BountyRedemption,
    /// Signing in (a token request).
    Auth,
    /// A patient reading the access log about their records.
    LogRead,
}

impl Action {
    /// Every action.
    pub const ALL: [Self; 7] = [
        Self::PointerRead,
        Self::FhirRead,
        Self::FhirSearch,
        Self::FhirWrite,
        Self::BountyRedemption,
        Self::Auth,
        Self::LogRead,
    ];

    /// Its byte in the entry encoding.
    pub const fn code(self) -> u8 {
        match self {
            Self::PointerRead => 1,
            Self::FhirRead => 2,
            Self::FhirSearch => 3,
            Self::FhirWrite => 4,
            Self::BountyRedemption => 5,
            Self::Auth => 6,
            Self::LogRead => 7,
        }
    }

    /// Its name, as stored: `pointer-read`, `fhir-read`, `fhir-search`, `fhir-write`,
    /// `bounty-redemption`, `auth`, `log-read`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::PointerRead => "pointer-read",
            Self::FhirRead => "fhir-read",
            Self::FhirSearch => "fhir-search",
            Self::FhirWrite => "fhir-write",
            Self::BountyRedemption => "bounty-redemption",
            Self::Auth => "auth",
            Self::LogRead => "log-read",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = AuditError;

    fn from_str(s: &str) -> Result<Self, AuditError> {
        Self::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| AuditError::UnknownAction(s.chars().take(40).collect()))
    }
}

/// Why a request was refused: a short code, 1 to 64 characters of `a-z`, `0-9`, `-`,
/// `_` and `.` (e.g. `not-a-viewer`, `expired`), so no free text (or patient data)
/// can end up in the log.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DenyReason(String);

impl DenyReason {
    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for DenyReason {
    type Err = AuditError;

    fn from_str(s: &str) -> Result<Self, AuditError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
            });
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(AuditError::InvalidReason(s.chars().take(40).collect()))
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What the gatekeeper decided.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Decision {
    /// Served to the patient of the relationship.
    AllowPatient,
    /// Served to a viewer the patient granted.
    AllowViewer,
    /// Served to the provider (steward) itself.
    AllowProvider,
    /// Released to a research entity redeeming a bounty it owns (an aggregate).
    AllowResearcher,
    /// Refused, and why.
    Deny(DenyReason),
}

impl Decision {
    /// Whether the request was served.
    pub const fn is_allowed(&self) -> bool {
        !matches!(self, Self::Deny(_))
    }

    /// Its byte in the entry encoding.
    pub const fn code(&self) -> u8 {
        match self {
            Self::AllowPatient => 1,
            Self::AllowViewer => 2,
            Self::AllowProvider => 3,
            Self::Deny(_) => 4,
            Self::AllowResearcher => 5,
        }
    }
}

/// As stored: `allow-patient`, `allow-viewer`, `allow-provider`, `allow-researcher` or
/// `deny:<reason>`.
impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AllowPatient => f.write_str("allow-patient"),
            Self::AllowViewer => f.write_str("allow-viewer"),
            Self::AllowProvider => f.write_str("allow-provider"),
            Self::AllowResearcher => f.write_str("allow-researcher"),
            Self::Deny(reason) => write!(f, "deny:{reason}"),
        }
    }
}

impl FromStr for Decision {
    type Err = AuditError;

    fn from_str(s: &str) -> Result<Self, AuditError> {
        match s {
            "allow-patient" => Ok(Self::AllowPatient),
            "allow-viewer" => Ok(Self::AllowViewer),
            "allow-provider" => Ok(Self::AllowProvider),
            "allow-researcher" => Ok(Self::AllowResearcher),
            _ => match s.strip_prefix("deny:") {
                Some(reason) => Ok(Self::Deny(reason.parse()?)),
                None => Err(AuditError::UnknownDecision(s.chars().take(40).collect())),
            },
        }
    }
}

/// The resource a request was about: its type, and its id when it named one (a search
/// names only a type). Never its content.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceRef {
    /// The type.
    pub resource_type: ResourceType,
    /// The id, when the request named one.
    pub id: Option<ResourceId>,
}

/// An entry to append: everything but its place in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEntry {
    /// When the request was decided, unix milliseconds.
    pub time: i64,
    /// The address that signed the request (the zero address when unauthenticated).
    pub requester: Address,
    /// What it asked for.
    pub action: Action,
    /// The relationship (PPR) it was about, when known.
    pub relationship: Option<B256>,
    /// The pointer of that relationship, when it ran one.
    pub pointer: Option<u8>,
    /// The resource, when it named one.
    pub resource: Option<ResourceRef>,
    /// The decision.
    pub decision: Decision,
    /// SHA-256 of the response body served (none when refused).
    pub response_hash: Option<B256>,
    /// The differential-privacy budget a research release spent.
    pub epsilon: Option<f64>,
}

impl NewEntry {
    /// An entry at `time` with no relationship, pointer, resource, response or epsilon.
    pub const fn new(time: i64, requester: Address, action: Action, decision: Decision) -> Self {
        Self {
            time,
            requester,
            action,
            relationship: None,
            pointer: None,
            resource: None,
            decision,
            response_hash: None,
            epsilon: None,
        }
    }

    /// The entry's encoding at position `seq` (see the module docs).
    pub fn encode(&self, seq: u64) -> Vec<u8> {
        fn optional(out: &mut Vec<u8>, bytes: Option<&[u8]>) {
            match bytes {
                None => out.push(0),
                Some(bytes) => {
                    out.push(1);
                    out.extend_from_slice(bytes);
                }
            }
        }
        fn short(out: &mut Vec<u8>, s: &str) {
            // Types, ids (<= 64) and reasons (<= 64) are short ASCII by construction.
            let len = u8::try_from(s.len()).expect("short strings only");
            out.push(len);
            out.extend_from_slice(s.as_bytes());
        }
        let mut out = Vec::with_capacity(200);
        out.extend_from_slice(DOMAIN_TAG);
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&self.time.to_be_bytes());
        out.extend_from_slice(self.requester.as_slice());
        out.push(self.action.code());
        optional(&mut out, self.relationship.as_ref().map(B256::as_slice));
        optional(&mut out, self.pointer.map(|p| [p]).as_ref().map(<[u8; 1]>::as_slice));
        match &self.resource {
            None => out.push(0),
            Some(resource) => {
                out.push(1);
                short(&mut out, resource.resource_type.as_str());
                match &resource.id {
                    None => out.push(0),
                    Some(id) => {
                        out.push(1);
                        short(&mut out, id.as_str());
                    }
                }
            }
        }
        out.push(self.decision.code());
        if let Decision::Deny(reason) = &self.decision {
            short(&mut out, reason.as_str());
        }
        optional(&mut out, self.response_hash.as_ref().map(B256::as_slice));
        let epsilon = self.epsilon.map(|e| e.to_bits().to_be_bytes());
        optional(&mut out, epsilon.as_ref().map(<[u8; 8]>::as_slice));
        out
    }

    /// The content digest of the entry at position `seq`: SHA-256 of its encoding.
    pub fn digest(&self, seq: u64) -> B256 {
        B256::from(<[u8; 32]>::from(Sha256::digest(self.encode(seq))))
    }
}

/// The entry hash that follows `prev` for an entry with content digest `digest`.
pub fn chain_hash(prev: &B256, digest: &B256) -> B256 {
    let mut hasher = Sha256::new();
    hasher.update(prev);
    hasher.update(digest);
    B256::from(<[u8; 32]>::from(hasher.finalize()))
}

/// An entry in its place in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEntry {
    /// Its position, from 1.
    pub seq: u64,
    /// The entry.
    pub entry: NewEntry,
    /// The hash of the entry before it (zero for the first).
    pub prev_hash: B256,
    /// Its hash: `SHA-256(prev_hash ‖ digest)`.
    pub hash: B256,
}

impl LoggedEntry {
    /// `entry` at position `seq` after an entry hashed `prev_hash`.
    pub fn chain(seq: u64, prev_hash: B256, entry: NewEntry) -> Self {
        let hash = chain_hash(&prev_hash, &entry.digest(seq));
        Self { seq, entry, prev_hash, hash }
    }

    /// Its content digest, recomputed from its fields.
    pub fn digest(&self) -> B256 {
        self.entry.digest(self.seq)
    }

    /// Whether `hash` is what the fields and `prev_hash` give.
    pub fn is_consistent(&self) -> bool {
        chain_hash(&self.prev_hash, &self.digest()) == self.hash
    }
}

/// The log's size and head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LogHead {
    /// How many entries there are.
    pub size: u64,
    /// The hash of the last entry (zero when empty).
    pub head: B256,
}

/// A head that was put on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Anchor {
    /// The log's size then.
    pub size: u64,
    /// The hash of entry `size`.
    pub head: B256,
    /// The block that included the anchoring transaction.
    pub block: u64,
    /// The anchoring transaction.
    pub tx: B256,
}

/// A problem with an access log entry's values (when parsing them or reading them back).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// Not one of the [`Action`] names.
    #[error("'{0}' is not an access log action")]
    UnknownAction(String),
    /// Not one of the [`Decision`] forms.
    #[error(
        "'{0}' is not an access log decision (allow-patient, allow-viewer, allow-provider or deny:<reason>)"
    )]
    UnknownDecision(String),
    /// Not a valid [`DenyReason`].
    #[error("'{0}' is not a deny reason code (1 to 64 characters of a-z, 0-9, '-', '_' and '.')")]
    InvalidReason(String),
}

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
    /// The proof has the wrong number of digests for the distance to the anchor.
    #[error("the proof has {got} digests where {expected} lead from the entry to the anchor")]
    WrongLength {
        /// `anchor.size - seq`.
        expected: u64,
        /// How many it has.
        got: u64,
    },
    /// Walking from the entry does not reach the anchored head.
    #[error("the chain from entry {seq} does not lead to the head anchored at size {anchor_size}")]
    HeadMismatch {
        /// The entry.
        seq: u64,
        /// The anchor's size.
        anchor_size: u64,
    },
}

/// Evidence that an entry is covered by an anchored head.
#[derive(Debug, Clone, PartialEq)]
pub struct Proof {
    /// The entry, with its previous hash.
    pub entry: LoggedEntry,
    /// Content digests of entries `entry.seq + 1 ..= anchor.size`, in order.
    pub following: Vec<B256>,
    /// The anchor.
    pub anchor: Anchor,
}

/// Checks `proof`: the entry's hash from its fields, then the chain up to the anchored
/// head (see the module docs). Needs nothing but the proof; whether the anchor is on
/// chain is for the caller to check.
pub fn verify(proof: &Proof) -> std::result::Result<(), ProofError> {
    let Proof { entry, following, anchor } = proof;
    let (seq, anchor_size) = (entry.seq, anchor.size);
    if seq == 0 || seq > anchor_size {
        return Err(ProofError::NotCovered { seq, anchor_size });
    }
    let expected = anchor_size - seq;
    let got = following.len() as u64;
    if got != expected {
        return Err(ProofError::WrongLength { expected, got });
    }
    // The first entry has no previous entry: its previous hash must be zero.
    if seq == 1 && entry.prev_hash != B256::ZERO {
        return Err(ProofError::EntryAltered { seq });
    }
    let own = chain_hash(&entry.prev_hash, &entry.digest());
    if own != entry.hash {
        return Err(ProofError::EntryAltered { seq });
    }
    let head = following.iter().fold(own, |h, d| chain_hash(&h, d));
    if head == anchor.head { Ok(()) } else { Err(ProofError::HeadMismatch { seq, anchor_size }) }
}

/// A proof that entry `seq` of `log` is covered by the first anchor at or after it;
/// `None` when there is no such entry or no anchor covers it yet.
pub async fn prove(log: &dyn AccessLog, seq: u64) -> Result<Option<Proof>> {
    if seq == 0 {
        return Ok(None);
    }
    let Some(anchor) = log.anchors().await?.into_iter().find(|a| a.size >= seq) else {
        return Ok(None);
    };
    let Some(entry) = log.entries(seq - 1, 1).await?.pop().filter(|e| e.seq == seq) else {
        return Ok(None);
    };
    let following =
        if anchor.size > seq { log.digests(seq + 1, anchor.size).await? } else { Vec::new() };
    if following.len() as u64 != anchor.size - seq {
        return Err(corrupt(&format!(
            "{} digests after entry {seq} where the anchor of size {} needs {}",
            following.len(),
            anchor.size,
            anchor.size - seq
        )));
    }
    Ok(Some(Proof { entry, following, anchor }))
}

/// Reads the whole log from the start, `page` entries at a time, and checks that
/// sequence numbers have no gaps, each entry's hash follows from its fields and the
/// previous hash, and the last hash is the head. Returns the head it recomputed.
pub async fn check_chain(log: &dyn AccessLog, page: u32) -> Result<LogHead, ChainError> {
    let mut head = LogHead { size: 0, head: B256::ZERO };
    loop {
        let entries = log.entries(head.size, page.max(1)).await?;
        if entries.is_empty() {
            break;
        }
        for entry in entries {
            let seq = head.size + 1;
            if entry.seq != seq {
                return Err(ChainError::Gap { expected: seq, found: entry.seq });
            }
            if entry.prev_hash != head.head || !entry.is_consistent() {
                return Err(ChainError::Broken { seq });
            }
            head = LogHead { size: seq, head: entry.hash };
        }
    }
    let stored = log.head().await?;
    if stored == head { Ok(head) } else { Err(ChainError::HeadMismatch { size: stored.size }) }
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
    /// The stored head is not the last entry's hash.
    #[error("the access log's stored head (size {size}) is not the hash of its last entry")]
    HeadMismatch {
        /// The stored size.
        size: u64,
    },
}

/// Where access log entries are kept.
#[async_trait::async_trait]
pub trait AccessLog: Send + Sync + fmt::Debug {
    /// Appends one entry, atomically: its sequence number and previous hash are assigned
    /// in the same transaction, serialised against other appends.
    async fn append(&self, entry: NewEntry) -> Result<LoggedEntry> {
        let mut logged = self.append_batch(vec![entry]).await?;
        logged.pop().ok_or_else(|| corrupt("no entry after an append"))
    }

    /// Appends `entries` in order in one transaction: all or none.
    async fn append_batch(&self, entries: Vec<NewEntry>) -> Result<Vec<LoggedEntry>>;

    /// The log's size and head.
    async fn head(&self) -> Result<LogHead>;

    /// Records a head that was anchored on chain. It must be the log's own hash at
    /// `anchor.size`; recording the same anchor again does nothing.
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
    /// order: what a [`Proof`] carries.
    async fn digests(&self, from_seq: u64, to_seq_inclusive: u64) -> Result<Vec<B256>>;
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
}

/// A database error about the access log's contents.
fn corrupt(what: &str) -> StoreError {
    StoreError::Database(format!("the access log {what}"))
}

/// The columns of a stored entry, as every backend keeps them (hashes and addresses as
/// lowercase `0x` hex, `epsilon_bits` as the binary64 bits in a signed integer).
#[derive(Debug, Clone, PartialEq)]
struct Row {
    seq: i64,
    time: i64,
    requester: String,
    action: String,
    relationship: Option<String>,
    pointer: Option<i64>,
    resource_type: Option<String>,
    resource_id: Option<String>,
    decision: String,
    response_hash: Option<String>,
    epsilon_bits: Option<i64>,
    prev_hash: String,
    digest: String,
    hash: String,
}

/// The columns of [`Row`] in order, for `SELECT`s and `INSERT`s.
const COLUMNS: &str = "seq, at_ms, requester, action, relationship, pointer, resource_type, \
    resource_id, decision, response_hash, epsilon_bits, prev_hash, digest, hash";

fn hex32(b: &B256) -> String {
    hex::encode_prefixed(b)
}

fn parse_b256(s: &str, what: &str) -> Result<B256> {
    s.parse().map_err(|_| corrupt(&format!("holds {what} that is not a 32-byte hex value")))
}

fn to_i64(n: u64, what: &str) -> Result<i64> {
    i64::try_from(n).map_err(|_| StoreError::Database(format!("{what} {n} is out of range")))
}

impl Row {
    fn from_logged(logged: &LoggedEntry) -> Result<Self> {
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
            digest: hex32(&logged.digest()),
            hash: hex32(&logged.hash),
        })
    }

    fn into_logged(self) -> Result<LoggedEntry> {
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

/// Checks an anchor against the log's own hash at its size (`None`: no such entry).
fn check_anchor(anchor: &Anchor, own: Option<B256>) -> Result<()> {
    match own {
        None => Err(StoreError::Database(format!(
            "cannot record an anchor of size {}: the access log has no entry {}",
            anchor.size, anchor.size
        ))),
        Some(own) if own != anchor.head => Err(StoreError::Database(format!(
            "cannot record an anchor of size {}: its head {} is not the access log's hash {own} there",
            anchor.size, anchor.head
        ))),
        Some(_) => Ok(()),
    }
}

/// Checks that an anchor recorded before at the same size is the same anchor.
fn check_same_anchor(new: &Anchor, old: &Anchor) -> Result<()> {
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

    fn sample() -> NewEntry {
        NewEntry {
            time: 1_767_225_600_000,
            requester: Address::repeat_byte(0xab),
            action: Action::PointerRead,
            relationship: Some(B256::repeat_byte(0x11)),
            pointer: Some(3),
            resource: Some(ResourceRef {
                resource_type: ResourceType::Observation,
                id: Some("o-1".parse().unwrap()),
            }),
            decision: Decision::AllowViewer,
            response_hash: Some(B256::repeat_byte(0x22)),
            epsilon: Some(0.5),
        }
    }

    #[test]
    fn the_encoding_is_as_documented() {
        let e = sample();
        let mut expected = b"medrec-audit-v1".to_vec();
        expected.extend_from_slice(&7u64.to_be_bytes());
        expected.extend_from_slice(&1_767_225_600_000i64.to_be_bytes());
        expected.extend_from_slice(&[0xab; 20]);
        expected.push(1);
        expected.push(1);
        expected.extend_from_slice(&[0x11; 32]);
        expected.extend_from_slice(&[1, 3]);
        expected.extend_from_slice(&[1, 11]);
        expected.extend_from_slice(b"Observation");
        expected.extend_from_slice(&[1, 3]);
        expected.extend_from_slice(b"o-1");
        expected.push(2);
        expected.push(1);
        expected.extend_from_slice(&[0x22; 32]);
        expected.push(1);
        expected.extend_from_slice(&0.5f64.to_bits().to_be_bytes());
        assert_eq!(e.encode(7), expected);

        let mut bare =
            NewEntry::new(-1, Address::ZERO, Action::Auth, "deny:expired".parse().unwrap());
        let mut expected = b"medrec-audit-v1".to_vec();
        expected.extend_from_slice(&1u64.to_be_bytes());
        expected.extend_from_slice(&[0xff; 8]);
        expected.extend_from_slice(&[0; 20]);
        expected.extend_from_slice(&[6, 0, 0, 0, 4, 7]);
        expected.extend_from_slice(b"expired");
        expected.extend_from_slice(&[0, 0]);
        assert_eq!(bare.encode(1), expected);
        // A search: a type and no id.
        bare.resource = Some(ResourceRef { resource_type: ResourceType::Patient, id: None });
        assert!(bare.encode(1).windows(10).any(|w| w == b"\x01\x07Patient\x00"));
    }

    #[test]
    fn hashes_are_sha256_of_prev_and_digest() {
        let e = sample();
        let digest = e.digest(1);
        let direct: [u8; 32] = Sha256::digest(e.encode(1)).into();
        assert_eq!(digest.0, direct);
        let logged = LoggedEntry::chain(1, B256::ZERO, e.clone());
        let mut both = [0u8; 64];
        both[32..].copy_from_slice(digest.as_slice());
        let expected: [u8; 32] = Sha256::digest(both).into();
        assert_eq!(logged.hash.0, expected);
        assert!(logged.is_consistent());
        // The position is part of the hash.
        assert_ne!(e.digest(2), digest);
    }

    #[test]
    fn every_field_changes_the_digest() {
        let base = sample();
        let d = base.digest(5);
        let mut changes: Vec<NewEntry> = Vec::new();
        let mut push = |f: &dyn Fn(&mut NewEntry)| {
            let mut e = base.clone();
            f(&mut e);
            changes.push(e);
        };
        push(&|e| e.time += 1);
        push(&|e| e.requester = Address::repeat_byte(0xac));
        push(&|e| e.action = Action::FhirRead);
        push(&|e| e.relationship = None);
        push(&|e| e.pointer = Some(4));
        push(&|e| e.pointer = None);
        push(&|e| e.resource = None);
        push(&|e| e.resource.as_mut().unwrap().id = None);
        push(&|e| e.decision = Decision::AllowPatient);
        push(&|e| e.decision = Decision::Deny("x".parse().unwrap()));
        push(&|e| e.response_hash = None);
        push(&|e| e.epsilon = Some(0.25));
        push(&|e| e.epsilon = None);
        for (i, e) in changes.iter().enumerate() {
            assert_ne!(e.digest(5), d, "change {i}");
        }
    }

    #[test]
    fn decisions_and_actions_round_trip_as_text() {
        for d in ["allow-patient", "allow-viewer", "allow-provider", "deny:not-a-viewer"] {
            assert_eq!(d.parse::<Decision>().unwrap().to_string(), d);
        }
        assert!("deny:".parse::<Decision>().is_err());
        assert!("deny:Patient Smith".parse::<Decision>().is_err(), "no free text");
        assert!("allow".parse::<Decision>().is_err());
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>().unwrap(), a);
        }
        let err = "read".parse::<Action>().unwrap_err();
        assert_eq!(err.to_string(), "'read' is not an access log action");
    }

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

    fn proof_of(chain: &[LoggedEntry], seq: u64, size: u64) -> Proof {
        let at = |s: u64| &chain[usize::try_from(s - 1).unwrap()];
        Proof {
            entry: at(seq).clone(),
            following: (seq + 1..=size).map(|s| at(s).digest()).collect(),
            anchor: Anchor { size, head: at(size).hash, block: 7, tx: B256::repeat_byte(9) },
        }
    }

    #[test]
    fn proofs_verify_and_catch_changes() {
        let chain = chain_of(6);
        for seq in 1..=6 {
            for size in seq..=6 {
                verify(&proof_of(&chain, seq, size)).unwrap();
            }
        }
        let mut p = proof_of(&chain, 2, 5);
        p.entry.entry.decision = Decision::AllowProvider;
        assert_eq!(verify(&p), Err(ProofError::EntryAltered { seq: 2 }));
        // Altered fields with a hash recomputed to match: the chain no longer leads to
        // the anchored head.
        p.entry = LoggedEntry::chain(2, p.entry.prev_hash, p.entry.entry.clone());
        assert_eq!(verify(&p), Err(ProofError::HeadMismatch { seq: 2, anchor_size: 5 }));
        let mut p = proof_of(&chain, 2, 5);
        p.following.swap(0, 1);
        assert_eq!(verify(&p), Err(ProofError::HeadMismatch { seq: 2, anchor_size: 5 }));
        let mut p = proof_of(&chain, 2, 5);
        p.following.pop();
        assert_eq!(verify(&p), Err(ProofError::WrongLength { expected: 3, got: 2 }));
        let mut p = proof_of(&chain, 2, 5);
        p.anchor.size = 1;
        assert_eq!(verify(&p), Err(ProofError::NotCovered { seq: 2, anchor_size: 1 }));
        let mut p = proof_of(&chain, 1, 3);
        p.entry = LoggedEntry::chain(1, B256::repeat_byte(1), p.entry.entry);
        assert_eq!(verify(&p), Err(ProofError::EntryAltered { seq: 1 }));
    }
}
