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

use medrec_store::format_instant;
use serde_json::{Value, json};
use std::{fmt, str::FromStr};

/// The default reference date: histories end the day before it.
pub const DEFAULT_REFERENCE_DATE: Date = Date(20_454);

/// Years of history [`generate`] makes at most; more are treated as this many.
pub const MAX_YEARS: u32 = 100;

const MS_PER_DAY: i64 = 86_400_000;
const DAYS_PER_YEAR: i64 = 365;
/// 2021-01-01, from when COVID-19 vaccines are given.
const COVID_VACCINES_FROM: i64 = 18_628;

const SNOMED: &str = "http://snomed.info/sct";
const LOINC: &str = "http://loinc.org";
const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
const CVX: &str = "http://hl7.org/fhir/sid/cvx";
const UCUM: &str = "http://unitsofmeasure.org";
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
const OBSERVATION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/observation-category";

/// A calendar day (proleptic Gregorian, UTC), written `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Date(i64);

impl Date {
    /// Days since 1970-01-01.
    pub const fn days_since_epoch(self) -> i64 {
        self.0
    }

    /// The day `days` after 1970-01-01.
    pub const fn from_days_since_epoch(days: i64) -> Self {
        Self(days)
    }
}

impl Default for Date {
    fn default() -> Self {
        DEFAULT_REFERENCE_DATE
    }
}

/// A reference date that is not a calendar date `YYYY-MM-DD`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a date: write it as YYYY-MM-DD, e.g. 2026-01-01")]
pub struct DateError(String);

impl FromStr for Date {
    type Err = DateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || DateError(s.chars().take(40).collect());
        if s.len() != 10 {
            return Err(bad());
        }
        let (start, _) = medrec_store::fhir::date_range(s).map_err(|_| bad())?;
        Ok(Self(start.div_euclid(MS_PER_DAY)))
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_instant(self.0 * MS_PER_DAY)[..10])
    }
}

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
    (0..options.patients).map(|i| patient(options, i as u64)).collect()
}

/// A FHIR `transaction` Bundle that stores `record` with one `PUT Type/id` entry per
/// resource, the Patient first: the body `POST /fhir` of the gatekeeper takes.
pub fn transaction_bundle(record: &PatientRecord) -> Value {
    let entries: Vec<Value> = record
        .all()
        .map(|r| {
            let url = format!(
                "{}/{}",
                r["resourceType"].as_str().unwrap_or_default(),
                r["id"].as_str().unwrap_or_default()
            );
            json!({"resource": r, "request": {"method": "PUT", "url": url}})
        })
        .collect();
    json!({"resourceType": "Bundle", "type": "transaction", "entry": entries})
}

/// SplitMix64 (Steele, Lea and Flood, 2014): a tiny, well-mixed 64-bit generator,
/// enough for synthetic data and identical on every platform. Not for secrets.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub const fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub const fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in `0..n` (`n > 0`).
    pub const fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Roughly normal with this mean and standard deviation (a sum of four uniforms,
    /// so it stays within ±3.5 standard deviations).
    pub fn normal(&mut self, mean: f64, sd: f64) -> f64 {
        let sum: f64 = (0..4).map(|_| self.unit()).sum();
        mean + (sum - 2.0) * 1.732_050_807_568_877_2 * sd
    }

    /// One of `items` (not empty).
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// The conditions patients may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cond {
    Hypertension,
    Diabetes,
    Hyperlipidemia,
    Asthma,
    Anemia,
    Ckd,
}

