//! A provider's existing relational database, served read-only as FHIR R4.
//!
//! A provider that already keeps records in its own tables (not MedRec's) describes,
//! in a JSON mapping, which table and columns make which FHIR resource.
//! [`LegacySqliteStore`] (a SQLite file) or [`LegacyMysqlStore`] (MySQL or MariaDB, the
//! original MedRec demo database's kind) then answers [`RecordStore`] reads and
//! searches straight from those tables: every search condition, the paging and the
//! order are pushed into SQL with bound parameters, and each row becomes one resource
//! that [`Resource::parse`] accepts, so pointers and data hashes work exactly as with
//! the native backends. The provider's tables are never written: the SQLite file is
//! opened read-only, MySQL sessions are `READ ONLY`, and `create`, `update` and
//! `update_all` fail with [`StoreError::ReadOnly`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use medrec_store::{RecordStore, fhir::ResourceType, legacy::{LegacyConfig, LegacySqliteStore}};
//!
//! let config = LegacyConfig::load("medrec-v1.json")?;
//! let store = LegacySqliteStore::open("provider.sqlite", config)?;
//! let patient = store.read(ResourceType::Patient, &"1001".parse()?).await?;
//! # Ok(())
//! # }
//! ```
//!
//! `crates/store/fixtures/legacy/` holds a full example: a schema shaped like MedRec
//! 2.0's demo database (`patient_info`, `encounter_info`, `immunization_info`,
//! `medication_info`, `result_info` + `resultdetail_info`), a synthetic seed, and
//! `medrec-v1.json`, which maps it to Patient, Encounter, Immunization,
//! MedicationRequest and laboratory Observations.
//!
//! # The mapping
//!
//! ```json
//! {
//!   "resources": {
//!     "Observation": {
//!       "table": "resultdetail_info",
//!       "joins": [
//!         {"table": "result_info", "on": [["ResultID", "result_info.ResultID"]]}
//!       ],
//!       "id": "ResultDetailID",
//!       "patient": "result_info.PatientID",
//!       "date": "result_info.ResultDateTime",
//!       "last_updated": "result_info.LastUpdated",
//!       "code": {"system": "http://loinc.org", "column": "LOINC", "display_column": "TestName"},
//!       "category": {
//!         "system": "http://terminology.hl7.org/CodeSystem/observation-category",
//!         "code": "laboratory"
//!       },
//!       "value": {"column": "Value", "unit_column": "Units", "unit_system": "http://unitsofmeasure.org"},
//!       "template": {"status": "final", "referenceRange": [{"text": "{ReferenceRange}"}]}
//!     }
//!   }
//! }
//! ```
//!
//! `resources` maps a FHIR type (one of [`ResourceType::ALL`]) to how its rows are
//! found and shaped:
//!
//! - `table`: the table (or view) with one row per resource; `joins` (optional): more
//!   tables, each joined (inner join) on pairs of equal columns. A table appears once.
//! - Columns are written `Column` (of `table`) or `table.Column`. Every table and
//!   column name must be a plain identifier (ASCII letters, digits and `_`, not
//!   starting with a digit, at most 64 characters) and must exist in the database:
//!   the mapping is checked when it is loaded and again against the database schema
//!   when the store opens. Names only ever come from the mapping; values never become
//!   SQL text.
//! - `id` (required): the column whose value, as text, is the resource's id (it must
//!   be a valid FHIR id and unique among the rows).
//! - `patient`: the column holding the patient's id (the `Patient` mapping's `id`),
//!   written as `subject` (or `patient` for Immunization and AllergyIntolerance). A
//!   Patient is its own compartment and takes no `patient`.
//! - `date`: the column holding the resource's date, written where FHIR search finds
//!   it (`birthDate`, `effectiveDateTime`, `period.start`, `authoredOn`,
//!   `occurrenceDateTime`, …). It must hold `YYYY-MM-DD` or
//!   `YYYY-MM-DD HH:MM[:SS[.fff]]` (ISO text in SQLite, a `DATE` or `DATETIME` in
//!   MySQL), taken as UTC, fractions of a second dropped; a Patient's birth date keeps
//!   the day only. A row whose date is in another format is a
//!   [`StoreError::Database`] naming the column.
//! - `last_updated`: a column with the row's last change (as `date`), becoming
//!   `meta.lastUpdated` and what `_lastUpdated` searches and sorts on. Without it,
//!   every resource of the type was last updated at the Unix epoch
//!   (`1970-01-01T00:00:00.000Z`, `Stored::last_updated == 0`), and so is a row whose
//!   `last_updated` is `NULL`. The version is always
//!   1: a legacy database keeps no history, so `read_version` knows version 1 only.
//! - `code`: `{"system": "...", "column": "..."}` (or a fixed `"code"`), with an
//!   optional `"display"` or `"display_column"`: the coding of the type's code element
//!   (`code`, `medicationCodeableConcept`, `vaccineCode`, Encounter `type`, …).
//! - `category`: as `code`, usually with a fixed `"code"`: the coding of `category`
//!   (Observation, Condition, MedicationRequest, Procedure, DiagnosticReport,
//!   DocumentReference).
//! - `value` (Observation only): `{"column": "...", "unit_column": "...", "unit": "...",
//!   "unit_system": "..."}`. A numeric value becomes `valueQuantity` (with the unit,
//!   and the unit as `code` when `unit_system` is given), any other text
//!   `valueString`.
//! - `template`: the rest of the resource, a JSON object in which strings may hold
//!   `{Column}` or `{table.Column}` placeholders, with an optional conversion
//!   `{Column:type}`: `string` (the default), `integer`, `decimal`, `boolean`,
//!   `date`, `datetime` or `lowercase`. A string that is exactly one placeholder
//!   takes the converted JSON value; placeholders inside longer text are inserted as
//!   text (`{{` and `}}` are literal braces). A `NULL` (or empty) column removes the
//!   string that holds it, and an object or array holding placeholders none of which
//!   rendered is removed with its literal fields (an extension whose value is `NULL`
//!   loses its `url` too); parts without placeholders stay as written. The
//!   template may not set what the mapping above owns (`resourceType`, `id`, `meta`,
//!   the subject, date, code, category and value elements).
//!
//! Searches use the same [`SearchQuery`] as the native backends and return the same
//! [`Page`]: `_id` and `patient` compare the id columns as text, byte for byte;
//! `code` and `category` compare the code column with the mapping's fixed system;
//! `date` and `_lastUpdated` compare the columns' instants; `_sort` orders by them
//! (resources without a date last) with `_id` as the final key. Each produced
//! resource is checked with [`Resource::parse`], and its date as FHIR must equal its
//! date as SQL sees it, so a search can never select differently from what the
//! resources say.
//!
//! Errors name types, ids, tables and columns, never the values in them.

