//! `medrec provider init` (the provider's wallet, configuration and registration) and
//! `medrec provider register` (a certified institution registers a provider).
//!
//! A provider's identity commitment is `keccak256(name)`: a provider's name is public,
//! unlike a patient's identity, so it needs no salt. The Registrar's encryption key is
//! zero unless `--encryption-key` gives one (nothing in MedRec uses it yet).

use crate::{
    commands::common::{ChainArgs, DEV_REGISTRAR, WalletArgs},
    output,
};
use alloy::primitives::{Address, B256};
use anyhow::Context;
use clap::Args;
use medrec_client::provider::{
    registration::{check_endpoint, provider_identity, register_provider, register_self},
    state::{ChainConfig, ProviderConfig},
};
use medrec_gatekeeper::serve::StoreUrl;
use medrec_wallet::{Mnemonic, PassphraseSource, Wallet, WordCount};
use serde_json::{Value, json};
use std::{path::PathBuf, process::ExitCode};

/// The environment variable `init --recover` reads the recovery phrase from.
const MNEMONIC_ENV: &str = "MEDREC_MNEMONIC";

/// Arguments of `medrec provider init`.
#[derive(Debug, Args)]
pub(super) struct InitArgs {
    /// The provider's name, as patients will see it (e.g. "Riverside Clinic").
    #[arg(long)]
    name: String,
    /// Base URL of the provider's gatekeeper (`medrec provider serve`), as patients and
    /// viewers reach it.
    #[arg(long, value_name = "GATEKEEPER_URL")]
    endpoint: String,
    /// The record store the gatekeeper serves: sqlite:PATH, postgres://… or mysql://….
    #[arg(long, value_name = "STORE_URL")]
    store: String,
    /// The store is the provider's own database, read through this legacy mapping file
    /// (see medrec_store::legacy) and never written: `provider serve`, `enroll` and
    /// `publish` all read it so. Checked against the database now.
    #[arg(long, value_name = "FILE")]
    legacy_mapping: Option<PathBuf>,
    /// Recover the wallet from its recovery phrase (read from the environment variable
    /// MEDREC_MNEMONIC, else asked without echo) instead of creating a new one.
    #[arg(long)]
    recover: bool,
    /// Words of a new recovery phrase (12 or 24).
    #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u8).range(12..=24))]
    words: u8,
    /// The provider's X25519 public key for the Registrar (32 bytes, hex); zero when not
    /// given.
    #[arg(long, value_name = "HEX32")]
    encryption_key: Option<B256>,
    /// Print one JSON object with the result.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    chain: ChainArgs,
    #[command(flatten)]
    wallet: WalletArgs,
}

/// Arguments of `medrec provider register`, run by a certified institution.
#[derive(Debug, Args)]
pub(super) struct RegisterArgs {
    /// The provider's account (printed by its `medrec provider init`).
    #[arg(long, value_name = "ADDRESS")]
    account: Address,
    /// The provider's name.
    #[arg(long)]
    name: String,
    /// Base URL of the provider's gatekeeper.
    #[arg(long, value_name = "URL")]
    endpoint: String,
    /// The provider's X25519 public key (32 bytes, hex); zero when not given.
    #[arg(long, value_name = "HEX32")]
    encryption_key: Option<B256>,
    /// Print one JSON object with the result.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    chain: ChainArgs,
    /// The institution's wallet.
    #[command(flatten)]
    wallet: WalletArgs,
}

