//! FHIR search, parsed at the edge into a typed query every backend runs the same way.
//!
//! Supported on every type: `_id`, `patient` / `subject`, `category`, `code` (token
//! forms `code`, `system|code`, `|code`, `system|`), `date` and `_lastUpdated` with the
//! prefixes `eq`, `lt`, `le`, `gt`, `ge`, `_count`, `_offset` and `_sort` (`_id`,
//! `_lastUpdated`, `date`, `-` for descending). Per type ([`parameters`]): `identifier`
//! (token: `system|value`) on every type; on Patient `name` (string: a case- and
//! accent-insensitive prefix of any part of any name), `gender` (token) and `birthdate`
//! (date); `status` (token) on the types that have one, `clinical-status` on Condition
//! and AllergyIntolerance. Commas inside one parameter mean OR; repeated parameters mean
//! AND. Anything else is refused, so that a search can never silently match more than
//! it says (a server that ignores unknown parameters does so before parsing, and says
//! so).
//!
//! Date comparisons use the start instant of the resource's date and the span of the
//! parameter's value (a year, month, day or second): `ge2025` matches from the first
//! millisecond of 2025, `lt2025` before it, `eq2025-03` anything starting in March.

use crate::fhir::{FhirError, ResourceId, ResourceType, date_range, normalize_string};

/// Default page size.
pub const DEFAULT_COUNT: u32 = 50;
/// Largest page size.
pub const MAX_COUNT: u32 = 1000;

/// A token condition: the coding's system and/or code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenMatch {
    /// `None`: any system; `Some("")`: no system.
    pub system: Option<String>,
    /// `None`: any code in the system.
    pub code: Option<String>,
}

/// A comparison of a date with a range `[start, end)` of unix milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DateBound {
    /// Starts in `[start, end)`.
    Eq(i64, i64),
    /// Starts before `start`.
    Lt(i64),
    /// Starts before `end`.
    Le(i64),
    /// Starts at or after `end`.
    Gt(i64),
    /// Starts at or after `start`.
    Ge(i64),
}

impl DateBound {
    /// Whether an instant (unix ms) satisfies it.
    pub const fn matches(self, at: i64) -> bool {
        match self {
            Self::Eq(s, e) => s <= at && at < e,
            Self::Lt(x) | Self::Le(x) => at < x,
            Self::Gt(x) | Self::Ge(x) => at >= x,
        }
    }

    /// `(inclusive lower, exclusive upper)` bounds, for SQL.
    pub const fn bounds(self) -> (Option<i64>, Option<i64>) {
        match self {
            Self::Eq(s, e) => (Some(s), Some(e)),
            Self::Lt(s) => (None, Some(s)),
            Self::Le(e) => (None, Some(e)),
            Self::Gt(e) => (Some(e), None),
            Self::Ge(s) => (Some(s), None),
        }
    }
}

/// What to order by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortField {
    /// The logical id.
    Id,
    /// Last update time.
    LastUpdated,
    /// The resource's date.
    Date,
}

/// One sort key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    /// The field.
    pub field: SortField,
    /// Descending when true.
    pub descending: bool,
}

/// The FHIR type of a search parameter (as a CapabilityStatement names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// `token`.
    Token,
    /// `string`.
    String,
    /// `date`.
    Date,
    /// `reference`.
    Reference,
    /// `number`.
    Number,
    /// `special`.
    Special,
}

impl ParamType {
    /// The FHIR code (`SearchParamType`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Token => "token",
            Self::String => "string",
            Self::Date => "date",
            Self::Reference => "reference",
            Self::Number => "number",
            Self::Special => "special",
        }
    }
}

/// The parameters every type supports.
const COMMON: [(&str, ParamType); 11] = [
    ("_id", ParamType::Token),
    ("_lastUpdated", ParamType::Date),
    ("_count", ParamType::Number),
    ("_offset", ParamType::Number),
    ("_sort", ParamType::Special),
    ("patient", ParamType::Reference),
    ("subject", ParamType::Reference),
    ("category", ParamType::Token),
    ("code", ParamType::Token),
    ("date", ParamType::Date),
    ("identifier", ParamType::Token),
];

