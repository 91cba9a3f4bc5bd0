//! The FHIR R4 REST API at `/fhir`: read, version read, search with paging, and the
//! provider's create, update and transaction/batch import.
//!
//! Every request is authenticated ([`Authenticated`]) and scoped before the store is
//! touched ([`crate::access`]): the provider reads and writes everything, a patient
//! reads their compartment, a viewer the union of the pointers granted to it, anyone
//! else nothing (403). A read of a resource outside the requester's scope answers 404
//! exactly as for a resource that does not exist. Errors are FHIR OperationOutcomes.
//!
//! | Route | Who | What |
//! |---|---|---|
//! | `GET /fhir/{type}/{id}` | scoped | the current version |
//! | `GET /fhir/{type}/{id}/_history/{v}` | provider | one version |
//! | `GET /fhir/{type}?…` | scoped | a `searchset` Bundle with `self`/`next`/`previous` links |
//! | `POST /fhir/{type}` | provider | create (201, `Location`, `ETag`) |
//! | `PUT /fhir/{type}/{id}` | provider | update (200, or 201 for a new id) |
//! | `POST /fhir` | provider | a `transaction` (all or none) or `batch` Bundle |

use crate::{
    access::{Candidate, Scope},
    audit::{Touch, deny},
    auth::Authenticated,
    server::{Gatekeeper, outcome},
};
use alloy::primitives::Address;
use axum::{
    Router,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use axum::{
    body::Bytes,
    extract::{FromRequest, Request},
};
use medrec_store::audit::{Action, Decision, ResourceRef};
use medrec_store::{
    Page, RecordStore, StoreError, Stored,
    fhir::{Resource, ResourceId, ResourceType},
    new_id,
    search::{MAX_COUNT, SearchQuery, SortField},
};
use serde_json::{Map, Value, json};
use std::{cmp::Ordering, collections::HashMap};

/// Most resources a search over several scopes gathers before it is refused as too
/// broad (a viewer's union of pointers is normally far smaller).
const UNION_LIMIT: usize = 10_000;

/// Most entries in one transaction or batch Bundle.
const BUNDLE_LIMIT: usize = 10_000;

/// The `/fhir` routes other than `metadata`.
pub(crate) fn routes() -> Router<Gatekeeper> {
    Router::new()
        .route("/fhir", post(bundle))
        .route("/fhir/{resource_type}", get(search).post(create))
        .route("/fhir/{resource_type}/{id}", get(read).put(update))
        .route("/fhir/{resource_type}/{id}/_history/{version}", get(vread))
}

/// Who is asking, and the body: [`Authenticated`], or the zero address when
/// authorization is switched off for a benchmark baseline.
#[derive(Debug)]
pub(crate) struct Requester {
    requester: Address,
    body: Bytes,
}

impl FromRequest<Gatekeeper> for Requester {
    type Rejection = Response;

    async fn from_request(req: Request, g: &Gatekeeper) -> Result<Self, Response> {
        if g.authorization_off() {
            let body = Bytes::from_request(req, g).await.map_err(IntoResponse::into_response)?;
            return Ok(Self { requester: Address::ZERO, body });
        }
        let auth =
            Authenticated::from_request(req, g).await.map_err(IntoResponse::into_response)?;
        Ok(Self { requester: auth.requester, body: auth.body })
    }
}

/// Why a FHIR request failed; each becomes an OperationOutcome.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// The consent index is not fresh enough to decide.
    NotReady,
    /// The requester may not do this at all.
    Forbidden(&'static str),
    /// Nothing the requester may see has this type and id.
    NotFound,
    /// The request is malformed.
    Invalid(String),
    /// The resource id is taken.
    Conflict(String),
    /// A search over several scopes matched too much.
    TooCostly,
    /// The store takes no writes (a provider's own database, mapped read-only).
    ReadOnly,
    /// The store failed (details logged, not sent).
    Store(StoreError),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Exists { .. } => Self::Conflict(e.to_string()),
            StoreError::MissingId => Self::Invalid(e.to_string()),
            StoreError::Invalid(e) => Self::Invalid(e.to_string()),
            StoreError::ReadOnly => Self::ReadOnly,
            other => Self::Store(other),
        }
    }
}

