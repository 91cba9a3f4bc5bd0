//! Care beyond one viewer, as the chain says: the groups the certified institutions
//! define (a patient grants a group like a viewer, under the group's address, and every
//! member reads what it was granted) and break-glass openings (a member of an emergency
//! group opens a patient's emergency set for a few hours, without a prior grant).
//!
//! [`CareIndex`] is part of the [`ConsentIndex`](crate::consent::ConsentIndex), applied
//! from the `Registrar`'s group events and the `Relationships` contract's break-glass
//! events in chain order, undoable like the rest of it. [`read_openings`] reads the
//! break-glass openings of one patient for their app's inbox.

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{Address, Log, U256},
    providers::Provider,
    rpc::types::Filter,
    sol_types::SolEvent,
};
use medrec_contracts::{Registrar as G, Relationships as R};
use std::collections::HashMap;

/// Why an emergency clinician broke the glass (the contract's `EmergencyReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmergencyReason {
    /// The patient is unconscious or cannot communicate.
    Unconscious,
    /// A life-threatening condition needs treatment now.
    LifeThreatening,
    /// The patient cannot give consent for another reason.
    CannotConsent,
}

impl EmergencyReason {
    /// Every reason, in the contract's order.
    pub const ALL: [Self; 3] = [Self::Unconscious, Self::LifeThreatening, Self::CannotConsent];

    /// The contract's code (1, 2 or 3; 0 is "no reason", which the contract refuses).
    pub const fn code(self) -> u8 {
        match self {
            Self::Unconscious => 1,
            Self::LifeThreatening => 2,
            Self::CannotConsent => 3,
        }
    }

    /// The reason with contract code `code`.
    pub const fn from_code(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::Unconscious),
            2 => Some(Self::LifeThreatening),
            3 => Some(Self::CannotConsent),
            _ => None,
        }
    }

    /// Its name on the command line and in JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Unconscious => "unconscious",
            Self::LifeThreatening => "life-threatening",
            Self::CannotConsent => "cannot-consent",
        }
    }
}

impl std::fmt::Display for EmergencyReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Unconscious => "the patient was unconscious or could not communicate",
            Self::LifeThreatening => "a life-threatening condition needed treatment at once",
            Self::CannotConsent => "the patient could not give consent",
        })
    }
}

impl std::str::FromStr for EmergencyReason {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| {
            format!("'{s}' is not a break-glass reason: use unconscious, life-threatening or cannot-consent")
        })
    }
}

/// A break-glass opening: `clinician` may read `patient`'s emergency set until
/// `expires_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opening {
    /// The patient.
    pub patient: Address,
    /// The emergency clinician.
    pub clinician: Address,
    /// The emergency group the clinician acted as a member of.
    pub group: u64,
    /// Why.
    pub reason: EmergencyReason,
    /// End of the opening (unix seconds, exclusive).
    pub expires_at: u64,
    /// The block it was opened in.
    pub block: u64,
    /// The block of the patient's refusal of break-glass that ended it early, when one
    /// did (known to [`read_openings`]; the consent index drops such openings instead).
    pub refused_in: Option<u64>,
}

/// Where an opening stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpeningState {
    /// In force: the clinician may read the emergency set until it expires.
    Open,
    /// It ran its time.
    Expired,
    /// Ended early: the patient refused break-glass before it expired.
    Ended,
}

impl OpeningState {
    /// `open`, `expired` or `ended`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Expired => "expired",
            Self::Ended => "ended",
        }
    }
}

impl Opening {
    /// Where it stands at unix time `now` (a clinician later removed from its emergency
    /// group is refused by the gatekeepers too, which this does not show).
    pub const fn state(&self, now: u64) -> OpeningState {
        if self.refused_in.is_some() {
            OpeningState::Ended
        } else if now >= self.expires_at {
            OpeningState::Expired
        } else {
            OpeningState::Open
        }
    }
}

/// A group as the index keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Group {
    /// The address a patient grants to share with it.
    pub address: Address,
    /// Whether its members are emergency clinicians.
    pub emergency: bool,
}

/// An undo record of a care change.
#[derive(Debug)]
pub(crate) enum CareUndo {
    /// `None`: the group was created (undoing forgets it).
    Group(u64, Option<Group>),
    /// The groups an address belonged to before.
    Member(Address, Vec<u64>),
    /// The opening before.
    Opening((Address, Address), Option<Opening>),
}

/// Groups, memberships and break-glass openings.
#[derive(Debug, Default)]
pub(crate) struct CareIndex {
    groups: HashMap<u64, Group>,
    by_address: HashMap<Address, u64>,
    memberships: HashMap<Address, Vec<u64>>,
    /// The latest opening by (patient, clinician).
    openings: HashMap<(Address, Address), Opening>,
}

