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
//!    of [`crate::limits`], and one log line per request.
//!
//! Logs carry methods, paths (ids only), statuses, peers' IP addresses and requesters'
//! addresses: never a query string or a body, which may hold patient data.
//!
//! [`RunningGatekeeper::shutdown`] stops accepting connections, lets requests in flight
//! finish and stops the follower.

use crate::{
    anchor::{AnchorConfig, Anchorer, AnchorerHandle},
    auth::{AuthState, Clock, RequestVerifier, SiweAuthenticator, SiweConfig},
    limits::RateLimits,
    server::{EnrollmentError, EnrollmentFile, Gatekeeper, Readiness},
};
use alloy::{
    primitives::Address,
    providers::{Provider, ProviderBuilder},
    signers::local::PrivateKeySigner,
};
use axum::{
    Router,
    extract::{ConnectInfo, DefaultBodyLimit, Request},
    http::{HeaderValue, StatusCode, header, uri::Authority},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    serve::{Listener, ListenerExt},
};
use medrec_chain::{
    consent::ConsentIndex,
    follower::{FollowConfig, Follower, Health},
};
use medrec_store::{
    RecordStore, StoreError,
    audit::{
        AccessLog, WriterConfig,
        sql::{MysqlAccessLog, PostgresAccessLog},
        sqlite::SqliteAccessLog,
    },
    legacy::{LegacyConfig, LegacyError, LegacyMysqlStore, LegacySqliteStore},
    sql::{MysqlStore, PostgresStore},
    sqlite::SqliteStore,
};
use serde_json::json;
use std::{
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{Semaphore, mpsc, oneshot, watch},
    task::JoinHandle,
};
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    },
    server::TlsStream,
};

/// The default request body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// How long the chain node may take to answer the checks at start.
const CHAIN_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may take over the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutdown waits for the access log's last entries to be written.
const SHUTDOWN_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// TLS handshakes in progress at most (further connections wait to be accepted).
const MAX_HANDSHAKES: usize = 256;

/// Where the records are: parsed from a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `sqlite:PATH` (or `sqlite://PATH`): a SQLite file, created when missing.
    Sqlite(PathBuf),
    /// `postgres://…` or `postgresql://…`.
    Postgres(String),
    /// `mysql://…` or `mariadb://…`.
    Mysql(String),
}

impl std::str::FromStr for StoreUrl {
    type Err = ServeError;

    fn from_str(url: &str) -> Result<Self, ServeError> {
        if let Some(path) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) {
            if path.is_empty() {
                return Err(ServeError::InvalidStoreUrl(
                    "sqlite: needs a file path, e.g. sqlite:/var/lib/medrec/records.db".into(),
                ));
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        match url.split_once("://").map(|(scheme, _)| scheme) {
            Some("postgres" | "postgresql") => Ok(Self::Postgres(url.to_owned())),
            Some("mysql" | "mariadb") => Ok(Self::Mysql(url.replacen("mariadb://", "mysql://", 1))),
            // Name only the scheme: the rest may hold a password.
            Some(scheme) => Err(ServeError::InvalidStoreUrl(format!(
                "unknown kind of store '{scheme}://'; use sqlite:PATH, postgres://… or mysql://…"
            ))),
            None => Err(ServeError::InvalidStoreUrl(
                "it is not a URL; use sqlite:PATH, postgres://… or mysql://…".into(),
            )),
        }
    }
}

impl StoreUrl {
    /// Opens the access log kept in the same database (creating its tables).
    pub async fn open_access_log(&self) -> Result<Arc<dyn AccessLog>, ServeError> {
        let log: Arc<dyn AccessLog> = match self {
            Self::Sqlite(path) => {
                let path = path.clone();
                let opened = tokio::task::spawn_blocking(move || SqliteAccessLog::open(path))
                    .await
                    .map_err(|e| ServeError::Store(StoreError::Database(e.to_string())))?;
                Arc::new(opened.map_err(ServeError::Store)?)
            }
            Self::Postgres(url) => {
                Arc::new(PostgresAccessLog::connect(url).await.map_err(ServeError::Store)?)
            }
            Self::Mysql(url) => {
                Arc::new(MysqlAccessLog::connect(url).await.map_err(ServeError::Store)?)
            }
        };
        Ok(log)
    }

