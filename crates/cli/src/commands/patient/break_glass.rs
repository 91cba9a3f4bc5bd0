//! `medrec patient break-glass`: the patient's choice to allow break-glass (allowed
//! until refused; refusing also ends the openings in force), and the openings of one's
//! emergency set: who, for which group, why, until when. The inbox shows them too.

use super::{PatientArgs, fhir};
use crate::output;
use alloy::primitives::Address;
use anyhow::Context;
use clap::{Args, Subcommand};
use medrec_client::{
    Chain,
    care::{GroupInfo, Opening, OpeningState, groups},
};
use medrec_contracts::Relationships;
use medrec_wallet::Wallet;
use serde_json::{Value, json};
use std::process::ExitCode;

/// `medrec patient break-glass`.
#[derive(Debug, Subcommand)]
pub(crate) enum BreakGlass {
    /// Allow emergency clinicians to break the glass (the default).
    Allow,
    /// Refuse break-glass: no emergency clinician may open your emergency set, and the
    /// openings in force end now.
    Refuse,
    /// Whether break-glass is allowed, and every opening of your emergency set so far.
    Status(StatusArgs),
}

/// Arguments of `status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The patient's address (default: your wallet's).
    #[arg(long, value_name = "ADDRESS")]
    address: Option<Address>,
}

/// Runs `medrec patient break-glass`.
pub(crate) async fn run(p: &PatientArgs, what: &BreakGlass) -> anyhow::Result<ExitCode> {
    match what {
        BreakGlass::Allow => set(p, true).await,
        BreakGlass::Refuse => set(p, false).await,
        BreakGlass::Status(a) => status(p, a).await,
    }
}

async fn set(p: &PatientArgs, allowed: bool) -> anyhow::Result<ExitCode> {
    let session = super::session(p).await?;
    let sent = session.set_break_glass(allowed).await?;
    if sent.is_none() {
        let state = if allowed { "allowed" } else { "refused" };
        output::note(&format!("break-glass is already {state}; nothing sent"));
    }
    if p.json {
        output::result(
            &json!({"patient": session.address(), "break_glass_allowed": allowed, "tx": sent})
                .to_string(),
        );
    } else if allowed {
        output::result(
            "break-glass is allowed: an emergency clinician may read your allergies, medications and conditions for four hours when you cannot consent; you are told at once",
        );
    } else {
        output::result(
            "break-glass is refused: no emergency clinician may open your records without your grant, and any opening in force has ended",
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The patient's address: given, or the wallet's (without unlocking it).
pub(super) fn address(p: &PatientArgs, given: Option<Address>) -> anyhow::Result<Address> {
    if let Some(a) = given {
        return Ok(a);
    }
    let dir = p.wallet.dir("patient")?;
    Wallet::read_address(&dir).with_context(|| {
        format!(
            "no address given and no wallet in {}: pass --address or create a wallet (`medrec patient new`)",
            dir.display()
        )
    })
}

/// Whether break-glass is allowed for `patient` now.
async fn allowed(chain: &Chain, patient: Address) -> anyhow::Result<bool> {
    let refused = chain
        .relationships()
        .call_builder(&Relationships::breakGlassRefusedCall(patient))
        .call()
        .await
        .context("cannot read the break-glass setting")?;
    Ok(!refused)
}

/// Every opening of `patient`'s emergency set from block `since` on.
pub(super) async fn openings_of(
    chain: &Chain,
    patient: Address,
    since: u64,
) -> anyhow::Result<Vec<Opening>> {
    let spec = chain.spec();
    medrec_chain::care::read_openings(
        chain.reader(),
        spec.relationships,
        spec.from_block,
        patient,
        since,
    )
    .await
    .context("cannot read the break-glass openings")
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// What the patient's app needs to tell an opening: the groups' names.
#[derive(Debug, Default)]
pub(super) struct Known {
    groups: Vec<GroupInfo>,
}

impl Known {
    /// Read from the chain; the names are a courtesy (none when they cannot be read).
    pub(super) async fn read(chain: &Chain) -> Self {
        Self { groups: groups(chain).await.unwrap_or_default() }
    }

    fn group(&self, o: &Opening) -> Option<&GroupInfo> {
        self.groups.iter().find(|g| g.id == o.group)
    }
}

/// An opening as JSON.
pub(super) fn opening_json(o: &Opening, known: &Known) -> Value {
    json!({
        "kind": "break-glass",
        "block": o.block,
        "clinician": o.clinician,
        "group": o.group,
        "group_name": known.group(o).map(|g| g.name.clone()),
        "reason": o.reason.as_str(),
        "reason_text": o.reason.to_string(),
        "expires_at": o.expires_at,
        "expires": fhir::when(o.expires_at),
        "state": o.state(now()).as_str(),
    })
}

/// An opening in a sentence.
pub(super) fn describe_opening(o: &Opening, known: &Known) -> String {
    let group = known.group(o).map_or_else(
        || format!("group {}", o.group),
        |g| format!("group {} ({})", o.group, g.name),
    );
    let until = match o.state(now()) {
        OpeningState::Open => format!("open until {}", fhir::when(o.expires_at)),
        OpeningState::Expired => format!("expired at {}", fhir::when(o.expires_at)),
        OpeningState::Ended => "ended when you refused break-glass".to_owned(),
    };
    format!(
        "block {:>6}  BREAK-GLASS: clinician {} of {group} opened your emergency set (allergies, medications, conditions) because {}; {until}",
        o.block, o.clinician, o.reason,
    )
}

async fn status(p: &PatientArgs, a: &StatusArgs) -> anyhow::Result<ExitCode> {
    let patient = address(p, a.address)?;
    let chain = p.chain.connect().await?;
    let allowed = allowed(&chain, patient).await?;
    let openings = openings_of(&chain, patient, 0).await?;
    let known = Known::read(&chain).await;
    if p.json {
        output::result(
            &json!({
                "patient": patient,
                "break_glass_allowed": allowed,
                "openings": openings.iter().map(|o| opening_json(o, &known)).collect::<Vec<_>>(),
            })
            .to_string(),
        );
        return Ok(ExitCode::SUCCESS);
    }
    output::result(&if allowed {
        "break-glass is allowed (`medrec patient break-glass refuse` to refuse it)".to_owned()
    } else {
        "break-glass is refused (`medrec patient break-glass allow` to allow it)".to_owned()
    });
    if openings.is_empty() {
        output::note("nobody has broken the glass for you");
    }
    for o in &openings {
        output::result(&describe_opening(o, &known));
    }
    Ok(ExitCode::SUCCESS)
}
