//! `medrec patient records` and `export`: every pointer of every accepted relationship,
//! from every provider, each checked against the hash on chain, kept in the encrypted
//! local cache and shown as one timeline or exported as one FHIR Bundle.

use super::{
    PatientArgs, fhir,
    net::{endpoint, fetch_pointer},
};
use crate::{cache::Cache, output};
use alloy::primitives::{Address, B256};
use anyhow::Context;
use clap::Args;
use medrec_chain::inbox::{read, summarize};
use medrec_gatekeeper::client::{ClientError, GatekeeperClient};
use medrec_primitives::{RelationshipId, Status};
use medrec_wallet::Wallet;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::{collections::BTreeMap, path::PathBuf, process::ExitCode};

/// The cache file in the patient's data directory.
pub(crate) const CACHE_FILE: &str = "records.cache";
const CACHE_LABEL: &str = "patient-records-cache";

/// Arguments of `medrec patient records`.
#[derive(Debug, Args)]
pub(crate) struct RecordsArgs {
    /// Read only the local cache: no chain, no gatekeepers.
    #[arg(long)]
    offline: bool,
}

/// Arguments of `medrec patient export`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// Write the Bundle to this file (mode 0600) instead of stdout (with --json, stdout
    /// then gets `{"out", "entries"}`).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Export the local cache as it is, without fetching first.
    #[arg(long)]
    offline: bool,
}

/// What the cache holds (encrypted on disk).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Records {
    /// When it was last refreshed (Unix seconds).
    pub saved_at: u64,
    /// The chain it was checked against.
    pub chain_id: u64,
    /// Every accepted relationship, with its pointers' verified data.
    pub relationships: Vec<CachedRelationship>,
}

/// One relationship in the cache.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CachedRelationship {
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
pub(crate) struct CachedPointer {
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
    pub(crate) fn count(&self) -> usize {
        self.relationships.iter().flat_map(|r| &r.pointers).map(|p| p.resources.len()).sum()
    }

    /// The timeline of everything held.
    pub(crate) fn timeline(&self) -> Vec<fhir::Line> {
        fhir::timeline(self.relationships.iter().flat_map(|r| {
            r.pointers
                .iter()
                .flat_map(move |p| p.resources.iter().map(move |x| (r.provider, r.id, x)))
        }))
    }

    /// Everything held as one `collection` Bundle.
    pub(crate) fn bundle(&self) -> Value {
        fhir::collection(self.relationships.iter().flat_map(|r| {
            r.pointers
                .iter()
                .flat_map(move |p| p.resources.iter().map(move |x| (r.endpoint.as_str(), x)))
        }))
    }
}

/// Something that went wrong with one pointer or provider while refreshing.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    /// `hash-mismatch`, `unreachable` or `refused`.
    pub kind: &'static str,
    /// The relationship.
    pub relationship: B256,
    /// The provider.
    pub provider: Address,
    /// The pointer, when it concerns one.
    pub pointer: Option<u8>,
    /// A sentence for a person.
    pub message: String,
}

impl Problem {
    pub(crate) fn json(&self) -> Value {
        json!({
            "kind": self.kind,
            "relationship": self.relationship,
            "provider": self.provider,
            "pointer": self.pointer,
            "message": self.message,
        })
    }

    /// Tells the person at the terminal, loudly for a mismatch.
    pub(crate) fn tell(&self) {
        if self.kind == "hash-mismatch" {
            output::note(&format!("WARNING: {}", self.message));
        } else {
            output::note(&format!("note: {}", self.message));
        }
    }
}

/// The patient's cache, opened with their wallet's key.
pub(crate) fn cache(wallet: &Wallet) -> Cache {
    Cache::new(wallet.dir().join(CACHE_FILE), wallet.account(), CACHE_LABEL)
}

