//! Research bounties at the gatekeeper: the provider publishes the text of its bounty
//! queries, and the miner who owns a bounty on chain redeems it as a private aggregate.
//!
//! Routes (present when the gatekeeper is configured with a [`ResearchDesk`]):
//!
//! - `GET /research/policy` (public): what the provider offers: k, ε per bounty, the
//!   per-researcher budget, the excluded categories and codes, and each offered query
//!   with its commitment.
//! - `GET /research/queries/{commitment}` (public): the canonical text of a published
//!   query, so that anyone can check it against the commitment a pointer update put on
//!   chain (a stored text that no longer matches its commitment is not served: 409).
//! - `PUT /research/queries` (provider only): publishes a query (its text is the body);
//!   it must pass the provider's policy. Returns its canonical text and commitment.
//! - `POST /research/redeem/{relationship id}/{sequence}` (signed or bearer): redeems
//!   the bounty `BountyPosted(relationship, owner, sequence, commitment)`. Served only
//!   when, on chain, the requester is the bounty's owner (the miner of the block that
//!   included the update), the owner is a research entity admitted by the certified
//!   institutions (`Registrar.isResearcher`), the relationship is this provider's, and
//!   the published text matches the commitment. The consent index must have reached
//!   the bounty's block (else 503: try again). The aggregate runs over the records of
//!   the patients whose relationships with this provider are opted in to research now
//!   (default out; a patient with several such relationships counts once), with
//!   k-anonymity and differential privacy ([`medrec_research`]); the researcher's ε
//!   budget is enforced and the noisy answer stored, so that asking again returns the
//!   same answer and spends nothing. Every redemption, served or refused, is in the
//!   access log; a release is logged once for each contributing relationship, with its
//!   ε, so those patients see it (a replay is logged once, without ε).
//!   The answer: `bounty`, `block`, `owner`, `commitment`, `k`, `release` (the
//!   aggregate), `epsilon` (what it spent), `spent` (the researcher's total here),
//!   `budget` and `replayed` (true when it is the stored answer, spending nothing).

use crate::{
    audit::{Touch, deny},
    auth::Authenticated,
    server::{Gatekeeper, outcome},
};
use alloy::{
    primitives::{Address, B256, U256},
    providers::{DynProvider, Provider, ProviderBuilder},
    rpc::types::Filter,
    sol_types::SolEvent,
};
use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use medrec_contracts::{Registrar, Relationships};
use medrec_primitives::{RelationshipId, Status};
use medrec_research::{
    aggregate::{PatientData, release},
    ledger::{Ledger, LedgerError},
    policy::Policy,
    query::{BountyQuery, commitment_of_text},
};
use medrec_store::{
    RecordStore,
    audit::{Action, Decision as LogDecision},
    fhir::{ResourceId, ResourceType},
    search::SearchQuery,
};
use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
use serde_json::{Value, json};
use std::sync::Arc;

/// What a gatekeeper needs to serve research bounties.
#[derive(Debug)]
pub struct ResearchDesk {
    chain: DynProvider,
    registrar: Address,
    relationships: Address,
    from_block: u64,
    policy: Policy,
    ledger: Arc<Ledger>,
}

/// Why the research desk could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ResearchSetupError {
    /// The RPC URL does not parse.
    #[error("'{0}' is not a URL of a chain node")]
    Url(String),
}

impl ResearchDesk {
    /// A desk reading the chain at `rpc_url` (Registrar and Relationships contracts,
    /// events from `from_block`), applying `policy`, keeping texts, answers and budgets
    /// in `ledger`.
    ///
    /// # Errors
    /// When `rpc_url` is not a URL.
    pub fn new(
        rpc_url: &str,
        registrar: Address,
        relationships: Address,
        from_block: u64,
        policy: Policy,
        ledger: Ledger,
    ) -> Result<Self, ResearchSetupError> {
        let url = rpc_url.parse().map_err(|_| ResearchSetupError::Url(rpc_url.to_owned()))?;
        let chain = ProviderBuilder::new().connect_http(url).erased();
        Ok(Self { chain, registrar, relationships, from_block, policy, ledger: Arc::new(ledger) })
    }

