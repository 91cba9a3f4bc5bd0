//! `medrec clinician`: what an emergency clinician does. The emergency groups one
//! belongs to, breaking the glass for a patient who cannot consent (a reason code,
//! recorded on chain, the patient notified at once, open for four hours), and reading
//! the patient's emergency set (allergies, medication requests, conditions) from every
//! provider that holds their records. A clinician's wallet is a viewer's wallet
//! (`medrec viewer new`): what patients share with the clinician or with the clinician's
//! groups, `medrec viewer` fetches.

use crate::{
    commands::{
        common::{ChainArgs, WalletArgs, signer_from_env},
        group::{describe, group_json},
        patient::fhir,
    },
    output,
};
use alloy::{
    primitives::{Address, B256},
    signers::local::PrivateKeySigner,
};
use anyhow::Context;
use clap::{Args, Subcommand};
use medrec_client::care::{ClinicianSession, EmergencyReason, EmergencySet, member_groups};
use medrec_wallet::Wallet;
use serde_json::{Value, json};
use std::process::ExitCode;

/// The wallet a clinician uses: a viewer's.
const ROLE: &str = "viewer";

/// Arguments of `medrec clinician`.
#[derive(Debug, Args)]
pub(crate) struct ClinicianArgs {
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    wallet: WalletArgs,
    /// Sign with the hex private key in this environment variable instead of the
    /// wallet (development identities only).
    #[arg(long, value_name = "VAR", global = true)]
    key_env: Option<String>,
    /// Print only the result, as JSON, on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    what: Clinician,
}

#[derive(Debug, Subcommand)]
enum Clinician {
    /// The groups you belong to, and which of them are emergency groups (whose members
    /// may break the glass).
    Groups {
        /// Whose groups (default: your wallet's address).
        #[arg(long, value_name = "ADDRESS")]
        address: Option<Address>,
    },
    /// Break the glass: open a patient's emergency set to you for four hours, without
    /// their grant, as a member of an emergency group. Recorded on chain; the patient is
    /// notified at once.
    BreakGlass {
        /// The patient's address.
        #[arg(long, value_name = "ADDRESS")]
        patient: Address,
        /// The emergency group you act for (default: the first you belong to).
        #[arg(long, value_name = "ID")]
        group: Option<u64>,
        /// Why: unconscious, life-threatening or cannot-consent.
        #[arg(long, value_name = "REASON")]
        reason: EmergencyReason,
    },
    /// Read the patient's emergency set (allergies, medication requests, conditions)
    /// from every provider holding their records, while your opening lasts.
    Emergency {
        /// The patient's address.
        #[arg(long, value_name = "ADDRESS")]
        patient: Address,
    },
}

/// Runs `medrec clinician`.
pub(crate) fn run(args: &ClinicianArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        match &args.what {
            Clinician::Groups { address } => groups(args, *address).await,
            Clinician::BreakGlass { patient, group, reason } => {
                break_glass(args, *patient, *group, *reason).await
            }
            Clinician::Emergency { patient } => emergency(args, *patient).await,
        }
    })
}

/// The clinician's key: `--key-env`, or the viewer wallet.
fn signer(c: &ClinicianArgs) -> anyhow::Result<PrivateKeySigner> {
    match &c.key_env {
        Some(var) => signer_from_env(var),
        None => Ok(c.wallet.open(ROLE)?.account().clone()),
    }
}

/// The clinician's address, without unlocking the wallet.
fn address(c: &ClinicianArgs, given: Option<Address>) -> anyhow::Result<Address> {
    if let Some(a) = given {
        return Ok(a);
    }
    if c.key_env.is_some() {
        return Ok(signer(c)?.address());
    }
    let dir = c.wallet.dir(ROLE)?;
    Wallet::read_address(&dir).with_context(|| {
        format!(
            "no address given and no wallet in {}: pass --address or create one (`medrec viewer new`)",
            dir.display()
        )
    })
}

