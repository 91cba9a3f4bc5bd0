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
//! ([`crate::rest`]).

use crate::{
    access::{Scope, ScopeCache},
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
use medrec_chain::{consent::ConsentIndex, follower::Health};
use medrec_primitives::RelationshipId;
use medrec_store::{RecordStore, fhir::ResourceId};
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
    store: Arc<dyn RecordStore>,
    index: Arc<RwLock<ConsentIndex>>,
    health: watch::Receiver<Health>,
    readiness: Readiness,
    enrollments: RwLock<HashMap<RelationshipId, Enrollment>>,
    enrollment_file: Option<EnrollmentFile>,
    auth: AuthState,
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
            store,
            index,
            health,
            readiness,
            enrollments: RwLock::default(),
            enrollment_file: None,
            auth,
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
        let enrollments = RwLock::new(file.load()?);
        let app = App {
            providers: Vec::new(),
            scopes: ScopeCache::default(),
            generation: AtomicU64::new(0),
            store,
            index,
            health,
            readiness,
            enrollments,
            enrollment_file: Some(file),
            auth,
        };
        Ok(Self { app: Arc::new(app) })
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

    /// The record store.
    pub(crate) fn store(&self) -> &dyn RecordStore {
        self.app.store.as_ref()
    }

    /// What `requester` may see now; fails closed when the index is not fresh (the
    /// provider's own access does not depend on the chain).
    pub(crate) fn scope(&self, requester: Address) -> Result<Scope, ApiError> {
        if self.app.providers.contains(&requester) {
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
        if self.app.providers.contains(&requester) {
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

    /// Whether the consent index is fresh enough to decide.
    pub fn is_ready(&self) -> bool {
        let r = self.app.readiness;
        self.app.health.borrow().is_ready(r.max_lag, r.max_silence)
    }

    /// The HTTP routes.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
            .route("/readyz", get(readyz))
            .route("/fhir/metadata", get(metadata))
            .route("/pointers/{relationship}/{pointer}", get(pointer))
            .merge(crate::rest::routes())
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

async fn pointer(
    State(g): State<Gatekeeper>,
    Path((relationship, pointer)): Path<(String, String)>,
    auth: Authenticated,
) -> Response {
    if !g.is_ready() {
        return outcome(
            StatusCode::SERVICE_UNAVAILABLE,
            "transient",
            "the gatekeeper is catching up with the chain and cannot decide requests yet; try again shortly",
        );
    }
    let (Ok(id), Ok(n)) = (relationship.parse::<B256>(), pointer.parse::<u8>()) else {
        return outcome(
            StatusCode::BAD_REQUEST,
            "invalid",
            "the path must be /pointers/<relationship id: 0x + 64 hex digits>/<pointer number 0-127>",
        );
    };
    let id = RelationshipId(id);
    let now = g.app.auth.clock().now();
    let decision = g.app.index.read().unwrap_or_else(std::sync::PoisonError::into_inner).decide(
        auth.requester,
        &id,
        n,
        now,
    );
    if !decision.is_allowed() {
        tracing::info!(target: "medrec::gatekeeper", requester = %auth.requester, relationship = %id, pointer = n, ?decision, "denied");
        return forbidden();
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
        return outcome(
            StatusCode::NOT_FOUND,
            "not-found",
            "this gatekeeper does not serve that pointer",
        );
    };
    match run(g.app.store.as_ref(), &query, &patient).await {
        Ok(data) => {
            tracing::info!(target: "medrec::gatekeeper", requester = %auth.requester, relationship = %id, pointer = n, ?decision, entries = data.resources.len(), "served");
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
                StatusCode::INTERNAL_SERVER_ERROR,
                "exception",
                "the records could not be read; the error is logged",
            )
        }
    }
}