use crate::{
    Page, RecordStore, Result, StoreError, Stored,
    fhir::{FhirError, Resource, ResourceId, ResourceType, date_range},
    search::{DateBound, SearchQuery, SortField, TokenMatch},
    stamp,
};
use rusqlite::{Connection, OpenFlags, params_from_iter, types::Value as SqlValue};
use serde::Deserialize;
use serde_json::{Map, Value};
use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

/// How long a read waits for a lock held by the provider's own writers.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a legacy mapping or database was refused.
#[derive(Debug, thiserror::Error)]
pub enum LegacyError {
    /// The mapping file cannot be read.
    #[error("cannot read the legacy mapping {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The mapping is not JSON of the expected shape (a missing or unknown field, a
    /// wrong type); serde's message says where.
    #[error("the legacy mapping is malformed: {0}")]
    Json(#[from] serde_json::Error),
    /// A table or column name that is not a plain SQL identifier.
    #[error(
        "the legacy mapping for {resource}: '{name}' is not a plain SQL identifier \
         (letters, digits and '_', not starting with a digit, at most 64 characters)"
    )]
    NotAnIdentifier {
        /// The resource type being mapped.
        resource: String,
        /// The offending name (cut to 80 characters).
        name: String,
    },
    /// Something else wrong with one resource type's mapping.
    #[error("the legacy mapping for {resource}: {reason}")]
    Mapping {
        /// The resource type being mapped.
        resource: String,
        /// What is wrong.
        reason: String,
    },
    /// The mapping names a table the database does not have.
    #[error(
        "the legacy mapping for {resource} names table '{table}', which the database does not have"
    )]
    UnknownTable {
        /// The resource type being mapped.
        resource: String,
        /// The table.
        table: String,
    },
    /// The mapping names a column its table does not have.
    #[error(
        "the legacy mapping for {resource} names column '{column}' of table '{table}', \
         which that table does not have"
    )]
    UnknownColumn {
        /// The resource type being mapped.
        resource: String,
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// The database cannot be opened or its schema read.
    #[error("cannot open the legacy database: {0}")]
    Database(String),
}

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
    mappings: BTreeMap<ResourceType, Mapping>,
}

/// A column of a table, both plain identifiers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Col {
    table: String,
    column: String,
}

impl fmt::Display for Col {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.table, self.column)
    }
}

#[derive(Debug, Clone)]
struct Join {
    table: String,
    on: Vec<(Col, Col)>,
}

/// Where a coding's code or display comes from.
#[derive(Debug, Clone)]
enum Source {
    Fixed(String),
    /// An index into [`Mapping::columns`].
    Column(usize),
}

#[derive(Debug, Clone)]
struct Coding {
    system: String,
    code: Source,
    display: Option<Source>,
}

#[derive(Debug, Clone)]
struct Quantity {
    value: usize,
    unit: Option<Source>,
    unit_system: Option<String>,
}

/// How a placeholder's text becomes JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Conversion {
    String,
    Integer,
    Decimal,
    Boolean,
    Date,
    DateTime,
    Lowercase,
}

impl Conversion {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => Self::String,
            "integer" => Self::Integer,
            "decimal" => Self::Decimal,
            "boolean" => Self::Boolean,
            "date" => Self::Date,
            "datetime" => Self::DateTime,
            "lowercase" => Self::Lowercase,
            _ => return None,
        })
    }

    const fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Decimal => "decimal",
            Self::Boolean => "boolean",
            Self::Date => "date",
            Self::DateTime => "datetime",
            Self::Lowercase => "lowercase",
        }
    }
}

#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Column(usize),
}

/// A compiled template.
#[derive(Debug, Clone)]
enum Node {
    Literal(Value),
    Object(Vec<(String, Self)>),
    Array(Vec<Self>),
    /// Exactly one placeholder: a typed value.
    Typed(usize, Conversion),
    /// Text with placeholders.
    Text(Vec<Piece>),
}

/// Whether a template node holds a placeholder.
fn is_dynamic(node: &Node) -> bool {
    match node {
        Node::Literal(_) => false,
        Node::Typed(..) | Node::Text(_) => true,
        Node::Array(items) => items.iter().any(is_dynamic),
        Node::Object(fields) => fields.iter().any(|(_, f)| is_dynamic(f)),
    }
}

/// One resource type's checked mapping.
#[derive(Debug, Clone)]
struct Mapping {
    resource_type: ResourceType,
    table: String,
    joins: Vec<Join>,
    id: Col,
    patient: Option<Col>,
    date: Option<Col>,
    last_updated: Option<Col>,
    code: Option<Coding>,
    category: Option<Coding>,
    value: Option<Quantity>,
    template: Node,
    /// Every column read as text, in `SELECT` order after the fixed ones.
    columns: Vec<Col>,
}

/// Where FHIR search finds each type's elements (as in [`crate::fhir`]).
struct Shape {
    /// The element holding the date.
    date_path: &'static [&'static str],
    /// The date keeps the day only.
    date_only: bool,
    /// The element holding the code, and whether it is a list.
    code: Option<(&'static str, bool)>,
    /// The element referring to the patient.
    patient: Option<&'static str>,
    /// Whether `category` is a CodeableConcept list (`Some(true)`), one concept
    /// (`Some(false)`), or not mapped.
    category: Option<bool>,
}

