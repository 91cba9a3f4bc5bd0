//! `medrec provider serve` against `medrec chain`, both as real processes.

use alloy::transports::http::reqwest;
use serde_json::Value;
use std::{
    io::{BufRead, BufReader, Read},
    path::PathBuf,
    process::{Child, Command, Output, Stdio},
    time::Duration,
};

/// A process of the binary, killed when dropped, with the JSON object it printed first.
struct Running {
    child: Child,
    info: Value,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary with `args` and reads its first line of stdout as JSON.
fn start_json(args: &[&str]) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_medrec"))
        .args(args)
        .env_remove("MEDREC_STORE")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    match serde_json::from_str(&line) {
        Ok(info) => Running { child, info },
        Err(e) => {
            let mut err = String::new();
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            let _ = child.kill();
            panic!("not JSON ({e}): {line:?}; stderr: {err}")
        }
    }
}

/// `medrec chain` on a free port, in memory.
fn start_chain() -> Running {
    start_json(&["chain", "--http", "127.0.0.1:0", "--json", "--ephemeral"])
}

fn url(r: &Running) -> String {
    r.info["rpc_url"].as_str().unwrap().to_owned()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("medrec-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

const GATEKEEPER: &str = "0x6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b";

fn provider_serve(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_medrec"));
    command
        .args(["provider", "serve", "--gatekeeper", GATEKEEPER])
        .args(args)
        // Flags only: no value from the environment of whoever runs the tests.
        .env_remove("MEDREC_STORE")
        .env_remove("RUST_LOG");
    command
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_reports_its_url_becomes_ready_and_stops_on_sigterm() {
    let chain = start_chain();
    let relationships = chain.info["contracts"]["relationships"].as_str().unwrap().to_owned();
    let dir = temp_dir("provider-serve");
    let store = format!("sqlite:{}", dir.join("records.db").display());
    let gk = start_json(&[
        "provider",
        "serve",
        "--gatekeeper",
        GATEKEEPER,
        "--listen",
        "127.0.0.1:0",
        "--store",
        &store,
        "--rpc-url",
        &url(&chain),
        "--relationships",
        &relationships,
        "--poll-ms",
        "100",
        "--json",
    ]);
    assert_eq!(gk.info["chain_id"], 31337);
    assert_eq!(gk.info["tls"], false);
    assert_eq!(gk.info["relationships"].as_str().unwrap().to_lowercase(), relationships);
    let base = gk.info["url"].as_str().unwrap().to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    let http = reqwest::Client::new();
    let status = |path: &'static str| {
        let (http, base) = (http.clone(), base.clone());
        async move { http.get(format!("{base}{path}")).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status("/healthz").await, 200);
    let mut ready = false;
    for _ in 0..300 {
        if status("/readyz").await == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ready, "the gatekeeper never caught up with the chain");
    let readyz: Value =
        http.get(format!("{base}/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(readyz["ready"], true);
    // Data needs credentials.
    let path = format!("{base}/pointers/0x{}/0", "11".repeat(32));
    assert_eq!(http.get(path).send().await.unwrap().status().as_u16(), 401);

    let mut gk = gk;
    let pid = gk.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let exit = gk.child.wait().unwrap();
    assert!(exit.success(), "exit status {exit}");
    drop(chain);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn fails(output: &Output) -> String {
    assert!(!output.status.success(), "it should have failed");
    assert!(output.stdout.is_empty(), "nothing on stdout");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn bad_stores_chains_and_certificates_are_clear_errors() {
    let chain = start_chain();
    let relationships = chain.info["contracts"]["relationships"].as_str().unwrap().to_owned();
    let rpc = url(&chain);
    let dir = temp_dir("provider-errors");
    let sqlite = format!("sqlite:{}", dir.join("records.db").display());
    let run = |store: &str, rpc: &str, extra: &[&str]| {
        let listen =
            if extra.contains(&"--listen") { &[][..] } else { &["--listen", "127.0.0.1:0"][..] };
        provider_serve(&["--store", store, "--rpc-url", rpc, "--relationships", &relationships])
            .args(listen)
            .args(extra)
            .output()
            .unwrap()
    };

    let err = fails(&run("oracle://scott:tiger@db/x", &rpc, &[]));
    assert!(err.contains("error: the record store URL is not usable"), "{err}");
    assert!(err.contains("unknown kind of store 'oracle://'") && !err.contains("tiger"), "{err}");

    let err = fails(&run("postgres://medrec:secret@127.0.0.1:1/records", &rpc, &[]));
    assert!(err.contains("error: the gatekeeper could not start"), "{err}");
    assert!(err.contains("cannot open the record store"), "{err}");
    assert!(err.contains("cannot connect to PostgreSQL") && !err.contains("secret"), "{err}");

    let err = fails(&run(&sqlite, "http://127.0.0.1:1", &[]));
    assert!(err.contains("cannot reach the chain node at http://127.0.0.1:1"), "{err}");

    let err = fails(&run(&sqlite, &rpc, &["--chain-id", "5"]));
    assert!(
        err.contains("is on chain 31337, but the gatekeeper is configured for chain 5"),
        "{err}"
    );

    let cert = dir.join("cert.pem");
    std::fs::write(&cert, "not a certificate").unwrap();
    let cert_arg = cert.to_str().unwrap();
    let err = fails(&run(&sqlite, &rpc, &["--tls-cert", cert_arg, "--tls-key", cert_arg]));
    assert!(err.contains(&format!("the TLS certificate {cert_arg} is not usable")), "{err}");

    // A port in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let err = fails(&run(&sqlite, &rpc, &["--listen", &addr]));
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    drop(chain);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_a_research_ledger_serves_the_policy_and_refuses_a_bad_one() {
    let chain = start_chain();
    let relationships = chain.info["contracts"]["relationships"].as_str().unwrap().to_owned();
    let rpc = url(&chain);
    let dir = temp_dir("provider-research");
    let store = format!("sqlite:{}", dir.join("records.db").display());
    let ledger = dir.join("ledger.db");
    let (good, bad) = (dir.join("policy.json"), dir.join("bad-policy.json"));
    std::fs::write(&good, r#"{"k": 12}"#).unwrap();
    std::fs::write(&bad, r#"{"k": "ten"}"#).unwrap();
    let args = |policy: &PathBuf| {
        vec![
            "--listen".to_owned(),
            "127.0.0.1:0".to_owned(),
            "--store".to_owned(),
            store.clone(),
            "--rpc-url".to_owned(),
            rpc.clone(),
            "--relationships".to_owned(),
            relationships.clone(),
            "--research-ledger".to_owned(),
            ledger.to_str().unwrap().to_owned(),
            "--research-policy".to_owned(),
            policy.to_str().unwrap().to_owned(),
        ]
    };

    let out = provider_serve(&[]).args(args(&bad)).output().unwrap();
    let err = fails(&out);
    assert!(err.contains(&format!("the research policy {} is not usable", bad.display())), "{err}");

    let mut good_args = vec!["provider".to_owned(), "serve".to_owned()];
    good_args.extend(["--gatekeeper".to_owned(), GATEKEEPER.to_owned(), "--json".to_owned()]);
    good_args.extend(args(&good));
    let refs: Vec<&str> = good_args.iter().map(String::as_str).collect();
    let gk = start_json(&refs);
    let base = gk.info["url"].as_str().unwrap().to_owned();
    let policy: Value = reqwest::get(format!("{base}/research/policy"))
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(policy["k"], 12, "{policy}");
    drop(gk);
    drop(chain);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `medrec provider init / register / enroll / import / publish` as real processes,
/// against an in-process devchain (served over HTTP) and gatekeeper.
mod workflow {
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
            let dir = temp_dir(name);
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            let (server, at, gatekeeper) = runtime.block_on(async {
                let node =
                    Node::new(Chain::new(ChainConfig::default()).unwrap(), SealMode::Instant);
                let at: Deployment = node.with(Chain::deployment).unwrap();
                let server = serve(node, "127.0.0.1:0".parse().unwrap()).await.unwrap();
                let gatekeeper = match provider {
                    None => None,
                    Some(provider) => {
                        let mut config = ServeConfig::new(
                            "127.0.0.1:0".parse().unwrap(),
                            StoreUrl::Sqlite(dir.join("records.db")),
                            server.url(),
                            at.relationships,
                            provider,
                            CHAIN_ID,
                        );
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
            Self { runtime, rpc: server.url(), at, server: Some(server), gatekeeper, dir }
        }

        fn gatekeeper_url(&self) -> String {
            self.gatekeeper.as_ref().unwrap().url()
        }

        fn store(&self) -> String {
            format!("sqlite:{}", self.dir.join("records.db").display())
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
                let notices =
                    inbox::read(&self.reader(), self.at.relationships, 0, patient, 0, None)
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

    #[test]
    fn init_from_the_dev_mnemonic_registers_the_institution_as_provider() {
        let institution = dev_accounts(1)[0].clone();
        let net = Net::start("provider-init-dev", Some(institution.address));
        let data = net.dir.join("provider");
        let init = net.init_dev(&data);
        assert_eq!(address(&init["address"]), institution.address);
        assert_eq!(init["registered"], true);
        assert!(init["tx"].is_string(), "{init}");
        assert!(init.get("mnemonic").is_none(), "a recovered phrase is not shown again");
        assert_eq!(net.endpoint_of(institution.address), net.gatekeeper_url());
        let config: Value =
            serde_json::from_str(&std::fs::read_to_string(data.join("provider.json")).unwrap())
                .unwrap();
        assert_eq!(config["name"], "Riverside Clinic");
        assert_eq!(config["chain"]["chain_id"], CHAIN_ID);
        assert_eq!(config["store"], net.store());

        // Running init again finds the wallet and the registration.
        let again = net.init_dev_again(&data);
        assert_eq!(again["registration"], "already registered");
        assert!(again["tx"].is_null());
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

    #[test]
    fn serve_takes_what_init_wrote_from_the_data_dir() {
        let institution = dev_accounts(1)[0].clone();
        let net = Net::start("provider-serve-config", None);
        let data = net.dir.join("provider");
        let out = net
            .medrec(
                &data,
                &[
                    "init",
                    "--recover",
                    "--name",
                    "Riverside Clinic",
                    "--endpoint",
                    "http://127.0.0.1:1",
                    "--store",
                    &net.store(),
                    "--rpc-url",
                    &net.rpc,
                    "--json",
                ],
            )
            .env("MEDREC_MNEMONIC", DEV_MNEMONIC)
            .output()
            .unwrap();
        succeeds(&out);
        let gk = super::start_json(&[
            "provider",
            "serve",
            "--data-dir",
            data.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--json",
        ]);
        assert_eq!(address(&gk.info["gatekeeper"]), institution.address);
        assert_eq!(address(&gk.info["relationships"]), net.at.relationships);
        assert_eq!(gk.info["chain_id"], CHAIN_ID);
        let base = gk.info["url"].as_str().unwrap().to_owned();
        let ready = net.runtime.block_on(async {
            for _ in 0..100 {
                let r = reqwest::get(format!("{base}/readyz")).await.unwrap();
                if r.status().as_u16() == 200 {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        });
        assert!(ready, "the gatekeeper never followed the chain named in provider.json");

        // Without flags or a data directory, the missing settings are named.
        let out = super::provider_serve(&[]).env_remove("MEDREC_DATA_DIR").output().unwrap();
        let err = fails(&out);
        assert!(err.contains("--store is needed"), "{err}");
    }

    #[test]
    fn a_new_provider_is_told_how_to_get_registered_and_an_institution_registers_it() {
        let net = Net::start("provider-init-new", None);
        let endpoint = "https://gk.northgate.example";
        let data = net.dir.join("northgate");
        let out = net
            .medrec(
                &data,
                &[
                    "init",
                    "--name",
                    "Northgate Hospital",
                    "--endpoint",
                    endpoint,
                    "--store",
                    "sqlite:/tmp/unused-northgate.db",
                    "--rpc-url",
                    &net.rpc,
                    "--json",
                ],
            )
            .output()
            .unwrap();
        let init = succeeds(&out);
        let account = address(&init["address"]);
        assert_eq!(init["registered"], false);
        let words = init["mnemonic"].as_str().unwrap().split_whitespace().count();
        assert_eq!(words, 12);
        let command = init["register_command"].as_str().unwrap();
        assert!(
            command.starts_with(&format!("medrec provider register --account {account} --name 'Northgate Hospital' --endpoint {endpoint}")),
            "{command}"
        );
        assert_eq!(net.endpoint_of(account), "", "not registered yet");

        // Human output says so too, and names the command.
        let human = net
            .medrec(
                &data,
                &[
                    "init",
                    "--name",
                    "Northgate Hospital",
                    "--endpoint",
                    endpoint,
                    "--store",
                    "sqlite:/tmp/unused-northgate.db",
                    "--rpc-url",
                    &net.rpc,
                ],
            )
            .output()
            .unwrap();
        assert!(human.status.success());
        let text = String::from_utf8_lossy(&human.stdout);
        assert!(text.contains("a certified institution must register it"), "{text}");
        assert!(text.contains(command), "{text}");

        // A wallet that is not an institution cannot register anyone.
        let err = fails(
            &net.medrec(
                &data,
                &[
                    "register",
                    "--account",
                    &account.to_string(),
                    "--name",
                    "Northgate Hospital",
                    "--endpoint",
                    endpoint,
                    "--rpc-url",
                    &net.rpc,
                ],
            )
            .output()
            .unwrap(),
        );
        assert!(err.contains("is not a certified institution"), "{err}");

        // The genesis institution runs the printed command.
        let inst = net.dir.join("institution");
        let out = net
            .medrec(
                &inst,
                &[
                    "init",
                    "--recover",
                    "--name",
                    "Institution",
                    "--endpoint",
                    "https://inst.example",
                    "--store",
                    "sqlite:/tmp/unused-inst.db",
                    "--rpc-url",
                    &net.rpc,
                    "--json",
                ],
            )
            .env("MEDREC_MNEMONIC", DEV_MNEMONIC)
            .output()
            .unwrap();
        succeeds(&out);
        let out = net
            .medrec(
                &inst,
                &[
                    "register",
                    "--account",
                    &account.to_string(),
                    "--name",
                    "Northgate Hospital",
                    "--endpoint",
                    endpoint,
                    "--rpc-url",
                    &net.rpc,
                    "--json",
                ],
            )
            .output()
            .unwrap();
        let registered = succeeds(&out);
        assert!(registered["tx"].is_string());
        assert_eq!(net.endpoint_of(account), endpoint);

        // Now init sees the registration.
        let again = succeeds(
            &net.medrec(
                &data,
                &[
                    "init",
                    "--name",
                    "Northgate Hospital",
                    "--endpoint",
                    endpoint,
                    "--store",
                    "sqlite:/tmp/unused-northgate.db",
                    "--rpc-url",
                    &net.rpc,
                    "--json",
                ],
            )
            .output()
            .unwrap(),
        );
        assert_eq!(again["registered"], true);
        assert_eq!(again["registration"], "already registered");
    }

    #[test]
    #[allow(clippy::too_many_lines)]
    fn enroll_import_and_publish_reach_the_chain_the_gatekeeper_and_the_patient() {
        let accounts = dev_accounts(3);
        let (institution, patient) = (accounts[0].clone(), accounts[2].clone());
        let net = Net::start("provider-workflow", Some(institution.address));
        let data = net.dir.join("provider");
        net.init_dev(&data);

        // Import the patient's history.
        let record = generate(&Options { patients: 1, years: 2, seed: 7, ..Options::default() })
            .pop()
            .unwrap();
        let bundle = write_json(&net.dir.join("history.json"), &transaction_bundle(&record));
        let imported =
            succeeds(&net.medrec(&data, &["import", &bundle, "--json"]).output().unwrap());
        assert_eq!(imported["imported"][0]["created"], record.resources.len() + 1);
        assert_eq!(imported["failed"], 0);

        // Malformed files are named, and nothing of them is imported.
        let broken = net.dir.join("broken.json");
        std::fs::write(&broken, "{\"resourceType\": \"Bundle\", ").unwrap();
        let err = fails(
            &net.medrec(&data, &["import", &bundle, broken.to_str().unwrap()]).output().unwrap(),
        );
        assert!(err.contains(&format!("{} is not valid JSON", broken.display())), "{err}");
        let searchset = write_json(
            &net.dir.join("searchset.json"),
            &json!({"resourceType": "Bundle", "type": "searchset", "entry": []}),
        );
        let err = fails(&net.medrec(&data, &["import", &searchset]).output().unwrap());
        assert!(err.contains("only transaction and batch Bundles can be imported"), "{err}");

        // An unknown identity without an address to register is a clear error.
        let salt = format!("0x{}", "5a".repeat(32));
        let err = fails(
            &net.medrec(
                &data,
                &[
                    "enroll",
                    "--patient-id",
                    &record.id,
                    "--identity",
                    "MRN-404",
                    "--salt",
                    &salt,
                    "--pointer",
                    "Observation?category=laboratory",
                ],
            )
            .output()
            .unwrap(),
        );
        assert!(err.contains("no patient is registered under the identity commitment"), "{err}");
        // Several pointers need a bounty.
        let err = fails(
            &net.medrec(
                &data,
                &["enroll", "--patient-id", &record.id, "--patient", &patient.address.to_string()],
            )
            .output()
            .unwrap(),
        );
        assert!(err.contains("pass --bounty TEXT or --offer NAME"), "{err}");

        // Enroll: the institution registers the identity, then the relationship with the
        // five default pointers, the bounty named by an offer of the policy.
        let policy = json!({"offers": [{"name": "iron", "query": BOUNTY}]});
        write_json(&data.join("policy.json"), &policy);
        let enrolled = succeeds(
            &net.medrec(
                &data,
                &[
                    "enroll",
                    "--patient-id",
                    &record.id,
                    "--identity",
                    "MRN-0001",
                    "--salt",
                    &salt,
                    "--patient",
                    &patient.address.to_string(),
                    "--offer",
                    "iron",
                    "--json",
                ],
            )
            .output()
            .unwrap(),
        );
        assert_eq!(address(&enrolled["patient"]), patient.address);
        let rel = RelationshipId(hash(&enrolled["relationship"]));
        let delegate = address(&enrolled["delegate"]);
        assert_eq!(rel, RelationshipId::derive(patient.address, delegate));
        assert_eq!(enrolled["pointers"].as_array().unwrap().len(), 5);
        let summary = net.summary(patient.address);
        let on_chain = &summary[&rel];
        assert_eq!(on_chain.status, Some(Status::New));
        assert_eq!(on_chain.pointers.len(), 5);
        for (i, p) in enrolled["pointers"].as_array().unwrap().iter().enumerate() {
            assert_eq!(on_chain.pointers[i].1, hash(&p["data_hash"]), "pointer {i}");
        }
        // The identity now resolves to the patient.
        let resolved = net.runtime.block_on(async {
            let commitment =
                medrec_primitives::IdentityCommitment::new(&salt.parse().unwrap(), "MRN-0001");
            Registrar::new(net.at.registrar, net.reader())
                .resolve(commitment.0)
                .call()
                .await
                .unwrap()
        });
        assert_eq!(resolved.account, patient.address);

        // The patient accepts, and the gatekeeper serves each pointer with the hash on
        // chain.
        let gk_url = net.gatekeeper_url();
        net.runtime.block_on(async {
            let by_patient = Relationships::new(net.at.relationships, net.wallet(&patient));
            let receipt =
                by_patient.accept(delegate).send().await.unwrap().get_receipt().await.unwrap();
            assert!(receipt.status());
            let client = GatekeeperClient::new(
                gk_url.clone(),
                institution.address,
                CHAIN_ID,
                patient.signer(),
            );
            for i in [0u8, 4] {
                let data = eventually(|| client.pointer(rel, i)).await;
                data.verify(on_chain.pointers[usize::from(i)].1).unwrap();
            }
        });

        // Nothing changed: nothing is sent.
        let before = net.block();
        let nothing = succeeds(
            &net.medrec(&data, &["publish", "--bounty", BOUNTY, "--json"]).output().unwrap(),
        );
        assert_eq!(nothing["changes"], json!([]));
        assert_eq!(nothing["unchanged"], 5);
        assert_eq!(net.block(), before, "no transaction when nothing changed");

        // A new lab result: publish sends one update, the patient sees an update pending.
        let lab = json!({"resourceType": "Bundle", "type": "transaction", "entry": [{
            "resource": {
                "resourceType": "Observation", "id": "new-iron", "status": "final",
                "subject": {"reference": format!("Patient/{}", record.id)},
                "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
                "code": {"coding": [{"system": "http://loinc.org", "code": "2498-4"}]},
                "valueQuantity": {"value": 91, "unit": "ug/dL", "system": "http://unitsofmeasure.org", "code": "ug/dL"},
                "effectiveDateTime": "2026-01-20"
            },
            "request": {"method": "PUT", "url": "Observation/new-iron"}
        }]});
        let lab = write_json(&net.dir.join("lab.json"), &lab);
        succeeds(&net.medrec(&data, &["import", &lab, "--json"]).output().unwrap());
        let published = succeeds(
            &net.medrec(
                &data,
                &["publish", "--bounty", BOUNTY, "--relationship", &rel.0.to_string(), "--json"],
            )
            .output()
            .unwrap(),
        );
        let changes = published["changes"].as_array().unwrap();
        assert_eq!(changes.len(), 1, "{published}");
        assert_eq!(changes[0]["pointer"], 0);
        assert_eq!(hash(&changes[0]["old_hash"]), on_chain.pointers[0].1);
        assert!(changes[0]["tx"].is_string());
        let commitment = hash(&published["bounty"]["commitment"]);
        assert_ne!(commitment, B256::ZERO);
        let summary = net.summary(patient.address);
        assert_eq!(summary[&rel].status, Some(Status::UpdatePending));
        assert_eq!(summary[&rel].pointers[0].1, hash(&changes[0]["new_hash"]));
        net.runtime.block_on(async {
            let client = GatekeeperClient::new(
                gk_url.clone(),
                institution.address,
                CHAIN_ID,
                patient.signer(),
            );
            let text = client.bounty_text(commitment).await.unwrap();
            assert_eq!(text, published["bounty"]["text"].as_str().unwrap());
            let data = eventually(|| client.pointer(rel, 0)).await;
            data.verify(hash(&changes[0]["new_hash"])).unwrap();
        });

        // Published: nothing changed any more.
        let before = net.block();
        let again = succeeds(
            &net.medrec(&data, &["publish", "--bounty", BOUNTY, "--json"]).output().unwrap(),
        );
        assert_eq!(again["changes"], json!([]));
        assert_eq!(net.block(), before);

        // A wrong passphrase is a clear error.
        let err = fails(
            &net.medrec(&data, &["publish", "--bounty", BOUNTY])
                .env(PASSPHRASE_VAR, "wrong passphrase")
                .output()
                .unwrap(),
        );
        assert!(err.contains("passphrase"), "{err}");
    }
}