/// The token parameters beyond `category` and `code` that `resource_type` supports,
/// each indexed under its own name.
pub const fn token_parameters(resource_type: ResourceType) -> &'static [&'static str] {
    match resource_type {
        ResourceType::Patient => &["identifier", "gender"],
        ResourceType::Condition | ResourceType::AllergyIntolerance => {
            &["identifier", "clinical-status"]
        }
        ResourceType::Observation
        | ResourceType::MedicationRequest
        | ResourceType::Immunization
        | ResourceType::Procedure
        | ResourceType::Encounter
        | ResourceType::DiagnosticReport
        | ResourceType::DocumentReference => &["identifier", "status"],
    }
}

/// Every search parameter `resource_type` supports, with its FHIR type, in a fixed
/// order: exactly the names [`SearchQuery::parse`] accepts for it.
pub fn parameters(resource_type: ResourceType) -> Vec<(&'static str, ParamType)> {
    let mut out = COMMON.to_vec();
    for name in token_parameters(resource_type) {
        if !out.iter().any(|(n, _)| n == name) {
            out.push((name, ParamType::Token));
        }
    }
    if resource_type == ResourceType::Patient {
        out.push(("name", ParamType::String));
        out.push(("birthdate", ParamType::Date));
    }
    out
}

/// Whether `name` is a search parameter of `resource_type` ([`parameters`]).
pub fn is_parameter(resource_type: ResourceType, name: &str) -> bool {
    parameters(resource_type).iter().any(|(n, _)| *n == name)
}

/// A token parameter other than `category` and `code`: some coding indexed under
/// `param` matches one of `any_of`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenCondition {
    /// The parameter (`identifier`, `gender`, `status`, `clinical-status`).
    pub param: &'static str,
    /// The alternatives (OR).
    pub any_of: Vec<TokenMatch>,
}

/// A parsed search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// The type searched.
    pub resource_type: ResourceType,
    /// `_id`: any of these (empty: no condition).
    pub ids: Vec<ResourceId>,
    /// `patient` / `subject`: the compartment's patient id.
    pub patient: Option<ResourceId>,
    /// `category`: each inner list is one parameter (OR inside, AND across).
    pub category: Vec<Vec<TokenMatch>>,
    /// `code`: as `category`.
    pub code: Vec<Vec<TokenMatch>>,
    /// The other token parameters: each must hold.
    pub tokens: Vec<TokenCondition>,
    /// `name`: each inner list is one parameter, normalised prefixes of a name part
    /// (OR inside, AND across).
    pub name: Vec<Vec<String>>,
    /// `date` (and a Patient's `birthdate`): all must hold.
    pub date: Vec<DateBound>,
    /// `_lastUpdated`: all must hold.
    pub last_updated: Vec<DateBound>,
    /// Page size.
    pub count: u32,
    /// Entries to skip.
    pub offset: u32,
    /// Order; `_id` ascending is always the last tie-breaker.
    pub sort: Vec<SortKey>,
}

impl SearchQuery {
    /// Everything of `resource_type`, default paging.
    pub const fn all(resource_type: ResourceType) -> Self {
        Self {
            resource_type,
            ids: Vec::new(),
            patient: None,
            category: Vec::new(),
            code: Vec::new(),
            tokens: Vec::new(),
            name: Vec::new(),
            date: Vec::new(),
            last_updated: Vec::new(),
            count: DEFAULT_COUNT,
            offset: 0,
            sort: Vec::new(),
        }
    }

