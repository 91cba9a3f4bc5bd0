//! What the gatekeeper knows of a relationship off chain (its [`Enrollment`]), the body
//! of `PUT /enrollments/{relationship}` ([`EnrollmentBody`]), and the file that keeps
//! enrollments across restarts ([`EnrollmentFile`]).

use crate::{
    offer::OfferBody,
    pointer::{PointerQuery, PointerSpec},
};
use medrec_primitives::RelationshipId;
use medrec_store::fhir::ResourceId;
use serde::{Deserialize, Serialize};
use std::{collections::HashMap, path::PathBuf};

/// What the gatekeeper knows of one relationship off chain: whose records it is about
/// and the query text of each pointer (the chain holds only their commitments).
#[derive(Debug, Clone)]
pub struct Enrollment {
    /// The patient's FHIR id in this provider's store.
    pub patient: ResourceId,
    /// Pointer `i`'s query.
    pub pointers: Vec<PointerQuery>,
    /// The provider's signed offer, for a relationship the patient creates (kept after
    /// the chain shows it: it names the account and the delegate).
    pub offer: Option<OfferBody>,
}

/// The wire form of an enrollment: `{"patient": <FHIR Patient id>, "pointers":
/// [{"query": <text>, "salt": "0x…"}, …]}`, pointer 0 first (a pointer published before
/// commitments were salted is its bare text). The body of `PUT
/// /enrollments/{relationship}` and one value of the enrollment file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollmentBody {
    /// The FHIR id of the patient in the provider's records.
    pub patient: String,
    /// Each pointer's FHIR search text and commitment salt.
    pub pointers: Vec<PointerSpec>,
    /// The provider's signed offer of the relationship, which the patient takes from
    /// `GET /offers` and creates on chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offer: Option<OfferBody>,
}

/// Most pointers a relationship holds.
pub const MAX_POINTERS: usize = 128;

/// Why an enrollment's wire form is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnrollmentInvalid {
    /// The patient is not a FHIR id.
    #[error("\"patient\" must be the FHIR id of the patient in this provider's records")]
    Patient,
    /// A pointer's query is not a search the gatekeeper runs.
    #[error("pointer {index}: {reason}")]
    Pointer {
        /// Which pointer.
        index: usize,
        /// Why.
        reason: String,
    },
    /// Too many pointers.
    #[error("a relationship holds at most {MAX_POINTERS} pointers")]
    TooManyPointers,
}

impl TryFrom<&EnrollmentBody> for Enrollment {
    type Error = EnrollmentInvalid;

