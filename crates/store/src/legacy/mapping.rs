//! The declarative mapping of a legacy schema (the JSON a provider writes) and its
//! checks: names are plain identifiers, columns belong to mapped tables, the template
//! leaves alone what the mapping owns. The check against the real database is in
//! [`super::schema`].

use super::{LegacyError, template::Node};
use crate::fhir::ResourceType;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::{collections::BTreeMap, fmt, path::Path};

// ---------------------------------------------------------------------------------
// The mapping as written.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    resources: BTreeMap<String, RawMapping>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMapping {
    table: String,
    #[serde(default)]
    joins: Vec<RawJoin>,
    id: String,
    #[serde(default)]
    patient: Option<String>,
    #[serde(default)]
    date: Option<String>,
    #[serde(default)]
    last_updated: Option<String>,
    #[serde(default)]
    code: Option<RawCoding>,
    #[serde(default)]
    category: Option<RawCoding>,
    #[serde(default)]
    value: Option<RawValue>,
    #[serde(default)]
    template: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJoin {
    table: String,
    on: Vec<[String; 2]>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCoding {
    system: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    column: Option<String>,
    #[serde(default)]
    display: Option<String>,
    #[serde(default)]
    display_column: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawValue {
    column: String,
    #[serde(default)]
    unit: Option<String>,
    #[serde(default)]
    unit_column: Option<String>,
    #[serde(default)]
    unit_system: Option<String>,
}

// ---------------------------------------------------------------------------------
// The mapping as checked.

/// A checked mapping of a legacy schema to FHIR resources (see the module docs for the
/// format).
#[derive(Debug, Clone)]
pub struct LegacyConfig {
    pub(super) mappings: BTreeMap<ResourceType, Mapping>,
}

/// A column of a table, both plain identifiers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Col {
    pub(super) table: String,
    pub(super) column: String,
}

impl fmt::Display for Col {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.table, self.column)
    }
}

#[derive(Debug, Clone)]
pub(super) struct Join {
    pub(super) table: String,
    pub(super) on: Vec<(Col, Col)>,
}

/// Where a coding's code or display comes from.
#[derive(Debug, Clone)]
pub(super) enum Source {
    Fixed(String),
    /// An index into [`Mapping::columns`].
    Column(usize),
}

#[derive(Debug, Clone)]
pub(super) struct Coding {
    pub(super) system: String,
    pub(super) code: Source,
    pub(super) display: Option<Source>,
}

#[derive(Debug, Clone)]
pub(super) struct Quantity {
    pub(super) value: usize,
    pub(super) unit: Option<Source>,
    pub(super) unit_system: Option<String>,
}

/// One resource type's checked mapping.
#[derive(Debug, Clone)]
pub(super) struct Mapping {
    pub(super) resource_type: ResourceType,
    pub(super) table: String,
    pub(super) joins: Vec<Join>,
    pub(super) id: Col,
    pub(super) patient: Option<Col>,
    pub(super) date: Option<Col>,
    pub(super) last_updated: Option<Col>,
    pub(super) code: Option<Coding>,
    pub(super) category: Option<Coding>,
    pub(super) value: Option<Quantity>,
    pub(super) template: Node,
    /// Every column read as text, in `SELECT` order after the fixed ones.
    pub(super) columns: Vec<Col>,
}

/// Where FHIR search finds each type's elements (as in [`crate::fhir`]).
pub(super) struct Shape {
    /// The element holding the date.
    pub(super) date_path: &'static [&'static str],
    /// The date keeps the day only.
    pub(super) date_only: bool,
    /// The element holding the code, and whether it is a list.
    pub(super) code: Option<(&'static str, bool)>,
    /// The element referring to the patient.
    pub(super) patient: Option<&'static str>,
    /// Whether `category` is a CodeableConcept list (`Some(true)`), one concept
    /// (`Some(false)`), or not mapped.
    pub(super) category: Option<bool>,
}

pub(super) const fn shape(ty: ResourceType) -> Shape {
    use ResourceType as T;
    let date_path: &'static [&'static str] = match ty {
        T::Patient => &["birthDate"],
        T::Observation | T::DiagnosticReport => &["effectiveDateTime"],
        T::Condition | T::AllergyIntolerance => &["onsetDateTime"],
        T::MedicationRequest => &["authoredOn"],
        T::Immunization => &["occurrenceDateTime"],
        T::Procedure => &["performedDateTime"],
        T::Encounter => &["period", "start"],
        T::DocumentReference => &["date"],
    };
    let code = match ty {
        T::Observation
        | T::Condition
        | T::Procedure
        | T::DiagnosticReport
        | T::AllergyIntolerance => Some(("code", false)),
        T::MedicationRequest => Some(("medicationCodeableConcept", false)),
        T::Immunization => Some(("vaccineCode", false)),
        T::DocumentReference => Some(("type", false)),
        T::Encounter => Some(("type", true)),
        T::Patient => None,
    };
    let patient = match ty {
        T::Patient => None,
        T::Immunization | T::AllergyIntolerance => Some("patient"),
        _ => Some("subject"),
    };
    let category = match ty {
        T::Observation
        | T::Condition
        | T::MedicationRequest
        | T::DiagnosticReport
        | T::DocumentReference => Some(true),
        T::Procedure => Some(false),
        _ => None,
    };
    Shape { date_path, date_only: matches!(ty, T::Patient), code, patient, category }
}