const fn shape(ty: ResourceType) -> Shape {
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
struct Compiler {
    resource: String,
    table: String,
    tables: Vec<String>,
    columns: Vec<Col>,
}

impl Compiler {
    fn bad(&self, reason: impl Into<String>) -> LegacyError {
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
    fn slot(&mut self, reference: &str) -> Result<usize, LegacyError> {
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

    fn node(&mut self, value: &Value) -> Result<Node, LegacyError> {
        Ok(match value {
            Value::Object(obj) => Node::Object(
                obj.iter()
                    .map(|(k, v)| Ok((k.clone(), self.node(v)?)))
                    .collect::<Result<_, LegacyError>>()?,
            ),
            Value::Array(list) => {
                Node::Array(list.iter().map(|v| self.node(v)).collect::<Result<_, _>>()?)
            }
            Value::String(s) => self.text(s)?,
            other => Node::Literal(other.clone()),
        })
    }

    /// A template string: literal text, one typed placeholder, or text with
    /// placeholders.
    fn text(&mut self, s: &str) -> Result<Node, LegacyError> {
        let mut pieces: Vec<Piece> = Vec::new();
        let mut literal = String::new();
        let mut chars = s.chars().peekable();
        let mut typed = None;
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut inner = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        inner.push(c);
                    }
                    if !closed {
                        return Err(self.bad(format!("template string '{s}' has an unclosed '{{'")));
                    }
                    let (reference, conversion) = match inner.split_once(':') {
                        Some((r, t)) => (
                            r,
                            Conversion::parse(t).ok_or_else(|| {
                                self.bad(format!(
                                    "'{t}' in '{{{inner}}}' is not a conversion (string, integer, \
                                     decimal, boolean, date, datetime, lowercase)"
                                ))
                            })?,
                        ),
                        None => (inner.as_str(), Conversion::String),
                    };
                    let slot = self.slot(reference)?;
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Column(slot));
                    typed = Some((slot, conversion));
                }
                '}' => {
                    return Err(self.bad(format!(
                        "template string '{s}' has a lone '}}' (write '}}}}' for a brace)"
                    )));
                }
                c => literal.push(c),
            }
        }
        if pieces.is_empty() {
            return Ok(Node::Literal(Value::String(literal)));
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        match (pieces.as_slice(), typed) {
            ([Piece::Column(_)], Some((slot, conversion))) => Ok(Node::Typed(slot, conversion)),
            _ => Ok(Node::Text(pieces)),
        }
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

// ---------------------------------------------------------------------------------
// SQL.

/// A bound parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Arg {
    Text(String),
    Int(i64),
}

/// The SQL that differs between the databases a legacy schema may live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    Sqlite,
    Mysql,
}

impl Dialect {
    /// A quoted identifier (identifiers are checked to be plain; quoting keeps
    /// reserved words usable).
    fn quote(self, name: &str) -> String {
        match self {
            Self::Sqlite => format!("\"{name}\""),
            Self::Mysql => format!("`{name}`"),
        }
    }

    fn col(self, col: &Col) -> String {
        format!("{}.{}", self.quote(&col.table), self.quote(&col.column))
    }

    /// The column as text, to read.
    fn select_text(self, col: &Col) -> String {
        match self {
            Self::Sqlite => format!("CAST({} AS TEXT)", self.col(col)),
            Self::Mysql => format!("CAST({} AS CHAR)", self.col(col)),
        }
    }

    /// The column as text, compared and ordered byte for byte.
    fn text(self, col: &Col) -> String {
        match self {
            Self::Sqlite => format!("CAST({} AS TEXT) COLLATE BINARY", self.col(col)),
            Self::Mysql => format!("CAST({} AS BINARY)", self.col(col)),
        }
    }

    /// A code column as [`Dialect::text`], `NULL` when empty.
    fn code(self, col: &Col) -> String {
        match self {
            Self::Sqlite => format!("NULLIF(CAST({} AS TEXT), '') COLLATE BINARY", self.col(col)),
            Self::Mysql => format!("NULLIF(CAST({} AS BINARY), '')", self.col(col)),
        }
    }

    /// The column's instant in unix milliseconds (`NULL` when it is not a date).
    fn epoch(self, col: &Col, date_only: bool) -> String {
        let c = self.col(col);
        match (self, date_only) {
            (Self::Sqlite, true) => format!("(unixepoch(date({c})) * 1000)"),
            (Self::Sqlite, false) => format!("(unixepoch({c}) * 1000)"),
            (Self::Mysql, true) => {
                format!("(TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', DATE({c})) * 1000)")
            }
            (Self::Mysql, false) => {
                format!("(TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', {c}) * 1000)")
            }
        }
    }
}

impl Mapping {
    fn tables_sql(&self, d: Dialect) -> String {
        let mut sql = format!("FROM {}", d.quote(&self.table));
        for join in &self.joins {
            sql.push_str(&format!(" JOIN {} ON ", d.quote(&join.table)));
            let on: Vec<String> =
                join.on.iter().map(|(a, b)| format!("{} = {}", d.col(a), d.col(b))).collect();
            sql.push_str(&on.join(" AND "));
        }
        sql
    }

    fn date_sql(&self, d: Dialect) -> Option<String> {
        let date_only = shape(self.resource_type).date_only;
        self.date.as_ref().map(|c| d.epoch(c, date_only))
    }

    /// The last update in unix milliseconds; the epoch when the column is `NULL` (or
    /// not a date), as the resource then says.
    fn last_updated_sql(&self, d: Dialect) -> Option<String> {
        self.last_updated.as_ref().map(|c| format!("COALESCE({}, 0)", d.epoch(c, false)))
    }

    fn select_sql(&self, d: Dialect) -> String {
        let mut cols = vec![
            d.select_text(&self.id),
            self.date_sql(d).unwrap_or_else(|| "NULL".into()),
            self.last_updated_sql(d).unwrap_or_else(|| "NULL".into()),
        ];
        cols.extend(self.columns.iter().map(|c| d.select_text(c)));
        cols.join(", ")
    }

