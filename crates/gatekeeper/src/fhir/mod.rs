//! The FHIR R4 REST API at `/fhir`: read, version read, history, search with paging
//! ([`read`]), and the provider's create, update and transaction/batch import
//! ([`write`]).
//!
//! Every request has been authenticated by the pipeline ([`crate::pipeline`]) and is
//! scoped before the store is touched ([`crate::access`]): the provider reads and writes
//! everything, a patient reads their compartment, a viewer the union of the pointers
//! granted to it, anyone else nothing (403). A read of a resource outside the
//! requester's scope answers 404 exactly as for a resource that does not exist. Errors
//! are FHIR OperationOutcomes ([`ApiError`]). Each relationship a request reaches is
//! noted for the access log, the provider's own reads included (against the patient of
//! each resource it read).
//!
//! | Route | Who | What |
//! |---|---|---|
//! | `GET /fhir/{type}/{id}` | scoped | the current version (`_summary`, `_elements`) |
//! | `GET /fhir/{type}/{id}/_history` | scoped | a `history` Bundle of its versions, newest first (`_count`, `_offset`); a provider's own database mapped read-only keeps the current version only |
//! | `GET /fhir/{type}/{id}/_history/{v}` | scoped | one version |
//! | `GET /fhir/{type}?…` | scoped | a `searchset` Bundle with `self`/`next`/`previous` links; `_summary`, `_total`, `_elements`, `_include`, `_revinclude` ([`params`], [`include`]) |
//! | `GET /fhir/Patient/{id}/$everything` | scoped | every resource of the patient's compartment the requester may see ([`include`]) |
//! | `POST /fhir/{type}` | provider | create (201, `Location`, `ETag`) |
//! | `PUT /fhir/{type}/{id}` | provider | update (200, or 201 for a new id) |
//! | `POST /fhir` | provider | a `transaction` (all or none) or `batch` Bundle |
//! | `GET /fhir/{Consent,AuditEvent,Provenance}[/{id}]` | provider, patient, viewer | MedRec's state as FHIR, read-only ([`state`]) |
//!
//! Every route also answers with a trailing slash, and runs inside the content
//! negotiation of [`format`] (`_format`, `Accept`). Unknown search parameters are
//! ignored unless the client sends `Prefer: handling=strict` ([`params`]).

pub(crate) mod format;
pub(crate) mod include;
pub(crate) mod params;
pub(crate) mod read;
pub(crate) mod state;
pub(crate) mod write;

use crate::{
    access::Scope,
    audit::{Audit, Touch},
    error::{ApiError, FHIR_JSON},
    server::Gatekeeper,
};
use axum::{
    Router,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::from_fn,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use medrec_store::{
    RawStored, Stored,
    audit::{Decision, ResourceRef},
    fhir::{Resource, ResourceId, ResourceType},
};
use serde::Serialize;
use serde_json::Value;

/// The `/fhir` routes other than `metadata`.
pub(crate) fn routes() -> Router<Gatekeeper> {
    Router::new()
        .merge(state::routes())
        .route("/fhir", post(write::bundle))
        .route("/fhir/", post(write::bundle))
        .route("/fhir/{resource_type}", get(read::search).post(write::create))
        .route("/fhir/{resource_type}/", get(read::search).post(write::create))
        .route("/fhir/{resource_type}/{id}", get(read::read).put(write::update))
        .route("/fhir/{resource_type}/{id}/", get(read::read).put(write::update))
        .route("/fhir/Patient/{id}/$everything", get(include::everything))
        .route("/fhir/Patient/{id}/$everything/", get(include::everything))
        .route("/fhir/{resource_type}/{id}/_history", get(read::history))
        .route("/fhir/{resource_type}/{id}/_history/", get(read::history))
        .route("/fhir/{resource_type}/{id}/_history/{version}", get(read::vread))
        .route("/fhir/{resource_type}/{id}/_history/{version}/", get(read::vread))
        .route_layer(from_fn(format::negotiate))
}

type ApiResult = Result<Response, ApiError>;

fn resource_type(s: &str) -> Result<ResourceType, ApiError> {
    s.parse().map_err(|e: medrec_store::fhir::FhirError| ApiError::Invalid(e.to_string()))
}

fn resource_id(s: &str) -> Result<ResourceId, ApiError> {
    s.parse().map_err(|e: medrec_store::fhir::FhirError| ApiError::Invalid(e.to_string()))
}

/// The resource a request names, for the log (`None` when the path is malformed).
fn resource_ref(ty: &str, id: Option<&str>) -> Option<ResourceRef> {
    let resource_type = ty.parse().ok()?;
    let id = match id {
        Some(id) => Some(id.parse().ok()?),
        None => None,
    };
    Some(ResourceRef { resource_type, id })
}

/// The base URL of this FHIR server as the requester addressed it.
pub(crate) fn base_url(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    format!("{proto}://{host}/fhir")
}

/// A FHIR JSON body with `status`.
fn fhir_json(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, FHIR_JSON)], body).into_response()
}