/// Whether `s` is a plain SQL identifier.
fn is_identifier(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && s.len() <= 64
}

/// Compiles one mapping.
pub(super) struct Compiler {
    pub(super) resource: String,
    pub(super) table: String,
    pub(super) tables: Vec<String>,
    pub(super) columns: Vec<Col>,
}

impl Compiler {
    pub(super) fn bad(&self, reason: impl Into<String>) -> LegacyError {
        LegacyError::Mapping { resource: self.resource.clone(), reason: reason.into() }
    }

    fn ident(&self, name: &str) -> Result<String, LegacyError> {
        if is_identifier(name) {
            Ok(name.to_owned())
        } else {
            Err(LegacyError::NotAnIdentifier {
                resource: self.resource.clone(),
                name: name.chars().take(80).collect(),
            })
        }
    }

    /// A column reference: `Column` (of the main table) or `table.Column`.
    fn col(&self, reference: &str) -> Result<Col, LegacyError> {
        let (table, column) = match reference.split_once('.') {
            Some((t, c)) => (self.ident(t)?, self.ident(c)?),
            None => (self.table.clone(), self.ident(reference)?),
        };
        if !self.tables.iter().any(|t| t.eq_ignore_ascii_case(&table)) {
            return Err(self.bad(format!(
                "column '{reference}' names table '{table}', which is neither `table` nor joined"
            )));
        }
        Ok(Col { table, column })
    }

    /// A column read as text: its index in the `SELECT`.
    pub(super) fn slot(&mut self, reference: &str) -> Result<usize, LegacyError> {
        let col = self.col(reference)?;
        Ok(match self.columns.iter().position(|c| *c == col) {
            Some(i) => i,
            None => {
                self.columns.push(col);
                self.columns.len() - 1
            }
        })
    }

    fn coding(&mut self, what: &str, raw: &RawCoding) -> Result<Coding, LegacyError> {
        if raw.system.is_empty() {
            return Err(self.bad(format!("{what}.system must not be empty")));
        }
        let code = match (&raw.code, &raw.column) {
            (Some(code), None) if !code.is_empty() => Source::Fixed(code.clone()),
            (None, Some(column)) => Source::Column(self.slot(column)?),
            _ => {
                return Err(self.bad(format!(
                    "{what} needs exactly one of `code` (a fixed, non-empty code) or `column`"
                )));
            }
        };
        let display = match (&raw.display, &raw.display_column) {
            (None, None) => None,
            (Some(d), None) => Some(Source::Fixed(d.clone())),
            (None, Some(column)) => Some(Source::Column(self.slot(column)?)),
            (Some(_), Some(_)) => {
                return Err(
                    self.bad(format!("{what} takes `display` or `display_column`, not both"))
                );
            }
        };
        Ok(Coding { system: raw.system.clone(), code, display })
    }
}

impl LegacyConfig {
    /// Reads and checks the mapping file at `path`.
    ///
    /// # Errors
    ///
    /// [`LegacyError::Io`] when the file cannot be read, otherwise as
    /// [`LegacyConfig::from_json`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, LegacyError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|source| LegacyError::Io { path: path.to_owned(), source })?;
        Self::from_json(&text)
    }

    /// Parses and checks a mapping (JSON text).
    ///
    /// # Errors
    ///
    /// [`LegacyError::Json`] for malformed JSON or a missing, unknown or mistyped
    /// field; [`LegacyError::NotAnIdentifier`] for a table or column name that is not a
    /// plain identifier; [`LegacyError::Mapping`] for an unknown resource type or an
    /// inconsistent mapping.
    pub fn from_json(text: &str) -> Result<Self, LegacyError> {
        let raw: RawConfig = serde_json::from_str(text)?;
        if raw.resources.is_empty() {
            return Err(LegacyError::Mapping {
                resource: "(none)".into(),
                reason: "`resources` maps no resource type".into(),
            });
        }
        let mut mappings = BTreeMap::new();
        for (name, raw) in &raw.resources {
            let resource_type: ResourceType = name.parse().map_err(|_| LegacyError::Mapping {
                resource: name.clone(),
                reason: format!(
                    "not a resource type MedRec serves (one of {})",
                    ResourceType::ALL.map(ResourceType::as_str).join(", ")
                ),
            })?;
            mappings.insert(resource_type, compile(resource_type, raw)?);
        }
        Ok(Self { mappings })
    }

    /// The resource types mapped.
    pub fn resource_types(&self) -> impl Iterator<Item = ResourceType> + '_ {
        self.mappings.keys().copied()
    }
}

