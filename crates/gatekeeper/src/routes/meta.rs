//! Public routes about the server itself: liveness, readiness, counters and the FHIR
//! CapabilityStatement.

use crate::{error::FHIR_JSON, fhir::params, server::Gatekeeper};
use axum::{
    Json,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use medrec_store::{fhir::ResourceType, search};
use serde::Serialize;
use serde_json::{Value, json};

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

/// The result parameters [`medrec_store::search::parameters`] lists beside the
/// search parameters; the CapabilityStatement names search parameters only.
const RESULT_PARAMS: [&str; 3] = ["_count", "_offset", "_sort"];

/// What one resource type supports, as `rest.resource` says it; with no writes when
/// the records are the provider's own database mapped read-only.
fn resource(ty: ResourceType, writes: bool) -> Value {
    let search_params: Vec<Value> = search::parameters(ty)
        .into_iter()
        .filter(|(name, _)| !RESULT_PARAMS.contains(name))
        .map(|(name, kind)| json!({"name": name, "type": kind.as_str()}))
        .collect();
    let interaction = if writes {
        json!([
            {"code": "read"}, {"code": "vread"}, {"code": "update"}, {"code": "create"},
            {"code": "history-instance"}, {"code": "search-type"}
        ])
    } else {
        json!([
            {"code": "read"}, {"code": "vread"}, {"code": "history-instance"},
            {"code": "search-type"}
        ])
    };
    let mut r = json!({
        "type": ty.as_str(),
        "interaction": interaction,
        "versioning": "versioned",
        "readHistory": true,
        "updateCreate": writes,
        "searchInclude": params::includes(ty).iter().map(|i| i.text()).collect::<Vec<_>>(),
        "searchRevInclude": params::revincludes(ty).iter().map(|i| i.text()).collect::<Vec<_>>(),
        "searchParam": search_params,
    });
    let obj = r.as_object_mut().expect("an object");
    for list in ["searchInclude", "searchRevInclude"] {
        if obj[list].as_array().is_some_and(Vec::is_empty) {
            obj.remove(list);
        }
    }
    if ty == ResourceType::Patient {
        obj.insert(
            "operation".into(),
            json!([{"name": "everything", "definition": "http://hl7.org/fhir/OperationDefinition/Patient-everything"}]),
        );
    }
    r
}

/// A read-only derived type ([`crate::fhir::state`]): read and search only.
fn derived(kind: crate::fhir::state::Derived) -> Value {
    let search_params: Vec<Value> = std::iter::once(("_id", "token"))
        .chain(kind.search_params().iter().copied())
        .map(|(name, kind)| json!({"name": name, "type": kind}))
        .collect();
    json!({
        "type": kind.as_str(),
        "documentation": "Read-only, derived from the chain's consent index and the access log; each points to the chain event or anchor that proves it.",
        "interaction": [{"code": "read"}, {"code": "search-type"}],
        "versioning": "no-version",
        "readHistory": false,
        "updateCreate": false,
        "searchParam": search_params,
    })
}

/// `rest.security`: SMART on FHIR, with its OAuth endpoints (the `oauth-uris`
/// extension; `/.well-known/smart-configuration` says the same and more).
fn security(base: &str) -> Value {
    let root = base.strip_suffix("/fhir").unwrap_or(base);
    json!({
        "extension": [{
            "url": "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
            "extension": [
                {"url": "authorize", "valueUri": format!("{root}/authorize")},
                {"url": "token", "valueUri": format!("{root}/token")},
                {"url": "revoke", "valueUri": format!("{root}/revoke")}
            ]
        }],
        "service": [{
            "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                "code": "SMART-on-FHIR"
            }],
            "text": "OAuth2 using SMART-on-FHIR profile (SMART App Launch 2.x, standalone launch, public clients with PKCE)"
        }],
        "description": "Every data request is signed (EIP-712), or carries a bearer token from Sign-In with Ethereum (EIP-4361, POST /auth/siwe) or from SMART App Launch (the person signs in with their wallet at /authorize; scopes only narrow what the chain allows), and is decided against the chain's consent before any record is read."
    })
}

/// `GET /fhir/metadata`: the FHIR R4 CapabilityStatement of this server (public, as
/// FHIR requires): an `instance` statement, so with `implementation`; per type exactly
/// the interactions, search parameters, includes and operations it serves.
pub(crate) async fn metadata(State(g): State<Gatekeeper>, headers: HeaderMap) -> Response {
    let writes = g.writer().is_ok();
    let mut resources: Vec<Value> =
        ResourceType::ALL.into_iter().map(|ty| resource(ty, writes)).collect();
    resources.extend(crate::fhir::state::Derived::ALL.into_iter().map(derived));
    let base = crate::fhir::base_url(&headers);
    let mut body = json!({
        "resourceType": "CapabilityStatement",
        "name": "MedRecGatekeeper",
        "title": "MedRec Gatekeeper",
        "status": "active",
        "date": "2026-11-24",
        "publisher": "MedRec",
        "description": "A provider's MedRec gatekeeper: FHIR R4 reads and searches scoped by patient consent recorded on chain, and the provider's writes.",
        "kind": "instance",
        "software": {"name": "MedRec Gatekeeper", "version": env!("CARGO_PKG_VERSION")},
        "implementation": {"description": "MedRec Gatekeeper", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["json", "application/fhir+json", "application/json"],
        "rest": [{
            "mode": "server",
            "documentation": "Search parameters not listed are ignored unless the request carries Prefer: handling=strict; the searchset's self link shows the parameters applied. _summary, _total, _elements, _include and _revinclude never reach beyond what consent allows.",
            "security": security(&base),
            "resource": resources,
            "interaction": [{"code": "transaction"}, {"code": "batch"}]
        }]
    });
    if !writes {
        // The provider's own database, served read-only: no transaction or batch either.
        if let Some(rest) = body["rest"][0].as_object_mut() {
            rest.remove("interaction");
        }
    }
    (StatusCode::OK, [(header::CONTENT_TYPE, FHIR_JSON)], body.to_string()).into_response()
}
