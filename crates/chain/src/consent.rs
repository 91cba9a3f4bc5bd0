//! The consent index: who may see what, as the chain says, in memory.
//!
//! Built by applying the `Relationships` contract's events in chain order
//! ([`ConsentIndex::apply_log`]); answers [`ConsentIndex::decide`] in well under a
//! microsecond without touching the chain or any database, so a gatekeeper decides a
//! request *before* it reads a row. The rules mirror the contract's `canView` exactly:
//!
//! - the relationship's patient may read everything in it while it is not deleted: any
//!   key acting for the patient's account with the SEE right now (the account's own key
//!   until it is rotated away, a custodian's key until its powers end);
//! - a viewer may run pointer `p` when the relationship is accepted (or has an update
//!   pending), `p` is below the count the patient last accepted, the viewer's grant
//!   names `p`, and `not_before ≤ now < expires_at`; a grant to a group (under its
//!   address) counts for every member of the group now (see [`crate::care`]);
//! - a member of an emergency group who broke the glass for the patient may read the
//!   patient's emergency set until the opening expires ([`ConsentIndex::opening`]);
//! - anyone else, and anything unknown, is denied.
//!
//! Each block's changes are recorded so that the last blocks can be undone when a real
//! chain reorganises ([`ConsentIndex::revert_to`]).

use crate::care::{CareIndex, CareUndo, Group, Opening};
use alloy::{primitives::Address, primitives::B256, sol_types::SolEvent};
use medrec_contracts::{Registrar, Relationships as R, Rights};
use medrec_primitives::{PointerSet, RelationshipId, Status};
use std::collections::{BTreeMap, HashMap, HashSet};

/// A relationship as the index keeps it. Its provider is not on chain (only encrypted
/// for the patient): a gatekeeper knows its own relationships by their delegates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Relationship {
    /// The patient's account.
    pub patient: Address,
    /// The provider's delegate for it.
    pub delegate: Address,
    /// Its status in the patient's summary.
    pub status: Status,
    /// Pointers it holds.
    pub pointer_count: u8,
    /// Pointers the patient has accepted (viewers see only these).
    pub accepted_count: u8,
    /// Whether the patient lets it feed research bounties.
    pub research_opt_in: bool,
}

/// A key that acts for an account, as the chain last set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyEntry {
    /// The account it acts for.
    pub account: Address,
    /// Its rights (`medrec_contracts::Rights` bits); zero: retired.
    pub rights: u8,
    /// Its powers end at this unix time; 0: never.
    pub until: u64,
}

impl KeyEntry {
    /// Whether it holds every right in `needed` at unix time `now`.
    pub const fn holds(&self, needed: u8, now: u64) -> bool {
        self.rights & needed == needed && self.rights != 0 && (self.until == 0 || now < self.until)
    }
}

/// A viewer's grant on one relationship.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// The pointers it names.
    pub pointers: PointerSet,
    /// Valid from (unix seconds, inclusive).
    pub not_before: u64,
    /// Valid until (unix seconds, exclusive).
    pub expires_at: u64,
}

/// The latest data of a pointer, as published on chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PointerState {
    /// Hash of the pointer's query text.
    pub query_commitment: B256,
    /// Hash of the data the query returns.
    pub data_hash: B256,
    /// Block of the last change.
    pub updated_block: u64,
}

/// Where the chain said something: the block of the event, its transaction and the
/// block's time when whoever applied it knew them ([`ConsentIndex::apply_log_at`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainEvent {
    /// The block that included the event.
    pub block: u64,
    /// The transaction that emitted it.
    pub tx: Option<B256>,
    /// Unix seconds: the block's time, or when the follower applied the event.
    pub time: Option<u64>,
}

impl ChainEvent {
    /// An event known only by its block.
    pub const fn in_block(block: u64) -> Self {
        Self { block, tx: None, time: None }
    }
}

