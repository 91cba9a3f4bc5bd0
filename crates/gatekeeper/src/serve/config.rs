//! What a running gatekeeper needs ([`ServeConfig`]), where its records are
//! ([`StoreUrl`]), and why it could not start ([`ServeError`]).

use crate::limits::RateLimits;
use crate::server::{EnrollmentError, Readiness};
use alloy::{primitives::Address, signers::local::PrivateKeySigner};
use medrec_store::{
    RecordReader, RecordStore, StoreError,
    audit::{
        AccessLog,
        sql::{MysqlAccessLog, PostgresAccessLog},
        sqlite::SqliteAccessLog,
    },
    legacy::{LegacyConfig, LegacyError, LegacyMysqlStore, LegacyPostgresStore, LegacySqliteStore},
    sql::{MysqlStore, PostgresStore},
    sqlite::SqliteStore,
};
use std::{
    io,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use super::DEFAULT_BODY_LIMIT;

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

    /// Opens the provider's own database at this URL through the legacy mapping in the
    /// file `mapping` ([`medrec_store::legacy`]): a reader only, never written.
    ///
    /// # Errors
    /// When the mapping cannot be read or is refused, or the database cannot be opened
    /// or does not fit the mapping.
    pub async fn open_legacy(&self, mapping: &Path) -> Result<Arc<dyn RecordReader>, ServeError> {
        let config = LegacyConfig::load(mapping)?;
        let store: Arc<dyn RecordReader> = match self {
            Self::Sqlite(path) => {
                let path = path.clone();
                let opened =
                    tokio::task::spawn_blocking(move || LegacySqliteStore::open(path, config))
                        .await
                        .map_err(|e| ServeError::Store(StoreError::Database(e.to_string())))?;
                Arc::new(opened?)
            }
            Self::Postgres(url) => Arc::new(LegacyPostgresStore::connect(url, config, 8).await?),
            Self::Mysql(url) => Arc::new(LegacyMysqlStore::connect(url, config, 8).await?),
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
    /// Connections per source address and the idle timeout.
    pub connections: super::ConnectionLimits,
    /// Where enrollments are kept across restarts (in memory only when `None`).
    pub enrollments: Option<PathBuf>,
    /// A read-only mapping of the provider's own database (a [`LegacyConfig`](medrec_store::legacy::LegacyConfig) JSON
    /// file): `store` then names that database (`sqlite:` or `mysql://`), which is
    /// read, never written, and `access_log` must name where the log goes.
    pub legacy: Option<PathBuf>,
    /// Where the access log is kept (default: the record store's database).
    pub access_log: Option<StoreUrl>,
    /// Anchoring of the access log's Merkle root on chain (the log is kept either way, in the
    /// record store's database; without this its head is never anchored).
    pub anchoring: Option<Anchoring>,
    /// Research bounties: served when set (see [`crate::research`]).
    pub research: Option<ResearchSetup>,
    /// The `Registrar` contract, whose groups (granted like one viewer) and emergency
    /// groups (break-glass) the consent index follows; when unset, the research setup's
    /// registrar (if any), else no group reaches anyone.
    pub registrar: Option<Address>,
    /// The origins (`scheme://host[:port]`, or `*` for any) whose pages may call this
    /// gatekeeper from a browser (CORS); none by default.
    pub cors_origins: Vec<String>,
    /// The SMART apps that may be authorized here (public clients), each as
    /// `CLIENT_ID=REDIRECT_URI` (a client with several redirect URIs appears once per
    /// URI); none by default, so every authorization request is refused.
    pub smart_clients: Vec<String>,
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
            connections: super::ConnectionLimits::default(),
            enrollments: None,
            legacy: None,
            access_log: None,
            anchoring: None,
            research: None,
            registrar: None,
            cors_origins: Vec::new(),
            smart_clients: Vec::new(),
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

/// How the access log's Merkle root is anchored on chain.
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
    /// The key that signs SMART's id tokens could not be read or kept.
    #[error("{0}")]
    IdTokenKey(String),
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
    /// An allowed CORS origin is not `scheme://host[:port]`.
    #[error("the CORS origin '{0}' is not http(s)://host[:port] (no path, no trailing slash) or *")]
    InvalidCorsOrigin(String),
    /// A SMART client registration is not `CLIENT_ID=REDIRECT_URI`.
    #[error(transparent)]
    SmartClient(#[from] crate::smart::InvalidSmartClient),
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

/// Scheme, host and port of a URL: what may be shown of it (a path or query may hold an
/// API key).
pub(super) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return "the given URL".into() };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}")
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