    /// Parses decoded `name=value` pairs of a FHIR search on `resource_type`.
    pub fn parse<'a>(
        resource_type: ResourceType,
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, FhirError> {
        let mut q = Self::all(resource_type);
        let (mut seen_count, mut seen_offset, mut seen_sort) = (false, false, false);
        for (name, value) in params {
            let bad = |reason: &str| FhirError::InvalidSearch {
                param: name.to_owned(),
                reason: reason.to_owned(),
            };
            if value.is_empty() {
                return Err(bad("has no value"));
            }
            if !is_parameter(resource_type, name) {
                return Err(bad("is not supported"));
            }
            match name {
                "_id" => {
                    let ids = value.split(',').map(str::parse).collect::<Result<Vec<_>, _>>()?;
                    if !q.ids.is_empty() {
                        return Err(bad("may appear once"));
                    }
                    q.ids = ids;
                }
                "patient" | "subject" => {
                    let id = value.strip_prefix("Patient/").unwrap_or(value);
                    if value.contains('/') && !value.starts_with("Patient/") {
                        return Err(bad("must reference a Patient"));
                    }
                    let id: ResourceId = id.parse()?;
                    if q.patient.as_ref().is_some_and(|p| *p != id) {
                        return Err(bad("names two different patients"));
                    }
                    q.patient = Some(id);
                }
                "category" | "code" => {
                    let tokens = value
                        .split(',')
                        .map(|t| token(t).ok_or_else(|| bad("is not a token (system|code)")))
                        .collect::<Result<Vec<_>, _>>()?;
                    if name == "category" { q.category.push(tokens) } else { q.code.push(tokens) }
                }
                "name" => {
                    let prefixes: Vec<String> =
                        value.split(',').map(normalize_string).filter(|p| !p.is_empty()).collect();
                    if prefixes.is_empty() {
                        return Err(bad("has no letters to match"));
                    }
                    q.name.push(prefixes);
                }
                "birthdate" => q.date.push(date_bound(value).map_err(|reason| bad(&reason))?),
                "date" | "_lastUpdated" => {
                    let bound = date_bound(value).map_err(|reason| bad(&reason))?;
                    if name == "date" { q.date.push(bound) } else { q.last_updated.push(bound) }
                }
                "_count" => {
                    let n: u32 = value.parse().map_err(|_| bad("must be a whole number"))?;
                    if seen_count || n > MAX_COUNT {
                        return Err(bad(&format!("must appear once and be at most {MAX_COUNT}")));
                    }
                    seen_count = true;
                    q.count = n;
                }
                "_offset" => {
                    if seen_offset {
                        return Err(bad("may appear once"));
                    }
                    seen_offset = true;
                    q.offset = value.parse().map_err(|_| bad("must be a whole number"))?;
                }
                "_sort" => {
                    if seen_sort {
                        return Err(bad("may appear once"));
                    }
                    seen_sort = true;
                    for key in value.split(',') {
                        let (descending, field) =
                            key.strip_prefix('-').map_or((false, key), |k| (true, k));
                        let field = match field {
                            "_id" => SortField::Id,
                            "_lastUpdated" => SortField::LastUpdated,
                            "date" => SortField::Date,
                            _ => return Err(bad("can sort by _id, _lastUpdated or date")),
                        };
                        q.sort.push(SortKey { field, descending });
                    }
                }
                other => {
                    let Some(param) =
                        token_parameters(resource_type).iter().copied().find(|p| *p == other)
                    else {
                        return Err(bad("is not supported"));
                    };
                    let any_of = value
                        .split(',')
                        .map(|t| token(t).ok_or_else(|| bad("is not a token (system|code)")))
                        .collect::<Result<Vec<_>, _>>()?;
                    q.tokens.push(TokenCondition { param, any_of });
                }
            }
        }
        Ok(q)
    }
}

fn token(t: &str) -> Option<TokenMatch> {
    if t.is_empty() {
        return None;
    }
    Some(match t.split_once('|') {
        None => TokenMatch { system: None, code: Some(t.to_owned()) },
        Some((system, "")) if !system.is_empty() => {
            TokenMatch { system: Some(system.to_owned()), code: None }
        }
        Some((_, "")) => return None,
        Some((system, code)) => {
            TokenMatch { system: Some(system.to_owned()), code: Some(code.to_owned()) }
        }
    })
}

