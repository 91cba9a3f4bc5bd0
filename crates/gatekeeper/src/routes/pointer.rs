//! `GET /pointers/{relationship}/{pointer}`: runs one data pointer's query for the
//! relationship's patient and answers a `searchset` Bundle with the data hash the chain
//! holds in the `X-MedRec-Data-Hash` header.
//!
//! Decided by the consent index before any row is read; a refusal is one and the same
//! 403 whether the relationship or pointer exists or not, so nothing can be learned by
//! probing. Every decision is in the access log against the relationship.

use crate::{
    audit::{Audit, Touch},
    error::{ApiError, FHIR_JSON},
    fhir::Searchset,
    pipeline::Caller,
    pointer::run,
    server::{DATA_HASH_HEADER, Gatekeeper},
};
use alloy::primitives::{B256, hex};
use axum::{
    Extension,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use medrec_chain::consent::Decision;
use medrec_primitives::RelationshipId;
use medrec_store::audit::Decision as LogDecision;

/// The handler.
pub(crate) async fn get(
    State(g): State<Gatekeeper>,
    Path((relationship, pointer)): Path<(String, String)>,
    Extension(caller): Extension<Caller>,
    Extension(audit): Extension<Audit>,
) -> Result<Response, ApiError> {
    let (Ok(id), Ok(n)) = (relationship.parse::<B256>(), pointer.parse::<u8>()) else {
        return Err(ApiError::Invalid(
            "the path must be /pointers/<relationship id: 0x + 64 hex digits>/<pointer number 0-127>".into(),
        ));
    };
    g.ready()?;
    let id = RelationshipId(id);
    let requester = caller.address;
    let now = g.auth().clock().now();
    let decision = g.with_index(|index| index.decide(requester, &id, n, now));
    let logged = match decision {
        Decision::AllowPatient => LogDecision::AllowPatient,
        Decision::AllowViewer => LogDecision::AllowViewer,
        Decision::Deny(reason) => crate::audit::deny(crate::error::deny_code(reason)),
    };
    audit.touch(Touch { pointer: Some(n), ..Touch::relationship(id.0, logged) });
    if let Decision::Deny(reason) = decision {
        tracing::info!(target: "medrec::gatekeeper", %requester, relationship = %id, pointer = n, ?reason, "denied");
        return Err(ApiError::Denied(reason));
    }
    let enrollment = g.enrollment(&id);
    let Some((patient, query)) =
        enrollment.and_then(|e| Some((e.patient, e.pointers.get(usize::from(n))?.clone())))
    else {
        tracing::error!(target: "medrec::gatekeeper", relationship = %id, pointer = n, "authorized, but this gatekeeper has no query for the pointer");
        return Err(ApiError::NotFound {
            why: "this gatekeeper does not serve that pointer".into(),
            reason: "not-enrolled",
        });
    };
    let data = run(g.reader(), &query, &patient).await.map_err(|err| {
        tracing::error!(target: "medrec::gatekeeper", relationship = %id, pointer = n, %err, "reading the pointer failed");
        ApiError::Unavailable {
            why: "the records could not be read; the error is logged, try again shortly",
            reason: "unavailable",
        }
    })?;
    tracing::debug!(target: "medrec::gatekeeper", %requester, relationship = %id, pointer = n, entries = data.resources.len(), "served");
    let body = Searchset::of_resources(data.resources).to_vec();
    let hash = HeaderValue::from_str(&hex::encode_prefixed(data.data_hash))
        .expect("hex is a valid header");
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, FHIR_JSON), (DATA_HASH_HEADER, hash)], body)
        .into_response())
}
