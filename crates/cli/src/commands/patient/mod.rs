//! `medrec patient`: what a patient does. Create or recover the wallet, read the inbox
//! of chain notices, accept, reject or delete relationships, fetch and verify records
//! from every provider into an encrypted local cache shown as one timeline, share them
//! with a viewer and revoke, read the access log with proofs, and export everything as
//! one FHIR Bundle.

mod access_log;
pub(crate) mod fhir;
mod inbox;
pub(crate) mod net;
mod records;

use crate::{
    commands::common::{ChainArgs, WalletArgs},
    output,
};
use alloy::primitives::{Address, aliases::U40};
use anyhow::{Context, bail, ensure};
use clap::{Args, Subcommand};
use medrec_chain::inbox::{Summary, read, summarize};
use medrec_contracts::Relationships;
use medrec_primitives::{PointerSet, RelationshipId, Status};
use medrec_wallet::{Mnemonic, PassphraseSource, Wallet, WordCount};
use serde_json::json;
use std::{collections::BTreeMap, process::ExitCode};

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
    /// Accept a new relationship or a provider's pending update.
    Accept(Target),
    /// Reject a new relationship or a pending update; the relationship closes.
    Reject(Target),
    /// Delete a relationship from your summary; it closes for good.
    Delete(Target),
    /// Fetch every record of every accepted relationship, check each against the chain,
    /// keep them in the encrypted local cache and show one timeline, newest first.
    Records(records::RecordsArgs),
    /// Let a viewer see some of a relationship's pointers for a while.
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
    #[arg(long, value_name = "ADDRESS")]
    viewer: Address,
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
            Patient::Accept(t) => transition(args, t, Status::Accepted).await,
            Patient::Reject(t) => transition(args, t, Status::Rejected).await,
            Patient::Delete(t) => transition(args, t, Status::Deleted).await,
            Patient::Records(a) => records::records(args, a).await,
            Patient::Share(a) => share(args, a).await,
            Patient::Revoke(a) => revoke(args, a).await,
            Patient::AccessLog(a) => access_log::access_log(args, a).await,
            Patient::Export(a) => records::export(args, a).await,
            Patient::Research(a) => research(args, a).await,
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
                "Accepting, rejecting and sharing are transactions that need a little ether for gas: the provider that enrolls you sends some (`medrec provider enroll --patient-funding`).",
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The patient's relationships as the chain's events tell them.
async fn relationships(
    p: &PatientArgs,
    me: Address,
) -> anyhow::Result<BTreeMap<RelationshipId, Summary>> {
    let reader = p.chain.reader()?;
    let notices =
        read(&reader, p.chain.relationships, p.chain.from_block, me, 0, None).await.with_context(
            || format!("cannot read your relationships from the chain node at {}", p.chain.rpc_url),
        )?;
    Ok(summarize(&notices).into_iter().filter(|(_, s)| s.patient == Some(me)).collect())
}

/// The relationship a [`Target`] names among the patient's.
/// Opens the patient's wallet and finds the relationship `target` names on chain, with
/// its summary and delegate (which the patient's transactions name).
async fn chosen(
    p: &PatientArgs,
    target: &Target,
) -> anyhow::Result<(Wallet, RelationshipId, Summary, Address)> {
    let wallet = p.wallet.open("patient")?;
    p.chain.chain_id().await?;
    let mine = relationships(p, wallet.address()).await?;
    let (id, summary) = choose(&mine, target)?;
    let delegate =
        summary.delegate.context("the chain does not name this relationship's delegate")?;
    Ok((wallet, id, summary, delegate))
}

fn choose(
    mine: &BTreeMap<RelationshipId, Summary>,
    target: &Target,
) -> anyhow::Result<(RelationshipId, Summary)> {
    let id = match (&target.relationship, target.provider) {
        (Some(text), _) => net::pick(mine.keys(), text)?,
        (None, Some(provider)) => {
            let with: Vec<_> = mine.iter().filter(|(_, s)| s.provider == Some(provider)).collect();
            match with.as_slice() {
                [(id, _)] => **id,
                [] => bail!("you have no relationship with provider {provider}"),
                _ => bail!(
                    "you have {} relationships with provider {provider}; name one with --relationship ({})",
                    with.len(),
                    with.iter().map(|(id, _)| id.0.to_string()).collect::<Vec<_>>().join(", ")
                ),
            }
        }
        (None, None) => bail!("say which relationship: --relationship ID or --provider ADDRESS"),
    };
    let summary = mine.get(&id).cloned().context("the relationship disappeared")?;
    Ok((id, summary))
}

async fn transition(p: &PatientArgs, target: &Target, to: Status) -> anyhow::Result<ExitCode> {
    let (wallet, id, summary, delegate) = chosen(p, target).await?;
    let verb = match to {
        Status::Accepted => "accepting",
        Status::Rejected => "rejecting",
        _ => "deleting",
    };
    let contract =
        Relationships::new(p.chain.relationships, p.chain.sender(wallet.account().clone())?);
    let what = format!("{verb} relationship {}", id.0);
    let receipt = match to {
        Status::Accepted => net::confirm(contract.accept(delegate).send().await, &what).await?,
        Status::Rejected => net::confirm(contract.reject(delegate).send().await, &what).await?,
        _ => net::confirm(contract.remove(delegate).send().await, &what).await?,
    };
    if p.json {
        output::result(
            &json!({
                "relationship": id.0,
                "provider": summary.provider,
                "status": to.to_string(),
                "block": receipt.block_number,
                "tx": receipt.transaction_hash,
            })
            .to_string(),
        );
    } else {
        output::result(&format!(
            "relationship {} with provider {} is now {to}",
            id.0,
            summary.provider.map_or_else(|| "?".to_owned(), |a| a.to_string())
        ));
    }
    Ok(ExitCode::SUCCESS)
}

