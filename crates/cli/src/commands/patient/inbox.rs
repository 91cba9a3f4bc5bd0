//! `medrec patient inbox`: the notices of the chain about one's relationships, once or
//! following new blocks, and the providers' offers waiting at their gatekeepers.
//!
//! Without `--address` the wallet is opened: the providers' names are decrypted with
//! the account's secret and the offers are asked for. With `--address` nothing is
//! unlocked: the notices as anyone reads them, the providers encrypted.

use super::{
    PatientArgs,
    break_glass::{Known, describe_opening, opening_json, openings_of},
};
use crate::output;
use alloy::primitives::Address;
use anyhow::Context;
use clap::Args;
use medrec_chain::inbox::{Dated, Notice, summarize};
use medrec_client::care::Opening;
use medrec_primitives::RelationshipId;
use medrec_wallet::Wallet;
use serde_json::{Value, json};
use std::{collections::BTreeMap, process::ExitCode, time::Duration};

/// Arguments of `medrec patient inbox`.
#[derive(Debug, Args)]
pub(crate) struct InboxArgs {
    /// Read the inbox of this address (a patient's, or a viewer's) without unlocking a
    /// wallet: the providers stay encrypted and offers are not asked for. Default: your
    /// wallet's account, unlocked.
    #[arg(long, env = "MEDREC_ADDRESS", value_name = "ADDRESS")]
    address: Option<Address>,
    /// Only notices from this block on.
    #[arg(long, value_name = "N", default_value_t = 0)]
    since: u64,
    /// Keep watching: print new notices as blocks arrive, until Ctrl-C.
    #[arg(long)]
    follow: bool,
}

