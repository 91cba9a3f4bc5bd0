//! The HTTP side: `GET /auth/nonce`, `POST /auth/siwe`, and authenticating requests.
//!
//! [`router`] serves the two sign-in routes over an [`AuthState`]; the gatekeeper merges
//! it into its own router. Its FHIR handlers learn who is asking from the
//! [`Authenticated`] extractor (or [`AuthState::authenticate`]), which accepts either a
//! bearer token or a per-request EIP-712 signature.
//!
//! Errors are answered as FHIR OperationOutcomes with the status of
//! [`AuthError::status`]: the issue's `diagnostics` is the sentence for a person, its
//! `details.coding` the stable [`AuthError::code`] (system [`AUTH_ERROR_SYSTEM`]) for
//! programs; 401s carry `WWW-Authenticate: Bearer`.
//!
//! Rate limits ([`crate::limits`]), when the state has them: [`Authenticated`] refuses a
//! requester over their limit, and the sign-in routes refuse an IP address over its own;
//! both answer 429 with `Retry-After` and an OperationOutcome (code `throttled`).

use super::{
    AuthError, Clock,
    request::{NONCE_HEADER, RequestVerifier, SIGNATURE_HEADER, TIME_HEADER},
    siwe::SiweAuthenticator,
    token::Session,
};
use crate::limits::{KeyedLimiter, RateLimits, Throttled};
use alloy::primitives::Address;
use axum::{
    Json, Router,
    body::Bytes,
    extract::{
        ConnectInfo, DefaultBodyLimit, FromRef, FromRequest, Request, State,
        rejection::BytesRejection,
    },
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::json;
use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Instant,
};

/// The largest `POST /auth/siwe` body accepted, in bytes.
pub const SIGN_IN_BODY_LIMIT: usize = 16 * 1024;

/// Everything authentication needs, cheap to clone and share between handlers.
#[derive(Debug, Clone)]
pub struct AuthState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    requests: RequestVerifier,
    siwe: SiweAuthenticator,
    clock: Clock,
    per_requester: Option<KeyedLimiter<Address>>,
    per_ip: Option<KeyedLimiter<IpAddr>>,
    per_source_failures: Option<KeyedLimiter<IpAddr>>,
}

impl AuthState {
    /// Shared state over a request verifier and a sign-in authenticator, on the system
    /// clock, without rate limits.
    pub fn new(requests: RequestVerifier, siwe: SiweAuthenticator) -> Self {
        Self::with_clock(requests, siwe, Clock::system())
    }

    /// The same on the given clock (a manual one in tests), without rate limits.
    pub fn with_clock(requests: RequestVerifier, siwe: SiweAuthenticator, clock: Clock) -> Self {
        Self::with_rate_limits(requests, siwe, clock, RateLimits::off())
    }

    /// The same with rate limits: per requester on every [`Authenticated`] request, and
    /// per IP address on the sign-in routes.
    pub fn with_rate_limits(
        requests: RequestVerifier,
        siwe: SiweAuthenticator,
        clock: Clock,
        limits: RateLimits,
    ) -> Self {
        let inner = Inner {
            requests,
            siwe,
            clock,
            per_requester: limits.requester.map(KeyedLimiter::new),
            per_ip: limits.sign_in.map(KeyedLimiter::new),
            per_source_failures: limits.unauthenticated.map(KeyedLimiter::new),
        };
        Self { inner: Arc::new(inner) }
    }

    /// Counts one request of `requester` against its rate limit (always `Ok` without one).
    /// The provider itself (the gatekeeper's own address) is never throttled: it imports
    /// records and enrolls patients in bulk from its own systems.
    pub fn check_requester(&self, requester: Address) -> Result<(), Throttled> {
        if requester == self.inner.requests.gatekeeper() {
            return Ok(());
        }
        self.inner.per_requester.as_ref().map_or(Ok(()), |l| l.check(&requester, Instant::now()))
    }

    /// Counts one sign-in request from `ip` against its rate limit (always `Ok` without
    /// one).
    pub fn check_sign_in(&self, ip: IpAddr) -> Result<(), Throttled> {
        self.inner.per_ip.as_ref().map_or(Ok(()), |l| l.check(&ip, Instant::now()))
    }

    /// The budget of failed authentications per source address, when limited.
    pub fn failed_authentications(&self) -> Option<&KeyedLimiter<IpAddr>> {
        self.inner.per_source_failures.as_ref()
    }

    /// The per-request signature verifier.
    pub fn requests(&self) -> &RequestVerifier {
        &self.inner.requests
    }

    /// The sign-in authenticator, with its nonces and tokens.
    pub fn siwe(&self) -> &SiweAuthenticator {
        &self.inner.siwe
    }