async fn share(p: &PatientArgs, a: &ShareArgs) -> anyhow::Result<ExitCode> {
    let (wallet, id, summary, delegate) = chosen(p, &a.target).await?;
    if let Some(status) = summary.status {
        ensure!(
            status.is_accepted(),
            "relationship {} is {status}: accept it before sharing it",
            id.0
        );
    }
    let count = summary.pointers.len();
    ensure!(count > 0, "relationship {} has no data pointers to share", id.0);
    let ids: Vec<u8> = if a.all || a.pointers.is_empty() {
        (0..u8::try_from(count).unwrap_or(u8::MAX)).collect()
    } else {
        for n in &a.pointers {
            ensure!(
                usize::from(*n) < count,
                "relationship {} has pointers 0 to {}; there is no pointer {n}",
                id.0,
                count - 1
            );
        }
        a.pointers.clone()
    };
    let set = PointerSet::from_ids(ids.iter().copied())
        .map_err(|e| anyhow::anyhow!("pointer {} is out of range", e.0))?;
    let reader = p.chain.reader()?;
    let now = net::chain_now(&reader).await?;
    let not_before = a.from.unwrap_or(0);
    let expires_at = match (a.until, a.duration) {
        (Some(until), _) => until,
        (None, Some(d)) => not_before.max(now) + d,
        (None, None) => not_before.max(now) + 7 * 86_400,
    };
    ensure!(
        expires_at > now && expires_at > not_before,
        "the grant would end ({}) before it starts or before now: choose a later --until",
        fhir::when(expires_at)
    );
    let to40 = |t: u64| U40::from(t.min((1u64 << 40) - 1));
    let contract =
        Relationships::new(p.chain.relationships, p.chain.sender(wallet.account().clone())?);
    let what = format!("sharing relationship {} with {}", id.0, a.viewer);
    let receipt = net::confirm(
        contract
            .grant(delegate, a.viewer, set.bits(), to40(not_before), to40(expires_at))
            .send()
            .await,
        &what,
    )
    .await?;
    if p.json {
        output::result(
            &json!({
                "relationship": id.0,
                "viewer": a.viewer,
                "pointers": ids,
                "not_before": not_before,
                "expires_at": expires_at,
                "block": receipt.block_number,
            })
            .to_string(),
        );
    } else {
        output::result(&format!(
            "{} may now see pointers {ids:?} of relationship {} from {} until {}",
            a.viewer,
            id.0,
            if not_before == 0 { "now".to_owned() } else { fhir::when(not_before) },
            fhir::when(expires_at)
        ));
    }
    Ok(ExitCode::SUCCESS)
}

async fn revoke(p: &PatientArgs, a: &RevokeArgs) -> anyhow::Result<ExitCode> {
    let (wallet, id, summary, delegate) = chosen(p, &a.target).await?;
    ensure!(
        summary.grants.contains_key(&a.viewer),
        "{} has no access to relationship {} to revoke",
        a.viewer,
        id.0
    );
    let contract =
        Relationships::new(p.chain.relationships, p.chain.sender(wallet.account().clone())?);
    let what = format!("revoking {}'s access to relationship {}", a.viewer, id.0);
    let receipt = net::confirm(contract.revoke(delegate, a.viewer).send().await, &what).await?;
    if p.json {
        output::result(
            &json!({"relationship": id.0, "viewer": a.viewer, "revoked": true, "block": receipt.block_number})
                .to_string(),
        );
    } else {
        output::result(&format!(
            "{} may no longer see anything of relationship {}",
            a.viewer, id.0
        ));
    }
    Ok(ExitCode::SUCCESS)
}

async fn research(p: &PatientArgs, a: &ResearchArgs) -> anyhow::Result<ExitCode> {
    let (wallet, id, summary, delegate) = chosen(p, &a.target).await?;
    let on = a.opt_in;
    if summary.research_opt_in == on {
        let state = if on { "in" } else { "out" };
        output::note(&format!("relationship {} is already opted {state}; nothing sent", id.0));
    } else {
        let contract =
            Relationships::new(p.chain.relationships, p.chain.sender(wallet.account().clone())?);
        let what = format!("opting relationship {} {}", id.0, if on { "in" } else { "out" });
        net::confirm(contract.setResearchConsent(delegate, on).send().await, &what).await?;
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
    let found = async {
        let mine = relationships(p, wallet.address()).await?;
        let refreshed = records::refresh(p, &wallet).await?;
        anyhow::Ok((mine, refreshed))
    };
    let (mine, (records, problems)) = found.await.context(
        "the wallet was recreated, but finding your relationships and records failed; run `medrec patient records` once the chain and the providers answer",
    )?;
    for problem in &problems {
        problem.tell();
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
                "address": wallet.address(),
                "relationships": list,
                "records": records.count(),
                "problems": problems.iter().map(records::Problem::json).collect::<Vec<_>>(),
            })
            .to_string(),
        );
    } else {
        output::result(&format!("address: {}", wallet.address()));
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
