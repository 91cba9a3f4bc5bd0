//! `medrec patient keys` and `medrec patient guardians`: the keys that act for a
//! patient's account (issue 13).
//!
//! - `keys rotate`: the account moves to the wallet's next key (`m/44'/60'/0'/0/n+1`,
//!   recorded in the wallet's `keys.json`); the old key is refused from the next block
//!   on, and every relationship and grant stays. The phrase recovers every key.
//! - `keys add-custodian` / `remove-custodian`: a spouse or a holder of power of
//!   attorney acts with the rights given (see, share, decide) until a date; the
//!   custodian's own wallet provides its key, which signs its acceptance.
//! - `keys list`: the keys of the account as the chain's events tell them.
//! - `guardians set`: t of n guardians may move the account to a new key after a
//!   72-hour time-lock the patient can veto; the chain holds only a salted commitment,
//!   the list is kept in the wallet's `guardians.json` (mode 0600).

use super::{PatientArgs, acted_as, fhir, open};
use crate::output;
use alloy::{
    primitives::Address, providers::Provider as _, rpc::types::Filter, sol_types::SolEvent as _,
};
use anyhow::{Context, bail, ensure};
use clap::{Args, Subcommand};
use medrec_client::{
    Chain,
    patient::{
        keys::Guardians,
        records::{Records, cache},
    },
};
use medrec_contracts::{Relationships as R, Rights};
use medrec_wallet::{PassphraseSource, Wallet};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::ExitCode,
};

/// Where the patient keeps the account's guardians (off chain).
pub(crate) const GUARDIANS_FILE: &str = "guardians.json";

/// `medrec patient keys …`.
#[derive(Debug, Subcommand)]
pub(crate) enum Keys {
    /// Move your account to your wallet's next key: the current key is refused from the
    /// next block on; relationships and grants stay.
    Rotate,
    /// Let a custodian (a spouse, a holder of power of attorney) act for you with the
    /// rights you give, until a date or until removed. Their wallet signs its acceptance.
    AddCustodian(AddCustodianArgs),
    /// Retire a custodian's key at once.
    RemoveCustodian(RemoveCustodianArgs),
    /// The keys that act for your account (yours, custodians', retired ones), from the
    /// chain's events, with their rights now.
    List,
}

/// The custodian's wallet, whose key will act for the account.
#[derive(Debug, Clone, Args)]
pub(crate) struct KeyDirArgs {
    /// The custodian's wallet directory (`medrec patient new --data-dir DIR`): its key
    /// acts for the account and signs that it accepts to.
    #[arg(long, value_name = "DIR")]
    pub key_dir: PathBuf,
    /// Read the custodian wallet's passphrase from this environment variable (default:
    /// asked).
    #[arg(long, value_name = "VAR", conflicts_with = "key_passphrase_file")]
    pub key_passphrase_env: Option<String>,
    /// Read the custodian wallet's passphrase from the first line of this file.
    #[arg(long, value_name = "FILE")]
    pub key_passphrase_file: Option<PathBuf>,
}

impl KeyDirArgs {
    /// Opens the custodian's wallet: the key that acts for it now.
    pub(crate) fn open(&self) -> anyhow::Result<alloy::signers::local::PrivateKeySigner> {
        let dir = &self.key_dir;
        ensure!(
            Wallet::exists(dir),
            "there is no wallet in {}: the custodian creates one first (`medrec patient new --data-dir {}`)",
            dir.display(),
            dir.display()
        );
        let source = match (&self.key_passphrase_env, &self.key_passphrase_file) {
            (Some(var), _) => PassphraseSource::Env(var.clone()),
            (None, Some(file)) => PassphraseSource::File(file.clone()),
            (None, None) => PassphraseSource::Prompt,
        };
        let passphrase = source
            .read(&format!("Passphrase of the custodian's wallet in {}: ", dir.display()))
            .context("cannot read the custodian wallet's passphrase")?;
        let wallet = Wallet::open(dir, &passphrase)
            .with_context(|| format!("cannot open the custodian's wallet in {}", dir.display()))?;
        Ok(wallet.acting_key()?)
    }
}

/// Arguments of `keys add-custodian`.
#[derive(Debug, Args)]
pub(crate) struct AddCustodianArgs {
    #[command(flatten)]
    pub key: KeyDirArgs,
    /// The rights, comma-separated: see (read the records), share (grant and revoke
    /// viewers), decide (take offers, answer updates, delete, research, break-glass).
    #[arg(long, value_name = "RIGHTS", value_parser = parse_rights)]
    pub rights: u8,
    /// Until when (a date, 2030-06-01, or an RFC 3339 time); default: until removed.
    #[arg(long, value_name = "DATE", value_parser = parse_date)]
    pub until: Option<u64>,
}

