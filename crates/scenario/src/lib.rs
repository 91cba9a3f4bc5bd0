//! The scenario the end-to-end tests of the CLI and the app share: a devchain served
//! over JSON-RPC on loopback, and up to two providers, each a gatekeeper
//! (`serve::spawn`, SQLite, enrollments on disk, anchoring every 500 ms) registered in
//! the `Registrar` with one synthetic patient's records imported. The tests add their
//! own parties (a patient's wallet, the CLI, the app) on top.
//!
//! A dev-dependency only, never in a production dependency graph; not `testkit`, which
//! the gatekeeper's own tests use (this crate depends on the gatekeeper).

use alloy::{
    network::EthereumWallet,
    primitives::{Address, keccak256},
    providers::{Provider, ProviderBuilder},
};
use alloy::{
    signers::{SignerSync as _, local::PrivateKeySigner},
    sol_types::SolStruct as _,
};
use medrec_client::{chain::ChainSpec, patient::PatientSession};
use medrec_contracts::Registrar;
use medrec_devchain::{
    chain::{Chain, ChainConfig},
    deploy::Deployment,
    genesis::{DevAccount, dev_accounts},
    node::{Node, SealMode},
    server::{ServerHandle, serve as serve_rpc},
};
use medrec_gatekeeper::{
    client::{ClientError, GatekeeperClient},
    offer::{self, Offer, OfferBody},
    pointer::{self, PointerSpec},
    serve::{Anchoring, RunningGatekeeper, ServeConfig, StoreUrl, spawn},
};
use medrec_primitives::RelationshipId;
use medrec_synth::{Options, generate, transaction_bundle};
use serde_json::Value;
use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

/// The devchain's chain id.
pub const CHAIN_ID: u64 = 31337;
/// The pointer every provider publishes: the patient's laboratory results.
pub const LABS: &str = "Observation?category=laboratory";

/// A provider of the scenario.
#[derive(Debug)]
pub struct Site {
    /// The provider's account (registered in the `Registrar`, the gatekeeper's address).
    pub account: DevAccount,
    /// The delegate its relationships name.
    pub delegate: DevAccount,
    /// Its gatekeeper, until [`Net::stop`].
    pub running: Option<RunningGatekeeper>,
    /// Its record store.
    pub store: StoreUrl,
    /// The FHIR id of its one synthetic patient.
    pub patient_id: String,
    /// The lab-results pointer its relationships carry, with the salt of its commitment.
    pub labs: PointerSpec,
}

impl Site {
    /// Its gatekeeper's base URL.
    ///
    /// # Panics
    /// After [`Net::stop`].
    pub fn url(&self) -> String {
        self.running.as_ref().expect("the gatekeeper runs").url()
    }

    /// A client of this provider's gatekeeper acting as the provider.
    pub fn as_provider(&self) -> GatekeeperClient {
        GatekeeperClient::new(self.url(), self.account.address, CHAIN_ID, self.account.signer())
    }

    /// The lab results it holds for its patient, as the pointer serves them.
    async fn labs_data(&self) -> pointer::PointerData {
        let store = self.store.open().await.unwrap();
        let query = self.labs.parse().unwrap();
        pointer::run(store.as_ref(), &query, &self.patient_id.parse().unwrap()).await.unwrap()
    }
}

/// A chain and providers' gatekeepers in this process, with a scratch directory
/// (removed when dropped).
#[derive(Debug)]
pub struct Net {
    /// The devchain.
    pub node: Node,
    /// Its JSON-RPC server, until [`Net::stop`].
    pub rpc: Option<ServerHandle>,
    /// Its JSON-RPC URL.
    pub rpc_url: String,
    /// The contracts.
    pub at: Deployment,
    /// The providers.
    pub sites: Vec<Site>,
    /// The scratch directory.
    pub dir: PathBuf,
}