    /// The `WHERE …` of a search and its parameters, in order.
    fn filter(&self, d: Dialect, query: &SearchQuery) -> (String, Vec<Arg>) {
        let mut sql = String::from("WHERE 1 = 1");
        let mut args = Vec::new();
        let id = d.text(&self.id);
        if !query.ids.is_empty() {
            let marks = vec!["?"; query.ids.len()].join(", ");
            sql.push_str(&format!(" AND {id} IN ({marks})"));
            args.extend(query.ids.iter().map(|i| Arg::Text(i.to_string())));
        }
        if let Some(patient) = &query.patient {
            let column = if self.resource_type == ResourceType::Patient {
                Some(id)
            } else {
                self.patient.as_ref().map(|c| d.text(c))
            };
            match column {
                Some(column) => {
                    sql.push_str(&format!(" AND {column} = ?"));
                    args.push(Arg::Text(patient.to_string()));
                }
                None => sql.push_str(" AND 1 = 0"),
            }
        }
        for (coding, groups) in [(&self.category, &query.category), (&self.code, &query.code)] {
            for group in groups {
                let mut alternatives = Vec::new();
                for token in group {
                    if let Some((fragment, arg)) =
                        coding.as_ref().and_then(|c| token_sql(d, c, token, &self.columns))
                    {
                        alternatives.push(fragment);
                        args.extend(arg);
                    }
                }
                if alternatives.is_empty() {
                    sql.push_str(" AND 1 = 0");
                } else {
                    sql.push_str(&format!(" AND ({})", alternatives.join(" OR ")));
                }
            }
        }
        let mut bounds = |expr: Option<String>, list: &[DateBound], constant: Option<i64>| {
            for bound in list {
                match (&expr, constant) {
                    (Some(expr), _) => {
                        let (lower, upper) = bound.bounds();
                        if let Some(lower) = lower {
                            sql.push_str(&format!(" AND {expr} >= ?"));
                            args.push(Arg::Int(lower));
                        }
                        if let Some(upper) = upper {
                            sql.push_str(&format!(" AND {expr} < ?"));
                            args.push(Arg::Int(upper));
                        }
                    }
                    (None, Some(at)) if bound.matches(at) => {}
                    (None, _) => sql.push_str(" AND 1 = 0"),
                }
            }
        };
        bounds(self.date_sql(d), &query.date, None);
        bounds(self.last_updated_sql(d), &query.last_updated, Some(0));
        (sql, args)
    }

    /// The `ORDER BY` of a search: its keys, then `_id` ascending; resources without
    /// a date sort last either way.
    fn order(&self, d: Dialect, query: &SearchQuery) -> String {
        let id = d.text(&self.id);
        let mut keys = Vec::new();
        for key in &query.sort {
            let dir = if key.descending { "DESC" } else { "ASC" };
            match key.field {
                SortField::Id => keys.push(format!("{id} {dir}")),
                SortField::LastUpdated => {
                    if let Some(expr) = self.last_updated_sql(d) {
                        keys.push(format!("{expr} IS NULL, {expr} {dir}"));
                    }
                }
                SortField::Date => {
                    if let Some(expr) = self.date_sql(d) {
                        keys.push(format!("{expr} IS NULL, {expr} {dir}"));
                    }
                }
            }
        }
        keys.push(format!("{id} ASC"));
        format!("ORDER BY {}", keys.join(", "))
    }
}

/// The condition for one token against a mapped coding, and its parameter; `None`
/// when it can never match.
fn token_sql(
    d: Dialect,
    coding: &Coding,
    token: &TokenMatch,
    columns: &[Col],
) -> Option<(String, Option<Arg>)> {
    if token.system.as_ref().is_some_and(|s| *s != coding.system) {
        return None;
    }
    match (&coding.code, &token.code) {
        (Source::Fixed(fixed), Some(code)) => (fixed == code).then(|| ("1 = 1".into(), None)),
        (Source::Fixed(_), None) => Some(("1 = 1".into(), None)),
        (Source::Column(i), Some(code)) => {
            Some((format!("{} = ?", d.code(&columns[*i])), Some(Arg::Text(code.clone()))))
        }
        (Source::Column(i), None) => Some((format!("{} IS NOT NULL", d.code(&columns[*i])), None)),
    }
}

// ---------------------------------------------------------------------------------
// Rows to resources.

/// A row as read: id, date and last update as SQL sees them, then the text columns.
#[derive(Debug)]
struct RawRow {
    id: Option<String>,
    date_ms: Option<i64>,
    last_updated_ms: Option<i64>,
    cells: Vec<Option<String>>,
}

/// A problem with one row: the resource it was to become and what went wrong.
fn row_error(ty: ResourceType, id: &str, what: impl fmt::Display) -> StoreError {
    StoreError::Database(format!("legacy database: {ty}/{id}: {what}"))
}

/// The FHIR date or dateTime of a column's text: `YYYY-MM-DD` or
/// `YYYY-MM-DD[ T]HH:MM[:SS[.fff]][Z]`, taken as UTC.
fn fhir_date(text: &str, date_only: bool) -> Option<String> {
    let text = text.trim();
    let day = text.get(..10)?;
    date_range(day).ok()?;
    if day.len() != 10 {
        return None;
    }
    let rest = &text[10..];
    if rest.is_empty() || date_only {
        return Some(day.to_owned());
    }
    let rest = rest.strip_prefix([' ', 'T'])?;
    let rest = rest.strip_suffix('Z').unwrap_or(rest);
    let (hm, seconds) = match rest.len() {
        5 => (rest, "00"),
        _ if rest.len() >= 8 && rest.as_bytes()[5] == b':' => {
            let frac = &rest[8..];
            let frac_ok = frac.is_empty()
                || frac
                    .strip_prefix('.')
                    .is_some_and(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
            if !frac_ok {
                return None;
            }
            (&rest[..5], &rest[6..8])
        }
        _ => return None,
    };
    let out = format!("{day}T{hm}:{seconds}Z");
    date_range(&out).ok()?;
    Some(out)
}

fn is_true(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "t" | "yes" | "y" => Some(true),
        "0" | "false" | "f" | "no" | "n" => Some(false),
        _ => None,
    }
}

