//! `medrec provider publish`: new data behind enrolled pointers, announced on chain with
//! a bounty query (the steps are `medrec_client::provider::publish`'s).

use super::{bounty::BountyArgs, count};
use crate::{
    commands::common::{ChainArgs, WalletArgs},
    output,
};
use alloy::primitives::{B256, U256};
use clap::Args;
use medrec_client::provider::{
    DELEGATE_FUNDING,
    publish::{PublishReport, PublishRequest},
    state::RELATIONSHIPS_FILE,
};
use serde_json::{Value, json};
use std::process::ExitCode;

/// Arguments of `medrec provider publish`.
#[derive(Debug, Args)]
pub(super) struct PublishArgs {
    /// Only this relationship (repeat for several); default: every enrolled one.
    #[arg(long = "relationship", value_name = "ID")]
    only: Vec<B256>,
    #[command(flatten)]
    bounty: BountyArgs,
    /// Wei sent to a delegate for its gas when it runs low.
    #[arg(long, value_name = "WEI", default_value_t = DELEGATE_FUNDING)]
    delegate_funding: u128,
    /// Send each relationship's update at a random moment within this many seconds, so
    /// that the updates do not form a burst that ties this provider's patients together
    /// on chain (0: all at once).
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    spread: u64,
    /// Keep watching: every SECONDS, take a cheap fingerprint of the records the
    /// pointers read (per type, how many and the newest change) and, when it moved (or
    /// cannot tell, or every tenth round), publish the pointers whose data hash changed;
    /// runs until stopped (a failed round is reported and the next one tried).
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    watch: Option<u64>,
    /// Print one JSON object with what changed (with --watch, one line per publication).
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    wallet: WalletArgs,
}

/// Runs `medrec provider publish`.
pub(super) async fn publish(a: &PublishArgs) -> anyhow::Result<ExitCode> {
    let session = super::open(&a.chain, &a.wallet)?;
    // A malformed bounty is an error even when nothing changed.
    let bounty = a.bounty.choice().resolve(session.dir())?;
    let request = PublishRequest {
        only: a.only.clone(),
        bounty,
        delegate_funding: U256::from(a.delegate_funding),
        spread: std::time::Duration::from_secs(a.spread),
    };
    if let Some(seconds) = a.watch {
        output::note(&format!(
            "watching the records every {seconds} s; publishing the pointers whose data changed"
        ));
        session
            .watch(&request, std::time::Duration::from_secs(seconds), |round| {
                match round {
                    Ok(report) => print(&report, a.json),
                    Err(e) => output::note(&format!("error: {e}; trying again next round")),
                }
                std::ops::ControlFlow::Continue(())
            })
            .await?;
        return Ok(ExitCode::SUCCESS);
    }
    let report = session.publish(&request).await?;
    print(&report, a.json);
    Ok(ExitCode::SUCCESS)
}

/// Prints what a publication did.
fn print(report: &PublishReport, as_json: bool) {
    if !report.waiting.is_empty() {
        output::note(&format!(
            "note: {} offered in {RELATIONSHIPS_FILE} not taken by the patient yet; nothing to publish for them",
            count(report.waiting.len(), "relationship")
        ));
    }
    for id in &report.finished {
        output::note(&format!("told the gatekeeper the pointers of {id}"));
    }
    let skipped: Vec<Value> = report
        .skipped
        .iter()
        .map(|(id, status)| json!({"relationship": id, "status": status}))
        .collect();
    let Some(bounty) = &report.bounty else {
        if as_json {
            output::result(
                &json!({"changes": [], "unchanged": report.unchanged, "skipped": skipped, "waiting": report.waiting, "bounty": null})
                    .to_string(),
            );
        } else {
            output::result(&format!(
                "nothing changed: {} of {} match the chain; no transaction sent",
                count(report.unchanged, "pointer"),
                count(report.relationships, "relationship")
            ));
        }
        return;
    };
    let commitment = bounty.commitment;
    let mut sent = Vec::new();
    for c in &report.changes {
        if !as_json {
            output::result(&format!(
                "relationship {} pointer {} ({}): {} → {} ({}), tx {}, bounty {commitment}",
                c.relationship,
                c.pointer,
                c.query,
                c.old_hash,
                c.new_hash,
                count(c.resources, "resource"),
                c.tx
            ));
        }
        sent.push(json!({
            "relationship": c.relationship,
            "pointer": c.pointer,
            "query": c.query,
            "old_hash": c.old_hash,
            "new_hash": c.new_hash,
            "resources": c.resources,
            "tx": c.tx,
            "block": c.block,
            "bounty": commitment,
        }));
    }
    if as_json {
        output::result(
            &json!({
                "changes": sent,
                "unchanged": report.unchanged,
                "skipped": skipped,
                "waiting": report.waiting,
                "bounty": {"text": bounty.text, "commitment": commitment},
            })
            .to_string(),
        );
    } else {
        output::result(&format!(
            "{} sent with bounty query: {}",
            count(sent.len(), "pointer update"),
            bounty.text
        ));
    }
}