impl Cond {
    const fn snomed(self) -> (&'static str, &'static str) {
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
    const fn medication(self) -> Option<(&'static str, &'static str, &'static str)> {
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

/// A patient's fixed traits.
#[derive(Debug)]
struct Person {
    male: bool,
    birth: i64,
    height_cm: f64,
    bmi: f64,
    /// Conditions with their onset day.
    conditions: Vec<(Cond, i64)>,
}

impl Person {
    fn has(&self, cond: Cond, day: i64) -> bool {
        self.conditions.iter().any(|&(c, onset)| c == cond && onset <= day)
    }

    fn age_at(&self, day: i64) -> i64 {
        (day - self.birth) * 4 / (DAYS_PER_YEAR * 4 + 1)
    }
}

const GIVEN: [&str; 16] = [
    "Avery", "Blake", "Casey", "Devon", "Emery", "Finley", "Harper", "Jules", "Kai", "Lane",
    "Morgan", "Noel", "Quinn", "Reese", "Rowan", "Sage",
];
const FAMILY: [&str; 12] = [
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
const CITIES: [&str; 6] =
    ["Testville", "Sampleton", "Mockburg", "Fictionport", "Placeholder Falls", "Demoford"];

/// What one encounter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Visit {
    CheckUp,
    Problem,
    Emergency,
    Inpatient,
}

struct Gen<'a> {
    options: &'a Options,
    pid: String,
    rng: SplitMix64,
    person: Person,
    next: u64,
    out: Vec<Value>,
    tdap_given: bool,
    covid_doses: u32,
    colonoscopy_given: bool,
    appendectomy_given: bool,
}

fn patient(options: &Options, index: u64) -> PatientRecord {
    let mut rng =
        SplitMix64::new(options.seed ^ index.wrapping_add(1).wrapping_mul(0xD1B5_4A32_D192_ED03));
    rng.next_u64();
    let pid = format!("syn-{:x}-{index}", options.seed);
    let reference = options.reference_date.days_since_epoch();
    let male = rng.chance(0.5);
    let age = 25 + rng.below(66) as i64;
    let birth = reference - age * DAYS_PER_YEAR - age / 4 - rng.below(365) as i64;
    let height_cm = if male { rng.normal(176.0, 6.5) } else { rng.normal(163.0, 6.0) };
    let mut person = Person { male, birth, height_cm, bmi: 0.0, conditions: Vec::new() };
    let risk = (age - 25) as f64 / 65.0;
    let diabetes = rng.chance(0.06 + 0.22 * risk);
    let mut cond = |rng: &mut SplitMix64, c: Cond, p: f64, from_age: i64| {
        if rng.chance(p) {
            let from = birth + from_age * DAYS_PER_YEAR;
            if from < reference - 30 {
                let onset = from + rng.below((reference - 30 - from) as u64) as i64;
                person.conditions.push((c, onset));
            }
        }
    };
    cond(&mut rng, Cond::Diabetes, if diabetes { 1.0 } else { 0.0 }, 30);
    cond(&mut rng, Cond::Hypertension, 0.1 + 0.45 * risk + if diabetes { 0.2 } else { 0.0 }, 30);
    cond(&mut rng, Cond::Hyperlipidemia, 0.1 + 0.3 * risk + if diabetes { 0.2 } else { 0.0 }, 30);
    cond(&mut rng, Cond::Asthma, 0.09, 5);
    cond(&mut rng, Cond::Anemia, if male { 0.04 } else { 0.1 }, 18);
    cond(&mut rng, Cond::Ckd, 0.02 + 0.1 * risk, 40);
    person.bmi = rng.normal(24.5, 3.0)
        + if diabetes { 4.5 } else { 0.0 }
        + if person.conditions.iter().any(|c| c.0 == Cond::Hypertension) { 1.5 } else { 0.0 };
    let given = *rng.pick(&GIVEN);
    let family = *rng.pick(&FAMILY);
    let city = *rng.pick(&CITIES);
    let patient = json!({
        "resourceType": "Patient",
        "id": pid,
        "identifier": [{"system": "urn:medrec:synthetic", "value": pid}],
        "active": true,
        "name": [{"use": "official", "family": family, "given": [given]}],
        "gender": if male { "male" } else { "female" },
        "birthDate": day_text(birth),
        "address": [{"use": "home", "city": city, "country": "Fictionland"}],
    });
    let mut g = Gen {
        options,
        pid: pid.clone(),
        rng,
        person,
        next: 0,
        out: Vec::new(),
        tdap_given: false,
        covid_doses: 0,
        colonoscopy_given: false,
        appendectomy_given: false,
    };
    g.conditions();
    g.allergies();
    g.history();
    PatientRecord { id: pid, patient, resources: g.out }
}

fn day_text(day: i64) -> String {
    format_instant(day * MS_PER_DAY)[..10].to_owned()
}

fn instant(day: i64, minute: i64) -> String {
    format_instant(day * MS_PER_DAY + minute * 60_000).replace(".000Z", "Z")
}

fn concept(system: &str, code: &str, display: &str) -> Value {
    json!({"coding": [{"system": system, "code": code, "display": display}], "text": display})
}

fn reference(ty: &str, id: &str) -> Value {
    json!({"reference": format!("{ty}/{id}")})
}

fn round(x: f64, decimals: i32) -> f64 {
    let f = 10f64.powi(decimals);
    (x * f).round() / f
}

/// A laboratory test: LOINC code, name and UCUM unit.
struct Lab(&'static str, &'static str, &'static str);

const HEMOGLOBIN: Lab = Lab("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL");
const GLUCOSE: Lab = Lab("2345-7", "Glucose [Mass/volume] in Serum or Plasma", "mg/dL");
const HBA1C: Lab = Lab("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%");
const LDL: Lab =
    Lab("18262-6", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay", "mg/dL");
const CREATININE: Lab = Lab("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL");
const IRON: Lab = Lab("2498-4", "Iron [Mass/volume] in Serum or Plasma", "ug/dL");
const POTASSIUM: Lab = Lab("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L");

impl Gen<'_> {
    fn id(&mut self, tag: &str) -> String {
        let n = self.next;
        self.next += 1;
        format!("{}-{tag}{n}", self.pid)
    }

    fn subject(&self) -> Value {
        reference("Patient", &self.pid)
    }

    fn reference_day(&self) -> i64 {
        self.options.reference_date.days_since_epoch()
    }

    fn conditions(&mut self) {
        for (c, onset) in self.person.conditions.clone() {
            let (code, display) = c.snomed();
            let id = self.id("cond");
            let resource = json!({
                "resourceType": "Condition",
                "id": id,
                "clinicalStatus": concept("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"),
                "verificationStatus": concept("http://terminology.hl7.org/CodeSystem/condition-ver-status", "confirmed", "Confirmed"),
                "category": [concept("http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item", "Problem List Item")],
                "code": concept(SNOMED, code, display),
                "subject": self.subject(),
                "onsetDateTime": day_text(onset),
                "recordedDate": day_text(onset),
            });
            self.out.push(resource);
        }
    }

    fn allergies(&mut self) {
        const ALLERGIES: [(&str, &str, &str); 4] = [
            ("91936005", "Allergy to penicillin", "medication"),
            ("91935009", "Allergy to peanuts", "food"),
            ("300916003", "Latex allergy", "environment"),
            ("418689008", "Allergy to grass pollen", "environment"),
        ];
        let n = match self.rng.below(20) {
            0 => 2,
            1..=4 => 1,
            _ => 0,
        };
        let first = self.rng.below(ALLERGIES.len() as u64) as usize;
        for k in 0..n {
            let (code, display, category) = ALLERGIES[(first + k) % ALLERGIES.len()];
            let recorded = self.person.birth + 18 * DAYS_PER_YEAR + self.rng.below(3650) as i64;
            let recorded = recorded.min(self.reference_day() - 1);
            let id = self.id("alg");
            let resource = json!({
                "resourceType": "AllergyIntolerance",
                "id": id,
                "clinicalStatus": concept("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", "Active"),
                "verificationStatus": concept("http://terminology.hl7.org/CodeSystem/allergyintolerance-verification", "confirmed", "Confirmed"),
                "type": "allergy",
                "category": [category],
                "criticality": if self.rng.chance(0.3) { "high" } else { "low" },
                "code": concept(SNOMED, code, display),
                "patient": self.subject(),
                "recordedDate": day_text(recorded),
            });
            self.out.push(resource);
        }
    }

    /// Encounters year by year, oldest first, from the 18th birthday at the earliest.
    fn history(&mut self) {
        let years = i64::from(self.options.years.min(MAX_YEARS));
        let end = self.reference_day();
        let adult = self.person.birth + 18 * DAYS_PER_YEAR + 5;
        for k in 0..years {
            let year_start = end - (years - k) * DAYS_PER_YEAR;
            let mut visits = vec![(year_start + self.rng.below(360) as i64, Visit::CheckUp)];
            let chronic = self.person.conditions.len() as u64;
            for _ in 0..self.rng.below(chronic.min(2) + 1) {
                visits.push((year_start + self.rng.below(364) as i64, Visit::Problem));
            }
            let asthma = self.person.has(Cond::Asthma, end);
            if self.rng.chance(if asthma { 0.25 } else { 0.1 }) {
                visits.push((year_start + self.rng.below(364) as i64, Visit::Emergency));
            }
            if self.rng.chance(0.03) {
                visits.push((year_start + self.rng.below(355) as i64, Visit::Inpatient));
            }
            visits.sort_unstable();
            for (day, visit) in visits {
                if day >= adult && day < end {
                    self.encounter(day, visit, k == years - 1);
                }
            }
        }
    }

    fn encounter(&mut self, day: i64, visit: Visit, last_year: bool) {
        let id = self.id("enc");
        let start_minute = 8 * 60 + self.rng.below(9 * 4) as i64 * 15;
        let (class, class_display, type_code, type_display, length_days, length_minutes) =
            match visit {
                Visit::CheckUp => {
                    ("AMB", "ambulatory", "185349003", "Encounter for check up", 0, 30)
                }
                Visit::Problem => {
                    ("AMB", "ambulatory", "185347001", "Encounter for problem", 0, 20)
                }
                Visit::Emergency => {
                    ("EMER", "emergency", "50849002", "Emergency room admission", 0, 240)
                }
                Visit::Inpatient => (
                    "IMP",
                    "inpatient encounter",
                    "32485007",
                    "Hospital admission",
                    2 + self.rng.below(5) as i64,
                    0,
                ),
            };
        let start = instant(day, start_minute);
        let end = instant(day + length_days, start_minute + length_minutes);
        self.out.push(json!({
            "resourceType": "Encounter",
            "id": id,
            "status": "finished",
            "class": {"system": ACT_CODE, "code": class, "display": class_display},
            "type": [concept(SNOMED, type_code, type_display)],
            "subject": self.subject(),
            "period": {"start": start, "end": end},
        }));
        let at = start_minute + 10;
        self.vitals(&id, day, at, visit);
        let labs: Vec<&Lab> = match visit {
            Visit::CheckUp => {
                let mut labs = vec![&HEMOGLOBIN, &GLUCOSE, &HBA1C, &LDL, &CREATININE, &POTASSIUM];
                if self.person.has(Cond::Anemia, day) || self.rng.chance(0.3) {
                    labs.push(&IRON);
                }
                labs
            }
            Visit::Problem if self.person.has(Cond::Diabetes, day) => vec![&GLUCOSE, &HBA1C],
            Visit::Problem if self.person.has(Cond::Anemia, day) => vec![&HEMOGLOBIN, &IRON],
            Visit::Problem if self.person.has(Cond::Ckd, day) => vec![&CREATININE, &POTASSIUM],
            Visit::Problem => Vec::new(),
            Visit::Emergency | Visit::Inpatient => {
                vec![&HEMOGLOBIN, &GLUCOSE, &CREATININE, &POTASSIUM]
            }
        };
        self.labs(&id, day, at + 20, &labs);
        if visit == Visit::CheckUp {
            self.medications(&id, day, at + 25, last_year);
            self.immunizations(&id, day, at + 28);
        }
        self.procedures(&id, day, at + 30, visit);
        self.note(&id, day, at + 40, visit, type_display);
    }

    fn observation(
        &mut self,
        encounter: &str,
        day: i64,
        minute: i64,
        category: (&str, &str),
        code: (&str, &str),
        value: Value,
    ) -> String {
        let id = self.id("obs");
        let mut obs = json!({
            "resourceType": "Observation",
            "id": id,
            "status": "final",
            "category": [concept(OBSERVATION_CATEGORY, category.0, category.1)],
            "code": concept(LOINC, code.0, code.1),
            "subject": self.subject(),
            "encounter": reference("Encounter", encounter),
            "effectiveDateTime": instant(day, minute),
            "issued": instant(day, minute + 60),
        });
        let obj = obs.as_object_mut().expect("an object");
        match value {
            Value::Array(components) => obj.insert("component".into(), Value::Array(components)),
            quantity => obj.insert("valueQuantity".into(), quantity),
        };
        self.out.push(obs);
        id
    }

    fn vitals(&mut self, encounter: &str, day: i64, minute: i64, visit: Visit) {
        let vital = ("vital-signs", "Vital Signs");
        let hypertensive = self.person.has(Cond::Hypertension, day);
        if visit != Visit::Emergency {
            let bmi = self.rng.normal(self.person.bmi, 0.6).clamp(16.0, 55.0);
            let h = self.person.height_cm / 100.0;
            let weight = round(bmi * h * h, 1);
            let bmi = round(weight / (h * h), 1);
            let height = round(self.person.height_cm, 1);
            self.observation(
                encounter,
                day,
                minute,
                vital,
                ("8302-2", "Body height"),
                quantity(height, "cm"),
            );
            self.observation(
                encounter,
                day,
                minute,
                vital,
                ("29463-7", "Body weight"),
                quantity(weight, "kg"),
            );
            self.observation(
                encounter,
                day,
                minute,
                vital,
                ("39156-5", "Body mass index (BMI) [Ratio]"),
                quantity(bmi, "kg/m2"),
            );
        }
        let rate =
            round(self.rng.normal(if visit == Visit::Emergency { 88.0 } else { 72.0 }, 8.0), 0);
        self.observation(
            encounter,
            day,
            minute,
            vital,
            ("8867-4", "Heart rate"),
            quantity(rate, "/min"),
        );
        let (sys, dia) = if hypertensive { (146.0, 92.0) } else { (118.0, 76.0) };
        let systolic = round(self.rng.normal(sys, 9.0), 0);
        let diastolic = round(self.rng.normal(dia, 6.0), 0);
        let component = |code: &str, display: &str, v: f64| json!({"code": concept(LOINC, code, display), "valueQuantity": quantity(v, "mm[Hg]")});
        let components = json!([
            component("8480-6", "Systolic blood pressure", systolic),
            component("8462-4", "Diastolic blood pressure", diastolic),
        ]);
        self.observation(
            encounter,
            day,
            minute,
            vital,
            ("85354-9", "Blood pressure panel with all children optional"),
            components,
        );
    }

    /// A lab value for this patient on `day`, following their conditions.
    fn lab_value(&mut self, lab: &Lab, day: i64) -> f64 {
        let p = &self.person;
        let (diabetic, anemic, ckd) =
            (p.has(Cond::Diabetes, day), p.has(Cond::Anemia, day), p.has(Cond::Ckd, day));
        let hyperlipidemic = p.has(Cond::Hyperlipidemia, day);
        let male = p.male;
        let r = &mut self.rng;
        match lab.0 {
            "718-7" => {
                let base = if male { 15.0 } else { 13.5 } - if anemic { 2.8 } else { 0.0 };
                round(r.normal(base, 0.8).clamp(7.0, 18.5), 1)
            }
            "2345-7" => {
                let v = if diabetic { r.normal(155.0, 28.0) } else { r.normal(92.0, 8.0) };
                round(v.clamp(60.0, 320.0), 0)
            }
            "4548-4" => {
                let v = if diabetic { r.normal(7.8, 0.8) } else { r.normal(5.4, 0.25) };
                round(v.clamp(4.2, 12.5), 1)
            }
            "18262-6" => {
                // Treated with a statin from onset: high, but lower than untreated.
                let v = if hyperlipidemic { r.normal(135.0, 20.0) } else { r.normal(105.0, 18.0) };
                round(v.clamp(40.0, 250.0), 0)
            }
            "2160-0" => {
                let base = if male { 1.0 } else { 0.8 } + if ckd { 0.9 } else { 0.0 };
                round(r.normal(base, 0.12).clamp(0.4, 4.0), 2)
            }
            "2498-4" => {
                let v = if anemic { r.normal(38.0, 9.0) } else { r.normal(95.0, 20.0) };
                round(v.clamp(10.0, 200.0), 0)
            }
            _ => {
                let base = if ckd { 4.7 } else { 4.2 };
                round(r.normal(base, 0.25).clamp(3.0, 6.0), 1)
            }
        }
    }

    fn labs(&mut self, encounter: &str, day: i64, minute: i64, labs: &[&Lab]) {
        if labs.is_empty() {
            return;
        }
        let mut results = Vec::new();
        for lab in labs {
            let value = self.lab_value(lab, day);
            let id = self.observation(
                encounter,
                day,
                minute,
                ("laboratory", "Laboratory"),
                (lab.0, lab.1),
                quantity(value, lab.2),
            );
            results.push(reference("Observation", &id));
        }
        let id = self.id("rep");
        self.out.push(json!({
            "resourceType": "DiagnosticReport",
            "id": id,
            "status": "final",
            "category": [concept("http://terminology.hl7.org/CodeSystem/v2-0074", "LAB", "Laboratory")],
            "code": concept(LOINC, "11502-2", "Laboratory report"),
            "subject": self.subject(),
            "encounter": reference("Encounter", encounter),
            "effectiveDateTime": instant(day, minute),
            "issued": instant(day, minute + 120),
            "result": results,
        }));
    }

    fn medications(&mut self, encounter: &str, day: i64, minute: i64, last_year: bool) {
        for (c, onset) in self.person.conditions.clone() {
            let Some((code, display, dosage)) = c.medication() else { continue };
            if onset > day {
                continue;
            }
            let (cond_code, cond_display) = c.snomed();
            let id = self.id("med");
            self.out.push(json!({
                "resourceType": "MedicationRequest",
                "id": id,
                "status": if last_year { "active" } else { "completed" },
                "intent": "order",
                "medicationCodeableConcept": concept(RXNORM, code, display),
                "subject": self.subject(),
                "encounter": reference("Encounter", encounter),
                "authoredOn": instant(day, minute),
                "reasonCode": [concept(SNOMED, cond_code, cond_display)],
                "dosageInstruction": [{"text": dosage}],
            }));
        }
    }

    fn immunizations(&mut self, encounter: &str, day: i64, minute: i64) {
        let mut given: Vec<(&str, &str)> = Vec::new();
        if self.rng.chance(0.65) {
            given.push(*self.rng.pick(&[
                ("140", "Influenza, seasonal, injectable, preservative free"),
                ("158", "influenza, injectable, quadrivalent, contains preservative"),
            ]));
        }
        if !self.tdap_given && self.rng.chance(0.12) {
            self.tdap_given = true;
            given.push(("115", "Tdap"));
        }
        if day >= COVID_VACCINES_FROM && self.covid_doses < 2 && self.rng.chance(0.7) {
            self.covid_doses += 1;
            given.push((
                "208",
                "SARS-COV-2 (COVID-19) vaccine, mRNA, spike protein, LNP, preservative free, 30 mcg/0.3mL dose",
            ));
        }
        for (code, display) in given {
            let id = self.id("imm");
            self.out.push(json!({
                "resourceType": "Immunization",
                "id": id,
                "status": "completed",
                "vaccineCode": concept(CVX, code, display),
                "patient": self.subject(),
                "encounter": reference("Encounter", encounter),
                "occurrenceDateTime": instant(day, minute),
                "primarySource": true,
            }));
        }
    }

    fn procedures(&mut self, encounter: &str, day: i64, minute: i64, visit: Visit) {
        let mut done: Vec<(&str, &str)> = Vec::new();
        let on_medication = self
            .person
            .conditions
            .iter()
            .any(|&(c, onset)| onset <= day && c.medication().is_some());
        match visit {
            Visit::CheckUp => {
                if on_medication {
                    done.push(("430193006", "Medication reconciliation"));
                }
                if !self.colonoscopy_given && self.person.age_at(day) >= 50 && self.rng.chance(0.15)
                {
                    self.colonoscopy_given = true;
                    done.push(("73761001", "Colonoscopy"));
                }
            }
            Visit::Emergency if self.person.has(Cond::Asthma, day) => {
                done.push(("56251003", "Nebulizer therapy"));
            }
            Visit::Inpatient if !self.appendectomy_given && self.rng.chance(0.5) => {
                self.appendectomy_given = true;
                done.push(("80146002", "Appendectomy"));
            }
            _ => {}
        }
        for (code, display) in done {
            let id = self.id("proc");
            self.out.push(json!({
                "resourceType": "Procedure",
                "id": id,
                "status": "completed",
                "code": concept(SNOMED, code, display),
                "subject": self.subject(),
                "encounter": reference("Encounter", encounter),
                "performedDateTime": instant(day, minute),
            }));
        }
    }

    fn note(&mut self, encounter: &str, day: i64, minute: i64, visit: Visit, what: &str) {
        let (code, display) = match visit {
            Visit::CheckUp | Visit::Problem => ("11506-3", "Progress note"),
            Visit::Emergency => ("34111-5", "Emergency department note"),
            Visit::Inpatient => ("18842-5", "Discharge summary"),
        };
        let active: Vec<&str> = self
            .person
            .conditions
            .iter()
            .filter(|&&(_, onset)| onset <= day)
            .map(|(c, _)| c.snomed().1)
            .collect();
        let problems = if active.is_empty() {
            "No chronic problems.".to_owned()
        } else {
            format!("Known problems: {}.", active.join(", ").to_lowercase())
        };
        let plan = *self.rng.pick(&[
            "Plan: continue current care and return in one year.",
            "Plan: review results by phone and follow up as needed.",
            "Plan: lifestyle advice given; recheck at the next visit.",
        ]);
        let text = format!(
            "Synthetic note, not a real person. {what} of a {}-year-old {} patient. {problems} {plan}",
            self.person.age_at(day),
            if self.person.male { "male" } else { "female" },
        );
        let id = self.id("doc");
        self.out.push(json!({
            "resourceType": "DocumentReference",
            "id": id,
            "status": "current",
            "type": concept(LOINC, code, display),
            "category": [concept("http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category", "clinical-note", "Clinical Note")],
            "subject": self.subject(),
            "date": instant(day, minute),
            "content": [{"attachment": {
                "contentType": "text/plain",
                "data": base64(text.as_bytes()),
                "title": display,
            }}],
            "context": {"encounter": [reference("Encounter", encounter)]},
        }));
    }
}

fn quantity(value: f64, unit: &str) -> Value {
    json!({"value": value, "unit": unit, "system": UCUM, "code": unit})
}

/// Standard base64 with padding (RFC 4648), as FHIR `base64Binary` wants.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn dates_parse_and_print() {
        assert_eq!(DEFAULT_REFERENCE_DATE.to_string(), "2026-01-01");
        assert_eq!("2026-01-01".parse::<Date>().unwrap(), DEFAULT_REFERENCE_DATE);
        assert_eq!(COVID_VACCINES_FROM, "2021-01-01".parse::<Date>().unwrap().0);
        for bad in ["2026", "2026-13-01", "2026-02-30", "tomorrow", "2026-01-01T00:00:00Z"] {
            assert!(bad.parse::<Date>().is_err(), "{bad}");
        }
    }

    #[test]
    fn splitmix64_matches_the_reference_output() {
        // First outputs for seed 0 of the reference implementation.
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
    }
}
