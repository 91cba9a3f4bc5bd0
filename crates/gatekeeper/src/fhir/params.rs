//! The parameters of a FHIR read or search as a client sends them, sorted before
//! anything is read: the search itself (parsed by [`SearchQuery::parse`]), the result
//! parameters this server applies (`_summary`, `_total`, `_elements`, `_include`,
//! `_revinclude`, `_format`), and unknown or unsupported ones, which are ignored
//! unless the client sent `Prefer: handling=strict` (FHIR R4 search.html#errors).
//! What was applied, and only that, goes into the searchset's `self` link.
//!
//! Subsetting (`_summary`, `_elements`) keeps the resource type, `id`, `meta` and the
//! type's mandatory elements, and tags the resource `SUBSETTED` as FHIR requires.

use crate::error::ApiError;
use axum::http::HeaderMap;
use medrec_store::{
    fhir::ResourceType,
    search::{self, SearchQuery, is_parameter},
};
use serde_json::{Map, Value, json};

/// `_summary`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Summary {
    /// `false` (or absent): whole resources.
    Full,
    /// `true`: the elements FHIR marks as summary.
    True,
    /// `text`: the narrative, `id`, `meta` and mandatory elements.
    Text,
    /// `data`: everything but the narrative.
    Data,
    /// `count`: the total only, no entries.
    Count,
}

/// A resource type and the reference search parameter an `_include` or `_revinclude`
/// follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Include {
    /// The type whose resources hold the reference.
    pub(crate) source: ResourceType,
    /// The parameter: `patient`, `subject` or `encounter`.
    pub(crate) param: &'static str,
}

impl Include {
    /// The type the reference points to.
    pub(crate) const fn target(self) -> ResourceType {
        if matches!(self.param.as_bytes(), b"encounter") {
            ResourceType::Encounter
        } else {
            ResourceType::Patient
        }
    }

    /// `Source:param`.
    pub(crate) fn text(self) -> String {
        format!("{}:{}", self.source, self.param)
    }
}

/// The `_include` values a search on `ty` follows: its patient references, and its
/// `encounter` where the type has one.
pub(crate) fn includes(ty: ResourceType) -> Vec<Include> {
    let mut out = Vec::new();
    for param in patient_params(ty) {
        out.push(Include { source: ty, param });
    }
    if has_encounter(ty) {
        out.push(Include { source: ty, param: "encounter" });
    }
    out
}

/// The `_revinclude` values a search on `ty` follows: only on Patient, every other
/// type's patient references (the store indexes those).
pub(crate) fn revincludes(ty: ResourceType) -> Vec<Include> {
    if ty != ResourceType::Patient {
        return Vec::new();
    }
    ResourceType::ALL
        .into_iter()
        .flat_map(|source| patient_params(source).map(move |param| Include { source, param }))
        .collect()
}

/// The reference parameters to a Patient that `ty` defines in FHIR R4.
fn patient_params(ty: ResourceType) -> impl Iterator<Item = &'static str> {
    let params: &[&str] = match ty {
        ResourceType::Patient => &[],
        ResourceType::AllergyIntolerance | ResourceType::Immunization => &["patient"],
        _ => &["patient", "subject"],
    };
    params.iter().copied()
}

/// Whether `ty` has a top-level `encounter` reference.
const fn has_encounter(ty: ResourceType) -> bool {
    matches!(
        ty,
        ResourceType::Observation
            | ResourceType::Condition
            | ResourceType::MedicationRequest
            | ResourceType::AllergyIntolerance
            | ResourceType::Immunization
            | ResourceType::Procedure
            | ResourceType::DiagnosticReport
    )
}