fn number(s: &str) -> Option<serde_json::Number> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) {
        return None;
    }
    serde_json::from_str(s).ok()
}

struct Renderer<'a> {
    mapping: &'a Mapping,
    id: &'a str,
    cells: &'a [Option<String>],
}

impl Renderer<'_> {
    /// A cell's text; `None` when `NULL` or empty.
    fn cell(&self, slot: usize) -> Option<&str> {
        self.cells.get(slot)?.as_deref().filter(|s| !s.is_empty())
    }

    fn source(&self, source: &Source) -> Option<String> {
        match source {
            Source::Fixed(s) => Some(s.clone()),
            Source::Column(i) => self.cell(*i).map(str::to_owned),
        }
    }

    fn not_a(&self, slot: usize, what: &str) -> StoreError {
        row_error(
            self.mapping.resource_type,
            self.id,
            format!("column {} does not hold a {what}", self.mapping.columns[slot]),
        )
    }

    fn convert(&self, slot: usize, conversion: Conversion) -> Result<Option<Value>> {
        let Some(text) = self.cell(slot) else { return Ok(None) };
        let bad = || self.not_a(slot, conversion.name());
        Ok(Some(match conversion {
            Conversion::String => Value::String(text.to_owned()),
            Conversion::Lowercase => Value::String(text.to_lowercase()),
            Conversion::Integer => Value::from(text.trim().parse::<i64>().map_err(|_| bad())?),
            Conversion::Decimal => Value::Number(number(text).ok_or_else(bad)?),
            Conversion::Boolean => Value::Bool(is_true(text).ok_or_else(bad)?),
            Conversion::Date => Value::String(fhir_date(text, true).ok_or_else(bad)?),
            Conversion::DateTime => Value::String(fhir_date(text, false).ok_or_else(bad)?),
        }))
    }

    /// The template with the row's values. A string whose placeholders are `NULL`
    /// renders to `None`, and so does an object or array with placeholders of which
    /// none rendered (its literal fields, such as an extension's `url`, go with it).
    fn render(&self, node: &Node) -> Result<Option<Value>> {
        Ok(match node {
            Node::Literal(v) => Some(v.clone()),
            Node::Typed(slot, conversion) => self.convert(*slot, *conversion)?,
            Node::Text(pieces) => {
                let mut out = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Column(slot) => match self.cell(*slot) {
                            Some(text) => out.push_str(text),
                            None => return Ok(None),
                        },
                    }
                }
                Some(Value::String(out))
            }
            Node::Array(items) => {
                let (mut list, mut data) = (Vec::new(), false);
                for item in items {
                    if let Some(v) = self.render(item)? {
                        data |= is_dynamic(item);
                        list.push(v);
                    }
                }
                (data || !is_dynamic(node)).then_some(Value::Array(list))
            }
            Node::Object(fields) => {
                let (mut obj, mut data) = (Map::new(), false);
                for (key, field) in fields {
                    if let Some(v) = self.render(field)? {
                        data |= is_dynamic(field);
                        obj.insert(key.clone(), v);
                    }
                }
                (data || !is_dynamic(node)).then_some(Value::Object(obj))
            }
        })
    }

    fn concept(&self, coding: &Coding) -> Option<Value> {
        let code = self.source(&coding.code)?;
        let mut c = Map::new();
        c.insert("system".into(), Value::String(coding.system.clone()));
        c.insert("code".into(), Value::String(code));
        if let Some(display) = coding.display.as_ref().and_then(|d| self.source(d)) {
            c.insert("display".into(), Value::String(display));
        }
        Some(serde_json::json!({ "coding": [Value::Object(c)] }))
    }
}

fn set_path(obj: &mut Map<String, Value>, path: &[&str], value: Value) {
    match path {
        [] => {}
        [last] => {
            obj.insert((*last).to_owned(), value);
        }
        [first, rest @ ..] => {
            let inner = obj.entry((*first).to_owned()).or_insert_with(|| Value::Object(Map::new()));
            if !inner.is_object() {
                *inner = Value::Object(Map::new());
            }
            if let Some(inner) = inner.as_object_mut() {
                set_path(inner, rest, value);
            }
        }
    }
}

/// What kind of FHIR problem, without the values involved.
const fn fhir_problem(e: &FhirError) -> &'static str {
    match e {
        FhirError::NotAnObject => "not a JSON object",
        FhirError::UnsupportedType(_) => "an unsupported type",
        FhirError::InvalidId(_) => "an invalid id",
        FhirError::MissingId => "no id",
        FhirError::InvalidDate(_) => "an invalid date",
        FhirError::InvalidSearch { .. } => "an invalid search",
    }
}

