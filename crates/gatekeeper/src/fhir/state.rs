//! MedRec's own state as FHIR: read-only views derived from the consent index and the
//! access log, each pointing back to what proves it on chain.
//!
//! | Type | From | Proof |
//! |---|---|---|
//! | `Consent` | a viewer's (or group's) grant on a relationship held here (`ConsentIndex::grant_records`): `active` while its window is open and it is not revoked, `inactive` otherwise | the `ViewerGranted` (and `ViewerRevoked`) event: block and transaction in the [`CHAIN_EVENT`] extension |
//! | `AuditEvent` | an access log entry (`medrec_store::audit`) | the entry's hash, and the anchor (size, Merkle root, block, transaction) that covers it, as `entity.detail` |
//! | `Provenance` | a pointer's latest publication (`PointerAdded` / `PointerUpdated`) | the data hash and the event, as the entity and the [`CHAIN_EVENT`] extension |
//!
//! A Provenance's `recorded` (and a Consent's `dateTime`) is the block's time when the
//! node reports it with the log, otherwise when this gatekeeper's follower applied the
//! event (so after a restart that replays the chain, the replay's time); the block and
//! transaction are the proof, the time only a guide.
//!
//! Who sees what is decided from the index before anything is read, as for every FHIR
//! route: the provider sees every view; a patient (any key acting for the account with
//! the SEE right) the views about their own relationships here; a viewer the grants that
//! reach it and the publications of the pointers it may read now, on relationships it may
//! read now, and no access log (the log is the patient's); anyone else is refused (403).
//! The provider is named (as the Provenance's agent) only to the provider and the
//! patient: the chain never names providers. SMART tokens carry no scope for these
//! types and are refused here. Reads of an id outside the requester's views answer 404,
//! as for an id that does not exist; writes answer 405.

use super::{ApiResult, Link, SearchEntry, SearchMode, Searchset, base_url, fhir_json, params};
use crate::{
    access::{Candidate, Reach},
    audit::{Audit, Touch},
    error::ApiError,
    pipeline::Caller,
    server::Gatekeeper,
};
use alloy::primitives::{Address, B256, keccak256};
use axum::{
    Extension, Router,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    routing::get,
};
use medrec_chain::consent::{ChainEvent, GrantRecord};
use medrec_primitives::{RelationshipId, Status};
use medrec_store::{
    audit::{Decision, LoggedEntry, Proof, prove_entries},
    fhir::ResourceId,
};
use serde_json::{Value, json};

/// The extension saying which chain event proves a view: `event` (its name), `block`,
/// and `transaction` when the follower knew it.
pub(crate) const CHAIN_EVENT: &str = "https://medrec.dev/fhir/StructureDefinition/chain-event";
/// The identifier system of Ethereum addresses (viewers, groups, requesters, the
/// provider).
pub(crate) const ADDRESS_SYSTEM: &str = "urn:medrec:ethereum-address";
/// The identifier system of relationships (their on-chain ids).
pub(crate) const RELATIONSHIP_SYSTEM: &str = "urn:medrec:relationship";
/// The identifier system of access log entries (their hashes in the hash chain).
pub(crate) const ENTRY_HASH_SYSTEM: &str = "urn:medrec:audit-entry-hash";
/// The identifier system of pointers' data hashes.
pub(crate) const DATA_HASH_SYSTEM: &str = "urn:medrec:data-hash";

/// The derived types, and what each serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Derived {
    Consent,
    AuditEvent,
    Provenance,
}

impl Derived {
    pub(crate) const ALL: [Self; 3] = [Self::Consent, Self::AuditEvent, Self::Provenance];

    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Consent => "Consent",
            Self::AuditEvent => "AuditEvent",
            Self::Provenance => "Provenance",
        }
    }

    /// The search parameters each accepts (besides `_count`, `_offset` and `_id`).
    pub(crate) const fn search_params(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Consent => &[("patient", "reference"), ("status", "token")],
            Self::AuditEvent => &[],
            Self::Provenance => &[("patient", "reference")],
        }
    }
}

