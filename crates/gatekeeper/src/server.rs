//! The gatekeeper's HTTP server: authentication, the consent decision, then data.
//!
//! Every data request goes through the same pipeline, in this order:
//!
//! 1. **Ready?** When the consent index is behind the chain or the node stopped
//!    answering, the request fails closed with 503 before anything else.
//! 2. **Who?** The requester's address, from a bearer token or an EIP-712 signature
//!    ([`crate::auth`]).
//! 3. **May they?** The consent index decides in memory ([`ConsentIndex::decide`]).
//!    A refusal is one and the same 403 whether the relationship or pointer exists or
//!    not, so nothing can be learned by probing.
//! 4. **Data.** Only then is the store read: the pointer's query runs for the
//!    relationship's patient and the Bundle comes back with its data hash.
//!
//! Routes: `GET /healthz`, `GET /readyz`, `GET /auth/nonce`, `POST /auth/siwe`,
//! `GET /pointers/{relationship id}/{pointer id}`, and the FHIR API under `/fhir`
//! (the private `rest` module).

use crate::{
    access::{Scope, ScopeCache},
    audit::{Touch, Trail, deny, entry_json, proof_json},
    auth::{AuthState, Authenticated},
    pointer::{PointerQuery, run},
    rest::ApiError,
};
use alloy::primitives::{Address, B256, hex};
use axum::{
    Json, Router,
    extract::{FromRef, Path, State},
    http::{HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use medrec_chain::{
    consent::{ConsentIndex, Decision, DenyReason},
    follower::Health,
};
use medrec_primitives::RelationshipId;
use medrec_store::{
    RecordStore,
    audit::{AccessLog, Action, Decision as LogDecision, ResourceRef, WriterConfig, prove},
    fhir::ResourceId,
};
use serde_json::{Value, json};
use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::sync::watch;

/// Header carrying the data hash of a pointer's result (`0x` + 64 hex digits).
pub const DATA_HASH_HEADER: HeaderName = HeaderName::from_static("x-medrec-data-hash");

/// What the gatekeeper knows of one relationship off chain: whose records it is about
/// and the query text of each pointer (the chain holds only their commitments).
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// The patient's FHIR id in this provider's store.
    pub patient: ResourceId,
    /// Pointer `i`'s query.
    pub pointers: Vec<PointerQuery>,
}

/// How fresh the consent index must be to decide requests.
#[derive(Debug, Clone, Copy)]
pub struct Readiness {
    /// Blocks the index may lag behind the head.
    pub max_lag: u64,
    /// Time since the chain node last answered.
    pub max_silence: Duration,
}

impl Default for Readiness {
    fn default() -> Self {
        Self { max_lag: 2, max_silence: Duration::from_secs(10) }
    }
}

/// Enrollments kept in a JSON file, rewritten atomically on every change, so that a
/// restarted gatekeeper serves what it served before.
#[derive(Debug, Clone)]
pub struct EnrollmentFile(std::path::PathBuf);

/// Why the enrollment file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum EnrollmentError {
    /// The file system failed.
    #[error("the enrollment file {path} cannot be used: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not what this gatekeeper wrote.
    #[error("the enrollment file {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl EnrollmentFile {
    /// The file at `path` (created on the first enrollment).
    pub fn new(path: impl Into<std::path::PathBuf>) -> Self {
        Self(path.into())
    }

    fn io(&self, source: std::io::Error) -> EnrollmentError {
        EnrollmentError::Io { path: self.0.display().to_string(), source }
    }

    fn corrupt(&self, reason: impl std::fmt::Display) -> EnrollmentError {
        EnrollmentError::Corrupt { path: self.0.display().to_string(), reason: reason.to_string() }
    }

    /// Reads every enrollment (none when the file does not exist yet).
    pub fn load(&self) -> Result<HashMap<RelationshipId, Enrollment>, EnrollmentError> {
        let text = match std::fs::read_to_string(&self.0) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
            Err(e) => return Err(self.io(e)),
        };
        let value: Value = serde_json::from_str(&text).map_err(|e| self.corrupt(e))?;
        let mut out = HashMap::new();
        for (rel, e) in value.as_object().ok_or_else(|| self.corrupt("not a JSON object"))? {
            let id = RelationshipId(rel.parse::<B256>().map_err(|e| self.corrupt(e))?);
            let patient = e["patient"]
                .as_str()
                .ok_or_else(|| self.corrupt("an enrollment has no patient"))?;
            let patient = patient.parse().map_err(|e| self.corrupt(e))?;
            let pointers = e["pointers"]
                .as_array()
                .ok_or_else(|| self.corrupt("an enrollment has no pointers"))?
                .iter()
                .map(|p| {
                    let text =
                        p.as_str().ok_or_else(|| self.corrupt("a pointer is not a string"))?;
                    PointerQuery::parse(text).map_err(|e| self.corrupt(e))
                })
                .collect::<Result<Vec<_>, _>>()?;
            out.insert(id, Enrollment { patient, pointers });
        }
        Ok(out)
    }

    /// Writes every enrollment: a temporary file, synced, then renamed over the old one.
    pub fn save(&self, all: &HashMap<RelationshipId, Enrollment>) -> Result<(), EnrollmentError> {
        use std::io::Write;
        let value: serde_json::Map<String, Value> = all
            .iter()
            .map(|(id, e)| {
                let pointers: Vec<&str> = e.pointers.iter().map(PointerQuery::text).collect();
                (id.0.to_string(), json!({"patient": e.patient.as_str(), "pointers": pointers}))
            })
            .collect();
        let tmp = self.0.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).map_err(|e| self.io(e))?;
        f.write_all(Value::Object(value).to_string().as_bytes()).map_err(|e| self.io(e))?;
        f.sync_all().map_err(|e| self.io(e))?;
        std::fs::rename(&tmp, &self.0).map_err(|e| self.io(e))
    }
}

