//! Who is asking, and how fast: the authentication step of the data routes' pipeline.
//!
//! For every request on a data route, before any handler runs:
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
    audit::Audit,
    auth::routes::{credential_check, is_signed},
    error::ApiError,
    server::Gatekeeper,
};
use alloy::primitives::Address;
use axum::{
    body::Bytes,
    extract::{ConnectInfo, FromRequest, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use std::{
    net::{IpAddr, SocketAddr},
    time::{Duration, Instant},
};

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
        Ok(request) => next.run(request).await,
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
        request.extensions_mut().insert(Caller { address: Address::ZERO, body });
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
    let requester = auth
        .authenticate_known(
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
    if let Err(throttled) = auth.check_requester(requester) {
        tracing::info!(target: "medrec::gatekeeper", %requester, "request throttled");
        return Err((Refusal::RequesterThrottled, None, throttled.into()));
    }
    audit.authenticated(requester);
    request.extensions_mut().insert(Caller { address: requester, body });
    Ok(request)
}

/// Takes the request's body out, honouring the router's `DefaultBodyLimit` (which
/// travels in the request's extensions).
async fn read_body(request: &mut Request) -> Result<Bytes, ApiError> {
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
