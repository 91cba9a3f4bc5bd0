//! Running the gatekeeper: from a [`ServeConfig`] to a listening server.
//!
//! [`spawn`] does, in order, and fails with a [`ServeError`] that says what to fix:
//!
//! 1. reads the TLS certificate and key when given (HTTPS with rustls on *ring*);
//! 2. opens the record store named by its URL (`sqlite:PATH`, `postgres://…`,
//!    `mysql://…`), creating the schema when it is missing;
//! 3. checks the chain node: it answers, has the expected chain id, and has a contract at
//!    the `Relationships` address;
//! 4. starts the [`Follower`] task that keeps the consent index current (its health
//!    drives `/readyz` and the fail-closed 503s);
//! 5. binds the listening address and serves the gatekeeper's routes with a request body
//!    limit (an oversized body is answered 413 with an OperationOutcome), the rate limits
//!    of [`crate::limits`], and one log line per request (the `http` module); connections
//!    are bounded per source address and closed when idle ([`ConnectionLimits`]), TLS
//!    handshakes bounded in time and in number per source (the `tls` module).
//!
//! Logs carry methods, paths (ids only), statuses, peers' IP addresses and requesters'
//! addresses: never a query string or a body, which may hold patient data.
//!
//! [`RunningGatekeeper::shutdown`] stops accepting connections, lets requests in flight
//! finish and stops the follower.

use crate::{
    anchor::{AnchorConfig, Anchorer, AnchorerHandle},
    auth::{AuthState, Clock, RequestVerifier, SiweAuthenticator, SiweConfig},
    server::{EnrollmentFile, Gatekeeper},
};
use alloy::providers::{Provider, ProviderBuilder};
use axum::{http::uri::Authority, serve::ListenerExt};
use medrec_chain::{
    consent::ConsentIndex,
    follower::{FollowConfig, Follower, Health},
};
use medrec_store::{
    RecordStore, StoreError,
    audit::WriterConfig,
    legacy::{LegacyConfig, LegacyMysqlStore, LegacySqliteStore},
};
use std::{
    io,
    net::SocketAddr,
    path::Path,
    sync::{Arc, RwLock},
    time::Duration,
};
use tokio::{
    net::TcpListener,
    sync::{oneshot, watch},
    task::JoinHandle,
};

/// The default request body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// How long the chain node may take to answer the checks at start.
const CHAIN_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutdown waits for the access log's last entries to be written.
const SHUTDOWN_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

mod config;
mod conn;
mod http;
mod tls;

pub use config::{Anchoring, ResearchSetup, ServeConfig, ServeError, StoreUrl, TlsFiles};
pub use conn::ConnectionLimits;

/// A gatekeeper serving in the background; dropping it does not stop it,
/// [`RunningGatekeeper::shutdown`] does.
#[derive(Debug)]
pub struct RunningGatekeeper {
    addr: SocketAddr,
    tls: bool,
    gatekeeper: Gatekeeper,
    health: watch::Receiver<Health>,
    anchorer: Option<AnchorerHandle>,
    stop: oneshot::Sender<()>,
    server: JoinHandle<io::Result<()>>,
    follower: JoinHandle<()>,
}

impl RunningGatekeeper {
    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL (`http://…` or `https://…`).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Whether it serves HTTPS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// The gatekeeper's state (to enroll relationships, check readiness).
    pub fn gatekeeper(&self) -> &Gatekeeper {
        &self.gatekeeper
    }

    /// The follower's latest health.
    pub fn health(&self) -> Health {
        *self.health.borrow()
    }

    /// Stops accepting connections, finishes the requests in flight, stops the follower.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        let _ = self.stop.send(());
        let result = self.server.await;
        self.follower.abort();
        // Everything answered goes into the log before the process ends, unless the
        // database stays down.
        let flushed =
            tokio::time::timeout(SHUTDOWN_FLUSH_TIMEOUT, self.gatekeeper.flush_access_log()).await;
        if flushed.is_err() {
            tracing::error!(
                target: "medrec::gatekeeper",
                "the access log's database did not come back within {} s: the last entries were not written",
                SHUTDOWN_FLUSH_TIMEOUT.as_secs()
            );
        }
        if let Some(anchorer) = self.anchorer {
            anchorer.shutdown().await;
        }
        tracing::info!(target: "medrec::gatekeeper", "stopped");
        result.map_err(|e| ServeError::Serve(io::Error::other(e)))?.map_err(ServeError::Serve)
    }
}

