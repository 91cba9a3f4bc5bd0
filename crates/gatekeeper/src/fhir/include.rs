//! Resources beyond a search's matches, never beyond the requester's scope:
//! `_include` and `_revinclude` ([`included`]) and `GET /fhir/Patient/{id}/$everything`
//! ([`everything`]). Each runs as ordinary searches (by `_id`, or by patient) through
//! the same scoped search as every other read, so what consent does not allow is never
//! read, let alone included.

use super::{
    ApiResult, SearchEntry, SearchMode, Searchset, base_url, fhir_json, note_provider_read,
    note_scope, params,
    params::Params,
    patients_of,
    read::{UNION_LIMIT, scoped_search},
    resource_id, resource_ref,
};
use crate::{
    access::{Reach, Scope},
    audit::Audit,
    error::ApiError,
    pipeline::Caller,
    server::Gatekeeper,
};
use axum::{
    Extension,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
};
use medrec_store::{
    RecordReader, Stored,
    fhir::{Resource, ResourceId, ResourceType},
    search::{MAX_COUNT, SearchQuery},
};
use serde_json::Value;
use std::collections::BTreeSet;

/// What `_include` and `_revinclude` added: the resources and their types.
#[derive(Debug, Default)]
pub(crate) struct Included {
    /// The resources (none of them a match already).
    pub(crate) resources: Vec<Stored>,
    /// The types searched for them (for the access log).
    pub(crate) types: Vec<ResourceType>,
}

/// Every resource `q` matches within `scope`, all pages (refused past
/// [`UNION_LIMIT`]).
async fn all_within(
    store: &dyn RecordReader,
    scope: &Scope,
    mut q: SearchQuery,
) -> Result<Vec<Stored>, ApiError> {
    q.count = MAX_COUNT;
    q.offset = 0;
    let mut out = Vec::new();
    loop {
        let page = scoped_search(store, scope, &q).await?;
        let got = page.entries.len();
        out.extend(page.entries);
        if out.len() > UNION_LIMIT {
            return Err(ApiError::TooCostly { limit: UNION_LIMIT });
        }
        q.offset = q.offset.saturating_add(u32::try_from(got).unwrap_or(u32::MAX));
        if got == 0 || u64::from(q.offset) >= page.total {
            return Ok(out);
        }
    }
}

/// The id of the `Encounter/…` reference in `json`'s `encounter`.
fn encounter_of(json: &Value) -> Option<ResourceId> {
    json.get("encounter")?.get("reference")?.as_str()?.strip_prefix("Encounter/")?.parse().ok()
}

/// The resources `p`'s `_include` and `_revinclude` reach from `matches`, each found
/// by a search within `scope`.
pub(crate) async fn included(
    store: &dyn RecordReader,
    scope: &Scope,
    matches: &[Stored],
    p: &Params,
) -> Result<Included, ApiError> {
    let mut out = Included::default();
    let mut seen: BTreeSet<(ResourceType, ResourceId)> =
        matches.iter().map(|s| (s.resource_type, s.id.clone())).collect();
    let mut keep = |found: Vec<Stored>, out: &mut Included| {
        for s in found {
            if seen.insert((s.resource_type, s.id.clone())) {
                out.resources.push(s);
            }
        }
    };
    for inc in &p.include {
        let ids: BTreeSet<ResourceId> = matches
            .iter()
            .filter_map(|s| match inc.target() {
                ResourceType::Encounter => encounter_of(&s.json),
                _ => Resource::parse(s.json.clone()).ok()?.index.patient?.parse().ok(),
            })
            .collect();
        if ids.is_empty() {
            continue;
        }
        let mut q = SearchQuery::all(inc.target());
        q.ids = ids.into_iter().collect();
        out.types.push(inc.target());
        let found = all_within(store, scope, q).await?;
        keep(found, &mut out);
    }
    for inc in &p.revinclude {
        out.types.push(inc.source);
        for patient in matches.iter().filter(|s| s.resource_type == ResourceType::Patient) {
            let mut q = SearchQuery::all(inc.source);
            q.patient = Some(patient.id.clone());
            let found = all_within(store, scope, q).await?;
            keep(found, &mut out);
        }
    }
    Ok(out)
}

/// `GET /fhir/Patient/{id}/$everything`: every resource of the patient's compartment
/// the requester may see, one `searchset` Bundle (`_type` narrows the types).
pub(crate) async fn everything(
    State(g): State<Gatekeeper>,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    Extension(caller): Extension<Caller>,
    Extension(audit): Extension<Audit>,
) -> ApiResult {
    audit.resource(resource_ref("Patient", Some(&id)));
    let id = resource_id(&id)?;
    let strict = params::strict(&headers);
    let mut types: Vec<ResourceType> = ResourceType::ALL.to_vec();
    for (name, value) in params::pairs(raw.as_deref()) {
        match name.as_str() {
            "_format" => {}
            "_type" => {
                let asked: Vec<ResourceType> =
                    value.split(',').map(|t| t.trim().parse()).collect::<Result<_, _>>().map_err(
                        |e: medrec_store::fhir::FhirError| ApiError::Invalid(e.to_string()),
                    )?;
                types.retain(|t| asked.contains(t));
            }
            other if strict => {
                let other: String = other.chars().take(64).collect();
                return Err(ApiError::Invalid(format!(
                    "parameter {other} is not supported by $everything (Prefer: handling=strict)"
                )));
            }
            _ => {}
        }
    }
    let scope = g.scope_of(&caller)?;
    let mut found = Vec::new();
    for ty in types {
        let mut q = SearchQuery::all(ty);
        q.patient = Some(id.clone());
        found.extend(all_within(g.reader(), &scope, q).await?);
        if found.len() > UNION_LIMIT {
            return Err(ApiError::TooCostly { limit: UNION_LIMIT });
        }
    }
    match scope.reach() {
        Reach::Provider => {
            note_provider_read(&g, &audit, patients_of(found.iter().map(|s| &s.json)))
        }
        Reach::Limited(_) => note_scope(&audit, &scope, None, Some(id.as_str())),
    }
    let base = base_url(&headers);
    let bundle = Searchset {
        resource_type: "Bundle",
        kind: "searchset",
        total: Some(found.len() as u64),
        link: vec![super::Link {
            relation: "self",
            url: format!("{base}/Patient/{id}/$everything"),
        }],
        entry: found
            .into_iter()
            .map(|s| SearchEntry {
                full_url: Some(format!("{base}/{}/{}", s.resource_type, s.id)),
                resource: s.json,
                search: SearchMode { mode: "match" },
            })
            .collect(),
    };
    Ok(fhir_json(StatusCode::OK, bundle.to_vec()))
}
