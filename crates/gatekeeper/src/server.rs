//! The gatekeeper's shared state ([`Gatekeeper`]): the record store, the consent index
//! and its health, the enrollments, the access log, authentication and research; and the
//! decisions every route shares (readiness, who is known, who sees what).
//!
//! The routes themselves are assembled in one place, [`Gatekeeper::router`] (the
//! `routes` module), in the order of the pipeline:
//!
//! 1. **Ready?** A decision that needs the chain fails closed with 503 while the consent
//!    index is behind the chain or the node stopped answering (the provider's own
//!    access does not depend on the chain).
//! 2. **Who?** and **how fast?** ([`crate::pipeline`]): a bearer token or an EIP-712
//!    signature of an address the chain knows, within its rate limit.
//! 3. **What may they see?** The consent index decides in memory
//!    ([`ConsentIndex::decide`], [`crate::access`]) before any row is read.
//! 4. **Data**, from a store the scope already narrowed, then the response.
//! 5. **Audit** ([`crate::audit`]), as a layer around all of it.

pub use crate::enrollment::{Enrollment, EnrollmentError, EnrollmentFile};

use crate::{
    access::{Reach, Scope, ScopeCache},
    audit::Trail,
    auth::AuthState,
    error::ApiError,
    limits::KeyedLimiter,
    pipeline::Refusal,
};
use alloy::primitives::Address;
use axum::{Router, extract::FromRef, http::HeaderName};
use medrec_chain::{consent::ConsentIndex, follower::Health};
use medrec_contracts::Rights;
use medrec_primitives::RelationshipId;
use medrec_store::{
    RecordReader, RecordStore, RecordWriter,
    audit::{AccessLog, WriterConfig},
    fhir::ResourceId,
};
use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    sync::{
        Arc, PoisonError, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};
use tokio::sync::watch;

/// Header carrying the data hash of a pointer's result (`0x` + 64 hex digits).
pub const DATA_HASH_HEADER: HeaderName = HeaderName::from_static("x-medrec-data-hash");

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

/// Requests refused before their handler, by cause (never in the access log).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Refusals {
    /// No credentials, malformed ones, or refused ones.
    pub unauthenticated: u64,
    /// Valid credentials of an address the chain does not know.
    pub unknown_requester: u64,
    /// Signed requests from a source address over its budget of failed
    /// authentications, refused before their signature was checked.
    pub source_throttled: u64,
    /// Requests of a requester over its rate limit.
    pub requester_throttled: u64,
    /// Bodies that could not be read (too large, or a broken connection).
    pub body: u64,
}

#[derive(Debug, Default)]
struct Counters {
    unauthenticated: AtomicU64,
    unknown_requester: AtomicU64,
    source_throttled: AtomicU64,
    requester_throttled: AtomicU64,
    body: AtomicU64,
}

/// The enrollments, and the reverse map from a patient's FHIR id to the relationships
/// about them (to log the provider's own reads against each patient).
#[derive(Debug, Default)]
pub(crate) struct Enrolled {
    pub(crate) by_relationship: HashMap<RelationshipId, Enrollment>,
    by_patient: HashMap<ResourceId, Vec<RelationshipId>>,
    /// The accounts offered a relationship here (they may ask for their offers before
    /// the chain names them).
    offered: HashSet<Address>,
}

impl Enrolled {
    fn new(by_relationship: HashMap<RelationshipId, Enrollment>) -> Self {
        let mut e = Self { by_relationship, by_patient: HashMap::new(), offered: HashSet::new() };
        e.reindex();
        e
    }

    fn reindex(&mut self) {
        self.by_patient.clear();
        self.offered.clear();
        for (id, e) in &self.by_relationship {
            self.by_patient.entry(e.patient.clone()).or_default().push(*id);
            if let Some(offer) = &e.offer {
                self.offered.insert(offer.account);
            }
        }
        for ids in self.by_patient.values_mut() {
            ids.sort();
        }
    }

    /// The relationships about the patient with FHIR id `patient`.
    pub(crate) fn of_patient(&self, patient: &str) -> &[RelationshipId] {
        patient
            .parse::<ResourceId>()
            .ok()
            .and_then(|p| self.by_patient.get(&p))
            .map_or(&[], Vec::as_slice)
    }
}

/// The records a gatekeeper serves: a reader, and a writer when the provider's records
/// may be changed through the FHIR API. A provider's own database mapped read-only
/// ([`medrec_store::legacy`]) is a reader only: the provider's writes are then refused
/// with 405 (`not-supported`), no write reaching any store.
#[derive(Debug, Clone)]
pub struct Records {
    reader: Arc<dyn RecordReader>,
    writer: Option<Arc<dyn RecordWriter>>,
}

impl Records {
    /// A full store, read and written.
    pub fn read_write(store: Arc<dyn RecordStore>) -> Self {
        Self { reader: store.clone(), writer: Some(store) }
    }