#[derive(Debug)]
struct App {
    /// Addresses that act as the provider (read and write everything).
    providers: Vec<Address>,
    /// Per-requester candidates of the FHIR API's scopes.
    scopes: ScopeCache,
    /// Bumped on every enrollment change (invalidates `scopes`).
    generation: AtomicU64,
    /// The access log, when one is configured.
    trail: Option<Trail>,
    /// Benchmark baseline only: the FHIR API serves everyone as the provider.
    authorization_off: bool,
    store: Arc<dyn RecordStore>,
    index: Arc<RwLock<ConsentIndex>>,
    health: watch::Receiver<Health>,
    readiness: Readiness,
    enrollments: RwLock<HashMap<RelationshipId, Enrollment>>,
    enrollment_file: Option<EnrollmentFile>,
    auth: AuthState,
    /// Research bounties, when this gatekeeper offers them.
    research: Option<Arc<crate::research::ResearchDesk>>,
}

/// The gatekeeper's shared state.
#[derive(Debug, Clone)]
pub struct Gatekeeper {
    app: Arc<App>,
}

impl FromRef<Gatekeeper> for AuthState {
    fn from_ref(g: &Gatekeeper) -> Self {
        g.app.auth.clone()
    }
}

impl Gatekeeper {
    /// A gatekeeper over `store`, deciding with `index` (kept current by a follower
    /// whose health arrives on `health`), authenticating with `auth`.
    pub fn new(
        store: Arc<dyn RecordStore>,
        index: Arc<RwLock<ConsentIndex>>,
        health: watch::Receiver<Health>,
        readiness: Readiness,
        auth: AuthState,
    ) -> Self {
        let app = App {
            providers: Vec::new(),
            scopes: ScopeCache::default(),
            generation: AtomicU64::new(0),
            trail: None,
            authorization_off: false,
            store,
            index,
            health,
            readiness,
            enrollments: RwLock::default(),
            enrollment_file: None,
            auth,
            research: None,
        };
        Self { app: Arc::new(app) }
    }

    /// The same, keeping enrollments in `file` (loaded now, rewritten on each change).
    pub fn with_enrollment_file(
        store: Arc<dyn RecordStore>,
        index: Arc<RwLock<ConsentIndex>>,
        health: watch::Receiver<Health>,
        readiness: Readiness,
        auth: AuthState,
        file: EnrollmentFile,
    ) -> Result<Self, EnrollmentError> {
        let enrollments = file.load()?;
        let mut g = Self::new(store, index, health, readiness, auth);
        let app = Arc::get_mut(&mut g.app).expect("not shared yet");
        app.enrollments = RwLock::new(enrollments);
        app.enrollment_file = Some(file);
        Ok(g)
    }