/// A single resource with its `ETag`, and `Location` when created.
fn resource_response(status: StatusCode, stored: &Stored, location: Option<String>) -> Response {
    let body = serde_json::to_vec(&stored.json).expect("JSON serialises");
    let mut response = fhir_json(status, body);
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("W/\"{}\"", stored.version)) {
        h.insert(header::ETAG, v);
    }
    if let Some(v) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        h.insert(header::LOCATION, v);
    }
    response
}

fn history_url(base: &str, stored: &Stored) -> String {
    format!("{base}/{}/{}/_history/{}", stored.resource_type, stored.id, stored.version)
}

/// A `searchset` Bundle (typed wire form).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Searchset {
    resource_type: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    total: Option<u64>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    link: Vec<Link>,
    entry: Vec<SearchEntry>,
}

/// A link of a Bundle.
#[derive(Debug, Serialize)]
struct Link {
    relation: &'static str,
    url: String,
}

/// An entry of a `searchset` Bundle.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SearchEntry {
    #[serde(skip_serializing_if = "Option::is_none")]
    full_url: Option<String>,
    resource: Value,
    search: SearchMode,
}

#[derive(Debug, Serialize)]
struct SearchMode {
    mode: &'static str,
}

impl Searchset {
    /// Every resource of a pointer's result, as matches, without links.
    pub(crate) fn of_resources(resources: Vec<Value>) -> Self {
        Self {
            resource_type: "Bundle",
            kind: "searchset",
            total: Some(resources.len() as u64),
            link: Vec::new(),
            entry: resources
                .into_iter()
                .map(|resource| SearchEntry {
                    full_url: None,
                    resource,
                    search: SearchMode { mode: "match" },
                })
                .collect(),
        }
    }

    /// As JSON bytes.
    pub(crate) fn to_vec(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a Bundle serialises")
    }
}

/// Notes for the log the relationships `scope` reaches for a request on `ty`, limited
/// to the compartment of `patient` when known.
fn note_scope(audit: &Audit, scope: &Scope, ty: Option<ResourceType>, patient: Option<&str>) {
    for c in scope
        .candidates(ty)
        .into_iter()
        .filter(|c| patient.is_none_or(|p| c.patient().as_str() == p))
    {
        audit.touch(Touch {
            pointer: c.pointer(),
            ..Touch::relationship(c.relationship().0, c.decision())
        });
    }
}

/// Notes for the log the provider's read of resources in the compartments of
/// `patients`: one entry for each relationship about one of them (so the patient sees
/// the provider's own reads), or one without a relationship when none is.
fn note_provider_read(g: &Gatekeeper, audit: &Audit, patients: impl IntoIterator<Item = String>) {
    let mut patients: Vec<String> = patients.into_iter().collect();
    patients.sort();
    patients.dedup();
    let touched = g.with_enrolled(|e| {
        let mut ids: Vec<_> =
            patients.iter().flat_map(|p| e.of_patient(p).iter().copied()).collect();
        ids.sort();
        ids.dedup();
        ids
    });
    for id in &touched {
        audit.touch(Touch::relationship(id.0, Decision::AllowProvider));
    }
    audit.decided(Decision::AllowProvider);
}

/// The patients whose compartments hold `resources`.
fn patients_of<'a>(resources: impl IntoIterator<Item = &'a Value>) -> Vec<String> {
    resources
        .into_iter()
        .filter_map(|json| Resource::parse(json.clone()).ok()?.index.patient)
        .collect()
}

/// A resource as stored, served as is, with its `ETag`.
fn raw_response(raw: RawStored) -> Response {
    let mut response = fhir_json(StatusCode::OK, raw.json.into_bytes());
    if let Ok(v) = HeaderValue::from_str(&format!("W/\"{}\"", raw.version)) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}
