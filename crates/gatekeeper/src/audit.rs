//! The gatekeeper's side of the access log: every request it decides is appended,
//! allowed or denied, and a patient reads the entries about their own records with a
//! proof that each is covered by a head anchored on chain.
//!
//! - Handlers hand the outcome of each request to `Trail::record`, which queues one
//!   entry per relationship the request touched (or one without a relationship) on the
//!   batching [`AuditWriter`]. When the queue cannot take it, an allowed request is
//!   answered 503 instead: nothing is served unlogged.
//! - `GET /audit?after=<seq>&limit=<n>` (authenticated) returns the entries about the
//!   requester's relationships as a patient, each with its proof (or `null` until the
//!   next anchor), in the JSON form [`entry_json`] / [`proof_from_json`] define. The
//!   patient checks a proof with [`medrec_store::audit::verify`] and its anchor on chain
//!   with `medrec_chain::anchors::check_anchor`.

use alloy::primitives::{Address, B256};
use axum::{
    body::{Body, to_bytes},
    http::StatusCode,
    response::Response,
};
use medrec_store::audit::{
    AccessLog, Action, Anchor, AuditWriter, Decision, LoggedEntry, NewEntry, Proof, ResourceRef,
    WriterConfig,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;

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

    /// Logs a request answered with `response`, touching `touches` (one entry each; a
    /// request that touched none is logged once with `fallback`). Returns the response
    /// to send: `response` itself, or a 503 when an allowed request could not be logged.
    pub(crate) async fn record(
        &self,
        requester: Address,
        action: Action,
        resource: Option<ResourceRef>,
        touches: Vec<Touch>,
        fallback: Decision,
        response: Response,
    ) -> Response {
        let (parts, body) = response.into_parts();
        let Ok(bytes) = to_bytes(body, MAX_HASHED_BODY).await else {
            return log_failure();
        };
        let served = parts.status.is_success();
        let response_hash = served.then(|| B256::from(<[u8; 32]>::from(Sha256::digest(&bytes))));
        let time = medrec_store::now_ms();
        let touches = if touches.is_empty() {
            vec![Touch { relationship: None, pointer: None, decision: fallback, epsilon: None }]
        } else {
            touches
        };
        let mut allowed = false;
        for t in touches {
            allowed |= t.decision.is_allowed();
            let mut entry = NewEntry::new(time, requester, action, t.decision);
            entry.relationship = t.relationship;
            entry.pointer = t.pointer;
            entry.resource.clone_from(&resource);
            entry.response_hash = response_hash;
            entry.epsilon = t.epsilon;
            if let Err(err) = self.writer.log(entry) {
                tracing::error!(target: "medrec::gatekeeper", %err, "the access log cannot take entries");
                if allowed || served {
                    return log_failure();
                }
            }
        }
        let mut response = Response::from_parts(parts, Body::from(bytes));
        response.extensions_mut().insert(Logged);
        response
    }
}

/// Marks a response whose request is in the access log already.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Logged;

/// Logs the requests on data routes that were refused before their handler ran
/// (missing or refused credentials, rate limits, unreadable bodies), as the zero
/// address when the requester is unknown.
pub(crate) async fn log_refused(
    axum::extract::State(g): axum::extract::State<crate::server::Gatekeeper>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let path = request.uri().path();
    let action = if path.starts_with("/pointers/") {
        Action::PointerRead
    } else if path.starts_with("/research/") {
        Action::BountyRedemption
    } else if path == "/audit" {
        Action::LogRead
    } else if request.method() == axum::http::Method::GET {
        if path.matches('/').count() >= 3 { Action::FhirRead } else { Action::FhirSearch }
    } else {
        Action::FhirWrite
    };
    let response = next.run(request).await;
    if response.extensions().get::<Logged>().is_some() {
        return response;
    }
    let reason = match response.status() {
        StatusCode::UNAUTHORIZED => "unauthenticated",
        StatusCode::TOO_MANY_REQUESTS => "throttled",
        StatusCode::PAYLOAD_TOO_LARGE => "too-large",
        StatusCode::BAD_REQUEST => "invalid-request",
        _ => "refused",
    };
    g.record(Address::ZERO, action, None, Vec::new(), deny(reason), response).await
}

fn log_failure() -> Response {
    crate::server::outcome(
        StatusCode::SERVICE_UNAVAILABLE,
        "transient",
        "the access log cannot record this request right now, so nothing was served; try again shortly",
    )
}

/// A deny reason code for the log.
pub(crate) fn deny(code: &str) -> Decision {
    Decision::Deny(code.parse().expect("the gatekeeper's deny codes are valid"))
}