/// A request's parameters, sorted.
#[derive(Debug)]
pub(crate) struct Params {
    /// The search (without result parameters).
    pub(crate) query: SearchQuery,
    /// Every applied parameter in the order sent, `_count` and `_offset` aside (the
    /// links add those).
    pub(crate) applied: Vec<(String, String)>,
    /// `_summary`.
    pub(crate) summary: Summary,
    /// `_total` other than `none`.
    pub(crate) total: bool,
    /// `_elements`.
    pub(crate) elements: Option<Vec<String>>,
    /// `_include`.
    pub(crate) include: Vec<Include>,
    /// `_revinclude`.
    pub(crate) revinclude: Vec<Include>,
}

/// Whether the client asked for strict handling (`Prefer: handling=strict`).
pub(crate) fn strict(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split([',', ';']).any(|p| p.trim().eq_ignore_ascii_case("handling=strict")))
}

/// The decoded `name=value` pairs of a query string.
pub(crate) fn pairs(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect()
}

fn unsupported(name: &str, strict: bool) -> Result<(), ApiError> {
    if strict {
        let name: String = name.chars().take(64).collect();
        return Err(ApiError::Invalid(format!(
            "search parameter {name} is not supported (Prefer: handling=strict)"
        )));
    }
    Ok(())
}

/// Sorts the parameters of a search on `ty`.
pub(crate) fn search(
    ty: ResourceType,
    pairs: &[(String, String)],
    strict: bool,
) -> Result<Params, ApiError> {
    let mut search = Vec::new();
    let mut p = Params {
        query: SearchQuery::all(ty),
        applied: Vec::new(),
        summary: Summary::Full,
        total: true,
        elements: None,
        include: Vec::new(),
        revinclude: Vec::new(),
    };
    let mut seen_summary = false;
    for (name, value) in pairs {
        let keep = match name.as_str() {
            n if is_parameter(ty, n) => {
                search.push((name.as_str(), value.as_str()));
                !matches!(n, "_count" | "_offset")
            }
            "_format" => true,
            "_summary" => {
                if seen_summary {
                    return Err(ApiError::Invalid("_summary may appear once".into()));
                }
                seen_summary = true;
                p.summary = summary(value)?;
                true
            }
            "_total" => {
                p.total = match value.as_str() {
                    "none" => false,
                    "estimate" | "accurate" => true,
                    _ => {
                        return Err(ApiError::Invalid(
                            "_total must be none, estimate or accurate".into(),
                        ));
                    }
                };
                true
            }
            "_elements" => {
                p.elements = Some(elements(value)?);
                true
            }
            "_include" | "_revinclude" => {
                let allowed = if name == "_include" { includes(ty) } else { revincludes(ty) };
                let found = allowed.into_iter().find(|i| {
                    i.text() == *value || format!("{}:{}", i.text(), i.target()) == *value
                });
                match found {
                    Some(i) if name == "_include" => p.include.push(i),
                    Some(i) => p.revinclude.push(i),
                    None => {
                        unsupported(&format!("{name}={value}"), strict)?;
                        continue;
                    }
                }
                true
            }
            other => {
                unsupported(other, strict)?;
                continue;
            }
        };
        if keep {
            p.applied.push((name.clone(), value.clone()));
        }
    }
    if seen_summary && p.elements.is_some() {
        return Err(ApiError::Invalid("_summary and _elements cannot be used together".into()));
    }
    p.query = SearchQuery::parse(ty, search).map_err(|e| ApiError::Invalid(e.to_string()))?;
    if p.summary == Summary::Count {
        p.query.count = 0;
    }
    Ok(p)
}

/// The subsetting a read asks for (`_summary`, `_elements`; `_format` is the
/// negotiation layer's); anything else is unknown.
/// A history's `_count` (default [`search::DEFAULT_COUNT`], at most
/// [`search::MAX_COUNT`]) and `_offset` (newest versions skipped); other parameters
/// ignored unless `strict`.
pub(crate) fn history(pairs: &[(String, String)], strict: bool) -> Result<(u64, u64), ApiError> {
    let (mut count, mut offset) = (u64::from(search::DEFAULT_COUNT), 0);
    let number = |name: &str, value: &str| {
        value
            .parse::<u64>()
            .map_err(|_| ApiError::Invalid(format!("{name} must be a whole number")))
    };
    for (name, value) in pairs {
        match name.as_str() {
            "_format" => {}
            "_count" => count = number(name, value)?.min(u64::from(search::MAX_COUNT)),
            "_offset" => offset = number(name, value)?,
            other => unsupported(other, strict)?,
        }
    }
    Ok((count, offset))
}