    /// A store that is only read.
    pub fn read_only(reader: Arc<dyn RecordReader>) -> Self {
        Self { reader, writer: None }
    }

    /// Whether the provider may write through the gatekeeper.
    pub fn is_writable(&self) -> bool {
        self.writer.is_some()
    }
}

impl From<Arc<dyn RecordStore>> for Records {
    fn from(store: Arc<dyn RecordStore>) -> Self {
        Self::read_write(store)
    }
}

impl<S: RecordStore + 'static> From<Arc<S>> for Records {
    fn from(store: Arc<S>) -> Self {
        Self { reader: store.clone(), writer: Some(store) }
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
    records: Records,
    index: Arc<RwLock<ConsentIndex>>,
    health: watch::Receiver<Health>,
    readiness: Readiness,
    enrolled: RwLock<Enrolled>,
    enrollment_file: Option<EnrollmentFile>,
    auth: AuthState,
    counters: Counters,
    /// Research bounties, when this gatekeeper offers them.
    research: Option<Arc<crate::research::ResearchDesk>>,
    /// SMART App Launch: the registered clients, codes and refresh tokens.
    smart: crate::smart::Smart,
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

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

impl Gatekeeper {
    /// A gatekeeper over `records` (a full store, or [`Records::read_only`]), deciding
    /// with `index` (kept current by a follower whose health arrives on `health`),
    /// authenticating with `auth`.
    pub fn new(
        records: impl Into<Records>,
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
            records: records.into(),
            index,
            health,
            readiness,
            enrolled: RwLock::default(),
            enrollment_file: None,
            auth,
            counters: Counters::default(),
            research: None,
            smart: crate::smart::Smart::default(),
        };
        Self { app: Arc::new(app) }
    }

    /// The same, keeping enrollments in `file` (loaded now, rewritten on each change).
    pub fn with_enrollment_file(
        records: impl Into<Records>,
        index: Arc<RwLock<ConsentIndex>>,
        health: watch::Receiver<Health>,
        readiness: Readiness,
        auth: AuthState,
        file: EnrollmentFile,
    ) -> Result<Self, EnrollmentError> {
        let enrollments = file.load()?;
        let mut g = Self::new(records, index, health, readiness, auth);
        let app = Arc::get_mut(&mut g.app).expect("not shared yet");
        app.enrolled = RwLock::new(Enrolled::new(enrollments));
        app.enrollment_file = Some(file);
        Ok(g)
    }

    fn configure(&mut self) -> &mut App {
        Arc::get_mut(&mut self.app).expect("configure the gatekeeper before serving it")
    }

    /// Records what the gatekeeper serves for a relationship (normally done when the
    /// provider enrolls the patient); with an enrollment file, it is on disk when this
    /// returns.
    pub fn enroll(
        &self,
        relationship: RelationshipId,
        enrollment: Enrollment,
    ) -> Result<(), EnrollmentError> {
        let mut all = self.app.enrolled.write().unwrap_or_else(PoisonError::into_inner);
        let previous = all.by_relationship.insert(relationship, enrollment);
        if let Some(file) = &self.app.enrollment_file
            && let Err(e) = file.save(&all.by_relationship)
        {
            // Keep memory and disk in agreement: undo the change.
            match previous {
                Some(p) => all.by_relationship.insert(relationship, p),
                None => all.by_relationship.remove(&relationship),
            };
            return Err(e);
        }
        all.reindex();
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
        self.configure().providers.push(provider);
        self
    }

    /// Appends every request this gatekeeper decides to `log` (through a batching
    /// writer started now, on the current tokio runtime).
    ///
    /// # Panics
    /// When called after the gatekeeper was cloned (configure it before serving).
    #[must_use]
    pub fn with_access_log(mut self, log: Arc<dyn AccessLog>, config: WriterConfig) -> Self {
        self.configure().trail = Some(Trail::new(log, config));
        self
    }

    /// Serves research bounties (see [`crate::research`]).
    ///
    /// # Panics
    /// When called after the gatekeeper was cloned (configure it before serving).
    #[must_use]
    pub fn with_research(mut self, desk: crate::research::ResearchDesk) -> Self {
        self.configure().research = Some(Arc::new(desk));
        self
    }

    /// Lets the SMART apps of `clients` (public clients, each with its redirect URIs)
    /// be authorized here ([`crate::smart`]); with none, every authorization request is
    /// refused.
    ///
    /// # Panics
    /// When called after the gatekeeper was cloned (configure it before serving).
    #[must_use]
    pub fn with_smart_clients(mut self, clients: crate::smart::SmartClients) -> Self {
        self.configure().smart.set_clients(clients);
        self
    }

    /// Signs SMART's id tokens (`openid`) with `key` instead of the key made when the
    /// gatekeeper was built ([`crate::smart::oidc`]).
    ///
    /// # Panics
    /// When called after the gatekeeper was cloned (configure it before serving).
    #[must_use]
    pub fn with_id_token_key(mut self, key: crate::smart::oidc::IdKey) -> Self {
        self.configure().smart.set_id_key(key);
        self
    }

    /// **For benchmarks only**: the FHIR API skips authentication and consent and
    /// serves every request as if the provider sent it, to measure what authorization
    /// costs against the same server. Never serve real records this way.
    ///
    /// # Panics
    /// When called after the gatekeeper was cloned.
    #[must_use]
    pub fn with_authorization_off_for_benchmarks(mut self) -> Self {
        self.configure().authorization_off = true;
        self
    }

    /// The HTTP routes: see the [module documentation](self).
    pub fn router(&self) -> Router {
        crate::routes::app(self)
    }

    /// SMART App Launch's clients, codes and refresh tokens.
    pub(crate) fn smart(&self) -> &crate::smart::Smart {
        &self.app.smart
    }

    /// The research desk, when this gatekeeper offers bounties.
    pub(crate) fn research(&self) -> Option<&crate::research::ResearchDesk> {
        self.app.research.as_deref()
    }

    /// Authentication, with its clock and rate limits.
    pub(crate) fn auth(&self) -> &AuthState {
        &self.app.auth
    }

    /// The access log, when one is configured.
    pub(crate) fn trail(&self) -> Option<&Trail> {
        self.app.trail.as_ref()
    }

    /// The budget of failed authentications per source address, when limited.
    pub(crate) fn unauthenticated_limiter(&self) -> Option<&KeyedLimiter<IpAddr>> {
        self.app.auth.failed_authentications()
    }

    /// The provider's own address (the first it was configured with).
    pub(crate) fn provider_address(&self) -> Option<Address> {
        self.app.providers.first().copied()
    }

    /// Whether `address` acts as this gatekeeper's provider.
    pub(crate) fn is_provider(&self, address: Address) -> bool {
        self.app.providers.contains(&address)
    }

    /// Whether `address` may be served at all: the provider, an address the chain
    /// names as a patient, a key, a viewer or a bounty owner, or an account this
    /// provider offered a relationship.
    pub(crate) fn is_known(&self, address: Address) -> bool {
        self.is_provider(address)
            || read(&self.app.index).is_participant(address)
            || read(&self.app.enrolled).offered.contains(&address)
    }

    /// The offers made to `account` here that the chain does not show yet.
    pub(crate) fn offers_for(&self, account: Address) -> Vec<crate::offer::OfferView> {
        let index = read(&self.app.index);
        let all = read(&self.app.enrolled);
        let mut out: Vec<_> = all
            .by_relationship
            .iter()
            .filter(|(id, _)| index.relationship(id).is_none())
            .filter_map(|(id, e)| {
                let offer = e.offer.as_ref().filter(|o| o.account == account)?;
                Some(crate::offer::OfferView {
                    relationship: *id,
                    provider: offer.provider,
                    account: offer.account,
                    delegate: offer.delegate,
                    query_commitment: e.pointers.first()?.commitment(),
                    data_hash: offer.data_hash,
                    signature: offer.signature.clone(),
                })
            })
            .collect();
        out.sort_by_key(|o| o.relationship);
        out
    }

    /// Counts a request refused before its handler.
    pub(crate) fn count_refusal(&self, refusal: Refusal) {
        let c = &self.app.counters;
        let counter = match refusal {
            Refusal::Unauthenticated => &c.unauthenticated,
            Refusal::UnknownRequester => &c.unknown_requester,
            Refusal::SourceThrottled => &c.source_throttled,
            Refusal::RequesterThrottled => &c.requester_throttled,
            Refusal::Body => &c.body,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// How many requests were refused before their handler, by cause.
    pub fn refusals(&self) -> Refusals {
        let c = &self.app.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Refusals {
            unauthenticated: get(&c.unauthenticated),
            unknown_requester: get(&c.unknown_requester),
            source_throttled: get(&c.source_throttled),
            requester_throttled: get(&c.requester_throttled),
            body: get(&c.body),
        }
    }

    /// Runs `f` over the consent index as it is now.
    pub(crate) fn with_index<T>(&self, f: impl FnOnce(&ConsentIndex) -> T) -> T {
        f(&read(&self.app.index))
    }

    /// Runs `f` over the enrollments as they are now.
    pub(crate) fn with_enrolled<T>(&self, f: impl FnOnce(&Enrolled) -> T) -> T {
        f(&read(&self.app.enrolled))
    }

    /// The enrolled relationships whose indexed state satisfies `keep`, with their
    /// patients' FHIR ids, in a stable order.
    pub(crate) fn enrollments_where(
        &self,
        keep: impl Fn(&medrec_chain::consent::Relationship) -> bool,
    ) -> Vec<(RelationshipId, ResourceId)> {
        let index = read(&self.app.index);
        let all = read(&self.app.enrolled);
        let mut out: Vec<(RelationshipId, ResourceId)> = all
            .by_relationship
            .iter()
            .filter(|(id, _)| index.relationship(id).is_some_and(&keep))
            .map(|(id, e)| (*id, e.patient.clone()))
            .collect();
        out.sort_by_key(|(id, _)| id.0);
        out
    }

    /// The relationships at this gatekeeper of the account `requester` (a key) sees for.
    pub(crate) fn patient_relationships(&self, requester: Address) -> Vec<RelationshipId> {
        let now = crate::auth::unix_now();
        let Some(account) = self.with_index(|i| i.acting_for(requester, Rights::SEE, now)) else {
            return Vec::new();
        };
        let mut out: Vec<RelationshipId> = self
            .enrollments_where(|r| r.patient == account)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        out.sort();
        out
    }

    /// Waits until every request answered so far is in the access log.
    pub async fn flush_access_log(&self) {
        if let Some(trail) = &self.app.trail {
            trail.flush().await;
        }
    }

    /// Whether authorization is switched off (benchmark baseline).
    pub(crate) fn authorization_off(&self) -> bool {
        self.app.authorization_off
    }

    /// The records, to read.
    pub(crate) fn reader(&self) -> &dyn RecordReader {
        self.app.records.reader.as_ref()
    }

    /// The records, to write; refused (405) when they are only read.
    pub(crate) fn writer(&self) -> Result<&dyn RecordWriter, ApiError> {
        self.app.records.writer.as_deref().ok_or(ApiError::ReadOnly)
    }

    /// Fails closed (503) when the consent index is not fresh enough to decide.
    pub(crate) fn ready(&self) -> Result<(), ApiError> {
        if self.is_ready() { Ok(()) } else { Err(ApiError::NotReady) }
    }

    /// What `requester` may see now; fails closed when the index is not fresh (the
    /// provider's own access does not depend on the chain).
    pub(crate) fn scope(&self, requester: Address) -> Result<Scope, ApiError> {
        if self.app.authorization_off || self.is_provider(requester) {
            return Ok(Scope::provider());
        }
        self.ready()?;
        let now = self.app.auth.clock().now();
        let generation = self.app.generation.load(Ordering::Acquire);
        let index = read(&self.app.index);
        let scope = self.app.scopes.scope(&index, &self.app.enrolled, generation, requester, now);
        if let Reach::Limited(c) = scope.reach()
            && c.is_empty()
        {
            return Err(ApiError::forbidden(
                "you may not read records here: the patient has not shared any with you",
                "forbidden",
            ));
        }
        Ok(scope)
    }

    /// What the sender of a request may see now: [`Gatekeeper::scope`], narrowed by the
    /// scopes of its SMART token when it sent one.
    ///
    /// A SMART token never outlives the chain's consent behind it: once its holder may
    /// read nothing here (or no longer the records of the patient in its context), the
    /// token and everything issued with it are revoked, and the request is answered 401.
    pub(crate) fn scope_of(&self, caller: &crate::pipeline::Caller) -> Result<Scope, ApiError> {
        let scope = self.scope(caller.address);
        let Some(grant) = &caller.grant else { return scope };
        let ended = match &scope {
            Err(ApiError::Forbidden { .. }) => true,
            Ok(s) => match s.reach() {
                Reach::Limited(c) => {
                    grant.patient.as_ref().is_some_and(|p| !c.iter().any(|k| k.patient() == p))
                }
                Reach::Provider => false,
            },
            Err(_) => false,
        };
        if ended {
            grant.family.revoke();
            return Err(ApiError::Auth(crate::auth::AuthError::InvalidToken));
        }
        Ok(scope?.narrowed(Some(Arc::clone(grant))))
    }

    /// Refuses anyone but the provider.
    pub(crate) fn provider_only(&self, requester: Address) -> Result<(), ApiError> {
        if self.app.authorization_off || self.is_provider(requester) {
            Ok(())
        } else {
            Err(ApiError::forbidden("only the provider may do this", "forbidden"))
        }
    }

    /// The enrollment of a relationship.
    pub fn enrollment(&self, relationship: &RelationshipId) -> Option<Enrollment> {
        read(&self.app.enrolled).by_relationship.get(relationship).cloned()
    }

    /// The chain's head and the last block applied to the consent index.
    pub(crate) fn health(&self) -> Health {
        *self.app.health.borrow()
    }

    /// Whether the consent index is fresh enough to decide.
    pub fn is_ready(&self) -> bool {
        let r = self.app.readiness;
        self.app.health.borrow().is_ready(r.max_lag, r.max_silence)
    }
}
