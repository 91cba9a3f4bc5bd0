//! FHIR R4 resources as the store sees them: a JSON object of a supported type with a
//! valid id, and the search index extracted from it.
//!
//! Resources stay `serde_json::Value`: the store keeps what the provider published,
//! byte for byte in meaning, and only reads the few elements it indexes.

use serde_json::Value;
use std::{fmt, str::FromStr};

/// The resource types MedRec stores and serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    /// Patient.
    Patient,
    /// Observation (labs, vitals).
    Observation,
    /// Condition.
    Condition,
    /// MedicationRequest.
    MedicationRequest,
    /// AllergyIntolerance.
    AllergyIntolerance,
    /// Immunization.
    Immunization,
    /// Procedure.
    Procedure,
    /// Encounter.
    Encounter,
    /// DiagnosticReport.
    DiagnosticReport,
    /// DocumentReference.
    DocumentReference,
}

impl ResourceType {
    /// Every supported type.
    pub const ALL: [Self; 10] = [
        Self::Patient,
        Self::Observation,
        Self::Condition,
        Self::MedicationRequest,
        Self::AllergyIntolerance,
        Self::Immunization,
        Self::Procedure,
        Self::Encounter,
        Self::DiagnosticReport,
        Self::DocumentReference,
    ];

    /// The FHIR name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Patient => "Patient",
            Self::Observation => "Observation",
            Self::Condition => "Condition",
            Self::MedicationRequest => "MedicationRequest",
            Self::AllergyIntolerance => "AllergyIntolerance",
            Self::Immunization => "Immunization",
            Self::Procedure => "Procedure",
            Self::Encounter => "Encounter",
            Self::DiagnosticReport => "DiagnosticReport",
            Self::DocumentReference => "DocumentReference",
        }
    }

    /// Elements whose date is the resource's `date` search parameter, first present wins.
    fn date_paths(self) -> &'static [&'static [&'static str]] {
        match self {
            Self::Patient => &[&["birthDate"]],
            Self::Observation | Self::DiagnosticReport => {
                &[&["effectiveDateTime"], &["effectivePeriod", "start"], &["issued"]]
            }
            Self::Condition | Self::AllergyIntolerance => &[&["onsetDateTime"], &["recordedDate"]],
            Self::MedicationRequest => &[&["authoredOn"]],
            Self::Immunization => &[&["occurrenceDateTime"]],
            Self::Procedure => &[&["performedDateTime"], &["performedPeriod", "start"]],
            Self::Encounter => &[&["period", "start"]],
            Self::DocumentReference => &[&["date"]],
        }
    }

    /// The CodeableConcept that is the resource's `code` search parameter.
    fn code_path(self) -> Option<&'static str> {
        match self {
            Self::Observation
            | Self::Condition
            | Self::Procedure
            | Self::DiagnosticReport
            | Self::AllergyIntolerance => Some("code"),
            Self::MedicationRequest => Some("medicationCodeableConcept"),
            Self::Immunization => Some("vaccineCode"),
            Self::DocumentReference | Self::Encounter => Some("type"),
            Self::Patient => None,
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ResourceType {
    type Err = FhirError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| FhirError::UnsupportedType(s.to_owned()))
    }
}

/// A FHIR logical id: 1–64 of `A-Z a-z 0-9 - .`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceId(String);

impl ResourceId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ResourceId {
    type Err = FhirError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(FhirError::InvalidId(s.chars().take(80).collect()))
        }
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a resource or a search was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FhirError {
    /// Not a JSON object.
    #[error("a resource must be a JSON object")]
    NotAnObject,
    /// No `resourceType`, or one MedRec does not store.
    #[error("resource type '{0}' is not supported")]
    UnsupportedType(String),
    /// An id that is not a FHIR id.
    #[error("'{0}' is not a valid FHIR id (1-64 letters, digits, '-' or '.')")]
    InvalidId(String),
    /// The resource has no id where one is needed.
    #[error("the resource has no id")]
    MissingId,
    /// A date that is not a FHIR date or dateTime.
    #[error("'{0}' is not a FHIR date or dateTime")]
    InvalidDate(String),
    /// A search parameter MedRec does not support, or a bad value.
    #[error("search parameter {param}: {reason}")]
    InvalidSearch {
        /// The parameter.
        param: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// A coding as the token index holds it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token {
    /// The search parameter: `category`, `code`, one of the type's other token
    /// parameters (`identifier`: the identifier's system and value; `gender`,
    /// `status`, `clinical-status`: a code with no system, or the concept's codings),
    /// or `name` (no system; the code is a [`normalize_string`]d part of a name).
    pub param: &'static str,
    /// The code system (empty when the coding has none).
    pub system: String,
    /// The code.
    pub code: String,
}

/// What the store indexes of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// The patient whose compartment holds it (a Patient's own id).
    pub patient: Option<String>,
    /// The resource's `date` as a half-open range of unix milliseconds.
    pub date: Option<(i64, i64)>,
    /// Codings of `category`, `code`, the other token parameters and the name parts.
    pub tokens: Vec<Token>,
}