    fn try_from(body: &EnrollmentBody) -> Result<Self, EnrollmentInvalid> {
        let patient = body.patient.parse().map_err(|_| EnrollmentInvalid::Patient)?;
        if body.pointers.len() > MAX_POINTERS {
            return Err(EnrollmentInvalid::TooManyPointers);
        }
        let pointers = body
            .pointers
            .iter()
            .enumerate()
            .map(|(index, spec)| {
                spec.parse()
                    .map_err(|e| EnrollmentInvalid::Pointer { index, reason: e.to_string() })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { patient, pointers, offer: body.offer.clone() })
    }
}

impl From<&Enrollment> for EnrollmentBody {
    fn from(e: &Enrollment) -> Self {
        Self {
            patient: e.patient.as_str().to_owned(),
            pointers: e.pointers.iter().map(PointerQuery::spec).collect(),
            offer: e.offer.clone(),
        }
    }
}

/// Enrollments kept in a JSON file (relationship id → [`EnrollmentBody`]), rewritten
/// atomically on every change, so that a restarted gatekeeper serves what it served
/// before.
#[derive(Debug, Clone)]
pub struct EnrollmentFile(PathBuf);

/// Why the enrollment file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum EnrollmentError {
    /// The file system failed.
    #[error("the enrollment file {path} cannot be used: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not what this gatekeeper wrote.
    #[error("the enrollment file {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl EnrollmentFile {
    /// The file at `path` (created on the first enrollment).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self(path.into())
    }

    /// Where it is.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    fn io(&self, source: std::io::Error) -> EnrollmentError {
        EnrollmentError::Io { path: self.0.display().to_string(), source }
    }

    fn corrupt(&self, reason: impl std::fmt::Display) -> EnrollmentError {
        EnrollmentError::Corrupt { path: self.0.display().to_string(), reason: reason.to_string() }
    }

    /// Reads every enrollment (none when the file does not exist yet).
    pub fn load(&self) -> Result<HashMap<RelationshipId, Enrollment>, EnrollmentError> {
        let text = match std::fs::read_to_string(&self.0) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
            Err(e) => return Err(self.io(e)),
        };
        let all: HashMap<RelationshipId, EnrollmentBody> =
            serde_json::from_str(&text).map_err(|e| self.corrupt(e))?;
        all.iter()
            .map(|(id, body)| Ok((*id, Enrollment::try_from(body).map_err(|e| self.corrupt(e))?)))
            .collect()
    }

    /// Writes every enrollment: a temporary file, synced, then renamed over the old one.
    pub fn save(&self, all: &HashMap<RelationshipId, Enrollment>) -> Result<(), EnrollmentError> {
        use std::io::Write;
        let wire: HashMap<&RelationshipId, EnrollmentBody> =
            all.iter().map(|(id, e)| (id, EnrollmentBody::from(e))).collect();
        let text = serde_json::to_vec(&wire).map_err(|e| self.corrupt(e))?;
        if let Some(dir) = self.0.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        }
        let tmp = self.0.with_extension("tmp");
        let mut f = std::fs::File::create(&tmp).map_err(|e| self.io(e))?;
        f.write_all(&text).map_err(|e| self.io(e))?;
        f.sync_all().map_err(|e| self.io(e))?;
        std::fs::rename(&tmp, &self.0).map_err(|e| self.io(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(pointers: &[&str]) -> EnrollmentBody {
        EnrollmentBody {
            patient: "p1".into(),
            pointers: pointers.iter().map(|p| PointerSpec::Unsalted((*p).to_owned())).collect(),
            offer: None,
        }
    }

    #[test]
    fn salted_pointers_keep_their_salt_through_the_file() {
        let dir = std::env::temp_dir().join(format!("medrec-enroll-salt-{}", std::process::id()));
        let file = EnrollmentFile::new(dir.join("enrollments.json"));
        let spec = PointerSpec::salted("Observation?category=laboratory");
        let body =
            EnrollmentBody { patient: "p1".into(), pointers: vec![spec.clone()], offer: None };
        let id = RelationshipId(alloy::primitives::B256::repeat_byte(4));
        file.save(&HashMap::from([(id, Enrollment::try_from(&body).unwrap())])).unwrap();
        let back = file.load().unwrap();
        assert_eq!(back[&id].pointers[0].commitment(), spec.parse().unwrap().commitment());
        assert_eq!(EnrollmentBody::from(&back[&id]), body);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_wire_form_is_checked_at_the_edge() {
        let ok = Enrollment::try_from(&body(&["Observation?category=laboratory"])).unwrap();
        assert_eq!(ok.pointers.len(), 1);
        assert_eq!(EnrollmentBody::from(&ok), body(&["Observation?category=laboratory"]));
        assert!(matches!(
            Enrollment::try_from(&EnrollmentBody {
                patient: "not an id!".into(),
                pointers: vec![],
                offer: None,
            }),
            Err(EnrollmentInvalid::Patient)
        ));
        let bad = Enrollment::try_from(&body(&["Observation", "Nonsense?x=1"])).unwrap_err();
        assert!(matches!(bad, EnrollmentInvalid::Pointer { index: 1, .. }), "{bad}");
        let many = vec!["Condition"; MAX_POINTERS + 1];
        assert_eq!(
            Enrollment::try_from(&body(&many)).unwrap_err(),
            EnrollmentInvalid::TooManyPointers
        );
    }

    #[test]
    fn the_file_round_trips_and_reports_corruption() {
        let dir = std::env::temp_dir().join(format!("medrec-enroll-{}", std::process::id()));
        let file = EnrollmentFile::new(dir.join("nested/enrollments.json"));
        assert!(file.load().unwrap().is_empty(), "a missing file holds no enrollments");
        let id = RelationshipId(alloy::primitives::B256::repeat_byte(3));
        let all = HashMap::from([(id, Enrollment::try_from(&body(&["Condition"])).unwrap())]);
        file.save(&all).unwrap();
        let back = file.load().unwrap();
        assert_eq!(back[&id].patient.as_str(), "p1");
        assert_eq!(back[&id].pointers[0].text(), "Condition");
        std::fs::write(file.path(), "{\"0x12\": 5}").unwrap();
        assert!(matches!(file.load(), Err(EnrollmentError::Corrupt { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
