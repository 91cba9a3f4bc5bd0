//! `medrec bench gatekeeper`: authorized FHIR reads per second through the whole
//! gatekeeper, over loopback, with the load generator in the same process.
//!
//! The scenario, set up before anything is timed: a devchain in process with the
//! MedRec contracts and a registered provider; `patients` patients, each with a
//! relationship the provider created (pointer 0 = `Observation?category=laboratory`)
//! and the patient accepted; a follower keeping the consent index current; a SQLite
//! record store in a temporary file holding each patient and `records` Observations of
//! 1–3 KiB; a SQLite access log file per mode (logging on, as in production); the
//! gatekeeper on `127.0.0.1:0`.
//!
//! Each connection belongs to one patient and reads random Observations of that
//! patient (`GET /fhir/Observation/{id}`), as that patient:
//!
//! - `bearer`: the patient signed in once with Sign-In with Ethereum (a message signed
//!   here and handed to the gatekeeper's authenticator) and sends the bearer token.
//! - `off`: the same server built with authorization switched off (the baseline), the
//!   same requests without credentials.
//! - `smart` (with `--smart`, right after `bearer`): the patient's SMART app launched
//!   once, standalone, over HTTP (`GET /authorize`, the sign-in message signed here,
//!   `POST /authorize`, `POST /token` with PKCE; scope `launch/patient
//!   patient/Observation.rs`), and the access token sent as the bearer token: the same
//!   reads as `bearer`, through the same lookup plus the grant's narrowing.
//! - `signed`: a fresh EIP-712 signature and nonce on every request. Signing is the
//!   client's work, so the requests are signed before the timed window (on all cores);
//!   they carry the time they were signed at, so the whole run must fit in the
//!   verifier's 30 s window, which is checked.
//!
//! The server runs on a tokio runtime of its own (threads `gk-server`, as many as
//! CPUs), the load generator on another (threads `gk-load`), so the CPU each used in
//! the window is reported apart. With `--wrk` the same server is also measured from
//! outside the process (the `wrk` module): `/healthz` against bearer reads, and a
//! reader beside a flood of strangers' requests.

mod data;
mod wrk;

use alloy::{
    primitives::{Address, keccak256},
    signers::{SignerSync, local::PrivateKeySigner},
};
use anyhow::{Context, bail, ensure};
use axum::http::{HeaderName, HeaderValue, header};
use medrec_chain::{
    consent::ConsentIndex,
    follower::{FollowConfig, Follower},
};
use medrec_client::{ChainSpec, provider::registration::register_provider};
use medrec_devchain::{
    chain::{Chain, ChainConfig},
    genesis::{DevAccount, dev_accounts},
    node::{Node, SealMode},
};
use medrec_gatekeeper::{
    auth::{
        AuthState, Request, RequestVerifier, SiweAuthenticator, SiweConfig, random_nonce,
        sign_request, unix_now,
    },
    bench::{
        LoadConfig, LoadReport, ProcessStats, RequestSource, RequestSpec, run_load, smart_launch,
    },
    limits::RateLimits,
    pointer::PointerSpec,
    server::{Enrollment, Gatekeeper, Readiness},
    smart::SmartClients,
};
use medrec_primitives::RelationshipId;
use medrec_store::{
    RecordStore,
    audit::{AccessLog, WriterConfig, sqlite::SqliteAccessLog},
    fhir::Resource,
    sqlite::SqliteStore,
};
use serde_json::{Value, json};
use std::{
    collections::BTreeMap,
    path::PathBuf,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

/// How the requests authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Mode {
    /// Bearer tokens from Sign-In with Ethereum.
    Bearer,
    /// Authorization switched off (the baseline).
    Off,
    /// A fresh EIP-712 signature on every request.
    Signed,
    /// Each of the three in turn, against the same data.
    All,
    /// Bearer tokens from a SMART standalone launch (with `--smart`).
    #[value(skip)]
    Smart,
}