impl Mapping {
    /// The resource a row makes.
    fn build(&self, row: RawRow) -> Result<Stored> {
        let ty = self.resource_type;
        let shape = shape(ty);
        let id_text = row.id.ok_or_else(|| {
            StoreError::Database(format!(
                "legacy database: a {ty} row has no id (column {} is NULL)",
                self.id
            ))
        })?;
        let id: ResourceId = id_text.parse().map_err(|_| {
            StoreError::Database(format!(
                "legacy database: a {ty} row's id (column {}) is not a valid FHIR id",
                self.id
            ))
        })?;
        let r = Renderer { mapping: self, id: id.as_str(), cells: &row.cells };
        let mut obj = Map::new();
        obj.insert("resourceType".into(), Value::String(ty.as_str().to_owned()));
        obj.insert("id".into(), Value::String(id.to_string()));
        // The top level stays even when all its placeholders are NULL.
        if let Node::Object(fields) = &self.template {
            for (key, field) in fields {
                if let Some(v) = r.render(field)? {
                    obj.insert(key.clone(), v);
                }
            }
        }
        if let (Some(col), Some(key)) = (&self.patient, shape.patient) {
            let slot = self.columns.iter().position(|c| c == col);
            if let Some(patient) = slot.and_then(|s| r.cell(s)) {
                let patient: ResourceId = patient.parse().map_err(|_| {
                    row_error(ty, id.as_str(), format!("column {col} is not a valid patient id"))
                })?;
                obj.insert(
                    key.into(),
                    serde_json::json!({ "reference": format!("Patient/{patient}") }),
                );
            }
        }
        if let Some(col) = &self.date {
            let slot = self.columns.iter().position(|c| c == col);
            if let Some(text) = slot.and_then(|s| r.cell(s)) {
                let date = fhir_date(text, shape.date_only).ok_or_else(|| {
                    row_error(ty, id.as_str(), format!("column {col} does not hold a date"))
                })?;
                set_path(&mut obj, shape.date_path, Value::String(date));
            }
        }
        if let (Some(coding), Some((key, list))) = (&self.code, shape.code)
            && let Some(concept) = r.concept(coding)
        {
            obj.insert(key.into(), if list { Value::Array(vec![concept]) } else { concept });
        }
        if let (Some(coding), Some(list)) = (&self.category, shape.category)
            && let Some(concept) = r.concept(coding)
        {
            let v = if list { Value::Array(vec![concept]) } else { concept };
            obj.insert("category".into(), v);
        }
        if let Some(q) = &self.value
            && let Some(text) = r.cell(q.value)
        {
            match number(text) {
                Some(n) => {
                    let mut quantity = Map::new();
                    quantity.insert("value".into(), Value::Number(n));
                    if let Some(unit) = q.unit.as_ref().and_then(|u| r.source(u)) {
                        quantity.insert("unit".into(), Value::String(unit.clone()));
                        if let Some(system) = &q.unit_system {
                            quantity.insert("system".into(), Value::String(system.clone()));
                            quantity.insert("code".into(), Value::String(unit));
                        }
                    }
                    obj.insert("valueQuantity".into(), Value::Object(quantity));
                }
                None => {
                    obj.insert("valueString".into(), Value::String(text.to_owned()));
                }
            }
        }
        let resource = Resource::parse(Value::Object(obj)).map_err(|e| {
            row_error(ty, id.as_str(), format!("the mapping made {}", fhir_problem(&e)))
        })?;
        if resource.index.date.map(|(start, _)| start) != row.date_ms {
            return Err(row_error(
                ty,
                id.as_str(),
                "its date reads differently as FHIR and in SQL; check the date column's format",
            ));
        }
        let last_updated = row.last_updated_ms.unwrap_or(0);
        let json = stamp(&resource, &id, 1, last_updated);
        Ok(Stored { resource_type: ty, id, version: 1, last_updated, json })
    }
}

// ---------------------------------------------------------------------------------
// The SQLite store.

/// A provider's own SQLite database, served read-only as FHIR through a
/// [`LegacyConfig`].
///
/// Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct LegacySqliteStore {
    path: PathBuf,
    config: Arc<LegacyConfig>,
    conn: Arc<Mutex<Connection>>,
}

impl fmt::Debug for LegacySqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LegacySqliteStore")
            .field("path", &self.path)
            .field("types", &self.config.mappings.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn sqlite_error(e: &rusqlite::Error) -> StoreError {
    StoreError::Database(format!("legacy SQLite database: {e}"))
}

impl LegacySqliteStore {
    /// Opens the SQLite database at `path` read-only and checks that every table and
    /// column `config` names exists. This does blocking file I/O; call it before
    /// serving or from a blocking task.
    ///
    /// # Errors
    ///
    /// [`LegacyError::Database`] when the file cannot be opened as a SQLite database;
    /// [`LegacyError::UnknownTable`] or [`LegacyError::UnknownColumn`] when the mapping
    /// does not fit its schema.
    pub fn open(path: impl AsRef<Path>, config: LegacyConfig) -> Result<Self, LegacyError> {
        let path = path.as_ref();
        let db = |e: rusqlite::Error| LegacyError::Database(format!("{}: {e}", path.display()));
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(db)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
        conn.pragma_update(None, "query_only", true).map_err(db)?;
        for mapping in config.mappings.values() {
            let mut schema = BTreeMap::new();
            for table in mapping.tables() {
                schema.insert(table.clone(), sqlite_columns(&conn, table).map_err(db)?);
            }
            mapping.check_schema(&schema)?;
        }
        Ok(Self {
            path: path.to_owned(),
            config: Arc::new(config),
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the connection, on tokio's blocking pool.
    async fn with_conn<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &LegacyConfig) -> Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let config = Arc::clone(&self.config);
        let task = tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&conn, &config)
        });
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(StoreError::Database(format!("legacy SQLite task did not finish: {e}"))),
        }
    }
}

impl Mapping {
    /// The tables it reads.
    fn tables(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.table).chain(self.joins.iter().map(|j| &j.table))
    }

    /// Checks the mapping against the database's schema: `schema` holds the columns of
    /// each of [`Mapping::tables`] (none when there is no such table).
    fn check_schema(&self, schema: &BTreeMap<String, Vec<String>>) -> Result<(), LegacyError> {
        let resource = self.resource_type.to_string();
        let columns_of = |table: &str| schema.get(table).filter(|cols| !cols.is_empty());
        if let Some(table) = self.tables().find(|t| columns_of(t).is_none()) {
            return Err(LegacyError::UnknownTable { resource, table: table.clone() });
        }
        let mut used: Vec<&Col> = vec![&self.id];
        used.extend(&self.patient);
        used.extend(&self.date);
        used.extend(&self.last_updated);
        used.extend(&self.columns);
        for join in &self.joins {
            for (a, b) in &join.on {
                used.extend([a, b]);
            }
        }
        for col in used {
            let table = self.tables().find(|t| t.eq_ignore_ascii_case(&col.table));
            let known = table
                .and_then(|t| columns_of(t))
                .is_some_and(|cols| cols.iter().any(|c| c.eq_ignore_ascii_case(&col.column)));
            if !known {
                return Err(LegacyError::UnknownColumn {
                    resource,
                    table: col.table.clone(),
                    column: col.column.clone(),
                });
            }
        }
        Ok(())
    }
}

/// The columns of `table` in a SQLite database (none when there is no such table).
fn sqlite_columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare_cached("SELECT name FROM pragma_table_info(?1)")?;
    st.query_map([table], |row| row.get(0))?.collect()
}

