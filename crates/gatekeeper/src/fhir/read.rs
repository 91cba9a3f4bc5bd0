//! Reads: `GET /fhir/{type}/{id}`, `GET /fhir/{type}/{id}/_history/{version}` and
//! `GET /fhir/{type}?…`, each within the requester's scope.

use super::{
    ApiResult, Link, SearchEntry, SearchMode, Searchset, base_url, fhir_json, include,
    note_provider_read, note_scope,
    params::{self, Params},
    patients_of, raw_response, resource_id, resource_ref, resource_response, resource_type,
};
use crate::{
    access::{Candidate, Reach, Scope},
    audit::Audit,
    error::ApiError,
    pipeline::Caller,
    server::Gatekeeper,
};
use axum::{
    Extension,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use medrec_store::{
    Page, RecordReader, Stored,
    fhir::{Resource, ResourceId, ResourceType},
    search::{MAX_COUNT, SearchQuery, SortField},
};
use serde_json::Value;
use std::{cmp::Ordering, collections::HashMap};

/// Most resources a search over several scopes gathers before it is refused as too
/// broad (a viewer's union of pointers is normally far smaller).
pub(super) const UNION_LIMIT: usize = 10_000;

/// `GET /fhir/{type}/{id}`
pub(crate) async fn read(
    State(g): State<Gatekeeper>,
    Path((ty, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    Extension(caller): Extension<Caller>,
    Extension(audit): Extension<Audit>,
) -> ApiResult {
    audit.resource(resource_ref(&ty, Some(&id)));
    let (ty, id) = (resource_type(&ty)?, resource_id(&id)?);
    let (summary, elements) =
        params::read(&params::pairs(raw.as_deref()), params::strict(&headers))?;
    let answer = read_within_scope(&g, ty, &id, &caller, &audit).await?;
    if summary == params::Summary::Full && elements.is_none() {
        return Ok(answer);
    }
    // Subset the one resource read, keeping the status and headers (`ETag`).
    let (parts, body) = answer.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX)
        .await
        .map_err(|_| ApiError::Internal("a stored resource could not be read back"))?;
    let json: Value = serde_json::from_slice(&bytes)
        .map_err(|_| ApiError::Internal("a stored resource is not JSON"))?;
    let subset = params::subset(json, summary, elements.as_deref());
    let body = serde_json::to_vec(&subset).expect("JSON serialises");
    Ok(Response::from_parts(parts, body.into()))
}

/// The current version of `ty/id` if `caller` may see it (404 otherwise).
async fn read_within_scope(
    g: &Gatekeeper,
    ty: ResourceType,
    id: &ResourceId,
    caller: &Caller,
    audit: &Audit,
) -> ApiResult {
    let (g, audit) = (g.clone(), audit.clone());
    let scope = g.scope_of(caller)?;
    let compartments = match scope.reach() {
        Reach::Provider if !scope.reads(ty, None) => return Err(not_found()),
        Reach::Provider => None,
        Reach::Limited(c) if c.iter().all(|c| matches!(c, Candidate::Compartment { .. })) => {
            Some(scope.candidates(Some(ty)))
        }
        Reach::Limited(_) => {
            // A viewer: the read runs as a search within each granted pointer.
            let mut user = SearchQuery::all(ty);
            user.ids = vec![id.clone()];
            user.count = 1;
            let found = scoped_search(g.reader(), &scope, &user).await?.entries.into_iter().next();
            let patient = found.as_ref().and_then(|s| patients_of([&s.json]).pop());
            note_scope(&audit, &scope, Some(ty), patient.as_deref());
            let stored = found.ok_or_else(not_found)?;
            return Ok(resource_response(StatusCode::OK, &stored, None));
        }
    };
    // The provider, or a patient reading their own compartments: one primary-key read
    // of the row as stored, kept for a patient only if its compartment is one of theirs
    // (the very condition a scoped search puts on the same indexed column), served as
    // is.
    let raw = g.reader().read_raw(ty, id).await?;
    match compartments {
        None => {
            note_provider_read(&g, &audit, raw.as_ref().and_then(|r| r.patient.clone()));
            Ok(raw_response(raw.ok_or_else(not_found)?))
        }
        Some(c) => {
            let mine = raw.filter(|r| {
                r.patient.as_deref().is_some_and(|p| c.iter().any(|c| c.patient().as_str() == p))
            });
            let patient = mine.as_ref().and_then(|r| r.patient.as_deref());
            note_scope(&audit, &scope, Some(ty), if c.len() > 1 { patient } else { None });
            mine.map(raw_response).ok_or_else(not_found)
        }
    }
}

/// `GET /fhir/{type}/{id}/_history/{version}` (the provider's).
pub(crate) async fn vread(
    State(g): State<Gatekeeper>,
    Path((ty, id, version)): Path<(String, String, String)>,
    Extension(caller): Extension<Caller>,
    Extension(audit): Extension<Audit>,
) -> ApiResult {
    audit.resource(resource_ref(&ty, Some(&id)));
    let (ty, id) = (resource_type(&ty)?, resource_id(&id)?);
    let version: u64 = version
        .parse()
        .map_err(|_| ApiError::Invalid("the version must be a whole number".into()))?;
    g.provider_only(caller.address)?;
    let stored = g.reader().read_version(ty, &id, version).await?.ok_or_else(not_found)?;
    note_provider_read(&g, &audit, patients_of([&stored.json]));
    Ok(resource_response(StatusCode::OK, &stored, None))
}

/// `GET /fhir/{type}?…`: a `searchset` Bundle, with the resources `_include` and
/// `_revinclude` reach inside the same scope.
pub(crate) async fn search(
    State(g): State<Gatekeeper>,
    Path(ty): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    Extension(caller): Extension<Caller>,
    Extension(audit): Extension<Audit>,
) -> ApiResult {
    audit.resource(resource_ref(&ty, None));
    let ty = resource_type(&ty)?;
    let pairs = params::pairs(raw.as_deref());
    let p = params::search(ty, &pairs, params::strict(&headers))?;
    let scope = g.scope_of(&caller)?;
    let page = scoped_search(g.reader(), &scope, &p.query).await?;
    let included = include::included(g.reader(), &scope, &page.entries, &p).await?;
    match scope.reach() {
        Reach::Provider => {
            let read = page.entries.iter().chain(&included.resources).map(|s| &s.json);
            note_provider_read(&g, &audit, patients_of(read));
        }
        Reach::Limited(_) => {
            note_scope(&audit, &scope, Some(ty), None);
            for t in &included.types {
                note_scope(&audit, &scope, Some(*t), None);
            }
        }
    }
    let base = base_url(&headers);
    Ok(fhir_json(StatusCode::OK, searchset(&base, ty, &p, page, included.resources).to_vec()))
}

pub(super) fn not_found() -> ApiError {
    ApiError::NotFound {
        why: "no resource with that type and id is visible to you".into(),
        reason: "not-found",
    }
}

/// The Bundle of one page, with links to the pages around it, then the included
/// resources; each subset as asked.
fn searchset(
    base: &str,
    ty: ResourceType,
    p: &Params,
    page: Page,
    included: Vec<Stored>,
) -> Searchset {
    let q = &p.query;
    let link = |relation: &'static str, offset: u64| {
        let mut url = form_urlencoded::Serializer::new(String::new());
        for (n, v) in &p.applied {
            url.append_pair(n, v);
        }
        url.append_pair("_count", &q.count.to_string());
        url.append_pair("_offset", &offset.to_string());
        Link { relation, url: format!("{base}/{ty}?{}", url.finish()) }
    };
    let (offset, count) = (u64::from(q.offset), u64::from(q.count));
    let mut links = vec![link("self", offset)];
    if count > 0 && offset + count < page.total {
        links.push(link("next", offset + count));
    }
    if offset > 0 {
        links.push(link("previous", offset.saturating_sub(count.max(1))));
    }
    let entry = |s: Stored, mode: &'static str| SearchEntry {
        full_url: Some(format!("{base}/{}/{}", s.resource_type, s.id)),
        resource: params::subset(s.json, p.summary, p.elements.as_deref()),
        search: SearchMode { mode },
    };
    let mut entries: Vec<SearchEntry> =
        page.entries.into_iter().map(|s| entry(s, "match")).collect();
    entries.extend(included.into_iter().map(|s| entry(s, "include")));
    Searchset {
        resource_type: "Bundle",
        kind: "searchset",
        total: p.total.then_some(page.total),
        link: links,
        entry: entries,
    }
}

