//! A participant's inbox: what happened on chain to the relationships they are part of,
//! and their summary (each relationship's latest state), read from the `Relationships`
//! contract's events.
//!
//! - A patient's account sees every event of its relationships: new relationships (each
//!   with its provider encrypted for the patient), status changes, pointers added or
//!   updated (an update sets *update pending*), grants and revocations, research
//!   consent; each with the key that acted.
//! - A provider reads the same for the relationships it knows by id ([`read_relationships`]):
//!   the chain does not say which relationships are a provider's.
//! - A viewer sees the grants and revocations that name it, with the relationship's key
//!   sealed for it.
//!
//! A revocation counts only when the key that sent it acted for the relationship's
//! account with the SHARE right (the contract records any; see `Relationships.revoke`),
//! so the account's key events are read along.
//!
//! Nothing here is private: it is what anyone can read from the chain, filtered for one
//! address. Reading it needs no key; the provider of each relationship stays encrypted
//! (the patient's client decrypts it: [`Summary::provider`] is left for it to fill).

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{Address, B256, Log},
    providers::Provider,
    rpc::types::Filter,
    sol_types::SolEvent,
};
use medrec_contracts::{Relationships as R, Rights};
use medrec_primitives::{PointerSet, RelationshipId, Status};
use std::collections::{BTreeMap, BTreeSet};

/// One thing that happened to a relationship.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The patient created a relationship from a provider's offer.
    Created {
        /// The patient's account.
        patient: Address,
        /// The provider's delegate address for it.
        delegate: Address,
        /// The provider's address, encrypted for the patient (36 bytes).
        identity: Vec<u8>,
    },
    /// The relationship's status changed.
    Status(Status),
    /// The provider added a pointer.
    PointerAdded {
        /// Its number.
        pointer: u8,
        /// Hash of its query text.
        query_commitment: B256,
        /// Hash of its data.
        data_hash: B256,
    },
    /// The provider published new data behind a pointer.
    PointerUpdated {
        /// Its number.
        pointer: u8,
        /// Hash of the new data.
        data_hash: B256,
    },
    /// The patient granted a viewer a set of pointers for a time window.
    Granted {
        /// The viewer.
        viewer: Address,
        /// The pointers.
        pointers: PointerSet,
        /// Valid from (unix seconds).
        not_before: u64,
        /// Valid until (unix seconds, exclusive).
        expires_at: u64,
        /// The relationship's key sealed for the viewer (empty when it has no
        /// encryption key).
        sealed_key: Vec<u8>,
    },
    /// The patient revoked a viewer.
    Revoked {
        /// The viewer.
        viewer: Address,
    },
    /// The patient opted the relationship in to or out of research.
    ResearchConsent(bool),
}

/// A notice with where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dated {
    /// The block.
    pub block: u64,
    /// The relationship.
    pub relationship: RelationshipId,
    /// What happened.
    pub notice: Notice,
    /// The key that did it (the patient's key, a custodian's, the delegate's), when the
    /// event names one.
    pub actor: Option<Address>,
}

/// Why the inbox could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    /// The node did not answer.
    #[error("the chain node could not be asked: {0}")]
    Rpc(String),
}

/// Events of the `relationships` contract (deployed in block `deployed`) about
/// `participant` (a patient's account, or a viewer) in blocks `since..=to` (to the head
/// when `to` is `None`), in chain order. The participant's relationships are found from
/// the deployment on, so a window shows everything that happened to them in it.
pub async fn read<P: Provider>(
    chain: &P,
    relationships: Address,
    deployed: u64,
    participant: Address,
    since: u64,
    to: Option<u64>,
) -> Result<Vec<Dated>, InboxError> {
    let to = match to {
        Some(t) => BlockNumberOrTag::Number(t),
        None => BlockNumberOrTag::Latest,
    };
    let word = participant.into_word();
    // Relationships of the participant's account.
    let created = Filter::new()
        .address(relationships)
        .from_block(deployed)
        .to_block(to)
        .event_signature(R::RelationshipCreated::SIGNATURE_HASH)
        .topic2(word);
    let own: BTreeSet<B256> =
        get(chain, &created).await?.iter().filter_map(|l| l.topics().get(1).copied()).collect();
    // Grants and revocations naming the participant as viewer, on anyone's relationships.
    let base = Filter::new().address(relationships).from_block(since.max(deployed)).to_block(to);
    let as_viewer = base
        .event_signature(vec![R::ViewerGranted::SIGNATURE_HASH, R::ViewerRevoked::SIGNATURE_HASH])
        .topic2(word);
    let theirs: Vec<Log> = get(chain, &as_viewer)
        .await?
        .into_iter()
        .filter(|l| !l.topics().get(1).is_some_and(|id| own.contains(id)))
        .map(|l| l.inner)
        .collect();
    let mut ids = own.clone();
    ids.extend(theirs.iter().filter_map(|l| l.topics().get(1).copied()));
    let mut out =
        read_relationships(chain, relationships, deployed, &ids, since, to_number(to)).await?;
    // Only the viewer's own grants of relationships that are not the participant's.
    out.retain(|d| {
        own.contains(&d.relationship.0)
            || matches!(&d.notice, Notice::Granted { viewer, .. } | Notice::Revoked { viewer } if *viewer == participant)
    });
    Ok(out)
}