    /// The provider's research policy.
    pub const fn policy(&self) -> &Policy {
        &self.policy
    }
}

/// A refusal: status, FHIR issue code, and a sentence for the researcher.
struct Refusal(StatusCode, &'static str, String, &'static str);

impl Refusal {
    fn response(&self) -> Response {
        outcome(self.0, self.1, &self.2)
    }
}

fn no_desk() -> Response {
    outcome(
        StatusCode::NOT_FOUND,
        "not-supported",
        "this gatekeeper does not offer research bounties",
    )
}

/// `GET /research/policy`.
pub(crate) async fn policy(State(g): State<Gatekeeper>) -> Response {
    let Some(desk) = g.research() else { return no_desk() };
    let p = &desk.policy;
    let today = today();
    let offers: Vec<Value> = p
        .offers
        .iter()
        .map(|o| {
            let resolved = p.offer(&o.name, today);
            json!({
                "name": o.name,
                "query": resolved.as_ref().map(BountyQuery::canonical),
                "commitment": resolved.as_ref().map(BountyQuery::commitment),
            })
        })
        .collect();
    Json(json!({
        "k": p.k,
        "epsilon_per_bounty": p.epsilon_per_bounty,
        "budget_per_researcher": p.budget_per_researcher,
        "max_values_per_patient": p.max_values_per_patient,
        "excluded_categories": p.excluded_categories,
        "excluded_codes": p.excluded_codes,
        "offers": offers,
    }))
    .into_response()
}

/// `GET /research/queries/{commitment}`.
pub(crate) async fn query_text(
    State(g): State<Gatekeeper>,
    Path(commitment): Path<String>,
) -> Response {
    let Some(desk) = g.research() else { return no_desk() };
    let Ok(commitment) = commitment.parse::<B256>() else {
        return outcome(
            StatusCode::BAD_REQUEST,
            "invalid",
            "the path must be /research/queries/<commitment: 0x + 64 hex digits>",
        );
    };
    let ledger = Arc::clone(&desk.ledger);
    match tokio::task::spawn_blocking(move || ledger.text(commitment)).await {
        Ok(Ok(Some(text))) if commitment_of_text(&text) == commitment => {
            Json(json!({"commitment": commitment, "query": text})).into_response()
        }
        Ok(Ok(Some(_))) => {
            tracing::error!(target: "medrec::gatekeeper", %commitment, "the stored text of a bounty query does not match its commitment");
            outcome(
                StatusCode::CONFLICT,
                "conflict",
                "the provider's stored text for this commitment no longer matches it: it is not served",
            )
        }
        Ok(Ok(None)) => outcome(
            StatusCode::NOT_FOUND,
            "not-found",
            "this provider has published no query with that commitment",
        ),
        Ok(Err(e)) => ledger_failure(&e),
        Err(_) => unavailable(),
    }
}

/// `PUT /research/queries` (provider only).
pub(crate) async fn publish(State(g): State<Gatekeeper>, auth: Authenticated) -> Response {
    let Some(desk) = g.research() else { return no_desk() };
    if let Err(e) = g.provider_only(auth.requester) {
        return e.into_response();
    }
    let Ok(text) = std::str::from_utf8(&auth.body) else {
        return outcome(
            StatusCode::BAD_REQUEST,
            "invalid",
            "the body must be the query's text (UTF-8)",
        );
    };
    let query = match BountyQuery::parse_relative(text.trim(), today()) {
        Ok(q) => q,
        Err(e) => return outcome(StatusCode::BAD_REQUEST, "invalid", &e.to_string()),
    };
    if let Err(e) = desk.policy.check(&query) {
        return outcome(StatusCode::UNPROCESSABLE_ENTITY, "business-rule", &e.to_string());
    }
    let canonical = query.canonical();
    let ledger = Arc::clone(&desk.ledger);
    let stored = canonical.clone();
    match tokio::task::spawn_blocking(move || ledger.publish(&stored)).await {
        Ok(Ok(commitment)) => {
            tracing::info!(target: "medrec::gatekeeper", %commitment, "bounty query published");
            Json(json!({"commitment": commitment, "query": canonical})).into_response()
        }
        Ok(Err(e)) => ledger_failure(&e),
        Err(_) => unavailable(),
    }
}