/// Runs `user`'s search within `scope`: as is for the provider, otherwise as the union
/// of its intersections with each allowed search, paged as `user` asked.
pub(super) async fn scoped_search(
    store: &dyn RecordReader,
    scope: &Scope,
    user: &SearchQuery,
) -> Result<Page, ApiError> {
    let Some(searches) = scope.searches(user) else {
        return Ok(store.search(user).await?);
    };
    match searches.as_slice() {
        [] => Ok(Page { total: 0, entries: Vec::new() }),
        [only] => Ok(store.search(only).await?),
        many => {
            let mut all: HashMap<ResourceId, Stored> = HashMap::new();
            for q in many {
                let mut q = q.clone();
                q.count = MAX_COUNT;
                q.offset = 0;
                loop {
                    let page = store.search(&q).await?;
                    let got = page.entries.len();
                    for e in page.entries {
                        all.entry(e.id.clone()).or_insert(e);
                    }
                    if all.len() > UNION_LIMIT {
                        return Err(ApiError::TooCostly { limit: UNION_LIMIT });
                    }
                    q.offset = q.offset.saturating_add(u32::try_from(got).unwrap_or(u32::MAX));
                    if got == 0 || u64::from(q.offset) >= page.total {
                        break;
                    }
                }
            }
            let mut keyed: Vec<(Option<i64>, Stored)> =
                all.into_values().map(|s| (date_start(&s.json), s)).collect();
            keyed.sort_by(|a, b| compare(user, a, b));
            let total = keyed.len() as u64;
            let entries = keyed
                .into_iter()
                .skip(user.offset as usize)
                .take(user.count as usize)
                .map(|(_, s)| s)
                .collect();
            Ok(Page { total, entries })
        }
    }
}