    /// Records what the gatekeeper serves for a relationship (normally done when the
    /// provider enrolls the patient); with an enrollment file, it is on disk when this
    /// returns.
    pub fn enroll(
        &self,
        relationship: RelationshipId,
        enrollment: Enrollment,
    ) -> Result<(), EnrollmentError> {
        let mut all =
            self.app.enrollments.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        let previous = all.insert(relationship, enrollment);
        if let Some(file) = &self.app.enrollment_file
            && let Err(e) = file.save(&all)
        {
            // Keep memory and disk in agreement: undo the change.
            match previous {
                Some(p) => all.insert(relationship, p),
                None => all.remove(&relationship),
            };
            return Err(e);
        }
        self.app.generation.fetch_add(1, Ordering::AcqRel);
        Ok(())
    }

    /// Lets `provider` (the institution running this gatekeeper, and any staff
    /// addresses it names) read and write every record through the FHIR API.
    ///
    /// # Panics
    /// When called after the gatekeeper was cloned (configure it before serving).
    #[must_use]
    pub fn with_provider(mut self, provider: Address) -> Self {
        Arc::get_mut(&mut self.app)
            .expect("configure the gatekeeper before serving it")
            .providers
            .push(provider);
        self
    }

    /// Appends every request this gatekeeper decides to `log` (through a batching
    /// writer started now, on the current tokio runtime).
    ///
    /// # Panics
    /// When called after the gatekeeper was cloned (configure it before serving).
    #[must_use]
    pub fn with_access_log(mut self, log: Arc<dyn AccessLog>, config: WriterConfig) -> Self {
        Arc::get_mut(&mut self.app).expect("configure the gatekeeper before serving it").trail =
            Some(Trail::new(log, config));
        self
    }

    /// Serves research bounties (see [`crate::research`]).
    ///
    /// # Panics
    /// When called after the gatekeeper was cloned (configure it before serving).
    #[must_use]
    pub fn with_research(mut self, desk: crate::research::ResearchDesk) -> Self {
        Arc::get_mut(&mut self.app).expect("configure the gatekeeper before serving it").research =
            Some(Arc::new(desk));
        self
    }

    /// The research desk, when this gatekeeper offers bounties.
    pub(crate) fn research(&self) -> Option<&crate::research::ResearchDesk> {
        self.app.research.as_deref()
    }

    /// Whether `address` acts as this gatekeeper's provider.
    pub(crate) fn is_provider(&self, address: Address) -> bool {
        self.app.providers.contains(&address)
    }

    /// A relationship as the consent index knows it now.
    pub(crate) fn index_relationship(
        &self,
        id: &RelationshipId,
    ) -> Option<medrec_chain::consent::Relationship> {
        let index = self.app.index.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        index.relationship(id).copied()
    }

    /// The enrolled relationships whose indexed state satisfies `keep`, with their
    /// patients' FHIR ids, in a stable order.
    pub(crate) fn enrollments_where(
        &self,
        keep: impl Fn(&medrec_chain::consent::Relationship) -> bool,
    ) -> Vec<(RelationshipId, ResourceId)> {
        let index = self.app.index.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let all = self.app.enrollments.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut out: Vec<(RelationshipId, ResourceId)> = all
            .iter()
            .filter(|(id, _)| index.relationship(id).is_some_and(&keep))
            .map(|(id, e)| (*id, e.patient.clone()))
            .collect();
        out.sort_by_key(|(id, _)| id.0);
        out
    }

    /// Waits until every request answered so far is in the access log.
    pub async fn flush_access_log(&self) {
        if let Some(trail) = &self.app.trail {
            trail.flush().await;
        }
    }

    /// Logs a request (see [`Trail::record`]); without an access log, `response` as is.
    pub(crate) async fn record(
        &self,
        requester: Address,
        action: Action,
        resource: Option<ResourceRef>,
        touches: Vec<Touch>,
        fallback: LogDecision,
        response: Response,
    ) -> Response {
        match &self.app.trail {
            Some(trail) => {
                trail.record(requester, action, resource, touches, fallback, response).await
            }
            None => response,
        }
    }

