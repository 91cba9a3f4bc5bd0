//! The provider's writes: `POST /fhir/{type}` (create), `PUT /fhir/{type}/{id}` (update)
//! and `POST /fhir` (a `transaction`, all or none, or a `batch`, entry by entry).

use super::{
    ApiResult, base_url, fhir_json, history_url, resource_id, resource_ref, resource_response,
    resource_type,
};
use crate::{
    audit::Audit,
    error::{ApiError, OperationOutcome},
    pipeline::Caller,
    server::Gatekeeper,
};
use axum::{
    Extension,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
};
use medrec_store::{
    Stored,
    audit::Decision,
    fhir::{Resource, ResourceType},
    new_id,
};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Most entries in one transaction or batch Bundle.
const BUNDLE_LIMIT: usize = 10_000;

/// `POST /fhir/{type}`: the provider creates a resource.
pub(crate) async fn create(
    State(g): State<Gatekeeper>,
    Path(ty): Path<String>,
    headers: HeaderMap,
    Extension(caller): Extension<Caller>,
    Extension(audit): Extension<Audit>,
) -> ApiResult {
    audit.resource(resource_ref(&ty, None));
    let ty = resource_type(&ty)?;
    g.provider_only(caller.address)?;
    audit.decided(Decision::AllowProvider);
    let writer = g.writer()?;
    // As FHIR's create: the server chooses the id, whatever the body says.
    let resource = parse_resource(parse_body(&caller.body)?, ty)?.with_id(new_id());
    let stored = writer.create(resource).await?;
    let location = history_url(&base_url(&headers), &stored);
    Ok(resource_response(StatusCode::CREATED, &stored, Some(location)))
}

/// `PUT /fhir/{type}/{id}`: the provider stores a new version (or the first).
pub(crate) async fn update(
    State(g): State<Gatekeeper>,
    Path((ty, id)): Path<(String, String)>,
    headers: HeaderMap,
    Extension(caller): Extension<Caller>,
    Extension(audit): Extension<Audit>,
) -> ApiResult {
    audit.resource(resource_ref(&ty, Some(&id)));
    let (ty, id) = (resource_type(&ty)?, resource_id(&id)?);
    g.provider_only(caller.address)?;
    audit.decided(Decision::AllowProvider);
    let writer = g.writer()?;
    let resource = parse_resource(parse_body(&caller.body)?, ty)?;
    if resource.id.as_ref() != Some(&id) {
        return Err(ApiError::Invalid(
            "the resource's id must be present and equal to the id in the URL".into(),
        ));
    }
    let stored = writer.update(resource).await?;
    let (status, location) = if stored.version == 1 {
        (StatusCode::CREATED, Some(history_url(&base_url(&headers), &stored)))
    } else {
        (StatusCode::OK, None)
    };
    Ok(resource_response(status, &stored, location))
}

/// One entry of a transaction or batch, checked.
struct Entry {
    method: &'static str,
    resource: Resource,
}

/// `POST /fhir`: a `transaction` Bundle is stored all or none; a `batch` entry by
/// entry. Entries are `POST {type}` (a new id is assigned; references to the entry's
/// `urn:uuid:` fullUrl are rewritten to it) or `PUT {type}/{id}`.
pub(crate) async fn bundle(
    State(g): State<Gatekeeper>,
    headers: HeaderMap,
    Extension(caller): Extension<Caller>,
    Extension(audit): Extension<Audit>,
) -> ApiResult {
    g.provider_only(caller.address)?;
    audit.decided(Decision::AllowProvider);
    let writer = g.writer()?;
    let mut body = parse_body(&caller.body)?;

    if body.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
        return Err(ApiError::Invalid(
            "POST /fhir takes a Bundle of type transaction or batch".into(),
        ));
    }
    let transaction = match body.get("type").and_then(Value::as_str) {
        Some("transaction") => true,
        Some("batch") => false,
        _ => {
            return Err(ApiError::Invalid("the Bundle's type must be transaction or batch".into()));
        }
    };
    let mut entries = match body.get_mut("entry").map(Value::take) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(e)) => e,
        Some(_) => return Err(ApiError::Invalid("the Bundle's entry must be a list".into())),
    };
    if entries.len() > BUNDLE_LIMIT {
        return Err(ApiError::Invalid(format!(
            "a Bundle may hold at most {BUNDLE_LIMIT} entries; split it"
        )));
    }
    assign_ids(&mut entries);
    let base = base_url(&headers);
    let checked: Vec<Result<Entry, String>> = entries.into_iter().map(check_entry).collect();
    if transaction {
        let mut ok = Vec::with_capacity(checked.len());
        for (i, e) in checked.into_iter().enumerate() {
            ok.push(e.map_err(|why| ApiError::Invalid(format!("entry {i}: {why}")))?);
        }
        let methods: Vec<&str> = ok.iter().map(|e| e.method).collect();
        let stored = writer.update_all(ok.into_iter().map(|e| e.resource).collect()).await?;
        let responses: Vec<Value> = stored
            .iter()
            .zip(methods)
            .map(|(s, method)| entry_response(&base, s, method))
            .collect();
        return Ok(fhir_json(
            StatusCode::OK,
            to_vec(
                &json!({"resourceType": "Bundle", "type": "transaction-response", "entry": responses}),
            ),
        ));
    }
    let mut responses = Vec::new();
    for (i, e) in checked.into_iter().enumerate() {
        let response = match e {
            Err(why) => failed_entry(
                StatusCode::BAD_REQUEST,
                &OperationOutcome::error("invalid", &format!("entry {i}: {why}")),
            ),
            Ok(Entry { method, resource }) => match writer.update(resource).await {
                Ok(stored) => entry_response(&base, &stored, method),
                Err(err) => {
                    let err = ApiError::from(err);
                    let why = format!("entry {i}: {}", err.message());
                    failed_entry(err.status(), &OperationOutcome::error(err.issue_code(), &why))
                }
            },
        };
        responses.push(response);
    }
    Ok(fhir_json(
        StatusCode::OK,
        to_vec(&json!({"resourceType": "Bundle", "type": "batch-response", "entry": responses})),
    ))
}

