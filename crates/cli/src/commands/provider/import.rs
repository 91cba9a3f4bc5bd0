//! `medrec provider import`: FHIR transaction or batch Bundles into the provider's
//! records, through its gatekeeper (as the provider, whose requests it signs).
//!
//! Every file is read and checked before anything is sent, so a malformed file imports
//! nothing. A transaction is all or nothing; a batch reports each entry, and any failed
//! entry makes the command exit non-zero.

use super::Context as Ctx;
use crate::{
    commands::common::{ChainArgs, WalletArgs},
    output,
};
use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};
use std::{collections::BTreeMap, path::PathBuf, process::ExitCode};

/// Arguments of `medrec provider import`.
#[derive(Debug, Args)]
pub(super) struct ImportArgs {
    /// FHIR R4 Bundles of type `transaction` or `batch`, as JSON files.
    #[arg(value_name = "BUNDLE.json", required = true)]
    files: Vec<PathBuf>,
    /// Print one JSON object with the counts.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    wallet: WalletArgs,
}

/// Reads and checks one Bundle file.
fn read_bundle(path: &PathBuf) -> anyhow::Result<Value> {
    let name = path.display();
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {name}"))?;
    let bundle: Value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{name} is not valid JSON: {e}"))?;
    if bundle["resourceType"] != "Bundle" {
        bail!("{name} is not a FHIR Bundle (its resourceType is not \"Bundle\")");
    }
    match bundle["type"].as_str() {
        Some("transaction" | "batch") => {}
        Some(other) => bail!(
            "{name} is a Bundle of type \"{other}\": only transaction and batch Bundles can be imported"
        ),
        None => bail!("{name} is a Bundle without a type: use \"transaction\" or \"batch\""),
    }
    let entries = bundle["entry"].as_array().map_or(0, Vec::len);
    if entries == 0 {
        bail!("{name} is a Bundle with no entries: nothing to import");
    }
    Ok(bundle)
}

/// Runs `medrec provider import`.
pub(super) async fn import(a: &ImportArgs) -> anyhow::Result<ExitCode> {
    let bundles = a
        .files
        .iter()
        .map(|p| read_bundle(p).map(|b| (p, b)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ctx = Ctx::open(&a.chain, &a.wallet)?;
    let client = ctx.client();
    let mut reports = Vec::new();
    let mut failed_total = 0usize;
    for (path, bundle) in &bundles {
        let name = path.display();
        let answer = client
            .import(bundle)
            .await
            .with_context(|| format!("the gatekeeper did not import {name}"))?;
        let mut types: BTreeMap<String, usize> = BTreeMap::new();
        for e in bundle["entry"].as_array().into_iter().flatten() {
            let ty = e["resource"]["resourceType"].as_str().unwrap_or("(none)");
            *types.entry(ty.to_owned()).or_default() += 1;
        }
        let (mut created, mut updated, mut failed) = (0usize, 0usize, 0usize);
        for e in answer["entry"].as_array().into_iter().flatten() {
            let status = e["response"]["status"].as_str().unwrap_or("");
            match status.split_whitespace().next() {
                Some("201") => created += 1,
                Some(s) if s.starts_with('2') => updated += 1,
                _ => failed += 1,
            }
        }
        failed_total += failed;
        reports.push(json!({
            "file": path,
            "type": bundle["type"],
            "entries": bundle["entry"].as_array().map_or(0, Vec::len),
            "created": created,
            "updated": updated,
            "failed": failed,
            "resource_types": types,
        }));
        if !a.json {
            let kinds: Vec<String> = types.iter().map(|(t, n)| format!("{n} {t}")).collect();
            output::result(&format!(
                "{name}: {created} created, {updated} updated{} ({})",
                if failed > 0 { format!(", {failed} failed") } else { String::new() },
                kinds.join(", ")
            ));
        }
    }
    if a.json {
        output::result(&json!({ "imported": reports, "failed": failed_total }).to_string());
    }
    if failed_total > 0 {
        output::note(&format!("{failed_total} entries of the batches failed"));
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