/// The routes of the derived types (read and search; every write answers 405).
pub(crate) fn routes() -> Router<Gatekeeper> {
    let mut r = Router::new();
    for kind in Derived::ALL {
        let ty = kind.as_str();
        let search = move |g: State<Gatekeeper>,
                           q: RawQuery,
                           h: HeaderMap,
                           c: Extension<Caller>,
                           a: Extension<Audit>| search(kind, g, q, h, c, a);
        let read = move |g: State<Gatekeeper>,
                         p: Path<String>,
                         c: Extension<Caller>,
                         a: Extension<Audit>| read(kind, g, p, c, a);
        for slash in ["", "/"] {
            r = r
                .route(&format!("/fhir/{ty}{slash}"), get(search).post(read_only))
                .route(&format!("/fhir/{ty}/{{id}}{slash}"), get(read).put(read_only));
        }
    }
    r
}

async fn read_only() -> ApiResult {
    Err(ApiError::ReadOnlyView)
}

/// Whom a request's views are for, decided before anything is read.
enum Reader {
    /// The provider: every view.
    Provider,
    /// A patient: the views about these relationships (with their patients' ids).
    Patient(Vec<(RelationshipId, ResourceId)>),
    /// A viewer: the pointers it may read now.
    Viewer { address: Address, pointers: Vec<Candidate> },
}

fn viewer_of(g: &Gatekeeper, caller: &Caller) -> Result<Reader, ApiError> {
    if g.is_provider(caller.address) || g.authorization_off() {
        return Ok(Reader::Provider);
    }
    if caller.grant.is_some() {
        return Err(ApiError::forbidden(
            "a SMART token's scopes do not cover MedRec's Consent, AuditEvent and Provenance views; sign in with your wallet",
            "forbidden",
        ));
    }
    g.ready()?;
    let mine = g.patient_relationships(caller.address);
    if !mine.is_empty() {
        let rels =
            mine.into_iter().filter_map(|id| g.enrollment(&id).map(|e| (id, e.patient))).collect();
        return Ok(Reader::Patient(rels));
    }
    let scope = g.scope_of(caller)?;
    let pointers: Vec<Candidate> = match scope.reach() {
        Reach::Limited(c) => c.iter().filter(|c| c.pointer().is_some()).cloned().collect(),
        Reach::Provider => Vec::new(),
    };
    if pointers.is_empty() {
        return Err(ApiError::forbidden(
            "you may not read records here: the patient has not shared any with you",
            "forbidden",
        ));
    }
    Ok(Reader::Viewer { address: caller.address, pointers })
}

/// `GET /fhir/{Consent|AuditEvent|Provenance}?…`
async fn search(
    kind: Derived,
    State(g): State<Gatekeeper>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    Extension(caller): Extension<Caller>,
    Extension(audit): Extension<Audit>,
) -> ApiResult {
    let pairs = params::pairs(raw.as_deref());
    let query = Query::parse(kind, &pairs, params::strict(&headers))?;
    let who = viewer_of(&g, &caller)?;
    let base = base_url(&headers);
    let Page { total, views, next } = views(kind, &g, &who, &query, &audit).await?;
    let link = |relation: &'static str, offset: usize| {
        let mut url = form_urlencoded::Serializer::new(String::new());
        for (n, v) in &query.applied {
            url.append_pair(n, v);
        }
        url.append_pair("_count", &query.count.to_string());
        url.append_pair("_offset", &offset.to_string());
        Link { relation, url: format!("{base}/{}?{}", kind.as_str(), url.finish()) }
    };
    let mut links = vec![link("self", query.offset)];
    if let Some(next) = next {
        links.push(link("next", next));
    }
    if query.offset > 0 && kind != Derived::AuditEvent {
        links.push(link("previous", query.offset.saturating_sub(query.count.max(1))));
    }
    let bundle = Searchset {
        resource_type: "Bundle",
        kind: "searchset",
        total: total.map(|t| t as u64),
        link: links,
        entry: views
            .into_iter()
            .map(|resource| SearchEntry {
                full_url: Some(format!(
                    "{base}/{}/{}",
                    kind.as_str(),
                    resource["id"].as_str().unwrap_or_default()
                )),
                resource,
                search: SearchMode { mode: "match" },
            })
            .collect(),
    };
    Ok(fhir_json(StatusCode::OK, bundle.to_vec()))
}