    /// The clock the HTTP handlers read.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Who sent a request, at the clock's current time: see [`AuthState::authenticate_at`].
    pub fn authenticate(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Address, AuthError> {
        self.authenticate_at(method, uri, headers, body, self.inner.clock.now())
    }

    /// Who sent a request, at `now` (unix seconds): the address behind its
    /// `Authorization: Bearer` token, or the signer of its EIP-712 headers over its method,
    /// path and query, and body. Exactly one of the two must be present.
    pub fn authenticate_at(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        now: u64,
    ) -> Result<Address, AuthError> {
        self.authenticate_known(method, uri, headers, body, now, |_| true)
    }

    /// Like [`AuthState::authenticate_at`], but refuses with
    /// [`AuthError::UnknownSigner`] a requester for whom `is_known` is false; a signer is
    /// refused before its nonce takes a place in the replay cache, so that strangers'
    /// requests cannot fill it.
    pub fn authenticate_known(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        now: u64,
        is_known: impl FnOnce(Address) -> bool,
    ) -> Result<Address, AuthError> {
        let session = self.authenticate_session(method, uri, headers, body, now, is_known)?;
        // A SMART token is narrowed by its scopes, which only the data pipeline applies:
        // it must not pass where nothing would.
        if session.grant.is_some() {
            return Err(AuthError::InsufficientScope(
                "a SMART token is for the FHIR API only".into(),
            ));
        }
        Ok(session.address)
    }

    /// Like [`AuthState::authenticate_known`], but a SMART token is accepted and comes
    /// back with its grant, for the caller to apply
    /// ([`crate::smart::check_route`], [`crate::access`]).
    pub fn authenticate_session(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: &[u8],
        now: u64,
        is_known: impl FnOnce(Address) -> bool,
    ) -> Result<Session, AuthError> {
        let result = match credential(headers)? {
            Credential::Bearer(token) => {
                let session = self.inner.siwe.session(token, now).ok_or(AuthError::InvalidToken)?;
                if is_known(session.address) {
                    Ok(session)
                } else if let Some(grant) = &session.grant {
                    // The chain no longer names the holder of a SMART token: it has ended.
                    grant.family.revoke();
                    Err(AuthError::InvalidToken)
                } else {
                    Err(AuthError::UnknownSigner(session.address))
                }
            }
            Credential::Signature => {
                let target = uri.path_and_query().map_or("/", |pq| pq.as_str());
                self.inner
                    .requests
                    .verify_known(method.as_str(), target, body, headers, now, is_known)
                    .map(|address| Session { address, grant: None })
            }
        };
        if let Err(e) = &result {
            tracing::debug!(error = e.code(), "request not authenticated");
        }
        result
    }
}

/// Whether a request carries (some of) the per-request signature headers.
pub(crate) fn is_signed(headers: &HeaderMap) -> bool {
    [SIGNATURE_HEADER, TIME_HEADER, NONCE_HEADER].iter().any(|h| headers.contains_key(h))
}

enum Credential<'a> {
    Bearer(&'a str),
    Signature,
}

pub(crate) fn credential_check(headers: &HeaderMap) -> Result<(), AuthError> {
    credential(headers).map(|_| ())
}

fn credential(headers: &HeaderMap) -> Result<Credential<'_>, AuthError> {
    let signed = is_signed(headers);
    let mut authorization = headers.get_all(header::AUTHORIZATION).iter();
    match (authorization.next(), signed) {
        (None, false) => Err(AuthError::MissingCredentials),
        (None, true) => Ok(Credential::Signature),
        (Some(_), true) => Err(AuthError::AmbiguousCredentials),
        (Some(value), false) => {
            if authorization.next().is_some() {
                return Err(AuthError::MalformedAuthorization);
            }
            let value = value.to_str().map_err(|_| AuthError::MalformedAuthorization)?;
            let (scheme, token) = value.split_once(' ').ok_or(AuthError::MalformedAuthorization)?;
            let token = token.trim();
            if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
                return Err(AuthError::MalformedAuthorization);
            }
            Ok(Credential::Bearer(token))
        }
    }
}

/// Who may sign in: a predicate over the address a sign-in message proves.
pub type Membership = Arc<dyn Fn(Address) -> bool + Send + Sync>;

/// The sign-in routes' state: authentication and who may sign in.
#[derive(Clone)]
struct SignInState {
    auth: AuthState,
    known: Membership,
}

impl FromRef<SignInState> for AuthState {
    fn from_ref(s: &SignInState) -> Self {
        s.auth.clone()
    }
}

/// The sign-in routes, `GET /auth/nonce` and `POST /auth/siwe`, over `state`, with its
/// per-IP rate limit when the router is served with `ConnectInfo<SocketAddr>`; anyone
/// who proves an address may sign in (see [`router_for`] to admit only some).
pub fn router(state: AuthState) -> Router {
    router_for(state, Arc::new(|_| true))
}

/// Like [`router`], but a sign-in whose proven address `known` refuses is answered 403
/// (`unknown_signer`) and issues no token, so that strangers cannot fill the token store.
pub fn router_for(state: AuthState, known: Membership) -> Router {
    let routes_state = SignInState { auth: state.clone(), known };
    Router::new()
        .route("/auth/nonce", get(nonce))
        .route("/auth/siwe", post(sign_in).layer(DefaultBodyLimit::max(SIGN_IN_BODY_LIMIT)))
        .route_layer(middleware::from_fn_with_state(state, limit_sign_in))
        .with_state(routes_state)
}