/// A viewer's grant on a relationship as the chain last told it: the grant of the
/// latest `ViewerGranted`, and the counted `ViewerRevoked` after it, if any (a revoked
/// grant no longer counts for [`ConsentIndex::decide`]; it is kept here for the record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantRecord {
    /// The viewer (or group address) granted.
    pub viewer: Address,
    /// What was granted.
    pub grant: Grant,
    /// The `ViewerGranted` event.
    pub granted: ChainEvent,
    /// The `ViewerRevoked` event that ended it.
    pub revoked: Option<ChainEvent>,
}

/// A research bounty as the chain recorded it (`BountyPosted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounty {
    /// Its owner: the miner of the block that included the pointer change.
    pub owner: Address,
    /// The commitment of the bounty query's text.
    pub commitment: B256,
    /// The block it was posted in.
    pub block: u64,
}

/// The answer to "may this requester run this pointer now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// The requester is the relationship's patient.
    AllowPatient,
    /// The requester holds a valid grant for the pointer.
    AllowViewer,
    /// Denied; the reason is for logs, never for the requester (a denial must look the
    /// same whether or not anything exists).
    Deny(DenyReason),
}

impl Decision {
    /// Whether access is allowed.
    pub const fn is_allowed(self) -> bool {
        !matches!(self, Self::Deny(_))
    }
}

/// Why a request was denied (for the access log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// No such relationship.
    UnknownRelationship,
    /// The relationship is not accepted, or closed.
    NotAccepted,
    /// The pointer does not exist or the patient has not accepted it yet.
    UnknownPointer,
    /// The requester holds no grant naming the pointer.
    NoGrant,
    /// The grant is not valid yet.
    NotYetValid,
    /// The grant expired.
    Expired,
}

/// A grant as stored: 24 bytes. Times are unix seconds saturated to `u32` (the year
/// 2106); a later expiry reads back as "no expiry".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Packed {
    pointers: [u64; 2],
    not_before: u32,
    expires_at: u32,
}

impl Packed {
    fn new(g: Grant) -> Self {
        let bits = g.pointers.bits();
        let sat = |t: u64| u32::try_from(t).unwrap_or(u32::MAX);
        Self {
            pointers: [bits as u64, (bits >> 64) as u64],
            not_before: sat(g.not_before),
            expires_at: sat(g.expires_at),
        }
    }

    fn grant(self) -> Grant {
        let bits = u128::from(self.pointers[0]) | (u128::from(self.pointers[1]) << 64);
        Grant {
            pointers: PointerSet::from_bits(bits),
            not_before: u64::from(self.not_before),
            expires_at: if self.expires_at == u32::MAX {
                u64::MAX
            } else {
                u64::from(self.expires_at)
            },
        }
    }
}

/// Grants are keyed by the relationship's slot (4 bytes) rather than its id (32).
type GrantKey = (u32, Address);

#[derive(Debug)]
enum Undo {
    /// `None`: the relationship was created (undoing pops it).
    Relationship(u32, Option<Relationship>),
    Grant(GrantKey, Option<Packed>),
    Pointer((RelationshipId, u8), Option<PointerState>),
    Bounty((RelationshipId, u32), Option<Bounty>),
    /// Whether the address was an admitted researcher before.
    Researcher(Address, bool),
    Key(Address, Option<KeyEntry>),
    GrantRecord(GrantKey, Option<(Packed, ChainEvent, Option<ChainEvent>)>),
    PointerEvent((RelationshipId, u8), Option<ChainEvent>),
    /// Groups and break-glass.
    Care(CareUndo),
}

