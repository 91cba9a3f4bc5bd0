//! A provider's existing relational database, served read-only as FHIR R4.
//!
//! A provider that already keeps records in its own tables (not MedRec's) describes,
//! in a JSON mapping, which table and columns make which FHIR resource.
//! [`LegacySqliteStore`] (a SQLite file), [`LegacyMysqlStore`] (MySQL or MariaDB, the
//! original MedRec demo database's kind) or [`LegacyPostgresStore`] (PostgreSQL) then
//! answers reads and searches (each is a
//! [`RecordReader`]) straight from those tables: every search condition, the paging
//! and the order are pushed into SQL with bound parameters, and each row becomes one
//! resource that [`Resource::parse`] accepts, so pointers and data hashes work exactly
//! as with the native backends. The provider's tables are never written: the SQLite
//! file is opened read-only, MySQL and PostgreSQL sessions are read-only, and the stores have no
//! writes at all: they implement no [`RecordWriter`](crate::RecordWriter), so nothing
//! that writes can be handed one.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use medrec_store::{RecordReader, fhir::ResourceType, legacy::{LegacyConfig, LegacySqliteStore}};
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
//!   MySQL, a `DATE` or `TIMESTAMP` in PostgreSQL), taken as UTC, fractions of a second dropped; a Patient's birth date keeps
//!   the day only. A row whose date is in another format is a
//!   [`StoreError::Database`] naming the column.
//! - `last_updated`: a column with the row's last change (as `date`), becoming
//!   `meta.lastUpdated` and what `_lastUpdated` searches and sorts on. Without it,
//!   every resource of the type was last updated at the Unix epoch
//!   (`1970-01-01T00:00:00.000Z`, `Stored::last_updated == 0`), and so is a row whose
//!   `last_updated` is `NULL`. The version is always
//!   1: a legacy database keeps no history, so `read_version` knows version 1 only
//!   and a resource's history (`read_versions`) is its current version alone.
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
//! [`Page`]: `_id` and `patient` compare the id columns as text, byte for byte; `code`
//! and `category` compare the code column with the mapping's fixed system; `date` and
//! `_lastUpdated` compare the columns' instants; `_sort` orders by them (resources
//! without a date last) with `_id` as the final key. Each produced resource is checked
//! with [`Resource::parse`], and its date as FHIR must equal its date as SQL sees it,
//! so a search can never select differently from what the resources say.
//!
//! Errors name types, ids, tables and columns, never the values in them.
//!
//! The code is split by concern: the mapping and its checks (`mapping`), the resource
//! template (`template`), the check against the database's schema (`schema`), search
//! to SQL through the builder the native backends share (`query`), rows to resources
//! (`row`), and one module per database (`sqlite`, `mysql`, `postgres`).

mod mapping;
mod mysql;
mod postgres;
mod query;
mod row;
mod schema;
mod sqlite;
mod template;

pub use mapping::LegacyConfig;
pub use mysql::LegacyMysqlStore;
pub use postgres::LegacyPostgresStore;
pub use sqlite::LegacySqliteStore;

#[cfg(doc)]
use crate::{Page, RecordReader, StoreError, fhir::Resource};
use crate::{
    fhir::{ResourceId, ResourceType},
    search::SearchQuery,
};
use std::path::PathBuf;

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

/// The search that reads one resource by id (a legacy database keeps one version).
fn by_id(resource_type: ResourceType, id: &ResourceId) -> SearchQuery {
    let mut query = SearchQuery::all(resource_type);
    query.ids = vec![id.clone()];
    query.count = 1;
    query
}