/// Refreshes the cache from the chain and every accepted relationship's gatekeeper:
/// returns what it holds now and what went wrong.
pub(crate) async fn refresh(
    p: &PatientArgs,
    wallet: &Wallet,
) -> anyhow::Result<(Records, Vec<Problem>)> {
    let cache = cache(wallet);
    let old: Records = cache.load()?.unwrap_or_default();
    let chain_id =
        p.chain.chain_id().await.context(
            "cannot refresh the records (add --offline to read the local cache instead)",
        )?;
    let reader = p.chain.reader()?;
    let me = wallet.address();
    let notices = read(&reader, p.chain.relationships, p.chain.from_block, me, 0, None)
        .await
        .context("reading your relationships from the chain failed")?;
    let mut problems = Vec::new();
    let mut endpoints: BTreeMap<Address, anyhow::Result<String>> = BTreeMap::new();
    let mut fresh = Records { saved_at: fhir::unix_now(), chain_id, relationships: Vec::new() };
    for (id, s) in summarize(&notices) {
        let (Some(provider), Some(status)) = (s.provider, s.status) else { continue };
        if s.patient != Some(me) || !status.is_accepted() {
            continue;
        }
        let previous = old.relationships.iter().find(|r| r.id == id.0);
        if let std::collections::btree_map::Entry::Vacant(slot) = endpoints.entry(provider) {
            slot.insert(endpoint(&reader, p.chain.registrar, provider).await);
        }
        let url = match &endpoints[&provider] {
            Ok(url) => url.clone(),
            Err(e) => {
                problems.push(Problem {
                    kind: "unreachable",
                    relationship: id.0,
                    provider,
                    pointer: None,
                    message: format!("{e:#}; showing what was cached before"),
                });
                if let Some(prev) = previous {
                    fresh.relationships.push(CachedRelationship { status, ..prev.clone() });
                }
                continue;
            }
        };
        let client =
            GatekeeperClient::new(url.clone(), provider, chain_id, wallet.account().clone());
        let mut entry =
            CachedRelationship { id: id.0, provider, endpoint: url, status, pointers: Vec::new() };
        for (n, (_, on_chain)) in s.pointers.iter().enumerate() {
            let Ok(n) = u8::try_from(n) else { break };
            let cached = previous
                .and_then(|r| r.pointers.iter().find(|c| c.pointer == n))
                .filter(|c| c.data_hash == *on_chain);
            match fetch(&client, id, n, *on_chain).await {
                Ok(resources) => entry.pointers.push(CachedPointer {
                    pointer: n,
                    data_hash: *on_chain,
                    fetched_at: fhir::unix_now(),
                    resources,
                }),
                Err(problem) => {
                    let (kind, message) = match &problem {
                        ClientError::HashMismatch { computed, .. } => (
                            "hash-mismatch",
                            format!(
                                "the data of pointer {n} of relationship {} at provider {provider} does not match the hash on chain ({} on chain, {} served): the provider changed these records after publishing them; they were not accepted{}",
                                fhir::short_hash(id.0),
                                fhir::short_hash(*on_chain),
                                fhir::short_hash(*computed),
                                if cached.is_some() {
                                    ", the copy verified earlier is kept"
                                } else {
                                    ""
                                }
                            ),
                        ),
                        ClientError::Unreachable { .. } => (
                            "unreachable",
                            format!(
                                "pointer {n} of relationship {}: {problem}",
                                fhir::short_hash(id.0)
                            ),
                        ),
                        _ => (
                            "refused",
                            format!(
                                "pointer {n} of relationship {}: {problem}",
                                fhir::short_hash(id.0)
                            ),
                        ),
                    };
                    problems.push(Problem {
                        kind,
                        relationship: id.0,
                        provider,
                        pointer: Some(n),
                        message,
                    });
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

/// One pointer's resources, checked against the hash on chain.
async fn fetch(
    client: &GatekeeperClient,
    id: RelationshipId,
    n: u8,
    on_chain: B256,
) -> Result<Vec<Value>, ClientError> {
    let data = fetch_pointer(client, id, n).await?;
    data.verify(on_chain)?;
    Ok(data.resources)
}

/// The cache as it is, or a clear error when there is none.
fn cached(wallet: &Wallet) -> anyhow::Result<Records> {
    cache(wallet).load()?.context(
        "nothing is cached yet: run `medrec patient records` once while the chain and the providers are reachable",
    )
}

/// Runs `medrec patient records`.
pub(crate) async fn records(p: &PatientArgs, a: &RecordsArgs) -> anyhow::Result<ExitCode> {
    let wallet = p.wallet.open("patient")?;
    let (records, problems) =
        if a.offline { (cached(&wallet)?, Vec::new()) } else { refresh(p, &wallet).await? };
    let age = fhir::unix_now().saturating_sub(records.saved_at);
    let lines = records.timeline();
    if p.json {
        let relationships: Vec<Value> = records
            .relationships
            .iter()
            .map(|r| {
                json!({
                    "id": r.id, "provider": r.provider, "endpoint": r.endpoint,
                    "status": r.status.to_string(),
                    "pointers": r.pointers.iter().map(|c| json!({
                        "pointer": c.pointer, "data_hash": c.data_hash,
                        "resources": c.resources.len(), "fetched_at": fhir::when(c.fetched_at),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        output::result(
            &json!({
                "offline": a.offline,
                "cached_at": fhir::when(records.saved_at),
                "age_seconds": age,
                "count": lines.len(),
                "relationships": relationships,
                "problems": problems.iter().map(Problem::json).collect::<Vec<_>>(),
                "timeline": lines.iter().map(fhir::Line::json).collect::<Vec<_>>(),
            })
            .to_string(),
        );
    } else {
        let providers: std::collections::BTreeSet<Address> =
            records.relationships.iter().map(|r| r.provider).collect();
        if a.offline {
            output::note(&format!(
                "offline: from the local cache, last refreshed {} ago ({})",
                fhir::span(age),
                fhir::when(records.saved_at)
            ));
        }
        output::note(&format!(
            "{} records from {} provider(s), each checked against the hash on chain when fetched",
            lines.len(),
            providers.len()
        ));
        for line in &lines {
            output::result(&line.human());
        }
    }
    for problem in &problems {
        problem.tell();
    }
    if problems.iter().any(|p| p.kind == "hash-mismatch") {
        output::note("some records did not match the chain (see the warnings above)");
        return Ok(ExitCode::from(2));
    }
    Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(3) })
}

/// Runs `medrec patient export`.
pub(crate) async fn export(p: &PatientArgs, a: &ExportArgs) -> anyhow::Result<ExitCode> {
    let wallet = p.wallet.open("patient")?;
    let (records, problems) =
        if a.offline { (cached(&wallet)?, Vec::new()) } else { refresh(p, &wallet).await? };
    for problem in &problems {
        problem.tell();
    }
    let bundle = records.bundle();
    let count = bundle["entry"].as_array().map_or(0, Vec::len);
    match &a.out {
        Some(path) => {
            let mut text = serde_json::to_vec_pretty(&bundle)?;
            text.push(b'\n');
            medrec_wallet::fs::write_private(path, &text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            if p.json {
                output::result(&json!({"out": path, "entries": count}).to_string());
            } else {
                output::note(&format!("wrote {count} resources to {}", path.display()));
            }
        }
        None => output::result(&bundle.to_string()),
    }
    Ok(if problems.iter().any(|p| p.kind == "hash-mismatch") {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
