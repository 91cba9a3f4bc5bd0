//! The gatekeeper's side of the access log: every decision about a patient's records is
//! appended, allowed or denied, and a patient reads the entries about their own records
//! with a proof that each is covered by a head anchored on chain.
//!
//! - The audit is a layer (`crate::pipeline::audit`) around the data routes, not a call
//!   in each handler: it gives each request an [`Audit`] note, the authentication step writes
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

use alloy::primitives::{Address, B256};
use medrec_store::audit::{
    AccessLog, AuditWriter, Decision, DenyReason, ResourceRef, WriterConfig,
};
use std::sync::{Arc, Mutex, PoisonError};

/// Largest response body hashed for the log (bigger bodies are not produced here).
/// The access log of a gatekeeper: where entries go, and the queue that takes them.
#[derive(Debug)]
pub(crate) struct Trail {
    log: Arc<dyn AccessLog>,
    pub(crate) writer: AuditWriter,
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
pub(crate) struct Note {
    /// Who asked, once authenticated (and not throttled).
    pub(crate) requester: Option<Address>,
    pub(crate) resource: Option<ResourceRef>,
    pub(crate) touches: Vec<Touch>,
    /// The decision of a served request that touched no relationship.
    pub(crate) fallback: Option<Decision>,
}

/// A request's audit note (a request extension set by `crate::pipeline::audit`).
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

    pub(crate) fn take(&self) -> Note {
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
}

/// A deny decision with reason `code` (one of the gatekeeper's fixed codes).
pub(crate) fn deny(code: &str) -> Decision {
    Decision::Deny(code.parse::<DenyReason>().expect("the gatekeeper's deny codes are valid"))
}