/// A provider sending transactions as `who` through the node at `rpc`.
pub fn signer_of(rpc: &str, who: &DevAccount) -> impl Provider + Clone + use<> {
    ProviderBuilder::new()
        .wallet(EthereumWallet::from(who.signer()))
        .connect_http(rpc.parse().unwrap())
}

impl Net {
    /// The chain and `providers` gatekeepers (at most 2), each with one synthetic
    /// patient's records imported and registered in the Registrar; `name` names the
    /// scratch directory.
    ///
    /// # Panics
    /// When any part fails to start: this is a test scenario.
    pub async fn start(name: &str, providers: usize) -> Self {
        let dir =
            std::env::temp_dir().join(format!("medrec-scenario-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let node = Node::new(Chain::new(ChainConfig::default()).unwrap(), SealMode::Instant);
        let at: Deployment = node.with(Chain::deployment).unwrap();
        let rpc = serve_rpc(node.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let rpc_url = rpc.url();
        let accounts = dev_accounts(10);
        let mut sites = Vec::new();
        for (i, (account, delegate, seed)) in
            [(1usize, 3usize, 11u64), (6, 7, 12)].into_iter().take(providers).enumerate()
        {
            let (account, delegate) = (accounts[account].clone(), accounts[delegate].clone());
            let store = StoreUrl::Sqlite(dir.join(format!("provider-{i}.db")));
            let mut config = ServeConfig::new(
                "127.0.0.1:0".parse().unwrap(),
                store.clone(),
                rpc_url.clone(),
                at.relationships,
                account.address,
                CHAIN_ID,
            );
            config.reorg_depth = 0;
            config.poll = Duration::from_millis(100);
            config.registrar = Some(at.registrar);
            config.enrollments = Some(dir.join(format!("provider-{i}-enrollments.json")));
            config.anchoring = Some(Anchoring {
                anchors: at.anchors,
                period: Duration::from_millis(500),
                signer: account.signer(),
            });
            let running = spawn(config).await.unwrap();
            let registrar = Registrar::new(at.registrar, signer_of(&rpc_url, &accounts[0]));
            let call = registrar.registerProvider(
                keccak256(format!("provider {i}")),
                account.address,
                running.url(),
                keccak256(format!("provider {i} key")),
            );
            assert!(call.send().await.unwrap().get_receipt().await.unwrap().status());
            let record = generate(&Options { patients: 1, years: 2, seed, ..Options::default() })
                .pop()
                .unwrap();
            let site = Site {
                account,
                delegate,
                running: Some(running),
                store,
                patient_id: record.id.clone(),
                labs: PointerSpec::salted(LABS),
            };
            site.as_provider().import(&transaction_bundle(&record)).await.unwrap();
            sites.push(site);
        }
        Self { node, rpc: Some(rpc), rpc_url, at, sites, dir }
    }

    /// Provider `i` offers `patient` a relationship with a pointer to the lab results:
    /// signed with the provider's key and kept at its gatekeeper, where the patient takes
    /// it (the patient's key creates the relationship on chain). Retries while the
    /// gatekeeper is not ready (20 s at most).
    ///
    /// # Panics
    /// When the gatekeeper refuses for another reason, or for too long.
    pub async fn offer(&self, i: usize, patient: Address) -> RelationshipId {
        let site = &self.sites[i];
        let query = site.labs.parse().unwrap();
        let data = site.labs_data().await;
        assert!(!data.resources.is_empty(), "the synthetic patient has lab results");
        let delegate = site.delegate.address;
        let signed = Offer {
            account: patient,
            delegate,
            queryCommitment: query.commitment(),
            dataHash: data.data_hash,
        };
        let hash = signed.eip712_signing_hash(&offer::domain(CHAIN_ID, self.at.relationships));
        let signature = site.account.signer().sign_hash_sync(&hash).unwrap();
        let body = OfferBody {
            provider: site.account.address,
            account: patient,
            delegate,
            data_hash: data.data_hash,
            signature: signature.as_bytes().to_vec().into(),
        };
        let id = body.relationship();
        let client = site.as_provider();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match client
                .enroll(id, &site.patient_id, std::slice::from_ref(&site.labs), Some(&body))
                .await
            {
                Ok(()) => break,
                Err(ClientError::Refused { status: 403 | 409 | 503, .. })
                    if Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("offering failed: {e}"),
            }
        }
        id
    }

    /// Provider `i` offers `patient` a relationship and the patient takes it from the
    /// gatekeeper with `patient_key`: the relationship on chain, created by the patient,
    /// the provider's address encrypted for the patient.
    ///
    /// # Panics
    /// When a step fails.
    pub async fn relate(&self, i: usize, patient_key: &PrivateKeySigner) -> RelationshipId {
        let id = self.offer(i, patient_key.address()).await;
        let chain = ChainSpec {
            rpc_url: self.rpc_url.clone(),
            registrar: self.at.registrar,
            relationships: self.at.relationships,
            anchors: self.at.anchors,
            from_block: 0,
        }
        .connect()
        .await
        .unwrap();
        let session = PatientSession::with_signer(chain, patient_key.clone());
        let offer = session.offer(&id.0.to_string()).await.unwrap();
        session.take(&offer).await.unwrap();
        id
    }

    /// The lab results provider `i` holds for its patient, as the pointer serves them.
    pub async fn labs(&self, i: usize) -> Vec<Value> {
        self.sites[i].labs_data().await.resources
    }

    /// Provider `i` changes a published lab value without publishing a new hash; returns
    /// the value it wrote.
    ///
    /// # Panics
    /// When the import fails.
    pub async fn tamper(&self, i: usize) -> f64 {
        let mut lab = self.labs(i).await[0].clone();
        let value = 987_654.5;
        lab["valueQuantity"]["value"] = serde_json::json!(value);
        let target =
            format!("{}/{}", lab["resourceType"].as_str().unwrap(), lab["id"].as_str().unwrap());
        let bundle = serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"resource": lab, "request": {"method": "PUT", "url": target}}
        ]});
        self.sites[i].as_provider().import(&bundle).await.unwrap();
        value
    }

    /// Stops every gatekeeper and the chain's RPC server.
    ///
    /// # Panics
    /// When one does not stop cleanly.
    pub async fn stop(&mut self) {
        for site in &mut self.sites {
            if let Some(r) = site.running.take() {
                r.shutdown().await.unwrap();
            }
        }
        if let Some(rpc) = self.rpc.take() {
            rpc.shutdown().await.unwrap();
        }
    }
}

