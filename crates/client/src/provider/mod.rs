//! What a provider does: register through the Registrar ([`registration`]), import
//! records through its gatekeeper ([`import`]), enroll patients ([`enroll`]) and publish
//! changed data with a bounty query ([`publish`]).
//!
//! A [`ProviderSession`] is an initialized provider: its data directory with
//! `provider.json` and `relationships.json` ([`state`]), its wallet, and its chain.

pub mod bounty;
pub mod enroll;
pub mod import;
pub mod publish;
pub mod registration;
pub mod state;
pub mod watch;

use crate::{
    chain::{Chain, ChainSpec},
    error::{Context as _, Result, ensure},
};
use medrec_gatekeeper::{client::GatekeeperClient, serve::StoreUrl};
use medrec_store::RecordReader;
use medrec_wallet::Wallet;
use state::ProviderConfig;
use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

/// The pointers a relationship gets when none are named: laboratory results,
/// conditions, medications, immunizations and allergies.
pub const DEFAULT_POINTERS: [&str; 5] = [
    "Observation?category=laboratory",
    "Condition",
    "MedicationRequest",
    "Immunization",
    "AllergyIntolerance",
];

/// Wei sent to a delegate (or a patient) for its gas when it holds less than half of
/// it (0.01 ETH).
pub const DELEGATE_FUNDING: u128 = 10_000_000_000_000_000;

/// An initialized provider: its configuration, wallet and chain.
#[derive(Debug)]
pub struct ProviderSession {
    dir: PathBuf,
    config: ProviderConfig,
    spec: ChainSpec,
    wallet: Wallet,
}

impl ProviderSession {
    /// The provider whose `provider.json` is in `dir` and whose opened wallet is
    /// `wallet`; `chain` overrides the chain recorded there where it differs from the
    /// embedded chain's defaults.
    ///
    /// # Errors
    /// When the wallet is not the one `provider.json` was written for.
    pub fn new(
        dir: &Path,
        config: ProviderConfig,
        wallet: Wallet,
        chain: &ChainSpec,
    ) -> Result<Self> {
        ensure!(
            wallet.address() == config.address,
            "the wallet in {} is {}, but provider.json was written for {}",
            dir.display(),
            wallet.address(),
            config.address
        );
        let spec = config.chain.merged(chain);
        Ok(Self { dir: dir.to_owned(), config, spec, wallet })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `provider.json`.
    pub const fn config(&self) -> &ProviderConfig {
        &self.config
    }

    /// The wallet.
    pub const fn wallet(&self) -> &Wallet {
        &self.wallet
    }

    /// Where the chain is.
    pub const fn spec(&self) -> &ChainSpec {
        &self.spec
    }

    /// Connects to the chain.
    ///
    /// # Errors
    /// When the node does not answer.
    pub async fn connect(&self) -> Result<Chain> {
        self.spec.connect().await
    }

    /// The provider's records, as pointers read them: its record store, or, when
    /// `provider.json` names a legacy mapping, its own database read through that
    /// mapping ([`medrec_store::legacy`]), which is never written (not even a schema
    /// created). Only a reader: enrolling and publishing never write records.
    ///
    /// # Errors
    /// When its URL is not usable, the mapping is refused or the store cannot be opened.
    pub async fn store(&self) -> Result<Arc<dyn RecordReader>> {
        let url: StoreUrl =
            self.config.store.parse().context("the record store URL in provider.json")?;
        match self.config.legacy_mapping(&self.dir) {
            Some(mapping) => url.open_legacy(&mapping).await.with_context(|| {
                format!(
                    "cannot open the provider's own database through the legacy mapping {}",
                    mapping.display()
                )
            }),
            None => {
                let store = url.open().await.context("cannot open the provider's record store")?;
                Ok(store)
            }
        }
    }

    /// A client of the provider's own gatekeeper, acting as the provider.
    pub fn client(&self) -> GatekeeperClient {
        GatekeeperClient::new(
            self.config.endpoint.clone(),
            self.config.address,
            self.config.chain.chain_id,
            self.wallet.account().clone(),
        )
    }
}

impl ProviderSession {
    /// The provider's own access log, oldest first, entries after `after` (at most 500),
    /// each proof checked against the anchor this provider put on chain.
    ///
    /// # Errors
    /// When the gatekeeper or the chain cannot be read.
    pub async fn access_log(
        &self,
        after: u64,
    ) -> Result<Vec<crate::patient::access_log::AccessEntry>> {
        let chain = self.connect().await?;
        let entries = self.client().audit(after).await.map_err(|e| {
            crate::Error::gatekeeper("cannot read the gatekeeper's access log".to_owned(), e)
        })?;
        let me = self.config.address;
        let mut rows = Vec::with_capacity(entries.len());
        for e in entries {
            let proof =
                crate::patient::access_log::proof_status(&chain, me, e.proof.as_ref()).await;
            rows.push(crate::patient::access_log::AccessEntry {
                provider: me,
                entry: e.entry,
                proof,
            });
        }
        Ok(rows)
    }
}
