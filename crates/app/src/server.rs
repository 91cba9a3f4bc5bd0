//! The app's server: [`AppConfig`], the router with its layers (same-origin check,
//! the browser's key, security headers), and the listener on loopback ([`spawn`] → [`RunningApp`]).

use crate::{assets, csrf, routes, state::AppState};
use alloy::signers::local::PrivateKeySigner;
use axum::{
    Router,
    extract::Request,
    http::{HeaderValue, header},
    middleware::{self, Next},
    response::Response,
    routing::{get, post},
};
use medrec_client::ChainSpec;
use medrec_wallet::{Passphrase, ScryptParams};
use std::{net::SocketAddr, path::PathBuf, sync::Arc};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// How to run the app.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Where to listen (loopback by default: `127.0.0.1:8090`).
    pub listen: SocketAddr,
    /// The party's data directory (its wallet and encrypted cache).
    pub data_dir: PathBuf,
    /// Where the chain is.
    pub chain: ChainSpec,
    /// The wallet's passphrase, for scripts; without it the first page asks for it.
    pub passphrase: Option<Passphrase>,
    /// Whose app it is: a patient's, a viewer's or a researcher's.
    pub role: Role,
    /// An identity already unlocked, instead of a wallet: `medrec demo`'s development
    /// accounts (public keys of the `test … junk` phrase, never for real use). The app
    /// keeps its encrypted cache in `data_dir` and cannot be locked.
    pub demo_key: Option<PrivateKeySigner>,
    /// The key-derivation cost of wallets created, recovered or re-sealed in the app.
    pub kdf: ScryptParams,
}

/// Whose app it is: which pages it serves and which workflows it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    /// A patient: Home, Inbox, Records, Share, Access log, Research.
    #[default]
    Patient,
    /// A viewer a patient shared records with (a pharmacist, a second-opinion doctor):
    /// what was shared and until when, and the records themselves, verified; a member
    /// of an emergency group also breaks the glass and reads the emergency set.
    Viewer,
    /// A research entity: admission, mining, bounties owned and redeemed, ε spent,
    /// released results.
    Researcher,
    /// A provider (its data directory has `provider.json`): patients and their
    /// relationships, enroll, import, publish, the gatekeeper's health.
    Provider,
}

impl Role {
    /// `patient` or `viewer`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Patient => "patient",
            Self::Viewer => "viewer",
            Self::Researcher => "researcher",
            Self::Provider => "provider",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "patient" => Ok(Self::Patient),
            "viewer" => Ok(Self::Viewer),
            "researcher" => Ok(Self::Researcher),
            "provider" => Ok(Self::Provider),
            other => Err(format!(
                "no app for the role {other:?}: use patient, viewer, provider or researcher"
            )),
        }
    }
}

impl AppConfig {
    /// The default address: loopback, port 8090.
    pub const DEFAULT_LISTEN: &str = "127.0.0.1:8090";

    /// A patient's app for the wallet in `data_dir`, locked until the page unlocks it,
    /// with the standard key-derivation cost ([`ScryptParams::for_new_keystores`]).
    pub fn new(listen: SocketAddr, data_dir: PathBuf, chain: ChainSpec) -> Self {
        Self {
            listen,
            data_dir,
            chain,
            passphrase: None,
            role: Role::Patient,
            demo_key: None,
            kdf: ScryptParams::for_new_keystores(),
        }
    }
}

/// Why the app could not start.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The address is not a loopback address.
    #[error(
        "the app listens on this machine only (the keys never leave it): use a loopback address such as 127.0.0.1:8090, not {0}"
    )]
    NotLoopback(SocketAddr),
    /// The wallet could not be unlocked with the passphrase given.
    #[error("{0}")]
    Unlock(String),
}