/// `POST /research/redeem/{relationship}/{seq}`, logged.
pub(crate) async fn redeem(
    State(g): State<Gatekeeper>,
    Path((relationship, seq)): Path<(String, String)>,
    auth: Authenticated,
) -> Response {
    let Some(desk) = g.research() else { return no_desk() };
    let requester = auth.requester;
    match redeem_bounty(&g, desk, &relationship, &seq, requester).await {
        Ok((body, epsilon, contributors)) => {
            let touches: Vec<Touch> = contributors
                .iter()
                .map(|id| Touch {
                    relationship: Some(id.0),
                    pointer: None,
                    decision: LogDecision::AllowResearcher,
                    epsilon: Some(epsilon),
                })
                .collect();
            let fallback = LogDecision::AllowResearcher;
            let response = Json(body).into_response();
            g.record(requester, Action::BountyRedemption, None, touches, fallback, response).await
        }
        Err(refusal) => {
            tracing::info!(target: "medrec::gatekeeper", %requester, reason = refusal.3, "bounty redemption refused");
            g.record(
                requester,
                Action::BountyRedemption,
                None,
                Vec::new(),
                deny(refusal.3),
                refusal.response(),
            )
            .await
        }
    }
}

/// Checks a redemption against the chain and the policy, then releases (or returns the
/// stored release): the response body, the ε of the release and the relationships
/// whose records went into it.
async fn redeem_bounty(
    g: &Gatekeeper,
    desk: &ResearchDesk,
    relationship: &str,
    seq: &str,
    requester: Address,
) -> Result<(Value, f64, Vec<RelationshipId>), Refusal> {
    let (Ok(rel), Ok(seq)) = (relationship.parse::<B256>(), seq.parse::<u32>()) else {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            "invalid",
            "the path must be /research/redeem/<relationship id: 0x + 64 hex digits>/<bounty sequence number>".into(),
            "invalid-request",
        ));
    };
    let rel = RelationshipId(rel);
    let bounty_id = format!("{}:{seq}", rel.0);
    let unavailable_chain = |e: &dyn std::fmt::Display| {
        tracing::warn!(target: "medrec::gatekeeper", err = %e, "the chain node failed during a redemption");
        Refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "transient",
            "the chain node cannot be read now; try again shortly".into(),
            "unavailable",
        )
    };

    // 1. The bounty, as the chain recorded it.
    let filter = Filter::new()
        .address(desk.relationships)
        .event_signature(Relationships::BountyPosted::SIGNATURE_HASH)
        .topic1(rel.0)
        .from_block(desk.from_block);
    let logs = desk.chain.get_logs(&filter).await.map_err(|e| unavailable_chain(&e))?;
    let posted = logs.iter().find_map(|l| {
        let e = Relationships::BountyPosted::decode_log(&l.inner).ok()?;
        (e.seq == U256::from(seq)).then(|| (e.owner, e.commitment, l.block_number))
    });
    let Some((owner, commitment, block)) = posted else {
        return Err(Refusal(
            StatusCode::NOT_FOUND,
            "not-found",
            format!("there is no bounty {bounty_id} on chain"),
            "unknown-bounty",
        ));
    };
    // 2. It is this provider's, as the consent index (which must have reached the
    //    bounty's block) knows it.
    if !g.is_ready() || block.is_none_or(|b| g.indexed_block() < b) {
        return Err(Refusal(
            StatusCode::SERVICE_UNAVAILABLE,
            "transient",
            "the gatekeeper has not caught up with the chain yet; try again shortly".into(),
            "not-ready",
        ));
    }
    let provider = g.index_relationship(&rel).map(|r| r.provider);
    if !provider.is_some_and(|p| g.is_provider(p)) {
        return Err(Refusal(
            StatusCode::NOT_FOUND,
            "not-found",
            format!(
                "bounty {bounty_id} was not posted by this provider: redeem it at the gatekeeper of the provider that posted it"
            ),
            "unknown-bounty",
        ));
    }
    // 3. The requester owns it, and is an admitted research entity.
    if owner != requester {
        return Err(Refusal(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "bounty {bounty_id} belongs to {owner}, the miner of block {}: only its owner may redeem it",
                block.map_or_else(|| "?".to_owned(), |b| b.to_string())
            ),
            "not-owner",
        ));
    }
    let admitted = Registrar::new(desk.registrar, &desk.chain)
        .isResearcher(owner)
        .call()
        .await
        .map_err(|e| unavailable_chain(&e))?;
    if !admitted {
        return Err(Refusal(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{owner} is not a research entity admitted by the certified institutions: only admitted researchers earn bounties"
            ),
            "not-admitted",
        ));
    }
    // 4. The published text matches the commitment on chain.
    let ledger = Arc::clone(&desk.ledger);
    let text = tokio::task::spawn_blocking(move || ledger.text(commitment))
        .await
        .map_err(|_| internal())?
        .map_err(|e| ledger_refusal(&e))?;
    let Some(text) = text else {
        return Err(Refusal(
            StatusCode::NOT_FOUND,
            "not-found",
            format!(
                "the provider has not published the text of bounty {bounty_id} (commitment {commitment})"
            ),
            "unknown-query",
        ));
    };
    if commitment_of_text(&text) != commitment {
        tracing::error!(target: "medrec::gatekeeper", %commitment, "the stored text of a bounty query does not match its commitment");
        return Err(Refusal(
            StatusCode::CONFLICT,
            "conflict",
            format!(
                "the provider's text for bounty {bounty_id} does not match the commitment on chain: nothing is released"
            ),
            "commitment-mismatch",
        ));
    }
    let query: BountyQuery = text.parse().map_err(|e: medrec_research::query::QueryError| {
        Refusal(
            StatusCode::CONFLICT,
            "conflict",
            format!("the bounty's query is not valid: {e}"),
            "invalid-query",
        )
    })?;
    if let Err(e) = desk.policy.check(&query) {
        return Err(Refusal(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("the provider's policy no longer offers this bounty: {e}"),
            "policy",
        ));
    }
    // 5. Asked before: the same answer, nothing spent.
    let ledger = Arc::clone(&desk.ledger);
    let id = bounty_id.clone();
    let stored = tokio::task::spawn_blocking(move || ledger.answer(&id))
        .await
        .map_err(|_| internal())?
        .map_err(|e| ledger_refusal(&e))?;
    if let Some(stored) = stored {
        let spent = spent_by(desk, requester).await?;
        let mut body = body(&bounty_id, block, owner, commitment, &stored, spent, &desk.policy);
        body["replayed"] = Value::Bool(true);
        return Ok((body, stored.epsilon(), Vec::new()));
    }
    // 6. The cohort: opted-in relationships of this provider, their records now; a
    //    patient with several opted-in relationships counts once.
    let cohort_ids = g.research_cohort();
    let mut patients: Vec<&ResourceId> = cohort_ids.iter().map(|(_, p)| p).collect();
    patients.sort();
    patients.dedup();
    let mut cohort = Vec::with_capacity(patients.len());
    for patient in patients {
        cohort.push(patient_data(g.store(), patient).await.map_err(|e| {
            tracing::error!(target: "medrec::gatekeeper", err = %e, "reading records for a bounty failed");
            Refusal(StatusCode::SERVICE_UNAVAILABLE, "transient", "the records cannot be read now; try again shortly".into(), "unavailable")
        })?);
    }
    let mut rng = ChaCha20Rng::try_from_os_rng().map_err(|e| {
        tracing::error!(target: "medrec::gatekeeper", err = %e, "the operating system's random generator failed");
        internal()
    })?;
    let released = release(&query, &desk.policy, &cohort, today(), &mut rng).map_err(|e| {
        Refusal(
            StatusCode::UNPROCESSABLE_ENTITY,
            "processing",
            format!("the aggregate cannot be computed: {e}"),
            "aggregate",
        )
    })?;
    let ledger = Arc::clone(&desk.ledger);
    let budget = desk.policy.budget_per_researcher;
    let id = bounty_id.clone();
    let (stored, fresh) = tokio::task::spawn_blocking(move || {
        let stored = ledger.record(&id, requester, &released, budget)?;
        // A concurrent redemption of the same bounty may have stored its answer first:
        // then that one is returned and this computation released nothing.
        let fresh = *stored.release() == released;
        Ok::<_, LedgerError>((stored, fresh))
    })
    .await
    .map_err(|_| internal())?
    .map_err(|e| ledger_refusal(&e))?;
    let contributors =
        if fresh { cohort_ids.into_iter().map(|(id, _)| id).collect() } else { Vec::new() };
    let mut body =
        body(&bounty_id, block, owner, commitment, &stored, stored.spent(), &desk.policy);
    body["replayed"] = Value::Bool(!fresh);
    Ok((body, stored.epsilon(), contributors))
}

