//! Research bounties at the gatekeeper: the provider publishes the text of its bounty
//! queries, and the miner who owns a bounty on chain redeems it as a private aggregate.
//!
//! Routes (present when the gatekeeper is configured with a [`ResearchDesk`]):
//!
//! - `GET /research/policy` (public): what the provider offers: k, ε per bounty and
//!   the share of it that decides suppression, the per-researcher and per-patient
//!   budgets, the excluded categories and codes, and each offered query with its
//!   commitment ([`PolicyView`]).
//! - `GET /research/queries/{commitment}` (public): the canonical text of a published
//!   query, so that anyone can check it against the commitment a pointer update put on
//!   chain (a stored text that no longer matches its commitment is not served: 409).
//! - `PUT /research/queries` (provider only): publishes a query (its text is the body);
//!   it must pass the provider's policy. Returns its canonical text and commitment.
//! - `POST /research/redeem/{relationship id}/{sequence}` (signed or bearer): redeems
//!   a bounty; see [`redeem`](mod@redeem).

mod redeem;

pub use redeem::Redemption;
pub(crate) use redeem::redeem;

use crate::{error::ApiError, pipeline::Caller, server::Gatekeeper};
use alloy::{
    primitives::{Address, B256},
    providers::{DynProvider, Provider, ProviderBuilder},
};
use axum::{
    Extension, Json,
    extract::{Path, State},
};
use medrec_research::{
    ledger::{Ledger, LedgerError},
    policy::Policy,
    query::{BountyQuery, commitment_of_text},
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What a gatekeeper needs to serve research bounties.
#[derive(Debug)]
pub struct ResearchDesk {
    chain: DynProvider,
    registrar: Address,
    relationships: Address,
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
    /// A desk reading the chain at `rpc_url` (which research entities the `Registrar`
    /// admits), applying `policy`, keeping texts, answers and budgets in `ledger`.
    /// Bounties themselves are read from the gatekeeper's consent index, which follows
    /// the `Relationships` contract's events (the contract is asked directly only about
    /// the blocks the index may not have applied yet).
    ///
    /// # Errors
    /// When `rpc_url` is not a URL.
    pub fn new(
        rpc_url: &str,
        registrar: Address,
        relationships: Address,
        policy: Policy,
        ledger: Ledger,
    ) -> Result<Self, ResearchSetupError> {
        let url = rpc_url.parse().map_err(|_| ResearchSetupError::Url(rpc_url.to_owned()))?;
        let chain = ProviderBuilder::new().connect_http(url).erased();
        Ok(Self { chain, registrar, relationships, policy, ledger: Arc::new(ledger) })
    }

    /// The provider's research policy.
    pub const fn policy(&self) -> &Policy {
        &self.policy
    }

    /// Runs `f` on the ledger off the async threads (SQLite).
    async fn ledger<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Ledger) -> Result<T, LedgerError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let ledger = Arc::clone(&self.ledger);
        tokio::task::spawn_blocking(move || f(&ledger))
            .await
            .map_err(|_| ApiError::Unavailable {
                why: "the research ledger is busy; try again shortly",
                reason: "unavailable",
            })?
            .map_err(|e| ledger_error(&e))
    }
}

fn ledger_error(e: &LedgerError) -> ApiError {
    match e {
        LedgerError::BudgetExhausted { .. } => {
            ApiError::Forbidden { why: e.to_string().into(), reason: "budget-exhausted" }
        }
        LedgerError::PatientBudgetChanged => ApiError::Unavailable {
            why: "another release used the cohort's privacy budget meanwhile: nothing was released; try again",
            reason: "unavailable",
        },
        other => {
            tracing::error!(target: "medrec::gatekeeper", err = %other, "the research ledger failed");
            ApiError::Unavailable {
                why: "the research ledger cannot be used now; nothing was released",
                reason: "unavailable",
            }
        }
    }
}

fn desk(g: &Gatekeeper) -> Result<&ResearchDesk, ApiError> {
    g.research().ok_or(ApiError::NotSupported("this gatekeeper does not offer research bounties"))
}

/// Today (UTC), the reference for relative windows and age bands.
fn today() -> time::Date {
    time::OffsetDateTime::now_utc().date()
}

