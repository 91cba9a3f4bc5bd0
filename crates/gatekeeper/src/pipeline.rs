//! The data routes' pipeline around every handler: the audit ([`audit`], outermost)
//! and who is asking and how fast ([`authenticate`]).
//!
//! **Audit.** [`audit`] gives each request an empty [`Audit`] note; once the response
//! is ready it appends one access log entry per relationship the handler touched (or one
//! with the refusal's reason) through the batching writer, with the SHA-256 of the body
//! served; when the writer cannot take them, an allowed request is answered 503 instead.
//! A request whose note names no requester never authenticated and is not appended.
//!
//! **Authentication.** For every request on a data route, before any handler runs:
//!
//! 1. **Source budget.** A source address whose failed authentications are over their
//!    rate limit has its signed requests refused with 429 *before* the signature is
//!    checked (recovering a signature is the expensive part). Bearer tokens are still
//!    looked up (a hash-map read), so an authorized reader behind the same address keeps
//!    working.
//! 2. **Who.** The bearer token or the EIP-712 signature names an address; it must be
//!    the provider or an address the chain names as a patient, a viewer or a bounty
//!    owner ([`Gatekeeper::is_known`]). A signer the chain does not know is refused
//!    before its nonce takes a place in the replay cache.
//! 3. **How fast.** The requester's own rate limit (the provider is never throttled).
//!
//! A refusal at any of these steps is counted ([`Gatekeeper::refusals`]) and takes one
//! token of the source address's budget, but is not appended to the access log: the log
//! records decisions about patients' records, and strangers cannot grow it. Once a
//! source's budget is spent, its refusals (429) are held back for a second each,
//! so a flood from it slows to a trickle per connection (and connections per source are
//! capped: `serve::ConnectionLimits`) instead of taking the cores. A request
//! that passes is marked with its requester in the request's [`Audit`] note (from then
//! on it is logged) and carries a [`Caller`] for the handler.

use crate::{
    audit::{Audit, Note, Touch, Trail, deny},
    auth::routes::{credential_check, is_signed},
    error::ApiError,
    server::Gatekeeper,
};
use alloy::primitives::{Address, B256};
use axum::{
    body::{Body, Bytes, HttpBody as _, to_bytes},
    extract::{ConnectInfo, FromRequest, Request, State},
    http::Method,
    middleware::Next,
    response::{IntoResponse, Response},
};
use medrec_store::audit::{Action, NewEntry};
use sha2::{Digest, Sha256};
use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

/// The largest response body hashed for the log (a larger one is refused as unloggable).
const MAX_HASHED_BODY: usize = 64 * 1024 * 1024;

/// How long a refusal to a source over its budget is held back.
const PAUSE: Duration = Duration::from_secs(1);

/// Who sent an authenticated request, and its body (already read: a signed request's
/// signature covers it). A request extension of the data routes.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The requester's address (the zero address when authorization is switched off
    /// for a benchmark baseline).
    pub(crate) address: Address,
    /// The request body.
    pub(crate) body: Bytes,
    /// The scopes of the SMART token the request carried, which narrow what the chain
    /// allows ([`crate::access::Scope`]); `None` for any other credential.
    pub(crate) grant: Option<std::sync::Arc<crate::smart::Grant>>,
}

/// Why a request was refused before its handler, for [`Gatekeeper::refusals`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No credentials, malformed ones, or credentials that were refused.
    Unauthenticated,
    /// Valid credentials of an address the chain does not know.
    UnknownRequester,
    /// The source address is over its budget of failed authentications.
    SourceThrottled,
    /// The requester is over its rate limit.
    RequesterThrottled,
    /// The body could not be read (too large, or the connection failed).
    Body,
}

