//! `medrec provider serve`: the Database Gatekeeper, serving FHIR over HTTP(S) and
//! deciding every request by the chain's consent.
//!
//! Every setting comes from a flag or its environment variable; with `--data-dir` of an
//! initialized provider, `provider.json` fills in the store, the chain and the
//! gatekeeper address that no flag sets (flags left at their defaults give way to it).

use crate::{commands::common::DEV_REGISTRAR, output};
use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use anyhow::Context;
use clap::Args;
use medrec_gatekeeper::{
    limits::{RateLimit, RateLimits},
    serve::{self, Anchoring, DEFAULT_BODY_LIMIT, ResearchSetup, ServeConfig, StoreUrl, TlsFiles},
    server::Readiness,
};
use medrec_research::policy::Policy;
use medrec_wallet::{PassphraseSource, Wallet};
use serde_json::json;

use medrec_client::provider::state::ProviderConfig;

const DEFAULT_RPC_URL: &str = "http://127.0.0.1:8545";
const DEFAULT_CHAIN_ID: u64 = 31337;
use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

/// Arguments of `medrec provider serve`; each flag can also be set by its environment
/// variable.
#[derive(Debug, Args)]
pub(super) struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; default: the host and port of the
    /// endpoint registered by `provider init`, with --data-dir, else 127.0.0.1:8080).
    #[arg(long, env = "MEDREC_LISTEN", value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// The record store: sqlite:PATH, postgres://USER:PASSWORD@HOST:PORT/DB or
    /// mysql://USER:PASSWORD@HOST:PORT/DB (default: provider.json's, with --data-dir).
    #[arg(long, env = "MEDREC_STORE", value_name = "URL")]
    store: Option<String>,
    /// JSON-RPC URL of the chain node.
    #[arg(
        long,
        env = "MEDREC_RPC_URL",
        value_name = "URL",
        default_value = DEFAULT_RPC_URL
    )]
    rpc_url: String,
    /// The Relationships contract (`medrec chain --json` prints it for the devchain;
    /// default: provider.json's, with --data-dir).
    #[arg(long, env = "MEDREC_RELATIONSHIPS", value_name = "ADDRESS")]
    relationships: Option<Address>,
    /// The block the Relationships contract was deployed in.
    #[arg(long, env = "MEDREC_FROM_BLOCK", value_name = "N", default_value_t = 0)]
    from_block: u64,
    /// Blocks kept to undo a chain reorganisation (0 for chains that never reorganise).
    #[arg(long, env = "MEDREC_REORG_DEPTH", value_name = "N", default_value_t = 64)]
    reorg_depth: u64,
    /// This gatekeeper's (the provider's) address, which signed requests name
    /// (default: provider.json's, with --data-dir).
    #[arg(long, env = "MEDREC_GATEKEEPER", value_name = "ADDRESS")]
    gatekeeper: Option<Address>,
    /// The chain id.
    #[arg(long, env = "MEDREC_CHAIN_ID", default_value_t = DEFAULT_CHAIN_ID)]
    chain_id: u64,
    /// The domain Sign-In with Ethereum messages must name (default: the address the
    /// gatekeeper listens on).
    #[arg(long, env = "MEDREC_SIWE_DOMAIN", value_name = "HOST[:PORT]")]
    siwe_domain: Option<String>,
    /// An origin whose pages may call this gatekeeper from a browser (CORS), e.g.
    /// `https://app.example`; repeat for several, `*` for any (default: none).
    #[arg(
        long = "cors-origin",
        env = "MEDREC_CORS_ORIGINS",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    cors_origins: Vec<String>,
    /// A SMART app that may be authorized here (a public client): `CLIENT_ID=REDIRECT_URI`;
    /// repeat for several clients or redirect URIs (default: none).
    #[arg(
        long = "smart-client",
        env = "MEDREC_SMART_CLIENTS",
        value_name = "ID=URI",
        value_delimiter = ','
    )]
    smart_clients: Vec<String>,
    /// Blocks the consent index may lag behind the head and still decide requests.
    #[arg(long, env = "MEDREC_MAX_LAG", value_name = "BLOCKS", default_value_t = 2)]
    max_lag: u64,
    /// Seconds the chain node may stay silent before requests fail closed (503).
    #[arg(long, env = "MEDREC_MAX_SILENCE", value_name = "SECS", default_value_t = 10)]
    max_silence: u64,
    /// How often to ask the chain node for new blocks, in milliseconds.
    #[arg(long, env = "MEDREC_POLL_MS", value_name = "MS", default_value_t = 1000)]
    poll_ms: u64,
    /// The largest request body accepted, in bytes.
    #[arg(long, env = "MEDREC_BODY_LIMIT", value_name = "BYTES", default_value_t = DEFAULT_BODY_LIMIT)]
    body_limit: usize,
    /// Requests per second per requester.
    #[arg(long, env = "MEDREC_RATE", value_name = "N", default_value_t = 20)]
    rate: u32,
    /// Requests a requester may send at once.
    #[arg(long, env = "MEDREC_BURST", value_name = "N", default_value_t = 40)]
    burst: u32,
    /// Sign-in requests (/auth/nonce, /auth/siwe) per second per IP address.
    #[arg(long, env = "MEDREC_SIGN_IN_RATE", value_name = "N", default_value_t = 5)]
    sign_in_rate: u32,
    /// Sign-in requests an IP address may send at once.
    #[arg(long, env = "MEDREC_SIGN_IN_BURST", value_name = "N", default_value_t = 20)]
    sign_in_burst: u32,
    /// No rate limits at all (benchmarks).
    #[arg(long, env = "MEDREC_NO_RATE_LIMIT")]
    no_rate_limit: bool,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(long, env = "MEDREC_TLS_CERT", value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "MEDREC_TLS_KEY", value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Keep enrollments in this JSON file across restarts (default with --data-dir:
    /// enrollments.json there).
    #[arg(long, env = "MEDREC_ENROLLMENTS", value_name = "FILE")]
    enrollments: Option<PathBuf>,
    /// Serve the provider's own database (named by --store: sqlite:, postgres:// or
    /// mysql://) read-only through this mapping file (see medrec_store::legacy); needs
    /// --access-log (default: provider.json's mapping, with --data-dir and no --store).
    #[arg(long, env = "MEDREC_LEGACY_MAPPING", value_name = "FILE")]
    legacy_mapping: Option<PathBuf>,
    /// Where the access log is kept (default: the record store's database), as a store
    /// URL.
    #[arg(long, env = "MEDREC_ACCESS_LOG", value_name = "URL")]
    access_log: Option<String>,
    /// Anchor the access log's Merkle root on chain in this AccessAnchors contract
    /// (`medrec chain --json` prints it), signed with the provider's key: from the
    /// wallet in --data-dir (its passphrase read with --passphrase-env or
    /// --passphrase-file), or else from the environment variable MEDREC_PROVIDER_KEY
    /// (0x + 64 hex digits).
    #[arg(long, env = "MEDREC_ANCHORS", value_name = "ADDRESS")]
    anchors: Option<Address>,
    /// Seconds between two anchors of the access log (one transaction each at most).
    #[arg(long, env = "MEDREC_ANCHOR_PERIOD", value_name = "SECS", default_value_t = 60)]
    anchor_period: u64,
    /// Serve research bounties, keeping published bounty texts, answers and each
    /// researcher's ε budget in this SQLite file.
    #[arg(long, env = "MEDREC_RESEARCH_LEDGER", value_name = "FILE")]
    research_ledger: Option<PathBuf>,
    /// The research policy (JSON, see medrec_research::policy) for --research-ledger
    /// (default: k = 10, ε 0.5 per bounty, a budget of 5 per researcher, sensitive
    /// categories excluded).
    #[arg(long, env = "MEDREC_RESEARCH_POLICY", value_name = "FILE", requires = "research_ledger")]
    research_policy: Option<PathBuf>,
    /// The Registrar contract: which research entities are admitted, and the groups a
    /// patient grants like one viewer (emergency groups break the glass).
    #[arg(long, env = "MEDREC_REGISTRAR", value_name = "ADDRESS", default_value_t = DEV_REGISTRAR)]
    registrar: Address,
    /// An initialized provider's data directory (`medrec provider init`): its
    /// provider.json gives the store, chain (node, Relationships contract, deployment
    /// block, chain id) and gatekeeper address that no flag sets.
    #[arg(long, env = "MEDREC_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Read the wallet passphrase (for the anchoring key) from this environment variable.
    #[arg(long, value_name = "VAR", conflicts_with = "passphrase_file", requires = "data_dir")]
    passphrase_env: Option<String>,
    /// Read the wallet passphrase (for the anchoring key) from the first line of this file.
    #[arg(long, value_name = "FILE", requires = "data_dir")]
    passphrase_file: Option<PathBuf>,
    /// Print one JSON object (URL, chain id, contract, gatekeeper) once serving.
    #[arg(long)]
    json: bool,
}

impl ServeArgs {
    /// The provider's key for anchoring: the wallet's in --data-dir when a passphrase
    /// source is given, else MEDREC_PROVIDER_KEY.
    fn anchoring_key(&self) -> anyhow::Result<PrivateKeySigner> {
        let source = match (&self.passphrase_env, &self.passphrase_file) {
            (Some(var), _) => Some(PassphraseSource::Env(var.clone())),
            (None, Some(file)) => Some(PassphraseSource::File(file.clone())),
            (None, None) => None,
        };
        if let (Some(dir), Some(source)) = (&self.data_dir, source) {
            let passphrase =
                source.read("Wallet passphrase: ").context("cannot read the wallet passphrase")?;
            let wallet = Wallet::open(dir, &passphrase).with_context(|| {
                format!("cannot open the provider's wallet in {}", dir.display())
            })?;
            return Ok(wallet.account().clone());
        }
        let key = std::env::var("MEDREC_PROVIDER_KEY").map_err(|_| {
            anyhow::anyhow!(
                "--anchors needs the provider's key: --data-dir with --passphrase-env or --passphrase-file, or the environment variable MEDREC_PROVIDER_KEY (0x + 64 hex digits)"
            )
        })?;
        key.trim().parse().map_err(|_| {
            anyhow::anyhow!("MEDREC_PROVIDER_KEY is not a private key (0x + 64 hex digits)")
        })
    }

    fn config(&self) -> anyhow::Result<ServeConfig> {
        let saved = self.data_dir.as_deref().map(ProviderConfig::load).transpose()?;
        let needed = |flag: &str, what: &str| {
            format!(
                "{flag} is needed: {what} (or --data-dir of a provider set up with `medrec provider init`)"
            )
        };
        let store: StoreUrl = match (&self.store, &saved) {
            (Some(s), _) => s.parse()?,
            (None, Some(c)) => c.store.parse()?,
            (None, None) => anyhow::bail!(needed("--store", "the record store URL")),
        };
        let relationships = self
            .relationships
            .or(saved.as_ref().map(|c| c.chain.relationships))
            .with_context(|| needed("--relationships", "the Relationships contract"))?;
        let gatekeeper = self
            .gatekeeper
            .or(saved.as_ref().map(|c| c.address))
            .with_context(|| needed("--gatekeeper", "the provider's address"))?;
        // Flags left at their defaults give way to provider.json.
        let (rpc_url, chain_id, from_block) = match &saved {
            Some(c) => (
                if self.rpc_url == DEFAULT_RPC_URL {
                    c.chain.rpc_url.clone()
                } else {
                    self.rpc_url.clone()
                },
                if self.chain_id == DEFAULT_CHAIN_ID { c.chain.chain_id } else { self.chain_id },
                if self.from_block == 0 { c.chain.from_block } else { self.from_block },
            ),
            None => (self.rpc_url.clone(), self.chain_id, self.from_block),
        };
        let limit = |what: &str, rate, burst| {
            RateLimit::new(rate, burst).with_context(|| {
                format!(
                    "the {what} rate limit needs a rate and a burst above 0 (use --no-rate-limit to switch limits off)"
                )
            })
        };
        let limits = if self.no_rate_limit {
            RateLimits::off()
        } else {
            RateLimits {
                requester: Some(limit("requester", self.rate, self.burst)?),
                sign_in: Some(limit("sign-in", self.sign_in_rate, self.sign_in_burst)?),
                ..RateLimits::default()
            }
        };
        anyhow::ensure!(self.poll_ms > 0, "--poll-ms must be above 0");
        let listen = match (self.listen, &saved) {
            (Some(listen), _) => listen,
            (None, Some(c)) => listen_of(&c.endpoint)?,
            (None, None) => SocketAddr::from(([127, 0, 0, 1], 8080)),
        };
        let mut config =
            ServeConfig::new(listen, store, rpc_url, relationships, gatekeeper, chain_id);
        config.siwe_domain.clone_from(&self.siwe_domain);
        config.cors_origins.clone_from(&self.cors_origins);
        config.smart_clients.clone_from(&self.smart_clients);
        config.registrar = Some(match &saved {
            Some(c) if self.registrar == DEV_REGISTRAR => c.chain.registrar,
            _ => self.registrar,
        });
        config.from_block = from_block;
        config.reorg_depth = self.reorg_depth;
        config.readiness =
            Readiness { max_lag: self.max_lag, max_silence: Duration::from_secs(self.max_silence) };
        config.poll = Duration::from_millis(self.poll_ms);
        config.body_limit = self.body_limit;
        config.limits = limits;
        config.tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert: cert.clone(), key: key.clone() }),
            _ => None,
        };
        // Nothing users rely on is lost across a restart: with a data directory the
        // enrollments live there unless a file is named.
        config.enrollments = self
            .enrollments
            .clone()
            .or_else(|| self.data_dir.as_ref().map(|d| d.join(ENROLLMENTS_FILE)));
        // provider.json's mapping goes with provider.json's store.
        config.legacy = match (&self.legacy_mapping, &self.store, &saved, &self.data_dir) {
            (Some(mapping), _, _, _) => Some(mapping.clone()),
            (None, None, Some(c), Some(dir)) => c.legacy_mapping(dir),
            _ => None,
        };
        config.access_log = self.access_log.as_deref().map(str::parse).transpose()?;
        if let Some(anchors) = self.anchors {
            anyhow::ensure!(self.anchor_period > 0, "--anchor-period must be above 0");
            let signer = self.anchoring_key()?;
            config.anchoring = Some(Anchoring {
                anchors,
                period: Duration::from_secs(self.anchor_period),
                signer,
            });
        }
        if let Some(ledger) = &self.research_ledger {
            let policy = match &self.research_policy {
                Some(path) => Policy::load(path).with_context(|| {
                    format!("the research policy {} is not usable", path.display())
                })?,
                None => Policy::default(),
            };
            config.research =
                Some(ResearchSetup { registrar: self.registrar, policy, ledger: ledger.clone() });
        }
        Ok(config)
    }
}