pub(crate) fn read(
    pairs: &[(String, String)],
    strict: bool,
) -> Result<(Summary, Option<Vec<String>>), ApiError> {
    let (mut s, mut e) = (Summary::Full, None);
    for (name, value) in pairs {
        match name.as_str() {
            "_format" => {}
            "_summary" => s = summary(value)?,
            "_elements" => e = Some(elements(value)?),
            other => unsupported(other, strict)?,
        }
    }
    if s == Summary::Count {
        return Err(ApiError::Invalid("_summary=count applies to searches".into()));
    }
    Ok((s, e))
}

fn summary(value: &str) -> Result<Summary, ApiError> {
    Ok(match value {
        "true" => Summary::True,
        "false" => Summary::Full,
        "text" => Summary::Text,
        "data" => Summary::Data,
        "count" => Summary::Count,
        _ => {
            return Err(ApiError::Invalid(
                "_summary must be true, false, text, data or count".into(),
            ));
        }
    })
}

fn elements(value: &str) -> Result<Vec<String>, ApiError> {
    let names: Vec<String> = value.split(',').map(|n| n.trim().to_owned()).collect();
    let plain =
        |n: &str| !n.is_empty() && n.len() <= 64 && n.bytes().all(|b| b.is_ascii_alphanumeric());
    if names.iter().all(|n| plain(n)) {
        Ok(names)
    } else {
        Err(ApiError::Invalid("_elements takes top-level element names, comma-separated".into()))
    }
}

/// The elements FHIR R4 marks as summary (Σ) for `ty`, besides `id`, `meta` and
/// `implicitRules`; a name ending in `[x]` stands for each of its choices.
fn summary_elements(ty: ResourceType) -> &'static [&'static str] {
    match ty {
        ResourceType::Patient => &[
            "identifier",
            "active",
            "name",
            "telecom",
            "gender",
            "birthDate",
            "deceased[x]",
            "address",
            "managingOrganization",
            "link",
        ],
        ResourceType::Observation => &[
            "identifier",
            "basedOn",
            "partOf",
            "status",
            "code",
            "subject",
            "focus",
            "encounter",
            "effective[x]",
            "issued",
            "performer",
            "value[x]",
            "hasMember",
            "derivedFrom",
            "component",
        ],
        ResourceType::Condition => &[
            "identifier",
            "clinicalStatus",
            "verificationStatus",
            "code",
            "bodySite",
            "subject",
            "encounter",
            "onset[x]",
            "abatement[x]",
            "recordedDate",
            "recorder",
            "asserter",
        ],
        ResourceType::MedicationRequest => &[
            "status",
            "intent",
            "priority",
            "doNotPerform",
            "reported[x]",
            "medication[x]",
            "subject",
            "authoredOn",
            "requester",
            "performerType",
            "instantiatesCanonical",
            "instantiatesUri",
            "basedOn",
            "groupIdentifier",
        ],
        ResourceType::AllergyIntolerance => &[
            "identifier",
            "clinicalStatus",
            "verificationStatus",
            "type",
            "category",
            "criticality",
            "code",
            "patient",
            "asserter",
        ],
        ResourceType::Immunization => &[
            "status",
            "vaccineCode",
            "patient",
            "occurrence[x]",
            "primarySource",
            "performer",
            "note",
            "isSubpotent",
        ],
        ResourceType::Procedure => &[
            "identifier",
            "instantiatesCanonical",
            "instantiatesUri",
            "basedOn",
            "partOf",
            "status",
            "statusReason",
            "category",
            "code",
            "subject",
            "encounter",
            "performed[x]",
            "recorder",
            "asserter",
            "performer",
            "location",
            "reasonCode",
            "reasonReference",
            "bodySite",
            "outcome",
        ],
        ResourceType::Encounter => &[
            "identifier",
            "status",
            "class",
            "type",
            "serviceType",
            "subject",
            "episodeOfCare",
            "participant",
            "appointment",
            "reasonCode",
            "reasonReference",
            "diagnosis",
        ],
        ResourceType::DiagnosticReport => &[
            "identifier",
            "status",
            "category",
            "code",
            "subject",
            "encounter",
            "effective[x]",
            "issued",
            "performer",
            "resultsInterpreter",
            "media",
        ],
        ResourceType::DocumentReference => &[
            "masterIdentifier",
            "identifier",
            "status",
            "docStatus",
            "type",
            "category",
            "subject",
            "date",
            "author",
            "relatesTo",
            "description",
            "securityLabel",
            "content",
            "context",
        ],
    }
}