impl ApiError {
    /// HTTP status, OperationOutcome issue code and a sentence for the requester.
    fn parts(&self) -> (StatusCode, &'static str, String) {
        match self {
            Self::NotReady => (
                StatusCode::SERVICE_UNAVAILABLE,
                "transient",
                "the gatekeeper is catching up with the chain and cannot decide requests yet; try again shortly".into(),
            ),
            Self::Forbidden(why) => (StatusCode::FORBIDDEN, "forbidden", (*why).to_owned()),
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "not-found",
                "no resource with that type and id is visible to you".into(),
            ),
            Self::Invalid(why) => (StatusCode::BAD_REQUEST, "invalid", why.clone()),
            Self::Conflict(why) => (StatusCode::CONFLICT, "duplicate", why.clone()),
            Self::TooCostly => (
                StatusCode::BAD_REQUEST,
                "too-costly",
                format!("the search matches more than {UNION_LIMIT} resources across your grants; narrow it"),
            ),
            Self::ReadOnly => (
                StatusCode::METHOD_NOT_ALLOWED,
                "not-supported",
                "this gatekeeper serves the provider's own database read-only: change records in the provider's system".into(),
            ),
            Self::Store(err) => {
                tracing::error!(target: "medrec::gatekeeper", %err, "the record store failed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "transient",
                    "the record database is unavailable; the error is logged, try again shortly".into(),
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, why) = self.parts();
        outcome(status, code, &why)
    }
}

type ApiResult = Result<Response, ApiError>;

fn resource_type(s: &str) -> Result<ResourceType, ApiError> {
    s.parse().map_err(|e: medrec_store::fhir::FhirError| ApiError::Invalid(e.to_string()))
}

fn resource_id(s: &str) -> Result<ResourceId, ApiError> {
    s.parse().map_err(|e: medrec_store::fhir::FhirError| ApiError::Invalid(e.to_string()))
}

/// The base URL of this FHIR server as the requester addressed it.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let proto = headers
        .get("x-forwarded-proto")
        .and_then(|h| h.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    format!("{proto}://{host}/fhir")
}

fn fhir_json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/fhir+json"))],
        body.to_string(),
    )
        .into_response()
}

