//! With `--keep-running`: a third provider, Lakeside Practice, set up the way a real
//! provider is (a wallet in its own data directory, `provider.json`, a research policy,
//! its gatekeeper keeping its state there, registered by the certified institution,
//! synthetic records imported), so that the provider's app can enroll the demo patient,
//! import and publish. Its wallet's passphrase is [`PASSPHRASE`]: a throw-away demo
//! wallet with a light key derivation, never for real records.

use super::{CHAIN_ID, demo_policy, gatekeeper_config};
use alloy::primitives::{U256, keccak256};
use anyhow::Context;
use medrec_client::{
    Chain, ChainSpec,
    provider::{
        ProviderSession,
        registration::register_provider,
        state::{ChainConfig, POLICY_FILE, ProviderConfig},
    },
    tx,
};
use medrec_devchain::genesis::DevAccount;
use medrec_gatekeeper::serve::{RunningGatekeeper, StoreUrl, spawn};
use medrec_synth::{Options, generate, transaction_bundle};
use medrec_wallet::{Passphrase, ScryptParams, Wallet, WordCount};
use std::path::Path;

/// Its name.
pub(super) const NAME: &str = "Lakeside Practice";
/// The demo wallet's passphrase (public: a demo).
pub(super) const PASSPHRASE: &str = "lakeside demo passphrase";

/// Lakeside Practice, serving.
pub(super) struct Lakeside {
    /// Its data directory (wallet, provider.json, policy.json, records, state).
    pub(super) dir: std::path::PathBuf,
    /// Its account.
    pub(super) address: alloy::primitives::Address,
    /// Its gatekeeper.
    pub(super) running: RunningGatekeeper,
    /// The FHIR id of the patient whose records it holds (the demo patient's, to enroll).
    pub(super) patient_id: String,
}

/// Sets Lakeside Practice up in `root/app-provider` and starts its gatekeeper.
pub(super) async fn start(
    spec: &ChainSpec,
    chain: &Chain,
    root: &Path,
    institution: &DevAccount,
    years: u32,
) -> anyhow::Result<Lakeside> {
    let dir = root.join("app-provider");
    let passphrase = Passphrase::new(PASSPHRASE)?;
    let wallet = Wallet::create(&dir, WordCount::Twelve, &passphrase, ScryptParams::light())
        .context("creating Lakeside Practice's wallet")?;
    let address = wallet.address();
    tx::fund(
        &chain.sender(institution.signer()),
        address,
        U256::from(10u128.pow(18)),
        "Lakeside Practice",
    )
    .await?;
    let store = StoreUrl::Sqlite(dir.join("records.db"));
    let config = gatekeeper_config(
        spec,
        store.clone(),
        wallet.account().clone(),
        dir.join("enrollments.json"),
        dir.join("research.db"),
    )?;
    let running = spawn(config).await.context("Lakeside Practice's gatekeeper could not start")?;
    register_provider(
        chain,
        &institution.signer(),
        address,
        NAME,
        &running.url(),
        keccak256(format!("{NAME} key").as_bytes()),
    )
    .await?;
    let provider = ProviderConfig {
        name: NAME.to_owned(),
        address,
        endpoint: running.url(),
        store: format!("sqlite:{}", dir.join("records.db").display()),
        legacy: None,
        chain: ChainConfig::new(spec, CHAIN_ID),
    };
    provider.save(&dir)?;
    std::fs::write(dir.join(POLICY_FILE), serde_json::to_vec_pretty(&demo_policy())?)
        .context("writing Lakeside Practice's research policy")?;
    let record = generate(&Options { patients: 1, years, seed: 13, ..Options::default() })
        .pop()
        .context("the generator made no patient")?;
    let session = ProviderSession::new(&dir, provider, wallet, spec)?;
    session.import(&transaction_bundle(&record), "Lakeside Practice's records").await?;
    Ok(Lakeside { dir, address, running, patient_id: record.id })
}