/// The top-level elements FHIR R4 requires (minimum cardinality 1) of `ty`.
fn mandatory_elements(ty: ResourceType) -> &'static [&'static str] {
    match ty {
        ResourceType::Patient => &[],
        ResourceType::Observation | ResourceType::DiagnosticReport => &["status", "code"],
        ResourceType::Condition => &["subject"],
        ResourceType::MedicationRequest => &["status", "intent", "medication[x]", "subject"],
        ResourceType::AllergyIntolerance => &["patient"],
        ResourceType::Immunization => &["status", "vaccineCode", "patient", "occurrence[x]"],
        ResourceType::Procedure => &["status", "subject"],
        ResourceType::Encounter => &["status", "class"],
        ResourceType::DocumentReference => &["status", "content"],
    }
}

/// Whether the JSON key `key` (or its `_key` primitive extension) is `element`,
/// where `element` may end in `[x]`.
fn is_element(key: &str, element: &str) -> bool {
    let key = key.strip_prefix('_').unwrap_or(key);
    match element.strip_suffix("[x]") {
        Some(stem) => key
            .strip_prefix(stem)
            .is_some_and(|rest| rest.chars().next().is_some_and(|c| c.is_ascii_uppercase())),
        None => key == element,
    }
}

/// `resource` subset as `summary` and `elements` ask (unchanged when they ask
/// nothing); a subset is tagged `SUBSETTED`.
pub(crate) fn subset(resource: Value, summary: Summary, elements: Option<&[String]>) -> Value {
    let Value::Object(obj) = resource else { return resource };
    let ty: Option<ResourceType> =
        obj.get("resourceType").and_then(Value::as_str).and_then(|t| t.parse().ok());
    let Some(ty) = ty else { return Value::Object(obj) };
    let always = |k: &str| matches!(k, "resourceType" | "id" | "meta" | "implicitRules");
    let mandatory = |k: &str| mandatory_elements(ty).iter().any(|e| is_element(k, e));
    let keep: Box<dyn Fn(&str) -> bool + '_> = match (summary, elements) {
        // A name asked for is the element, or each choice of it (`value` for
        // `valueQuantity`).
        (_, Some(list)) => Box::new(move |k: &str| {
            always(k)
                || mandatory(k)
                || list.iter().any(|e| is_element(k, e) || is_element(k, &format!("{e}[x]")))
        }),
        (Summary::Full, None) => return Value::Object(obj),
        (Summary::Data, None) => Box::new(|k: &str| k != "text"),
        (Summary::Text, None) => Box::new(move |k: &str| always(k) || mandatory(k) || k == "text"),
        (Summary::True | Summary::Count, None) => Box::new(move |k: &str| {
            always(k) || mandatory(k) || summary_elements(ty).iter().any(|e| is_element(k, e))
        }),
    };
    let mut out: Map<String, Value> = obj.into_iter().filter(|(k, _)| keep(k)).collect();
    tag_subsetted(&mut out);
    Value::Object(out)
}

