//! `medrec guardian` and `medrec recovery`: moving a patient's account to a new key when
//! the patient lost theirs (issue 13).
//!
//! 1. The patient named t of n guardians (`medrec patient guardians set`); the chain holds
//!    only a salted commitment, the list is in the patient's `guardians.json`.
//! 2. The patient, on a new wallet, asks t guardians to approve moving the account to the
//!    new wallet's key: each runs `medrec guardian approve --account A --new-key K`, which
//!    prints a signature (EIP-712 `Recovery` for the account's current recovery nonce).
//! 3. `medrec recovery start` (from the new wallet, whose key signs its acceptance) sends
//!    the approvals with the guardians' list; a 72-hour time-lock starts, during which
//!    any key of the account with the owner's right can `medrec recovery veto`.
//! 4. After it, anyone runs `medrec recovery complete`: the old key is retired and the
//!    new wallet acts for the account (`medrec patient --for-account A …`).
//!
//! `medrec recovery status` tells where an account's recovery stands.

use super::{
    common::{ChainArgs, WalletArgs},
    patient::keys::{GuardiansFile, owner_key},
};
use crate::output;
use alloy::primitives::{Address, Bytes};
use anyhow::{Context, ensure};
use clap::{Args, Subcommand};
use medrec_client::{patient::keys::approve_recovery, timeline};
use serde_json::json;
use std::{path::PathBuf, process::ExitCode};

/// Arguments of `medrec guardian`.
#[derive(Debug, Args)]
pub(crate) struct GuardianArgs {
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    wallet: WalletArgs,
    /// Print only the result, as JSON, on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    what: Guardian,
}

#[derive(Debug, Subcommand)]
enum Guardian {
    /// Approve moving a patient's account to a new key: prints your signature, to give
    /// the patient (check the new key with the patient first, e.g. in person).
    Approve {
        /// The patient's account.
        #[arg(long, value_name = "ADDRESS")]
        account: Address,
        /// The key the account moves to (the patient's new wallet address).
        #[arg(long, value_name = "ADDRESS")]
        new_key: Address,
    },
}

/// Arguments of `medrec recovery`.
#[derive(Debug, Args)]
pub(crate) struct RecoveryArgs {
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    wallet: WalletArgs,
    /// Print only the result, as JSON, on stdout.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    what: Recovery,
}

#[derive(Debug, Subcommand)]
enum Recovery {
    /// From your new wallet: start moving your account to its key with your guardians'
    /// approvals; it completes after a 72-hour time-lock unless your account vetoes.
    Start {
        /// The account to recover.
        #[arg(long, value_name = "ADDRESS")]
        account: Address,
        /// The guardians file (`guardians.json`, kept when you named them).
        #[arg(long, value_name = "FILE")]
        guardians: PathBuf,
        /// A guardian's signature from `medrec guardian approve` (repeat, at least the
        /// threshold).
        #[arg(long = "approval", value_name = "HEX", required = true)]
        approvals: Vec<Bytes>,
    },
    /// Stop the recovery waiting on your account (someone is trying to take it over).
    Veto,
    /// Complete a recovery whose time-lock has passed (anyone may send it): the old key
    /// is retired, the new one holds every right.
    Complete {
        /// The account.
        #[arg(long, value_name = "ADDRESS")]
        account: Address,
    },
    /// Where the account's recovery stands.
    Status {
        /// The account (default: your wallet's).
        #[arg(long, value_name = "ADDRESS")]
        account: Option<Address>,
    },
}

/// Runs `medrec guardian`.
pub(crate) fn run_guardian(args: &GuardianArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let Guardian::Approve { account, new_key } = &args.what;
        let wallet = args.wallet.open("guardian")?;
        let chain = args.chain.connect().await?;
        let waiting = chain.recovery(*account).await?;
        let key = wallet.acting_key()?;
        let signature = approve_recovery(&chain, &key, *account, *new_key, waiting.nonce)?;
        if args.json {
            output::result(
                &json!({
                    "account": account,
                    "new_key": new_key,
                    "guardian": key.address(),
                    "nonce": waiting.nonce,
                    "signature": signature,
                })
                .to_string(),
            );
        } else {
            output::result(&signature.to_string());
            output::note(&format!(
                "your approval, as guardian {}, of moving account {account} to key {new_key} (recovery nonce {}): give it to the patient for `medrec recovery start --approval`",
                key.address(),
                waiting.nonce
            ));
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// Runs `medrec recovery`.
pub(crate) fn run(args: &RecoveryArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        match &args.what {
            Recovery::Start { account, guardians, approvals } => {
                start(args, *account, guardians, approvals).await
            }
            Recovery::Veto => veto(args).await,
            Recovery::Complete { account } => complete(args, *account).await,
            Recovery::Status { account } => status(args, *account).await,
        }
    })
}

