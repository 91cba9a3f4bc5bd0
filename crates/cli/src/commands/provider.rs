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

use crate::commands::common::{ChainArgs, WalletArgs};
use anyhow::bail;
use clap::{Args, Subcommand};
use medrec_client::provider::{ProviderSession, state::ProviderConfig};
use std::process::ExitCode;

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

/// Opens the initialized provider: reads `provider.json`, then opens the wallet (asking
/// for its passphrase).
fn open(chain: &ChainArgs, wallet: &WalletArgs) -> anyhow::Result<ProviderSession> {
    let dir = wallet.dir("provider")?;
    let config = ProviderConfig::load(&dir)?;
    let opened = wallet.open("provider")?;
    Ok(ProviderSession::new(&dir, config, opened, &chain.spec())?)
}

pub(crate) use medrec_client::plural as count;
