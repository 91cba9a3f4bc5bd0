//! `medrec patient`: what a patient does. Create or recover the wallet, read the inbox
//! of chain notices, take providers' offers (the patient's key creates each
//! relationship, the provider encrypted for the patient), accept or reject pending
//! updates, delete relationships, fetch and verify records from every provider into an
//! encrypted local cache shown as one timeline, share them with a viewer and revoke,
//! read the access log with proofs, export everything as one FHIR Bundle, and manage
//! the account's keys: rotation, custodians and guardians.
//!
//! Every command acts with the wallet's key that acts for the account now (key 0 until
//! a rotation, `keys.json`), or with `--for-account ACCOUNT` for another account: as its
//! custodian, or after a guardian recovery moved that account to this wallet's key.

mod access_log;
mod break_glass;
pub(crate) use medrec_client::timeline as fhir;
mod inbox;
pub(crate) mod keys;
mod offers;
mod records;

use crate::{
    commands::common::{ChainArgs, WalletArgs},
    output,
};
use alloy::primitives::Address;
use anyhow::{Context, ensure};
use clap::{Args, Subcommand};
use medrec_client::{
    patient::{PatientSession, Window},
    privacy::RecordsSecret,
};
use medrec_primitives::Status;
use medrec_wallet::{Mnemonic, PassphraseSource, Wallet, WordCount};
use serde_json::json;
use std::process::ExitCode;

/// Arguments of `medrec patient`.
#[derive(Debug, Args)]
pub(crate) struct PatientArgs {
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    wallet: WalletArgs,
    /// Print only the result, as JSON, on stdout.
    #[arg(long, global = true)]
    json: bool,
    /// Act for this account with your wallet's key: as its custodian (a parent, a
    /// spouse) with the rights the chain gives your key, or as its owner after a
    /// guardian recovery moved it to your wallet's key. The providers' names stay
    /// encrypted for the patient.
    #[arg(long, env = "MEDREC_FOR_ACCOUNT", value_name = "ACCOUNT", global = true)]
    for_account: Option<Address>,
    #[command(subcommand)]
    what: Patient,
}

#[derive(Debug, Subcommand)]
enum Patient {
    /// Create your wallet: an address and a recovery phrase to write down.
    New(NewArgs),
    /// Recreate your wallet from its recovery phrase (MEDREC_MNEMONIC or asked without
    /// echo) on a fresh data directory, and find your relationships and records again.
    Recover,
    /// What happened on chain to your relationships: new relationships, status
    /// changes, pointer updates, grants and revocations (a viewer sees what was shared
    /// with it).
    Inbox(inbox::InboxArgs),
    /// The providers' offers waiting for you at their gatekeepers (asked through the
    /// Registrar's directory): nothing is on chain until you take one.
    Offers,
    /// Take a provider's offer (your key creates the relationship on chain, the
    /// provider's name encrypted for you), or accept a provider's pending update.
    Accept(Target),
    /// Reject a pending update (the relationship closes). An offer needs no rejecting:
    /// nothing goes on chain, and nobody but you can create it.
    Reject(Target),
    /// Delete a relationship from your summary; it closes for good.
    Delete(Target),
    /// Fetch every record of every accepted relationship, check each against the chain,
    /// keep them in the encrypted local cache and show one timeline, newest first.
    Records(records::RecordsArgs),
    /// Let a viewer, or every member of a group, see some of a relationship's pointers
    /// for a while.
    Share(ShareArgs),
    /// Withdraw everything a viewer may see of a relationship, at once.
    Revoke(RevokeArgs),
    /// Who read what of your records and when, each entry proven against the chain.
    AccessLog(access_log::AccessLogArgs),
    /// Everything in the local cache as one FHIR R4 Bundle of type collection.
    Export(records::ExportArgs),
    /// Let a relationship's records feed providers' research bounties (private
    /// aggregates), or stop them; the default is out, and you may opt out any time.
    Research(ResearchArgs),
    /// Allow or refuse break-glass (emergency clinicians reading your allergies,
    /// medications and conditions when you cannot consent; allowed until you refuse),
    /// or see the setting and the openings.
    #[command(subcommand)]
    BreakGlass(break_glass::BreakGlass),
    /// The keys that act for your account: rotate to a new key, add or remove a
    /// custodian (a spouse, a holder of power of attorney), list them.
    #[command(subcommand)]
    Keys(keys::Keys),
    /// Your guardians, who can move your account to a new key if you lose yours (t of n,
    /// after a 72-hour time-lock you can veto); who they are stays off chain.
    #[command(subcommand)]
    Guardians(keys::GuardiansCmd),
}

