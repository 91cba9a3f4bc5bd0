//! `medrec provider`: what a provider runs (today: `serve`, the Database Gatekeeper).

use crate::output;
use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use anyhow::Context;
use clap::{Args, Subcommand};
use medrec_gatekeeper::{
    limits::{RateLimit, RateLimits},
    serve::{self, Anchoring, DEFAULT_BODY_LIMIT, ServeConfig, StoreUrl, TlsFiles},
    server::Readiness,
};
use serde_json::json;
use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

/// Arguments of `medrec provider`.
#[derive(Debug, Args)]
pub(crate) struct ProviderArgs {
    #[command(subcommand)]
    what: Provider,
}

#[derive(Debug, Subcommand)]
enum Provider {
    /// Serve the Database Gatekeeper: FHIR over HTTP(S), decided by the chain's consent.
    Serve(Box<ServeArgs>),
}

/// Arguments of `medrec provider serve`; each flag can also be set by its environment
/// variable.
#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "MEDREC_LISTEN", value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// The record store: sqlite:PATH, postgres://USER:PASSWORD@HOST:PORT/DB or
    /// mysql://USER:PASSWORD@HOST:PORT/DB.
    #[arg(long, env = "MEDREC_STORE", value_name = "URL")]
    store: String,
    /// JSON-RPC URL of the chain node.
    #[arg(
        long,
        env = "MEDREC_RPC_URL",
        value_name = "URL",
        default_value = "http://127.0.0.1:8545"
    )]
    rpc_url: String,
    /// The Relationships contract (`medrec chain --json` prints it for the devchain).
    #[arg(long, env = "MEDREC_RELATIONSHIPS", value_name = "ADDRESS")]
    relationships: Address,
    /// The block the Relationships contract was deployed in.
    #[arg(long, env = "MEDREC_FROM_BLOCK", value_name = "N", default_value_t = 0)]
    from_block: u64,
    /// Blocks kept to undo a chain reorganisation (0 for chains that never reorganise).
    #[arg(long, env = "MEDREC_REORG_DEPTH", value_name = "N", default_value_t = 64)]
    reorg_depth: u64,
    /// This gatekeeper's (the provider's) address, which signed requests name.
    #[arg(long, env = "MEDREC_GATEKEEPER", value_name = "ADDRESS")]
    gatekeeper: Address,
    /// The chain id.
    #[arg(long, env = "MEDREC_CHAIN_ID", default_value_t = 31337)]
    chain_id: u64,
    /// The domain Sign-In with Ethereum messages must name (default: the address the
    /// gatekeeper listens on).
    #[arg(long, env = "MEDREC_SIWE_DOMAIN", value_name = "HOST[:PORT]")]
    siwe_domain: Option<String>,
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
    /// Keep enrollments in this JSON file across restarts.
    #[arg(long, env = "MEDREC_ENROLLMENTS", value_name = "FILE")]
    enrollments: Option<PathBuf>,
    /// Serve the provider's own database (named by --store, sqlite: or mysql://)
    /// read-only through this mapping file (see medrec_store::legacy); needs
    /// --access-log.
    #[arg(long, env = "MEDREC_LEGACY_MAPPING", value_name = "FILE")]
    legacy_mapping: Option<PathBuf>,
    /// Where the access log is kept (default: the record store's database), as a store
    /// URL.
    #[arg(long, env = "MEDREC_ACCESS_LOG", value_name = "URL")]
    access_log: Option<String>,
    /// Anchor the access log's head on chain in this AccessAnchors contract
    /// (`medrec chain --json` prints it), signed with the provider's key from the
    /// environment variable MEDREC_PROVIDER_KEY (0x + 64 hex digits).
    #[arg(long, env = "MEDREC_ANCHORS", value_name = "ADDRESS")]
    anchors: Option<Address>,
    /// Seconds between two anchors of the access log (one transaction each at most).
    #[arg(long, env = "MEDREC_ANCHOR_PERIOD", value_name = "SECS", default_value_t = 60)]
    anchor_period: u64,
    /// Print one JSON object (URL, chain id, contract, gatekeeper) once serving.
    #[arg(long)]
    json: bool,
}

impl ServeArgs {
    fn config(&self) -> anyhow::Result<ServeConfig> {
        let store: StoreUrl = self.store.parse()?;
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
            }
        };
        anyhow::ensure!(self.poll_ms > 0, "--poll-ms must be above 0");
        let mut config = ServeConfig::new(
            self.listen,
            store,
            self.rpc_url.clone(),
            self.relationships,
            self.gatekeeper,
            self.chain_id,
        );
        config.siwe_domain.clone_from(&self.siwe_domain);
        config.from_block = self.from_block;
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
        config.enrollments.clone_from(&self.enrollments);
        config.legacy.clone_from(&self.legacy_mapping);
        config.access_log = self.access_log.as_deref().map(str::parse).transpose()?;
        if let Some(anchors) = self.anchors {
            anyhow::ensure!(self.anchor_period > 0, "--anchor-period must be above 0");
            let key = std::env::var("MEDREC_PROVIDER_KEY").map_err(|_| {
                anyhow::anyhow!(
                    "--anchors needs the provider's key in the environment variable MEDREC_PROVIDER_KEY (0x + 64 hex digits)"
                )
            })?;
            let signer: PrivateKeySigner = key.trim().parse().map_err(|_| {
                anyhow::anyhow!("MEDREC_PROVIDER_KEY is not a private key (0x + 64 hex digits)")
            })?;
            config.anchoring = Some(Anchoring {
                anchors,
                period: Duration::from_secs(self.anchor_period),
                signer,
            });
        }
        Ok(config)
    }
}

/// Runs `medrec provider`.
pub(crate) fn run(args: ProviderArgs) -> anyhow::Result<ExitCode> {
    match args.what {
        Provider::Serve(args) => {
            let config = args.config()?;
            init_logs();
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            runtime.block_on(serve_until_stopped(config, args.json))
        }
    }
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

/// Logs to stderr, `info` and above unless `RUST_LOG` says otherwise.
fn init_logs() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
}
