//! Public routes about the server itself: liveness, readiness, counters and the FHIR
//! CapabilityStatement.

use crate::{error::FHIR_JSON, server::Gatekeeper};
use axum::{
    Json,
    extract::State,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::json;

/// `GET /healthz`: the process answers.
pub(crate) async fn healthz() -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        &br#"{"status":"ok"}"#[..],
    )
        .into_response()
}

/// The body of `GET /readyz`.
#[derive(Debug, Serialize)]
struct Readyz {
    ready: bool,
    head: u64,
    indexed: u64,
}

/// `GET /readyz`: whether the consent index is fresh enough to decide (503 if not).
pub(crate) async fn readyz(State(g): State<Gatekeeper>) -> Response {
    let h = g.health();
    let ready = g.is_ready();
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(Readyz { ready, head: h.head, indexed: h.indexed })).into_response()
}

/// `GET /metrics` (Prometheus text format): the consent index's progress and the
/// requests refused before their handler, which are counted instead of logged.
pub(crate) async fn metrics(State(g): State<Gatekeeper>) -> Response {
    let h = g.health();
    let r = g.refusals();
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, kind: &str, value: u64| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
    };
    gauge("medrec_chain_head_block", "The chain's head as last seen.", "gauge", h.head);
    gauge(
        "medrec_consent_indexed_block",
        "The last block in the consent index.",
        "gauge",
        h.indexed,
    );
    gauge(
        "medrec_ready",
        "1 when the consent index is fresh enough to decide.",
        "gauge",
        u64::from(g.is_ready()),
    );
    out.push_str("# HELP medrec_refused_total Requests refused before their handler (not in the access log), by cause.\n# TYPE medrec_refused_total counter\n");
    for (cause, n) in [
        ("unauthenticated", r.unauthenticated),
        ("unknown_requester", r.unknown_requester),
        ("source_throttled", r.source_throttled),
        ("requester_throttled", r.requester_throttled),
        ("body", r.body),
    ] {
        out.push_str(&format!("medrec_refused_total{{cause=\"{cause}\"}} {n}\n"));
    }
    ([(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"))], out)
        .into_response()
}

/// The search parameters the store supports, with their FHIR types.
const SEARCH_PARAMS: [(&str, &str); 10] = [
    ("_id", "token"),
    ("_lastUpdated", "date"),
    ("_count", "number"),
    ("_offset", "number"),
    ("_sort", "special"),
    ("patient", "reference"),
    ("subject", "reference"),
    ("category", "token"),
    ("code", "token"),
    ("date", "date"),
];

/// `GET /fhir/metadata`: the FHIR CapabilityStatement, what this server reads and
/// searches (public, as FHIR requires).
pub(crate) async fn metadata() -> Response {
    let resources: Vec<serde_json::Value> = medrec_store::fhir::ResourceType::ALL
        .iter()
        .map(|t| {
            json!({
                "type": t.as_str(),
                "interaction": [{"code": "read"}, {"code": "vread"}, {"code": "search-type"}, {"code": "create"}, {"code": "update"}],
                "searchParam": SEARCH_PARAMS.iter().map(|(name, kind)| json!({"name": name, "type": kind})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let body = json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-24",
        "kind": "instance",
        "software": {"name": "MedRec Gatekeeper", "version": env!("CARGO_PKG_VERSION")},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [{
            "mode": "server",
            "security": {"description": "Every data request is signed (EIP-712) or carries a bearer token from Sign-In with Ethereum (EIP-4361, POST /auth/siwe), and is decided against the chain's consent before any record is read."},
            "resource": resources,
            "interaction": [{"code": "transaction"}, {"code": "batch"}]
        }]
    });
    (StatusCode::OK, [(header::CONTENT_TYPE, FHIR_JSON)], body.to_string()).into_response()
}