/// Gives every `POST` entry a fresh id and rewrites references to its `urn:uuid:`
/// fullUrl, in every entry, to `Type/id`.
fn assign_ids(entries: &mut [Value]) {
    let mut renamed: HashMap<String, String> = HashMap::new();
    for e in entries.iter_mut() {
        if e.pointer("/request/method").and_then(Value::as_str) != Some("POST") {
            continue;
        }
        let Some(ty) = e.pointer("/resource/resourceType").and_then(Value::as_str) else {
            continue;
        };
        let id = new_id();
        let reference = format!("{ty}/{id}");
        if let Some(full) =
            e.get("fullUrl").and_then(Value::as_str).filter(|u| u.starts_with("urn:uuid:"))
        {
            renamed.insert(full.to_owned(), reference);
        }
        if let Some(obj) = e.get_mut("resource").and_then(Value::as_object_mut) {
            obj.insert("id".into(), Value::String(id.to_string()));
        }
    }
    if renamed.is_empty() {
        return;
    }
    for e in entries.iter_mut() {
        if let Some(r) = e.get_mut("resource") {
            rewrite(r, &renamed);
        }
    }
}

fn rewrite(v: &mut Value, renamed: &HashMap<String, String>) {
    match v {
        Value::String(s) => {
            if let Some(to) = renamed.get(s.as_str()) {
                to.clone_into(s);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|v| rewrite(v, renamed)),
        Value::Object(o) => o.values_mut().for_each(|v| rewrite(v, renamed)),
        _ => {}
    }
}

fn check_entry(mut e: Value) -> Result<Entry, String> {
    let method = match e.pointer("/request/method").and_then(Value::as_str) {
        Some("POST") => "POST",
        Some("PUT") => "PUT",
        Some(other) => return Err(format!("method {other} is not supported; use POST or PUT")),
        None => return Err("request.method is missing".into()),
    };
    let url = e.pointer("/request/url").and_then(Value::as_str).unwrap_or("").to_owned();
    let json = e.get_mut("resource").map(Value::take).ok_or("the entry has no resource")?;
    let resource = Resource::parse(json).map_err(|e| e.to_string())?;
    let ty = resource.resource_type.as_str();
    let expected = match (method, &resource.id) {
        ("POST", _) => ty.to_owned(),
        (_, Some(id)) => format!("{ty}/{id}"),
        (_, None) => return Err("a PUT entry's resource needs an id".into()),
    };
    if url.trim_start_matches('/') != expected {
        return Err(format!("request.url must be {expected}"));
    }
    Ok(Entry { method, resource })
}

fn entry_response(base: &str, s: &Stored, method: &str) -> Value {
    let status = if method == "POST" || s.version == 1 { "201 Created" } else { "200 OK" };
    json!({"response": {
        "status": status,
        "location": history_url(base, s),
        "etag": format!("W/\"{}\"", s.version),
    }})
}

fn failed_entry(status: StatusCode, outcome: &OperationOutcome<'_>) -> Value {
    json!({"response": {"status": status.to_string(), "outcome": outcome}})
}

fn parse_body(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::Invalid(format!("the body is not valid JSON: {e}")))
}

fn parse_resource(json: Value, expected: ResourceType) -> Result<Resource, ApiError> {
    let r = Resource::parse(json).map_err(|e| ApiError::Invalid(e.to_string()))?;
    if r.resource_type != expected {
        return Err(ApiError::Invalid(format!(
            "the body is a {} but the URL names {expected}",
            r.resource_type
        )));
    }
    Ok(r)
}

fn to_vec(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).expect("JSON serialises")
}
