//! A patient's records: every pointer of every accepted relationship, from every
//! provider, each checked against the hash on chain, kept in the encrypted local cache
//! ([`Records`]) and shown as one timeline or exported as one FHIR Bundle.

use super::PatientSession;
use crate::{
    cache::Cache,
    error::{OrInvalid as _, Result},
    retry::until_caught_up,
    timeline::{self, Line},
};
use alloy::{
    primitives::{Address, B256},
    signers::local::PrivateKeySigner,
};
use medrec_gatekeeper::client::{ClientError, GatekeeperClient, PointerData};
use medrec_primitives::{RelationshipId, Status};
use medrec_wallet::Wallet;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::{collections::BTreeMap, path::Path, time::Duration};

/// What a patient whose wallet was recreated from its recovery phrase finds again.
#[derive(Debug, Clone)]
pub struct Recovery {
    /// Their relationships, from the chain.
    pub relationships: BTreeMap<RelationshipId, medrec_chain::inbox::Summary>,
    /// Their records, fetched again, verified and cached.
    pub records: Records,
    /// What went wrong while fetching.
    pub problems: Vec<Problem>,
}

/// The cache file in the patient's data directory.
pub const CACHE_FILE: &str = "records.cache";
const CACHE_LABEL: &str = "patient-records-cache";

/// How long a gatekeeper may take to see the latest blocks before a refusal counts.
const CATCH_UP: Duration = Duration::from_secs(15);

/// What the cache holds (encrypted on disk).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Records {
    /// When it was last refreshed (Unix seconds).
    pub saved_at: u64,
    /// The chain it was checked against.
    pub chain_id: u64,
    /// Every accepted relationship, with its pointers' verified data.
    pub relationships: Vec<CachedRelationship>,
}

/// One relationship in the cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedRelationship {
    /// Its id.
    pub id: B256,
    /// The provider.
    pub provider: Address,
    /// The provider's gatekeeper.
    pub endpoint: String,
    /// Its status when last refreshed.
    pub status: Status,
    /// Each pointer's data, verified against the chain's hash when fetched.
    pub pointers: Vec<CachedPointer>,
}

/// One pointer's data in the cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CachedPointer {
    /// The pointer's number.
    pub pointer: u8,
    /// The hash on chain that the data matched.
    pub data_hash: B256,
    /// When it was fetched (Unix seconds).
    pub fetched_at: u64,
    /// The resources.
    pub resources: Vec<Value>,
}

impl Records {
    /// Number of resources held.
    pub fn count(&self) -> usize {
        self.relationships.iter().flat_map(|r| &r.pointers).map(|p| p.resources.len()).sum()
    }

    /// The timeline of everything held.
    pub fn timeline(&self) -> Vec<Line> {
        timeline::timeline(self.relationships.iter().flat_map(|r| {
            r.pointers
                .iter()
                .flat_map(move |p| p.resources.iter().map(move |x| (r.provider, r.id, x)))
        }))
    }

    /// Everything held as one `collection` Bundle.
    pub fn bundle(&self) -> Value {
        timeline::collection(self.relationships.iter().flat_map(|r| {
            r.pointers
                .iter()
                .flat_map(move |p| p.resources.iter().map(move |x| (r.endpoint.as_str(), x)))
        }))
    }
}

/// What kind of thing went wrong while refreshing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// The data served does not match the hash on chain: it was not accepted.
    HashMismatch,
    /// The provider's gatekeeper could not be found or reached.
    Unreachable,
    /// The gatekeeper refused.
    Refused,
}

impl ProblemKind {
    /// `hash-mismatch`, `unreachable` or `refused`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::HashMismatch => "hash-mismatch",
            Self::Unreachable => "unreachable",
            Self::Refused => "refused",
        }
    }
}

/// Something that went wrong with one pointer or provider while refreshing.
#[derive(Debug, Clone)]
pub struct Problem {
    /// What kind.
    pub kind: ProblemKind,
    /// The relationship.
    pub relationship: B256,
    /// The provider.
    pub provider: Address,
    /// The pointer, when it concerns one.
    pub pointer: Option<u8>,
    /// A sentence for a person.
    pub message: String,
}

/// The patient's cache in `dir`, opened with their account's key `account`.
pub fn cache(dir: &Path, account: &PrivateKeySigner) -> Cache {
    Cache::new(dir.join(CACHE_FILE), account, CACHE_LABEL)
}

/// The cache of the opened `wallet` as it is, or a clear error when there is none.
///
/// # Errors
/// When there is no cache yet or it cannot be read.
pub fn cached(wallet: &Wallet) -> Result<Records> {
    cache(wallet.dir(), wallet.account()).load()?.or_invalid(|| {
        "nothing is cached yet: run `medrec patient records` once while the chain and the providers are reachable"
    })
}

/// Fetches pointer `n` of `relationship`, retrying while the gatekeeper has not yet
/// seen the latest blocks (it answers 403, 409 or 503 then) for a bounded time.
///
/// # Errors
/// The gatekeeper's last refusal or failure.
pub async fn fetch_pointer(
    client: &GatekeeperClient,
    relationship: RelationshipId,
    n: u8,
) -> Result<PointerData, ClientError> {
    until_caught_up(Duration::from_millis(150), CATCH_UP, || client.pointer(relationship, n)).await
}