/// The authentication layer: see the [module documentation](self).
pub(crate) async fn authenticate(
    State(g): State<Gatekeeper>,
    request: Request,
    next: Next,
) -> Response {
    match who(&g, request).await {
        Ok(request) => {
            // A SMART token reaches the FHIR API only, and there only the types and
            // interactions its scopes name (logged as a refusal: the requester is known).
            let grant = request.extensions().get::<Caller>().and_then(|c| c.grant.as_deref());
            if let Some(grant) = grant
                && let Err(e) =
                    crate::smart::check_route(grant, request.method(), request.uri().path())
            {
                return ApiError::Auth(e).into_response();
            }
            next.run(request).await
        }
        Err((refusal, source, error)) => {
            g.count_refusal(refusal);
            // Every refusal spends the source's budget; once it is spent, say so, and
            // only after a second's pause: a source that keeps failing is slowed to a trickle on
            // each of its connections (a sleeping task costs no CPU), so that a flood
            // cannot take the cores from the requesters who authenticate.
            let over = match (source, g.note_failed_authentication(source)) {
                (Some(_), Some(throttled)) if refusal != Refusal::RequesterThrottled => {
                    Some(throttled)
                }
                _ => match &error {
                    ApiError::Throttled(t) if refusal == Refusal::SourceThrottled => Some(*t),
                    _ => None,
                },
            };
            match over {
                Some(throttled) => {
                    tokio::time::sleep(PAUSE).await;
                    ApiError::Throttled(throttled).into_response()
                }
                None => error.into_response(),
            }
        }
    }
}

type Refused = (Refusal, Option<IpAddr>, ApiError);

async fn who(g: &Gatekeeper, request: Request) -> Result<Request, Refused> {
    let source = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
    let refused = |refusal, error| (refusal, source, error);
    let audit = request.extensions().get::<Audit>().cloned().unwrap_or_default();
    let mut request = request;
    if g.authorization_off() {
        let body = read_body(&mut request).await.map_err(|e| refused(Refusal::Body, e))?;
        audit.authenticated(Address::ZERO);
        request.extensions_mut().insert(Caller { address: Address::ZERO, body, grant: None });
        return Ok(request);
    }
    // Missing or conflicting credentials: refused before any body is read.
    credential_check(request.headers()).map_err(|e| refused(Refusal::Unauthenticated, e.into()))?;
    if is_signed(request.headers())
        && let Some(throttled) = source.and_then(|ip| g.source_over_budget(ip))
    {
        return Err(refused(Refusal::SourceThrottled, throttled.into()));
    }
    let body = read_body(&mut request).await.map_err(|e| refused(Refusal::Body, e))?;
    let auth = g.auth();
    let session = auth
        .authenticate_session(
            request.method(),
            request.uri(),
            request.headers(),
            &body,
            auth.clock().now(),
            |a| g.is_known(a),
        )
        .map_err(|e| {
            let refusal = if matches!(e, crate::auth::AuthError::UnknownSigner(_)) {
                Refusal::UnknownRequester
            } else {
                Refusal::Unauthenticated
            };
            refused(refusal, e.into())
        })?;
    let requester = session.address;
    if let Err(throttled) = auth.check_requester(requester) {
        tracing::info!(target: "medrec::gatekeeper", %requester, "request throttled");
        return Err((Refusal::RequesterThrottled, None, throttled.into()));
    }
    audit.authenticated(requester);
    request.extensions_mut().insert(Caller { address: requester, body, grant: session.grant });
    Ok(request)
}

/// Takes the request's body out, honouring the router's `DefaultBodyLimit` (which
/// travels in the request's extensions).
async fn read_body(request: &mut Request) -> Result<Bytes, ApiError> {
    // A request that says it has no body (a GET): nothing to read and no limit to apply,
    // so no need to copy the request's extensions for the extractor.
    if request.body().size_hint().exact() == Some(0) {
        return Ok(Bytes::new());
    }
    let body = std::mem::replace(request.body_mut(), axum::body::Body::empty());
    let mut alone = Request::new(body);
    *alone.extensions_mut() = request.extensions().clone();
    Bytes::from_request(alone, &()).await.map_err(|rejection| ApiError::Body {
        status: rejection.status(),
        why: rejection.body_text(),
    })
}

impl Gatekeeper {
    /// When `source` has spent its budget of failed authentications.
    fn source_over_budget(&self, source: IpAddr) -> Option<crate::limits::Throttled> {
        self.unauthenticated_limiter()?.peek(&source, Instant::now())
    }

    /// Takes one token of `source`'s budget of failed authentications; says when it is
    /// spent.
    fn note_failed_authentication(
        &self,
        source: Option<IpAddr>,
    ) -> Option<crate::limits::Throttled> {
        self.unauthenticated_limiter()?.check(&source?, Instant::now()).err()
    }
}

