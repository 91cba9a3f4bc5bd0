//! `medrec viewer`: what a third party (a pharmacist, another provider) does with what a
//! patient shared with it: create its wallet, see its grants, and fetch the shared
//! records from the provider's gatekeeper, each checked against the hash on chain.
//! Fetching is refused as soon as the grant is revoked or expired on chain.

use crate::{
    commands::{
        common::{ChainArgs, WalletArgs},
        patient::{NewArgs, create_wallet, fhir},
    },
    output,
};
use alloy::primitives::Address;
use anyhow::Context;
use clap::{Args, Subcommand};
use medrec_client::viewer::{GrantState as State, Shared, ViewerSession, shared_with};
use medrec_wallet::Wallet;
use serde_json::{Value, json};
use std::process::ExitCode;

/// Arguments of `medrec viewer`.
#[derive(Debug, Args)]
pub(crate) struct ViewerArgs {
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    wallet: WalletArgs,
    /// Print only the result, as JSON, on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    what: Viewer,
}

#[derive(Debug, Subcommand)]
enum Viewer {
    /// Create the viewer's wallet: an address to give patients, and a recovery phrase.
    New(NewArgs),
    /// What patients shared with you: grants and revocations, and whether each grant is
    /// valid now.
    Inbox(InboxArgs),
    /// Fetch what was shared with you, checked against the chain: a timeline, or with
    /// --json one FHIR Bundle.
    Fetch(FetchArgs),
}

#[derive(Debug, Args)]
struct InboxArgs {
    /// The viewer's address (default: your wallet's).
    #[arg(long, value_name = "ADDRESS")]
    address: Option<Address>,
}

#[derive(Debug, Args)]
struct FetchArgs {
    /// Only this relationship (id or its first hex digits).
    #[arg(long, value_name = "ID")]
    relationship: Option<String>,
}

/// A shared relationship as JSON.
fn shared_json(s: &Shared) -> Value {
    let (pointers, not_before, expires_at) = match s.grant {
        Some((set, nb, exp)) => (set.ids().collect::<Vec<u8>>(), Some(nb), Some(exp)),
        None => (Vec::new(), None, None),
    };
    json!({
        "relationship": s.id.0,
        "provider": s.provider,
        "relationship_status": s.status.map(|st| st.to_string()),
        "pointers": pointers,
        "not_before": not_before,
        "expires_at": expires_at,
        "expires": expires_at.map(fhir::when),
        "state": s.state.as_str(),
        "valid_now": s.state == State::Valid,
    })
}

/// Runs `medrec viewer`.
pub(crate) fn run(args: &ViewerArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        match &args.what {
            Viewer::New(a) => create_wallet("viewer", &args.wallet, a, args.json),
            Viewer::Inbox(a) => inbox(args, a).await,
            Viewer::Fetch(a) => fetch(args, a).await,
        }
    })
}

fn my_address(v: &ViewerArgs, given: Option<Address>) -> anyhow::Result<Address> {
    if let Some(a) = given {
        return Ok(a);
    }
    let dir = v.wallet.dir("viewer")?;
    Wallet::read_address(&dir).with_context(|| {
        format!(
            "no address given and no wallet in {}: pass --address or create one (`medrec viewer new`)",
            dir.display()
        )
    })
}

async fn inbox(v: &ViewerArgs, a: &InboxArgs) -> anyhow::Result<ExitCode> {
    let me = my_address(v, a.address)?;
    let chain = v.chain.connect().await?;
    let list = shared_with(&chain, me).await?;
    if v.json {
        output::result(
            &json!({"address": me, "shared": list.iter().map(shared_json).collect::<Vec<_>>()})
                .to_string(),
        );
        return Ok(ExitCode::SUCCESS);
    }
    if list.is_empty() {
        output::note("nothing has been shared with you yet");
    }
    for s in &list {
        let detail = match s.grant {
            Some((set, _, exp)) => {
                format!("pointers {:?}, until {}", set.ids().collect::<Vec<u8>>(), fhir::when(exp))
            }
            None => "no pointers".to_owned(),
        };
        output::result(&format!(
            "{}…  provider {}  {detail}  → {}",
            &s.id.0.to_string()[..10],
            s.provider,
            s.state.as_str()
        ));
    }
    Ok(ExitCode::SUCCESS)
}

async fn fetch(v: &ViewerArgs, a: &FetchArgs) -> anyhow::Result<ExitCode> {
    let wallet = v.wallet.open("viewer")?;
    let chain = v.chain.connect().await?;
    let fetched = ViewerSession::new(chain, wallet.account().clone())
        .fetch(a.relationship.as_deref())
        .await?;
    for s in &fetched.refused {
        output::note(&format!("note: {}", s.refusal()));
    }
    for (id, n, e) in &fetched.mismatches {
        output::note(&format!(
            "WARNING: pointer {n} of relationship {} does not match the hash on chain, so it is not shown: {e}",
            id.0
        ));
    }
    let items = &fetched.records;
    if v.json {
        output::result(
            &fhir::collection(items.iter().map(|r| (r.endpoint.as_str(), &r.resource))).to_string(),
        );
    } else {
        let lines =
            fhir::timeline(items.iter().map(|r| (r.provider, r.relationship.0, &r.resource)));
        output::note(&format!(
            "{} records shared with you, each checked against the hash on chain",
            lines.len()
        ));
        for line in &lines {
            output::result(&line.human());
        }
    }
    Ok(if fetched.mismatches.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(2) })
}