    /// Opens the store (creating its schema when missing).
    pub async fn open(&self) -> Result<Arc<dyn RecordStore>, ServeError> {
        let store: Arc<dyn RecordStore> = match self {
            Self::Sqlite(path) => {
                let path = path.clone();
                let opened = tokio::task::spawn_blocking(move || SqliteStore::open(path))
                    .await
                    .map_err(|e| ServeError::Store(StoreError::Database(e.to_string())))?;
                Arc::new(opened.map_err(ServeError::Store)?)
            }
            Self::Postgres(url) => {
                Arc::new(PostgresStore::connect(url).await.map_err(ServeError::Store)?)
            }
            Self::Mysql(url) => {
                Arc::new(MysqlStore::connect(url).await.map_err(ServeError::Store)?)
            }
        };
        Ok(store)
    }

    /// The kind of store, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
            Self::Mysql(_) => "mysql",
        }
    }
}

/// A PEM certificate chain and its private key, for HTTPS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain (PEM), the server's certificate first.
    pub cert: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Everything a running gatekeeper needs.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address to listen on (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The record store.
    pub store: StoreUrl,
    /// The chain node's JSON-RPC URL (`http://…`).
    pub rpc_url: String,
    /// The `Relationships` contract.
    pub relationships: Address,
    /// The block it was deployed in.
    pub from_block: u64,
    /// Blocks the follower keeps to undo a reorganisation (0 on chains that never
    /// reorganise).
    pub reorg_depth: u64,
    /// This gatekeeper's (the provider's) address, which signed requests name.
    pub gatekeeper: Address,
    /// The chain id, which signed requests and sign-in messages name.
    pub chain_id: u64,
    /// The domain sign-in messages must name (`host` or `host:port`); `None` for the
    /// address the server is bound to.
    pub siwe_domain: Option<String>,
    /// How fresh the consent index must be to decide requests.
    pub readiness: Readiness,
    /// How often the follower asks the node for new blocks.
    pub poll: Duration,
    /// The largest request body accepted, in bytes.
    pub body_limit: usize,
    /// Rate limits ([`RateLimits::off`] for benchmarks).
    pub limits: RateLimits,
    /// HTTPS with this certificate and key; plain HTTP when `None`.
    pub tls: Option<TlsFiles>,
    /// Where enrollments are kept across restarts (in memory only when `None`).
    pub enrollments: Option<PathBuf>,
    /// A read-only mapping of the provider's own database (a [`LegacyConfig`] JSON
    /// file): `store` then names that database (`sqlite:` or `mysql://`), which is
    /// read, never written, and `access_log` must name where the log goes.
    pub legacy: Option<PathBuf>,
    /// Where the access log is kept (default: the record store's database).
    pub access_log: Option<StoreUrl>,
    /// Anchoring of the access log's head on chain (the log is kept either way, in the
    /// record store's database; without this its head is never anchored).
    pub anchoring: Option<Anchoring>,
    /// Research bounties: served when set (see [`crate::research`]).
    pub research: Option<ResearchSetup>,
}

impl ServeConfig {
    /// A configuration with the defaults for everything not given: the consent index
    /// from block 0 with a 64-block undo depth, the bound address as sign-in domain,
    /// [`Readiness::default`], a 1 s poll, a [`DEFAULT_BODY_LIMIT`],
    /// [`RateLimits::default`], plain HTTP, enrollments in memory.
    pub fn new(
        listen: SocketAddr,
        store: StoreUrl,
        rpc_url: impl Into<String>,
        relationships: Address,
        gatekeeper: Address,
        chain_id: u64,
    ) -> Self {
        Self {
            listen,
            store,
            rpc_url: rpc_url.into(),
            relationships,
            from_block: 0,
            reorg_depth: 64,
            gatekeeper,
            chain_id,
            siwe_domain: None,
            readiness: Readiness::default(),
            poll: Duration::from_secs(1),
            body_limit: DEFAULT_BODY_LIMIT,
            limits: RateLimits::default(),
            tls: None,
            enrollments: None,
            legacy: None,
            access_log: None,
            anchoring: None,
            research: None,
        }
    }
}

/// How a gatekeeper serves research bounties.
#[derive(Debug, Clone)]
pub struct ResearchSetup {
    /// The `Registrar` contract (which research entities are admitted).
    pub registrar: Address,
    /// The provider's research policy.
    pub policy: medrec_research::policy::Policy,
    /// The research ledger (published texts, stored answers, budgets): a SQLite file.
    pub ledger: PathBuf,
}

/// How the access log's head is anchored on chain.
#[derive(Debug, Clone)]
pub struct Anchoring {
    /// The `AccessAnchors` contract.
    pub anchors: Address,
    /// Time between two anchors (one transaction per period at most).
    pub period: Duration,
    /// The provider's key: it must be the registered provider's (the gatekeeper
    /// address).
    pub signer: PrivateKeySigner,
}