/// Runs `medrec patient inbox`: with --json one object with the notices, each
/// relationship's summary and the break-glass openings of the patient's emergency set,
/// or with --follow one object per notice (or opening, `kind` "break-glass") and line.
pub(crate) async fn inbox(p: &PatientArgs, a: &InboxArgs) -> anyhow::Result<ExitCode> {
    let (address, session) = match a.address {
        Some(address) => (address, None),
        None => {
            let dir = p.wallet.dir("patient")?;
            Wallet::read_address(&dir).with_context(|| {
                format!(
                    "no address given and no wallet in {}: pass --address or create a wallet (`medrec patient new`)",
                    dir.display()
                )
            })?;
            let session = super::session(p).await?;
            (session.address(), Some(session))
        }
    };
    let chain = p.chain.connect().await?;
    let head = chain.head().await?;
    let notices =
        chain.notices(address, a.since, Some(head)).await.context("reading the inbox failed")?;
    let openings = openings_of(&chain, address, a.since).await?;
    let known = if openings.is_empty() { Known::default() } else { Known::read(&chain).await };
    // Each relationship's provider, decrypted with the account's secret, and the offers.
    let (summaries, offers) = match &session {
        Some(s) => {
            let found = s.offers().await?;
            super::offers::tell_problems(&found);
            (s.relationships().await?, found.offers)
        }
        None => (summarize(&chain.notices(address, 0, Some(head)).await?), Vec::new()),
    };
    let providers: Providers =
        summaries.iter().filter_map(|(id, s)| Some((*id, s.provider?))).collect();
    if !a.follow {
        if p.json {
            let mut list: Vec<Value> = summaries
                .iter()
                .map(|(id, s)| {
                    json!({
                        "relationship": id.0,
                        "patient": s.patient,
                        "provider": s.provider,
                        "delegate": s.delegate,
                        "status": s.status.map(|st| st.to_string()),
                        "pointers": s.pointers.len(),
                        "viewers": s.grants.keys().collect::<Vec<_>>(),
                        "research_opt_in": s.research_opt_in,
                    })
                })
                .collect();
            list.extend(offers.iter().map(|o| {
                json!({
                    "relationship": o.view.relationship.0,
                    "patient": o.view.account,
                    "provider": o.view.provider,
                    "delegate": o.view.delegate,
                    "status": "offered",
                    "pointers": 1,
                    "viewers": [],
                    "research_opt_in": false,
                    "endpoint": o.endpoint,
                })
            }));
            let notices_json: Vec<Value> =
                notices.iter().map(|n| notice_json(n, &providers)).collect();
            let opened: Vec<Value> = openings.iter().map(|o| opening_json(o, &known)).collect();
            output::result(
                &json!({
                    "address": address,
                    "notices": notices_json,
                    "relationships": list,
                    "offers": offers.iter().map(super::offers::offer_json).collect::<Vec<_>>(),
                    "break_glass": opened,
                })
                .to_string(),
            );
        } else {
            if notices.is_empty() && openings.is_empty() && offers.is_empty() {
                output::note("nothing yet");
            }
            if session.is_none() {
                output::note(
                    "the providers' names are encrypted for the patient: run without --address to read them with your wallet",
                );
            }
            // In chain order: a break-glass opening among the relationships' notices.
            let mut lines: Vec<(u64, String)> =
                notices.iter().map(|n| (n.block, describe(n, &providers))).collect();
            lines.extend(openings.iter().map(|o| (o.block, describe_opening(o, &known))));
            lines.sort_by_key(|(block, _)| *block);
            for (_, line) in &lines {
                output::result(line);
            }
            for o in &offers {
                let id = o.view.relationship.0.to_string();
                output::result(&format!(
                    "offer         {}…  provider {} offers you a relationship: take it with `medrec patient accept --relationship {id}`",
                    &id[..10],
                    o.view.provider
                ));
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    for n in &notices {
        print(n, &providers, p.json);
    }
    for o in &offers {
        if p.json {
            output::result(&super::offers::offer_json(o).to_string());
        } else {
            output::result(&format!(
                "offer: provider {} offers you relationship {}",
                o.view.provider, o.view.relationship.0
            ));
        }
    }
    for o in &openings {
        print_opening(o, &known, p.json);
    }
    output::note(&format!("following the chain from block {head}; press Ctrl-C to stop"));
    let mut next = head + 1;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        let Ok(head) = chain.head().await else {
            output::note("the chain node does not answer; retrying");
            continue;
        };
        if head < next {
            continue;
        }
        let new = async {
            let notices = chain.notices(address, next, Some(head)).await?;
            let openings = openings_of(&chain, address, next).await?;
            anyhow::Ok((notices, openings))
        };
        match new.await {
            Ok((notices, openings)) => {
                for n in &notices {
                    print(n, &providers, p.json);
                }
                let known =
                    if openings.is_empty() { Known::default() } else { Known::read(&chain).await };
                // Openings up to this head only: the next round starts after it.
                for o in openings.iter().filter(|o| o.block <= head) {
                    print_opening(o, &known, p.json);
                }
                next = head + 1;
            }
            Err(e) => output::note(&format!("reading new blocks failed ({e}); retrying")),
        }
    }
}

/// Each relationship's provider, where the patient's secret decrypted it.
pub(crate) type Providers = BTreeMap<RelationshipId, Address>;

fn print(n: &Dated, providers: &Providers, json: bool) {
    if json {
        output::result(&notice_json(n, providers).to_string());
    } else {
        output::result(&describe(n, providers));
    }
}

fn print_opening(o: &Opening, known: &Known, json: bool) {
    if json {
        output::result(&opening_json(o, known).to_string());
    } else {
        output::result(&describe_opening(o, known));
    }
}

/// A notice as JSON: `block`, `relationship`, `kind`, its fields, and `actor`, the key
/// that acted (the patient's, a custodian's, the delegate's).
pub(crate) fn notice_json(d: &Dated, providers: &Providers) -> Value {
    let mut v = match &d.notice {
        Notice::Created { patient, delegate, .. } => {
            json!({"kind": "created", "patient": patient, "provider": providers.get(&d.relationship), "delegate": delegate})
        }
        Notice::Status(s) => json!({"kind": "status", "status": s.to_string()}),
        Notice::PointerAdded { pointer, query_commitment, data_hash } => json!({
            "kind": "pointer-added", "pointer": pointer,
            "query_commitment": query_commitment, "data_hash": data_hash
        }),
        Notice::PointerUpdated { pointer, data_hash } => {
            json!({"kind": "pointer-updated", "pointer": pointer, "data_hash": data_hash})
        }
        Notice::Granted { viewer, pointers, not_before, expires_at, sealed_key } => json!({
            "kind": "granted", "viewer": viewer,
            "pointers": pointers.ids().collect::<Vec<u8>>(),
            "not_before": not_before, "expires_at": expires_at,
            "sealed_key": !sealed_key.is_empty(),
        }),
        Notice::Revoked { viewer } => json!({"kind": "revoked", "viewer": viewer}),
        Notice::ResearchConsent(on) => json!({"kind": "research-consent", "opted_in": on}),
    };
    v["block"] = json!(d.block);
    v["relationship"] = json!(d.relationship.0);
    v["actor"] = json!(d.actor);
    v
}

/// A notice in a sentence, with the key that acted when it is not the account's own.
pub(crate) fn describe(d: &Dated, providers: &Providers) -> String {
    let what = match &d.notice {
        Notice::Created { .. } => format!(
            "relationship created with provider {} (from its offer)",
            super::offers::provider_text(providers.get(&d.relationship).copied())
        ),
        Notice::Status(s) => format!("status is now {s}"),
        Notice::PointerAdded { pointer, .. } => format!("new data pointer {pointer}"),
        Notice::PointerUpdated { pointer, .. } => {
            format!("pointer {pointer} has new data (update pending)")
        }
        Notice::Granted { viewer, pointers, expires_at, .. } => format!(
            "{viewer} may see pointers {:?} until {}",
            pointers.ids().collect::<Vec<u8>>(),
            super::fhir::when(*expires_at)
        ),
        Notice::Revoked { viewer } => format!("{viewer} may no longer see anything"),
        Notice::ResearchConsent(true) => "opted in to research".to_owned(),
        Notice::ResearchConsent(false) => "opted out of research".to_owned(),
    };
    let id = d.relationship.0.to_string();
    let by = match (&d.notice, d.actor) {
        (Notice::Created { patient, .. }, Some(actor)) if actor != *patient => {
            format!(" (by key {actor})")
        }
        (
            Notice::Status(_)
            | Notice::Granted { .. }
            | Notice::Revoked { .. }
            | Notice::ResearchConsent(_),
            Some(actor),
        ) => format!(" (by {actor})"),
        _ => String::new(),
    };
    format!("block {:>6}  {}…  {what}{by}", d.block, &id[..10])
}