/// The body of `GET /research/policy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyView {
    /// Cells with fewer patients are suppressed.
    pub k: usize,
    /// ε each bounty spends in all.
    pub epsilon_per_bounty: f64,
    /// The share of it spent on the noisy count that decides suppression.
    pub suppression_share: f64,
    /// The most ε one researcher may spend at this provider.
    pub budget_per_researcher: f64,
    /// The most ε each patient's records may contribute to at this provider, across
    /// all researchers.
    pub budget_per_patient: f64,
    /// The most values one patient contributes to an aggregate.
    pub max_values_per_patient: usize,
    /// Categories never released.
    pub excluded_categories: Vec<String>,
    /// Codes never released.
    pub excluded_codes: Vec<String>,
    /// The queries offered.
    pub offers: Vec<OfferView>,
}

/// One offered query, resolved for today.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferView {
    /// Its name in the policy.
    pub name: String,
    /// Its canonical text, when it resolves today.
    pub query: Option<String>,
    /// The commitment of that text.
    pub commitment: Option<B256>,
}

/// A published query: its commitment and canonical text (`GET /research/queries/{c}`
/// and the answer of `PUT /research/queries`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishedQuery {
    /// `keccak256("medrec/bounty-query/v1\n" ‖ query)`.
    pub commitment: B256,
    /// The canonical text.
    pub query: String,
}

/// `GET /research/policy`.
pub(crate) async fn policy(State(g): State<Gatekeeper>) -> Result<Json<PolicyView>, ApiError> {
    let p = &desk(&g)?.policy;
    let today = today();
    let offers = p
        .offers
        .iter()
        .map(|o| {
            let resolved = p.offer(&o.name, today);
            OfferView {
                name: o.name.clone(),
                query: resolved.as_ref().map(BountyQuery::canonical),
                commitment: resolved.as_ref().map(BountyQuery::commitment),
            }
        })
        .collect();
    Ok(Json(PolicyView {
        k: p.k,
        epsilon_per_bounty: p.epsilon_per_bounty,
        suppression_share: p.suppression_share,
        budget_per_researcher: p.budget_per_researcher,
        budget_per_patient: p.patient_budget(),
        max_values_per_patient: p.max_values_per_patient,
        excluded_categories: p.excluded_categories.clone(),
        excluded_codes: p.excluded_codes.clone(),
        offers,
    }))
}

/// `GET /research/queries/{commitment}`.
pub(crate) async fn query_text(
    State(g): State<Gatekeeper>,
    Path(commitment): Path<String>,
) -> Result<Json<PublishedQuery>, ApiError> {
    let desk = desk(&g)?;
    let Ok(commitment) = commitment.parse::<B256>() else {
        return Err(ApiError::Invalid(
            "the path must be /research/queries/<commitment: 0x + 64 hex digits>".into(),
        ));
    };
    match desk.ledger(move |l| l.text(commitment)).await? {
        Some(query) if commitment_of_text(&query) == commitment => {
            Ok(Json(PublishedQuery { commitment, query }))
        }
        Some(_) => {
            tracing::error!(target: "medrec::gatekeeper", %commitment, "the stored text of a bounty query does not match its commitment");
            Err(ApiError::Conflict {
                why: "the provider's stored text for this commitment no longer matches it: it is not served".into(),
                issue: "conflict",
                reason: "commitment-mismatch",
            })
        }
        None => Err(ApiError::NotFound {
            why: "this provider has published no query with that commitment".into(),
            reason: "unknown-query",
        }),
    }
}

/// `PUT /research/queries` (provider only).
pub(crate) async fn publish(
    State(g): State<Gatekeeper>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<PublishedQuery>, ApiError> {
    let desk = desk(&g)?;
    g.provider_only(caller.address)?;
    let Ok(text) = std::str::from_utf8(&caller.body) else {
        return Err(ApiError::Invalid("the body must be the query's text (UTF-8)".into()));
    };
    let query = BountyQuery::parse_relative(text.trim(), today())
        .map_err(|e| ApiError::Invalid(e.to_string()))?;
    desk.policy.check(&query).map_err(|e| ApiError::Unprocessable {
        why: e.to_string(),
        issue: "business-rule",
        reason: "policy",
    })?;
    let canonical = query.canonical();
    let stored = canonical.clone();
    let commitment = desk.ledger(move |l| l.publish(&stored)).await?;
    tracing::info!(target: "medrec::gatekeeper", %commitment, "bounty query published");
    Ok(Json(PublishedQuery { commitment, query: canonical }))
}
