//! The generator: one patient's traits and conditions, then encounter by encounter
//! their vital signs, labs, medications, immunizations, procedures and visit notes,
//! as FHIR resources.
//!
//! This module holds the patient (traits, conditions, allergies) and the history of
//! encounters; what an encounter records is in the submodules: vital signs and labs
//! in `measurements`, medications, immunizations and procedures in `treatments`, the
//! visit note in `note`. They add to the one `Gen` state, so resource ids and the
//! random stream run in exactly the order they always did.

mod measurements;
mod note;
mod treatments;

use crate::{
    MAX_YEARS, Options, PatientRecord, SplitMix64,
    catalogue::*,
    date::{day_text, instant},
};
use serde_json::{Value, json};

pub(crate) const DAYS_PER_YEAR: i64 = 365;
/// 2021-01-01, from when COVID-19 vaccines are given.
pub(crate) const COVID_VACCINES_FROM: i64 = 18_628;

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

/// What one encounter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Visit {
    CheckUp,
    Problem,
    Emergency,
    Inpatient,
}

/// The state of one patient's generation: the random stream, the resources so far
/// and what has been given once only.
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

pub(crate) fn patient(options: &Options, index: u64) -> PatientRecord {
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
}