/// The ε `researcher` has spent at this provider.
async fn spent_by(desk: &ResearchDesk, researcher: Address) -> Result<f64, Refusal> {
    let ledger = Arc::clone(&desk.ledger);
    tokio::task::spawn_blocking(move || ledger.spent(researcher))
        .await
        .map_err(|_| internal())?
        .map_err(|e| ledger_refusal(&e))
}

fn body(
    bounty_id: &str,
    block: Option<u64>,
    owner: Address,
    commitment: B256,
    stored: &medrec_research::ledger::StoredRelease,
    spent: f64,
    policy: &Policy,
) -> Value {
    json!({
        "bounty": bounty_id,
        "block": block,
        "owner": owner,
        "commitment": commitment,
        "k": policy.k,
        "release": stored.release(),
        "epsilon": stored.epsilon(),
        "spent": spent,
        "budget": policy.budget_per_researcher,
    })
}

/// A patient's FHIR Patient resource and Observations.
async fn patient_data(
    store: &dyn RecordStore,
    patient: &ResourceId,
) -> Result<PatientData, medrec_store::StoreError> {
    let person = store.read(ResourceType::Patient, patient).await?.map(|s| s.json);
    let mut resources = Vec::new();
    loop {
        let mut query = SearchQuery::all(ResourceType::Observation);
        query.patient = Some(patient.clone());
        query.count = 500;
        query.offset = u32::try_from(resources.len()).unwrap_or(u32::MAX);
        let page = store.search(&query).await?;
        let got = page.entries.len();
        resources.extend(page.entries.into_iter().map(|s| s.json));
        if got == 0 || resources.len() as u64 >= page.total {
            break;
        }
    }
    Ok(PatientData { patient: person.unwrap_or(Value::Null), resources })
}