/// The consent index.
#[derive(Debug, Default)]
pub struct ConsentIndex {
    slots: HashMap<RelationshipId, u32>,
    relationships: Vec<(RelationshipId, Relationship)>,
    grants: HashMap<GrantKey, Packed>,
    pointers: HashMap<(RelationshipId, u8), PointerState>,
    bounties: HashMap<(RelationshipId, u32), Bounty>,
    /// Every address the chain names as a patient, a viewer or a bounty owner (kept
    /// across reorganisations: it only bounds who may use a gatekeeper's caches).
    participants: HashSet<Address>,
    /// Research entities admitted by the institutions (from the `Registrar`'s events,
    /// when the follower reads them).
    researchers: HashSet<Address>,
    /// Groups, memberships and break-glass openings.
    care: CareIndex,
    /// Keys with a slot on chain (a key without one is its own account, every right).
    keys: HashMap<Address, KeyEntry>,
    /// Each grant's latest `ViewerGranted` and the revocation after it, for the record
    /// ([`ConsentIndex::grant_records`]).
    grant_records: BTreeMap<GrantKey, (Packed, ChainEvent, Option<ChainEvent>)>,
    /// The event of each pointer's latest publication ([`ConsentIndex::pointer_event`]).
    pointer_events: HashMap<(RelationshipId, u8), ChainEvent>,
    /// Undo records of recent blocks (block number → changes in order).
    undo: BTreeMap<u64, Vec<Undo>>,
    /// How many recent blocks can be undone.
    undo_depth: u64,
    height: u64,
}

impl ConsentIndex {
    /// An empty index that can undo the last `undo_depth` blocks (0 for chains that
    /// never reorganise, such as the devchain or a BFT network).
    pub fn new(undo_depth: u64) -> Self {
        Self { undo_depth, ..Self::default() }
    }

    /// The last block applied.
    pub const fn height(&self) -> u64 {
        self.height
    }

    /// Number of grants held.
    pub fn grant_count(&self) -> usize {
        self.grants.len()
    }

    fn slot(&self, id: B256) -> Option<u32> {
        self.slots.get(&RelationshipId(id)).copied()
    }

    /// A relationship.
    pub fn relationship(&self, id: &RelationshipId) -> Option<&Relationship> {
        let slot = *self.slots.get(id)?;
        Some(&self.relationships[slot as usize].1)
    }

    /// A viewer's grant on a relationship.
    pub fn grant(&self, id: &RelationshipId, viewer: Address) -> Option<Grant> {
        let slot = *self.slots.get(id)?;
        self.grants.get(&(slot, viewer)).map(|p| p.grant())
    }

    /// Every grant on a relationship that reaches `requester`: its own, and those of the
    /// groups it belongs to now.
    pub fn grants_reaching(&self, id: &RelationshipId, requester: Address) -> Vec<Grant> {
        let Some(&slot) = self.slots.get(id) else { return Vec::new() };
        std::iter::once(requester)
            .chain(self.care.group_addresses_of(requester))
            .filter_map(|viewer| self.grants.get(&(slot, viewer)).map(|p| p.grant()))
            .collect()
    }

    /// Whether a grant to `viewer` reaches `requester`: its own, or its group's while it
    /// is a member.
    pub fn reaches(&self, viewer: Address, requester: Address) -> bool {
        viewer == requester || self.care.group_addresses_of(requester).any(|g| g == viewer)
    }

    /// The group granted under `address`, when it is a group's address.
    pub fn group_at(&self, address: Address) -> Option<(u64, Group)> {
        self.care.group_at(address)
    }

    /// `clinician`'s break-glass opening of `patient`'s emergency set in force at `now`
    /// (the clinician still a member of the emergency group it acted for, the opening
    /// not expired, and not ended by the patient refusing break-glass since).
    pub fn opening(&self, patient: Address, clinician: Address, now: u64) -> Option<Opening> {
        self.care.opening(patient, clinician, now)
    }

    /// A pointer's latest published state.
    pub fn pointer(&self, id: &RelationshipId, pointer: u8) -> Option<&PointerState> {
        self.pointers.get(&(*id, pointer))
    }

    /// The event of a pointer's latest publication (`PointerAdded` or `PointerUpdated`).
    pub fn pointer_event(&self, id: &RelationshipId, pointer: u8) -> Option<ChainEvent> {
        self.pointer_events.get(&(*id, pointer)).copied()
    }