impl Mode {
    const fn name(self) -> &'static str {
        match self {
            Self::Bearer => "bearer",
            Self::Off => "off",
            Self::Signed => "signed",
            Self::All => "all",
            Self::Smart => "smart",
        }
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// The mode, or all of them.
    pub(crate) mode: Mode,
    /// The measured window per mode, seconds.
    pub(crate) seconds: u64,
    /// Warm-up per mode, seconds.
    pub(crate) warmup: u64,
    /// Keep-alive connections.
    pub(crate) connections: usize,
    /// Threads of the load generator's runtime.
    pub(crate) client_threads: usize,
    /// Patients (each with a relationship).
    pub(crate) patients: usize,
    /// Observations per patient.
    pub(crate) records: usize,
    /// Signed mode: requests signed beforehand, per second of warm-up and window.
    pub(crate) signed_rate: u64,
    /// Also measure from outside the process with wrk (see the `wrk` module).
    pub(crate) wrk: bool,
    /// Also read with SMART access tokens (mode `smart`, after `bearer`; with `wrk`,
    /// there too).
    pub(crate) smart: bool,
}

/// The gatekeeper's address in the EIP-712 domain of signed requests.
use data::{XorShift, observation, rfc3339};

const GATEKEEPER: Address = Address::repeat_byte(0x6c);
/// The domain sign-in messages name.
const DOMAIN: &str = "gk.bench.example";
/// The chain id of the devchain.
const CHAIN_ID: u64 = 31337;
/// The pointer every patient's relationship carries: their laboratory results.
const LABS: &str = "Observation?category=laboratory";
/// Dev accounts: 0 the institution, 1 the provider, 2 the delegate of every
/// relationship, 3… the patients.
const PROVIDER: usize = 1;
const DELEGATE: usize = 2;
const FIRST_PATIENT: usize = 3;
/// How long a signed request is accepted after the time it carries (the verifier's
/// default skew), less a margin.
const SIGNED_WINDOW: Duration = Duration::from_secs(28);
/// The SMART app of `--smart`, registered with every gatekeeper of the run.
const SMART_CLIENT: &str = "bench-app";
const SMART_REDIRECT: &str = "http://127.0.0.1/callback";
/// What the patient's app asks for: their records' Observations.
const SMART_SCOPE: &str = "launch/patient patient/Observation.rs";

/// Everything the modes share: the chain, the store, the consent index.
struct Scenario {
    _node: Node,
    provider: Address,
    patients: Vec<Patient>,
    relationships: Vec<(RelationshipId, Enrollment)>,
    store: Arc<dyn RecordStore>,
    index: Arc<RwLock<ConsentIndex>>,
    health: tokio::sync::watch::Receiver<medrec_chain::follower::Health>,
    mean_resource_bytes: f64,
    max_resource_bytes: usize,
    dir: PathBuf,
}

struct Patient {
    account: DevAccount,
    observations: Vec<String>,
}

