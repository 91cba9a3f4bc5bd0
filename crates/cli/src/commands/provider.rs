//! `medrec provider`: what a provider runs.
//!
//! - `serve`: the Database Gatekeeper.
//! - `init`: the provider's wallet, its configuration (`provider.json` in the data
//!   directory) and its registration through the Registrar; `register`: a certified
//!   institution registers a provider.
//! - `enroll`: a relationship with a patient, its pointers on chain and at the gatekeeper.
//! - `import`: FHIR transaction or batch Bundles into the provider's records.
//! - `publish`: new data behind enrolled pointers, announced on chain with a bounty query
//!   (which sets *update pending* in the patient's summary).
//!
//! Every command but `serve` and `register` reads `provider.json`: the chain flags,
//! when given with a value other than the embedded chain's default, override the chain
//! recorded there.

mod bounty;
mod enroll;
mod import;
mod init;
mod publish;
mod serve;
mod state;
mod tx;

use crate::commands::common::{ChainArgs, WalletArgs};
use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use medrec_gatekeeper::{client::GatekeeperClient, serve::StoreUrl};
use medrec_store::RecordStore;
use medrec_wallet::Wallet;
use state::ProviderConfig;
use std::{path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

/// What a provider runs: its gatekeeper, its setup and registration, enrolling
/// patients, importing records and publishing their changes.
#[derive(Debug, Args)]
pub(crate) struct ProviderArgs {
    #[command(subcommand)]
    what: Provider,
}

#[derive(Debug, Subcommand)]
enum Provider {
    /// Serve the Database Gatekeeper: FHIR over HTTP(S), decided by the chain's consent.
    Serve(Box<serve::ServeArgs>),
    /// Create (or recover) the provider's wallet, write its configuration and register
    /// it through the Registrar (or print the command a certified institution runs).
    Init(Box<init::InitArgs>),
    /// Register a provider, as a certified institution.
    Register(Box<init::RegisterArgs>),
    /// Enroll a patient: a relationship on chain with a delegate address and pointers,
    /// and the pointers' queries at the gatekeeper.
    Enroll(Box<enroll::EnrollArgs>),
    /// Import FHIR transaction or batch Bundles (JSON files) through the gatekeeper.
    Import(Box<import::ImportArgs>),
    /// Recompute the enrolled pointers' data and publish what changed on chain, with a
    /// bounty query.
    Publish(Box<publish::PublishArgs>),
}

/// Runs `medrec provider`.
pub(crate) fn run(args: ProviderArgs) -> anyhow::Result<ExitCode> {
    let what = match args.what {
        Provider::Serve(a) => return serve::run(&a),
        other => other,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        match what {
            Provider::Serve(_) => bail!("serve runs on its own"),
            Provider::Init(a) => init::init(&a).await,
            Provider::Register(a) => init::register(&a).await,
            Provider::Enroll(a) => enroll::enroll(&a).await,
            Provider::Import(a) => import::import(&a).await,
            Provider::Publish(a) => publish::publish(&a).await,
        }
    })
}

/// An initialized provider: its configuration, wallet and chain.
struct Context {
    dir: PathBuf,
    config: ProviderConfig,
    chain: ChainArgs,
    wallet: Wallet,
}

impl Context {
    /// Reads the configuration, then opens the wallet (asking for its passphrase).
    fn open(chain: &ChainArgs, wallet: &WalletArgs) -> anyhow::Result<Self> {
        let dir = wallet.dir("provider")?;
        let config = ProviderConfig::load(&dir)?;
        let opened = wallet.open("provider")?;
        anyhow::ensure!(
            opened.address() == config.address,
            "the wallet in {} is {}, but provider.json was written for {}",
            dir.display(),
            opened.address(),
            config.address
        );
        let chain = config.chain.merged(chain);
        Ok(Self { dir, config, chain, wallet: opened })
    }

    /// The provider's record store.
    async fn store(&self) -> anyhow::Result<Arc<dyn RecordStore>> {
        let url: StoreUrl =
            self.config.store.parse().context("the record store URL in provider.json")?;
        url.open().await.context("cannot open the provider's record store")
    }

    /// A client of the provider's own gatekeeper, acting as the provider.
    fn client(&self) -> GatekeeperClient {
        GatekeeperClient::new(
            self.config.endpoint.clone(),
            self.config.address,
            self.config.chain.chain_id,
            self.wallet.account().clone(),
        )
    }
}

/// How often, and for how long, the provider's commands ask a gatekeeper that is still
/// following the chain (it answers 403, 409 or 503 until it has seen the latest block).
const ENROLL_PAUSE: Duration = Duration::from_millis(200);
const ENROLL_PATIENCE: Duration = Duration::from_secs(30);

/// `n word` or `n words`.
fn count(n: usize, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}
