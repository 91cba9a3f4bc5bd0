//! `PUT /enrollments/{relationship}` with an [`EnrollmentBody`]: the provider tells its
//! gatekeeper what a relationship serves. Only the provider may. A relationship the
//! chain does not show yet comes with the provider's signed offer (the patient creates
//! it from `GET /offers`); one the chain shows must have the offer's delegate, and
//! every pointer already published must carry the commitment of its query text.
//!
//! `GET /offers`: the offers made to the requester's account (the requester is a key
//! acting for it with DECIDE) that the chain does not show as relationships yet.

use crate::offer::OfferView;
use crate::{
    audit::{Audit, Touch},
    enrollment::{Enrollment, EnrollmentBody},
    error::ApiError,
    pipeline::Caller,
    server::Gatekeeper,
};
use alloy::primitives::B256;
use axum::{
    Extension, Json,
    extract::{Path, State},
    http::StatusCode,
};
use medrec_contracts::Rights;
use medrec_primitives::RelationshipId;
use medrec_store::audit::Decision;

/// The handler.
pub(crate) async fn put(
    State(g): State<Gatekeeper>,
    Path(relationship): Path<String>,
    Extension(caller): Extension<Caller>,
    Extension(audit): Extension<Audit>,
) -> Result<StatusCode, ApiError> {
    if !g.is_provider(caller.address) {
        return Err(ApiError::forbidden("only the provider may enroll patients", "forbidden"));
    }
    let Ok(id) = relationship.parse::<B256>() else {
        return Err(ApiError::Invalid(
            "the path must be /enrollments/<relationship id: 0x + 64 hex digits>".into(),
        ));
    };
    let id = RelationshipId(id);
    audit.touch(Touch::relationship(id.0, Decision::AllowProvider));
    let body: EnrollmentBody = serde_json::from_slice(&caller.body).map_err(|e| {
        ApiError::Invalid(format!(
            "the body must be {{\"patient\": <FHIR Patient id>, \"pointers\": [{{\"query\": <FHIR search>, \"salt\": <0x + 64 hex digits>}}, …]}}: {e}"
        ))
    })?;
    let enrollment = Enrollment::try_from(&body).map_err(|e| ApiError::Invalid(e.to_string()))?;
    let conflict = |why: String| ApiError::Conflict { why, issue: "conflict", reason: "conflict" };
    if let Some(offer) = &enrollment.offer {
        if offer.relationship() != id {
            return Err(ApiError::Invalid(
                "the offer's account and delegate do not make this relationship id".into(),
            ));
        }
        if !g.is_provider(offer.provider) {
            return Err(ApiError::Invalid(format!(
                "the offer names {} as its provider, which this gatekeeper does not serve",
                offer.provider
            )));
        }
        if offer.account == offer.delegate {
            return Err(ApiError::Invalid("the delegate cannot be the patient's account".into()));
        }
    }
    g.with_index(|index| {
        let Some(rel) = index.relationship(&id) else {
            return if enrollment.offer.is_some() {
                Ok(())
            } else {
                Err(conflict(
                    "the chain does not show this relationship: enroll it with the provider's signed offer, which the patient takes"
                        .into(),
                ))
            };
        };
        if enrollment.offer.as_ref().is_some_and(|o| o.delegate != rel.delegate) {
            return Err(conflict("the relationship on chain has another delegate".into()));
        }
        for (i, q) in enrollment.pointers.iter().enumerate() {
            let published = u8::try_from(i).ok().and_then(|n| index.pointer(&id, n));
            if published.is_some_and(|p| p.query_commitment != q.commitment()) {
                return Err(conflict(format!(
                    "pointer {i}'s query text and salt do not match the commitment on chain"
                )));
            }
        }
        Ok(())
    })?;
    g.enroll(id, enrollment).map_err(|err| {
        tracing::error!(target: "medrec::gatekeeper", relationship = %id, %err, "saving an enrollment failed");
        ApiError::Unavailable {
            why: "the enrollment could not be saved; the error is logged, try again",
            reason: "unavailable",
        }
    })?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /offers`: the offers waiting for the requester's account, as a JSON array of
/// [`OfferView`].
pub(crate) async fn offers(
    State(g): State<Gatekeeper>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Vec<OfferView>>, ApiError> {
    let now = crate::auth::unix_now();
    let Some(account) = g.with_index(|i| i.acting_for(caller.address, Rights::DECIDE, now)) else {
        return Err(ApiError::forbidden(
            "this key may not take offers for its account (it lacks the decide right, was retired, or its powers ended)",
            "forbidden",
        ));
    };
    Ok(Json(g.offers_for(account)))
}