/// Why the gatekeeper could not start (or stop cleanly).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The research ledger or desk could not be set up.
    #[error("research bounties cannot be served: {0}")]
    Research(String),
    /// The anchoring key is not the gatekeeper's (the registered provider's) key.
    #[error(
        "the anchoring key belongs to {key}, but this gatekeeper serves as {gatekeeper}: anchors must be sent by the registered provider"
    )]
    AnchorKey {
        /// The key's address.
        key: Address,
        /// The gatekeeper's address.
        gatekeeper: Address,
    },
    /// The store URL is not one of the supported kinds.
    #[error("the record store URL is not usable: {0}")]
    InvalidStoreUrl(String),
    /// The store could not be opened.
    #[error("cannot open the record store: {0}")]
    Store(StoreError),
    /// The legacy mapping or the provider's own database was refused.
    #[error("cannot serve the provider's own database: {0}")]
    Legacy(#[from] LegacyError),
    /// A legacy store without a place for the access log.
    #[error(
        "the provider's own database is served read-only, so the access log needs its own database: give --access-log"
    )]
    AccessLogNeeded,
    /// The chain RPC URL is not a URL.
    #[error("the chain RPC URL is not a valid URL: {0}")]
    InvalidRpcUrl(String),
    /// The chain node did not answer.
    #[error("cannot reach the chain node at {url}: {reason}")]
    ChainUnreachable {
        /// The node (scheme, host and port only).
        url: String,
        /// Why.
        reason: String,
    },
    /// The chain node is on another chain.
    #[error(
        "the chain node is on chain {found}, but the gatekeeper is configured for chain {expected}"
    )]
    WrongChain {
        /// The configured chain id.
        expected: u64,
        /// The node's chain id.
        found: u64,
    },
    /// There is no contract at the `Relationships` address.
    #[error(
        "there is no contract at {0} on the chain: check the Relationships address (`medrec chain --json` prints it for the devchain)"
    )]
    NoContract(Address),
    /// The sign-in domain is not a host name with an optional port.
    #[error("the sign-in domain '{0}' is not a host name with an optional port")]
    InvalidDomain(String),
    /// The TLS certificate or key is not usable.
    #[error("the TLS {what} {path} is not usable: {reason}")]
    Tls {
        /// `certificate` or `key`.
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The enrollment file is not usable.
    #[error(transparent)]
    Enrollments(#[from] EnrollmentError),
    /// The listening address cannot be bound.
    #[error("cannot listen on {addr}: {source} (is another server using this port?)")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The server failed while running or stopping.
    #[error("the HTTP server failed: {0}")]
    Serve(io::Error),
}

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
    let tls = config.tls.as_ref().map(tls_acceptor).transpose()?;
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
                config.from_block,
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

    let app = router(&gatekeeper, config.body_limit);
    let (stop, stopped) = oneshot::channel::<()>();
    let stopped = async {
        let _ = stopped.await;
    };
    let server = match tls.clone() {
        None => tokio::spawn(async move {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(stopped)
                .await
        }),
        Some(acceptor) => {
            let listener = TlsListener::new(listener, acceptor).tap_io(|_| {});
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

/// The gatekeeper's routes with the body limit, its 413 answer and request logs.
fn router(gatekeeper: &Gatekeeper, body_limit: usize) -> Router {
    gatekeeper.router().layer(DefaultBodyLimit::max(body_limit)).layer(middleware::from_fn(
        move |request: Request, next: Next| log_and_explain(request, next, body_limit),
    ))
}

/// Logs one line per request (no query string, no body) and answers a 413 from any
/// route with a FHIR OperationOutcome that names the limit.
async fn log_and_explain(request: Request, next: Next, body_limit: usize) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let response = next.run(request).await;
    let status = response.status();
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(
        target: "medrec::gatekeeper::http",
        %method,
        path,
        status = status.as_u16(),
        elapsed_ms,
        peer = peer.map(tracing::field::display),
        "request"
    );
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        return too_large(response, body_limit).await;
    }
    response
}

/// A 413 as a FHIR OperationOutcome, keeping the route's own message when it names its
/// limit (the sign-in route has a smaller one).
async fn too_large(response: Response, body_limit: usize) -> Response {
    let original = axum::body::to_bytes(response.into_body(), 64 * 1024).await.ok();
    let message = original
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v["issue"][0]["diagnostics"].as_str().map(str::to_owned))
        .filter(|m| m.contains("limit of"));
    let diagnostics = message.unwrap_or_else(|| {
        format!("the request body is larger than the limit of {body_limit} bytes")
    });
    let body = json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "too-long", "diagnostics": diagnostics}]
    });
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/fhir+json"))],
        body.to_string(),
    )
        .into_response()
}