/// Arguments of `keys remove-custodian`.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub(crate) struct RemoveCustodianArgs {
    /// The custodian's key.
    #[arg(long, value_name = "ADDRESS")]
    key: Option<Address>,
    /// The custodian's wallet directory (its address is read without a passphrase).
    #[arg(long, value_name = "DIR")]
    key_dir: Option<PathBuf>,
}

/// `medrec patient guardians …`.
#[derive(Debug, Subcommand)]
pub(crate) enum GuardiansCmd {
    /// Name your guardians: any `--threshold` of them may move your account to a new
    /// key (after a 72-hour time-lock you can veto). Replaces earlier guardians.
    Set {
        /// A guardian's address (repeat, 1 to 16).
        #[arg(long = "guardian", value_name = "ADDRESS", required = true)]
        guardians: Vec<Address>,
        /// How many must approve a recovery.
        #[arg(long, value_name = "T")]
        threshold: u8,
    },
    /// Your guardians as kept in the wallet, and whether the chain holds their
    /// commitment.
    Show,
}

/// The guardians file: the account, and the list the chain holds only as a commitment.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct GuardiansFile {
    /// The account they guard.
    pub account: Address,
    /// Guardians, threshold and salt.
    #[serde(flatten)]
    pub guardians: Guardians,
}

impl GuardiansFile {
    /// Reads a guardians file.
    pub(crate) fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| {
            format!(
                "cannot read the guardians file {} (the patient's `{GUARDIANS_FILE}`)",
                path.display()
            )
        })?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is not a guardians file", path.display()))
    }
}

/// Parses `see,share,decide` into rights bits.
pub(crate) fn parse_rights(text: &str) -> Result<u8, String> {
    let mut bits = 0u8;
    for word in text.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        bits |= match word.to_lowercase().as_str() {
            "see" => Rights::SEE,
            "share" => Rights::SHARE,
            "decide" => Rights::DECIDE,
            other => {
                return Err(format!(
                    "'{other}' is not a right a custodian can hold: use see, share and decide, comma-separated"
                ));
            }
        };
    }
    if bits == 0 {
        return Err("name at least one right: see, share or decide".to_owned());
    }
    Ok(bits)
}

/// Parses a date (`2030-06-01`, midnight UTC) or an RFC 3339 time into Unix seconds.
pub(crate) fn parse_date(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let is_date = t.len() == 10 && t.as_bytes()[4] == b'-' && t.as_bytes()[7] == b'-';
    if is_date {
        fhir::parse_time(&format!("{t}T00:00:00Z"))
            .map_err(|_| format!("'{text}' is not a date such as 2030-06-01"))
    } else {
        fhir::parse_time(t)
    }
}

/// The key that owns `account` now: the new key of its last rotation, or the account's
/// own.
///
/// # Errors
/// When the chain cannot be read.
pub(crate) async fn owner_key(chain: &Chain, account: Address) -> anyhow::Result<Address> {
    let filter = Filter::new()
        .address(chain.spec().relationships)
        .from_block(chain.spec().from_block)
        .event_signature(R::KeyRotated::SIGNATURE_HASH)
        .topic1(account.into_word());
    let mut logs = chain.reader().get_logs(&filter).await.context("cannot read the key events")?;
    logs.sort_by_key(|l| (l.block_number, l.log_index));
    Ok(logs
        .iter()
        .filter_map(|l| R::KeyRotated::decode_log(&l.inner).ok())
        .last()
        .map_or(account, |e| e.newKey))
}

/// Which of the wallet's keys (`m/44'/60'/0'/0/n`, n < 64) owns its account now.
///
/// # Errors
/// When the chain cannot be read.
pub(crate) async fn find_acting_index(
    chain: &Chain,
    wallet: &Wallet,
) -> anyhow::Result<Option<u32>> {
    let owner = owner_key(chain, wallet.address()).await?;
    for index in 0..64 {
        if wallet.account_key(index)?.address() == owner {
            return Ok(Some(index));
        }
    }
    Ok(None)
}

