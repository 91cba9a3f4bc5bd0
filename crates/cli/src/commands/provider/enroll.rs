//! `medrec provider enroll`: a signed offer of a relationship, kept at the provider's
//! gatekeeper until the patient takes it (`medrec patient accept`), which creates the
//! relationship on chain from the patient's own key (the steps are
//! `medrec_client::provider::enroll`'s). Nothing goes on chain from the provider.

use super::bounty::BountyArgs;
use crate::{
    commands::common::{ChainArgs, WalletArgs},
    output,
};
use alloy::primitives::{Address, B256, U256};
use clap::Args;
use medrec_client::provider::{
    DELEGATE_FUNDING,
    enroll::{EnrollRequest, PatientRef},
};
use serde_json::json;
use std::process::ExitCode;

/// Arguments of `medrec provider enroll`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("who").required(true).multiple(true).args(["patient", "identity"]))]
pub(super) struct EnrollArgs {
    /// The patient's FHIR `Patient` id in the provider's record store.
    #[arg(long, value_name = "FHIR_ID")]
    patient_id: String,
    /// The patient's address (registered under --identity when that is unknown and this
    /// provider is a certified institution).
    #[arg(long, value_name = "ADDRESS")]
    patient: Option<Address>,
    /// The patient's identity text (e.g. a medical record number), resolved through the
    /// Registrar with --salt.
    #[arg(long, value_name = "TEXT", requires = "salt")]
    identity: Option<String>,
    /// The secret 32-byte salt of the patient's identity commitment (hex).
    #[arg(long, value_name = "HEX32", requires = "identity")]
    salt: Option<B256>,
    /// A pointer's query (a FHIR search such as `Observation?category=laboratory`); repeat
    /// for several. Default: labs, conditions, medications, immunizations, allergies.
    #[arg(long = "pointer", value_name = "QUERY")]
    pointers: Vec<String>,
    #[command(flatten)]
    bounty: BountyArgs,
    /// On a priced chain, wei sent to the patient when they hold less than half of it, so
    /// that they can take the offer and answer without buying ether; 0 sends nothing.
    /// The transfer is public and links the provider to the patient: on a free-gas chain
    /// (`medrec chain --free-gas`) nothing is ever sent.
    #[arg(long, value_name = "WEI", default_value_t = DELEGATE_FUNDING)]
    patient_funding: u128,
    /// Print one JSON object with the result.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    wallet: WalletArgs,
}

/// Runs `medrec provider enroll`.
pub(super) async fn enroll(a: &EnrollArgs) -> anyhow::Result<ExitCode> {
    let session = super::open(&a.chain, &a.wallet)?;
    let bounty = a.bounty.choice().resolve(session.dir())?;
    let request = EnrollRequest {
        patient_id: a.patient_id.clone(),
        patient: PatientRef { address: a.patient, identity: a.identity.clone().zip(a.salt) },
        pointers: a.pointers.clone(),
        bounty,
        patient_funding: U256::from(a.patient_funding),
    };
    let e = session.enroll(&request).await?;
    if let Some(commitment) = e.registered_identity {
        output::note(&format!("registered the patient's identity {commitment} to {}", e.patient));
    }
    if a.json {
        let pointers: Vec<_> = e
            .pointers
            .iter()
            .map(|p| {
                json!({
                    "pointer": p.pointer,
                    "query": p.query,
                    "resources": p.resources,
                    "data_hash": p.data_hash,
                    "tx": p.tx,
                })
            })
            .collect();
        output::result(
            &json!({
                "relationship": e.relationship.0,
                "patient": e.patient,
                "patient_id": e.patient_id,
                "delegate": e.delegate,
                "delegate_index": e.delegate_index,
                "status": "offered",
                "pointers": pointers,
                "waiting": e.waiting,
                "bounty": e.bounty,
            })
            .to_string(),
        );
    } else {
        output::result(&format!(
            "offered patient {} (FHIR id {}) relationship {} with delegate {} (#{}); it waits at the gatekeeper until the patient takes it (`medrec patient accept --relationship {}`)",
            e.patient,
            e.patient_id,
            e.relationship.0,
            e.delegate,
            e.delegate_index,
            e.relationship.0
        ));
        for p in &e.pointers {
            output::result(&format!(
                "  pointer {}: {} ({}, data hash {}), offered",
                p.pointer,
                p.query,
                super::count(p.resources, "resource"),
                p.data_hash,
            ));
        }
        for (i, q) in e.waiting.iter().enumerate() {
            output::result(&format!(
                "  pointer {}: {q}, added by `medrec provider publish` once the patient has taken the offer",
                i + 1
            ));
        }
        if let Some(c) = e.bounty {
            output::result(&format!("  bounty commitment {c}"));
        }
    }
    Ok(ExitCode::SUCCESS)
}