/// Refuses a sign-in request from an IP address over its rate limit.
pub(crate) async fn limit_sign_in(
    State(state): State<AuthState>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    if let Some(ip) = peer
        && let Err(throttled) = state.check_sign_in(ip)
    {
        tracing::info!(target: "medrec::gatekeeper", %ip, "sign-in throttled");
        return throttled.into_response();
    }
    next.run(request).await
}

/// `{"nonce": "<32 hex digits>"}`
async fn nonce(State(state): State<AuthState>) -> Response {
    match state.siwe().issue_nonce(state.clock().now()) {
        Ok(nonce) => no_store(StatusCode::OK, &json!({ "nonce": nonce })),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct SignIn {
    message: String,
    signature: String,
}

/// `{"message", "signature"}` → `{"access_token", "token_type": "Bearer", "expires_in"}`
async fn sign_in(
    State(SignInState { auth: state, known }): State<SignInState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_error(&rejection, SIGN_IN_BODY_LIMIT).into_response(),
    };
    let request: SignIn = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => return AuthError::MalformedBody(e.to_string()).into_response(),
    };
    let now = state.clock().now();
    match state.siwe().sign_in_known(&request.message, &request.signature, now, |a| known(a)) {
        Ok(token) => no_store(
            StatusCode::OK,
            &json!({
                "access_token": token.access_token(),
                "token_type": "Bearer",
                "expires_in": token.expires_in(),
            }),
        ),
        Err(e) => {
            tracing::debug!(error = e.code(), "sign-in refused");
            e.into_response()
        }
    }
}

fn body_error(rejection: &BytesRejection, limit: usize) -> AuthError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        AuthError::BodyTooLarge { limit }
    } else {
        AuthError::MalformedBody(rejection.body_text())
    }
}

fn no_store(status: StatusCode, body: &serde_json::Value) -> Response {
    (status, [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))], Json(body))
        .into_response()
}

pub use crate::error::AUTH_ERROR_SYSTEM;

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        crate::error::ApiError::Auth(self).into_response()
    }
}

/// An authenticated request: who sent it, and its body (already read, since a signed
/// request's signature covers it).
///
/// As an extractor it must come last among a handler's arguments. It needs
/// [`AuthState`] from the router's state (`AuthState: FromRef<S>`), and honours the
/// router's `DefaultBodyLimit`.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The requester's address.
    pub requester: Address,
    /// The request body.
    pub body: Bytes,
}

/// Why [`Authenticated`] refused a request.
#[derive(Debug)]
pub enum AuthRejection {
    /// The credentials were refused.
    Auth(AuthError),
    /// The body could not be read (too large, or the connection failed).
    Body(BytesRejection),
    /// The requester is over their rate limit.
    Throttled(Throttled),
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        match self {
            Self::Auth(e) => e.into_response(),
            Self::Throttled(t) => t.into_response(),
            Self::Body(rejection) => crate::error::ApiError::Body {
                status: rejection.status(),
                why: rejection.body_text(),
            }
            .into_response(),
        }
    }
}

impl<S> FromRequest<S> for Authenticated
where
    S: Send + Sync,
    AuthState: FromRef<S>,
{
    type Rejection = AuthRejection;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let auth = AuthState::from_ref(state);
        let (mut parts, body) = req.into_parts();
        // Fail fast on missing or conflicting credentials before reading any body.
        credential(&parts.headers).map_err(AuthRejection::Auth)?;
        let headers = std::mem::take(&mut parts.headers);
        let (method, uri) = (parts.method.clone(), parts.uri.clone());
        let body = Bytes::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(AuthRejection::Body)?;
        let requester =
            auth.authenticate(&method, &uri, &headers, &body).map_err(AuthRejection::Auth)?;
        if let Err(throttled) = auth.check_requester(requester) {
            tracing::info!(target: "medrec::gatekeeper", %requester, "request throttled");
            return Err(AuthRejection::Throttled(throttled));
        }
        Ok(Self { requester, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::RateLimit;

    #[test]
    fn the_provider_is_never_throttled_and_others_are() {
        let provider = Address::repeat_byte(0x6b);
        let someone = Address::repeat_byte(0x11);
        let domain = "gk.example".parse().expect("an authority");
        let auth = AuthState::with_rate_limits(
            RequestVerifier::new(31337, provider),
            SiweAuthenticator::new(crate::auth::SiweConfig::new(domain, 31337)),
            Clock::system(),
            RateLimits { requester: RateLimit::new(1, 2), ..RateLimits::off() },
        );
        for _ in 0..100 {
            assert!(auth.check_requester(provider).is_ok(), "the provider was throttled");
        }
        let refused = (0..10).filter(|_| auth.check_requester(someone).is_err()).count();
        assert!(refused >= 7, "a burst of 2 at 1 per second lets at most 3 of 10 through");
    }
}