/// Where a provider's data directory keeps the gatekeeper's enrollments.
pub(crate) const ENROLLMENTS_FILE: &str = "enrollments.json";

/// The address to listen on for the endpoint `provider init` registered: its port, on
/// the loopback interface when its host is `localhost` or a loopback address, else on
/// every interface.
fn listen_of(endpoint: &str) -> anyhow::Result<SocketAddr> {
    let rest = endpoint.split_once("://").map_or(endpoint, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, port.parse::<u16>().ok()),
        _ => (authority, None),
    };
    let port = port.unwrap_or(if endpoint.starts_with("https://") { 443 } else { 80 });
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback =
        host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback());
    anyhow::ensure!(
        !host.is_empty(),
        "the registered endpoint '{endpoint}' names no host: give --listen"
    );
    Ok(if loopback {
        SocketAddr::from(([127, 0, 0, 1], port))
    } else {
        SocketAddr::from(([0, 0, 0, 0], port))
    })
}

/// Runs `medrec provider serve`.
pub(super) fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    let config = args.config()?;
    // Held until the process ends: the log writer's thread flushes on drop.
    let _logs = init_logs();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(serve_until_stopped(config, args.json))
}

async fn serve_until_stopped(config: ServeConfig, json: bool) -> anyhow::Result<ExitCode> {
    let (chain_id, relationships, gatekeeper) =
        (config.chain_id, config.relationships, config.gatekeeper);
    let running = serve::spawn(config).await.context("the gatekeeper could not start")?;
    // Listen for Ctrl-C and SIGTERM before saying that the gatekeeper is serving.
    let shutdown = crate::signals::Shutdown::install().context("cannot listen for Ctrl-C")?;
    if json {
        let value = json!({
            "url": running.url(),
            "listen": running.local_addr(),
            "tls": running.is_tls(),
            "chain_id": chain_id,
            "relationships": relationships,
            "gatekeeper": gatekeeper,
        });
        output::result(&value.to_string());
    } else {
        output::result(&running.url());
        output::note("serving; press Ctrl-C to stop");
    }
    shutdown.wait().await;
    output::note("stopping: finishing requests in flight");
    running.shutdown().await.context("the gatekeeper failed while stopping")?;
    output::note("stopped");
    Ok(ExitCode::SUCCESS)
}

/// Logs to stderr, `info` and above unless `RUST_LOG` says otherwise, through a
/// writer thread so that no request waits for stderr (lines are dropped, and counted by
/// the writer, rather than block when stderr cannot keep up).
fn init_logs() -> tracing_appender::non_blocking::WorkerGuard {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false)
        .try_init();
    guard
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_registered_endpoint_says_where_to_listen() {
        let at = |e: &str| listen_of(e).unwrap().to_string();
        assert_eq!(at("http://127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(at("http://localhost:9000/fhir"), "127.0.0.1:9000");
        assert_eq!(at("https://gk.riverside.example"), "0.0.0.0:443");
        assert_eq!(at("http://gk.riverside.example:8081/"), "0.0.0.0:8081");
        assert!(listen_of("http://").is_err());
    }
}
