//! `medrec provider import`: FHIR transaction or batch Bundles into the provider's
//! records, through its gatekeeper (as the provider, whose requests it signs).
//!
//! Every file is read and checked before anything is sent, so a malformed file imports
//! nothing. A transaction is all or nothing; a batch reports each entry, and any failed
//! entry makes the command exit non-zero.

use crate::{
    commands::common::{ChainArgs, WalletArgs},
    output,
};
use clap::Args;
use medrec_client::provider::import::read_bundle;
use serde_json::json;
use std::{path::PathBuf, process::ExitCode};

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

/// Runs `medrec provider import`.
pub(super) async fn import(a: &ImportArgs) -> anyhow::Result<ExitCode> {
    let bundles =
        a.files.iter().map(|p| read_bundle(p).map(|b| (p, b))).collect::<Result<Vec<_>, _>>()?;
    let session = super::open(&a.chain, &a.wallet)?;
    let mut reports = Vec::new();
    let mut failed_total = 0usize;
    for (path, bundle) in &bundles {
        let name = path.display().to_string();
        let r = session.import(bundle, &name).await?;
        failed_total += r.failed;
        reports.push(json!({
            "file": path,
            "type": bundle["type"],
            "entries": r.entries,
            "created": r.created,
            "updated": r.updated,
            "failed": r.failed,
            "resource_types": r.resource_types,
        }));
        if !a.json {
            let kinds: Vec<String> =
                r.resource_types.iter().map(|(t, n)| format!("{n} {t}")).collect();
            output::result(&format!(
                "{name}: {} created, {} updated{} ({})",
                r.created,
                r.updated,
                if r.failed > 0 { format!(", {} failed", r.failed) } else { String::new() },
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