/// The app, serving.
#[derive(Debug)]
pub struct RunningApp {
    addr: SocketAddr,
    state: AppState,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningApp {
    /// Where it listens.
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its URL (`http://127.0.0.1:8090`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The link that lets a browser in without the passphrase (`…/?key=…`): the key
    /// of this run of the app (see the `session` module). Print it only where the
    /// party alone reads it.
    pub fn launch_url(&self) -> String {
        format!("http://{}/?key={}", self.addr, self.state.key.as_str())
    }

    /// Stops serving and every background task.
    ///
    /// # Errors
    /// When the server failed.
    pub async fn shutdown(mut self) -> std::io::Result<()> {
        self.state.stop();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }

    /// Serves until `signal` completes, then stops.
    ///
    /// # Errors
    /// When the server failed.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> std::io::Result<()> {
        signal.await;
        self.shutdown().await
    }
}

/// Starts the app: unlocks the wallet first when a passphrase is given, then listens.
///
/// # Errors
/// [`AppError::NotLoopback`], [`AppError::Unlock`] with a sentence, or
/// [`AppError::Bind`].
pub async fn spawn(config: AppConfig) -> Result<RunningApp, AppError> {
    if !config.listen.ip().is_loopback() {
        return Err(AppError::NotLoopback(config.listen));
    }
    let state = AppState::new(config.data_dir, config.chain, config.role, config.kdf);
    if let Some(key) = config.demo_key {
        state.unlock_demo(key).await.map_err(AppError::Unlock)?;
    } else if let Some(passphrase) = config.passphrase {
        state.unlock(passphrase).await.map_err(AppError::Unlock)?;
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| AppError::Bind { addr: config.listen, source })?;
    let addr =
        listener.local_addr().map_err(|source| AppError::Bind { addr: config.listen, source })?;
    let app = router(state.clone(), csrf::Hosts::of(addr));
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
    });
    Ok(RunningApp { addr, state, stop: Some(stop), task })
}

/// Every route of the app's role, behind the same-origin check, the browser's key and
/// the security headers.
pub(crate) fn router(state: AppState, hosts: csrf::Hosts) -> Router {
    let pages = match state.role {
        Role::Patient => Router::new()
            .route("/", get(routes::home::page))
            .route("/inbox", get(routes::inbox::page))
            .route("/inbox/answer", post(routes::inbox::answer))
            .route("/inbox/offer", post(routes::inbox::offer))
            .route("/people", get(routes::people::page))
            .route("/people/custodians", post(routes::people::add_custodian))
            .route("/people/custodians/remove", post(routes::people::remove_custodian))
            .route("/people/accept", post(routes::people::acceptance))
            .route("/people/guardians", post(routes::people::guardians))
            .route("/people/veto", post(routes::people::veto))
            .route("/records", get(routes::records::page))
            .route("/records/refresh", post(routes::records::refresh))
            .route("/records/export", get(routes::records::export))
            .route("/share", get(routes::share::page).post(routes::share::share))
            .route("/share/revoke", post(routes::share::revoke))
            .route("/share/break-glass", post(routes::share::break_glass))
            .route("/access", get(routes::access::page))
            .route("/research", get(routes::research::page).post(routes::research::set)),
        Role::Viewer => Router::new()
            .route("/", get(routes::viewer::shared))
            .route("/records", get(routes::viewer::records))
            .route("/records/export", get(routes::viewer::export))
            .route("/emergency", get(routes::emergency::page).post(routes::emergency::open)),
        Role::Researcher => Router::new()
            .route("/", get(routes::researcher::overview))
            .route("/bounties/redeem", post(routes::researcher::redeem))
            .route("/mining", get(routes::researcher::mining).post(routes::researcher::mine))
            .route("/results", get(routes::researcher::results)),
        Role::Provider => Router::new()
            .route("/", get(routes::provider::patients))
            .route("/enroll", post(routes::provider::enroll))
            .route("/import", get(routes::provider::import_page).post(routes::provider::import))
            .route("/publish", get(routes::provider::publish_page).post(routes::provider::publish))
            .route("/gatekeeper", get(routes::provider::gatekeeper))
            .route("/access", get(routes::provider::access)),
    };
    pages
        .route("/account", get(routes::account::page))
        .route("/account/passphrase", post(routes::account::change))
        .route("/account/new", get(routes::account::new).post(routes::account::create))
        .route(
            "/account/recover",
            get(routes::account::recover_page).post(routes::account::recover),
        )
        .route("/unlock", get(routes::unlock::page).post(routes::unlock::submit))
        .route("/lock", post(routes::unlock::lock))
        .route("/events", get(routes::events::stream))
        .route("/assets/{file}", get(assets::get))
        .fallback(routes::not_found)
        .with_state(state.clone())
        .layer(middleware::from_fn_with_state(state, crate::session::layer))
        .layer(middleware::from_fn(security_headers))
        .layer(middleware::from_fn_with_state(Arc::new(hosts), csrf::layer))
}

/// Headers that keep the pages from being framed, sniffed or mixed with other origins'
/// scripts, and from being cached.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: header::HeaderName, value: &'static str| {
        h.entry(name).or_insert(HeaderValue::from_static(value));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    );
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // `same-origin`, not `no-referrer`: with the latter browsers send `Origin: null`
    // on form posts, which the same-origin check would refuse.
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::CACHE_CONTROL, "no-store");
    response
}