/// `GET /fhir/{Consent|AuditEvent|Provenance}/{id}`
async fn read(
    kind: Derived,
    State(g): State<Gatekeeper>,
    Path(id): Path<String>,
    Extension(caller): Extension<Caller>,
    Extension(audit): Extension<Audit>,
) -> ApiResult {
    let who = viewer_of(&g, &caller)?;
    let query = Query { id: Some(id), count: 1, ..Query::default() };
    let mut views = views(kind, &g, &who, &query, &audit).await?.views;
    let view = views.pop().ok_or_else(super::read::not_found)?;
    Ok(fhir_json(StatusCode::OK, serde_json::to_vec(&view).expect("JSON serialises")))
}

/// A search's parameters.
#[derive(Debug, Default)]
struct Query {
    id: Option<String>,
    patient: Option<String>,
    status: Option<String>,
    count: usize,
    offset: usize,
    /// The parameters applied, for the `self` link.
    applied: Vec<(String, String)>,
}

/// Most views one page returns.
const MAX_COUNT: usize = 500;

impl Query {
    fn parse(kind: Derived, pairs: &[(String, String)], strict: bool) -> Result<Self, ApiError> {
        let mut q = Self { count: 50, ..Self::default() };
        for (name, value) in pairs {
            let number = || {
                value.parse::<usize>().map_err(|_| {
                    ApiError::Invalid(format!("{name} must be a whole number, not '{value}'"))
                })
            };
            match name.as_str() {
                "_count" => q.count = number()?.min(MAX_COUNT),
                "_offset" => q.offset = number()?,
                "_id" => q.id = Some(value.clone()),
                "patient" if kind.search_params().iter().any(|(n, _)| *n == "patient") => {
                    q.patient = Some(value.strip_prefix("Patient/").unwrap_or(value).to_owned());
                }
                "status" if kind == Derived::Consent => q.status = Some(value.clone()),
                "_format" => continue,
                _ if strict => {
                    return Err(ApiError::Invalid(format!(
                        "{} does not support the search parameter '{name}'",
                        kind.as_str()
                    )));
                }
                _ => continue,
            }
            if !matches!(name.as_str(), "_count" | "_offset") {
                q.applied.push((name.clone(), value.clone()));
            }
        }
        Ok(q)
    }
}

/// One page of views.
struct Page {
    /// How many match, when known.
    total: Option<usize>,
    views: Vec<Value>,
    /// The `_offset` of the next page, when there is one.
    next: Option<usize>,
}

/// The views of `kind` `who` may see that match `q`: one page.
async fn views(
    kind: Derived,
    g: &Gatekeeper,
    who: &Reader,
    q: &Query,
    audit: &Audit,
) -> Result<Page, ApiError> {
    if let (Derived::AuditEvent, Reader::Viewer { .. }) = (kind, who) {
        return Err(ApiError::forbidden(
            "the access log is the patient's: only the patient and the provider read it",
            "forbidden",
        ));
    }
    note(who, audit);
    let all = match kind {
        Derived::Consent => consents(g, who),
        Derived::Provenance => provenances(g, who),
        Derived::AuditEvent => return audit_events(g, who, q).await,
    };
    let matching: Vec<Value> = all
        .into_iter()
        .filter(|v| q.id.as_deref().is_none_or(|id| v["id"] == id))
        .filter(|v| {
            q.patient.as_deref().is_none_or(|p| {
                let reference = format!("Patient/{p}");
                v["patient"]["reference"] == reference.as_str()
                    || v["target"][0]["reference"]
                        .as_str()
                        .is_some_and(|t| t.ends_with(&format!("&patient={p}")))
            })
        })
        .filter(|v| q.status.as_deref().is_none_or(|s| v["status"] == s))
        .collect();
    let total = matching.len();
    let views: Vec<Value> = matching.into_iter().skip(q.offset).take(q.count).collect();
    let end = q.offset + views.len();
    Ok(Page { total: Some(total), next: (end < total && !views.is_empty()).then_some(end), views })
}

