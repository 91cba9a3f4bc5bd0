//! Deterministic synthetic FHIR R4 patients for the demo, tests and benchmarks.
//!
//! [`generate`] makes [`Options::patients`] fictional adults, each with
//! [`Options::years`] of history up to [`Options::reference_date`]: Encounters
//! (ambulatory check-ups and problem visits, emergency and inpatient stays), Conditions
//! (SNOMED CT), laboratory and vital-sign Observations (LOINC codes, UCUM units),
//! MedicationRequests (RxNorm) for the conditions, Immunizations (CVX),
//! AllergyIntolerances, Procedures (SNOMED CT), lab DiagnosticReports that reference
//! their Observations, and a short DocumentReference visit note per encounter.
//! [`transaction_bundle`] turns one patient into the transaction Bundle that
//! `POST /fhir` of the gatekeeper takes.
//!
//! Values follow the conditions, so aggregates mean something: a diabetic's HbA1c and
//! glucose run high, an anaemic patient's iron and haemoglobin low, a hypertensive
//! patient's blood pressure high, and so on.
//!
//! Determinism: the same options give byte-identical JSON on every machine. The only
//! randomness is [`SplitMix64`] seeded from [`Options::seed`] and the patient's
//! index (so patient `i` is the same whatever the number of patients), normal-ish
//! values are sums of uniforms (no platform maths library), and every date is counted
//! from the reference date, never from the clock.
//!
//! Names, cities and notes come from small built-in lists of obviously fictional
//! words; no real person is described.
//!
//! The crate is split by concern: [`Date`] in `date`, the [`SplitMix64`] generator in
//! `rng`, the clinical catalogues (code systems, conditions with their SNOMED CT and
//! RxNorm codes, LOINC lab tests with their UCUM units, fictional names) in
//! `catalogue`, the generator of one patient's history in `generator`, and the
//! transaction Bundle output in `bundle`.

mod bundle;
mod catalogue;
mod date;
mod generator;
mod rng;

pub use bundle::transaction_bundle;
pub use date::{DEFAULT_REFERENCE_DATE, Date, DateError};
pub use rng::SplitMix64;

use serde_json::Value;

/// Years of history [`generate`] makes at most; more are treated as this many.
pub const MAX_YEARS: u32 = 100;

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// How many patients.
    pub patients: usize,
    /// Years of history per patient, up to the reference date (at most [`MAX_YEARS`]).
    pub years: u32,
    /// The seed: the same seed and sizes give the same output.
    pub seed: u64,
    /// Histories end the day before this date; ages are counted to it.
    pub reference_date: Date,
}

impl Default for Options {
    /// 10 patients, 5 years, seed 1, reference date 2026-01-01.
    fn default() -> Self {
        Self { patients: 10, years: 5, seed: 1, reference_date: DEFAULT_REFERENCE_DATE }
    }
}

/// One synthetic patient: the Patient and every resource about them.
#[derive(Debug, Clone, PartialEq)]
pub struct PatientRecord {
    /// The Patient's id.
    pub id: String,
    /// The Patient resource.
    pub patient: Value,
    /// The other resources, each referencing `Patient/<id>`, in the order they were
    /// made (encounter by encounter, oldest first).
    pub resources: Vec<Value>,
}

impl PatientRecord {
    /// The Patient, then every other resource.
    pub fn all(&self) -> impl Iterator<Item = &Value> {
        std::iter::once(&self.patient).chain(&self.resources)
    }

    /// The resources of one type (`"Observation"`, ...).
    pub fn of_type<'a>(&'a self, resource_type: &'a str) -> impl Iterator<Item = &'a Value> {
        self.all().filter(move |r| r["resourceType"] == resource_type)
    }

    /// Whether the patient has a Condition with this SNOMED CT code (e.g. `44054006`,
    /// type 2 diabetes).
    pub fn has_condition(&self, snomed: &str) -> bool {
        self.of_type("Condition").any(|c| c["code"]["coding"][0]["code"] == snomed)
    }
}

/// The patients `options` describe; the same options give the same records.
pub fn generate(options: &Options) -> Vec<PatientRecord> {
    (0..options.patients).map(|i| generator::patient(options, i as u64)).collect()
}