/// Every key the chain's events name for `account`, with its rights now and until when.
async fn keys_of(chain: &Chain, account: Address) -> anyhow::Result<Vec<(Address, u8, u64)>> {
    let filter = Filter::new()
        .address(chain.spec().relationships)
        .from_block(chain.spec().from_block)
        .event_signature(vec![R::KeyChanged::SIGNATURE_HASH, R::KeyRotated::SIGNATURE_HASH])
        .topic1(account.into_word());
    let mut logs = chain.reader().get_logs(&filter).await.context("cannot read the key events")?;
    logs.sort_by_key(|l| (l.block_number, l.log_index));
    let mut until: BTreeMap<Address, u64> = BTreeMap::from([(account, 0)]);
    for l in &logs {
        if let Ok(e) = R::KeyChanged::decode_log(&l.inner) {
            until.insert(e.key, e.until.to::<u64>());
        } else if let Ok(e) = R::KeyRotated::decode_log(&l.inner) {
            until.insert(e.oldKey, 0);
            until.insert(e.newKey, 0);
        }
    }
    let mut out = Vec::new();
    for (key, until) in until {
        let (acts_for, rights) = chain.acting_for(key).await?;
        out.push((key, if acts_for == account { rights } else { 0 }, until));
    }
    Ok(out)
}

/// Runs `medrec patient keys …`.
pub(crate) async fn keys(p: &PatientArgs, k: &Keys) -> anyhow::Result<ExitCode> {
    match k {
        Keys::Rotate => rotate(p).await,
        Keys::AddCustodian(a) => add_custodian(p, a).await,
        Keys::RemoveCustodian(a) => remove_custodian(p, a).await,
        Keys::List => list(p).await,
    }
}

async fn rotate(p: &PatientArgs) -> anyhow::Result<ExitCode> {
    ensure!(
        p.for_account.is_none(),
        "rotate your own account's key from its own wallet (without --for-account)"
    );
    let (wallet, session) = open(p).await?;
    let old = session.signer().clone();
    let index = Wallet::acting_index(wallet.dir())?;
    // The next key of the phrase that acts for nothing yet.
    let mut next = index + 1;
    let new_key = loop {
        let key = wallet.account_key(next)?;
        let slot = session
            .chain()
            .relationships()
            .keyOf(key.address())
            .call()
            .await
            .context("cannot ask the chain whether the wallet's next key is free")?;
        if slot.account == Address::ZERO {
            break key;
        }
        ensure!(next < index + 16, "the wallet's next 16 keys all act for accounts already");
        next += 1;
    };
    let (_, receipt) = session.rotate(new_key.clone()).await?;
    wallet.set_acting_index(next).with_context(|| {
        format!(
            "the account moved to key {} (m/44'/60'/0'/0/{next}), but the wallet could not record it: write {{\"acting\":{next}}} to {}",
            new_key.address(),
            wallet.dir().join(medrec_wallet::KEYS_FILE).display()
        )
    })?;
    // The record cache is encrypted under the acting key: carry it over.
    if let Ok(Some(records)) = cache(wallet.dir(), &old).load::<Records>()
        && let Err(e) = cache(wallet.dir(), &new_key).save(&records)
    {
        output::note(&format!(
            "note: the record cache could not be carried over ({e}); `medrec patient records` fetches it again"
        ));
    }
    if p.json {
        output::result(
            &json!({
                "account": session.address(),
                "old_key": old.address(),
                "new_key": new_key.address(),
                "index": next,
                "path": format!("m/44'/60'/0'/0/{next}"),
                "block": receipt.block_number,
                "tx": receipt.transaction_hash,
            })
            .to_string(),
        );
    } else {
        output::result(&format!(
            "account {} now acts with key {} (m/44'/60'/0'/0/{next}); key {} is refused from block {} on. Relationships and grants stay; your recovery phrase still recovers every key.",
            session.address(),
            new_key.address(),
            old.address(),
            receipt.block_number.map_or_else(|| "?".to_owned(), |b| (b + 1).to_string())
        ));
    }
    Ok(ExitCode::SUCCESS)
}

async fn add_custodian(p: &PatientArgs, a: &AddCustodianArgs) -> anyhow::Result<ExitCode> {
    let custodian = a.key.open()?;
    let (_, session) = open(p).await?;
    if let Some(until) = a.until {
        let now = session.chain().now().await?;
        ensure!(until > now, "--until {} has passed: choose a later date", fhir::when(until));
    }
    let receipt = session.add_custodian(&custodian, a.rights, a.until.unwrap_or(0)).await?;
    let until =
        a.until.map_or_else(|| "until removed".to_owned(), |u| format!("until {}", fhir::when(u)));
    if p.json {
        output::result(
            &json!({
                "account": session.address(),
                "custodian": custodian.address(),
                "rights": Rights(a.rights).to_string(),
                "until": a.until,
                "block": receipt.block_number,
                "tx": receipt.transaction_hash,
            })
            .to_string(),
        );
    } else {
        output::result(&format!(
            "{} may now act for account {} ({}) {until}; every act names its key on chain",
            custodian.address(),
            session.address(),
            Rights(a.rights)
        ));
        output::note(&format!(
            "the custodian acts with its own wallet: `medrec patient --data-dir {} --for-account {} …`",
            a.key.key_dir.display(),
            session.address()
        ));
    }
    Ok(ExitCode::SUCCESS)
}

