//! `medrec provider publish`: new data behind enrolled pointers, announced on chain.
//!
//! For each enrolled relationship (or those named), each pointer's query is run again
//! over the record store and its data hash compared with the latest one on chain
//! (`PointerAdded` / `PointerUpdated` events). Each changed pointer gets
//! `updatePointer(patient, pointer, newHash, bounty)` from the relationship's delegate,
//! which sets *update pending* in the patient's summary and posts the bounty, owned by
//! the block's miner. The bounty query's text is published at the gatekeeper first, so
//! anyone can check it against the commitment on chain.

use super::{
    Context as Ctx, ENROLL_PATIENCE, ENROLL_PAUSE,
    bounty::BountyArgs,
    enroll::DELEGATE_FUNDING,
    state::{Enrolled, Enrollments},
    tx,
};
use crate::{
    commands::common::{ChainArgs, WalletArgs, until_caught_up},
    output,
};
use alloy::primitives::{B256, U256};
use anyhow::{Context, bail};
use clap::Args;
use medrec_chain::inbox;
use medrec_contracts::Relationships;
use medrec_gatekeeper::pointer::{self, PointerQuery};
use medrec_primitives::RelationshipId;
use medrec_store::fhir::ResourceId;
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
    /// Print one JSON object with what changed.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    wallet: WalletArgs,
}

/// A pointer whose data changed since it was last published.
struct Change {
    relationship: B256,
    pointer: usize,
    query: String,
    old: B256,
    new: B256,
    resources: usize,
}

