//! `medrec viewer`: what a third party (a pharmacist, another provider) does with what a
//! patient shared with it: create its wallet, publish its encryption key, see its
//! grants, and fetch the shared records from the provider's gatekeeper, each checked
//! against the hash on chain. Fetching is refused as soon as the grant is revoked or
//! expired on chain.
//!
//! The chain names no provider. A patient who shares seals the relationship's key for
//! the viewer's published X25519 key, and the viewer reads the provider from it; so the
//! viewer publishes its key once, before patients share: `medrec viewer new` does when
//! it can send a transaction, `medrec viewer publish-key` does it explicitly, and every
//! `inbox` or `fetch` with the wallet does it when it is still missing. A grant without
//! a sealed key still works: the viewer then asks the directory's gatekeepers in turn.

use crate::{
    commands::{
        common::{ChainArgs, WalletArgs},
        patient::{NewArgs, create_wallet, fhir},
    },
    output,
};
use alloy::primitives::Address;
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
    /// Create the viewer's wallet: an address to give patients, and a recovery phrase;
    /// publishes its encryption key when the chain takes a transaction from it.
    New(NewArgs),
    /// Publish your encryption key (once), so that patients who share with you seal
    /// each relationship's key for you and you read the provider from the chain.
    PublishKey,
    /// What patients shared with you: grants and revocations, and whether each grant is
    /// valid now.
    Inbox(InboxArgs),
    /// Fetch what was shared with you, checked against the chain: a timeline, or with
    /// --json one FHIR Bundle.
    Fetch(FetchArgs),
}

#[derive(Debug, Args)]
struct InboxArgs {
    /// The viewer's address, read without unlocking a wallet (the providers then stay
    /// sealed). Default: your wallet, unlocked.
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
            Viewer::New(a) => {
                let code = create_wallet("viewer", &args.wallet, a, args.json)?;
                // Best effort: a new wallet on a priced chain has no ether yet.
                match open_session(args).await {
                    Ok(session) => publish(&session, args.json, false).await,
                    Err(e) => output::note(&format!(
                        "note: your encryption key is not published yet ({e:#}); run `medrec viewer publish-key` before patients share with you"
                    )),
                }
                Ok(code)
            }
            Viewer::PublishKey => {
                let session = open_session(args).await?;
                let sent = session.publish_encryption_key().await?;
                if args.json {
                    output::result(&json!({"address": session.address(), "published": true, "sent": sent}).to_string());
                } else if sent {
                    output::result(&format!("published the encryption key of {}: patients who share with you now seal the provider's name for you", session.address()));
                } else {
                    output::result(&format!("the encryption key of {} is already published; nothing sent", session.address()));
                }
                Ok(ExitCode::SUCCESS)
            }
            Viewer::Inbox(a) => inbox(args, a).await,
            Viewer::Fetch(a) => fetch(args, a).await,
        }
    })
}

/// The viewer's wallet, unlocked, on the chain.
async fn open_session(v: &ViewerArgs) -> anyhow::Result<ViewerSession> {
    let dir = v.wallet.dir("viewer")?;
    anyhow::ensure!(
        Wallet::exists(&dir),
        "no wallet in {}: pass --address or create one (`medrec viewer new`)",
        dir.display()
    );
    let wallet = v.wallet.open("viewer")?;
    let chain = v.chain.connect().await?;
    Ok(ViewerSession::new(chain, wallet.acting_key()?))
}

/// Publishes the viewer's encryption key when it is missing; a failure is a note (the
/// viewer still reads through the directory's gatekeepers).
async fn publish(session: &ViewerSession, json: bool, quiet: bool) {
    match session.publish_encryption_key().await {
        Ok(true) if !json || !quiet => output::note(&format!(
            "published the encryption key of {}: patients who share with you now seal the provider's name for you",
            session.address()
        )),
        Ok(_) => {}
        Err(e) => output::note(&format!(
            "note: your encryption key could not be published ({e}); patients' grants reach you without the provider's name, which the directory's gatekeepers then tell"
        )),
    }
}

async fn inbox(v: &ViewerArgs, a: &InboxArgs) -> anyhow::Result<ExitCode> {
    let (me, list) = match a.address {
        Some(me) => (me, shared_with(&v.chain.connect().await?, me, None).await?),
        None => {
            let session = open_session(v).await?;
            publish(&session, v.json, true).await;
            (session.address(), session.shared().await?)
        }
    };
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
            s.provider.map_or_else(|| "(sealed: not for this key)".to_owned(), |p| p.to_string()),
            s.state.as_str()
        ));
    }
    Ok(ExitCode::SUCCESS)
}

async fn fetch(v: &ViewerArgs, a: &FetchArgs) -> anyhow::Result<ExitCode> {
    let session = open_session(v).await?;
    publish(&session, v.json, true).await;
    let fetched = session.fetch(a.relationship.as_deref()).await?;
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