    /// The relationships at this gatekeeper whose patient is `requester`.
    pub(crate) fn patient_relationships(&self, requester: Address) -> Vec<RelationshipId> {
        let index = self.app.index.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let all = self.app.enrollments.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        all.keys()
            .filter(|id| index.relationship(id).is_some_and(|r| r.patient == requester))
            .copied()
            .collect()
    }

    /// **For benchmarks only**: the FHIR API skips authentication and consent and
    /// serves every request as if the provider sent it, to measure what authorization
    /// costs against the same server. Never serve real records this way.
    ///
    /// # Panics
    /// When called after the gatekeeper was cloned.
    #[must_use]
    pub fn with_authorization_off_for_benchmarks(mut self) -> Self {
        Arc::get_mut(&mut self.app)
            .expect("configure the gatekeeper before serving it")
            .authorization_off = true;
        self
    }

    /// Whether authorization is switched off (benchmark baseline).
    pub(crate) fn authorization_off(&self) -> bool {
        self.app.authorization_off
    }

    /// The record store.
    pub(crate) fn store(&self) -> &dyn RecordStore {
        self.app.store.as_ref()
    }

    /// What `requester` may see now; fails closed when the index is not fresh (the
    /// provider's own access does not depend on the chain).
    pub(crate) fn scope(&self, requester: Address) -> Result<Scope, ApiError> {
        if self.app.authorization_off || self.app.providers.contains(&requester) {
            return Ok(Scope::Provider);
        }
        if !self.is_ready() {
            return Err(ApiError::NotReady);
        }
        let now = self.app.auth.clock().now();
        let generation = self.app.generation.load(Ordering::Acquire);
        let index = self.app.index.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let scope =
            self.app.scopes.scope(&index, &self.app.enrollments, generation, requester, now);
        if let Scope::Limited(c) = &scope
            && c.is_empty()
        {
            return Err(ApiError::Forbidden(
                "you may not read records here: the patient has not shared any with you",
            ));
        }
        Ok(scope)
    }

    /// Refuses anyone but the provider.
    pub(crate) fn provider_only(&self, requester: Address) -> Result<(), ApiError> {
        if self.app.authorization_off || self.app.providers.contains(&requester) {
            Ok(())
        } else {
            Err(ApiError::Forbidden("only the provider may do this"))
        }
    }

    /// The enrollment of a relationship.
    pub fn enrollment(&self, relationship: &RelationshipId) -> Option<Enrollment> {
        let all = self.app.enrollments.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        all.get(relationship).cloned()
    }

    /// The last block applied to the consent index.
    pub(crate) fn indexed_block(&self) -> u64 {
        self.app.health.borrow().indexed
    }

    /// Whether the consent index is fresh enough to decide.
    pub fn is_ready(&self) -> bool {
        let r = self.app.readiness;
        self.app.health.borrow().is_ready(r.max_lag, r.max_silence)
    }

    /// The HTTP routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/pointers/{relationship}/{pointer}", get(pointer))
            .route("/audit", get(audit_entries))
            .route("/enrollments/{relationship}", axum::routing::put(put_enrollment))
            .route(
                "/research/redeem/{relationship}/{seq}",
                axum::routing::post(crate::research::redeem),
            )
            .merge(crate::rest::routes())
            .route_layer(axum::middleware::from_fn_with_state(
                self.clone(),
                crate::audit::log_refused,
            ))
            .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
            .route("/readyz", get(readyz))
            .route("/fhir/metadata", get(metadata))
            .route("/research/policy", get(crate::research::policy))
            .route("/research/queries", axum::routing::put(crate::research::publish))
            .route("/research/queries/{commitment}", get(crate::research::query_text))
            .with_state(self.clone())
            .merge(crate::auth::router(self.app.auth.clone()))
    }
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

/// The FHIR CapabilityStatement: what this server reads and searches (public, as FHIR
/// requires).
async fn metadata() -> Response {
    let resources: Vec<Value> = medrec_store::fhir::ResourceType::ALL
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
    (
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/fhir+json")],
        body.to_string(),
    )
        .into_response()
}