/// Opens the store, checks the chain, starts following it and serves the gatekeeper:
/// see the [module documentation](self).
pub async fn spawn(config: ServeConfig) -> Result<RunningGatekeeper, ServeError> {
    let tls = config.tls.as_ref().map(tls::tls_acceptor).transpose()?;
    if let Some(domain) = &config.siwe_domain {
        parse_domain(domain)?;
    }

    let store = match &config.legacy {
        None => config.store.open().await?,
        Some(mapping) => open_legacy(&config.store, mapping).await?,
    };
    tracing::info!(target: "medrec::gatekeeper", store = config.store.kind(), "record store open");

    let provider = connect_chain(&config).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind { addr: config.listen, source })?;
    let addr = listener.local_addr().map_err(ServeError::Serve)?;
    let domain = parse_domain(config.siwe_domain.as_deref().unwrap_or(&addr.to_string()))?;
    let auth = AuthState::with_rate_limits(
        RequestVerifier::new(config.chain_id, config.gatekeeper),
        SiweAuthenticator::new(SiweConfig::new(domain, config.chain_id)),
        Clock::system(),
        config.limits,
    );

    let index = Arc::new(RwLock::new(ConsentIndex::new(config.reorg_depth)));
    let follow = FollowConfig {
        reorg_depth: config.reorg_depth,
        registrar: config.research.as_ref().map(|r| r.registrar),
        ..FollowConfig::new(config.relationships, config.from_block)
    };
    let follower = Follower::new(provider, follow, index.clone());
    let (health_tx, health) = watch::channel(follower.health());
    let gatekeeper = match &config.enrollments {
        Some(path) => Gatekeeper::with_enrollment_file(
            store,
            index,
            health.clone(),
            config.readiness,
            auth,
            EnrollmentFile::new(path),
        )?,
        None => Gatekeeper::new(store, index, health.clone(), config.readiness, auth),
    };
    let log = match (&config.access_log, &config.legacy) {
        (Some(url), _) => url.open_access_log().await?,
        (None, None) => config.store.open_access_log().await?,
        (None, Some(_)) => return Err(ServeError::AccessLogNeeded),
    };
    let gatekeeper = gatekeeper
        .with_provider(config.gatekeeper)
        .with_access_log(log.clone(), WriterConfig::default());
    let gatekeeper = match &config.research {
        None => gatekeeper,
        Some(r) => {
            let ledger = medrec_research::ledger::Ledger::open(&r.ledger)
                .map_err(|e| ServeError::Research(e.to_string()))?;
            let desk = crate::research::ResearchDesk::new(
                &config.rpc_url,
                r.registrar,
                config.relationships,
                r.policy.clone(),
                ledger,
            )
            .map_err(|e| ServeError::Research(e.to_string()))?;
            gatekeeper.with_research(desk)
        }
    };
    let anchorer = match &config.anchoring {
        None => {
            tracing::warn!(target: "medrec::gatekeeper", "no anchoring key: the access log is kept but its head is not anchored on chain");
            None
        }
        Some(a) => {
            if a.signer.address() != config.gatekeeper {
                return Err(ServeError::AnchorKey {
                    key: a.signer.address(),
                    gatekeeper: config.gatekeeper,
                });
            }
            let url: alloy::transports::http::reqwest::Url =
                config.rpc_url.parse().map_err(|e| ServeError::InvalidRpcUrl(format!("{e}")))?;
            let wallet = ProviderBuilder::new()
                .wallet(alloy::network::EthereumWallet::from(a.signer.clone()))
                .connect_http(url);
            let anchor_config = AnchorConfig::new(a.anchors, config.gatekeeper, a.period);
            Some(Arc::new(Anchorer::new(wallet, log, anchor_config)).spawn())
        }
    };
    let follower = tokio::spawn(follower.run(config.poll, health_tx));

    let app = http::router(&gatekeeper, config.body_limit);
    let (stop, stopped) = oneshot::channel::<()>();
    let stopped = async {
        let _ = stopped.await;
    };
    // Small answers go out at once (no Nagle delay); connections are bounded per source
    // and closed when idle, before any TLS handshake.
    let listener = conn::Guarded::new(
        listener.tap_io(|tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!(target: "medrec::gatekeeper", %err, "TCP_NODELAY not set");
            }
        }),
        config.connections,
    );
    // (`tap_io` only to let axum read each connection's peer address: it knows how
    // for a tapped listener of `SocketAddr`s.)
    let server = match tls.clone() {
        None => tokio::spawn(async move {
            let listener = listener.tap_io(|_| {});
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(stopped)
                .await
        }),
        Some(acceptor) => {
            let listener = tls::TlsListener::new(listener, acceptor).tap_io(|_| {});
            tokio::spawn(async move {
                axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                    .with_graceful_shutdown(stopped)
                    .await
            })
        }
    };
    tracing::info!(
        target: "medrec::gatekeeper",
        %addr,
        tls = tls.is_some(),
        chain_id = config.chain_id,
        relationships = %config.relationships,
        gatekeeper = %config.gatekeeper,
        "serving"
    );
    Ok(RunningGatekeeper {
        addr,
        tls: tls.is_some(),
        gatekeeper,
        health,
        anchorer,
        stop,
        server,
        follower,
    })
}