/// Runs the benchmark and returns its report (without the machine).
pub(crate) fn measure(opts: &Options) -> anyhow::Result<Value> {
    ensure!(opts.seconds > 0, "--seconds must be at least 1");
    ensure!(opts.connections > 0, "--connections must be at least 1");
    ensure!(opts.patients > 0 && opts.records > 0, "--patients and --records must be at least 1");
    ensure!(opts.client_threads > 0, "--client-threads must be at least 1");
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cpus)
        .thread_name("gk-server")
        .enable_all()
        .build()?;
    let client = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.client_threads)
        .thread_name("gk-load")
        .enable_all()
        .build()?;
    let dir = std::env::temp_dir().join(format!("medrec-bench-gatekeeper-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    let result = (|| {
        let setup = Instant::now();
        let scenario = server.block_on(Scenario::new(opts, dir.clone()))?;
        crate::output::note(&format!(
            "set up {} patients × {} Observations in {:.1} s",
            opts.patients,
            opts.records,
            setup.elapsed().as_secs_f64()
        ));
        let before_load = ProcessStats::now();
        let mut modes: Vec<Mode> = match opts.mode {
            Mode::All => vec![Mode::Bearer, Mode::Off, Mode::Signed],
            one => vec![one],
        };
        if opts.smart {
            let at = modes.iter().position(|m| *m == Mode::Bearer).map_or(modes.len(), |i| i + 1);
            modes.insert(at, Mode::Smart);
        }
        let mut results = BTreeMap::new();
        for &mode in &modes {
            crate::output::note(&format!(
                "{}: {} connections, {} s warm-up, {} s measured",
                mode.name(),
                opts.connections,
                opts.warmup,
                opts.seconds
            ));
            let value = scenario.run_mode(&server, &client, opts, mode)?;
            results.insert(mode.name(), value);
        }
        let external = if opts.wrk { Some(wrk::measure(&scenario, &server, opts)?) } else { None };
        let after = ProcessStats::now();
        let per_sec = |m: &str| results.get(m).and_then(|v: &Value| v["per_sec"].as_f64());
        let ratio = per_sec("bearer").zip(per_sec("off")).map(|(b, o)| b / o);
        Ok(json!({
            "scenario": {
                "patients": opts.patients,
                "observations_per_patient": opts.records,
                "mean_resource_bytes": scenario.mean_resource_bytes.round(),
                "max_resource_bytes": scenario.max_resource_bytes,
                "request": "GET /fhir/Observation/{random id of the connection's patient}",
                "store": "SQLite file (WAL)",
                "access_log": "SQLite file, batching writer (default WriterConfig)",
                "connections": opts.connections,
                "client_threads": opts.client_threads,
                "server_threads": cpus,
                "warmup_seconds": opts.warmup,
                "seconds": opts.seconds,
            },
            "modes": results,
            "bearer_over_off": ratio,
            "signed_over_bearer": per_sec("signed").zip(per_sec("bearer")).map(|(s, b)| s / b),
            "smart_over_bearer": per_sec("smart").zip(per_sec("bearer")).map(|(s, b)| s / b),
            "external": external,
            "memory": {
                "rss_before_load_kib": before_load.rss_kib,
                "rss_after_kib": after.rss_kib,
                "peak_rss_kib": after.peak_rss_kib,
                "note": "the whole process: gatekeeper, load generator, devchain and setup",
            },
        }))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

impl Scenario {
    async fn new(opts: &Options, dir: PathBuf) -> anyhow::Result<Self> {
        let accounts = u32::try_from(FIRST_PATIENT + opts.patients).context("too many patients")?;
        let config = ChainConfig { dev_accounts: accounts, ..ChainConfig::default() };
        ensure!(config.chain_id == CHAIN_ID, "the devchain's chain id changed");
        let node = Node::new(Chain::new(config)?, SealMode::Instant);
        let at = node.with(Chain::deployment).context("the devchain has no MedRec contracts")?;
        let a = dev_accounts(accounts);
        let spec = ChainSpec {
            rpc_url: "in-process".to_owned(),
            registrar: at.registrar,
            relationships: at.relationships,
            anchors: at.anchors,
            from_block: 0,
        };
        let chain = medrec_client::Chain::over(node.rpc_client(), spec).await?;
        let (provider, delegate) = (a[PROVIDER].address, a[DELEGATE].address);
        register_provider(&chain, &a[0].signer(), provider, "bench", "https://gk", keccak256("k"))
            .await?;

        let store = Arc::new(SqliteStore::open(dir.join("records.sqlite"))?);
        let labs = PointerSpec::salted(LABS);
        let query = labs.parse()?;
        let (mut patients, mut relationships) = (Vec::new(), Vec::new());
        let (mut total_bytes, mut count, mut max_bytes) = (0usize, 0usize, 0usize);
        for p in 0..opts.patients {
            let account = a[FIRST_PATIENT + p].clone();
            let pid = format!("p{p}");
            let mut resources = vec![Resource::parse(json!({
                "resourceType": "Patient", "id": pid, "gender": "female", "birthDate": "1970-01-01"
            }))?];
            let mut observations = Vec::with_capacity(opts.records);
            for r in 0..opts.records {
                let json = observation(&pid, p, r);
                let len = json.to_string().len();
                (total_bytes, count, max_bytes) =
                    (total_bytes + len, count + 1, max_bytes.max(len));
                observations.push(json["id"].as_str().unwrap_or_default().to_owned());
                resources.push(Resource::parse(json)?);
            }
            store.update_all(resources).await?;
            let patient_id = pid.parse()?;
            // The provider's offer, taken by the patient: created accepted.
            crate::commands::relate::offered_and_taken(
                &chain,
                &a[PROVIDER].signer(),
                &account.signer(),
                store.as_ref(),
                delegate,
                &patient_id,
                &labs,
            )
            .await?;
            relationships.push((
                RelationshipId::derive(account.address, delegate),
                Enrollment { patient: patient_id, pointers: vec![query.clone()], offer: None },
            ));
            patients.push(Patient { account, observations });
        }
        ensure!(max_bytes < 4096, "an Observation is {max_bytes} bytes, over 4 KiB");

        let index = Arc::new(RwLock::new(ConsentIndex::new(0)));
        let mut follower = Follower::new(
            chain.reader().clone(),
            FollowConfig { reorg_depth: 0, ..FollowConfig::new(at.relationships, 0) },
            index.clone(),
        );
        follower.step().await?;
        let (health_tx, health) = tokio::sync::watch::channel(follower.health());
        tokio::spawn(follower.run(Duration::from_millis(500), health_tx));
        Ok(Self {
            _node: node,
            provider,
            patients,
            relationships,
            store,
            index,
            health,
            mean_resource_bytes: total_bytes as f64 / count as f64,
            max_resource_bytes: max_bytes,
            dir,
        })
    }

    /// A gatekeeper for `mode` with a fresh access log and `limits`, serving on
    /// loopback (with each connection's peer address, for the per-source limits).
    fn serve(
        &self,
        server: &tokio::runtime::Runtime,
        mode: Mode,
        limits: RateLimits,
        log_name: &str,
    ) -> anyhow::Result<(Gatekeeper, Arc<dyn AccessLog>, std::net::SocketAddr)> {
        let _runtime = server.enter();
        let auth = AuthState::with_rate_limits(
            RequestVerifier::new(CHAIN_ID, GATEKEEPER),
            SiweAuthenticator::new(SiweConfig::new(DOMAIN.parse()?, CHAIN_ID)),
            medrec_gatekeeper::auth::Clock::system(),
            limits,
        );
        let path = self.dir.join(format!("access-{log_name}.sqlite"));
        let log: Arc<dyn AccessLog> = Arc::new(SqliteAccessLog::open(&path)?);
        let mut gk = Gatekeeper::new(
            Arc::clone(&self.store),
            Arc::clone(&self.index),
            self.health.clone(),
            Readiness::default(),
            auth,
        )
        .with_provider(self.provider)
        .with_smart_clients(SmartClients::parse(&[format!("{SMART_CLIENT}={SMART_REDIRECT}")])?)
        .with_access_log(Arc::clone(&log), WriterConfig::default());
        if mode == Mode::Off {
            gk = gk.with_authorization_off_for_benchmarks();
        }
        for (id, enrollment) in &self.relationships {
            gk.enroll(*id, enrollment.clone())?;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let listener = tokio::net::TcpListener::from_std(listener)?;
        let app = gk.router().into_make_service_with_connect_info::<std::net::SocketAddr>();
        server.spawn(async move { axum::serve(listener, app).await });
        Ok((gk, log, addr))
    }

    fn run_mode(
        &self,
        server: &tokio::runtime::Runtime,
        client: &tokio::runtime::Runtime,
        opts: &Options,
        mode: Mode,
    ) -> anyhow::Result<Value> {
        let (gk, log, addr) = self.serve(server, mode, RateLimits::off(), mode.name())?;
        let config = LoadConfig {
            warmup: Duration::from_secs(opts.warmup),
            duration: Duration::from_secs(opts.seconds),
        };
        let mut signing = None;
        let sources: Vec<RequestSource> = match mode {
            Mode::Off => (0..opts.connections).map(|c| self.random_reads(c, Vec::new())).collect(),
            Mode::Bearer | Mode::Smart => {
                let tokens = if mode == Mode::Smart {
                    self.smart_tokens(client, addr)?
                } else {
                    self.patients
                        .iter()
                        .map(|p| sign_in(&gk, &p.account.signer()))
                        .collect::<anyhow::Result<Vec<_>>>()?
                };
                (0..opts.connections)
                    .map(|c| {
                        let token = tokens[c % tokens.len()].clone();
                        self.random_reads(c, vec![(header::AUTHORIZATION, token)])
                    })
                    .collect()
            }
            Mode::Signed | Mode::All => {
                let total = opts.signed_rate.saturating_mul(opts.warmup + opts.seconds);
                let per_connection = usize::try_from(total.div_ceil(opts.connections as u64))?;
                let started = Instant::now();
                let signed = self.presign(opts.connections, per_connection)?;
                let took = started.elapsed();
                signing = Some(json!({
                    "presigned": per_connection * opts.connections,
                    "seconds": (took.as_secs_f64() * 100.0).round() / 100.0,
                    "per_sec": ((per_connection * opts.connections) as f64 / took.as_secs_f64()).round(),
                }));
                if took + config.warmup + config.duration > SIGNED_WINDOW {
                    bail!(
                        "signing {} requests took {:.1} s: with {} s of warm-up and {} s measured, \
                         the last ones would be older than the verifier's 30 s window; use fewer \
                         --seconds or a lower --signed-rate",
                        per_connection * opts.connections,
                        took.as_secs_f64(),
                        opts.warmup,
                        opts.seconds
                    );
                }
                signed
                    .into_iter()
                    .map(|list| {
                        let mut list = list.into_iter();
                        Box::new(move || list.next()) as RequestSource
                    })
                    .collect()
            }
        };
        let before = ProcessStats::now();
        let report: LoadReport = client.block_on(run_load(addr, config, sources))?;
        let after = ProcessStats::now();
        server.block_on(gk.flush_access_log());
        let logged = server.block_on(log.head())?.size;
        let cpu = after.cpu_since(&before);
        let busy: f64 = cpu.values().sum();
        let total_cpu = config.duration.as_secs_f64() + config.warmup.as_secs_f64();
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let mut value = serde_json::to_value(&report)?;
        // Valid: every answer 200, no connection ran dry, every request in the access log.
        value["valid"] = json!(
            report.errors == 0 && report.exhausted_connections == 0 && logged == report.sent_total
        );
        value["access_log_entries"] = json!(logged);
        value["cpu_seconds_by_thread"] = json!(cpu);
        value["cpu_busy_fraction"] =
            json!((busy / (total_cpu * cpus as f64) * 1000.0).round() / 1000.0);
        value["peak_rss_kib"] = json!(after.peak_rss_kib);
        value["rss_after_kib"] = json!(after.rss_kib);
        if let Some(s) = signing {
            value["signing"] = s;
        }
        Ok(value)
    }

    /// Each patient's SMART access token, from a standalone launch over HTTP against the
    /// gatekeeper at `addr` (see the module documentation): `Bearer <token>`.
    fn smart_tokens(
        &self,
        client: &tokio::runtime::Runtime,
        addr: std::net::SocketAddr,
    ) -> anyhow::Result<Vec<HeaderValue>> {
        self.patients
            .iter()
            .map(|p| {
                let signer = p.account.signer();
                let sign =
                    |message: &[u8]| signer.sign_message_sync(message).ok().map(|s| s.to_string());
                let token = client.block_on(smart_launch(
                    addr,
                    SMART_CLIENT,
                    SMART_REDIRECT,
                    SMART_SCOPE,
                    signer.address(),
                    &sign,
                ))?;
                Ok(HeaderValue::from_str(&format!("Bearer {token}"))?)
            })
            .collect()
    }

    /// Requests for random Observations of connection `c`'s patient, with `headers`.
    fn random_reads(&self, c: usize, headers: Vec<(HeaderName, HeaderValue)>) -> RequestSource {
        let ids: Vec<String> = self.patients[c % self.patients.len()]
            .observations
            .iter()
            .map(|id| format!("/fhir/Observation/{id}"))
            .collect();
        let mut rng = XorShift::new(c as u64);
        Box::new(move || {
            let path = ids[rng.below(ids.len())].clone();
            Some(RequestSpec { path, headers: headers.clone() })
        })
    }

    /// `per_connection` signed requests for each of `connections`, signed on all cores.
    fn presign(
        &self,
        connections: usize,
        per_connection: usize,
    ) -> anyhow::Result<Vec<Vec<RequestSpec>>> {
        let now = unix_now();
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        let sign_one = |c: usize| -> anyhow::Result<Vec<RequestSpec>> {
            let patient = &self.patients[c % self.patients.len()];
            let signer = patient.account.signer();
            let mut rng = XorShift::new(c as u64);
            (0..per_connection)
                .map(|_| {
                    let id = &patient.observations[rng.below(patient.observations.len())];
                    let path = format!("/fhir/Observation/{id}");
                    let request = Request::new("GET", &path, b"", now, random_nonce()?, GATEKEEPER);
                    let headers = sign_request(&signer, CHAIN_ID, &request)?;
                    Ok(RequestSpec {
                        path,
                        headers: headers.into_iter().filter_map(|(n, v)| Some((n?, v))).collect(),
                    })
                })
                .collect()
        };
        let mut out: Vec<Option<anyhow::Result<Vec<RequestSpec>>>> =
            (0..connections).map(|_| None).collect();
        std::thread::scope(|s| {
            let chunks: Vec<_> = out
                .chunks_mut(connections.div_ceil(threads))
                .enumerate()
                .map(|(t, chunk)| {
                    let first = t * connections.div_ceil(threads);
                    let sign_one = &sign_one;
                    s.spawn(move || {
                        for (i, slot) in chunk.iter_mut().enumerate() {
                            *slot = Some(sign_one(first + i));
                        }
                    })
                })
                .collect();
            for handle in chunks {
                handle.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
            }
        });
        out.into_iter().map(|r| r.context("a connection was not signed for")?).collect()
    }
}

/// Signs `signer` in with Sign-In with Ethereum through the gatekeeper's authenticator,
/// as `POST /auth/siwe` does: `Bearer <token>`.
fn sign_in(gk: &Gatekeeper, signer: &PrivateKeySigner) -> anyhow::Result<HeaderValue> {
    let auth: AuthState = axum::extract::FromRef::from_ref(gk);
    let now = auth.clock().now();
    let nonce = auth.siwe().issue_nonce(now)?;
    let text = format!(
        "{DOMAIN} wants you to sign in with your Ethereum account:\n{address}\n\n\
         Sign in to the MedRec gatekeeper to read your records.\n\n\
         URI: https://{DOMAIN}/auth/siwe\nVersion: 1\nChain ID: {CHAIN_ID}\nNonce: {nonce}\n\
         Issued At: {issued}",
        address = signer.address().to_checksum(None),
        issued = rfc3339(now),
    );
    let signature = signer.sign_message_sync(text.as_bytes())?;
    let token = auth.siwe().sign_in(&text, &signature.to_string(), now)?;
    Ok(HeaderValue::from_str(&format!("Bearer {}", token.access_token()))?)
}