/// Adds the `SUBSETTED` security tag to `meta.tag`.
fn tag_subsetted(resource: &mut Map<String, Value>) {
    const SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue";
    let meta = resource.entry("meta").or_insert_with(|| json!({}));
    let Some(meta) = meta.as_object_mut() else { return };
    let tags = meta.entry("tag").or_insert_with(|| json!([]));
    let Some(tags) = tags.as_array_mut() else { return };
    if !tags.iter().any(|t| t["code"] == "SUBSETTED" && t["system"] == SYSTEM) {
        tags.push(json!({"system": SYSTEM, "code": "SUBSETTED", "display": "Resource encoded in summary mode"}));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter().map(|(n, v)| ((*n).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn unknown_parameters_are_ignored_unless_strict() {
        let sent = pairs(&[
            ("category", "laboratory"),
            ("foo", "bar"),
            ("code:text", "iron"),
            ("_count", "5"),
            ("_include", "Observation:performer"),
            ("_include", "Observation:patient"),
        ]);
        let p = search(ResourceType::Observation, &sent, false).unwrap();
        assert_eq!(
            p.applied,
            pairs(&[("category", "laboratory"), ("_include", "Observation:patient")])
        );
        assert_eq!((p.query.count, p.query.category.len()), (5, 1));
        assert_eq!(p.include, [Include { source: ResourceType::Observation, param: "patient" }]);
        let err = search(ResourceType::Observation, &sent, true).unwrap_err();
        assert!(err.message().contains("foo"), "{}", err.message());
        // A bad value of a known parameter is an error either way.
        assert!(search(ResourceType::Observation, &pairs(&[("date", "x")]), false).is_err());
        assert!(
            search(ResourceType::Observation, &pairs(&[("_summary", "maybe")]), false).is_err()
        );
        let both = pairs(&[("_summary", "true"), ("_elements", "status")]);
        assert!(search(ResourceType::Observation, &both, false).is_err());
    }

    #[test]
    fn summaries_keep_what_fhir_says() {
        let obs = json!({
            "resourceType": "Observation", "id": "o", "meta": {"versionId": "1"},
            "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"},
            "status": "final", "_status": {"id": "s"}, "category": [], "code": {"text": "iron"},
            "valueQuantity": {"value": 1}, "note": [{"text": "n"}], "effectiveDateTime": "2025"
        });
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        let s = subset(obs.clone(), Summary::True, None);
        assert_eq!(
            keys(&s),
            [
                "resourceType",
                "id",
                "meta",
                "status",
                "_status",
                "code",
                "valueQuantity",
                "effectiveDateTime"
            ]
        );
        assert_eq!(s["meta"]["tag"][0]["code"], "SUBSETTED");
        assert_eq!(s["meta"]["versionId"], "1");
        assert_eq!(
            keys(&subset(obs.clone(), Summary::Text, None)),
            ["resourceType", "id", "meta", "text", "status", "_status", "code"]
        );
        assert!(subset(obs.clone(), Summary::Data, None).get("text").is_none());
        assert_eq!(subset(obs.clone(), Summary::Full, None), obs);
        let e = subset(obs, Summary::Full, Some(&["value".to_owned(), "note".to_owned()]));
        assert_eq!(
            keys(&e),
            ["resourceType", "id", "meta", "status", "_status", "code", "valueQuantity", "note"]
        );
    }

    #[test]
    fn strict_is_read_from_prefer() {
        let mut h = HeaderMap::new();
        assert!(!strict(&h));
        h.insert("prefer", "return=minimal, handling=strict".parse().unwrap());
        assert!(strict(&h));
        h.insert("prefer", "handling=lenient".parse().unwrap());
        assert!(!strict(&h));
    }
}
