//! Reads: `GET /fhir/{type}/{id}`, `GET /fhir/{type}/{id}/_history/{version}`,
//! `GET /fhir/{type}/{id}/_history` and `GET /fhir/{type}?…`, each within the
//! requester's scope.

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
    Page, RawStored, RecordReader, Stored,
    fhir::{Resource, ResourceId, ResourceType},
    format_instant,
    search::{MAX_COUNT, SearchQuery, SortField},
};
use serde::Serialize;
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
    let (current, _) = current_within_scope(&g, ty, &id, &caller, &audit).await?;
    let answer = raw_response(current);
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

/// The current version of `ty/id` if `caller` may see it (404 otherwise), and whether
/// the caller's scope is limited (anyone but the provider): the consent decision comes
/// before any row is read, and the relationships reached are noted.
async fn current_within_scope(
    g: &Gatekeeper,
    ty: ResourceType,
    id: &ResourceId,
    caller: &Caller,
    audit: &Audit,
) -> Result<(RawStored, bool), ApiError> {
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
            let current = RawStored {
                resource_type: stored.resource_type,
                id: stored.id,
                version: stored.version,
                last_updated: stored.last_updated,
                patient,
                json: stored.json.to_string(),
            };
            return Ok((current, true));
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
            Ok((raw.ok_or_else(not_found)?, false))
        }
        Some(c) => {
            let mine = raw.filter(|r| {
                r.patient.as_deref().is_some_and(|p| c.iter().any(|c| c.patient().as_str() == p))
            });
            let patient = mine.as_ref().and_then(|r| r.patient.as_deref());
            note_scope(&audit, &scope, Some(ty), if c.len() > 1 { patient } else { None });
            Ok((mine.ok_or_else(not_found)?, true))
        }
    }
}

/// An earlier version is served to a requester who may read the resource now, and to
/// one whose scope is limited only while it sits in the same patient's compartment as
/// the current version (a resource moved between compartments shows no one the other
/// patient's version).
fn same_compartment(current: &RawStored, version: &Stored) -> bool {
    patients_of([&version.json]).pop() == current.patient
}

/// `GET /fhir/{type}/{id}/_history/{version}`: one version, scoped like a read: served
/// only if the requester may read the resource now (404 otherwise, as for an id that
/// does not exist).
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
    let (current, limited) = current_within_scope(&g, ty, &id, &caller, &audit).await?;
    if version == current.version {
        return Ok(raw_response(current));
    }
    if version > current.version {
        return Err(not_found());
    }
    let stored = g
        .reader()
        .read_version(ty, &id, version)
        .await?
        .filter(|s| !limited || same_compartment(&current, s))
        .ok_or_else(not_found)?;
    Ok(resource_response(StatusCode::OK, &stored, None))
}

/// `GET /fhir/{type}/{id}/_history`: a `history` Bundle of the resource's versions,
/// newest first, scoped like a read (404 when the requester may not read the resource
/// now). `_count` (at most [`MAX_COUNT`]) and `_offset` page it.
pub(crate) async fn history(
    State(g): State<Gatekeeper>,
    Path((ty, id)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    Extension(caller): Extension<Caller>,
    Extension(audit): Extension<Audit>,
) -> ApiResult {
    audit.resource(resource_ref(&ty, Some(&id)));
    let (ty, id) = (resource_type(&ty)?, resource_id(&id)?);
    let (count, offset) =
        params::history(&params::pairs(raw.as_deref()), params::strict(&headers))?;
    let (current, limited) = current_within_scope(&g, ty, &id, &caller, &audit).await?;
    let total = current.version;
    let newest = total.saturating_sub(offset);
    let oldest = newest.saturating_sub(count).saturating_add(1).max(1);
    let versions = if count == 0 || newest == 0 {
        Vec::new()
    } else {
        g.reader().read_versions(ty, &id, oldest..=newest).await?
    };
    let base = base_url(&headers);
    let link = |relation: &'static str, offset: u64| Link {
        relation,
        url: format!("{base}/{ty}/{id}/_history?_count={count}&_offset={offset}"),
    };
    let mut links = vec![link("self", offset)];
    if count > 0 && offset + count < total {
        links.push(link("next", offset + count));
    }
    if offset > 0 {
        links.push(link("previous", offset.saturating_sub(count.max(1))));
    }
    let entry = versions
        .into_iter()
        .filter(|s| !limited || same_compartment(&current, s))
        .map(|s| HistoryEntry {
            full_url: format!("{base}/{}/{}", s.resource_type, s.id),
            request: HistoryRequest { method: "PUT", url: format!("{}/{}", s.resource_type, s.id) },
            response: HistoryResponse {
                status: if s.version == 1 { "201 Created" } else { "200 OK" },
                etag: format!("W/\"{}\"", s.version),
                last_modified: format_instant(s.last_updated),
            },
            resource: s.json,
        })
        .collect();
    let bundle = History { resource_type: "Bundle", kind: "history", total, link: links, entry };
    Ok(fhir_json(StatusCode::OK, serde_json::to_vec(&bundle).expect("a Bundle serialises")))
}

/// A `history` Bundle (typed wire form): each entry with the request that made the
/// version and the response it got, as FHIR R4 asks of history entries.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct History {
    resource_type: &'static str,
    #[serde(rename = "type")]
    kind: &'static str,
    total: u64,
    link: Vec<Link>,
    entry: Vec<HistoryEntry>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct HistoryEntry {
    full_url: String,
    resource: Value,
    request: HistoryRequest,
    response: HistoryResponse,
}

#[derive(Debug, Serialize)]
struct HistoryRequest {
    method: &'static str,
    url: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct HistoryResponse {
    status: &'static str,
    etag: String,
    last_modified: String,
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