/// One pointer's resources, fetched (waiting while the gatekeeper catches up) and
/// checked against the hash on chain `on_chain`.
///
/// # Errors
/// The gatekeeper's refusal or failure, or [`ClientError::HashMismatch`].
pub async fn fetch_verified(
    client: &GatekeeperClient,
    id: RelationshipId,
    n: u8,
    on_chain: B256,
) -> Result<Vec<Value>, ClientError> {
    let data = fetch_pointer(client, id, n).await?;
    data.verify(on_chain)?;
    Ok(data.resources)
}

impl PatientSession {
    /// Recovery, once the wallet is recreated from its phrase
    /// (`medrec_wallet::Wallet::recover`): finds the patient's relationships on chain
    /// again, and fetches and verifies their records into a new cache.
    ///
    /// # Errors
    /// As [`PatientSession::relationships`] and [`PatientSession::refresh`].
    pub async fn find_again(&self) -> Result<Recovery> {
        let relationships = self.relationships().await?;
        let (records, problems) = self.refresh().await?;
        Ok(Recovery { relationships, records, problems })
    }

    /// Refreshes the cache from the chain and every accepted relationship's gatekeeper:
    /// returns what it holds now and what went wrong. Data that does not match the
    /// chain is never accepted; a copy verified earlier is kept instead.
    ///
    /// # Errors
    /// When the patient has no data directory, the chain cannot be read or the cache
    /// cannot be read or written.
    pub async fn refresh(&self) -> Result<(Records, Vec<Problem>)> {
        let dir = self
            .dir
            .as_deref()
            .or_invalid(|| "this patient has no data directory for the record cache")?;
        let cache = cache(dir, &self.signer);
        let old: Records = cache.load()?.unwrap_or_default();
        let me = self.address();
        let mut problems = Vec::new();
        let mut endpoints: BTreeMap<Address, Result<String>> = BTreeMap::new();
        let mut fresh = Records {
            saved_at: timeline::unix_now(),
            chain_id: self.chain.chain_id(),
            relationships: Vec::new(),
        };
        // The providers decrypted with the account's secret: the chain's summaries name
        // none.
        for (id, s) in self.relationships().await? {
            let (Some(provider), Some(status)) = (s.provider, s.status) else { continue };
            if s.patient != Some(me) || !status.is_accepted() {
                continue;
            }
            let previous = old.relationships.iter().find(|r| r.id == id.0);
            if let std::collections::btree_map::Entry::Vacant(slot) = endpoints.entry(provider) {
                slot.insert(self.chain.endpoint(provider).await);
            }
            let url = match &endpoints[&provider] {
                Ok(url) => url.clone(),
                Err(e) => {
                    problems.push(Problem {
                        kind: ProblemKind::Unreachable,
                        relationship: id.0,
                        provider,
                        pointer: None,
                        message: format!("{}; showing what was cached before", chain_of(e)),
                    });
                    if let Some(prev) = previous {
                        fresh.relationships.push(CachedRelationship { status, ..prev.clone() });
                    }
                    continue;
                }
            };
            let client = self.chain.gatekeeper(url.clone(), provider, self.signer.clone());
            let mut entry = CachedRelationship {
                id: id.0,
                provider,
                endpoint: url,
                status,
                pointers: Vec::new(),
            };
            for (n, (_, on_chain)) in s.pointers.iter().enumerate() {
                let Ok(n) = u8::try_from(n) else { break };
                let cached = previous
                    .and_then(|r| r.pointers.iter().find(|c| c.pointer == n))
                    .filter(|c| c.data_hash == *on_chain);
                match fetch_verified(&client, id, n, *on_chain).await {
                    Ok(resources) => entry.pointers.push(CachedPointer {
                        pointer: n,
                        data_hash: *on_chain,
                        fetched_at: timeline::unix_now(),
                        resources,
                    }),
                    Err(problem) => {
                        problems.push(describe(
                            &problem,
                            id,
                            provider,
                            n,
                            *on_chain,
                            cached.is_some(),
                        ));
                        if let Some(c) = cached {
                            entry.pointers.push(c.clone());
                        }
                    }
                }
            }
            fresh.relationships.push(entry);
        }
        cache.save(&fresh)?;
        Ok((fresh, problems))
    }
}

/// An error and its causes on one line (`a: b: c`).
fn chain_of(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// The problem a failed fetch of pointer `n` is.
fn describe(
    problem: &ClientError,
    id: RelationshipId,
    provider: Address,
    n: u8,
    on_chain: B256,
    kept: bool,
) -> Problem {
    let short = timeline::short_hash;
    let (kind, message) = match problem {
        ClientError::HashMismatch { computed, .. } => (
            ProblemKind::HashMismatch,
            format!(
                "the data of pointer {n} of relationship {} at provider {provider} does not match the hash on chain ({} on chain, {} served): the provider changed these records after publishing them; they were not accepted{}",
                short(id.0),
                short(on_chain),
                short(*computed),
                if kept { ", the copy verified earlier is kept" } else { "" }
            ),
        ),
        ClientError::Unreachable { .. } => (
            ProblemKind::Unreachable,
            format!("pointer {n} of relationship {}: {problem}", short(id.0)),
        ),
        _ => (
            ProblemKind::Refused,
            format!("pointer {n} of relationship {}: {problem}", short(id.0)),
        ),
    };
    Problem { kind, relationship: id.0, provider, pointer: Some(n), message }
}