fn sql_args(args: &[Arg]) -> Vec<SqlValue> {
    args.iter()
        .map(|a| match a {
            Arg::Text(s) => SqlValue::Text(s.clone()),
            Arg::Int(i) => SqlValue::Integer(*i),
        })
        .collect()
}

fn read_row(row: &rusqlite::Row<'_>, columns: usize) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        id: row.get(0)?,
        date_ms: row.get(1)?,
        last_updated_ms: row.get(2)?,
        cells: (0..columns).map(|i| row.get(3 + i)).collect::<rusqlite::Result<_>>()?,
    })
}

fn sqlite_search(conn: &Connection, mapping: &Mapping, query: &SearchQuery) -> Result<Page> {
    let from = mapping.tables_sql(Dialect::Sqlite);
    let (filter, args) = mapping.filter(Dialect::Sqlite, query);
    let args = sql_args(&args);
    // One read transaction: the total and the page come from the same snapshot.
    conn.execute_batch("BEGIN").map_err(|e| sqlite_error(&e))?;
    let result = (|| {
        let total: i64 = conn
            .query_row(
                &format!("SELECT COUNT(*) {from} {filter}"),
                params_from_iter(&args),
                |row| row.get(0),
            )
            .map_err(|e| sqlite_error(&e))?;
        let mut entries = Vec::new();
        if query.count > 0 {
            let sql = format!(
                "SELECT {} {from} {filter} {} LIMIT ? OFFSET ?",
                mapping.select_sql(Dialect::Sqlite),
                mapping.order(Dialect::Sqlite, query)
            );
            let paging =
                [SqlValue::Integer(query.count.into()), SqlValue::Integer(query.offset.into())];
            let mut st = conn.prepare_cached(&sql).map_err(|e| sqlite_error(&e))?;
            let n = mapping.columns.len();
            let rows = st
                .query_map(params_from_iter(args.iter().chain(&paging)), |row| read_row(row, n))
                .map_err(|e| sqlite_error(&e))?;
            for row in rows {
                entries.push(mapping.build(row.map_err(|e| sqlite_error(&e))?)?);
            }
        }
        Ok(Page { total: u64::try_from(total).unwrap_or(0), entries })
    })();
    // A read transaction has nothing to keep; ending it cannot lose anything.
    let _ = conn.execute_batch("COMMIT");
    result
}

#[async_trait::async_trait]
impl RecordStore for LegacySqliteStore {
    async fn create(&self, _resource: Resource) -> Result<Stored> {
        Err(StoreError::ReadOnly)
    }

    async fn update(&self, _resource: Resource) -> Result<Stored> {
        Err(StoreError::ReadOnly)
    }

    async fn update_all(&self, _resources: Vec<Resource>) -> Result<Vec<Stored>> {
        Err(StoreError::ReadOnly)
    }

    async fn read(&self, resource_type: ResourceType, id: &ResourceId) -> Result<Option<Stored>> {
        let mut query = SearchQuery::all(resource_type);
        query.ids = vec![id.clone()];
        query.count = 1;
        Ok(self.search(&query).await?.entries.pop())
    }

    async fn read_version(
        &self,
        resource_type: ResourceType,
        id: &ResourceId,
        version: u64,
    ) -> Result<Option<Stored>> {
        if version == 1 { self.read(resource_type, id).await } else { Ok(None) }
    }

    async fn search(&self, query: &SearchQuery) -> Result<Page> {
        if !self.config.mappings.contains_key(&query.resource_type) {
            return Ok(Page { total: 0, entries: Vec::new() });
        }
        let query = query.clone();
        self.with_conn(move |conn, config| {
            let mapping = &config.mappings[&query.resource_type];
            sqlite_search(conn, mapping, &query)
        })
        .await
    }
}

// ---------------------------------------------------------------------------------
// The MySQL/MariaDB store.

/// How long `connect` waits for the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a read waits for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// A provider's own MySQL or MariaDB database (the original MedRec demo database's
/// kind), served read-only as FHIR through a [`LegacyConfig`].
///
/// Its connections are read-only sessions (`SET SESSION TRANSACTION READ ONLY`), and
/// the store never issues a write. Cloning is cheap and shares the pool.
#[derive(Clone)]
pub struct LegacyMysqlStore {
    config: Arc<LegacyConfig>,
    pool: sqlx::MySqlPool,
}

impl fmt::Debug for LegacyMysqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LegacyMysqlStore")
            .field("types", &self.config.mappings.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn mysql_error(e: &sqlx::Error) -> StoreError {
    StoreError::Database(format!("legacy MySQL database: {e}"))
}

impl LegacyMysqlStore {
    /// Connects to the database at `url` (`mysql://user:password@host:port/database`)
    /// with a pool of up to `max_connections`, and checks that every table and column
    /// `config` names exists in that database.
    ///
    /// # Errors
    ///
    /// [`LegacyError::Database`] when the URL is invalid (the message names its scheme
    /// only, never the password) or the server cannot be reached;
    /// [`LegacyError::UnknownTable`] or [`LegacyError::UnknownColumn`] when the mapping
    /// does not fit the schema.
    pub async fn connect(
        url: &str,
        config: LegacyConfig,
        max_connections: u32,
    ) -> Result<Self, LegacyError> {
        use sqlx::{ConnectOptions, Connection as _, Executor as _};
        let options: sqlx::mysql::MySqlConnectOptions = url.parse().map_err(|e| {
            let scheme = url.split_once("://").map_or("", |(s, _)| s);
            LegacyError::Database(format!("invalid MySQL URL (scheme '{scheme}'): {e}"))
        })?;
        let failed = |e: sqlx::Error| LegacyError::Database(format!("MySQL: {e}"));
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
            .await
            .map_err(|_| {
                LegacyError::Database(format!(
                    "MySQL: no answer within {}s",
                    CONNECT_TIMEOUT.as_secs()
                ))
            })?
            .map_err(failed)?;
        let checked = async {
            for mapping in config.mappings.values() {
                let mut schema = BTreeMap::new();
                for table in mapping.tables() {
                    let columns: Vec<String> = sqlx::query_scalar(
                        "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS \
                         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                    )
                    .bind(table.as_str())
                    .fetch_all(&mut conn)
                    .await
                    .map_err(failed)?;
                    schema.insert(table.clone(), columns);
                }
                mapping.check_schema(&schema)?;
            }
            Ok::<_, LegacyError>(())
        }
        .await;
        let _ = conn.close().await;
        checked?;
        let pool = sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("SET SESSION TRANSACTION READ ONLY").await.map(|_| ())
                })
            })
            .connect_lazy_with(options);
        Ok(Self { config: Arc::new(config), pool })
    }
}