/// Every event of the relationships `ids` in blocks `since..=to` (to the head when
/// `to` is `None`), in chain order, with revocations by keys that could not revoke
/// left out.
pub async fn read_relationships<P: Provider>(
    chain: &P,
    relationships: Address,
    deployed: u64,
    ids: &BTreeSet<B256>,
    since: u64,
    to: Option<u64>,
) -> Result<Vec<Dated>, InboxError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let to = to.map_or(BlockNumberOrTag::Latest, BlockNumberOrTag::Number);
    let list: Vec<B256> = ids.iter().copied().collect();
    // From the deployment: the creations name each relationship's account, and the
    // account's key events say which keys could revoke.
    let all = Filter::new().address(relationships).from_block(deployed).to_block(to).topic1(list);
    let mut logs = get(chain, &all).await?;
    let accounts: BTreeSet<B256> = logs
        .iter()
        .filter_map(|l| R::RelationshipCreated::decode_log(&l.inner).ok())
        .map(|e| e.account.into_word())
        .collect();
    if !accounts.is_empty() {
        let keys = Filter::new()
            .address(relationships)
            .from_block(deployed)
            .to_block(to)
            .event_signature(vec![R::KeyChanged::SIGNATURE_HASH, R::KeyRotated::SIGNATURE_HASH])
            .topic1(accounts.into_iter().collect::<Vec<_>>());
        logs.extend(get(chain, &keys).await?);
    }
    logs.sort_by_key(|l| (l.block_number, l.log_index));
    let mut keys = Keys::default();
    let mut out = Vec::new();
    for l in logs.iter().filter(|l| !l.removed) {
        let Some(block) = l.block_number else { continue };
        if keys.apply(&l.inner) {
            continue;
        }
        let Some(dated) = decode_dated(block, &l.inner) else { continue };
        if let (Notice::Revoked { .. }, Some(actor)) = (&dated.notice, dated.actor)
            && !keys.may_share(actor, dated.relationship)
        {
            continue;
        }
        if let Notice::Created { patient, .. } = &dated.notice {
            keys.accounts.insert(dated.relationship, *patient);
        }
        if block >= since {
            out.push(dated);
        }
    }
    Ok(out)
}

fn to_number(to: BlockNumberOrTag) -> Option<u64> {
    to.as_number()
}

async fn get<P: Provider>(
    chain: &P,
    filter: &Filter,
) -> Result<Vec<alloy::rpc::types::Log>, InboxError> {
    chain.get_logs(filter).await.map_err(|e| InboxError::Rpc(e.to_string()))
}

/// The accounts' keys as their events set them, while replaying logs in order.
#[derive(Default)]
struct Keys {
    /// key → (account, rights).
    slots: BTreeMap<Address, (Address, u8)>,
    /// relationship → account.
    accounts: BTreeMap<RelationshipId, Address>,
}

impl Keys {
    /// Applies a key event; false for any other log.
    fn apply(&mut self, log: &Log) -> bool {
        if let Ok(e) = R::KeyChanged::decode_log(log) {
            self.slots.insert(e.key, (e.account, e.rights));
            true
        } else if let Ok(e) = R::KeyRotated::decode_log(log) {
            self.slots.insert(e.oldKey, (e.account, 0));
            self.slots.insert(e.newKey, (e.account, Rights::ALL));
            true
        } else {
            false
        }
    }

    fn may_share(&self, key: Address, relationship: RelationshipId) -> bool {
        let Some(account) = self.accounts.get(&relationship) else { return false };
        match self.slots.get(&key) {
            None => key == *account,
            Some((a, rights)) => a == account && rights & Rights::SHARE != 0,
        }
    }
}

/// One `Relationships` log as a dated notice (`None` for other logs).
pub fn decode_dated(block: u64, log: &Log) -> Option<Dated> {
    let (relationship, notice) = decode(log)?;
    let actor = actor(log);
    Some(Dated { block, relationship, notice, actor })
}

/// The key an event names as its actor.
fn actor(log: &Log) -> Option<Address> {
    let topic = *log.topics().first()?;
    Some(match topic {
        R::RelationshipCreated::SIGNATURE_HASH => {
            R::RelationshipCreated::decode_log(log).ok()?.actor
        }
        R::StatusChanged::SIGNATURE_HASH => R::StatusChanged::decode_log(log).ok()?.actor,
        R::ViewerGranted::SIGNATURE_HASH => R::ViewerGranted::decode_log(log).ok()?.actor,
        R::ViewerRevoked::SIGNATURE_HASH => R::ViewerRevoked::decode_log(log).ok()?.actor,
        R::ResearchConsentChanged::SIGNATURE_HASH => {
            R::ResearchConsentChanged::decode_log(log).ok()?.actor
        }
        _ => return None,
    })
}

