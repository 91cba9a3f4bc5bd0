//! `GET /audit?after=<seq>&limit=<n>`: the access log entries about the requester's
//! relationships as a patient at this provider (every entry, for the provider itself:
//! its own log), each with its proof of anchoring
//! (`null` until the next anchor covers it): an inclusion path of at most
//! `⌈log2 size⌉` hashes, so a page stays small however much traffic came between
//! anchors; and the log's head ([`AuditPage`]).

use crate::{
    audit::{
        Audit, Touch,
        wire::{AuditPage, EntryWire, HeadWire, InclusionWire, ProvenEntry},
    },
    error::ApiError,
    pipeline::Caller,
    server::Gatekeeper,
};
use alloy::primitives::B256;
use axum::{
    Extension, Json,
    extract::{RawQuery, State},
};
use medrec_store::audit::{Decision, prove_entries};

/// Most entries one page returns.
const PAGE_LIMIT: u32 = 500;

/// The handler.
pub(crate) async fn get(
    State(g): State<Gatekeeper>,
    RawQuery(raw): RawQuery,
    Extension(caller): Extension<Caller>,
    Extension(audit): Extension<Audit>,
) -> Result<Json<AuditPage>, ApiError> {
    let Some(trail) = g.trail() else {
        return Err(ApiError::NotSupported("this gatekeeper keeps no access log"));
    };
    let (mut after, mut limit) = (0u64, 100u32);
    for (name, value) in form_urlencoded::parse(raw.as_deref().unwrap_or("").as_bytes()) {
        let parsed = match &*name {
            "after" => value.parse().map(|v| after = v).is_ok(),
            "limit" => value.parse().map(|v: u32| limit = v.clamp(1, PAGE_LIMIT)).is_ok(),
            _ => false,
        };
        if !parsed {
            return Err(ApiError::Invalid(
                "the access log takes only after=<entry number> and limit=<1-500>".into(),
            ));
        }
    }
    g.ready()?;
    let provider = g.is_provider(caller.address);
    let relationships: Vec<B256> = if provider {
        Vec::new()
    } else {
        g.patient_relationships(caller.address).into_iter().map(|id| id.0).collect()
    };
    let log = trail.log();
    let failed = |err: medrec_store::StoreError| {
        tracing::error!(target: "medrec::gatekeeper", %err, "reading the access log failed");
        ApiError::Unavailable {
            why: "the access log could not be read; the error is logged, try again shortly",
            reason: "unavailable",
        }
    };
    let entries = if provider {
        log.entries(after, limit).await.map_err(failed)?
    } else if relationships.is_empty() {
        Vec::new()
    } else {
        log.entries_about(&relationships, after, limit).await.map_err(failed)?
    };
    let wires: Vec<EntryWire> = entries.iter().map(EntryWire::from).collect();
    let proofs = prove_entries(log, entries).await.map_err(failed)?;
    let out = wires
        .into_iter()
        .zip(proofs)
        .map(|(entry, proof)| ProvenEntry { entry, proof: proof.as_ref().map(InclusionWire::from) })
        .collect();
    let head = log.head().await.map_err(failed)?;
    // The provider reading its own log is itself an entry of the log (no relationship).
    if provider {
        audit.decided(Decision::AllowProvider);
    }
    for id in relationships {
        audit.touch(Touch::relationship(id, Decision::AllowPatient));
    }
    Ok(Json(AuditPage {
        entries: out,
        head: HeadWire { size: head.size, head: head.head, root: head.root },
    }))
}