fn compile(resource_type: ResourceType, raw: &RawMapping) -> Result<Mapping, LegacyError> {
    let shape = shape(resource_type);
    let mut c = Compiler {
        resource: resource_type.to_string(),
        table: String::new(),
        tables: Vec::new(),
        columns: Vec::new(),
    };
    c.table = c.ident(&raw.table)?;
    c.tables.push(c.table.clone());
    for join in &raw.joins {
        let table = c.ident(&join.table)?;
        if c.tables.iter().any(|t| t.eq_ignore_ascii_case(&table)) {
            return Err(c.bad(format!("table '{table}' appears twice")));
        }
        c.tables.push(table);
    }
    let mut joins = Vec::new();
    for join in &raw.joins {
        if join.on.is_empty() {
            return Err(c.bad(format!("the join of '{}' has no `on` columns", join.table)));
        }
        let on = join
            .on
            .iter()
            .map(|[a, b]| Ok((c.col(a)?, c.col(b)?)))
            .collect::<Result<Vec<_>, LegacyError>>()?;
        joins.push(Join { table: join.table.clone(), on });
    }
    let id = c.col(&raw.id)?;
    let patient = match (&raw.patient, shape.patient) {
        (Some(p), Some(_)) => Some(c.col(p)?),
        (Some(_), None) => {
            return Err(c.bad("a Patient is its own compartment: leave out `patient`"));
        }
        (None, _) => None,
    };
    let date = raw.date.as_deref().map(|d| c.col(d)).transpose()?;
    // Rows carry the patient and date columns as text too.
    for reference in raw.patient.iter().chain(&raw.date) {
        c.slot(reference)?;
    }
    let last_updated = raw.last_updated.as_deref().map(|d| c.col(d)).transpose()?;
    let code = match (&raw.code, shape.code) {
        (Some(code), Some(_)) => Some(c.coding("code", code)?),
        (Some(_), None) => return Err(c.bad("this type has no code element to map")),
        (None, _) => None,
    };
    let category = match (&raw.category, shape.category) {
        (Some(cat), Some(_)) => Some(c.coding("category", cat)?),
        (Some(_), None) => return Err(c.bad("this type has no category concept to map")),
        (None, _) => None,
    };
    let value = match &raw.value {
        Some(_) if resource_type != ResourceType::Observation => {
            return Err(c.bad("only an Observation takes a `value`"));
        }
        Some(v) => {
            let value = c.slot(&v.column)?;
            let unit = match (&v.unit, &v.unit_column) {
                (None, None) => None,
                (Some(u), None) => Some(Source::Fixed(u.clone())),
                (None, Some(column)) => Some(Source::Column(c.slot(column)?)),
                (Some(_), Some(_)) => {
                    return Err(c.bad("value takes `unit` or `unit_column`, not both"));
                }
            };
            Some(Quantity { value, unit, unit_system: v.unit_system.clone() })
        }
        None => None,
    };
    let template = match &raw.template {
        None => Value::Object(Map::new()),
        Some(t @ Value::Object(_)) => t.clone(),
        Some(_) => return Err(c.bad("`template` must be a JSON object")),
    };
    check_template(&c, resource_type, &shape, &template, value.is_some())?;
    let template = c.node(&template)?;
    Ok(Mapping {
        resource_type,
        table: c.table.clone(),
        joins,
        id,
        patient,
        date,
        last_updated,
        code,
        category,
        value,
        template,
        columns: c.columns,
    })
}

/// The template may not set what the mapping owns.
fn check_template(
    c: &Compiler,
    ty: ResourceType,
    shape: &Shape,
    template: &Value,
    has_value: bool,
) -> Result<(), LegacyError> {
    let mut owned = vec!["resourceType", "id", "meta", "category"];
    owned.extend(shape.patient);
    owned.extend(shape.code.map(|(k, _)| k));
    for key in owned {
        if template.get(key).is_some() {
            return Err(c.bad(format!("the template may not set `{key}`; the mapping does")));
        }
    }
    if shape.date_path.iter().try_fold(template, |v, k| v.get(k)).is_some() {
        return Err(c.bad(format!(
            "the template may not set `{}`; the mapping's `date` does",
            shape.date_path.join(".")
        )));
    }
    if ty == ResourceType::Observation
        && has_value
        && template.as_object().is_some_and(|o| o.keys().any(|k| k.starts_with("value")))
    {
        return Err(c.bad("the template may not set value[x]; the mapping's `value` does"));
    }
    Ok(())
}