/// Notes for the log the relationships the request reaches.
fn note(who: &Reader, audit: &Audit) {
    match who {
        Reader::Provider => audit.decided(Decision::AllowProvider),
        Reader::Patient(rels) => {
            for (id, _) in rels {
                audit.touch(Touch::relationship(id.0, Decision::AllowPatient));
            }
        }
        Reader::Viewer { pointers, .. } => {
            for c in pointers {
                audit.touch(Touch {
                    pointer: c.pointer(),
                    ..Touch::relationship(c.relationship().0, Decision::AllowViewer)
                });
            }
        }
    }
}

/// The relationships `who` sees views of, with their patients.
fn relationships(g: &Gatekeeper, who: &Reader) -> Vec<(RelationshipId, ResourceId)> {
    match who {
        Reader::Provider => g.enrollments_where(|_| true),
        Reader::Patient(rels) => rels.clone(),
        Reader::Viewer { pointers, .. } => {
            let mut out: Vec<_> =
                pointers.iter().map(|c| (c.relationship(), c.patient().clone())).collect();
            out.sort_by_key(|(id, _)| id.0);
            out.dedup_by_key(|(id, _)| id.0);
            out
        }
    }
}

fn hex(b: &[u8]) -> String {
    alloy::hex::encode_prefixed(b)
}

/// A short stable id from `parts` (FHIR ids are at most 64 characters).
fn short_id(prefix: &str, parts: &[&[u8]]) -> String {
    let h = keccak256(parts.concat());
    format!("{prefix}-{}", alloy::hex::encode(&h[..16]))
}

/// An RFC 3339 instant of unix milliseconds.
fn instant_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

fn instant(secs: u64) -> String {
    instant_ms(i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX / 2))
}

/// The [`CHAIN_EVENT`] extension of `event` at `at`.
fn chain_event(event: &str, relationship: &RelationshipId, at: &ChainEvent) -> Value {
    let block = u32::try_from(at.block).ok().filter(|b| i32::try_from(*b).is_ok()).map_or_else(
        || json!({"url": "block", "valueString": at.block.to_string()}),
        |b| json!({"url": "block", "valueUnsignedInt": b}),
    );
    let mut ext = vec![
        json!({"url": "event", "valueCode": event}),
        block,
        json!({"url": "relationship", "valueString": hex(relationship.0.as_slice())}),
    ];
    if let Some(tx) = at.tx {
        ext.push(json!({"url": "transaction", "valueString": hex(tx.as_slice())}));
    }
    json!({"url": CHAIN_EVENT, "extension": ext})
}

fn address_identifier(a: Address) -> Value {
    json!({"system": ADDRESS_SYSTEM, "value": a.to_checksum(None)})
}

/// The Consents `who` may see.
fn consents(g: &Gatekeeper, who: &Reader) -> Vec<Value> {
    let now = g.auth().clock().now();
    let rels = relationships(g, who);
    g.with_index(|index| {
        let mut out = Vec::new();
        for (id, patient) in &rels {
            let Some(rel) = index.relationship(id) else { continue };
            let pointers = g.enrollment(id).map(|e| e.pointers).unwrap_or_default();
            for r in index.grant_records(id) {
                if let Reader::Viewer { address, .. } = who
                    && !index.reaches(r.viewer, *address)
                {
                    continue;
                }
                let group = index.group_at(r.viewer).is_some();
                out.push(consent(id, patient, rel.status, &r, group, &pointers, now));
            }
        }
        out
    })
}