async fn readyz(State(g): State<Gatekeeper>) -> Response {
    let h = *g.app.health.borrow();
    let body = json!({"ready": g.is_ready(), "head": h.head, "indexed": h.indexed});
    let status = if g.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body)).into_response()
}

/// A FHIR OperationOutcome with one issue.
pub(crate) fn outcome(status: StatusCode, code: &str, diagnostics: &str) -> Response {
    let body = json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}]
    });
    (status, [(axum::http::header::CONTENT_TYPE, "application/fhir+json")], body.to_string())
        .into_response()
}

fn forbidden() -> Response {
    outcome(
        StatusCode::FORBIDDEN,
        "forbidden",
        "you are not authorized to read this pointer: ask the patient for a grant",
    )
}

/// `GET /pointers/{relationship}/{pointer}`, logged.
async fn pointer(
    State(g): State<Gatekeeper>,
    Path((relationship, pointer)): Path<(String, String)>,
    auth: Authenticated,
) -> Response {
    let (response, touch) = run_pointer(&g, &relationship, &pointer, auth.requester).await;
    let fallback = match response.status() {
        StatusCode::BAD_REQUEST => deny("invalid-request"),
        StatusCode::SERVICE_UNAVAILABLE => deny("unavailable"),
        _ => deny("failed"),
    };
    let touches = touch.into_iter().collect();
    g.record(auth.requester, Action::PointerRead, None, touches, fallback, response).await
}

/// The log's form of a consent decision.
fn log_decision(d: Decision) -> LogDecision {
    match d {
        Decision::AllowPatient => LogDecision::AllowPatient,
        Decision::AllowViewer => LogDecision::AllowViewer,
        Decision::Deny(reason) => deny(match reason {
            DenyReason::UnknownRelationship => "unknown-relationship",
            DenyReason::NotAccepted => "not-accepted",
            DenyReason::UnknownPointer => "unknown-pointer",
            DenyReason::NoGrant => "no-grant",
            DenyReason::NotYetValid => "not-yet-valid",
            DenyReason::Expired => "expired",
        }),
    }
}

/// The pointer pipeline: its response, and what the log records of the decision.
async fn run_pointer(
    g: &Gatekeeper,
    relationship: &str,
    pointer: &str,
    requester: Address,
) -> (Response, Option<Touch>) {
    if !g.is_ready() {
        let response = outcome(
            StatusCode::SERVICE_UNAVAILABLE,
            "transient",
            "the gatekeeper is catching up with the chain and cannot decide requests yet; try again shortly",
        );
        return (response, None);
    }
    let (Ok(id), Ok(n)) = (relationship.parse::<B256>(), pointer.parse::<u8>()) else {
        let response = outcome(
            StatusCode::BAD_REQUEST,
            "invalid",
            "the path must be /pointers/<relationship id: 0x + 64 hex digits>/<pointer number 0-127>",
        );
        return (response, None);
    };
    let id = RelationshipId(id);
    let now = g.app.auth.clock().now();
    let decision = g
        .app
        .index
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .decide(requester, &id, n, now);
    let touch = Some(Touch {
        relationship: Some(id.0),
        pointer: Some(n),
        decision: log_decision(decision),
        epsilon: None,
    });
    if !decision.is_allowed() {
        tracing::info!(target: "medrec::gatekeeper", %requester, relationship = %id, pointer = n, ?decision, "denied");
        return (forbidden(), touch);
    }
    let enrollment = g
        .app
        .enrollments
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(&id)
        .cloned();
    let Some((patient, query)) =
        enrollment.and_then(|e| Some((e.patient, e.pointers.get(usize::from(n))?.clone())))
    else {
        tracing::error!(target: "medrec::gatekeeper", relationship = %id, pointer = n, "authorized, but this gatekeeper has no query for the pointer");
        let response = outcome(
            StatusCode::NOT_FOUND,
            "not-found",
            "this gatekeeper does not serve that pointer",
        );
        return (response, touch);
    };
    let response = match run(g.app.store.as_ref(), &query, &patient).await {
        Ok(data) => {
            tracing::info!(target: "medrec::gatekeeper", %requester, relationship = %id, pointer = n, ?decision, entries = data.resources.len(), "served");
            let bundle = json!({
                "resourceType": "Bundle",
                "type": "searchset",
                "total": data.resources.len(),
                "entry": data.resources.into_iter().map(|r| json!({"resource": r, "search": {"mode": "match"}})).collect::<Vec<Value>>(),
            });
            let hash = HeaderValue::from_str(&hex::encode_prefixed(data.data_hash))
                .expect("hex is a valid header");
            (
                StatusCode::OK,
                [
                    (
                        axum::http::header::CONTENT_TYPE,
                        HeaderValue::from_static("application/fhir+json"),
                    ),
                    (DATA_HASH_HEADER, hash),
                ],
                bundle.to_string(),
            )
                .into_response()
        }
        Err(err) => {
            tracing::error!(target: "medrec::gatekeeper", relationship = %id, pointer = n, %err, "reading the pointer failed");
            outcome(
                StatusCode::SERVICE_UNAVAILABLE,
                "transient",
                "the records could not be read; the error is logged, try again shortly",
            )
        }
    };
    (response, touch)
}