async fn start(
    r: &RecoveryArgs,
    account: Address,
    file: &std::path::Path,
    approvals: &[Bytes],
) -> anyhow::Result<ExitCode> {
    let guardians = GuardiansFile::load(file)?;
    ensure!(
        guardians.account == account,
        "{} lists the guardians of account {}, not of {account}",
        file.display(),
        guardians.account
    );
    let wallet = r.wallet.open("patient")?;
    let new_key = wallet.acting_key()?;
    let chain = r.chain.connect().await?;
    let receipt = chain
        .start_recovery(
            new_key.clone(),
            account,
            &new_key,
            &guardians.guardians,
            approvals.to_vec(),
        )
        .await?;
    let waiting = chain.recovery(account).await?;
    if r.json {
        output::result(
            &json!({
                "account": account,
                "new_key": new_key.address(),
                "ready_at": waiting.ready_at,
                "block": receipt.block_number,
                "tx": receipt.transaction_hash,
            })
            .to_string(),
        );
    } else {
        output::result(&format!(
            "recovery of account {account} to key {} started: it can complete from {} (`medrec recovery complete --account {account}`), unless a key of the account vetoes before",
            new_key.address(),
            timeline::when(waiting.ready_at)
        ));
    }
    Ok(ExitCode::SUCCESS)
}

async fn veto(r: &RecoveryArgs) -> anyhow::Result<ExitCode> {
    let wallet = r.wallet.open("patient")?;
    let chain = r.chain.connect().await?;
    let session = crate::commands::patient::session_of(chain, &wallet, None)?;
    let waiting = session.chain().recovery(session.address()).await?;
    let receipt = session.veto_recovery().await?;
    if r.json {
        output::result(
            &json!({"account": session.address(), "vetoed": waiting.new_key, "block": receipt.block_number})
                .to_string(),
        );
    } else {
        output::result(&format!(
            "vetoed: account {} does not move to key {}; the guardians' approvals no longer count",
            session.address(),
            waiting.new_key
        ));
    }
    Ok(ExitCode::SUCCESS)
}

async fn complete(r: &RecoveryArgs, account: Address) -> anyhow::Result<ExitCode> {
    let wallet = r.wallet.open("patient")?;
    let sender = wallet.acting_key()?;
    let chain = r.chain.connect().await?;
    let waiting = chain.recovery(account).await?;
    let old_key = owner_key(&chain, account).await?;
    let receipt = chain.complete_recovery(sender.clone(), account, old_key).await?;
    if r.json {
        output::result(
            &json!({
                "account": account,
                "old_key": old_key,
                "new_key": waiting.new_key,
                "block": receipt.block_number,
                "tx": receipt.transaction_hash,
            })
            .to_string(),
        );
    } else {
        output::result(&format!(
            "account {account} now acts with key {}; the old key {old_key} is refused. The guardians were revealed by the recovery and are cleared: name them again.",
            waiting.new_key
        ));
        if waiting.new_key == sender.address() {
            output::note(&format!(
                "act for it from this wallet with `medrec patient --for-account {account} …`"
            ));
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn status(r: &RecoveryArgs, account: Option<Address>) -> anyhow::Result<ExitCode> {
    let account = match account {
        Some(a) => a,
        None => medrec_wallet::Wallet::read_address(&r.wallet.dir("patient")?)
            .context("no wallet: pass --account")?,
    };
    let chain = r.chain.connect().await?;
    let waiting = chain.recovery(account).await?;
    let now = chain.now().await?;
    let guarded = chain
        .relationships()
        .hasGuardians(account)
        .call()
        .await
        .context("cannot read the guardians' commitment")?;
    let owner = owner_key(&chain, account).await?;
    let pending = waiting.new_key != Address::ZERO;
    if r.json {
        output::result(
            &json!({
                "account": account,
                "owner_key": owner,
                "has_guardians": guarded,
                "pending": pending,
                "new_key": pending.then_some(waiting.new_key),
                "ready_at": pending.then_some(waiting.ready_at),
                "ready": pending && now >= waiting.ready_at,
                "nonce": waiting.nonce,
            })
            .to_string(),
        );
    } else if pending {
        output::result(&format!(
            "a recovery of account {account} to key {} waits: {}",
            waiting.new_key,
            if now >= waiting.ready_at {
                "its time-lock has passed; anyone can complete it".to_owned()
            } else {
                format!(
                    "it can complete from {} (in {}); until then a key of the account can veto it",
                    timeline::when(waiting.ready_at),
                    timeline::span(waiting.ready_at - now)
                )
            }
        ));
    } else {
        output::result(&format!(
            "no recovery of account {account} waits; it acts with key {owner}; {}",
            if guarded { "it has guardians" } else { "it has no guardians" }
        ));
    }
    Ok(ExitCode::SUCCESS)
}