/// The audit layer of the data routes, outermost: see the [module documentation](self).
pub(crate) async fn audit(
    State(g): State<Gatekeeper>,
    mut request: Request,
    next: Next,
) -> Response {
    let action = default_action(request.method(), request.uri().path());
    let audit = Audit::default();
    request.extensions_mut().insert(audit.clone());
    let response = next.run(request).await;
    let note = audit.take();
    let Some(requester) = note.requester else {
        // Never authenticated: counted and rate-limited by the authentication step.
        return response;
    };
    match g.trail() {
        Some(trail) => trail.record(requester, action, note, response).await,
        None => response,
    }
}

/// The action a data route's request is, by its method and path.
fn default_action(method: &Method, path: &str) -> Action {
    if path.starts_with("/pointers/") {
        Action::PointerRead
    } else if path.starts_with("/research/redeem/") {
        Action::BountyRedemption
    } else if path == "/audit" || path.starts_with("/fhir/AuditEvent") {
        Action::LogRead
    } else if method == Method::GET {
        if path.trim_end_matches('/').matches('/').count() >= 3 {
            Action::FhirRead
        } else {
            Action::FhirSearch
        }
    } else {
        Action::FhirWrite
    }
}

impl Trail {
    /// Logs a request of `requester` answered with `response`, one entry per touch (a
    /// request that touched none is logged once, with the reason of its refusal or the
    /// decision noted). Returns the response to send: `response` itself, or a 503 when
    /// an allowed request could not be logged.
    pub(crate) async fn record(
        &self,
        requester: Address,
        action: Action,
        note: Note,
        response: Response,
    ) -> Response {
        let (parts, body) = response.into_parts();
        let Ok(bytes) = to_bytes(body, MAX_HASHED_BODY).await else {
            return log_failure();
        };
        let served = parts.status.is_success();
        let refused = parts.extensions.get::<crate::error::Refused>().map(|r| r.0);
        let mut touches = note.touches;
        if touches.is_empty() {
            let decision = match (refused, note.fallback) {
                (Some(reason), _) => deny(reason),
                (None, Some(decision)) => decision,
                // Served, touching no patient's records: nothing to log.
                (None, None) if served => return Response::from_parts(parts, Body::from(bytes)),
                (None, None) => deny("failed"),
            };
            touches.push(Touch { relationship: None, pointer: None, decision, epsilon: None });
        }
        let response_hash = served.then(|| B256::from(<[u8; 32]>::from(Sha256::digest(&bytes))));
        let time = medrec_store::now_ms();
        let mut allowed = false;
        for t in touches {
            allowed |= t.decision.is_allowed();
            let mut entry = NewEntry::new(time, requester, action, t.decision);
            entry.relationship = t.relationship;
            entry.pointer = t.pointer;
            entry.resource.clone_from(&note.resource);
            entry.response_hash = response_hash;
            entry.epsilon = t.epsilon;
            if let Err(err) = self.writer.log(entry) {
                tracing::error!(target: "medrec::gatekeeper", %err, "the access log cannot take entries");
                if allowed || served {
                    return log_failure();
                }
            }
        }
        Response::from_parts(parts, Body::from(bytes))
    }
}

fn log_failure() -> Response {
    crate::error::ApiError::Unavailable {
        why: "the access log cannot record this request right now, so nothing was served; try again shortly",
        reason: "unavailable",
    }
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_follow_the_route() {
        assert_eq!(default_action(&Method::GET, "/pointers/0x1/0"), Action::PointerRead);
        assert_eq!(default_action(&Method::GET, "/fhir/Observation/o1"), Action::FhirRead);
        let history = "/fhir/Observation/o1/_history";
        assert_eq!(default_action(&Method::GET, history), Action::FhirRead);
        assert_eq!(default_action(&Method::GET, "/fhir/Observation"), Action::FhirSearch);
        assert_eq!(default_action(&Method::GET, "/fhir/Observation/"), Action::FhirSearch);
        assert_eq!(default_action(&Method::POST, "/fhir"), Action::FhirWrite);
        assert_eq!(default_action(&Method::GET, "/audit"), Action::LogRead);
        assert_eq!(default_action(&Method::GET, "/fhir/AuditEvent"), Action::LogRead);
        assert_eq!(default_action(&Method::GET, "/fhir/AuditEvent/3"), Action::LogRead);
        assert_eq!(
            default_action(&Method::POST, "/research/redeem/0x1/0"),
            Action::BountyRedemption
        );
    }
}
