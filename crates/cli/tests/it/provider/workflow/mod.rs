//! `medrec provider init / register / enroll / import / publish` as real processes,
//! against an in-process devchain (served over HTTP) and gatekeeper.

mod init;
mod legacy;
mod publish;
mod register;

use super::{fails, temp_dir};
use alloy::transports::http::reqwest;
use alloy::{
    network::EthereumWallet,
    primitives::{Address, B256},
    providers::{Provider, ProviderBuilder},
};
use medrec_chain::inbox;
use medrec_contracts::{Registrar, Relationships};
use medrec_devchain::{
    chain::{Chain, ChainConfig},
    deploy::Deployment,
    genesis::{DEV_MNEMONIC, DevAccount, dev_accounts},
    node::{Node, SealMode},
    server::{ServerHandle, serve},
};
use medrec_gatekeeper::{
    client::{ClientError, GatekeeperClient},
    serve::{ResearchSetup, RunningGatekeeper, ServeConfig, StoreUrl, spawn},
};
use medrec_primitives::{RelationshipId, Status};
use medrec_research::policy::Policy;
use medrec_synth::{Options, generate, transaction_bundle};
use serde_json::{Value, json};
use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
    time::Duration,
};

const PASSPHRASE_VAR: &str = "MEDREC_TEST_PROVIDER_PASSPHRASE";
const PASSPHRASE: &str = "correct horse battery staple";
const CHAIN_ID: u64 = 31337;
/// The bounty every test update carries (any valid query: the policy offers all).
const BOUNTY: &str = "mean(Observation.valueQuantity) where code = http://loinc.org|2498-4 and category = laboratory and date in last 30 days and range 0..500";

/// A devchain over HTTP and a provider's gatekeeper, in process, on their own
/// runtime (the test itself runs the binary synchronously).
struct Net {
    runtime: tokio::runtime::Runtime,
    rpc: String,
    at: Deployment,
    server: Option<ServerHandle>,
    gatekeeper: Option<RunningGatekeeper>,
    dir: PathBuf,
    /// The record store URL the gatekeeper serves.
    store: String,
}