/// An entry as JSON: every field the proof needs to recompute its hash.
pub fn entry_json(e: &LoggedEntry) -> Value {
    let n = &e.entry;
    json!({
        "seq": e.seq,
        "time": n.time,
        "requester": n.requester,
        "action": n.action.as_str(),
        "relationship": n.relationship,
        "pointer": n.pointer,
        "resource": n.resource.as_ref().map(|r| json!({
            "type": r.resource_type.as_str(),
            "id": r.id.as_ref().map(ToString::to_string),
        })),
        "decision": n.decision.to_string(),
        "response_hash": n.response_hash,
        "epsilon_bits": n.epsilon.map(|x| x.to_bits().to_string()),
        "prev_hash": e.prev_hash,
        "hash": e.hash,
    })
}

/// A proof as JSON: the entry, the digests that follow it and the anchor.
pub fn proof_json(p: &Proof) -> Value {
    json!({
        "entry": entry_json(&p.entry),
        "following": p.following,
        "anchor": {
            "size": p.anchor.size,
            "head": p.anchor.head,
            "block": p.anchor.block,
            "tx": p.anchor.tx,
        },
    })
}

/// Why a proof in JSON could not be read.
#[derive(Debug, thiserror::Error)]
#[error("the access log proof is malformed: {0}")]
pub struct ProofJsonError(String);

/// Reads a proof written by [`proof_json`].
pub fn proof_from_json(v: &Value) -> Result<Proof, ProofJsonError> {
    let bad = |what: &str| ProofJsonError(what.to_owned());
    let e = &v["entry"];
    let parse = |v: &Value, what: &str| -> Result<Value, ProofJsonError> {
        if v.is_null() { Err(bad(what)) } else { Ok(v.clone()) }
    };
    let from = |v: Value, what: &str| -> Result<B256, ProofJsonError> {
        serde_json::from_value(v).map_err(|_| bad(what))
    };
    let u64_of = |v: &Value, what: &str| v.as_u64().ok_or_else(|| bad(what));
    let mut entry = NewEntry::new(
        e["time"].as_i64().ok_or_else(|| bad("entry.time"))?,
        serde_json::from_value(parse(&e["requester"], "entry.requester")?)
            .map_err(|_| bad("entry.requester"))?,
        e["action"]
            .as_str()
            .ok_or_else(|| bad("entry.action"))?
            .parse()
            .map_err(|_| bad("entry.action"))?,
        e["decision"]
            .as_str()
            .ok_or_else(|| bad("entry.decision"))?
            .parse()
            .map_err(|_| bad("entry.decision"))?,
    );
    entry.relationship = match &e["relationship"] {
        Value::Null => None,
        v => Some(from(v.clone(), "entry.relationship")?),
    };
    entry.pointer = match &e["pointer"] {
        Value::Null => None,
        v => Some(u8::try_from(u64_of(v, "entry.pointer")?).map_err(|_| bad("entry.pointer"))?),
    };
    entry.resource = match &e["resource"] {
        Value::Null => None,
        r => Some(ResourceRef {
            resource_type: r["type"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| bad("entry.resource.type"))?,
            id: match &r["id"] {
                Value::Null => None,
                id => Some(
                    id.as_str()
                        .and_then(|i| i.parse().ok())
                        .ok_or_else(|| bad("entry.resource.id"))?,
                ),
            },
        }),
    };
    entry.response_hash = match &e["response_hash"] {
        Value::Null => None,
        v => Some(from(v.clone(), "entry.response_hash")?),
    };
    entry.epsilon = match &e["epsilon_bits"] {
        Value::Null => None,
        v => Some(f64::from_bits(
            v.as_str().and_then(|s| s.parse().ok()).ok_or_else(|| bad("entry.epsilon_bits"))?,
        )),
    };
    let logged = LoggedEntry {
        seq: u64_of(&e["seq"], "entry.seq")?,
        entry,
        prev_hash: from(parse(&e["prev_hash"], "entry.prev_hash")?, "entry.prev_hash")?,
        hash: from(parse(&e["hash"], "entry.hash")?, "entry.hash")?,
    };
    let following: Vec<B256> = serde_json::from_value(parse(&v["following"], "following")?)
        .map_err(|_| bad("following"))?;
    let a = &v["anchor"];
    let anchor = Anchor {
        size: u64_of(&a["size"], "anchor.size")?,
        head: from(parse(&a["head"], "anchor.head")?, "anchor.head")?,
        block: u64_of(&a["block"], "anchor.block")?,
        tx: from(parse(&a["tx"], "anchor.tx")?, "anchor.tx")?,
    };
    Ok(Proof { entry: logged, following, anchor })
}