/// Declares a test crate's own scenario: `struct $name($crate::Net)`, which
/// dereferences to [`Net`] (its fields and methods), with `start(name, providers)` as
/// [`Net::start`] (the scratch directory named `$prefix-name`), so that the test crate
/// adds its own parties as inherent methods.
///
/// ```ignore
/// medrec_scenario::scenario! {
///     /// The scenario with the app.
///     pub(crate) struct Net("app");
/// }
/// ```
#[macro_export]
macro_rules! scenario {
    ($(#[$attr:meta])* $vis:vis struct $name:ident($prefix:literal);) => {
        $(#[$attr])*
        $vis struct $name($crate::Net);

        impl ::std::ops::Deref for $name {
            type Target = $crate::Net;

            fn deref(&self) -> &$crate::Net {
                &self.0
            }
        }

        impl ::std::ops::DerefMut for $name {
            fn deref_mut(&mut self) -> &mut $crate::Net {
                &mut self.0
            }
        }

        impl $name {
            /// The chain and `providers` gatekeepers (at most 2), each with one
            /// synthetic patient's records imported and registered in the Registrar.
            $vis async fn start(name: &str, providers: usize) -> Self {
                Self($crate::Net::start(&format!("{}-{name}", $prefix), providers).await)
            }
        }
    };
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