fn date_bound(value: &str) -> Result<DateBound, String> {
    let (prefix, date) = match value.get(..2) {
        Some(p @ ("eq" | "lt" | "le" | "gt" | "ge")) => (p, &value[2..]),
        Some("ne" | "sa" | "eb" | "ap") => {
            return Err("prefixes ne, sa, eb and ap are not supported".into());
        }
        _ => ("eq", value),
    };
    let (start, end) = date_range(date).map_err(|e| e.to_string())?;
    Ok(match prefix {
        "lt" => DateBound::Lt(start),
        "le" => DateBound::Le(end),
        "gt" => DateBound::Gt(end),
        "ge" => DateBound::Ge(start),
        _ => DateBound::Eq(start, end),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &[(&str, &str)]) -> Result<SearchQuery, FhirError> {
        SearchQuery::parse(ResourceType::Observation, q.iter().copied())
    }

    #[test]
    fn every_supported_parameter_parses() {
        let q = parse(&[
            ("_id", "a,b"),
            ("patient", "Patient/p1"),
            ("category", "laboratory"),
            ("code", "http://loinc.org|2498-4,|x,http://loinc.org|"),
            ("date", "ge2025-01-01"),
            ("date", "lt2026"),
            ("_lastUpdated", "gt2025-01-01T00:00:00Z"),
            ("_count", "10"),
            ("_offset", "20"),
            ("_sort", "-date,_id"),
        ])
        .unwrap();
        assert_eq!(q.ids.len(), 2);
        assert_eq!(q.patient.unwrap().as_str(), "p1");
        assert_eq!(
            q.category,
            vec![vec![TokenMatch { system: None, code: Some("laboratory".into()) }]]
        );
        assert_eq!(
            q.code[0][1],
            TokenMatch { system: Some(String::new()), code: Some("x".into()) }
        );
        assert_eq!(
            q.code[0][2],
            TokenMatch { system: Some("http://loinc.org".into()), code: None }
        );
        assert_eq!(q.date.len(), 2);
        assert_eq!((q.count, q.offset), (10, 20));
        assert_eq!(q.sort[0], SortKey { field: SortField::Date, descending: true });
        assert_eq!(parse(&[("subject", "p1")]).unwrap().patient.unwrap().as_str(), "p1");
    }

    #[test]
    fn bad_searches_are_refused_with_the_parameter_named() {
        for (name, value) in [
            ("name", "smith"),
            ("_count", "1001"),
            ("_count", "-1"),
            ("date", "ne2025"),
            ("date", "ge2025-13"),
            ("patient", "Group/1"),
            ("_id", "a b"),
            ("_sort", "name"),
            ("code", "|"),
            ("code", ""),
            ("_offset", "x"),
        ] {
            match parse(&[(name, value)]) {
                Err(FhirError::InvalidSearch { param, .. }) => assert_eq!(param, name),
                Err(FhirError::InvalidId(_) | FhirError::InvalidDate(_)) => {}
                other => panic!("{name}={value}: {other:?}"),
            }
        }
        assert!(parse(&[("patient", "a"), ("subject", "b")]).is_err());
        assert!(parse(&[("_count", "5"), ("_count", "5")]).is_err());
    }

    #[test]
    fn each_type_has_its_own_parameters() {
        let patient =
            |q: &[(&str, &str)]| SearchQuery::parse(ResourceType::Patient, q.iter().copied());
        let q = patient(&[
            ("name", "Ébert,SMITH"),
            ("name", "jo"),
            ("identifier", "urn:mrn|123"),
            ("gender", "female"),
            ("birthdate", "1980"),
        ])
        .unwrap();
        assert_eq!(q.name, vec![vec!["ebert".to_owned(), "smith".to_owned()], vec!["jo".into()]]);
        assert_eq!(q.tokens.len(), 2);
        assert_eq!(q.tokens[0].param, "identifier");
        assert_eq!(
            q.tokens[0].any_of,
            vec![TokenMatch { system: Some("urn:mrn".into()), code: Some("123".into()) }]
        );
        assert_eq!(q.date.len(), 1, "birthdate is a Patient's date");
        assert!(patient(&[("status", "active")]).is_err(), "a Patient has no status parameter");
        assert!(patient(&[("name", " ")]).is_err());
        let obs = parse(&[("status", "final,amended")]).unwrap();
        assert_eq!((obs.tokens[0].param, obs.tokens[0].any_of.len()), ("status", 2));
        for refused in [
            ("name", "x"),
            ("gender", "female"),
            ("birthdate", "1980"),
            ("clinical-status", "active"),
        ] {
            assert!(parse(&[refused]).is_err(), "{refused:?} on an Observation");
        }
        let condition =
            SearchQuery::parse(ResourceType::Condition, [("clinical-status", "active")]);
        assert_eq!(condition.unwrap().tokens[0].param, "clinical-status");
        for ty in ResourceType::ALL {
            for (name, _) in parameters(ty) {
                assert!(is_parameter(ty, name));
            }
        }
        assert!(!is_parameter(ResourceType::Observation, "_include"));
    }

    #[test]
    fn date_prefixes_follow_the_span_of_the_value() {
        let (s, e) = date_range("2025").unwrap();
        let b = |v: &str| date_bound(v).unwrap();
        assert!(b("ge2025").matches(s) && !b("ge2025").matches(s - 1));
        assert!(b("lt2025").matches(s - 1) && !b("lt2025").matches(s));
        assert!(b("le2025").matches(e - 1) && !b("le2025").matches(e));
        assert!(b("gt2025").matches(e) && !b("gt2025").matches(e - 1));
        assert!(b("2025").matches(s) && b("eq2025").matches(e - 1) && !b("2025").matches(e));
    }
}