/// Most entries one `GET /audit` returns.
const AUDIT_PAGE_LIMIT: u32 = 500;

/// `GET /audit?after=<seq>&limit=<n>`: the access log entries about the requester's
/// relationships as a patient at this provider, each with its proof of anchoring
/// (`null` until the next anchor covers it), and the log's head.
async fn audit_entries(
    State(g): State<Gatekeeper>,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    auth: Authenticated,
) -> Response {
    let requester = auth.requester;
    let response = audit_page(&g, raw.as_deref().unwrap_or(""), requester).await;
    let fallback = match response.status() {
        StatusCode::BAD_REQUEST => deny("invalid-request"),
        StatusCode::NOT_FOUND => deny("no-access-log"),
        _ => deny("unavailable"),
    };
    let touches = if response.status().is_success() {
        g.patient_relationships(requester)
            .into_iter()
            .map(|id| Touch {
                relationship: Some(id.0),
                pointer: None,
                decision: LogDecision::AllowPatient,
                epsilon: None,
            })
            .collect()
    } else {
        Vec::new()
    };
    g.record(requester, Action::LogRead, None, touches, fallback, response).await
}

async fn audit_page(g: &Gatekeeper, raw: &str, requester: Address) -> Response {
    let Some(trail) = &g.app.trail else {
        return outcome(
            StatusCode::NOT_FOUND,
            "not-supported",
            "this gatekeeper keeps no access log",
        );
    };
    let (mut after, mut limit) = (0u64, 100u32);
    for (name, value) in form_urlencoded::parse(raw.as_bytes()) {
        let parsed = match &*name {
            "after" => value.parse().map(|v| after = v).is_ok(),
            "limit" => value.parse().map(|v: u32| limit = v.clamp(1, AUDIT_PAGE_LIMIT)).is_ok(),
            _ => false,
        };
        if !parsed {
            return outcome(
                StatusCode::BAD_REQUEST,
                "invalid",
                "the access log takes only after=<entry number> and limit=<1-500>",
            );
        }
    }
    if !g.is_ready() {
        return outcome(
            StatusCode::SERVICE_UNAVAILABLE,
            "transient",
            "the gatekeeper is catching up with the chain and cannot decide requests yet; try again shortly",
        );
    }
    let relationships: Vec<B256> =
        g.patient_relationships(requester).into_iter().map(|id| id.0).collect();
    let log = trail.log();
    let result = async {
        let entries = if relationships.is_empty() {
            Vec::new()
        } else {
            log.entries_about(&relationships, after, limit).await?
        };
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let proof = prove(log, e.seq).await?;
            let mut v = entry_json(&e);
            v["proof"] = proof.as_ref().map_or(Value::Null, proof_json);
            out.push(v);
        }
        let head = log.head().await?;
        Ok::<_, medrec_store::StoreError>(json!({
            "entries": out,
            "head": {"size": head.size, "head": head.head},
        }))
    }
    .await;
    match result {
        Ok(body) => (StatusCode::OK, Json(body)).into_response(),
        Err(err) => {
            tracing::error!(target: "medrec::gatekeeper", %err, "reading the access log failed");
            outcome(
                StatusCode::SERVICE_UNAVAILABLE,
                "transient",
                "the access log could not be read; the error is logged, try again shortly",
            )
        }
    }
}

