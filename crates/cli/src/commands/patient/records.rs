//! `medrec patient records` and `export`: every pointer of every accepted relationship,
//! from every provider, each checked against the hash on chain, kept in the encrypted
//! local cache and shown as one timeline or exported as one FHIR Bundle.

use super::{PatientArgs, fhir};
use crate::output;
use alloy::primitives::Address;
use anyhow::Context;
use clap::Args;
use medrec_client::patient::records::{Problem, ProblemKind, Records, cache};
use medrec_wallet::Wallet;
use serde_json::{Value, json};
use std::{path::PathBuf, process::ExitCode};

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

/// A refresh problem as JSON.
pub(crate) fn problem_json(p: &Problem) -> Value {
    json!({
        "kind": p.kind.as_str(),
        "relationship": p.relationship,
        "provider": p.provider,
        "pointer": p.pointer,
        "message": p.message,
    })
}

/// Tells the person at the terminal, loudly for a mismatch.
pub(crate) fn tell(p: &Problem) {
    if p.kind == ProblemKind::HashMismatch {
        output::note(&format!("WARNING: {}", p.message));
    } else {
        output::note(&format!("note: {}", p.message));
    }
}

/// Refreshes the patient's cache from the chain and the providers.
async fn refresh(p: &PatientArgs, wallet: Wallet) -> anyhow::Result<(Records, Vec<Problem>)> {
    let chain =
        p.chain.connect().await.context(
            "cannot refresh the records (add --offline to read the local cache instead)",
        )?;
    anyhow::ensure!(
        p.for_account.is_none_or(|a| a == wallet.address()),
        "the records of another account are not fetched with --for-account: the providers' names are encrypted for the patient, so their gatekeepers are unknown here"
    );
    Ok(super::session_of(chain, &wallet, None)?.refresh().await?)
}

/// The records: the cache as it is (`offline`), or refreshed.
async fn load(p: &PatientArgs, offline: bool) -> anyhow::Result<(Records, Vec<Problem>)> {
    let wallet = p.wallet.open("patient")?;
    if offline {
        // Encrypted under the key that acts now (a rotation re-encrypts it).
        let key = wallet.acting_key()?;
        let held = cache(wallet.dir(), &key).load::<Records>()?.context(
            "nothing is cached yet: run `medrec patient records` once while the chain and the providers are reachable",
        )?;
        Ok((held, Vec::new()))
    } else {
        refresh(p, wallet).await
    }
}

fn mismatched(problems: &[Problem]) -> bool {
    problems.iter().any(|p| p.kind == ProblemKind::HashMismatch)
}

/// Runs `medrec patient records`.
pub(crate) async fn records(p: &PatientArgs, a: &RecordsArgs) -> anyhow::Result<ExitCode> {
    let (records, problems) = load(p, a.offline).await?;
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
                "problems": problems.iter().map(problem_json).collect::<Vec<_>>(),
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
        tell(problem);
    }
    if mismatched(&problems) {
        output::note("some records did not match the chain (see the warnings above)");
        return Ok(ExitCode::from(2));
    }
    Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(3) })
}

/// Runs `medrec patient export`.
pub(crate) async fn export(p: &PatientArgs, a: &ExportArgs) -> anyhow::Result<ExitCode> {
    let (records, problems) = load(p, a.offline).await?;
    for problem in &problems {
        tell(problem);
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
    Ok(if mismatched(&problems) { ExitCode::from(2) } else { ExitCode::SUCCESS })
}
