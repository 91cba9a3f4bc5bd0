//! The gatekeeper's side of the access log: every decision about a patient's records is
//! appended, allowed or denied, and a patient reads the entries about their own records
//! with a proof that each is covered by a head anchored on chain.
//!
//! - The audit is a layer ([`layer`]) around the data routes, not a call in each
//!   handler: it gives each request an [`Audit`] note, the authentication step writes
//!   the requester into it, handlers add the relationships they touched and how they
//!   decided ([`Touch`]), and once the response is ready the layer appends one entry
//!   per touch (or one without a relationship) through the batching writer. When the
//!   writer cannot take them, an allowed request is answered 503 instead: nothing is
//!   served unlogged.
//! - A request that never authenticated (no or refused credentials, a signer the chain
//!   does not know, a throttled requester) has no requester in its note and is not
//!   appended: strangers cannot grow the log. It is counted
//!   ([`crate::server::Gatekeeper::refusals`]) and rate-limited per source address.
//! - `GET /audit` (the `routes::log` module) returns a patient's entries with proofs, in
//!   the typed form of [`wire`]. The patient checks a proof with
//!   [`medrec_store::audit::verify`] and its anchor with `medrec_chain::anchors`.

pub mod wire;

pub use wire::{ProofJsonError, entry_json, proof_from_json, proof_json};

use crate::{error::Refused, server::Gatekeeper};
use alloy::primitives::{Address, B256};
use axum::{
    body::{Body, to_bytes},
    extract::{Request, State},
    http::Method,
    middleware::Next,
    response::{IntoResponse, Response},
};
use medrec_store::audit::{
    AccessLog, Action, AuditWriter, Decision, DenyReason, NewEntry, ResourceRef, WriterConfig,
};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex, PoisonError};

/// Largest response body hashed for the log (bigger bodies are not produced here).
const MAX_HASHED_BODY: usize = 64 * 1024 * 1024;

/// The access log of a gatekeeper: where entries go, and the queue that takes them.
#[derive(Debug)]
pub(crate) struct Trail {
    log: Arc<dyn AccessLog>,
    writer: AuditWriter,
}

/// One relationship a request touched, and how.
#[derive(Debug, Clone)]
pub(crate) struct Touch {
    pub(crate) relationship: Option<B256>,
    pub(crate) pointer: Option<u8>,
    pub(crate) decision: Decision,
    /// The differential-privacy budget a research release spent.
    pub(crate) epsilon: Option<f64>,
}

impl Touch {
    /// `relationship` (whole, no pointer) decided as `decision`.
    pub(crate) const fn relationship(relationship: B256, decision: Decision) -> Self {
        Self { relationship: Some(relationship), pointer: None, decision, epsilon: None }
    }
}

/// What the log will say of one request, filled in as the pipeline learns it.
#[derive(Debug, Default)]
struct Note {
    /// Who asked, once authenticated (and not throttled).
    requester: Option<Address>,
    resource: Option<ResourceRef>,
    touches: Vec<Touch>,
    /// The decision of a served request that touched no relationship.
    fallback: Option<Decision>,
}

/// A request's audit note (a request extension set by [`layer`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct Audit(Arc<Mutex<Note>>);

impl Audit {
    fn with<T>(&self, f: impl FnOnce(&mut Note) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The request was sent by `requester`: from now on it is logged.
    pub(crate) fn authenticated(&self, requester: Address) {
        self.with(|n| n.requester = Some(requester));
    }

    /// The resource the request names.
    pub(crate) fn resource(&self, resource: Option<ResourceRef>) {
        self.with(|n| n.resource = resource);
    }

    /// The request reached `touch.relationship`, decided as `touch.decision`.
    pub(crate) fn touch(&self, touch: Touch) {
        self.with(|n| n.touches.push(touch));
    }

    /// The decision of a request that touches no relationship when served (the
    /// provider's writes).
    pub(crate) fn decided(&self, decision: Decision) {
        self.with(|n| n.fallback = Some(decision));
    }

    fn take(&self) -> Note {
        self.with(std::mem::take)
    }
}

impl Trail {
    /// A trail appending to `log` through a writer started now.
    pub(crate) fn new(log: Arc<dyn AccessLog>, config: WriterConfig) -> Self {
        let writer = AuditWriter::spawn(Arc::clone(&log), config);
        Self { log, writer }
    }

    /// The log.
    pub(crate) fn log(&self) -> &dyn AccessLog {
        self.log.as_ref()
    }

    /// Waits until everything queued so far is appended.
    pub(crate) async fn flush(&self) {
        if let Err(err) = self.writer.flush().await {
            tracing::error!(target: "medrec::gatekeeper", %err, "the access log writer stopped");
        }
    }

    /// Logs a request of `requester` answered with `response`, one entry per touch (a
    /// request that touched none is logged once, with the reason of its refusal or the
    /// decision noted). Returns the response to send: `response` itself, or a 503 when
    /// an allowed request could not be logged.
    async fn record(
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
        let refused = parts.extensions.get::<Refused>().map(|r| r.0);
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

/// The audit layer of the data routes: see the [module documentation](self).
pub(crate) async fn layer(
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
    } else if path == "/audit" {
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

fn log_failure() -> Response {
    crate::error::ApiError::Unavailable {
        why: "the access log cannot record this request right now, so nothing was served; try again shortly",
        reason: "unavailable",
    }
    .into_response()
}

/// A deny decision with reason `code` (one of the gatekeeper's fixed codes).
pub(crate) fn deny(code: &str) -> Decision {
    Decision::Deny(code.parse::<DenyReason>().expect("the gatekeeper's deny codes are valid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_follow_the_route() {
        assert_eq!(default_action(&Method::GET, "/pointers/0x1/0"), Action::PointerRead);
        assert_eq!(default_action(&Method::GET, "/fhir/Observation/o1"), Action::FhirRead);
        assert_eq!(default_action(&Method::GET, "/fhir/Observation"), Action::FhirSearch);
        assert_eq!(default_action(&Method::GET, "/fhir/Observation/"), Action::FhirSearch);
        assert_eq!(default_action(&Method::POST, "/fhir"), Action::FhirWrite);
        assert_eq!(default_action(&Method::GET, "/audit"), Action::LogRead);
        assert_eq!(
            default_action(&Method::POST, "/research/redeem/0x1/0"),
            Action::BountyRedemption
        );
    }
}
