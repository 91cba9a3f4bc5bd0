//! `PUT /enrollments/{relationship}` with an [`EnrollmentBody`]: the provider tells its
//! gatekeeper what a relationship serves. Only the provider may; the relationship must
//! be on chain as this provider's, and every pointer already published must carry the
//! commitment of its query text.

use crate::{
    audit::{Audit, Touch},
    enrollment::{Enrollment, EnrollmentBody},
    error::ApiError,
    pipeline::Caller,
    server::Gatekeeper,
};
use alloy::primitives::B256;
use axum::{
    Extension,
    extract::{Path, State},
    http::StatusCode,
};
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
    g.with_index(|index| {
        let Some(rel) = index.relationship(&id) else {
            return Err(conflict(
                "the chain does not show this relationship yet: enroll after its block is indexed"
                    .into(),
            ));
        };
        if !g.is_provider(rel.provider) {
            return Err(conflict("this relationship was created by another provider".into()));
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
