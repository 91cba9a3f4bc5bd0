//! `medrec group`: groups of clinicians defined by the certified institutions (all the
//! emergency departments, a hospital's pharmacists). A patient shares with a group like
//! with one viewer (`medrec patient share --group ID`) and every member reads; members
//! of an *emergency* group may break the glass (`medrec clinician break-glass`).
//! Creating a group and changing its members is for a certified institution, signing
//! with its provider wallet; anyone lists the groups.

use super::common::{ChainArgs, WalletArgs, signer_from_env};
use crate::output;
use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use clap::{Args, Subcommand};
use medrec_client::care::{GroupInfo, InstitutionSession, groups};
use serde_json::{Value, json};
use std::process::ExitCode;

/// Arguments of `medrec group`.
#[derive(Debug, Args)]
pub(crate) struct GroupArgs {
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    wallet: WalletArgs,
    /// Sign with the hex private key in this environment variable instead of the
    /// institution's provider wallet (development identities only).
    #[arg(long, value_name = "VAR", global = true)]
    key_env: Option<String>,
    /// Print only the result, as JSON, on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    what: Group,
}

#[derive(Debug, Subcommand)]
enum Group {
    /// Create a group managed by your institution (a certified institution's provider
    /// wallet): prints its id and the address patients share with.
    Create {
        /// Its name, 1 to 64 bytes (e.g. "Emergency departments").
        name: String,
        /// Its members are emergency clinicians: they may break the glass.
        #[arg(long)]
        emergency: bool,
    },
    /// Add a member (a clinician's address) to a group your institution manages.
    Add {
        /// The group's id.
        id: u64,
        /// The member's address.
        address: Address,
    },
    /// Remove a member: what the group was granted stops reaching it, and its
    /// break-glass openings as a member end.
    Remove {
        /// The group's id.
        id: u64,
        /// The member's address.
        address: Address,
    },
    /// Every group: id, name, whether it is an emergency group, the address a patient
    /// shares with, the managing institution.
    List,
}

/// Runs `medrec group`.
pub(crate) fn run(args: &GroupArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        match &args.what {
            Group::Create { name, emergency } => create(args, name, *emergency).await,
            Group::Add { id, address } => change(args, *id, *address, true).await,
            Group::Remove { id, address } => change(args, *id, *address, false).await,
            Group::List => list(args).await,
        }
    })
}

/// The certified institution's key: `--key-env`, or its provider wallet.
fn institution(g: &GroupArgs) -> anyhow::Result<PrivateKeySigner> {
    match &g.key_env {
        Some(var) => signer_from_env(var),
        None => Ok(g.wallet.open("provider")?.account().clone()),
    }
}

async fn session(g: &GroupArgs) -> anyhow::Result<InstitutionSession> {
    let signer = institution(g)?;
    Ok(InstitutionSession::new(g.chain.connect().await?, signer))
}

async fn create(g: &GroupArgs, name: &str, emergency: bool) -> anyhow::Result<ExitCode> {
    let session = session(g).await?;
    let (id, tx) = session.create_group(name, emergency).await?;
    let address = medrec_client::care::group_address(id);
    if g.json {
        output::result(
            &json!({"id": id, "name": name, "emergency": emergency, "address": address, "tx": tx})
                .to_string(),
        );
    } else {
        let kind = if emergency { "emergency group" } else { "group" };
        output::result(&format!(
            "{kind} {id} '{name}' created; patients share with it at {address}"
        ));
        output::note(&format!("add its members with `medrec group add {id} ADDRESS`"));
    }
    Ok(ExitCode::SUCCESS)
}

async fn change(g: &GroupArgs, id: u64, member: Address, add: bool) -> anyhow::Result<ExitCode> {
    let session = session(g).await?;
    let receipt = if add {
        session.add_member(id, member).await?
    } else {
        session.remove_member(id, member).await?
    };
    if g.json {
        output::result(
            &json!({
                "group": id,
                "member": member,
                "member_now": add,
                "block": receipt.block_number,
                "tx": receipt.transaction_hash,
            })
            .to_string(),
        );
    } else if add {
        output::result(&format!("{member} is now a member of group {id}"));
    } else {
        output::result(&format!("{member} is no longer a member of group {id}"));
    }
    Ok(ExitCode::SUCCESS)
}

/// A group as JSON.
pub(crate) fn group_json(g: &GroupInfo) -> Value {
    json!({
        "id": g.id,
        "name": g.name,
        "emergency": g.emergency,
        "address": g.address,
        "manager": g.manager,
    })
}

/// A group in a line.
pub(crate) fn describe(g: &GroupInfo) -> String {
    format!(
        "{:>3}  {}{}  share with {}  managed by {}",
        g.id,
        g.name,
        if g.emergency { " (emergency)" } else { "" },
        g.address,
        g.manager
    )
}

async fn list(g: &GroupArgs) -> anyhow::Result<ExitCode> {
    let chain = g.chain.connect().await?;
    let all = groups(&chain).await?;
    if g.json {
        output::result(
            &json!({"groups": all.iter().map(group_json).collect::<Vec<_>>()}).to_string(),
        );
        return Ok(ExitCode::SUCCESS);
    }
    if all.is_empty() {
        output::note("no groups yet: a certified institution creates them (`medrec group create`)");
    }
    for group in &all {
        output::result(&describe(group));
    }
    Ok(ExitCode::SUCCESS)
}