/// A single resource with its `ETag`, and `Location` when created.
fn resource_response(status: StatusCode, stored: &Stored, location: Option<String>) -> Response {
    let mut response = fhir_json(status, &stored.json);
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

/// Runs `user`'s search within `scope`: as is for the provider, otherwise as the union
/// of its intersections with each allowed search, paged as `user` asked.
async fn scoped_search(
    store: &dyn RecordStore,
    scope: &Scope,
    user: &SearchQuery,
) -> Result<Page, ApiError> {
    let Some(searches) = scope.searches(user) else {
        return Ok(store.search(user).await?);
    };
    match searches.as_slice() {
        [] => Ok(Page { total: 0, entries: Vec::new() }),
        [only] => Ok(store.search(only).await?),
        many => {
            let mut all: HashMap<ResourceId, Stored> = HashMap::new();
            for q in many {
                let mut q = q.clone();
                q.count = MAX_COUNT;
                q.offset = 0;
                loop {
                    let page = store.search(&q).await?;
                    let got = page.entries.len();
                    for e in page.entries {
                        all.entry(e.id.clone()).or_insert(e);
                    }
                    if all.len() > UNION_LIMIT {
                        return Err(ApiError::TooCostly);
                    }
                    q.offset = q.offset.saturating_add(u32::try_from(got).unwrap_or(u32::MAX));
                    if got == 0 || u64::from(q.offset) >= page.total {
                        break;
                    }
                }
            }
            let mut keyed: Vec<(Option<i64>, Stored)> =
                all.into_values().map(|s| (date_start(&s.json), s)).collect();
            keyed.sort_by(|a, b| compare(user, a, b));
            let total = keyed.len() as u64;
            let entries = keyed
                .into_iter()
                .skip(user.offset as usize)
                .take(user.count as usize)
                .map(|(_, s)| s)
                .collect();
            Ok(Page { total, entries })
        }
    }
}

fn date_start(json: &Value) -> Option<i64> {
    Resource::parse(json.clone()).ok()?.index.date.map(|(start, _)| start)
}

/// The order the stores use: the query's keys (resources without a date after those
/// with one, either way), then id ascending.
fn compare(q: &SearchQuery, a: &(Option<i64>, Stored), b: &(Option<i64>, Stored)) -> Ordering {
    for key in &q.sort {
        let ord = match key.field {
            SortField::Id => a.1.id.as_str().cmp(b.1.id.as_str()),
            SortField::LastUpdated => a.1.last_updated.cmp(&b.1.last_updated),
            SortField::Date => match (a.0, b.0) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => Ordering::Less.reverse_if(key.descending),
                (None, Some(_)) => Ordering::Greater.reverse_if(key.descending),
                (None, None) => Ordering::Equal,
            },
        };
        let ord = if key.descending { ord.reverse() } else { ord };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    a.1.id.as_str().cmp(b.1.id.as_str())
}

/// `reverse` applied only when `descending`, so that the final reversal of a
/// descending key leaves missing dates last.
trait ReverseIf {
    fn reverse_if(self, descending: bool) -> Self;
}

impl ReverseIf for Ordering {
    fn reverse_if(self, descending: bool) -> Self {
        if descending { self.reverse() } else { self }
    }
}

/// What a handler learned that the access log records.
#[derive(Debug, Default)]
struct Seen {
    /// The requester's scope, once decided.
    scope: Option<Scope>,
    /// The compartment of the resource read, when several relationships could cover it.
    patient: Option<String>,
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

/// The log's reason code for a refusal with `status`.
fn refusal(status: StatusCode) -> Decision {
    deny(match status.as_u16() {
        400 => "invalid-request",
        403 => "forbidden",
        404 => "not-found",
        409 => "conflict",
        413 => "too-large",
        429 => "throttled",
        503 => "unavailable",
        _ => "failed",
    })
}

/// Answers with `result` after logging it: one entry per relationship of the scope
/// that the request could reach.
async fn logged(
    g: &Gatekeeper,
    requester: Address,
    action: Action,
    resource: Option<ResourceRef>,
    seen: Seen,
    result: ApiResult,
) -> Response {
    let response = result.unwrap_or_else(IntoResponse::into_response);
    let ty = resource.as_ref().map(|r| r.resource_type);
    let touches = match &seen.scope {
        Some(Scope::Provider) => {
            vec![Touch {
                relationship: None,
                pointer: None,
                decision: Decision::AllowProvider,
                epsilon: None,
            }]
        }
        Some(Scope::Limited(candidates)) => candidates
            .iter()
            .filter(|c| ty.is_none_or(|t| c.applies_to(t)))
            .filter(|c| seen.patient.as_deref().is_none_or(|p| c.patient().as_str() == p))
            .map(|c| Touch {
                relationship: Some(c.relationship().0),
                pointer: c.pointer(),
                decision: if c.pointer().is_some() {
                    Decision::AllowViewer
                } else {
                    Decision::AllowPatient
                },
                epsilon: None,
            })
            .collect(),
        None => Vec::new(),
    };
    let fallback = refusal(response.status());
    g.record(requester, action, resource, touches, fallback, response).await
}

/// `GET /fhir/{type}/{id}`
async fn read(g: State<Gatekeeper>, path: Path<(String, String)>, auth: Requester) -> Response {
    let requester = auth.requester;
    let resource = resource_ref(&path.0.0, Some(&path.0.1));
    let mut seen = Seen::default();
    let result = read_inner(&mut seen, g.clone(), path, auth).await;
    logged(&g, requester, Action::FhirRead, resource, seen, result).await
}

/// `GET /fhir/{type}/{id}/_history/{version}`
async fn vread(
    g: State<Gatekeeper>,
    path: Path<(String, String, String)>,
    auth: Requester,
) -> Response {
    let requester = auth.requester;
    let resource = resource_ref(&path.0.0, Some(&path.0.1));
    let mut seen = Seen::default();
    let result = vread_inner(&mut seen, g.clone(), path, auth).await;
    logged(&g, requester, Action::FhirRead, resource, seen, result).await
}

/// `GET /fhir/{type}?…`
async fn search(
    g: State<Gatekeeper>,
    path: Path<String>,
    raw: RawQuery,
    headers: HeaderMap,
    auth: Requester,
) -> Response {
    let requester = auth.requester;
    let resource = resource_ref(&path.0, None);
    let mut seen = Seen::default();
    let result = search_inner(&mut seen, g.clone(), path, raw, headers, auth).await;
    logged(&g, requester, Action::FhirSearch, resource, seen, result).await
}

/// `POST /fhir/{type}`
async fn create(
    g: State<Gatekeeper>,
    path: Path<String>,
    headers: HeaderMap,
    auth: Requester,
) -> Response {
    let requester = auth.requester;
    let resource = resource_ref(&path.0, None);
    let mut seen = Seen::default();
    let result = create_inner(&mut seen, g.clone(), path, headers, auth).await;
    logged(&g, requester, Action::FhirWrite, resource, seen, result).await
}

/// `PUT /fhir/{type}/{id}`
async fn update(
    g: State<Gatekeeper>,
    path: Path<(String, String)>,
    headers: HeaderMap,
    auth: Requester,
) -> Response {
    let requester = auth.requester;
    let resource = resource_ref(&path.0.0, Some(&path.0.1));
    let mut seen = Seen::default();
    let result = update_inner(&mut seen, g.clone(), path, headers, auth).await;
    logged(&g, requester, Action::FhirWrite, resource, seen, result).await
}

/// `POST /fhir`
async fn bundle(g: State<Gatekeeper>, headers: HeaderMap, auth: Requester) -> Response {
    let requester = auth.requester;
    let mut seen = Seen::default();
    let result = bundle_inner(&mut seen, g.clone(), headers, auth).await;
    logged(&g, requester, Action::FhirWrite, None, seen, result).await
}

async fn read_inner(
    seen: &mut Seen,
    State(g): State<Gatekeeper>,
    Path((ty, id)): Path<(String, String)>,
    auth: Requester,
) -> ApiResult {
    let (ty, id) = (resource_type(&ty)?, resource_id(&id)?);
    let scope = g.scope(auth.requester)?;
    seen.scope = Some(scope.clone());
    let found = if matches!(scope, Scope::Provider) {
        g.store().read(ty, &id).await?
    } else if let Scope::Limited(c) = &scope
        && c.iter().all(|c| matches!(c, Candidate::Compartment { .. }))
    {
        // Only compartments (a patient reading their own records): read by id and keep
        // it only if its compartment is one of theirs, the very condition the scoped
        // search puts on the store's patient column (filled from the same index), at
        // the cost of one primary-key read instead of a counted search.
        let stored = g.store().read(ty, &id).await?;
        let mut stored = stored.ok_or(ApiError::NotFound)?;
        let resource = Resource::parse(stored.json).map_err(|e| {
            ApiError::Store(StoreError::Database(format!("a stored resource is invalid: {e}")))
        })?;
        let patient = resource.index.patient;
        stored.json = resource.json;
        let mine = patient.is_some_and(|p| c.iter().any(|c| c.patient().as_str() == p));
        mine.then_some(stored)
    } else {
        let mut user = SearchQuery::all(ty);
        user.ids = vec![id];
        user.count = 1;
        scoped_search(g.store(), &scope, &user).await?.entries.into_iter().next()
    };
    let stored = found.ok_or(ApiError::NotFound)?;
    if matches!(&scope, Scope::Limited(c) if c.len() > 1) {
        seen.patient = Resource::parse(stored.json.clone()).ok().and_then(|r| r.index.patient);
    }
    Ok(resource_response(StatusCode::OK, &stored, None))
}

async fn vread_inner(
    seen: &mut Seen,
    State(g): State<Gatekeeper>,
    Path((ty, id, version)): Path<(String, String, String)>,
    auth: Requester,
) -> ApiResult {
    let (ty, id) = (resource_type(&ty)?, resource_id(&id)?);
    let version: u64 = version
        .parse()
        .map_err(|_| ApiError::Invalid("the version must be a whole number".into()))?;
    g.provider_only(auth.requester)?;
    seen.scope = Some(Scope::Provider);
    let stored = g.store().read_version(ty, &id, version).await?.ok_or(ApiError::NotFound)?;
    Ok(resource_response(StatusCode::OK, &stored, None))
}

/// A `searchset` Bundle.
async fn search_inner(
    seen: &mut Seen,
    State(g): State<Gatekeeper>,
    Path(ty): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    auth: Requester,
) -> ApiResult {
    let ty = resource_type(&ty)?;
    let raw = raw.unwrap_or_default();
    let pairs: Vec<(String, String)> =
        form_urlencoded::parse(raw.as_bytes()).into_owned().collect();
    let user = SearchQuery::parse(ty, pairs.iter().map(|(n, v)| (n.as_str(), v.as_str())))
        .map_err(|e| ApiError::Invalid(e.to_string()))?;
    let scope = g.scope(auth.requester)?;
    seen.scope = Some(scope.clone());
    let page = scoped_search(g.store(), &scope, &user).await?;
    let base = base_url(&headers);
    Ok(fhir_json(StatusCode::OK, &searchset(&base, ty, &pairs, &user, page)))
}

/// The Bundle of one page, with links to the pages around it.
fn searchset(
    base: &str,
    ty: ResourceType,
    pairs: &[(String, String)],
    q: &SearchQuery,
    page: Page,
) -> Value {
    let link = |relation: &str, offset: u64| {
        let mut url = form_urlencoded::Serializer::new(String::new());
        for (n, v) in pairs.iter().filter(|(n, _)| n != "_offset" && n != "_count") {
            url.append_pair(n, v);
        }
        url.append_pair("_count", &q.count.to_string());
        url.append_pair("_offset", &offset.to_string());
        json!({"relation": relation, "url": format!("{base}/{ty}?{}", url.finish())})
    };
    let (offset, count) = (u64::from(q.offset), u64::from(q.count));
    let mut links = vec![link("self", offset)];
    if count > 0 && offset + count < page.total {
        links.push(link("next", offset + count));
    }
    if offset > 0 {
        links.push(link("previous", offset.saturating_sub(count.max(1))));
    }
    let entries: Vec<Value> = page
        .entries
        .into_iter()
        .map(|s| {
            json!({
                "fullUrl": format!("{base}/{}/{}", s.resource_type, s.id),
                "resource": s.json,
                "search": {"mode": "match"}
            })
        })
        .collect();
    json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": page.total,
        "link": links,
        "entry": entries,
    })
}

fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::Invalid(format!("the body is not valid JSON: {e}")))
}

fn parse_resource(json: Value, expected: ResourceType) -> Result<Resource, ApiError> {
    let r = Resource::parse(json).map_err(|e| ApiError::Invalid(e.to_string()))?;
    if r.resource_type != expected {
        return Err(ApiError::Invalid(format!(
            "the body is a {} but the URL names {expected}",
            r.resource_type
        )));
    }
    Ok(r)
}

/// `POST /fhir/{type}`: the provider creates a resource.
async fn create_inner(
    seen: &mut Seen,
    State(g): State<Gatekeeper>,
    Path(ty): Path<String>,
    headers: HeaderMap,
    auth: Requester,
) -> ApiResult {
    let ty = resource_type(&ty)?;
    g.provider_only(auth.requester)?;
    seen.scope = Some(Scope::Provider);
    // As FHIR's create: the server chooses the id, whatever the body says.
    let resource = parse_resource(parse_body(&auth.body)?, ty)?.with_id(new_id());
    let stored = g.store().create(resource).await?;
    let location = history_url(&base_url(&headers), &stored);
    Ok(resource_response(StatusCode::CREATED, &stored, Some(location)))
}

/// `PUT /fhir/{type}/{id}`: the provider stores a new version (or the first).
async fn update_inner(
    seen: &mut Seen,
    State(g): State<Gatekeeper>,
    Path((ty, id)): Path<(String, String)>,
    headers: HeaderMap,
    auth: Requester,
) -> ApiResult {
    let (ty, id) = (resource_type(&ty)?, resource_id(&id)?);
    g.provider_only(auth.requester)?;
    seen.scope = Some(Scope::Provider);
    let resource = parse_resource(parse_body(&auth.body)?, ty)?;
    if resource.id.as_ref() != Some(&id) {
        return Err(ApiError::Invalid(
            "the resource's id must be present and equal to the id in the URL".into(),
        ));
    }
    let stored = g.store().update(resource).await?;
    let (status, location) = if stored.version == 1 {
        (StatusCode::CREATED, Some(history_url(&base_url(&headers), &stored)))
    } else {
        (StatusCode::OK, None)
    };
    Ok(resource_response(status, &stored, location))
}