/// A checked resource: a supported type, its id and its index.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    /// Its type.
    pub resource_type: ResourceType,
    /// Its id, when it has one.
    pub id: Option<ResourceId>,
    /// What the store indexes.
    pub index: Index,
    /// The JSON itself.
    pub json: Value,
}

impl Resource {
    /// Checks `json` and extracts its index.
    pub fn parse(json: Value) -> Result<Self, FhirError> {
        let obj = json.as_object().ok_or(FhirError::NotAnObject)?;
        let ty = obj.get("resourceType").and_then(Value::as_str).unwrap_or("");
        let resource_type: ResourceType = ty.parse()?;
        let id = match obj.get("id") {
            None => None,
            Some(Value::String(s)) => Some(s.parse()?),
            Some(other) => return Err(FhirError::InvalidId(other.to_string())),
        };
        let index = index(resource_type, id.as_ref(), &json)?;
        Ok(Self { resource_type, id, index, json })
    }

    /// The same resource under `id` (a store assigning an id on create): a Patient
    /// becomes its own compartment's patient.
    #[must_use]
    pub fn with_id(mut self, id: ResourceId) -> Self {
        if self.resource_type == ResourceType::Patient {
            self.index.patient = Some(id.as_str().to_owned());
        }
        if let Some(obj) = self.json.as_object_mut() {
            obj.insert("id".into(), Value::String(id.to_string()));
        }
        self.id = Some(id);
        self
    }
}

fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, k| v.get(k))
}

fn index(ty: ResourceType, id: Option<&ResourceId>, json: &Value) -> Result<Index, FhirError> {
    let patient = match ty {
        ResourceType::Patient => id.map(|i| i.as_str().to_owned()),
        _ => ["subject", "patient"]
            .iter()
            .filter_map(|k| json.get(k)?.get("reference")?.as_str())
            .find_map(|r| r.strip_prefix("Patient/").map(str::to_owned)),
    };
    let date = ty
        .date_paths()
        .iter()
        .find_map(|p| at(json, p).and_then(Value::as_str))
        .map(date_range)
        .transpose()?;
    let mut tokens = Vec::new();
    let mut codings = |param: &'static str, concept: &Value| {
        for c in concept.get("coding").and_then(Value::as_array).into_iter().flatten() {
            if let Some(code) = c.get("code").and_then(Value::as_str) {
                let system = c.get("system").and_then(Value::as_str).unwrap_or("").to_owned();
                tokens.push(Token { param, system, code: code.to_owned() });
            }
        }
    };
    match json.get("category") {
        Some(Value::Array(list)) => list.iter().for_each(|c| codings("category", c)),
        Some(c @ Value::Object(_)) => codings("category", c),
        _ => {}
    }
    if let Some(concept) = ty.code_path().and_then(|p| json.get(p)) {
        match concept {
            Value::Array(list) => list.iter().for_each(|c| codings("code", c)),
            c => codings("code", c),
        }
    }
    for identifier in json.get("identifier").and_then(Value::as_array).into_iter().flatten() {
        if let Some(value) = identifier.get("value").and_then(Value::as_str) {
            let system = identifier.get("system").and_then(Value::as_str).unwrap_or("");
            tokens.push(Token {
                param: "identifier",
                system: system.to_owned(),
                code: value.to_owned(),
            });
        }
    }
    for (param, element) in [("gender", "gender"), ("status", "status")] {
        if crate::search::token_parameters(ty).contains(&param)
            && let Some(code) = json.get(element).and_then(Value::as_str)
        {
            tokens.push(Token { param, system: String::new(), code: code.to_owned() });
        }
    }
    if crate::search::token_parameters(ty).contains(&"clinical-status")
        && let Some(concept) = json.get("clinicalStatus")
    {
        for c in concept.get("coding").and_then(Value::as_array).into_iter().flatten() {
            if let Some(code) = c.get("code").and_then(Value::as_str) {
                let system = c.get("system").and_then(Value::as_str).unwrap_or("").to_owned();
                tokens.push(Token { param: "clinical-status", system, code: code.to_owned() });
            }
        }
    }
    if ty == ResourceType::Patient {
        for name in json.get("name").and_then(Value::as_array).into_iter().flatten() {
            for part in name_parts(name) {
                let code = normalize_string(part);
                if !code.is_empty() {
                    tokens.push(Token { param: "name", system: String::new(), code });
                }
            }
        }
    }
    tokens.sort();
    tokens.dedup();
    Ok(Index { patient, date, tokens })
}

