//! `POST /research/redeem/{relationship id}/{sequence}`: the owner of a bounty redeems
//! it as a private aggregate.
//!
//! Checked in order of cost, so that nothing expensive happens for a requester who is
//! not the bounty's owner: the bounty `BountyPosted(relationship, owner, sequence,
//! commitment)` is looked up in the consent index (memory; the index must have reached
//! the chain's head, else 503: try again); the requester must be its owner (the miner of
//! the block that included the update) and the relationship this provider's; then one
//! call asks the `Registrar` whether the owner is a research entity admitted by the
//! certified institutions; then the published text must match the commitment. Only
//! then are records read. (A bounty the index does not hold yet is looked for in the
//! chain's recent blocks only, to tell "try again" from "no such bounty".)
//!
//! The aggregate runs over the records of the patients whose relationships with this
//! provider are opted in to research now (default out; a patient with several such
//! relationships counts once) and have room left in their per-patient ε budget for
//! this release (a patient any of whose relationships would pass the policy's
//! `budget_per_patient` is left out before any record is read; how many were left out
//! is not released), with noisy suppression below about k and differential privacy
//! ([`medrec_research`]); the researcher's ε budget is enforced, the release's ε is
//! charged to every contributing relationship, and the noisy answer stored, so that
//! asking again returns the same answer and spends nothing. Every
//! redemption, served or refused, is in the access log; a release is logged once for
//! each contributing relationship, with its ε, so those patients see it (a replay is
//! logged once, without ε). The answer is a [`Redemption`].

use super::{ResearchDesk, desk, today};
use crate::{
    audit::{Audit, Touch},
    error::ApiError,
    pipeline::Caller,
    server::Gatekeeper,
};
use alloy::{
    primitives::{Address, B256, U256},
    providers::Provider,
    rpc::types::Filter,
    sol_types::SolEvent,
};
use axum::{
    Extension, Json,
    extract::{Path, State},
};
use medrec_contracts::{Registrar, Relationships};
use medrec_primitives::{RelationshipId, Status};
use medrec_research::{
    aggregate::{PatientData, Release, release},
    ledger::{LedgerError, StoredRelease},
    query::{BountyQuery, commitment_of_text},
};
use medrec_store::{
    RecordReader,
    audit::Decision,
    fhir::{ResourceId, ResourceType},
    search::SearchQuery,
};
use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The answer to a redemption.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Redemption {
    /// `<relationship id>:<sequence>`.
    pub bounty: String,
    /// The block the bounty was posted in.
    pub block: Option<u64>,
    /// Its owner (the requester).
    pub owner: Address,
    /// The commitment of its query text.
    pub commitment: B256,
    /// Cells with fewer patients are suppressed.
    pub k: usize,
    /// The aggregate.
    pub release: Release,
    /// What this release spent.
    pub epsilon: f64,
    /// The researcher's total ε spent at this provider.
    pub spent: f64,
    /// The researcher's budget at this provider.
    pub budget: f64,
    /// Each patient's budget at this provider (across all researchers): patients
    /// whose cumulative ε would have passed it were left out of the cohort.
    pub patient_budget: f64,
    /// True when this is the stored answer of an earlier redemption (nothing spent).
    pub replayed: bool,
}