    /// Every grant the chain recorded on relationship `id`, revoked ones included, by
    /// viewer address.
    pub fn grant_records(&self, id: &RelationshipId) -> Vec<GrantRecord> {
        let Some(&slot) = self.slots.get(id) else { return Vec::new() };
        self.grant_records
            .range((slot, Address::ZERO)..=(slot, Address::repeat_byte(0xff)))
            .map(|(&(_, viewer), &(packed, granted, revoked))| GrantRecord {
                viewer,
                grant: packed.grant(),
                granted,
                revoked,
            })
            .collect()
    }

    /// Bounty `seq` of relationship `id`, as posted on chain.
    pub fn bounty(&self, id: &RelationshipId, seq: u32) -> Option<Bounty> {
        self.bounties.get(&(*id, seq)).copied()
    }

    /// The slot of `key` (`None`: the key is its own account, with every right).
    pub fn key(&self, key: Address) -> Option<KeyEntry> {
        self.keys.get(&key).copied()
    }

    /// The account `key` acts for with every right in `needed` at unix time `now`
    /// (`None` when it is retired, lacks a right, or its powers ended).
    pub fn acting_for(&self, key: Address, needed: u8, now: u64) -> Option<Address> {
        match self.keys.get(&key) {
            None => Some(key),
            Some(k) => k.holds(needed, now).then_some(k.account),
        }
    }

    /// The account `key` acts for, whatever its rights and dates, unless it is retired.
    pub fn account_of(&self, key: Address) -> Option<Address> {
        match self.keys.get(&key) {
            None => Some(key),
            Some(k) => (k.rights != 0).then_some(k.account),
        }
    }

    /// The keys acting for `account` now or once (custodians, the owner key after a
    /// rotation), with their slots.
    pub fn keys_of(&self, account: Address) -> Vec<(Address, KeyEntry)> {
        let mut out: Vec<_> =
            self.keys.iter().filter(|(_, k)| k.account == account).map(|(a, k)| (*a, *k)).collect();
        out.sort_by_key(|(a, _)| *a);
        out
    }

    /// Whether the chain has ever named `address` as a patient, a viewer or the owner
    /// of a bounty, or gave it a key of an account: anyone else has nothing to ask a
    /// gatekeeper for.
    pub fn is_participant(&self, address: Address) -> bool {
        self.participants.contains(&address)
            || self.keys.get(&address).is_some_and(|k| k.rights != 0)
            || self.researchers.contains(&address)
            || self.care.knows(address)
    }

    /// Whether `address` is a research entity admitted by the certified institutions
    /// (known only when the `Registrar`'s events are applied too).
    pub fn is_researcher(&self, address: Address) -> bool {
        self.researchers.contains(&address)
    }

    /// May `requester` run `pointer` of relationship `id` at unix time `now`?
    pub fn decide(
        &self,
        requester: Address,
        id: &RelationshipId,
        pointer: u8,
        now: u64,
    ) -> Decision {
        let Some(&slot) = self.slots.get(id) else {
            return Decision::Deny(DenyReason::UnknownRelationship);
        };
        let rel = &self.relationships[slot as usize].1;
        if self.acting_for(requester, Rights::SEE, now) == Some(rel.patient) {
            return if rel.status == Status::Deleted {
                Decision::Deny(DenyReason::NotAccepted)
            } else {
                Decision::AllowPatient
            };
        }
        if !rel.status.is_accepted() {
            return Decision::Deny(DenyReason::NotAccepted);
        }
        if pointer >= rel.accepted_count {
            return Decision::Deny(DenyReason::UnknownPointer);
        }
        // The requester's own grant first, then its groups': any one that allows wins;
        // otherwise the reason is the own grant's (or the first group grant's).
        let mut first_denial = None;
        let viewers = std::iter::once(requester).chain(self.care.group_addresses_of(requester));
        for viewer in viewers {
            let Some(grant) = self.grants.get(&(slot, viewer)).map(|p| p.grant()) else {
                continue;
            };
            let reason = if !grant.pointers.contains(pointer) {
                DenyReason::NoGrant
            } else if now < grant.not_before {
                DenyReason::NotYetValid
            } else if now >= grant.expires_at {
                DenyReason::Expired
            } else {
                return Decision::AllowViewer;
            };
            first_denial.get_or_insert(reason);
        }
        Decision::Deny(first_denial.unwrap_or(DenyReason::NoGrant))
    }