/// One entry of a transaction or batch, checked.
struct Entry {
    method: &'static str,
    resource: Resource,
}

/// `POST /fhir`: a `transaction` Bundle is stored all or none; a `batch` entry by
/// entry. Entries are `POST {type}` (a new id is assigned; references to the entry's
/// `urn:uuid:` fullUrl are rewritten to it) or `PUT {type}/{id}`.
async fn bundle_inner(
    seen: &mut Seen,
    State(g): State<Gatekeeper>,
    headers: HeaderMap,
    auth: Requester,
) -> ApiResult {
    g.provider_only(auth.requester)?;
    seen.scope = Some(Scope::Provider);
    let mut body = parse_body(&auth.body)?;
    if body.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(ApiError::Invalid(
            "POST /fhir takes a Bundle of type transaction or batch".into(),
        ));
    }
    let transaction = match body.get("type").and_then(Value::as_str) {
        Some("transaction") => true,
        Some("batch") => false,
        _ => {
            return Err(ApiError::Invalid("the Bundle's type must be transaction or batch".into()));
        }
    };
    let mut entries = match body.get_mut("entry").map(Value::take) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(e)) => e,
        Some(_) => return Err(ApiError::Invalid("the Bundle's entry must be a list".into())),
    };
    if entries.len() > BUNDLE_LIMIT {
        return Err(ApiError::Invalid(format!(
            "a Bundle may hold at most {BUNDLE_LIMIT} entries; split it"
        )));
    }
    assign_ids(&mut entries);
    let base = base_url(&headers);
    let checked: Vec<Result<Entry, String>> = entries.into_iter().map(check_entry).collect();
    if transaction {
        let mut ok = Vec::with_capacity(checked.len());
        for (i, e) in checked.into_iter().enumerate() {
            ok.push(e.map_err(|why| ApiError::Invalid(format!("entry {i}: {why}")))?);
        }
        let methods: Vec<&str> = ok.iter().map(|e| e.method).collect();
        let stored = g.store().update_all(ok.into_iter().map(|e| e.resource).collect()).await?;
        let responses: Vec<Value> = stored
            .iter()
            .zip(methods)
            .map(|(s, method)| entry_response(&base, s, method))
            .collect();
        return Ok(fhir_json(
            StatusCode::OK,
            &json!({"resourceType": "Bundle", "type": "transaction-response", "entry": responses}),
        ));
    }
    let mut responses = Vec::new();
    for (i, e) in checked.into_iter().enumerate() {
        let response = match e {
            Err(why) => failed_entry("400 Bad Request", "invalid", &format!("entry {i}: {why}")),
            Ok(Entry { method, resource }) => match g.store().update(resource).await {
                Ok(stored) => entry_response(&base, &stored, method),
                Err(err) => {
                    let (status, code, why) = ApiError::from(err).parts();
                    failed_entry(&status.to_string(), code, &format!("entry {i}: {why}"))
                }
            },
        };
        responses.push(response);
    }
    Ok(fhir_json(
        StatusCode::OK,
        &json!({"resourceType": "Bundle", "type": "batch-response", "entry": responses}),
    ))
}