async fn session(c: &ClinicianArgs) -> anyhow::Result<ClinicianSession> {
    let signer = signer(c)?;
    Ok(ClinicianSession::new(c.chain.connect().await?, signer))
}

async fn groups(c: &ClinicianArgs, given: Option<Address>) -> anyhow::Result<ExitCode> {
    let me = address(c, given)?;
    let chain = c.chain.connect().await?;
    let mine = member_groups(&chain, me).await?;
    if c.json {
        output::result(
            &json!({"address": me, "groups": mine.iter().map(group_json).collect::<Vec<_>>()})
                .to_string(),
        );
        return Ok(ExitCode::SUCCESS);
    }
    if mine.is_empty() {
        output::note(&format!(
            "{me} belongs to no group: a certified institution adds its clinicians (`medrec group add`)"
        ));
    } else if !mine.iter().any(|g| g.emergency) {
        output::note("none of your groups is an emergency group: you cannot break the glass");
    }
    for g in &mine {
        output::result(&describe(g));
    }
    Ok(ExitCode::SUCCESS)
}

async fn break_glass(
    c: &ClinicianArgs,
    patient: Address,
    group: Option<u64>,
    reason: EmergencyReason,
) -> anyhow::Result<ExitCode> {
    let session = session(c).await?;
    let opened = session.break_glass(patient, group, reason).await?;
    if c.json {
        output::result(
            &json!({
                "patient": opened.patient,
                "clinician": session.address(),
                "group": opened.group,
                "reason": opened.reason.as_str(),
                "expires_at": opened.expires_at,
                "expires": fhir::when(opened.expires_at),
                "tx": opened.tx,
            })
            .to_string(),
        );
    } else {
        output::result(&format!(
            "the glass is broken: you may read the emergency set of patient {patient} until {} (as a member of group {}, because {})",
            fhir::when(opened.expires_at),
            opened.group,
            opened.reason
        ));
        output::note(&format!(
            "the patient was notified; every read is in their access log as break-glass. Read with `medrec clinician emergency --patient {patient}`"
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// How many resources of `ty` a provider served.
fn count(set: &EmergencySet, ty: &str) -> usize {
    set.resources.iter().filter(|r| r["resourceType"] == ty).count()
}

/// What is said of every emergency read: no pointer covers it, so nothing checks it.
const UNCHECKED: &str = "these records are not checked against a hash on chain: a break-glass read is outside any pointer the patient accepted, so they are what each gatekeeper served";

async fn emergency(c: &ClinicianArgs, patient: Address) -> anyhow::Result<ExitCode> {
    let session = session(c).await?;
    let sets = session.emergency_records(patient).await?;
    let types = ["AllergyIntolerance", "MedicationRequest", "Condition"];
    if c.json {
        let providers: Vec<Value> = sets
            .iter()
            .map(|s| {
                let counts: serde_json::Map<String, Value> =
                    types.iter().map(|t| ((*t).to_owned(), json!(count(s, t)))).collect();
                json!({
                    "provider": s.provider,
                    "endpoint": s.endpoint,
                    "counts": counts,
                    "resources": s.resources,
                })
            })
            .collect();
        output::result(
            &json!({
                "patient": patient,
                "clinician": session.address(),
                "hash_checked": false,
                "note": UNCHECKED,
                "records": sets.iter().map(|s| s.resources.len()).sum::<usize>(),
                "providers": providers,
            })
            .to_string(),
        );
        return Ok(ExitCode::SUCCESS);
    }
    output::note(&format!("note: {UNCHECKED}"));
    for s in &sets {
        output::note(&format!(
            "{} ({}): {} allergies, {} medication requests, {} conditions",
            s.provider,
            s.endpoint,
            count(s, "AllergyIntolerance"),
            count(s, "MedicationRequest"),
            count(s, "Condition")
        ));
    }
    let lines = fhir::timeline(
        sets.iter().flat_map(|s| s.resources.iter().map(move |r| (s.provider, B256::ZERO, r))),
    );
    for line in &lines {
        output::result(&line.human());
    }
    Ok(ExitCode::SUCCESS)
}
