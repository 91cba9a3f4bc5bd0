//! What an encounter measures: vital signs, and lab results that follow the
//! patient's conditions, with the DiagnosticReport that gathers them.

use super::{Gen, Visit, concept, reference, round};
use crate::{
    catalogue::{Cond, LOINC, Lab, OBSERVATION_CATEGORY, UCUM},
    date::instant,
};
use serde_json::{Value, json};

impl Gen<'_> {
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

    pub(super) fn vitals(&mut self, encounter: &str, day: i64, minute: i64, visit: Visit) {
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

    pub(super) fn labs(&mut self, encounter: &str, day: i64, minute: i64, labs: &[&Lab]) {
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
            if let Some(obs) = self.out.last_mut() {
                obs["referenceRange"] = reference_range(lab);
            }
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
}

/// A lab's reference range as FHIR writes it (`low` only when the range has one).
fn reference_range(lab: &Lab) -> Value {
    let (low, high) = lab.3;
    let mut range = json!({"high": quantity(high, lab.2)});
    if let Some(low) = low {
        range["low"] = quantity(low, lab.2);
    }
    json!([range])
}

fn quantity(value: f64, unit: &str) -> Value {
    json!({"value": value, "unit": unit, "system": UCUM, "code": unit})
}