    /// Applies one log of the `Relationships` contract (or the `Registrar`'s researcher
    /// admissions), emitted in block `block`. Other events are ignored; logs must come in
    /// chain order, and only from those two contracts (the follower asks for no other).
    pub fn apply_log(&mut self, block: u64, log: &alloy::primitives::Log) {
        self.apply_log_at(ChainEvent::in_block(block), log);
    }

    /// [`ConsentIndex::apply_log`], knowing the event's transaction and time too (kept
    /// with grants and pointer publications, to say where the chain proves them).
    pub fn apply_log_at(&mut self, at: ChainEvent, log: &alloy::primitives::Log) {
        let block = at.block;
        self.height = self.height.max(block);
        let Some(topic) = log.topics().first() else { return };
        let mut undo = Vec::new();
        match *topic {
            R::RelationshipCreated::SIGNATURE_HASH => {
                if let Ok(e) = R::RelationshipCreated::decode_log(log)
                    && self.slot(e.relId).is_none()
                {
                    let id = RelationshipId(e.relId);
                    let slot =
                        u32::try_from(self.relationships.len()).expect("under 2^32 relationships");
                    undo.push(Undo::Relationship(slot, None));
                    self.participants.insert(e.account);
                    // An account's first relationship opens its own key's slot.
                    if e.actor == e.account && !self.keys.contains_key(&e.actor) {
                        let own = KeyEntry { account: e.account, rights: Rights::ALL, until: 0 };
                        undo.push(Undo::Key(e.actor, self.keys.insert(e.actor, own)));
                    }
                    self.slots.insert(id, slot);
                    // Created by the patient from the provider's offer: already accepted.
                    self.relationships.push((
                        id,
                        Relationship {
                            patient: e.account,
                            delegate: e.delegate,
                            status: Status::Accepted,
                            pointer_count: 1,
                            accepted_count: 1,
                            research_opt_in: false,
                        },
                    ));
                }
            }
            R::StatusChanged::SIGNATURE_HASH => {
                if let Ok(e) = R::StatusChanged::decode_log(log)
                    && let (Some(slot), Ok(status)) =
                        (self.slot(e.relId), Status::try_from(e.status))
                {
                    let rel = &mut self.relationships[slot as usize].1;
                    undo.push(Undo::Relationship(slot, Some(*rel)));
                    rel.status = status;
                    if status == Status::Accepted {
                        rel.accepted_count = rel.pointer_count;
                    }
                }
            }
            R::PointerAdded::SIGNATURE_HASH => {
                if let Ok(e) = R::PointerAdded::decode_log(log) {
                    let id = RelationshipId(e.relId);
                    let p = u8::try_from(e.pointerId).unwrap_or(u8::MAX);
                    if let Some(slot) = self.slot(e.relId) {
                        let rel = &mut self.relationships[slot as usize].1;
                        undo.push(Undo::Relationship(slot, Some(*rel)));
                        rel.pointer_count = rel.pointer_count.max(p.saturating_add(1));
                    }
                    let state = PointerState {
                        query_commitment: e.queryCommitment,
                        data_hash: e.dataHash,
                        updated_block: block,
                    };
                    undo.push(Undo::Pointer((id, p), self.pointers.insert((id, p), state)));
                    let event = self.pointer_events.insert((id, p), at);
                    undo.push(Undo::PointerEvent((id, p), event));
                }
            }
            R::PointerUpdated::SIGNATURE_HASH => {
                if let Ok(e) = R::PointerUpdated::decode_log(log) {
                    let key =
                        (RelationshipId(e.relId), u8::try_from(e.pointerId).unwrap_or(u8::MAX));
                    if let Some(p) = self.pointers.get_mut(&key) {
                        undo.push(Undo::Pointer(key, Some(*p)));
                        p.data_hash = e.dataHash;
                        p.updated_block = block;
                        undo.push(Undo::PointerEvent(key, self.pointer_events.insert(key, at)));
                    }
                }
            }
            R::ViewerGranted::SIGNATURE_HASH => {
                // A grant under an id no relationship has (yet) is inert on chain; the
                // index keeps only grants of known relationships.
                if let Ok(e) = R::ViewerGranted::decode_log(log)
                    && let Some(slot) = self.slot(e.relId)
                {
                    let key = (slot, e.viewer);
                    self.participants.insert(e.viewer);
                    let packed = Packed::new(Grant {
                        pointers: PointerSet::from_bits(e.pointers),
                        not_before: e.notBefore.to::<u64>(),
                        expires_at: e.expiresAt.to::<u64>(),
                    });
                    undo.push(Undo::Grant(key, self.grants.insert(key, packed)));
                    let record = self.grant_records.insert(key, (packed, at, None));
                    undo.push(Undo::GrantRecord(key, record));
                }
            }
            R::ViewerRevoked::SIGNATURE_HASH => {
                // The contract records any revocation without checking its sender (it
                // only narrows access); it counts when the sender was then a key of the
                // relationship's account with SHARE.
                if let Ok(e) = R::ViewerRevoked::decode_log(log)
                    && let Some(slot) = self.slot(e.relId)
                    && self.may_share(e.actor, self.relationships[slot as usize].1.patient)
                {
                    let key = (slot, e.viewer);
                    undo.push(Undo::Grant(key, self.grants.remove(&key)));
                    if let Some(r) = self.grant_records.get_mut(&key)
                        && r.2.is_none()
                    {
                        undo.push(Undo::GrantRecord(key, Some(*r)));
                        r.2 = Some(at);
                    }
                }
            }
            R::BountyPosted::SIGNATURE_HASH => {
                if let Ok(e) = R::BountyPosted::decode_log(log)
                    && let Ok(seq) = u32::try_from(e.seq)
                {
                    let key = (RelationshipId(e.relId), seq);
                    self.participants.insert(e.owner);
                    let bounty = Bounty { owner: e.owner, commitment: e.commitment, block };
                    undo.push(Undo::Bounty(key, self.bounties.insert(key, bounty)));
                }
            }
            Registrar::ResearcherAdmitted::SIGNATURE_HASH => {
                if let Ok(e) = Registrar::ResearcherAdmitted::decode_log(log) {
                    let was = !self.researchers.insert(e.account);
                    undo.push(Undo::Researcher(e.account, was));
                }
            }
            Registrar::ResearcherRemoved::SIGNATURE_HASH => {
                if let Ok(e) = Registrar::ResearcherRemoved::decode_log(log) {
                    let was = self.researchers.remove(&e.account);
                    undo.push(Undo::Researcher(e.account, was));
                }
            }
            R::KeyChanged::SIGNATURE_HASH => {
                if let Ok(e) = R::KeyChanged::decode_log(log) {
                    let entry = KeyEntry {
                        account: e.account,
                        rights: e.rights,
                        until: e.until.to::<u64>(),
                    };
                    undo.push(Undo::Key(e.key, self.keys.insert(e.key, entry)));
                }
            }
            R::KeyRotated::SIGNATURE_HASH => {
                if let Ok(e) = R::KeyRotated::decode_log(log) {
                    let retired = KeyEntry { account: e.account, rights: 0, until: 0 };
                    let owner = KeyEntry { account: e.account, rights: Rights::ALL, until: 0 };
                    undo.push(Undo::Key(e.oldKey, self.keys.insert(e.oldKey, retired)));
                    undo.push(Undo::Key(e.newKey, self.keys.insert(e.newKey, owner)));
                }
            }
            R::ResearchConsentChanged::SIGNATURE_HASH => {
                if let Ok(e) = R::ResearchConsentChanged::decode_log(log)
                    && let Some(slot) = self.slot(e.relId)
                {
                    let rel = &mut self.relationships[slot as usize].1;
                    undo.push(Undo::Relationship(slot, Some(*rel)));
                    rel.research_opt_in = e.optedIn;
                }
            }
            _ => {
                let mut care = Vec::new();
                if self.care.apply(block, log, &mut care) {
                    undo.extend(care.into_iter().map(Undo::Care));
                }
            }
        }
        if self.undo_depth > 0 && !undo.is_empty() {
            self.undo.entry(block).or_default().extend(undo);
            let keep_from = self.height.saturating_sub(self.undo_depth);
            self.undo = self.undo.split_off(&keep_from);
        }
    }

