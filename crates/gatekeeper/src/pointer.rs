//! Data pointers: a FHIR search scoped to one patient, whose text the gatekeeper keeps
//! and whose commitment and data hash the chain holds.
//!
//! - The query text is a relative FHIR search such as
//!   `Observation?category=laboratory&date=ge2025-01-01`. On chain it appears only as
//!   its commitment ([`PointerQuery::commitment`]), salted so that nobody can find
//!   which of the usual searches a pointer runs by hashing them:
//!   `keccak256("medrec/pointer-query/v1\n" ‖ salt ‖ text)` with a random 32-byte salt
//!   per pointer that the provider keeps with the text ([`PointerSpec`]). Pointers
//!   published before salting carry `keccak256(text)` and keep working.
//! - Running it for the relationship's patient adds the patient condition itself; a
//!   text that names a patient, or pages or sorts, is refused, so a pointer can never
//!   reach outside its patient's compartment and always means the whole result set.
//! - [`run`] returns every matching resource and the data hash (SHA-256 over the RFC
//!   8785 canonical JSON of the result set sorted by type and id), which a requester
//!   compares with the chain.

use alloy::primitives::{B256, Keccak256, keccak256};
use medrec_store::{
    RecordReader, StoreError,
    fhir::{FhirError, ResourceId, ResourceType},
    hash::{HashError, data_hash},
    search::{MAX_COUNT, SearchQuery},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Domain of a salted pointer commitment.
const COMMITMENT_DOMAIN: &[u8] = b"medrec/pointer-query/v1\n";

/// A pointer's query text with the salt of its commitment: what the provider keeps and
/// tells its gatekeeper. On the wire `{"query": <text>, "salt": "0x…"}`; a bare string
/// is a pointer published before commitments were salted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PointerSpec {
    /// Committed as `keccak256(domain ‖ salt ‖ text)`.
    Salted {
        /// The FHIR search text.
        query: String,
        /// The commitment's salt, random per pointer.
        salt: B256,
    },
    /// Committed as `keccak256(text)` (published before salting).
    Unsalted(String),
}

impl PointerSpec {
    /// `query` with a fresh random salt: how every new pointer is made.
    ///
    /// # Panics
    /// When the operating system has no randomness to give.
    pub fn salted(query: impl Into<String>) -> Self {
        let mut salt = B256::ZERO;
        getrandom::fill(salt.as_mut_slice()).expect("the operating system's random source");
        Self::Salted { query: query.into(), salt }
    }

    /// The query text.
    pub fn text(&self) -> &str {
        match self {
            Self::Salted { query, .. } | Self::Unsalted(query) => query,
        }
    }

    /// The commitment's salt (none for a pointer published before salting).
    pub const fn salt(&self) -> Option<B256> {
        match self {
            Self::Salted { salt, .. } => Some(*salt),
            Self::Unsalted(_) => None,
        }
    }

    /// Parses the text; the result commits with this salt.
    ///
    /// # Errors
    /// When the text is not a search a pointer can run.
    pub fn parse(&self) -> Result<PointerQuery, PointerError> {
        let mut q = PointerQuery::parse(self.text())?;
        q.salt = self.salt();
        Ok(q)
    }
}

/// A pointer's query, parsed, with the salt of its commitment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PointerQuery {
    text: String,
    salt: Option<B256>,
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
    /// Parses `Type?name=value&…` (values percent-encoded as in a URL), without a salt:
    /// to run a search, or to check a pointer published before salting. New pointers
    /// come from [`PointerSpec::salted`].
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
        let q = Self { text: text.to_owned(), salt: None, resource_type, params };
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

    /// The commitment the chain holds: `keccak256(domain ‖ salt ‖ text)`, or
    /// `keccak256(text)` for a pointer published before salting.
    pub fn commitment(&self) -> B256 {
        match self.salt {
            None => keccak256(self.text.as_bytes()),
            Some(salt) => {
                let mut h = Keccak256::new();
                h.update(COMMITMENT_DOMAIN);
                h.update(salt);
                h.update(self.text.as_bytes());
                h.finalize()
            }
        }
    }

    /// How the provider keeps it: the text and the salt.
    pub fn spec(&self) -> PointerSpec {
        match self.salt {
            Some(salt) => PointerSpec::Salted { query: self.text.clone(), salt },
            None => PointerSpec::Unsalted(self.text.clone()),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "Observation?category=laboratory";

    #[test]
    fn salted_commitments_hide_the_text_and_differ_per_salt() {
        let a = PointerSpec::salted(TEXT);
        let b = PointerSpec::salted(TEXT);
        assert_ne!(a.salt(), b.salt(), "every pointer gets its own salt");
        let (qa, qb) = (a.parse().unwrap(), b.parse().unwrap());
        assert_ne!(qa.commitment(), qb.commitment());
        assert_ne!(qa.commitment(), keccak256(TEXT), "not the guessable hash of the text");
        let mut expected = COMMITMENT_DOMAIN.to_vec();
        expected.extend_from_slice(a.salt().unwrap().as_slice());
        expected.extend_from_slice(TEXT.as_bytes());
        assert_eq!(qa.commitment(), keccak256(&expected));
        assert_eq!(qa.spec(), a, "the parsed query gives back its text and salt");
        assert_eq!(qa.text(), TEXT);
    }

    #[test]
    fn unsalted_pointers_keep_their_commitment() {
        let legacy = PointerSpec::Unsalted(TEXT.into());
        assert_eq!(legacy.parse().unwrap().commitment(), keccak256(TEXT));
        assert_eq!(PointerQuery::parse(TEXT).unwrap().spec(), legacy);
    }

    #[test]
    fn the_wire_form_takes_both_kinds() {
        let salt = B256::repeat_byte(7);
        let salted = PointerSpec::Salted { query: TEXT.into(), salt };
        let json = serde_json::to_value(&salted).unwrap();
        assert_eq!(json, serde_json::json!({"query": TEXT, "salt": salt}));
        assert_eq!(serde_json::from_value::<PointerSpec>(json).unwrap(), salted);
        let legacy: PointerSpec = serde_json::from_value(serde_json::json!(TEXT)).unwrap();
        assert_eq!(legacy, PointerSpec::Unsalted(TEXT.into()));
        assert!(serde_json::from_value::<PointerSpec>(serde_json::json!({"query": TEXT})).is_err());
        assert!(PointerSpec::salted("Nonsense?x=1").parse().is_err());
    }
}
