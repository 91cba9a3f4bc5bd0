//! The generator: one patient's traits and conditions, then encounter by encounter
//! their vital signs, labs, medications, immunizations, procedures and visit notes,
//! as FHIR resources.

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
}