    /// Whether `key` held SHARE for `account` (dates aside: a log carries no time).
    fn may_share(&self, key: Address, account: Address) -> bool {
        match self.keys.get(&key) {
            None => key == account,
            Some(k) => k.account == account && k.rights & Rights::SHARE != 0,
        }
    }

    /// Marks blocks up to `block` as applied (even without MedRec logs).
    pub fn advance_to(&mut self, block: u64) {
        self.height = self.height.max(block);
    }

    /// Undoes every block after `block` (a reorganisation replaced them). Fails when
    /// that is deeper than the undo depth: the index must then be rebuilt.
    pub fn revert_to(&mut self, block: u64) -> Result<(), TooDeep> {
        if block < self.height.saturating_sub(self.undo_depth) {
            return Err(TooDeep { to: block, height: self.height, depth: self.undo_depth });
        }
        let undone = self.undo.split_off(&(block + 1));
        for (_, changes) in undone.into_iter().rev() {
            for change in changes.into_iter().rev() {
                match change {
                    Undo::Relationship(slot, Some(old)) => {
                        self.relationships[slot as usize].1 = old
                    }
                    Undo::Relationship(_, None) => {
                        if let Some((id, _)) = self.relationships.pop() {
                            self.slots.remove(&id);
                        }
                    }
                    Undo::Grant(key, old) => restore(&mut self.grants, key, old),
                    Undo::Pointer(key, old) => restore(&mut self.pointers, key, old),
                    Undo::Bounty(key, old) => restore(&mut self.bounties, key, old),
                    Undo::Researcher(address, true) => {
                        self.researchers.insert(address);
                    }
                    Undo::Researcher(address, false) => {
                        self.researchers.remove(&address);
                    }
                    Undo::Care(change) => self.care.revert(change),
                    Undo::Key(key, old) => restore(&mut self.keys, key, old),
                    Undo::GrantRecord(key, Some(v)) => {
                        self.grant_records.insert(key, v);
                    }
                    Undo::GrantRecord(key, None) => {
                        self.grant_records.remove(&key);
                    }
                    Undo::PointerEvent(key, old) => restore(&mut self.pointer_events, key, old),
                }
            }
        }
        self.height = block;
        Ok(())
    }
}

fn restore<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, key: K, old: Option<V>) {
    match old {
        Some(v) => map.insert(key, v),
        None => map.remove(&key),
    };
}

/// A reorganisation deeper than the index can undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "cannot undo back to block {to} from {height}: only the last {depth} blocks are kept; rebuild the index"
)]
pub struct TooDeep {
    /// The block asked for.
    pub to: u64,
    /// The index's height.
    pub height: u64,
    /// The undo depth.
    pub depth: u64,
}