/// Gives every `POST` entry a fresh id and rewrites references to its `urn:uuid:`
/// fullUrl, in every entry, to `Type/id`.
fn assign_ids(entries: &mut [Value]) {
    let mut renamed: HashMap<String, String> = HashMap::new();
    for e in entries.iter_mut() {
        if e.pointer("/request/method").and_then(Value::as_str) != Some("POST") {
            continue;
        }
        let Some(ty) = e.pointer("/resource/resourceType").and_then(Value::as_str) else {
            continue;
        };
        let id = new_id();
        let reference = format!("{ty}/{id}");
        if let Some(full) =
            e.get("fullUrl").and_then(Value::as_str).filter(|u| u.starts_with("urn:uuid:"))
        {
            renamed.insert(full.to_owned(), reference);
        }
        if let Some(obj) = e.get_mut("resource").and_then(Value::as_object_mut) {
            obj.insert("id".into(), Value::String(id.to_string()));
        }
    }
    if renamed.is_empty() {
        return;
    }
    for e in entries.iter_mut() {
        if let Some(r) = e.get_mut("resource") {
            rewrite(r, &renamed);
        }
    }
}

fn rewrite(v: &mut Value, renamed: &HashMap<String, String>) {
    match v {
        Value::String(s) => {
            if let Some(to) = renamed.get(s.as_str()) {
                to.clone_into(s);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|v| rewrite(v, renamed)),
        Value::Object(o) => o.values_mut().for_each(|v| rewrite(v, renamed)),
        _ => {}
    }
}

fn check_entry(mut e: Value) -> Result<Entry, String> {
    let method = match e.pointer("/request/method").and_then(Value::as_str) {
        Some("POST") => "POST",
        Some("PUT") => "PUT",
        Some(other) => return Err(format!("method {other} is not supported; use POST or PUT")),
        None => return Err("request.method is missing".into()),
    };
    let url = e.pointer("/request/url").and_then(Value::as_str).unwrap_or("").to_owned();
    let json = e.get_mut("resource").map(Value::take).ok_or("the entry has no resource")?;
    let resource = Resource::parse(json).map_err(|e| e.to_string())?;
    let ty = resource.resource_type.as_str();
    let expected = match (method, &resource.id) {
        ("POST", _) => ty.to_owned(),
        (_, Some(id)) => format!("{ty}/{id}"),
        (_, None) => return Err("a PUT entry's resource needs an id".into()),
    };
    if url.trim_start_matches('/') != expected {
        return Err(format!("request.url must be {expected}"));
    }
    Ok(Entry { method, resource })
}

fn entry_response(base: &str, s: &Stored, method: &str) -> Value {
    let status = if method == "POST" || s.version == 1 { "201 Created" } else { "200 OK" };
    json!({"response": {
        "status": status,
        "location": history_url(base, s),
        "etag": format!("W/\"{}\"", s.version),
    }})
}

fn failed_entry(status: &str, code: &str, why: &str) -> Value {
    let mut outcome = Map::new();
    outcome.insert("resourceType".into(), "OperationOutcome".into());
    outcome
        .insert("issue".into(), json!([{"severity": "error", "code": code, "diagnostics": why}]));
    json!({"response": {"status": status, "outcome": Value::Object(outcome)}})
}