fn consent(
    id: &RelationshipId,
    patient: &ResourceId,
    status: Status,
    r: &GrantRecord,
    group: bool,
    pointers: &[crate::pointer::PointerQuery],
    now: u64,
) -> Value {
    let open = now >= r.grant.not_before && now < r.grant.expires_at;
    let active = r.revoked.is_none() && open && status.is_accepted();
    let mut period = serde_json::Map::new();
    if r.grant.not_before > 0 {
        period.insert("start".into(), instant(r.grant.not_before).into());
    }
    if r.grant.expires_at != u64::MAX && r.grant.expires_at < 253_402_300_799 {
        period.insert("end".into(), instant(r.grant.expires_at).into());
    }
    let mut classes: Vec<Value> = Vec::new();
    let mut data: Vec<Value> = Vec::new();
    for (n, q) in pointers.iter().enumerate() {
        let Ok(n) = u8::try_from(n) else { break };
        if !r.grant.pointers.contains(n) {
            continue;
        }
        let class = json!({"system": "http://hl7.org/fhir/resource-types", "code": q.resource_type().as_str()});
        if !classes.contains(&class) {
            classes.push(class);
        }
        data.push(json!({"meaning": "instance", "reference": {
            "type": q.resource_type().as_str(),
            "display": format!("pointer {n}: {}", q.text()),
        }}));
    }
    let mut provision = json!({
        "type": "permit",
        "actor": [{
            "role": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP", "display": "information recipient"}]},
            "reference": {
                "identifier": address_identifier(r.viewer),
                "display": format!("{} {}", if group { "group" } else { "viewer" }, r.viewer.to_checksum(None)),
            }
        }],
        "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction", "code": "access"}]}],
    });
    let p = &mut provision;
    if !period.is_empty() {
        p["period"] = Value::Object(period);
    }
    if group {
        p["actor"][0]["reference"]["type"] = "Group".into();
    }
    if !classes.is_empty() {
        p["class"] = classes.into();
        p["data"] = data.into();
    }
    let mut extension = vec![chain_event("ViewerGranted", id, &r.granted)];
    if let Some(revoked) = &r.revoked {
        extension.push(chain_event("ViewerRevoked", id, revoked));
    }
    let mut c = json!({
        "resourceType": "Consent",
        "id": short_id("grant", &[id.0.as_slice(), r.viewer.as_slice()]),
        "extension": extension,
        "identifier": [
            {"system": RELATIONSHIP_SYSTEM, "value": hex(id.0.as_slice())},
            address_identifier(r.viewer),
        ],
        "status": if active { "active" } else { "inactive" },
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "59284-0", "display": "Patient Consent"}]}],
        "patient": {"reference": format!("Patient/{patient}")},
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "OPTIN"}]},
        "provision": provision,
    });
    if let Some(t) = r.granted.time {
        c["dateTime"] = instant(t).into();
    }
    c
}