/// Scheme, host and port of a URL: what may be shown of it (a path or query may hold an
/// API key).
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "the given URL".into() };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}")
}

/// A read-only provider to the node, after checking the node answers, is on the
/// configured chain and has the contract.
async fn connect_chain(config: &ServeConfig) -> Result<impl Provider + use<>, ServeError> {
    let url: alloy::transports::http::reqwest::Url =
        config.rpc_url.parse().map_err(|e| ServeError::InvalidRpcUrl(format!("{e}")))?;
    let provider = ProviderBuilder::new().connect_http(url);
    let unreachable =
        |reason: String| ServeError::ChainUnreachable { url: redact(&config.rpc_url), reason };
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

/// A TLS acceptor (rustls on *ring*) over the certificate chain and key in `files`.
fn tls_acceptor(files: &TlsFiles) -> Result<TlsAcceptor, ServeError> {
    let cert_error = |reason: String| ServeError::Tls {
        what: "certificate",
        path: files.cert.display().to_string(),
        reason,
    };
    let key_error = |reason: String| ServeError::Tls {
        what: "key",
        path: files.key.display().to_string(),
        reason,
    };
    let certs = read_certs(&files.cert).map_err(cert_error)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| key_error(pem_reason(&e)))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| cert_error(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| key_error(format!("it does not go with the certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_reason(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_reason(&e))?;
    if certs.is_empty() {
        return Err("it holds no PEM certificate".into());
    }
    Ok(certs)
}

fn pem_reason(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(io) => io.to_string(),
        Error::NoItemsFound => "it holds no PEM item of the expected kind".into(),
        other => format!("it is not valid PEM ({other:?})"),
    }
}

/// Accepts TCP connections and completes their TLS handshakes in tasks of their own, so
/// a slow client never holds up others; hands the finished streams to axum.
struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    acceptor: JoinHandle<()>,
}

impl TlsListener {
    fn new(tcp: TcpListener, tls: TlsAcceptor) -> Self {
        let local = tcp.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, ready) = mpsc::channel(64);
        let permits = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        let acceptor = tokio::spawn(async move {
            loop {
                let Ok(permit) = permits.clone().acquire_owned().await else { return };
                let (stream, peer) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        tracing::warn!(target: "medrec::gatekeeper", %err, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let (tls, tx) = (tls.clone(), tx.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(err)) => {
                            tracing::debug!(target: "medrec::gatekeeper", peer = %peer.ip(), %err, "TLS handshake failed");
                        }
                        Err(_) => {
                            tracing::debug!(target: "medrec::gatekeeper", peer = %peer.ip(), "TLS handshake timed out");
                        }
                    }
                });
            }
        });
        Self { local, ready, acceptor }
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.acceptor.abort();
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The acceptor stopped: accept nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls_name_their_kind_and_errors_hide_the_rest() {
        assert_eq!(
            "sqlite:/tmp/x.db".parse::<StoreUrl>().unwrap(),
            StoreUrl::Sqlite("/tmp/x.db".into())
        );
        assert_eq!(
            "sqlite://rel.db".parse::<StoreUrl>().unwrap(),
            StoreUrl::Sqlite("rel.db".into())
        );
        assert!(matches!(
            "postgresql://u:p@h/db".parse::<StoreUrl>().unwrap(),
            StoreUrl::Postgres(_)
        ));
        assert_eq!(
            "mariadb://u@h/db".parse::<StoreUrl>().unwrap(),
            StoreUrl::Mysql("mysql://u@h/db".into())
        );
        let err = "oracle://user:secret@h/db".parse::<StoreUrl>().unwrap_err().to_string();
        assert!(
            err.contains("unknown kind of store 'oracle://'") && !err.contains("secret"),
            "{err}"
        );
        assert!("records.db".parse::<StoreUrl>().is_err());
        assert!("sqlite:".parse::<StoreUrl>().is_err());
    }

    #[test]
    fn redacted_urls_keep_only_scheme_host_and_port() {
        assert_eq!(
            redact("https://key:s@node.example:8545/v3/KEY?x=1"),
            "https://node.example:8545"
        );
        assert_eq!(redact("http://127.0.0.1:8545"), "http://127.0.0.1:8545");
        assert_eq!(redact("nonsense"), "the given URL");
    }
}