impl CareIndex {
    /// Applies one log if it is a care event; returns whether it was.
    pub(crate) fn apply(&mut self, block: u64, log: &Log, undo: &mut Vec<CareUndo>) -> bool {
        let Some(topic) = log.topics().first() else { return false };
        match *topic {
            G::GroupCreated::SIGNATURE_HASH => {
                if let Ok(e) = G::GroupCreated::decode_log(log)
                    && let Ok(id) = u64::try_from(e.id)
                {
                    let group = Group { address: e.group, emergency: e.emergency };
                    undo.push(CareUndo::Group(id, self.groups.insert(id, group)));
                    self.by_address.insert(e.group, id);
                }
            }
            G::GroupMemberAdded::SIGNATURE_HASH => {
                if let Ok(e) = G::GroupMemberAdded::decode_log(log)
                    && let Ok(id) = u64::try_from(e.id)
                {
                    let groups = self.memberships.entry(e.member).or_default();
                    undo.push(CareUndo::Member(e.member, groups.clone()));
                    if !groups.contains(&id) {
                        groups.push(id);
                    }
                }
            }
            G::GroupMemberRemoved::SIGNATURE_HASH => {
                if let Ok(e) = G::GroupMemberRemoved::decode_log(log)
                    && let Ok(id) = u64::try_from(e.id)
                    && let Some(groups) = self.memberships.get_mut(&e.member)
                {
                    undo.push(CareUndo::Member(e.member, groups.clone()));
                    groups.retain(|g| *g != id);
                }
            }
            R::BreakGlass::SIGNATURE_HASH => {
                if let Some(opening) = decode_opening(block, log) {
                    let key = (opening.patient, opening.clinician);
                    undo.push(CareUndo::Opening(key, self.openings.insert(key, opening)));
                }
            }
            R::BreakGlassSettingChanged::SIGNATURE_HASH => {
                // Refusing break-glass also ends the openings in force.
                if let Ok(e) = R::BreakGlassSettingChanged::decode_log(log)
                    && !e.allowed
                {
                    let ended: Vec<_> =
                        self.openings.keys().filter(|(p, _)| *p == e.account).copied().collect();
                    for key in ended {
                        undo.push(CareUndo::Opening(key, self.openings.remove(&key)));
                    }
                }
            }
            _ => return false,
        }
        true
    }

    /// Undoes one change.
    pub(crate) fn revert(&mut self, change: CareUndo) {
        match change {
            CareUndo::Group(id, Some(old)) => {
                self.groups.insert(id, old);
            }
            CareUndo::Group(id, None) => {
                if let Some(g) = self.groups.remove(&id) {
                    self.by_address.remove(&g.address);
                }
            }
            CareUndo::Member(member, old) => {
                self.memberships.insert(member, old);
            }
            CareUndo::Opening(key, Some(old)) => {
                self.openings.insert(key, old);
            }
            CareUndo::Opening(key, None) => {
                self.openings.remove(&key);
            }
        }
    }

    /// The group granted under `address`, if it is a group's address.
    pub(crate) fn group_at(&self, address: Address) -> Option<(u64, Group)> {
        let id = *self.by_address.get(&address)?;
        Some((id, *self.groups.get(&id)?))
    }

    /// The addresses of the groups `member` belongs to now.
    pub(crate) fn group_addresses_of(&self, member: Address) -> impl Iterator<Item = Address> {
        self.memberships
            .get(&member)
            .into_iter()
            .flatten()
            .filter_map(|id| self.groups.get(id).map(|g| g.address))
    }

    /// Whether `address` belongs to a group now (one lookup: this sits on every
    /// request's authentication; a clinician's opening counts only while it is a member).
    pub(crate) fn knows(&self, address: Address) -> bool {
        self.memberships.get(&address).is_some_and(|g| !g.is_empty())
    }

    /// Whether `member` belongs to group `id` now.
    pub(crate) fn is_member(&self, id: u64, member: Address) -> bool {
        self.memberships.get(&member).is_some_and(|g| g.contains(&id))
    }

    /// `clinician`'s opening of `patient`'s emergency set in force at `now`: opened by a
    /// member of an emergency group who still is one, not expired, not refused since.
    pub(crate) fn opening(
        &self,
        patient: Address,
        clinician: Address,
        now: u64,
    ) -> Option<Opening> {
        let o = self.openings.get(&(patient, clinician))?;
        let emergency = self.groups.get(&o.group).is_some_and(|g| g.emergency);
        (now < o.expires_at && emergency && self.is_member(o.group, clinician)).then_some(*o)
    }
}

fn decode_opening(block: u64, log: &Log) -> Option<Opening> {
    let e = R::BreakGlass::decode_log(log).ok()?;
    Some(Opening {
        patient: e.account,
        clinician: e.clinician,
        group: u64::try_from(e.group).ok()?,
        reason: EmergencyReason::from_code(e.reason)?,
        expires_at: e.expiresAt.to::<u64>(),
        block,
        refused_in: None,
    })
}