/// Opens the provider's own database at `url` through the mapping in `mapping`.
async fn open_legacy(url: &StoreUrl, mapping: &Path) -> Result<Arc<dyn RecordStore>, ServeError> {
    let config = LegacyConfig::load(mapping)?;
    let store: Arc<dyn RecordStore> = match url {
        StoreUrl::Sqlite(path) => {
            let path = path.clone();
            let opened = tokio::task::spawn_blocking(move || LegacySqliteStore::open(path, config))
                .await
                .map_err(|e| ServeError::Store(StoreError::Database(e.to_string())))?;
            Arc::new(medrec_store::ReadOnly::new(opened?))
        }
        StoreUrl::Mysql(url) => {
            Arc::new(medrec_store::ReadOnly::new(LegacyMysqlStore::connect(url, config, 8).await?))
        }
        StoreUrl::Postgres(_) => {
            return Err(ServeError::InvalidStoreUrl(
                "the legacy mapping reads SQLite or MySQL/MariaDB databases".into(),
            ));
        }
    };
    Ok(store)
}

fn parse_domain(domain: &str) -> Result<Authority, ServeError> {
    domain.parse().map_err(|_| ServeError::InvalidDomain(domain.to_owned()))
}

/// A read-only provider to the node, after checking the node answers, is on the
/// configured chain and has the contract.
async fn connect_chain(config: &ServeConfig) -> Result<impl Provider + use<>, ServeError> {
    let url: alloy::transports::http::reqwest::Url =
        config.rpc_url.parse().map_err(|e| ServeError::InvalidRpcUrl(format!("{e}")))?;
    let provider = ProviderBuilder::new().connect_http(url);
    let unreachable = |reason: String| ServeError::ChainUnreachable {
        url: config::redact(&config.rpc_url),
        reason,
    };
    let checks = async {
        let chain_id = provider.get_chain_id().await.map_err(|e| unreachable(e.to_string()))?;
        if chain_id != config.chain_id {
            return Err(ServeError::WrongChain { expected: config.chain_id, found: chain_id });
        }
        let code = provider
            .get_code_at(config.relationships)
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        if code.is_empty() {
            return Err(ServeError::NoContract(config.relationships));
        }
        Ok(())
    };
    match tokio::time::timeout(CHAIN_CHECK_TIMEOUT, checks).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(unreachable(format!(
                "no answer within {} s",
                CHAIN_CHECK_TIMEOUT.as_secs()
            )));
        }
    }
    Ok(provider)
}