/// Arguments of `research`.
#[derive(Debug, Args)]
struct ResearchArgs {
    #[command(flatten)]
    target: Target,
    /// Opt in: the provider may count this relationship's records in research
    /// aggregates (with k-anonymity and differential privacy).
    #[arg(long, conflicts_with = "opt_out", required_unless_present = "opt_out")]
    opt_in: bool,
    /// Opt out: from the next block on, nothing of this relationship feeds a bounty.
    #[arg(long)]
    opt_out: bool,
}

/// Arguments of `new`.
#[derive(Debug, Args)]
pub(crate) struct NewArgs {
    /// Words in the recovery phrase.
    #[arg(long, default_value = "12", value_parser = ["12", "24"])]
    words: String,
}

/// Which relationship: by id, or by provider when there is only one with it.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct Target {
    /// The relationship id (or its first hex digits).
    #[arg(long, value_name = "ID")]
    relationship: Option<String>,
    /// The provider's address, when you have one relationship with it.
    #[arg(long, value_name = "ADDRESS")]
    provider: Option<Address>,
}

/// Arguments of `share`.
#[derive(Debug, Args)]
struct ShareArgs {
    /// The viewer's address.
    #[arg(
        long,
        value_name = "ADDRESS",
        required_unless_present = "group",
        conflicts_with = "group"
    )]
    viewer: Option<Address>,
    /// Share with every member of this group instead (`medrec group list`).
    #[arg(long, value_name = "ID")]
    group: Option<u64>,
    #[command(flatten)]
    target: Target,
    /// The pointers to share, e.g. 0,1 (default: all).
    #[arg(long, value_name = "N,…", value_delimiter = ',', conflicts_with = "all")]
    pointers: Vec<u8>,
    /// Share every pointer of the relationship.
    #[arg(long)]
    all: bool,
    /// For how long, e.g. 1h, 7d (default: 7d).
    #[arg(long = "for", value_name = "DURATION", conflicts_with = "until", value_parser = fhir::parse_duration)]
    duration: Option<u64>,
    /// Until when, RFC 3339 (e.g. 2026-05-01T09:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = fhir::parse_time)]
    until: Option<u64>,
    /// From when, RFC 3339 (default: now).
    #[arg(long, value_name = "TIME", value_parser = fhir::parse_time)]
    from: Option<u64>,
}

/// Arguments of `revoke`.
#[derive(Debug, Args)]
struct RevokeArgs {
    /// The viewer's address.
    #[arg(long, value_name = "ADDRESS")]
    viewer: Address,
    #[command(flatten)]
    target: Target,
}

/// Runs `medrec patient`.
pub(crate) fn run(args: &PatientArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        match &args.what {
            Patient::New(a) => create_wallet("patient", &args.wallet, a, args.json),
            Patient::Recover => recover(args).await,
            Patient::Inbox(a) => inbox::inbox(args, a).await,
            Patient::Offers => offers::list(args).await,
            Patient::Accept(t) => offers::accept(args, t).await,
            Patient::Reject(t) => offers::reject(args, t).await,
            Patient::Delete(t) => transition(args, t, Status::Deleted).await,
            Patient::Records(a) => records::records(args, a).await,
            Patient::Share(a) => share(args, a).await,
            Patient::Revoke(a) => revoke(args, a).await,
            Patient::AccessLog(a) => access_log::access_log(args, a).await,
            Patient::Export(a) => records::export(args, a).await,
            Patient::Research(a) => research(args, a).await,
            Patient::BreakGlass(a) => break_glass::run(args, a).await,
            Patient::Keys(a) => keys::keys(args, a).await,
            Patient::Guardians(a) => keys::guardians(args, a).await,
        }
    })
}