/// Today (UTC), the reference for relative windows and age bands.
fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

fn internal() -> Refusal {
    Refusal(
        StatusCode::INTERNAL_SERVER_ERROR,
        "exception",
        "the redemption failed; nothing was released".into(),
        "failed",
    )
}

fn unavailable() -> Response {
    outcome(
        StatusCode::SERVICE_UNAVAILABLE,
        "transient",
        "the research ledger is busy; try again shortly",
    )
}

fn ledger_failure(e: &LedgerError) -> Response {
    ledger_refusal(e).response()
}

fn ledger_refusal(e: &LedgerError) -> Refusal {
    match e {
        LedgerError::BudgetExhausted { .. } => {
            Refusal(StatusCode::FORBIDDEN, "forbidden", e.to_string(), "budget-exhausted")
        }
        other => {
            tracing::error!(target: "medrec::gatekeeper", err = %other, "the research ledger failed");
            Refusal(
                StatusCode::SERVICE_UNAVAILABLE,
                "transient",
                "the research ledger cannot be used now; nothing was released".into(),
                "unavailable",
            )
        }
    }
}

impl Gatekeeper {
    /// The opted-in relationships of this provider that the patient has not closed, with
    /// their patients' FHIR ids.
    pub(crate) fn research_cohort(&self) -> Vec<(RelationshipId, ResourceId)> {
        self.enrollments_where(|r| {
            self.is_provider(r.provider)
                && r.research_opt_in
                && !matches!(r.status, Status::Rejected | Status::Deleted)
        })
    }
}
