//! A participant's inbox: what happened on chain to the relationships they are part of,
//! and their summary (each relationship's latest state), read from the `Relationships`
//! contract's events.
//!
//! - A patient sees every event of their relationships: new relationships, status
//!   changes, pointers added or updated (an update sets *update pending*), grants and
//!   revocations, research consent.
//! - A provider sees the same for the relationships it created.
//! - A viewer sees the grants and revocations that name it.
//!
//! Nothing here is private: it is what anyone can read from the chain, filtered for one
//! address. Reading it needs no key.

use alloy::{
    eips::BlockNumberOrTag,
    primitives::{Address, B256, Log},
    providers::Provider,
    rpc::types::Filter,
    sol_types::SolEvent,
};
use medrec_contracts::Relationships as R;
use medrec_primitives::{PointerSet, RelationshipId, Status};
use std::collections::{BTreeMap, BTreeSet};

/// One thing that happened to a relationship.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// A provider created a relationship with a patient.
    Created {
        /// The patient.
        patient: Address,
        /// The provider.
        provider: Address,
        /// The provider's delegate address for it.
        delegate: Address,
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
}

/// Why the inbox could not be read.
#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    /// The node did not answer.
    #[error("the chain node could not be asked: {0}")]
    Rpc(String),
}

/// Events of the `relationships` contract (deployed in block `deployed`) about
/// `participant` in blocks `since..=to` (to the head when `to` is `None`), in chain
/// order. The participant's relationships are found from the deployment on, so a
/// window shows everything that happened to them in it.
pub async fn read<P: Provider>(
    chain: &P,
    relationships: Address,
    deployed: u64,
    participant: Address,
    since: u64,
    to: Option<u64>,
) -> Result<Vec<Dated>, InboxError> {
    let rpc = |e: alloy::transports::TransportError| InboxError::Rpc(e.to_string());
    let to = match to {
        Some(t) => BlockNumberOrTag::Number(t),
        None => BlockNumberOrTag::Latest,
    };
    let base = Filter::new().address(relationships).from_block(since.max(deployed)).to_block(to);
    let word = participant.into_word();
    // Relationships the participant is party to, as patient or provider.
    let created = Filter::new()
        .address(relationships)
        .from_block(deployed)
        .to_block(to)
        .event_signature(R::RelationshipCreated::SIGNATURE_HASH);
    let mut own: BTreeSet<B256> = BTreeSet::new();
    for filter in [created.clone().topic2(word), created.topic3(word)] {
        for log in chain.get_logs(&filter).await.map_err(rpc)? {
            if let Some(id) = log.topics().get(1) {
                own.insert(*id);
            }
        }
    }
    let mut logs = Vec::new();
    if !own.is_empty() {
        let ids: Vec<B256> = own.iter().copied().collect();
        logs.extend(chain.get_logs(&base.clone().topic1(ids)).await.map_err(rpc)?);
    }
    // Grants and revocations naming the participant as viewer, on anyone's relationships.
    let as_viewer = base
        .event_signature(vec![R::ViewerGranted::SIGNATURE_HASH, R::ViewerRevoked::SIGNATURE_HASH])
        .topic2(word);
    for log in chain.get_logs(&as_viewer).await.map_err(rpc)? {
        if !log.topics().get(1).is_some_and(|id| own.contains(id)) {
            logs.push(log);
        }
    }
    logs.sort_by_key(|l| (l.block_number, l.log_index));
    Ok(logs
        .iter()
        .filter(|l| !l.removed)
        .filter_map(|l| Some((l.block_number?, decode(&l.inner)?)))
        .map(|(block, (relationship, notice))| Dated { block, relationship, notice })
        .collect())
}

/// One `Relationships` log as a notice (`None` for other logs).
pub fn decode(log: &Log) -> Option<(RelationshipId, Notice)> {
    let topic = *log.topics().first()?;
    let pointer = |p: alloy::primitives::U256| u8::try_from(p).ok();
    let (id, notice) = match topic {
        R::RelationshipCreated::SIGNATURE_HASH => {
            let e = R::RelationshipCreated::decode_log(log).ok()?;
            let notice =
                Notice::Created { patient: e.patient, provider: e.provider, delegate: e.delegate };
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
    /// The patient (unknown to a viewer that saw only its grant).
    pub patient: Option<Address>,
    /// The provider.
    pub provider: Option<Address>,
    /// The provider's delegate.
    pub delegate: Option<Address>,
    /// The status (unknown to a viewer).
    pub status: Option<Status>,
    /// Each pointer's query commitment and latest data hash.
    pub pointers: Vec<(B256, B256)>,
    /// Grants in force, by viewer: pointers, not before, expires at.
    pub grants: BTreeMap<Address, (PointerSet, u64, u64)>,
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
            Notice::Created { patient, provider, delegate } => {
                (s.patient, s.provider, s.delegate) =
                    (Some(*patient), Some(*provider), Some(*delegate));
                s.status = Some(Status::New);
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
            Notice::Granted { viewer, pointers, not_before, expires_at } => {
                s.grants.insert(*viewer, (*pointers, *not_before, *expires_at));
            }
            Notice::Revoked { viewer } => {
                s.grants.remove(viewer);
            }
            Notice::ResearchConsent(on) => s.research_opt_in = *on,
        }
    }
    out
}