/// The Provenances of pointer publications `who` may see.
fn provenances(g: &Gatekeeper, who: &Reader) -> Vec<Value> {
    let rels = relationships(g, who);
    let provider = g.provider_address();
    g.with_index(|index| {
        let mut out = Vec::new();
        for (id, patient) in &rels {
            let Some(enrollment) = g.enrollment(id) else { continue };
            for (n, q) in enrollment.pointers.iter().enumerate() {
                let Ok(n) = u8::try_from(n) else { break };
                if let Reader::Viewer { pointers, .. } = who
                    && !pointers.iter().any(|c| c.relationship() == *id && c.pointer() == Some(n))
                {
                    continue;
                }
                let (Some(state), Some(at)) = (index.pointer(id, n), index.pointer_event(id, n))
                else {
                    continue;
                };
                // The provider only to the provider and the patient (the chain never
                // names it).
                let agent = match (who, provider) {
                    (Reader::Provider | Reader::Patient(_), Some(p)) => json!({
                        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "custodian"}]},
                        "who": {"type": "Organization", "identifier": address_identifier(p), "display": "the provider holding these records"}
                    }),
                    _ => json!({
                        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "custodian"}]},
                        "who": {"display": "the provider holding these records (not named on chain)"}
                    }),
                };
                let recorded = instant(at.time.unwrap_or(0));
                out.push(json!({
                    "resourceType": "Provenance",
                    "id": short_id("pub", &[id.0.as_slice(), &[n], &at.block.to_be_bytes()]),
                    "extension": [chain_event("PointerPublished", id, &at)],
                    "target": [{
                        "reference": format!("{}&patient={patient}", with_query(q.text())),
                        "type": q.resource_type().as_str(),
                        "display": format!("pointer {n} of relationship {}: {}", hex(id.0.as_slice()), q.text())
                    }],
                    "recorded": recorded,
                    "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": "UPDATE"}]},
                    "agent": [agent],
                    "entity": [{
                        "role": "source",
                        "what": {
                            "identifier": {"system": DATA_HASH_SYSTEM, "value": hex(state.data_hash.as_slice())},
                            "display": format!("SHA-256 of pointer {n}'s result set, published on chain in block {}", at.block)
                        }
                    }]
                }));
            }
        }
        out
    })
}

/// `Type?query` with a `?` even when the query is empty.
fn with_query(text: &str) -> String {
    if text.contains('?') { text.to_owned() } else { format!("{text}?") }
}

/// The AuditEvents of the access log `who` may see.
async fn audit_events(g: &Gatekeeper, who: &Reader, q: &Query) -> Result<Page, ApiError> {
    let Some(trail) = g.trail() else {
        return Err(ApiError::NotSupported("this gatekeeper keeps no access log"));
    };
    let rels: Vec<B256> = match who {
        Reader::Provider => Vec::new(),
        Reader::Patient(rels) => rels.iter().map(|(id, _)| id.0).collect(),
        Reader::Viewer { .. } => return Ok(Page { total: Some(0), views: Vec::new(), next: None }),
    };
    let failed = |err: medrec_store::StoreError| {
        tracing::error!(target: "medrec::gatekeeper", %err, "reading the access log failed");
        ApiError::Unavailable {
            why: "the access log could not be read; the error is logged, try again shortly",
            reason: "unavailable",
        }
    };
    let log = trail.log();
    // Entries are numbered from 1: `_id` is an entry number, and `_offset` the number of
    // the entry the page starts after (the next page's link says where it ends).
    let (after, limit) = match &q.id {
        Some(id) => match id.parse::<u64>() {
            Ok(seq) if seq > 0 => (seq - 1, 1),
            _ => return Ok(Page { total: Some(0), views: Vec::new(), next: None }),
        },
        None => (q.offset as u64, u32::try_from(q.count.max(1)).unwrap_or(500)),
    };
    let entries = match who {
        Reader::Provider => log.entries(after, limit).await.map_err(failed)?,
        _ => log.entries_about(&rels, after, limit).await.map_err(failed)?,
    };
    let entries: Vec<LoggedEntry> = entries
        .into_iter()
        .filter(|e| q.id.as_deref().is_none_or(|id| e.seq.to_string() == id))
        .collect();
    let proofs = prove_entries(log, entries.clone()).await.map_err(failed)?;
    let views: Vec<Value> =
        entries.iter().zip(&proofs).map(|(e, p)| audit_event(e, p.as_ref())).collect();
    // No total: counting a patient's entries would mean reading them all.
    let next = (q.id.is_none() && views.len() >= q.count)
        .then(|| entries.last().and_then(|e| usize::try_from(e.seq).ok()))
        .flatten();
    Ok(Page { total: None, views, next })
}