/// `PUT /enrollments/{relationship}` with `{"patient": <FHIR Patient id>, "pointers":
/// [<query text>, …]}`: the provider tells its gatekeeper what a relationship serves.
/// Only the provider may; the relationship must be on chain as this provider's, and
/// every pointer already published must carry the commitment of its query text.
async fn put_enrollment(
    State(g): State<Gatekeeper>,
    Path(relationship): Path<String>,
    auth: Authenticated,
) -> Response {
    let (response, touch) = enroll_from_request(&g, &relationship, &auth).await;
    let fallback = match response.status() {
        StatusCode::FORBIDDEN => deny("forbidden"),
        StatusCode::CONFLICT => deny("conflict"),
        StatusCode::SERVICE_UNAVAILABLE => deny("unavailable"),
        _ => deny("invalid-request"),
    };
    let touches = touch.into_iter().collect();
    g.record(auth.requester, Action::FhirWrite, None, touches, fallback, response).await
}

async fn enroll_from_request(
    g: &Gatekeeper,
    relationship: &str,
    auth: &Authenticated,
) -> (Response, Option<Touch>) {
    let invalid = |why: &str| (outcome(StatusCode::BAD_REQUEST, "invalid", why), None);
    if !g.app.providers.contains(&auth.requester) {
        return (
            outcome(StatusCode::FORBIDDEN, "forbidden", "only the provider may enroll patients"),
            None,
        );
    }
    let Ok(id) = relationship.parse::<B256>() else {
        return invalid("the path must be /enrollments/<relationship id: 0x + 64 hex digits>");
    };
    let id = RelationshipId(id);
    let touch = Some(Touch {
        relationship: Some(id.0),
        pointer: None,
        decision: LogDecision::AllowProvider,
        epsilon: None,
    });
    let body: Value = match serde_json::from_slice(&auth.body) {
        Ok(v) => v,
        Err(e) => return invalid(&format!("the body is not valid JSON: {e}")),
    };
    let Some(patient) = body["patient"].as_str().and_then(|p| p.parse::<ResourceId>().ok()) else {
        return invalid(
            "\"patient\" must be the FHIR id of the patient in this provider's records",
        );
    };
    let Some(texts) = body["pointers"].as_array() else {
        return invalid("\"pointers\" must be a list of FHIR search texts, pointer 0 first");
    };
    let mut pointers = Vec::with_capacity(texts.len());
    for (i, t) in texts.iter().enumerate() {
        match t.as_str().map(PointerQuery::parse) {
            Some(Ok(q)) => pointers.push(q),
            Some(Err(e)) => return invalid(&format!("pointer {i}: {e}")),
            None => return invalid(&format!("pointer {i} is not a string")),
        }
    }
    if pointers.len() > 128 {
        return invalid("a relationship holds at most 128 pointers");
    }
    {
        let index = g.app.index.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(rel) = index.relationship(&id) else {
            let response = outcome(
                StatusCode::CONFLICT,
                "conflict",
                "the chain does not show this relationship yet: enroll after its block is indexed",
            );
            return (response, touch);
        };
        if !g.app.providers.contains(&rel.provider) {
            let response = outcome(
                StatusCode::CONFLICT,
                "conflict",
                "this relationship was created by another provider",
            );
            return (response, touch);
        }
        for (i, q) in pointers.iter().enumerate() {
            let published = u8::try_from(i).ok().and_then(|n| index.pointer(&id, n));
            if published.is_some_and(|p| p.query_commitment != q.commitment()) {
                let response = outcome(
                    StatusCode::CONFLICT,
                    "conflict",
                    &format!("pointer {i}'s query text does not match the commitment on chain"),
                );
                return (response, touch);
            }
        }
    }
    match g.enroll(id, Enrollment { patient, pointers }) {
        Ok(()) => (StatusCode::NO_CONTENT.into_response(), touch),
        Err(err) => {
            tracing::error!(target: "medrec::gatekeeper", relationship = %id, %err, "saving an enrollment failed");
            let response = outcome(
                StatusCode::SERVICE_UNAVAILABLE,
                "transient",
                "the enrollment could not be saved; the error is logged, try again",
            );
            (response, touch)
        }
    }
}