/// The command an institution runs to register this provider (naming the chain when
/// it is not the embedded chain's default).
fn register_command(account: Address, name: &str, endpoint: &str, chain: &ChainArgs) -> String {
    let mut command = format!(
        "medrec provider register --account {account} --name {} --endpoint {}",
        shell_quote(name),
        shell_quote(endpoint)
    );
    if chain.rpc_url != "http://127.0.0.1:8545" {
        command.push_str(&format!(" --rpc-url {}", shell_quote(&chain.rpc_url)));
    }
    if chain.registrar != DEV_REGISTRAR {
        command.push_str(&format!(" --registrar {}", chain.registrar));
    }
    command
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Runs `medrec provider init`.
pub(super) async fn init(a: &InitArgs) -> anyhow::Result<ExitCode> {
    check_endpoint(&a.endpoint)?;
    anyhow::ensure!(!a.name.trim().is_empty(), "the provider's name must not be empty");
    anyhow::ensure!(a.words == 12 || a.words == 24, "--words must be 12 or 24");
    let store: StoreUrl = a.store.parse().context("the record store URL is not usable")?;
    let legacy = match &a.legacy_mapping {
        Some(mapping) => {
            let mapping = std::path::absolute(mapping)
                .with_context(|| format!("the legacy mapping {}", mapping.display()))?;
            store.open_legacy(&mapping).await.with_context(|| {
                format!("the legacy mapping {} does not fit the database", mapping.display())
            })?;
            Some(mapping)
        }
        None => None,
    };
    let chain = a.chain.connect().await?;
    let chain_id = chain.chain_id();
    let dir = a.wallet.dir("provider")?;

    // The wallet: recovered, created, or (init run again) the one already there.
    let mut mnemonic_shown = None;
    let wallet = if Wallet::exists(&dir) {
        anyhow::ensure!(
            !a.recover,
            "{} already holds a wallet: recover into an empty data directory (--data-dir)",
            dir.display()
        );
        output::note(&format!("using the wallet already in {}", dir.display()));
        a.wallet.open("provider")?
    } else if a.recover {
        let mnemonic = read_mnemonic()?;
        let passphrase = a.wallet.new_passphrase()?;
        Wallet::recover(&dir, mnemonic, &passphrase, a.wallet.scrypt_params())
            .with_context(|| format!("cannot create the wallet in {}", dir.display()))?
    } else {
        let count = if a.words == 24 { WordCount::TwentyFour } else { WordCount::Twelve };
        let passphrase = a.wallet.new_passphrase()?;
        let wallet = Wallet::create(&dir, count, &passphrase, a.wallet.scrypt_params())
            .with_context(|| format!("cannot create the wallet in {}", dir.display()))?;
        mnemonic_shown = Some(wallet.mnemonic().phrase().to_owned());
        wallet
    };
    let account = wallet.address();

    let config = ProviderConfig {
        name: a.name.clone(),
        address: account,
        endpoint: a.endpoint.clone(),
        store: a.store.clone(),
        legacy,
        chain: ChainConfig::new(chain.spec(), chain_id),
    };
    config.save(&dir)?;
    if let Some(phrase) = &mnemonic_shown
        && !a.json
    {
        output::note(&format!(
            "\nWrite down this recovery phrase and keep it offline. It is shown only once, and\n\
             anyone who has it controls this provider's account and every delegate:\n\n    {phrase}\n"
        ));
    }

    let identity = provider_identity(&a.name);
    let key = a.encryption_key.unwrap_or_default();
    let outcome = register_self(&chain, wallet.account(), &a.name, &a.endpoint, key).await?;
    let (registration, tx) = (outcome.as_str(), outcome.tx());
    let registered = registration != "needs an institution";
    let command = register_command(account, &a.name, &a.endpoint, &a.chain);

    if a.json {
        let mut value = json!({
            "address": account,
            "name": a.name,
            "endpoint": a.endpoint,
            "data_dir": dir,
            "chain_id": chain_id,
            "registered": registered,
            "registration": registration,
            "tx": tx,
            "identity": identity,
        });
        if !registered {
            value["register_command"] = Value::String(command);
        }
        if let Some(phrase) = mnemonic_shown {
            value["mnemonic"] = Value::String(phrase);
        }
        output::result(&value.to_string());
    } else {
        output::result(&format!("provider {} at {account}", a.name));
        output::result(&format!("configuration written to {}", dir.display()));
        match (registered, tx) {
            (true, Some(tx)) => {
                output::result(&format!("{registration} with gatekeeper {} (tx {tx})", a.endpoint));
            }
            (true, None) => {
                output::result(&format!("{registration} with gatekeeper {}", a.endpoint))
            }
            (false, _) => {
                output::result(&format!(
                    "not registered yet: {account} is not a certified institution, so a certified institution must register it by running:"
                ));
                output::result(&format!("    {command}"));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The recovery phrase from MEDREC_MNEMONIC, or asked without echo.
fn read_mnemonic() -> anyhow::Result<Mnemonic> {
    let source = if std::env::var_os(MNEMONIC_ENV).is_some() {
        PassphraseSource::Env(MNEMONIC_ENV.to_owned())
    } else {
        PassphraseSource::Prompt
    };
    // Read like a passphrase: without echo, held in memory wiped on drop.
    let phrase = source
        .read("Recovery phrase: ")
        .with_context(|| format!("cannot read the recovery phrase (or set {MNEMONIC_ENV})"))?;
    Mnemonic::parse(phrase.expose_secret().trim()).context("the recovery phrase is not valid")
}

/// Runs `medrec provider register` as a certified institution.
pub(super) async fn register(a: &RegisterArgs) -> anyhow::Result<ExitCode> {
    check_endpoint(&a.endpoint)?;
    anyhow::ensure!(!a.name.trim().is_empty(), "the provider's name must not be empty");
    let wallet = a.wallet.open("provider")?;
    let me = wallet.address();
    let chain = a.chain.connect().await?;
    let identity = provider_identity(&a.name);
    let receipt = register_provider(
        &chain,
        wallet.account(),
        a.account,
        &a.name,
        &a.endpoint,
        a.encryption_key.unwrap_or_default(),
    )
    .await?;
    let block = receipt.block_number.unwrap_or_default();
    if a.json {
        output::result(
            &json!({
                "account": a.account,
                "name": a.name,
                "endpoint": a.endpoint,
                "identity": identity,
                "institution": me,
                "tx": receipt.transaction_hash,
                "block": block,
            })
            .to_string(),
        );
    } else {
        output::result(&format!(
            "registered provider {} ({}) with gatekeeper {} (tx {}, block {block})",
            a.name, a.account, a.endpoint, receipt.transaction_hash
        ));
    }
    Ok(ExitCode::SUCCESS)
}