async fn mysql_search(
    pool: &sqlx::MySqlPool,
    mapping: &Mapping,
    query: &SearchQuery,
) -> Result<Page> {
    use sqlx::{AssertSqlSafe, Row as _};
    let d = Dialect::Mysql;
    let from = mapping.tables_sql(d);
    let (filter, args) = mapping.filter(d, query);
    // One transaction: the total and the page come from the same snapshot.
    let mut tx = pool.begin().await.map_err(|e| mysql_error(&e))?;
    let mut count = sqlx::query_scalar(AssertSqlSafe(format!("SELECT COUNT(*) {from} {filter}")));
    for arg in &args {
        count = match arg {
            Arg::Text(s) => count.bind(s.as_str()),
            Arg::Int(i) => count.bind(*i),
        };
    }
    let total: i64 = count.fetch_one(&mut *tx).await.map_err(|e| mysql_error(&e))?;
    let mut entries = Vec::new();
    if query.count > 0 {
        let sql = format!(
            "SELECT {} {from} {filter} {} LIMIT ? OFFSET ?",
            mapping.select_sql(d),
            mapping.order(d, query)
        );
        let mut select = sqlx::query(AssertSqlSafe(sql));
        for arg in &args {
            select = match arg {
                Arg::Text(s) => select.bind(s.as_str()),
                Arg::Int(i) => select.bind(*i),
            };
        }
        let rows = select
            .bind(i64::from(query.count))
            .bind(i64::from(query.offset))
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| mysql_error(&e))?;
        for row in rows {
            let read = || -> Result<RawRow, sqlx::Error> {
                Ok(RawRow {
                    id: row.try_get(0)?,
                    date_ms: row.try_get(1)?,
                    last_updated_ms: row.try_get(2)?,
                    cells: (0..mapping.columns.len())
                        .map(|i| row.try_get(3 + i))
                        .collect::<Result<_, _>>()?,
                })
            };
            entries.push(mapping.build(read().map_err(|e| mysql_error(&e))?)?);
        }
    }
    // A read-only transaction has nothing to keep.
    let _ = tx.rollback().await;
    Ok(Page { total: u64::try_from(total).unwrap_or(0), entries })
}

#[async_trait::async_trait]
impl RecordStore for LegacyMysqlStore {
    async fn create(&self, _resource: Resource) -> Result<Stored> {
        Err(StoreError::ReadOnly)
    }

    async fn update(&self, _resource: Resource) -> Result<Stored> {
        Err(StoreError::ReadOnly)
    }

    async fn update_all(&self, _resources: Vec<Resource>) -> Result<Vec<Stored>> {
        Err(StoreError::ReadOnly)
    }

    async fn read(&self, resource_type: ResourceType, id: &ResourceId) -> Result<Option<Stored>> {
        let mut query = SearchQuery::all(resource_type);
        query.ids = vec![id.clone()];
        query.count = 1;
        Ok(self.search(&query).await?.entries.pop())
    }

    async fn read_version(
        &self,
        resource_type: ResourceType,
        id: &ResourceId,
        version: u64,
    ) -> Result<Option<Stored>> {
        if version == 1 { self.read(resource_type, id).await } else { Ok(None) }
    }

    async fn search(&self, query: &SearchQuery) -> Result<Page> {
        match self.config.mappings.get(&query.resource_type) {
            Some(mapping) => mysql_search(&self.pool, mapping, query).await,
            None => Ok(Page { total: 0, entries: Vec::new() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_read_as_utc_fhir_dates() {
        assert_eq!(fhir_date("2024-03-01", false).as_deref(), Some("2024-03-01"));
        assert_eq!(
            fhir_date("2024-03-01 08:30:00", false).as_deref(),
            Some("2024-03-01T08:30:00Z")
        );
        assert_eq!(fhir_date("2024-03-01T08:30", false).as_deref(), Some("2024-03-01T08:30:00Z"));
        assert_eq!(
            fhir_date("2024-03-01 08:30:00.250", false).as_deref(),
            Some("2024-03-01T08:30:00Z")
        );
        assert_eq!(fhir_date("2024-03-01 08:30:00", true).as_deref(), Some("2024-03-01"));
        for bad in
            ["2024-02-30", "03/01/2024", "2024-03-01 8:30", "2024-03-01 08:30:00+02:00", "20240301"]
        {
            assert_eq!(fhir_date(bad, false), None, "{bad}");
        }
    }

    #[test]
    fn search_sql_binds_every_value() {
        let config = LegacyConfig::from_json(
            r#"{"resources": {"Observation": {"table": "t", "id": "id", "patient": "pid",
                "date": "d", "code": {"system": "http://loinc.org", "column": "c"}}}}"#,
        )
        .unwrap();
        let mapping = &config.mappings[&ResourceType::Observation];
        let query = SearchQuery::parse(
            ResourceType::Observation,
            [
                ("_id", "a,b"),
                ("patient", "p1"),
                ("code", "x' OR 1=1 --,http://loinc.org|"),
                ("date", "ge2025"),
            ],
        )
        .unwrap();
        let (sql, args) = mapping.filter(Dialect::Sqlite, &query);
        assert!(!sql.contains("OR 1=1") && !sql.contains("loinc") && !sql.contains("p1"), "{sql}");
        assert_eq!(sql.matches('?').count(), args.len());
        assert_eq!(args.len(), 2 + 1 + 1 + 1);
    }
}