/// Runs `medrec provider publish`.
#[allow(clippy::too_many_lines)]
pub(super) async fn publish(a: &PublishArgs) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::open(&a.chain, &a.wallet)?;
    // A malformed bounty is an error even when nothing changed.
    let bounty = a.bounty.resolve(&ctx.dir)?;
    let mut state = Enrollments::load(&ctx.dir)?;
    let selected: Vec<(B256, Enrolled)> = if a.only.is_empty() {
        state.relationships.iter().map(|(id, e)| (*id, e.clone())).collect()
    } else {
        a.only
            .iter()
            .map(|id| {
                state.relationships.get(id).map(|e| (*id, e.clone())).with_context(|| {
                    format!(
                        "relationship {id} is not one this provider enrolled (see {} in {})",
                        super::state::RELATIONSHIPS_FILE,
                        ctx.dir.display()
                    )
                })
            })
            .collect::<anyhow::Result<_>>()?
    };
    if selected.is_empty() {
        bail!("this provider has enrolled no relationship yet: run `medrec provider enroll` first");
    }

    let me = ctx.wallet.address();
    let reader = ctx.chain.reader()?;
    let notices = inbox::read(&reader, ctx.chain.relationships, ctx.chain.from_block, me, 0, None)
        .await
        .context("cannot read this provider's relationships from the chain")?;
    let on_chain = inbox::summarize(&notices);
    if a.only.is_empty() {
        // Relationships this provider created that relationships.json does not know (a
        // lost or older file): their queries are not known here, so they cannot be
        // published; say so rather than skip them silently.
        let unknown = on_chain
            .iter()
            .filter(|(id, s)| s.provider == Some(me) && !state.relationships.contains_key(&id.0))
            .count();
        if unknown > 0 {
            output::note(&format!(
                "note: {unknown} relationships created by this provider on chain are not in {}; their pointers are not published",
                super::state::RELATIONSHIPS_FILE
            ));
        }
    }
    let store = ctx.store().await?;

    let mut changes = Vec::new();
    let mut skipped = Vec::new();
    let mut unchanged = 0usize;
    for (id, enrolled) in &selected {
        let Some(summary) = on_chain.get(&RelationshipId(*id)) else {
            bail!("relationship {id} is not on this chain (was it enrolled on another one?)");
        };
        if summary.status.is_some_and(medrec_primitives::Status::is_closed) {
            let status = summary.status.map(|s| s.to_string()).unwrap_or_default();
            skipped.push(json!({"relationship": id, "status": status}));
            continue;
        }
        let patient: ResourceId = enrolled
            .patient_id
            .parse()
            .with_context(|| format!("relationships.json: bad patient id for {id}"))?;
        for (i, text) in enrolled.pointers.iter().enumerate() {
            let query = PointerQuery::parse(text)?;
            let Some(&(commitment, old)) = summary.pointers.get(i) else {
                bail!("pointer {i} of relationship {id} is in relationships.json but not on chain");
            };
            anyhow::ensure!(
                commitment == query.commitment(),
                "pointer {i} of relationship {id} has another query on chain than in relationships.json"
            );
            let data = pointer::run(store.as_ref(), &query, &patient).await?;
            if data.data_hash == old {
                unchanged += 1;
            } else {
                changes.push(Change {
                    relationship: *id,
                    pointer: i,
                    query: text.clone(),
                    old,
                    new: data.data_hash,
                    resources: data.resources.len(),
                });
            }
        }
    }

    // Enrollments the gatekeeper was not told about (an interrupted `enroll`) are
    // finished first, so that it serves what the chain announces.
    let client = ctx.client();
    for (id, enrolled) in &selected {
        let closed = on_chain
            .get(&RelationshipId(*id))
            .and_then(|s| s.status)
            .is_some_and(medrec_primitives::Status::is_closed);
        if enrolled.gatekeeper_enrolled || closed {
            continue;
        }
        let queries: Vec<&str> = enrolled.pointers.iter().map(String::as_str).collect();
        until_caught_up(ENROLL_PAUSE, ENROLL_PATIENCE, || {
            client.enroll(RelationshipId(*id), &enrolled.patient_id, &queries)
        })
        .await
        .with_context(|| format!("the gatekeeper did not take the enrollment of {id}"))?;
        if let Some(e) = state.relationships.get_mut(id) {
            e.gatekeeper_enrolled = true;
        }
        state.save(&ctx.dir)?;
        output::note(&format!("told the gatekeeper the pointers of {id}"));
    }

    if changes.is_empty() {
        if a.json {
            output::result(
                &json!({"changes": [], "unchanged": unchanged, "skipped": skipped, "bounty": null})
                    .to_string(),
            );
        } else {
            output::result(&format!(
                "nothing changed: {} of {} match the chain; no transaction sent",
                super::count(unchanged, "pointer"),
                super::count(selected.len() - skipped.len(), "relationship")
            ));
        }
        return Ok(ExitCode::SUCCESS);
    }

    let Some(bounty) = bounty else {
        bail!(
            "{} changed: every update carries a bounty query, pass --bounty TEXT or --offer NAME",
            super::count(changes.len(), "pointer")
        );
    };
    let commitment = bounty.publish(&client).await?;
    let by_provider = ctx.chain.sender(ctx.wallet.account().clone())?;
    let mut sent: Vec<Value> = Vec::new();
    for c in &changes {
        let enrolled = state.relationships.get(&c.relationship).context("enrolled")?;
        let delegate = ctx.wallet.delegate(enrolled.delegate_index)?;
        anyhow::ensure!(
            delegate.address() == enrolled.delegate,
            "relationships.json names delegate {} for {}, but index {} of this wallet is {}",
            enrolled.delegate,
            c.relationship,
            enrolled.delegate_index,
            delegate.address()
        );
        tx::fund(&by_provider, enrolled.delegate, U256::from(a.delegate_funding), "the delegate")
            .await?;
        let by_delegate = ctx.chain.sender(delegate)?;
        let rels = Relationships::new(ctx.chain.relationships, &by_delegate);
        let call = rels.updatePointer(enrolled.patient, U256::from(c.pointer), c.new, commitment);
        let receipt =
            tx::send(call, &format!("updating pointer {} of {}", c.pointer, c.relationship))
                .await?;
        let entry = json!({
            "relationship": c.relationship,
            "pointer": c.pointer,
            "query": c.query,
            "old_hash": c.old,
            "new_hash": c.new,
            "resources": c.resources,
            "tx": receipt.transaction_hash,
            "block": receipt.block_number,
            "bounty": commitment,
        });
        if !a.json {
            output::result(&format!(
                "relationship {} pointer {} ({}): {} → {} ({}), tx {}, bounty {commitment}",
                c.relationship,
                c.pointer,
                c.query,
                c.old,
                c.new,
                super::count(c.resources, "resource"),
                receipt.transaction_hash
            ));
        }
        sent.push(entry);
    }
    if a.json {
        output::result(
            &json!({
                "changes": sent,
                "unchanged": unchanged,
                "skipped": skipped,
                "bounty": {"text": bounty.text, "commitment": commitment},
            })
            .to_string(),
        );
    } else {
        output::result(&format!(
            "{} sent with bounty query: {}",
            super::count(sent.len(), "pointer update"),
            bounty.text
        ));
    }
    Ok(ExitCode::SUCCESS)
}
