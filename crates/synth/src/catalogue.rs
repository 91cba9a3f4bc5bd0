//! The clinical catalogues the generator draws from: code systems, the conditions
//! with their SNOMED CT codes and RxNorm medications, the LOINC laboratory tests
//! with their UCUM units, and the fictional names and cities.

pub(crate) const SNOMED: &str = "http://snomed.info/sct";
pub(crate) const LOINC: &str = "http://loinc.org";
pub(crate) const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
pub(crate) const CVX: &str = "http://hl7.org/fhir/sid/cvx";
pub(crate) const UCUM: &str = "http://unitsofmeasure.org";
pub(crate) const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
pub(crate) const OBSERVATION_CATEGORY: &str =
    "http://terminology.hl7.org/CodeSystem/observation-category";

/// The conditions patients may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cond {
    Hypertension,
    Diabetes,
    Hyperlipidemia,
    Asthma,
    Anemia,
    Ckd,
}

impl Cond {
    pub(crate) const fn snomed(self) -> (&'static str, &'static str) {
        match self {
            Self::Hypertension => ("38341003", "Hypertension"),
            Self::Diabetes => ("44054006", "Diabetes mellitus type 2"),
            Self::Hyperlipidemia => ("55822004", "Hyperlipidemia"),
            Self::Asthma => ("195967001", "Asthma"),
            Self::Anemia => ("87522002", "Iron deficiency anemia"),
            Self::Ckd => ("433144002", "Chronic kidney disease stage 3"),
        }
    }

    /// RxNorm code, name and dosage of the medication prescribed for it.
    pub(crate) const fn medication(self) -> Option<(&'static str, &'static str, &'static str)> {
        match self {
            Self::Diabetes => Some((
                "860975",
                "metformin extended release oral tablet",
                "1 tablet daily with the evening meal",
            )),
            Self::Hypertension => {
                Some(("314076", "lisinopril 10 MG Oral Tablet", "1 tablet daily"))
            }
            Self::Hyperlipidemia => {
                Some(("617312", "atorvastatin oral tablet", "1 tablet daily at night"))
            }
            Self::Asthma => Some((
                "745752",
                "albuterol metered dose inhaler",
                "2 puffs every 4 hours as needed",
            )),
            Self::Anemia => {
                Some(("310325", "ferrous sulfate 325 MG Oral Tablet", "1 tablet daily"))
            }
            Self::Ckd => None,
        }
    }
}

pub(crate) const GIVEN: [&str; 16] = [
    "Avery", "Blake", "Casey", "Devon", "Emery", "Finley", "Harper", "Jules", "Kai", "Lane",
    "Morgan", "Noel", "Quinn", "Reese", "Rowan", "Sage",
];
pub(crate) const FAMILY: [&str; 12] = [
    "Testwood",
    "Mockridge",
    "Samplefield",
    "Fakeford",
    "Placeholm",
    "Dummington",
    "Synthbury",
    "Examplar",
    "Fictionby",
    "Stubbins",
    "Fixtureton",
    "Demoson",
];
pub(crate) const CITIES: [&str; 6] =
    ["Testville", "Sampleton", "Mockburg", "Fictionport", "Placeholder Falls", "Demoford"];

/// A laboratory test: LOINC code, name, UCUM unit and the adult reference range
/// (`low`, if the range has one, and `high`), as laboratories print beside a result.
pub(crate) struct Lab(
    pub(crate) &'static str,
    pub(crate) &'static str,
    pub(crate) &'static str,
    pub(crate) (Option<f64>, f64),
);

pub(crate) const HEMOGLOBIN: Lab =
    Lab("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", (Some(12.0), 17.5));
pub(crate) const GLUCOSE: Lab =
    Lab("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL", (Some(70.0), 99.0));
pub(crate) const HBA1C: Lab =
    Lab("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", (Some(4.0), 5.6));
pub(crate) const LDL: Lab = Lab(
    "18262-6",
    "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay",
    "mg/dL",
    (None, 99.0),
);
pub(crate) const CREATININE: Lab =
    Lab("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", (Some(0.6), 1.3));
pub(crate) const IRON: Lab =
    Lab("2498-4", "Iron [Mass/volume] in Serum or Plasma", "ug/dL", (Some(60.0), 170.0));
pub(crate) const POTASSIUM: Lab =
    Lab("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", (Some(3.5), 5.1));