impl Drop for Net {
    fn drop(&mut self) {
        let (gk, server) = (self.gatekeeper.take(), self.server.take());
        self.runtime.block_on(async {
            if let Some(gk) = gk {
                let _ = gk.shutdown().await;
            }
            if let Some(server) = server {
                let _ = server.shutdown().await;
            }
        });
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Net {
    /// A chain, and a gatekeeper serving as `provider` over `dir/records.db` (when
    /// given) with research bounties on (the default policy).
    fn start(name: &str, provider: Option<Address>) -> Self {
        Self::start_with(name, provider, |_| None)
    }

    /// As [`Net::start`], but when `legacy` (given the test's directory) names a
    /// store URL and a legacy mapping, the gatekeeper serves that database read-only
    /// through the mapping (its access log in `dir/access.db`).
    fn start_with(
        name: &str,
        provider: Option<Address>,
        legacy: impl FnOnce(&Path) -> Option<(String, PathBuf)>,
    ) -> Self {
        let dir = temp_dir(name);
        let legacy = legacy(&dir);
        let store = legacy.as_ref().map_or_else(
            || format!("sqlite:{}", dir.join("records.db").display()),
            |(url, _)| url.clone(),
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (server, at, gatekeeper) = runtime.block_on(async {
            let node = Node::new(Chain::new(ChainConfig::default()).unwrap(), SealMode::Instant);
            let at: Deployment = node.with(Chain::deployment).unwrap();
            let server = serve(node, "127.0.0.1:0".parse().unwrap()).await.unwrap();
            let gatekeeper = match provider {
                None => None,
                Some(provider) => {
                    let mut config = ServeConfig::new(
                        "127.0.0.1:0".parse().unwrap(),
                        store.parse().unwrap(),
                        server.url(),
                        at.relationships,
                        provider,
                        CHAIN_ID,
                    );
                    if let Some((_, mapping)) = &legacy {
                        config.legacy = Some(mapping.clone());
                        config.access_log = Some(StoreUrl::Sqlite(dir.join("access.db")));
                    }
                    config.reorg_depth = 0;
                    config.poll = Duration::from_millis(100);
                    config.research = Some(ResearchSetup {
                        registrar: at.registrar,
                        policy: Policy::default(),
                        ledger: dir.join("ledger.db"),
                    });
                    Some(spawn(config).await.unwrap())
                }
            };
            (server, at, gatekeeper)
        });
        Self { runtime, rpc: server.url(), at, server: Some(server), gatekeeper, dir, store }
    }

    fn gatekeeper_url(&self) -> String {
        self.gatekeeper.as_ref().unwrap().url()
    }

    fn store(&self) -> String {
        self.store.clone()
    }

    fn reader(&self) -> impl Provider + Clone + use<> {
        ProviderBuilder::new().connect_http(self.rpc.parse().unwrap())
    }

    fn wallet(&self, who: &DevAccount) -> impl Provider + Clone + use<> {
        ProviderBuilder::new()
            .wallet(EthereumWallet::from(who.signer()))
            .connect_http(self.rpc.parse().unwrap())
    }

    fn block(&self) -> u64 {
        self.runtime.block_on(self.reader().get_block_number()).unwrap()
    }

    /// `medrec provider …` with the wallet in `data`, the passphrase from the
    /// environment and light keystores.
    fn medrec(&self, data: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_medrec"));
        c.arg("provider")
            .args(args)
            .args(["--data-dir", data.to_str().unwrap(), "--passphrase-env", PASSPHRASE_VAR])
            .env(PASSPHRASE_VAR, PASSPHRASE)
            .env("MEDREC_INSECURE_LIGHT_KDF", "1")
            .env_remove("MEDREC_MNEMONIC")
            .env_remove("MEDREC_RPC_URL")
            .env_remove("MEDREC_REGISTRAR")
            .env_remove("MEDREC_RELATIONSHIPS")
            .env_remove("MEDREC_ANCHORS")
            .env_remove("MEDREC_FROM_BLOCK")
            .env_remove("MEDREC_DATA_DIR")
            .env_remove("RUST_LOG");
        c
    }

    /// `provider init` recovering the development mnemonic: the genesis institution.
    fn init_dev(&self, data: &Path) -> Value {
        self.init_dev_with(data, &[])
    }

    /// `provider init` as [`Net::init_dev`], with more flags.
    fn init_dev_with(&self, data: &Path, extra: &[&str]) -> Value {
        let out = self
            .medrec(
                data,
                &[
                    "init",
                    "--recover",
                    "--name",
                    "Riverside Clinic",
                    "--endpoint",
                    &self.gatekeeper_url(),
                    "--store",
                    &self.store(),
                    "--rpc-url",
                    &self.rpc,
                    "--registrar",
                    &self.at.registrar.to_string(),
                    "--relationships",
                    &self.at.relationships.to_string(),
                    "--anchors",
                    &self.at.anchors.to_string(),
                    "--json",
                ],
            )
            .args(extra)
            .env("MEDREC_MNEMONIC", DEV_MNEMONIC)
            .output()
            .unwrap();
        succeeds(&out)
    }

    fn endpoint_of(&self, provider: Address) -> String {
        self.runtime.block_on(async {
            let registrar = Registrar::new(self.at.registrar, self.reader());
            registrar
                .call_builder(&Registrar::providerCall { account: provider })
                .call()
                .await
                .unwrap()
                .endpoint
        })
    }

    fn summary(
        &self,
        patient: Address,
    ) -> std::collections::BTreeMap<RelationshipId, inbox::Summary> {
        self.runtime.block_on(async {
            let notices = inbox::read(&self.reader(), self.at.relationships, 0, patient, 0, None)
                .await
                .unwrap();
            inbox::summarize(&notices)
        })
    }
}

/// The JSON a successful command printed on stdout.
fn succeeds(out: &Output) -> Value {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "exit {}; stderr: {stderr}", out.status);
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!("stdout is not one JSON object ({e}): {stdout}; stderr: {stderr}")
    })
}

fn write_json(path: &Path, value: &Value) -> String {
    std::fs::write(path, value.to_string()).unwrap();
    path.to_str().unwrap().to_owned()
}

fn address(v: &Value) -> Address {
    v.as_str().unwrap().parse().unwrap()
}

fn hash(v: &Value) -> B256 {
    v.as_str().unwrap().parse().unwrap()
}

/// Polls a gatekeeper request while its chain follower catches up.
async fn eventually<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ClientError>>,
{
    for _ in 0..150 {
        match f().await {
            Ok(v) => return v,
            Err(ClientError::Refused { status: 403 | 409 | 503, .. }) => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    panic!("the gatekeeper never caught up with the chain")
}

impl Net {
    fn init_dev_again(&self, data: &Path) -> Value {
        let out = self
            .medrec(
                data,
                &[
                    "init",
                    "--name",
                    "Riverside Clinic",
                    "--endpoint",
                    &self.gatekeeper_url(),
                    "--store",
                    &self.store(),
                    "--rpc-url",
                    &self.rpc,
                    "--json",
                ],
            )
            .output()
            .unwrap();
        succeeds(&out)
    }
}
