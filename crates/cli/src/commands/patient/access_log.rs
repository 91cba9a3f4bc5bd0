//! `medrec patient access-log`: who read what of the patient's records, and when, from
//! each provider's gatekeeper, every entry's proof verified and its anchor checked on
//! chain.

use super::{PatientArgs, fhir};
use crate::output;
use clap::Args;
use medrec_client::patient::access_log::ProofStatus;
use serde_json::{Value, json};
use std::process::ExitCode;

/// Arguments of `medrec patient access-log`.
#[derive(Debug, Args)]
pub(crate) struct AccessLogArgs {
    /// Only the entries about this relationship (id or its first hex digits).
    #[arg(long, value_name = "ID")]
    relationship: Option<String>,
}

/// Runs `medrec patient access-log`.
pub(crate) async fn access_log(p: &PatientArgs, a: &AccessLogArgs) -> anyhow::Result<ExitCode> {
    let session = super::session(p).await?;
    let entries = session.access_log(a.relationship.as_deref()).await?;
    let mut failures = 0usize;
    let rows: Vec<Value> = entries
        .iter()
        .map(|e| {
            let proof = match &e.proof {
                ProofStatus::Pending => {
                    json!({"status": "pending", "message": "not anchored on chain yet"})
                }
                ProofStatus::Verified { block } => json!({"status": "verified", "block": block}),
                ProofStatus::Invalid { message } => {
                    failures += 1;
                    json!({"status": "invalid", "message": message})
                }
            };
            json!({
                "provider": e.provider,
                "seq": e.entry["seq"],
                "time": e.entry["time"],
                "requester": e.entry["requester"],
                "action": e.entry["action"],
                "relationship": e.entry["relationship"],
                "pointer": e.entry["pointer"],
                "resource": e.entry["resource"],
                "decision": e.entry["decision"],
                "proof": proof,
            })
        })
        .collect();
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