/// One `Relationships` log as a notice (`None` for other logs).
pub fn decode(log: &Log) -> Option<(RelationshipId, Notice)> {
    let topic = *log.topics().first()?;
    let pointer = |p: alloy::primitives::U256| u8::try_from(p).ok();
    let (id, notice) = match topic {
        R::RelationshipCreated::SIGNATURE_HASH => {
            let e = R::RelationshipCreated::decode_log(log).ok()?;
            let notice = Notice::Created {
                patient: e.account,
                delegate: e.delegate,
                identity: e.identity.to_vec(),
            };
            (e.relId, notice)
        }
        R::StatusChanged::SIGNATURE_HASH => {
            let e = R::StatusChanged::decode_log(log).ok()?;
            (e.relId, Notice::Status(Status::try_from(e.status).ok()?))
        }
        R::PointerAdded::SIGNATURE_HASH => {
            let e = R::PointerAdded::decode_log(log).ok()?;
            let notice = Notice::PointerAdded {
                pointer: pointer(e.pointerId)?,
                query_commitment: e.queryCommitment,
                data_hash: e.dataHash,
            };
            (e.relId, notice)
        }
        R::PointerUpdated::SIGNATURE_HASH => {
            let e = R::PointerUpdated::decode_log(log).ok()?;
            (
                e.relId,
                Notice::PointerUpdated { pointer: pointer(e.pointerId)?, data_hash: e.dataHash },
            )
        }
        R::ViewerGranted::SIGNATURE_HASH => {
            let e = R::ViewerGranted::decode_log(log).ok()?;
            let notice = Notice::Granted {
                viewer: e.viewer,
                pointers: PointerSet::from_bits(e.pointers),
                not_before: e.notBefore.to::<u64>(),
                expires_at: e.expiresAt.to::<u64>(),
                sealed_key: e.sealedKey.to_vec(),
            };
            (e.relId, notice)
        }
        R::ViewerRevoked::SIGNATURE_HASH => {
            let e = R::ViewerRevoked::decode_log(log).ok()?;
            (e.relId, Notice::Revoked { viewer: e.viewer })
        }
        R::ResearchConsentChanged::SIGNATURE_HASH => {
            let e = R::ResearchConsentChanged::decode_log(log).ok()?;
            (e.relId, Notice::ResearchConsent(e.optedIn))
        }
        _ => return None,
    };
    Some((RelationshipId(id), notice))
}

/// A relationship's latest state, as far as the notices read tell.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Summary {
    /// The patient's account (unknown to a viewer that saw only its grant).
    pub patient: Option<Address>,
    /// The provider, once the patient's client (or a viewer's, from its sealed key) has
    /// decrypted it: the chain holds it only encrypted ([`Summary::identity`]).
    pub provider: Option<Address>,
    /// The provider's address encrypted for the patient (36 bytes; empty when unknown).
    pub identity: Vec<u8>,
    /// The provider's delegate.
    pub delegate: Option<Address>,
    /// The status (unknown to a viewer).
    pub status: Option<Status>,
    /// Each pointer's query commitment and latest data hash.
    pub pointers: Vec<(B256, B256)>,
    /// Grants in force, by viewer: pointers, not before, expires at.
    pub grants: BTreeMap<Address, (PointerSet, u64, u64)>,
    /// The relationship's key sealed for each viewer in its latest grant, kept after a
    /// revocation (empty when the viewer published no encryption key).
    pub sealed_keys: BTreeMap<Address, Vec<u8>>,
    /// Whether the patient opted in to research.
    pub research_opt_in: bool,
    /// The block of the last notice.
    pub updated: u64,
}

/// Folds notices (in chain order) into each relationship's summary.
pub fn summarize(notices: &[Dated]) -> BTreeMap<RelationshipId, Summary> {
    let mut out: BTreeMap<RelationshipId, Summary> = BTreeMap::new();
    for d in notices {
        let s = out.entry(d.relationship).or_default();
        s.updated = d.block;
        match &d.notice {
            Notice::Created { patient, delegate, identity } => {
                (s.patient, s.delegate) = (Some(*patient), Some(*delegate));
                s.identity.clone_from(identity);
                s.status = Some(Status::Accepted);
            }
            Notice::Status(status) => s.status = Some(*status),
            Notice::PointerAdded { pointer, query_commitment, data_hash } => {
                if usize::from(*pointer) == s.pointers.len() {
                    s.pointers.push((*query_commitment, *data_hash));
                }
            }
            Notice::PointerUpdated { pointer, data_hash } => {
                if let Some(p) = s.pointers.get_mut(usize::from(*pointer)) {
                    p.1 = *data_hash;
                }
            }
            Notice::Granted { viewer, pointers, not_before, expires_at, sealed_key } => {
                s.grants.insert(*viewer, (*pointers, *not_before, *expires_at));
                s.sealed_keys.insert(*viewer, sealed_key.clone());
            }
            Notice::Revoked { viewer } => {
                // The viewer keeps the key sealed for it: it knew the provider before.
                s.grants.remove(viewer);
            }
            Notice::ResearchConsent(on) => s.research_opt_in = *on,
        }
    }
    out
}
