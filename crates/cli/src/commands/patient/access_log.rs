//! `medrec patient access-log`: who read what of the patient's records, and when, from
//! each provider's gatekeeper, every entry's proof verified and its anchor checked on
//! chain.

use super::{PatientArgs, fhir, net::endpoint};
use crate::output;
use alloy::primitives::Address;
use anyhow::Context;
use clap::Args;
use medrec_chain::{
    anchors::{AnchorClaim, check_anchor},
    inbox::{read, summarize},
};
use medrec_gatekeeper::client::GatekeeperClient;
use medrec_store::audit::verify;
use serde_json::{Value, json};
use std::{collections::BTreeSet, process::ExitCode};

/// Arguments of `medrec patient access-log`.
#[derive(Debug, Args)]
pub(crate) struct AccessLogArgs {
    /// Only the entries about this relationship (id or its first hex digits).
    #[arg(long, value_name = "ID")]
    relationship: Option<String>,
}

/// Runs `medrec patient access-log`.
pub(crate) async fn access_log(p: &PatientArgs, a: &AccessLogArgs) -> anyhow::Result<ExitCode> {
    let wallet = p.wallet.open("patient")?;
    let me = wallet.address();
    let chain_id = p.chain.chain_id().await?;
    let reader = p.chain.reader()?;
    let notices = read(&reader, p.chain.relationships, p.chain.from_block, me, 0, None)
        .await
        .context("reading your relationships from the chain failed")?;
    let summaries = summarize(&notices);
    let mine: Vec<_> = summaries.iter().filter(|(_, s)| s.patient == Some(me)).collect();
    let only = match &a.relationship {
        Some(text) => Some(super::net::pick(mine.iter().map(|(id, _)| *id), text)?),
        None => None,
    };
    let providers: BTreeSet<Address> = mine
        .iter()
        .filter(|(id, _)| only.is_none_or(|o| o == **id))
        .filter_map(|(_, s)| s.provider)
        .collect();
    let mut rows = Vec::new();
    let mut failures = 0usize;
    for provider in providers {
        let url = endpoint(&reader, p.chain.registrar, provider).await?;
        let client = GatekeeperClient::new(url, provider, chain_id, wallet.account().clone());
        let entries = client
            .audit(0)
            .await
            .with_context(|| format!("cannot read the access log of provider {provider}"))?;
        for e in entries {
            if let Some(o) = only
                && e.entry["relationship"].as_str().and_then(|r| r.parse().ok()) != Some(o.0)
            {
                continue;
            }
            let proof = match &e.proof {
                None => json!({"status": "pending", "message": "not anchored on chain yet"}),
                Some(proof) => match verify(proof) {
                    Err(err) => {
                        failures += 1;
                        json!({"status": "invalid", "message": err.to_string()})
                    }
                    Ok(()) => {
                        let claim = AnchorClaim {
                            size: proof.anchor.size,
                            head: proof.anchor.head,
                            block: proof.anchor.block,
                        };
                        match check_anchor(&reader, p.chain.anchors, provider, claim).await {
                            Ok(()) => json!({"status": "verified", "block": proof.anchor.block}),
                            Err(err) => {
                                failures += 1;
                                json!({"status": "invalid", "message": err.to_string()})
                            }
                        }
                    }
                },
            };
            rows.push(json!({
                "provider": provider,
                "seq": e.entry["seq"],
                "time": e.entry["time"],
                "requester": e.entry["requester"],
                "action": e.entry["action"],
                "relationship": e.entry["relationship"],
                "pointer": e.entry["pointer"],
                "resource": e.entry["resource"],
                "decision": e.entry["decision"],
                "proof": proof,
            }));
        }
    }
    rows.sort_by_key(|r| (r["time"].as_u64(), r["seq"].as_u64()));
    if p.json {
        output::result(&json!({"entries": rows, "invalid": failures}).to_string());
    } else {
        if rows.is_empty() {
            output::note("nobody has read your records yet");
        }
        for r in &rows {
            output::result(&describe(r));
        }
    }
    if failures > 0 {
        output::note(&format!(
            "WARNING: {failures} access log entr{} could not be proven against the chain",
            if failures == 1 { "y" } else { "ies" }
        ));
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(r: &Value) -> String {
    let when = r["time"].as_u64().map_or_else(String::new, |ms| fhir::when(ms / 1000));
    let what = match (&r["pointer"], &r["resource"]) {
        (Value::Number(n), _) => format!("pointer {n}"),
        (_, Value::Object(res)) => format!(
            "{}{}",
            res.get("type").and_then(Value::as_str).unwrap_or("?"),
            res.get("id").and_then(Value::as_str).map(|i| format!("/{i}")).unwrap_or_default()
        ),
        _ => String::new(),
    };
    let proof = match r["proof"]["status"].as_str() {
        Some("verified") => format!("proof checked, anchored in block {}", r["proof"]["block"]),
        Some("pending") => "not anchored yet".to_owned(),
        _ => format!("PROOF INVALID: {}", r["proof"]["message"].as_str().unwrap_or_default()),
    };
    format!(
        "{when}  {}  {} {} {what} → {} ({proof})",
        r["provider"]
            .as_str()
            .and_then(|a| a.parse().ok())
            .map_or_else(String::new, fhir::short_address),
        r["requester"].as_str().unwrap_or("?"),
        r["action"].as_str().unwrap_or("?"),
        r["decision"].as_str().unwrap_or("?"),
    )
}