async fn remove_custodian(p: &PatientArgs, a: &RemoveCustodianArgs) -> anyhow::Result<ExitCode> {
    let key = match (&a.key, &a.key_dir) {
        (Some(key), _) => *key,
        (None, Some(dir)) => Wallet::read_address(dir)
            .with_context(|| format!("no custodian wallet in {}", dir.display()))?,
        (None, None) => bail!("say which custodian: --key ADDRESS or --key-dir DIR"),
    };
    let (_, session) = open(p).await?;
    let receipt = session.remove_custodian(key).await?;
    if p.json {
        output::result(
            &json!({"account": session.address(), "custodian": key, "removed": true, "block": receipt.block_number})
                .to_string(),
        );
    } else {
        output::result(&format!(
            "{key} may no longer act for account {}{}",
            session.address(),
            acted_as(&session)
        ));
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(p: &PatientArgs) -> anyhow::Result<ExitCode> {
    let account = match p.for_account {
        Some(a) => a,
        None => Wallet::read_address(&p.wallet.dir("patient")?)
            .context("no wallet: pass --data-dir or --for-account")?,
    };
    let chain = p.chain.connect().await?;
    let keys = keys_of(&chain, account).await?;
    if p.json {
        let list: Vec<_> = keys
            .iter()
            .map(|(k, r, u)| json!({"key": k, "rights": Rights(*r).to_string(), "bits": r, "until": (*u != 0).then_some(*u)}))
            .collect();
        output::result(&json!({"account": account, "keys": list}).to_string());
    } else {
        for (k, r, u) in &keys {
            let state =
                if *r == 0 { "retired or ended".to_owned() } else { Rights(*r).to_string() };
            let until = if *u == 0 { String::new() } else { format!(", until {}", fhir::when(*u)) };
            output::result(&format!("{k}: {state}{until}"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `medrec patient guardians …`.
pub(crate) async fn guardians(p: &PatientArgs, g: &GuardiansCmd) -> anyhow::Result<ExitCode> {
    let dir = p.wallet.dir("patient")?;
    let path = dir.join(GUARDIANS_FILE);
    match g {
        GuardiansCmd::Set { guardians, threshold } => {
            let list = Guardians::new(guardians.clone(), *threshold)?;
            let (wallet, session) = open(p).await?;
            ensure!(
                !list.guardians.contains(&session.address())
                    && !list.guardians.contains(&session.signer().address()),
                "you cannot be your own guardian: name other people's addresses"
            );
            let receipt = session.set_guardians(&list).await?;
            let file = GuardiansFile { account: session.address(), guardians: list };
            let text = serde_json::to_string_pretty(&file)?;
            let path = wallet.dir().join(GUARDIANS_FILE);
            medrec_wallet::fs::write_private(&path, text.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
            if p.json {
                output::result(
                    &json!({
                        "account": file.account,
                        "guardians": file.guardians.guardians,
                        "threshold": file.guardians.threshold,
                        "commitment": file.guardians.commitment(),
                        "file": path,
                        "block": receipt.block_number,
                    })
                    .to_string(),
                );
            } else {
                output::result(&format!(
                    "{} guardians named, {} of them can move account {} to a new key after a 72-hour time-lock you can veto; the chain holds only their commitment {}",
                    file.guardians.guardians.len(),
                    file.guardians.threshold,
                    file.account,
                    file.guardians.commitment()
                ));
                output::note(&format!(
                    "the list is in {} (private, no secret key in it): keep a copy off this device, a recovery needs it (`medrec recovery start --guardians FILE`)",
                    path.display()
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
        GuardiansCmd::Show => {
            let file = GuardiansFile::load(&path)?;
            let chain = p.chain.connect().await?;
            let on_chain = chain
                .relationships()
                .hasGuardians(file.account)
                .call()
                .await
                .context("cannot read the guardians' commitment")?;
            if p.json {
                output::result(
                    &json!({
                        "account": file.account,
                        "guardians": file.guardians.guardians,
                        "threshold": file.guardians.threshold,
                        "on_chain": on_chain,
                    })
                    .to_string(),
                );
            } else {
                output::result(&format!(
                    "{} of {} guardians: {}{}",
                    file.guardians.threshold,
                    file.guardians.guardians.len(),
                    file.guardians
                        .guardians
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", "),
                    if on_chain {
                        ""
                    } else {
                        " (not on chain: a completed recovery cleared them; name them again)"
                    }
                ));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
