//! Running the gatekeeper: from a [`ServeConfig`] to a listening server.
//!
//! [`assemble`] builds it without a socket, and fails with a [`ServeError`] that says
//! what to fix:
//!
//! 1. opens the record store named by its URL (`sqlite:PATH`, `postgres://…`,
//!    `mysql://…`), creating the schema when it is missing, or the provider's own
//!    database through its mapping (a reader only: the provider's writes are refused);
//! 2. checks the chain node: it answers, has the expected chain id, and has a contract at
//!    the `Relationships` address;
//! 3. starts the [`Follower`](medrec_chain::follower::Follower) task that keeps the
//!    consent index current (its health drives `/readyz` and the fail-closed 503s), and
//!    the anchorer when configured;
//! 4. builds the router: the gatekeeper's routes with a request body limit (an oversized
//!    body is answered 413 with an OperationOutcome), the rate limits of
//!    [`crate::limits`], and one log line per request (the `http` module).
//!
//! [`spawn`] reads the TLS certificate and key when given (HTTPS with rustls on *ring*),
//! binds the listening address (the sign-in domain defaults to it), assembles the
//! gatekeeper and serves its router; connections are bounded per source address and
//! closed when idle ([`ConnectionLimits`]), TLS handshakes bounded in time and in number
//! per source (the `tls` module).
//!
//! Logs carry methods, paths (ids only), statuses, peers' IP addresses and requesters'
//! addresses: never a query string or a body, which may hold patient data.
//!
//! [`RunningGatekeeper::shutdown`] stops accepting connections, lets requests in flight
//! finish and stops the follower ([`Assembled::shutdown`]).

use axum::serve::ListenerExt;
use medrec_chain::follower::Health;
use std::{io, net::SocketAddr};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// The default request body limit: 1 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

mod assemble;
mod config;
mod conn;
mod cors;
mod http;
mod tls;

pub use assemble::{Assembled, assemble};
pub use config::{Anchoring, ResearchSetup, ServeConfig, ServeError, StoreUrl, TlsFiles};
pub use conn::ConnectionLimits;

/// A gatekeeper serving in the background; dropping it does not stop it,
/// [`RunningGatekeeper::shutdown`] does.
#[derive(Debug)]
pub struct RunningGatekeeper {
    addr: SocketAddr,
    tls: bool,
    assembled: Assembled,
    stop: oneshot::Sender<()>,
    server: JoinHandle<io::Result<()>>,
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
    pub fn gatekeeper(&self) -> &crate::server::Gatekeeper {
        self.assembled.gatekeeper()
    }

    /// The follower's latest health.
    pub fn health(&self) -> Health {
        self.assembled.health()
    }

    /// Stops accepting connections, finishes the requests in flight, stops the follower.
    pub async fn shutdown(self) -> Result<(), ServeError> {
        let _ = self.stop.send(());
        let result = self.server.await;
        self.assembled.shutdown().await;
        tracing::info!(target: "medrec::gatekeeper", "stopped");
        result.map_err(|e| ServeError::Serve(io::Error::other(e)))?.map_err(ServeError::Serve)
    }
}

/// Binds the listening address, assembles the gatekeeper ([`assemble`]) and serves it:
/// see the [module documentation](self).
pub async fn spawn(mut config: ServeConfig) -> Result<RunningGatekeeper, ServeError> {
    let tls = config.tls.as_ref().map(tls::tls_acceptor).transpose()?;
    if let Some(domain) = &config.siwe_domain {
        assemble::parse_domain(domain)?;
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServeError::Bind { addr: config.listen, source })?;
    let addr = listener.local_addr().map_err(ServeError::Serve)?;
    config.siwe_domain.get_or_insert_with(|| addr.to_string());
    let assembled = assemble(&config).await?;
    let app = assembled.router();
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
    Ok(RunningGatekeeper { addr, tls: tls.is_some(), assembled, stop, server })
}
