//! Integration tests of medrec-research: the language, the policy, the aggregates and
//! their noise, and the ledger.

mod aggregate;
mod ledger;
mod policy;
mod query;
mod statistics;

use medrec_research::aggregate::PatientData;
use serde_json::{Value, json};
use std::path::PathBuf;
use time::{Date, Month};

/// A calendar day.
fn day(y: i32, m: u8, d: u8) -> Date {
    Date::from_calendar_date(y, Month::try_from(m).expect("month"), d).expect("date")
}

/// A fresh path in the temporary directory (removed first if it exists).
fn temp_path(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("medrec-research-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

/// A laboratory Observation with a LOINC code, a day and a value.
fn observation(id: &str, loinc: &str, category: &str, date: &str, value: f64) -> Value {
    json!({
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": category}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": loinc}]},
        "effectiveDateTime": format!("{date}T10:00:00Z"),
        "valueQuantity": {"value": value, "unit": "ug/dL"},
    })
}

/// A patient with a gender, a birth date and resources.
fn person(gender: &str, birth: &str, resources: Vec<Value>) -> PatientData {
    PatientData {
        patient: json!({"resourceType": "Patient", "gender": gender, "birthDate": birth}),
        resources,
    }
}

/// `n` patients, alternately female and male, each with one iron value of 100 on
/// 2026-01-10.
fn iron_cohort(n: usize) -> Vec<PatientData> {
    (0..n)
        .map(|i| {
            let sex = if i % 2 == 0 { "female" } else { "male" };
            person(
                sex,
                "1970-06-01",
                vec![observation(&format!("obs-{i}"), "2498-4", "laboratory", "2026-01-10", 100.0)],
            )
        })
        .collect()
}
