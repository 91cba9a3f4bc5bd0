//! Data pointers: a FHIR search scoped to one patient, whose text the gatekeeper keeps
//! and whose commitment and data hash the chain holds.
//!
//! - The query text is a relative FHIR search such as
//!   `Observation?category=laboratory&date=ge2025-01-01`. On chain it appears only as
//!   its commitment, `keccak256(text)` ([`PointerQuery::commitment`]).
//! - Running it for the relationship's patient adds the patient condition itself; a
//!   text that names a patient, or pages or sorts, is refused, so a pointer can never
//!   reach outside its patient's compartment and always means the whole result set.
//! - [`run`] returns every matching resource and the data hash (SHA-256 over the RFC
//!   8785 canonical JSON of the result set sorted by type and id), which a requester
//!   compares with the chain.

use alloy::primitives::{B256, keccak256};
use medrec_store::{
    RecordReader, StoreError,
    fhir::{FhirError, ResourceId, ResourceType},
    hash::{HashError, data_hash},
    search::{MAX_COUNT, SearchQuery},
};
use serde_json::Value;

/// A pointer's query, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointerQuery {
    text: String,
    resource_type: ResourceType,
    params: Vec<(String, String)>,
}

/// Why a pointer could not be defined or run.
#[derive(Debug, thiserror::Error)]
pub enum PointerError {
    /// The query text is not a FHIR search MedRec supports.
    #[error("the pointer query '{text}' is not valid: {reason}")]
    InvalidQuery {
        /// The text (the provider's own configuration, not patient data).
        text: String,
        /// What is wrong.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The result set could not be hashed.
    #[error(transparent)]
    Hash(#[from] HashError),
}

impl PointerQuery {
    /// Parses `Type?name=value&…` (values percent-encoded as in a URL).
    pub fn parse(text: &str) -> Result<Self, PointerError> {
        let invalid = |reason: &str| PointerError::InvalidQuery {
            text: text.to_owned(),
            reason: reason.to_owned(),
        };
        let (ty, query) = text.split_once('?').unwrap_or((text, ""));
        let resource_type: ResourceType =
            ty.parse().map_err(|e: FhirError| invalid(&e.to_string()))?;
        let mut params = Vec::new();
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            if matches!(&*name, "patient" | "subject" | "_count" | "_offset" | "_sort") {
                return Err(invalid(&format!(
                    "'{name}' is not allowed: a pointer is scoped to its relationship's patient and always means the whole result set"
                )));
            }
            params.push((name.into_owned(), value.into_owned()));
        }
        let q = Self { text: text.to_owned(), resource_type, params };
        // Check it against a stand-in patient so that errors surface when the
        // pointer is defined, not when it is run.
        q.search(&"check".parse().expect("valid id"), 0).map_err(|e| invalid(&e.to_string()))?;
        Ok(q)
    }

    /// The query text.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The resource type it searches.
    pub const fn resource_type(&self) -> ResourceType {
        self.resource_type
    }

    /// The commitment the chain holds: `keccak256(text)`.
    pub fn commitment(&self) -> B256 {
        keccak256(self.text.as_bytes())
    }

    /// The search this pointer stands for in `patient`'s compartment.
    pub(crate) fn scoped(&self, patient: &ResourceId) -> SearchQuery {
        self.search(patient, 0).expect("the query was checked when it was parsed")
    }

    /// The search for `patient`'s compartment, page starting at `offset`.
    fn search(&self, patient: &ResourceId, offset: u32) -> Result<SearchQuery, FhirError> {
        let scope = [("patient", patient.as_str())];
        let params = self.params.iter().map(|(n, v)| (n.as_str(), v.as_str())).chain(scope);
        let mut q = SearchQuery::parse(self.resource_type, params)?;
        q.count = MAX_COUNT;
        q.offset = offset;
        Ok(q)
    }
}

/// The result of running a pointer.
#[derive(Debug, Clone, PartialEq)]
pub struct PointerData {
    /// Every matching resource (current versions), sorted by type and id.
    pub resources: Vec<Value>,
    /// SHA-256 over their RFC 8785 canonical JSON: what the chain's pointer holds.
    pub data_hash: B256,
}

/// Runs `pointer` for `patient` (the relationship's FHIR Patient id) over all pages.
pub async fn run(
    store: &dyn RecordReader,
    pointer: &PointerQuery,
    patient: &ResourceId,
) -> Result<PointerData, PointerError> {
    let mut resources = Vec::new();
    loop {
        let offset = u32::try_from(resources.len()).unwrap_or(u32::MAX);
        let query = pointer.search(patient, offset).map_err(StoreError::from)?;
        let page = store.search(&query).await?;
        let got = page.entries.len();
        resources.extend(page.entries.into_iter().map(|s| s.json));
        if got == 0 || resources.len() as u64 >= page.total {
            break;
        }
    }
    resources.sort_by(|a, b| key(a).cmp(&key(b)));
    let data_hash = B256::from(data_hash(&resources)?);
    Ok(PointerData { resources, data_hash })
}

fn key(v: &Value) -> (&str, &str) {
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
    (s("resourceType"), s("id"))
}