/// The handler: see the [module documentation](self).
pub(crate) async fn redeem(
    State(g): State<Gatekeeper>,
    Path((relationship, seq)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    Extension(audit): Extension<Audit>,
) -> Result<Json<Redemption>, ApiError> {
    let desk = desk(&g)?;
    let requester = caller.address;
    let result = redeem_bounty(&g, desk, &relationship, &seq, requester).await;
    match &result {
        Ok((redemption, contributors)) => {
            for id in contributors {
                audit.touch(Touch {
                    epsilon: Some(redemption.epsilon),
                    ..Touch::relationship(id.0, Decision::AllowResearcher)
                });
            }
            audit.decided(Decision::AllowResearcher);
        }
        Err(e) => {
            tracing::info!(target: "medrec::gatekeeper", %requester, reason = e.reason(), "bounty redemption refused");
        }
    }
    result.map(|(redemption, _)| Json(redemption))
}

fn failed() -> ApiError {
    ApiError::Internal("the redemption failed; nothing was released")
}

/// Checks a redemption against the chain and the policy, then releases (or returns the
/// stored release): the answer and the relationships whose records went into it.
async fn redeem_bounty(
    g: &Gatekeeper,
    desk: &ResearchDesk,
    relationship: &str,
    seq: &str,
    requester: Address,
) -> Result<(Redemption, Vec<RelationshipId>), ApiError> {
    let (Ok(rel), Ok(seq)) = (relationship.parse::<B256>(), seq.parse::<u32>()) else {
        return Err(ApiError::Invalid(
            "the path must be /research/redeem/<relationship id: 0x + 64 hex digits>/<bounty sequence number>".into(),
        ));
    };
    let rel = RelationshipId(rel);
    let bounty_id = format!("{}:{seq}", rel.0);
    let unknown = |why: String| ApiError::NotFound { why: why.into(), reason: "unknown-bounty" };

    // 1. The bounty, as the consent index (fresh) knows it, and the relationship is
    //    this provider's: memory only.
    if !g.is_ready() {
        return Err(ApiError::Unavailable {
            why: "the gatekeeper has not caught up with the chain yet; try again shortly",
            reason: "not-ready",
        });
    }
    let bounty = g.with_index(|i| i.bounty(&rel, seq));
    let ours = g.with_enrolled(|e| e.by_relationship.contains_key(&rel));
    let Some(bounty) = bounty else {
        // Perhaps in a block the index has not applied yet (or in the newest block of a
        // chain that just reorganised): one question about the recent blocks only tells.
        return Err(if desk.recently_posted(g, rel, seq).await? {
            ApiError::Unavailable {
                why: "the gatekeeper has not caught up with the chain yet; try again shortly",
                reason: "not-ready",
            }
        } else {
            unknown(format!("there is no bounty {bounty_id} on chain"))
        });
    };
    if !ours {
        return Err(unknown(format!(
            "bounty {bounty_id} was not posted by this provider: redeem it at the gatekeeper of the provider that posted it"
        )));
    }
    // 2. The requester owns it.
    if bounty.owner != requester {
        return Err(ApiError::Forbidden {
            why: format!(
                "bounty {bounty_id} belongs to {}, the miner of block {}: only its owner may redeem it",
                bounty.owner, bounty.block
            )
            .into(),
            reason: "not-owner",
        });
    }
    // 3. The owner is an admitted research entity (one call to the chain).
    let admitted = Registrar::new(desk.registrar, &desk.chain)
        .isResearcher(bounty.owner)
        .call()
        .await
        .map_err(|e| {
            tracing::warn!(target: "medrec::gatekeeper", err = %e, "the chain node failed during a redemption");
            ApiError::Unavailable {
                why: "the chain node cannot be read now; try again shortly",
                reason: "unavailable",
            }
        })?;
    if !admitted {
        return Err(ApiError::Forbidden {
            why: format!(
                "{} is not a research entity admitted by the certified institutions: only admitted researchers earn bounties",
                bounty.owner
            )
            .into(),
            reason: "not-admitted",
        });
    }
    // 4. The published text matches the commitment on chain.
    let commitment = bounty.commitment;
    let Some(text) = desk.ledger(move |l| l.text(commitment)).await? else {
        return Err(ApiError::NotFound {
            why: format!(
                "the provider has not published the text of bounty {bounty_id} (commitment {commitment})"
            )
            .into(),
            reason: "unknown-query",
        });
    };
    let conflict = |why: String, reason| ApiError::Conflict { why, issue: "conflict", reason };
    if commitment_of_text(&text) != commitment {
        tracing::error!(target: "medrec::gatekeeper", %commitment, "the stored text of a bounty query does not match its commitment");
        return Err(conflict(
            format!(
                "the provider's text for bounty {bounty_id} does not match the commitment on chain: nothing is released"
            ),
            "commitment-mismatch",
        ));
    }
    let query: BountyQuery = text.parse().map_err(|e: medrec_research::query::QueryError| {
        conflict(format!("the bounty's query is not valid: {e}"), "invalid-query")
    })?;
    desk.policy.check(&query).map_err(|e| ApiError::Forbidden {
        why: format!("the provider's policy no longer offers this bounty: {e}").into(),
        reason: "policy",
    })?;
    let answer = |stored: &StoredRelease, spent: f64, replayed: bool| Redemption {
        bounty: bounty_id.clone(),
        block: Some(bounty.block),
        owner: bounty.owner,
        commitment,
        k: desk.policy.k,
        release: stored.release().clone(),
        epsilon: stored.epsilon(),
        spent,
        budget: desk.policy.budget_per_researcher,
        patient_budget: desk.policy.patient_budget(),
        replayed,
    };
    // 5. Asked before: the same answer, nothing spent.
    let id = bounty_id.clone();
    if let Some(stored) = desk.ledger(move |l| l.answer(&id)).await? {
        let spent = desk.ledger(move |l| l.spent(requester)).await?;
        return Ok((answer(&stored, spent, true), Vec::new()));
    }
    // 6. The cohort: opted-in relationships of this provider, their records now; a
    //    patient with several opted-in relationships counts once, and is left out when
    //    any of them has no room for this release's ε.
    let cohort_ids = research_cohort(g);
    let needed = query.epsilon_cost(&desk.policy);
    let patient_budget = desk.policy.patient_budget();
    let keys: Vec<B256> = cohort_ids.iter().map(|(_, p)| budget_key(p)).collect();
    let room = desk.ledger(move |l| l.patients_within(&keys, needed, patient_budget)).await?;
    let cohort_ids = within_budget(cohort_ids, &room);
    let mut patients: Vec<&ResourceId> = cohort_ids.iter().map(|(_, p)| p).collect();
    patients.sort();
    patients.dedup();
    let mut cohort = Vec::with_capacity(patients.len());
    for patient in patients {
        cohort.push(patient_data(g.reader(), patient).await.map_err(|e| {
            tracing::error!(target: "medrec::gatekeeper", err = %e, "reading records for a bounty failed");
            ApiError::Unavailable { why: "the records cannot be read now; try again shortly", reason: "unavailable" }
        })?);
    }
    let mut rng = ChaCha20Rng::try_from_os_rng().map_err(|e| {
        tracing::error!(target: "medrec::gatekeeper", err = %e, "the operating system's random generator failed");
        failed()
    })?;
    let released = release(&query, &desk.policy, &cohort, today(), &mut rng).map_err(|e| {
        ApiError::Unprocessable {
            why: format!("the aggregate cannot be computed: {e}"),
            issue: "processing",
            reason: "aggregate",
        }
    })?;
    let budget = desk.policy.budget_per_researcher;
    let id = bounty_id.clone();
    // Each patient once, whatever the number of their relationships here.
    let charged: Vec<B256> = cohort_ids
        .iter()
        .map(|(_, p)| budget_key(p))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let (stored, fresh) = desk
        .ledger(move |l| {
            let stored =
                l.record_release(&id, requester, &released, budget, &charged, patient_budget)?;
            // A concurrent redemption of the same bounty may have stored its answer
            // first: then that one is returned and this computation released nothing.
            let fresh = *stored.release() == released;
            Ok::<_, LedgerError>((stored, fresh))
        })
        .await?;
    let contributors =
        if fresh { cohort_ids.into_iter().map(|(id, _)| id).collect() } else { Vec::new() };
    Ok((answer(&stored, stored.spent(), !fresh), contributors))
}

/// Blocks behind the index's height that a missing bounty is looked for on chain.
const RECENT_BLOCKS: u64 = 64;

impl ResearchDesk {
    /// Whether bounty `seq` of `rel` is on chain in the blocks the index may not have
    /// applied yet (the last [`RECENT_BLOCKS`] before its height, and after it): a
    /// bounded question, asked only for an authenticated requester the chain knows.
    async fn recently_posted(
        &self,
        g: &Gatekeeper,
        rel: RelationshipId,
        seq: u32,
    ) -> Result<bool, ApiError> {
        let from = g.health().indexed.saturating_sub(RECENT_BLOCKS);
        let filter = Filter::new()
            .address(self.relationships)
            .event_signature(Relationships::BountyPosted::SIGNATURE_HASH)
            .topic1(rel.0)
            .from_block(from);
        let logs = self.chain.get_logs(&filter).await.map_err(|e| {
            tracing::warn!(target: "medrec::gatekeeper", err = %e, "the chain node failed during a redemption");
            ApiError::Unavailable {
                why: "the chain node cannot be read now; try again shortly",
                reason: "unavailable",
            }
        })?;
        Ok(logs.iter().any(|l| {
            Relationships::BountyPosted::decode_log(&l.inner)
                .is_ok_and(|e| e.seq == U256::from(seq))
        }))
    }
}

/// The key of a patient's ε budget in the ledger: a hash of their record id at this
/// provider, so that the budget is the patient's across all their relationships here
/// (a new relationship does not start it afresh), and the ledger holds no record id.
fn budget_key(patient: &ResourceId) -> B256 {
    alloy::primitives::keccak256(format!("medrec/research-patient/v1\n{}", patient.as_str()))
}

/// The opted-in relationships of this provider that the patient has not closed, with
/// their patients' FHIR ids.
fn research_cohort(g: &Gatekeeper) -> Vec<(RelationshipId, ResourceId)> {
    g.enrollments_where(|r| {
        r.research_opt_in && !matches!(r.status, Status::Rejected | Status::Deleted)
    })
}

/// The cohort without the patients who have no room left: `room[i]` says whether
/// relationship `i` of `cohort` has room for the release's ε; a patient is left out
/// (all their relationships) when any of their relationships has none.
fn within_budget(
    cohort: Vec<(RelationshipId, ResourceId)>,
    room: &[bool],
) -> Vec<(RelationshipId, ResourceId)> {
    let out_of_room: std::collections::BTreeSet<ResourceId> = cohort
        .iter()
        .enumerate()
        .filter(|(i, _)| !room.get(*i).copied().unwrap_or(false))
        .map(|(_, (_, patient))| patient.clone())
        .collect();
    cohort.into_iter().filter(|(_, patient)| !out_of_room.contains(patient)).collect()
}

/// A patient's FHIR Patient resource and Observations.
async fn patient_data(
    store: &dyn RecordReader,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_patient_without_room_on_any_relationship_is_left_out() {
        let rel = |i: u8| RelationshipId(B256::repeat_byte(i));
        let patient = |id: &str| id.parse::<ResourceId>().expect("an id");
        // Patient a has two relationships, one of them out of room; b has room; c has
        // none; d's answer is missing (no room).
        let cohort = vec![
            (rel(1), patient("a")),
            (rel(2), patient("b")),
            (rel(3), patient("a")),
            (rel(4), patient("c")),
            (rel(5), patient("d")),
        ];
        let kept = within_budget(cohort, &[true, true, false, false]);
        assert_eq!(kept, vec![(rel(2), patient("b"))]);
        let everyone = within_budget(vec![(rel(1), patient("a"))], &[true]);
        assert_eq!(everyone.len(), 1);
    }
}