fn date_start(json: &Value) -> Option<i64> {
    Resource::parse(json.clone()).ok()?.index.date.map(|(start, _)| start)
}

/// The order the stores use: the query's keys (resources without a date after those
/// with one, either way), then id ascending.
fn compare(q: &SearchQuery, a: &(Option<i64>, Stored), b: &(Option<i64>, Stored)) -> Ordering {
    for key in &q.sort {
        let ord = match key.field {
            SortField::Id => a.1.id.as_str().cmp(b.1.id.as_str()),
            SortField::LastUpdated => a.1.last_updated.cmp(&b.1.last_updated),
            SortField::Date => match (a.0, b.0) {
                (Some(x), Some(y)) => x.cmp(&y),
                (Some(_), None) => reverse_if(Ordering::Less, key.descending),
                (None, Some(_)) => reverse_if(Ordering::Greater, key.descending),
                (None, None) => Ordering::Equal,
            },
        };
        let ord = if key.descending { ord.reverse() } else { ord };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    a.1.id.as_str().cmp(b.1.id.as_str())
}

/// `reverse` applied only when `descending`, so that the final reversal of a
/// descending key leaves missing dates last.
const fn reverse_if(o: Ordering, descending: bool) -> Ordering {
    if descending { o.reverse() } else { o }
}