/// Why the chain could not be read.
#[derive(Debug, thiserror::Error)]
#[error("the chain node could not be asked: {0}")]
pub struct ReadError(String);

/// Every break-glass opening of `patient`'s emergency set recorded by the
/// `relationships` contract (deployed in block `deployed`) from block `since` on, in
/// chain order, each with the patient's refusal that ended it early, if any: what the
/// patient's app shows at once.
pub async fn read_openings<P: Provider>(
    chain: &P,
    relationships: alloy::primitives::Address,
    deployed: u64,
    patient: Address,
    since: u64,
) -> Result<Vec<Opening>, ReadError> {
    let filter = Filter::new()
        .address(relationships)
        .from_block(since.max(deployed))
        .to_block(BlockNumberOrTag::Latest)
        .event_signature(vec![
            R::BreakGlass::SIGNATURE_HASH,
            R::BreakGlassSettingChanged::SIGNATURE_HASH,
        ])
        .topic1(patient.into_word());
    let mut logs = chain.get_logs(&filter).await.map_err(|e| ReadError(e.to_string()))?;
    logs.retain(|l| !l.removed);
    logs.sort_by_key(|l| (l.block_number, l.log_index));
    let mut out: Vec<Opening> = Vec::new();
    for l in &logs {
        let Some(block) = l.block_number else { continue };
        if let Some(opening) = decode_opening(block, &l.inner) {
            out.push(opening);
        } else if let Ok(e) = R::BreakGlassSettingChanged::decode_log(&l.inner)
            && !e.allowed
        {
            // A refusal ends every opening before it that had not ended yet (by expiry
            // or an earlier refusal).
            let at = match l.block_timestamp {
                Some(t) => t,
                None => chain
                    .get_block_by_number(block.into())
                    .await
                    .map_err(|e| ReadError(e.to_string()))?
                    .map_or(u64::MAX, |b| b.header.timestamp),
            };
            for o in out.iter_mut().filter(|o| o.refused_in.is_none() && o.expires_at > at) {
                o.refused_in = Some(block);
            }
        }
    }
    Ok(out)
}

/// Every break-glass opening `clinician` made, recorded by the `relationships`
/// contract (deployed in block `deployed`), in chain order: what the clinician's app
/// shows again after a restart. (Whether a patient's refusal ended one is the
/// patient's to read; the gatekeepers refuse such an opening either way.)
pub async fn read_openings_by<P: Provider>(
    chain: &P,
    relationships: alloy::primitives::Address,
    deployed: u64,
    clinician: Address,
) -> Result<Vec<Opening>, ReadError> {
    let filter = Filter::new()
        .address(relationships)
        .from_block(deployed)
        .to_block(BlockNumberOrTag::Latest)
        .event_signature(R::BreakGlass::SIGNATURE_HASH)
        .topic2(clinician.into_word());
    let mut logs = chain.get_logs(&filter).await.map_err(|e| ReadError(e.to_string()))?;
    logs.retain(|l| !l.removed);
    logs.sort_by_key(|l| (l.block_number, l.log_index));
    Ok(logs.iter().filter_map(|l| decode_opening(l.block_number?, &l.inner)).collect())
}

/// A group as the `Registrar` created it, for people to choose from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupInfo {
    /// Its id.
    pub id: u64,
    /// The address a patient grants to share with it.
    pub address: Address,
    /// Its name.
    pub name: String,
    /// Whether its members are emergency clinicians.
    pub emergency: bool,
    /// The institution that manages it.
    pub manager: Address,
}

/// Every group the `registrar` (deployed in block `deployed`) has created.
pub async fn read_groups<P: Provider>(
    chain: &P,
    registrar: Address,
    deployed: u64,
) -> Result<Vec<GroupInfo>, ReadError> {
    let filter = Filter::new()
        .address(registrar)
        .from_block(deployed)
        .to_block(BlockNumberOrTag::Latest)
        .event_signature(G::GroupCreated::SIGNATURE_HASH);
    let logs = chain.get_logs(&filter).await.map_err(|e| ReadError(e.to_string()))?;
    Ok(logs
        .iter()
        .filter(|l| !l.removed)
        .filter_map(|l| {
            let e = G::GroupCreated::decode_log(&l.inner).ok()?;
            Some(GroupInfo {
                id: u64::try_from(e.id).ok()?,
                address: e.group,
                name: e.name.clone(),
                emergency: e.emergency,
                manager: e.manager,
            })
        })
        .collect())
}

/// The address a patient grants to share with group `id` (the `Registrar`'s
/// `groupAddress`): `keccak256(abi.encode("medrec/group/v1", id))`, last 20 bytes.
pub fn group_address(id: u64) -> Address {
    use alloy::sol_types::SolValue;
    let encoded = ("medrec/group/v1".to_owned(), U256::from(id)).abi_encode_params();
    Address::from_word(alloy::primitives::keccak256(encoded))
}
