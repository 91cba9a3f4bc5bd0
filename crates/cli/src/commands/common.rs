//! Arguments and plumbing shared by the commands of every party: where the chain is,
//! where a party keeps its files, and how its wallet's passphrase is read.
//!
//! Every flag can also come from an environment variable; the chain flags default to
//! the addresses of the embedded chain (`medrec chain`), whose deployment is
//! deterministic, so that nothing needs configuring on a development machine.

use alloy::primitives::Address;
use anyhow::Context;
use clap::Args;
pub(crate) use medrec_client::chain::{DEV_ANCHORS, DEV_REGISTRAR, DEV_RELATIONSHIPS};
use medrec_client::{Chain, ChainSpec};
use medrec_wallet::{Passphrase, PassphraseSource, ScryptParams, Wallet};
use std::path::PathBuf;

/// Where the chain is: the node and the MedRec contracts.
#[derive(Debug, Clone, Args)]
pub(crate) struct ChainArgs {
    /// JSON-RPC URL of the chain node.
    #[arg(
        long,
        env = "MEDREC_RPC_URL",
        value_name = "URL",
        default_value = "http://127.0.0.1:8545",
        global = true
    )]
    pub rpc_url: String,
    /// The Registrar contract (default: the embedded chain's).
    #[arg(long, env = "MEDREC_REGISTRAR", value_name = "ADDRESS", default_value_t = DEV_REGISTRAR, global = true)]
    pub registrar: Address,
    /// The Relationships contract (default: the embedded chain's).
    #[arg(long, env = "MEDREC_RELATIONSHIPS", value_name = "ADDRESS", default_value_t = DEV_RELATIONSHIPS, global = true)]
    pub relationships: Address,
    /// The AccessAnchors contract (default: the embedded chain's).
    #[arg(long, env = "MEDREC_ANCHORS", value_name = "ADDRESS", default_value_t = DEV_ANCHORS, global = true)]
    pub anchors: Address,
    /// The block the contracts were deployed in (where reading events starts).
    #[arg(long, env = "MEDREC_FROM_BLOCK", value_name = "N", default_value_t = 0, global = true)]
    pub from_block: u64,
}

impl ChainArgs {
    /// Where the chain is, for the library.
    pub(crate) fn spec(&self) -> ChainSpec {
        ChainSpec {
            rpc_url: self.rpc_url.clone(),
            registrar: self.registrar,
            relationships: self.relationships,
            anchors: self.anchors,
            from_block: self.from_block,
        }
    }

    /// Connects to the chain (asking its id, which checks that the node answers).
    pub(crate) async fn connect(&self) -> anyhow::Result<Chain> {
        Ok(self.spec().connect().await?)
    }
}

/// Where a party keeps its files and how its wallet's passphrase is read.
#[derive(Debug, Clone, Args)]
pub(crate) struct WalletArgs {
    /// Directory of this party's wallet, configuration and cache (default:
    /// `$HOME/.medrec/<role>`).
    #[arg(long, env = "MEDREC_DATA_DIR", value_name = "DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Read the wallet passphrase from this environment variable instead of asking.
    #[arg(long, value_name = "VAR", conflicts_with = "passphrase_file", global = true)]
    pub passphrase_env: Option<String>,
    /// Read the wallet passphrase from the first line of this file instead of asking.
    #[arg(long, value_name = "FILE", global = true)]
    pub passphrase_file: Option<PathBuf>,
}

impl WalletArgs {
    /// The data directory for `role` (`provider`, `patient`, `viewer`, `researcher`).
    pub(crate) fn dir(&self, role: &str) -> anyhow::Result<PathBuf> {
        if let Some(dir) = &self.data_dir {
            return Ok(dir.clone());
        }
        let home = std::env::var_os("HOME")
            .context("HOME is not set: say where to keep the wallet with --data-dir")?;
        Ok(PathBuf::from(home).join(".medrec").join(role))
    }

    /// Where the passphrase comes from.
    pub(crate) fn source(&self) -> PassphraseSource {
        match (&self.passphrase_env, &self.passphrase_file) {
            (Some(var), _) => PassphraseSource::Env(var.clone()),
            (None, Some(file)) => PassphraseSource::File(file.clone()),
            (None, None) => PassphraseSource::Prompt,
        }
    }

    /// The key-derivation cost for new keystores: the standard scrypt cost, unless the
    /// environment sets `MEDREC_INSECURE_LIGHT_KDF=1` (tests and throw-away demos only:
    /// the files are then cheap to brute-force).
    pub(crate) fn scrypt_params(&self) -> ScryptParams {
        ScryptParams::for_new_keystores()
    }

    /// Reads the passphrase of an existing wallet.
    pub(crate) fn passphrase(&self) -> anyhow::Result<Passphrase> {
        self.source().read("Wallet passphrase: ").context("cannot read the wallet passphrase")
    }

    /// Reads a new passphrase (asked twice on a terminal).
    pub(crate) fn new_passphrase(&self) -> anyhow::Result<Passphrase> {
        self.source()
            .read_new("New wallet passphrase: ", "Repeat the passphrase: ")
            .context("cannot read the new wallet passphrase")
    }

    /// Opens the wallet of `role`, reading its passphrase.
    pub(crate) fn open(&self, role: &str) -> anyhow::Result<Wallet> {
        let dir = self.dir(role)?;
        anyhow::ensure!(
            Wallet::exists(&dir),
            "there is no wallet in {}: create one first (`medrec {role} {}`) or pass --data-dir",
            dir.display(),
            if role == "provider" { "init" } else { "new" }
        );
        let passphrase = self.passphrase()?;
        Wallet::open(&dir, &passphrase)
            .with_context(|| format!("cannot open the wallet in {}", dir.display()))
    }
}

/// The signer whose hex private key is in the environment variable `var` (development
/// identities only: a real party signs with its wallet).
pub(crate) fn signer_from_env(
    var: &str,
) -> anyhow::Result<alloy::signers::local::PrivateKeySigner> {
    let hex =
        std::env::var(var).with_context(|| format!("the environment variable {var} is not set"))?;
    hex.trim().parse().with_context(|| format!("{var} does not hold a private key (64 hex digits)"))
}