/// Creates the wallet of `role` and shows its address and recovery phrase once.
pub(crate) fn create_wallet(
    role: &str,
    wallet: &WalletArgs,
    a: &NewArgs,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let dir = wallet.dir(role)?;
    ensure!(
        !Wallet::exists(&dir),
        "there is already a wallet in {}: use it, or pass --data-dir for another one",
        dir.display()
    );
    let count = if a.words == "24" { WordCount::TwentyFour } else { WordCount::Twelve };
    let passphrase = wallet.new_passphrase()?;
    let created = Wallet::create(&dir, count, &passphrase, wallet.scrypt_params())
        .with_context(|| format!("cannot create the wallet in {}", dir.display()))?;
    let phrase = created.mnemonic().phrase();
    if json {
        output::result(
            &json!({
                "address": created.address(),
                "mnemonic": phrase,
                "data_dir": dir,
            })
            .to_string(),
        );
    } else {
        output::result(&format!("address: {}", created.address()));
        output::result(&format!("recovery phrase: {phrase}"));
        output::note(
            "Write the recovery phrase down on paper and keep it safe: it is the only way to recover this wallet, and anyone who has it can act as you. It is not shown again.",
        );
        if role == "patient" {
            output::note(
                "Give your address to your providers: each offers you a relationship, which you take with `medrec patient offers` and `medrec patient accept`. On a priced chain taking offers, answering and sharing need a little ether for gas.",
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// ` (by key K for account A)` when the acting key is not the account's own.
pub(crate) fn acted_as(session: &PatientSession) -> String {
    let key = session.signer().address();
    if key == session.address() {
        String::new()
    } else {
        format!(" (by key {key} for account {})", session.address())
    }
}

impl Target {
    /// The relationship this names, for the library.
    pub(crate) fn target(&self) -> anyhow::Result<medrec_client::patient::Target> {
        use medrec_client::patient::Target as T;
        match (&self.relationship, self.provider) {
            (Some(text), _) => Ok(T::Id(text.clone())),
            (None, Some(provider)) => Ok(T::Provider(provider)),
            (None, None) => {
                anyhow::bail!("say which relationship: --relationship ID or --provider ADDRESS")
            }
        }
    }
}

/// Opens the patient's wallet and connects to the chain: the session of the key that
/// acts now.
async fn session(p: &PatientArgs) -> anyhow::Result<PatientSession> {
    Ok(open(p).await?.1)
}

/// The wallet and its session (see [`session_of`]).
async fn open(p: &PatientArgs) -> anyhow::Result<(Wallet, PatientSession)> {
    let wallet = p.wallet.open("patient")?;
    let chain = p.chain.connect().await?;
    let session = session_of(chain, &wallet, p.for_account)?;
    Ok((wallet, session))
}

/// The session of `wallet` on `chain`: for its own account with the key that acts now
/// (key 0 until a rotation) and the account's secret, which decrypts the providers'
/// names; or for `for_account` (a custodian's, or a recovered account's) with the
/// wallet's acting key and no secret.
pub(crate) fn session_of(
    chain: medrec_client::Chain,
    wallet: &Wallet,
    for_account: Option<Address>,
) -> anyhow::Result<PatientSession> {
    let key = wallet.acting_key().with_context(|| {
        format!("cannot tell which key of the wallet in {} acts now", wallet.dir().display())
    })?;
    Ok(match for_account {
        Some(account) if account != wallet.address() => {
            PatientSession::acting(chain, key, account, None)
        }
        _ => PatientSession::acting(
            chain,
            key,
            wallet.address(),
            Some(RecordsSecret::of(wallet.account())),
        )
        .in_dir(wallet.dir().to_owned()),
    })
}

/// Accepts a pending update, rejects it, or deletes the relationship.
pub(crate) async fn transition(
    p: &PatientArgs,
    target: &Target,
    to: Status,
) -> anyhow::Result<ExitCode> {
    let session = session(p).await?;
    let (chosen, receipt) = session.answer(&target.target()?, to).await?;
    let (id, summary) = (chosen.id, chosen.summary);
    if p.json {
        output::result(
            &json!({
                "relationship": id.0,
                "provider": summary.provider,
                "status": to.to_string(),
                "block": receipt.block_number,
                "tx": receipt.transaction_hash,
                "actor": session.signer().address(),
            })
            .to_string(),
        );
    } else {
        output::result(&format!(
            "relationship {} with provider {} is now {to}{}",
            id.0,
            summary.provider.map_or_else(|| "(encrypted)".to_owned(), |a| a.to_string()),
            acted_as(&session)
        ));
    }
    Ok(ExitCode::SUCCESS)
}

async fn share(p: &PatientArgs, a: &ShareArgs) -> anyhow::Result<ExitCode> {
    let session = session(p).await?;
    let pointers = if a.all { None } else { Some(a.pointers.as_slice()) };
    let window = Window { from: a.from, until: a.until, duration: a.duration };
    let target = a.target.target()?;
    let g = match (a.group, a.viewer) {
        (Some(id), _) => session.share_with_group(&target, id, pointers, window).await?,
        (None, Some(viewer)) => session.share(&target, viewer, pointers, window).await?,
        (None, None) => anyhow::bail!("say with whom: --viewer ADDRESS or --group ID"),
    };
    let whom = a.group.map_or_else(
        || g.viewer.to_string(),
        |id| format!("every member of group {id} ({})", g.viewer),
    );
    if p.json {
        output::result(
            &json!({
                "relationship": g.relationship.0,
                "viewer": g.viewer,
                "group": a.group,
                "pointers": g.pointers,
                "not_before": g.not_before,
                "expires_at": g.expires_at,
                "block": g.receipt.block_number,
                "actor": session.signer().address(),
            })
            .to_string(),
        );
    } else {
        output::result(&format!(
            "{whom} may now see pointers {:?} of relationship {} from {} until {}{}",
            g.pointers,
            g.relationship.0,
            if g.not_before == 0 { "now".to_owned() } else { fhir::when(g.not_before) },
            fhir::when(g.expires_at),
            acted_as(&session)
        ));
    }
    Ok(ExitCode::SUCCESS)
}

async fn revoke(p: &PatientArgs, a: &RevokeArgs) -> anyhow::Result<ExitCode> {
    let session = session(p).await?;
    let (id, receipt) = session.revoke(&a.target.target()?, a.viewer).await?;
    if p.json {
        output::result(
            &json!({"relationship": id.0, "viewer": a.viewer, "revoked": true, "block": receipt.block_number})
                .to_string(),
        );
    } else {
        output::result(&format!(
            "{} may no longer see anything of relationship {}{}",
            a.viewer,
            id.0,
            acted_as(&session)
        ));
    }
    Ok(ExitCode::SUCCESS)
}

async fn research(p: &PatientArgs, a: &ResearchArgs) -> anyhow::Result<ExitCode> {
    let session = session(p).await?;
    let on = a.opt_in;
    let (id, sent) = session.set_research(&a.target.target()?, on).await?;
    if sent.is_none() {
        let state = if on { "in" } else { "out" };
        output::note(&format!("relationship {} is already opted {state}; nothing sent", id.0));
    }
    if p.json {
        output::result(&json!({"relationship": id.0, "research_opt_in": on}).to_string());
    } else if on {
        output::result(&format!(
            "relationship {} now feeds research bounties (aggregates only, cells under k suppressed, noise added)",
            id.0
        ));
    } else {
        output::result(&format!("relationship {} no longer feeds research bounties", id.0));
    }
    Ok(ExitCode::SUCCESS)
}

async fn recover(p: &PatientArgs) -> anyhow::Result<ExitCode> {
    let dir = p.wallet.dir("patient")?;
    ensure!(
        !Wallet::exists(&dir),
        "there is already a wallet in {}: recover into a fresh directory (--data-dir)",
        dir.display()
    );
    let phrase = PassphraseSource::Env("MEDREC_MNEMONIC".to_owned())
        .read("")
        .or_else(|_| PassphraseSource::Prompt.read("Recovery phrase (words separated by spaces): "))
        .context("cannot read the recovery phrase: set MEDREC_MNEMONIC or type it when asked")?;
    let mnemonic =
        Mnemonic::parse(phrase.expose_secret()).context("the recovery phrase is not valid")?;
    let passphrase = p.wallet.new_passphrase()?;
    let wallet = Wallet::recover(&dir, mnemonic, &passphrase, p.wallet.scrypt_params())
        .with_context(|| format!("cannot recreate the wallet in {}", dir.display()))?;
    output::note(&format!("wallet {} recreated in {}", wallet.address(), dir.display()));
    let address = wallet.address();
    let found = async {
        let chain = p.chain.connect().await?;
        // A rotated account: the key that acts now is one of the phrase's later keys.
        if let Some(index) = keys::find_acting_index(&chain, &wallet).await?
            && index != 0
        {
            wallet.set_acting_index(index)?;
            output::note(&format!(
                "your account acts with key {} (m/44'/60'/0'/0/{index}) since a rotation",
                wallet.account_key(index)?.address()
            ));
        }
        let session = session_of(chain, &wallet, None)?;
        anyhow::Ok(session.find_again().await?)
    };
    let recovery = found.await.context(
        "the wallet was recreated, but finding your relationships and records failed; run `medrec patient records` once the chain and the providers answer",
    )?;
    let (mine, records, problems) = (recovery.relationships, recovery.records, recovery.problems);
    for problem in &problems {
        records::tell(problem);
    }
    let list: Vec<serde_json::Value> = mine
        .iter()
        .map(|(id, s)| {
            let cached = records.relationships.iter().find(|r| r.id == id.0);
            json!({
                "id": id.0,
                "provider": s.provider,
                "status": s.status.map(|st| st.to_string()),
                "endpoint": cached.map(|r| r.endpoint.clone()),
                "records": cached.map_or(0, |r| r.pointers.iter().map(|x| x.resources.len()).sum::<usize>()),
            })
        })
        .collect();
    if p.json {
        output::result(
            &json!({
                "address": address,
                "relationships": list,
                "records": records.count(),
                "problems": problems.iter().map(records::problem_json).collect::<Vec<_>>(),
            })
            .to_string(),
        );
    } else {
        output::result(&format!("address: {address}"));
        for r in &list {
            output::result(&format!(
                "relationship {} with {}: {}, {} records",
                r["id"].as_str().unwrap_or_default(),
                r["provider"].as_str().unwrap_or("?"),
                r["status"].as_str().unwrap_or("?"),
                r["records"]
            ));
        }
        output::result(&format!("{} records in the local cache", records.count()));
    }
    Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(3) })
}