/// The parts of a HumanName a `name` search matches the start of: every word of
/// `text`, `family`, each `given`, `prefix` and `suffix`.
fn name_parts(name: &Value) -> Vec<&str> {
    let mut parts: Vec<&str> = Vec::new();
    for key in ["text", "family"] {
        if let Some(s) = name.get(key).and_then(Value::as_str) {
            parts.push(s);
            parts.extend(s.split_whitespace());
        }
    }
    for key in ["given", "prefix", "suffix"] {
        for s in name.get(key).and_then(Value::as_array).into_iter().flatten() {
            parts.extend(s.as_str());
        }
    }
    parts
}

/// Text as FHIR string search compares it: without accents, in lower case, spaces
/// trimmed and runs of them made one.
pub fn normalize_string(s: &str) -> String {
    use unicode_normalization::{UnicodeNormalization, char::is_combining_mark};
    let folded: String = s.nfkd().filter(|c| !is_combining_mark(*c)).collect::<String>();
    folded.to_lowercase().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The half-open range of unix milliseconds a FHIR date or dateTime covers: a year, a
/// month, a day, or an instant (to the second) all map to their span.
pub fn date_range(s: &str) -> Result<(i64, i64), FhirError> {
    let bad = || FhirError::InvalidDate(s.chars().take(40).collect());
    let num = |r: std::ops::Range<usize>| -> Result<i64, FhirError> {
        s.get(r)
            .filter(|t| t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse().ok())
            .ok_or_else(bad)
    };
    let year = num(0..4)?;
    if s.len() == 4 {
        return Ok((days_ms(year, 1, 1), days_ms(year + 1, 1, 1)));
    }
    if s.as_bytes().get(4) != Some(&b'-') {
        return Err(bad());
    }
    let month = num(5..7)?;
    if !(1..=12).contains(&month) {
        return Err(bad());
    }
    if s.len() == 7 {
        let (ny, nm) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
        return Ok((days_ms(year, month, 1), days_ms(ny, nm, 1)));
    }
    if s.as_bytes().get(7) != Some(&b'-') {
        return Err(bad());
    }
    let day = num(8..10)?;
    if !(1..=days_in_month(year, month)).contains(&day) {
        return Err(bad());
    }
    let start = days_ms(year, month, day);
    if s.len() == 10 {
        return Ok((start, start + 86_400_000));
    }
    // dateTime: YYYY-MM-DDThh:mm:ss[.fff](Z|±hh:mm)
    if s.as_bytes().get(10) != Some(&b'T') || s.len() < 20 {
        return Err(bad());
    }
    let (h, m, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if h > 23 || m > 59 || sec > 60 || s.as_bytes()[13] != b':' || s.as_bytes()[16] != b':' {
        return Err(bad());
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        rest = &frac[digits..];
    }
    let offset_min = match rest {
        "Z" => 0,
        _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
            let t = &rest[1..];
            let (oh, om): (i64, i64) = (
                t.get(0..2).and_then(|x| x.parse().ok()).ok_or_else(bad)?,
                t.get(3..5).and_then(|x| x.parse().ok()).ok_or_else(bad)?,
            );
            let sign = if rest.starts_with('-') { -1 } else { 1 };
            sign * (oh * 60 + om)
        }
        _ => return Err(bad()),
    };
    let at = start + ((h * 60 + m - offset_min) * 60 + sec) * 1000;
    Ok((at, at + 1000))
}

const fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

const fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Unix milliseconds at the start of a civil date (proleptic Gregorian, UTC).
fn days_ms(y: i64, m: i64, d: i64) -> i64 {
    // Days from civil, after H. Hinnant's algorithm.
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) * 86_400_000
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dates_cover_their_span() {
        assert_eq!(date_range("1970").unwrap(), (0, 365 * 86_400_000));
        assert_eq!(date_range("1970-02").unwrap(), (31 * 86_400_000, 59 * 86_400_000));
        assert_eq!(
            date_range("2024-02-29").unwrap().1 - date_range("2024-02-29").unwrap().0,
            86_400_000
        );
        assert_eq!(date_range("1970-01-01T00:00:01Z").unwrap(), (1000, 2000));
        assert_eq!(date_range("1970-01-01T01:00:00+01:00").unwrap(), (0, 1000));
        assert_eq!(date_range("1970-01-01T00:00:00.250-00:30").unwrap(), (1_800_000, 1_801_000));
        for bad in [
            "",
            "197",
            "1970-13",
            "1970-02-30",
            "2023-02-29",
            "1970-01-01T25:00:00Z",
            "1970-01-01T00:00:00",
            "x970",
            "1970-01-01T00:00:00+1",
        ] {
            assert!(date_range(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn resources_are_checked_and_indexed() {
        let obs = Resource::parse(json!({
            "resourceType": "Observation",
            "id": "lab-1",
            "subject": {"reference": "Patient/p1"},
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "laboratory"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "2498-4"}]},
            "effectiveDateTime": "2025-03-01T08:00:00Z"
        }))
        .unwrap();
        assert_eq!(obs.resource_type, ResourceType::Observation);
        assert_eq!(obs.index.patient.as_deref(), Some("p1"));
        assert_eq!(obs.index.tokens.len(), 2);
        assert!(
            obs.index
                .tokens
                .iter()
                .any(|t| t.param == "code" && t.system == "http://loinc.org" && t.code == "2498-4")
        );
        assert!(obs.index.date.is_some());
        let patient = Resource::parse(
            json!({"resourceType": "Patient", "id": "p1", "birthDate": "1980-05-17"}),
        )
        .unwrap();
        assert_eq!(patient.index.patient.as_deref(), Some("p1"));
        assert_eq!(Resource::parse(json!([])).unwrap_err(), FhirError::NotAnObject);
        assert!(matches!(
            Resource::parse(json!({"resourceType": "Basic"})),
            Err(FhirError::UnsupportedType(_))
        ));
        assert!(matches!(
            Resource::parse(json!({"resourceType": "Patient", "id": "a b"})),
            Err(FhirError::InvalidId(_))
        ));
        assert!(matches!(
            Resource::parse(json!({"resourceType": "Patient", "id": "x", "birthDate": "1980-13"})),
            Err(FhirError::InvalidDate(_))
        ));
        assert!("x'; DROP TABLE resources; --".parse::<ResourceId>().is_err());
    }

    #[test]
    fn names_identifiers_and_statuses_are_indexed() {
        let patient = Resource::parse(json!({
            "resourceType": "Patient", "id": "p1", "gender": "female",
            "identifier": [{"system": "urn:mrn", "value": "123"}, {"value": "no-system"}],
            "name": [{"family": "Müller-Lüdenscheidt", "given": ["Anna", "Maria"], "text": "Dr Anna  Müller"}]
        }))
        .unwrap();
        let has = |param: &str, system: &str, code: &str| {
            patient
                .index
                .tokens
                .iter()
                .any(|t| t.param == param && t.system == system && t.code == code)
        };
        assert!(has("identifier", "urn:mrn", "123") && has("identifier", "", "no-system"));
        assert!(has("gender", "", "female"));
        for part in ["muller-ludenscheidt", "anna", "maria", "dr anna muller", "dr", "muller"] {
            assert!(has("name", "", part), "{part}: {:?}", patient.index.tokens);
        }
        let obs = Resource::parse(
            json!({"resourceType": "Observation", "id": "o", "status": "final", "gender": "x"}),
        )
        .unwrap();
        assert_eq!(
            obs.index.tokens,
            vec![Token { param: "status", system: String::new(), code: "final".into() }]
        );
        assert_eq!(normalize_string("  ÉLODIE   d'Arc "), "elodie d'arc");
    }
}
