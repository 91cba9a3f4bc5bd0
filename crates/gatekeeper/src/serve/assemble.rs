//! A gatekeeper assembled from its [`ServeConfig`], with no socket: the store, the chain
//! checks, the follower, the access log, research and anchoring, and the router with
//! every layer the served one has. [`super::spawn`] binds it; a test drives its
//! [`Assembled::router`] in process (tower's `oneshot`).

use super::{ServeConfig, ServeError, config, http};
use crate::{
    anchor::{AnchorConfig, Anchorer, AnchorerHandle},
    auth::{AuthState, Clock, RequestVerifier, SiweAuthenticator, SiweConfig},
    server::{EnrollmentFile, Gatekeeper, Records},
};
use alloy::providers::{Provider, ProviderBuilder};
use axum::{Router, http::uri::Authority};
use medrec_chain::{
    consent::ConsentIndex,
    follower::{FollowConfig, Follower, Health},
};
use medrec_store::audit::WriterConfig;
use std::{
    sync::{Arc, RwLock},
    time::Duration,
};
use tokio::{sync::watch, task::JoinHandle};

/// How long the chain node may take to answer the checks at start.
const CHAIN_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutdown waits for the access log's last entries to be written.
const SHUTDOWN_FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// A gatekeeper assembled by [`assemble`]: its state, its router (body limit, 413
/// answer and request logs included), and the background tasks that keep it current
/// (the chain follower, the anchorer). Serve the router or call it in process;
/// [`Assembled::shutdown`] stops the tasks and writes the last log entries.
#[derive(Debug)]
pub struct Assembled {
    gatekeeper: Gatekeeper,
    router: Router,
    health: watch::Receiver<Health>,
    anchorer: Option<AnchorerHandle>,
    follower: JoinHandle<()>,
}

impl Assembled {
    /// The gatekeeper's state (to enroll relationships, check readiness).
    pub fn gatekeeper(&self) -> &Gatekeeper {
        &self.gatekeeper
    }

    /// The routes with every layer of the served gatekeeper.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The follower's latest health.
    pub fn health(&self) -> Health {
        *self.health.borrow()
    }

    /// Stops the follower, waits (a few seconds at most) for the access log's last
    /// entries and stops the anchorer.
    pub async fn shutdown(self) {
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
    }
}

/// Opens the store (or the provider's own database through its mapping) and the access
/// log, checks the chain, starts following it (and anchoring, when configured) and
/// builds the router. The sign-in domain is `config.siwe_domain`, else the listening
/// address as written in the configuration. Binds nothing.
pub async fn assemble(config: &ServeConfig) -> Result<Assembled, ServeError> {
    let domain = match &config.siwe_domain {
        Some(domain) => parse_domain(domain)?,
        None => parse_domain(&config.listen.to_string())?,
    };
    let cors = super::cors::layer(&config.cors_origins)?;
    let smart_clients = crate::smart::SmartClients::parse(&config.smart_clients)?;
    let records = match &config.legacy {
        None => Records::read_write(config.store.open().await?),
        Some(mapping) => Records::read_only(config.store.open_legacy(mapping).await?),
    };
    tracing::info!(target: "medrec::gatekeeper", store = config.store.kind(), "record store open");
    let provider = connect_chain(config).await?;
    let auth = AuthState::with_rate_limits(
        RequestVerifier::new(config.chain_id, config.gatekeeper),
        SiweAuthenticator::new(SiweConfig::new(domain, config.chain_id)),
        Clock::system(),
        config.limits,
    );

    let index = Arc::new(RwLock::new(ConsentIndex::new(config.reorg_depth)));
    let follow = FollowConfig {
        reorg_depth: config.reorg_depth,
        registrar: config.registrar.or(config.research.as_ref().map(|r| r.registrar)),
        ..FollowConfig::new(config.relationships, config.from_block)
    };
    let follower = Follower::new(provider, follow, index.clone());
    let (health_tx, health) = watch::channel(follower.health());
    let gatekeeper = match &config.enrollments {
        Some(path) => Gatekeeper::with_enrollment_file(
            records,
            index,
            health.clone(),
            config.readiness,
            auth,
            EnrollmentFile::new(path),
        )?,
        None => Gatekeeper::new(records, index, health.clone(), config.readiness, auth),
    };
    let log = match (&config.access_log, &config.legacy) {
        (Some(url), _) => url.open_access_log().await?,
        (None, None) => config.store.open_access_log().await?,
        (None, Some(_)) => return Err(ServeError::AccessLogNeeded),
    };
    let gatekeeper = match &config.enrollments {
        // Kept beside the enrollments, so that id tokens verify across a restart.
        Some(path) => {
            let key_path = crate::smart::oidc::key_path_beside(path);
            gatekeeper.with_id_token_key(
                crate::smart::oidc::IdKey::load_or_create(&key_path)
                    .map_err(|e| ServeError::IdTokenKey(e.to_string()))?,
            )
        }
        None => gatekeeper,
    };
    let gatekeeper = gatekeeper
        .with_provider(config.gatekeeper)
        .with_smart_clients(smart_clients)
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
    let router = http::router(&gatekeeper, config.body_limit, cors);
    Ok(Assembled { gatekeeper, router, health, anchorer, follower })
}

/// A sign-in domain: a host with an optional port.
pub(super) fn parse_domain(domain: &str) -> Result<Authority, ServeError> {
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