fn audit_event(e: &LoggedEntry, proof: Option<&Proof>) -> Value {
    use medrec_store::audit::Action;
    let n = &e.entry;
    let (action, subtype) = match n.action {
        Action::FhirRead => ("R", Some("read")),
        Action::FhirSearch => ("E", Some("search-type")),
        Action::FhirWrite => ("U", Some("update")),
        Action::PointerRead | Action::LogRead => ("R", None),
        _ => ("E", None),
    };
    let mut subtypes =
        vec![json!({"system": "urn:medrec:audit-action", "code": n.action.as_str()})];
    if let Some(s) = subtype {
        subtypes.push(json!({"system": "http://hl7.org/fhir/restful-interaction", "code": s}));
    }
    let allowed = n.decision.is_allowed();
    let mut entities = Vec::new();
    if let Some(r) = &n.resource {
        let mut what = json!({"type": r.resource_type.as_str()});
        if let Some(id) = &r.id {
            what["reference"] = format!("{}/{id}", r.resource_type.as_str()).into();
        }
        entities.push(json!({
            "what": what,
            "type": {"system": "http://hl7.org/fhir/resource-types", "code": r.resource_type.as_str()},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "4", "display": "Domain Resource"}
        }));
    }
    if let Some(rel) = n.relationship {
        let mut entity = json!({
            "what": {"identifier": {"system": RELATIONSHIP_SYSTEM, "value": hex(rel.as_slice())}},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"},
            "description": "the relationship (patient and provider) the request reached"
        });
        if let Some(p) = n.pointer {
            entity["detail"] = json!([{"type": "pointer", "valueString": p.to_string()}]);
        }
        entities.push(entity);
    }
    let mut detail = vec![
        json!({"type": "seq", "valueString": e.seq.to_string()}),
        json!({"type": "prev-hash", "valueString": hex(e.prev_hash.as_slice())}),
        json!({"type": "decision", "valueString": n.decision.to_string()}),
    ];
    if let Some(h) = n.response_hash {
        detail.push(json!({"type": "response-hash", "valueString": hex(h.as_slice())}));
    }
    if let Some(eps) = n.epsilon {
        detail.push(json!({"type": "epsilon", "valueString": eps.to_string()}));
    }
    if let Some(p) = proof {
        let a = &p.anchor;
        detail.push(json!({"type": "anchor-size", "valueString": a.size.to_string()}));
        detail.push(json!({"type": "anchor-root", "valueString": hex(a.root.as_slice())}));
        detail.push(json!({"type": "anchor-block", "valueString": a.block.to_string()}));
        detail.push(json!({"type": "anchor-transaction", "valueString": hex(a.tx.as_slice())}));
        let path: Vec<String> = p.path.iter().map(|h| hex(h.as_slice())).collect();
        detail.push(json!({"type": "inclusion-path", "valueString": path.join(",")}));
    }
    entities.push(json!({
        "what": {"identifier": {"system": ENTRY_HASH_SYSTEM, "value": hex(e.hash.as_slice())}},
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"},
        "description": if proof.is_some() {
            "this access log entry, and the on-chain anchor whose Merkle root covers it"
        } else {
            "this access log entry (not anchored yet)"
        },
        "detail": detail
    }));
    json!({
        "resourceType": "AuditEvent",
        "id": e.seq.to_string(),
        "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest", "display": "RESTful Operation"},
        "subtype": subtypes,
        "action": action,
        "recorded": instant_ms(n.time),
        "outcome": if allowed { "0" } else { "4" },
        "outcomeDesc": n.decision.to_string(),
        "agent": [{
            "who": {"identifier": address_identifier(n.requester)},
            "requestor": true
        }],
        "source": {
            "observer": {"display": "MedRec gatekeeper"},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4", "display": "Application Server"}]
        },
        "entity": entities
    })
}
