//! What an encounter gives: medications for the patient's conditions,
//! immunizations and procedures.

use super::{COVID_VACCINES_FROM, Gen, Visit, concept, reference};
use crate::{
    catalogue::{CVX, Cond, RXNORM, SNOMED},
    date::instant,
};
use serde_json::json;

impl Gen<'_> {
    pub(super) fn medications(&mut self, encounter: &str, day: i64, minute: i64, last_year: bool) {
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

    pub(super) fn immunizations(&mut self, encounter: &str, day: i64, minute: i64) {
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

    pub(super) fn procedures(&mut self, encounter: &str, day: i64, minute: i64, visit: Visit) {
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
}
