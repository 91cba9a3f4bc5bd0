//! The synthetic FHIR generator: deterministic, well-formed, realistic enough for
//! aggregates, and loadable into a real store.

use medrec_store::{
    fhir::{Resource, ResourceType},
    search::SearchQuery,
    sqlite::SqliteStore,
};
use medrec_synth::{Options, PatientRecord, generate, transaction_bundle};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

fn options(patients: usize, years: u32, seed: u64) -> Options {
    Options { patients, years, seed, ..Options::default() }
}

fn bytes(records: &[PatientRecord]) -> Vec<u8> {
    let bundles: Vec<Value> = records.iter().map(transaction_bundle).collect();
    serde_json::to_vec(&bundles).unwrap()
}

fn count(records: &[PatientRecord]) -> usize {
    records.iter().map(|r| r.all().count()).sum()
}

/// The first coding of `concept`: (system, code).
fn coding(concept: &Value) -> (&str, &str) {
    let c = &concept["coding"][0];
    (c["system"].as_str().unwrap(), c["code"].as_str().unwrap())
}

#[test]
fn the_same_seed_gives_the_same_bytes_and_another_seed_does_not() {
    let a = bytes(&generate(&options(8, 4, 42)));
    let b = bytes(&generate(&options(8, 4, 42)));
    assert_eq!(a, b);
    let c = bytes(&generate(&options(8, 4, 43)));
    assert_ne!(a, c);
    let later = Options { reference_date: "2027-06-01".parse().unwrap(), ..options(8, 4, 42) };
    assert_ne!(a, bytes(&generate(&later)));
    // Patient i does not depend on how many patients are made.
    let more = generate(&options(12, 4, 42));
    assert_eq!(generate(&options(8, 4, 42))[..], more[..8]);
}

#[test]
fn sizes_follow_the_options() {
    assert!(generate(&options(0, 5, 1)).is_empty());
    let small = generate(&options(5, 2, 7));
    assert_eq!(small.len(), 5);
    assert_eq!(generate(&options(20, 2, 7)).len(), 20);
    let long = generate(&options(5, 10, 7));
    assert!(count(&long) > 3 * count(&small), "{} vs {}", count(&long), count(&small));
    for (s, l) in small.iter().zip(&long) {
        assert_eq!(s.patient, l.patient, "the same people, with longer histories");
        let encounters = |r: &PatientRecord| r.of_type("Encounter").count();
        // One check-up a year at least, as adults (everyone is at least 25).
        assert!(encounters(s) >= 2 && encounters(l) >= 10, "{} {}", encounters(s), encounters(l));
        assert!(encounters(l) > encounters(s));
    }
    // Encounters lie within the years asked for, before the reference date.
    for r in &small {
        for e in r.of_type("Encounter") {
            let start = e["period"]["start"].as_str().unwrap();
            assert!(("2023-12-31".."2026-01-01").contains(&start), "{start}");
        }
    }
}

#[test]
fn every_resource_parses_with_a_stable_unique_id_in_its_patients_compartment() {
    let records = generate(&options(10, 6, 3));
    let mut ids = BTreeSet::new();
    let mut types = BTreeSet::new();
    for record in &records {
        for json in record.all() {
            let r = Resource::parse(json.clone()).unwrap_or_else(|e| panic!("{e}: {json}"));
            let id = r.id.clone().expect("every resource has an id");
            assert!(ids.insert((r.resource_type, id.to_string())), "duplicate {id}");
            assert!(id.as_str().starts_with(&record.id), "{id}");
            assert_eq!(r.index.patient.as_deref(), Some(record.id.as_str()), "{json}");
            assert!(r.index.date.is_some(), "a searchable date: {json}");
            if r.resource_type != ResourceType::Patient {
                assert!(
                    r.index.tokens.iter().any(|t| t.param == "code" && !t.system.is_empty()),
                    "a searchable code: {json}"
                );
            }
            types.insert(r.resource_type);
        }
    }
    assert_eq!(types, ResourceType::ALL.into_iter().collect(), "every supported type is made");
    // Reports reference observations of the same patient that exist.
    for record in &records {
        let observations: BTreeSet<String> = record
            .of_type("Observation")
            .map(|o| format!("Observation/{}", o["id"].as_str().unwrap()))
            .collect();
        for report in record.of_type("DiagnosticReport") {
            let results = report["result"].as_array().unwrap();
            assert!(!results.is_empty());
            for r in results {
                assert!(observations.contains(r["reference"].as_str().unwrap()), "{r}");
            }
        }
    }
}

#[test]
fn codes_and_units_are_the_expected_ones() {
    let records = generate(&options(30, 5, 11));
    let all: Vec<&Value> = records.iter().flat_map(PatientRecord::all).collect();
    let of = |ty: &'static str| all.iter().copied().filter(move |r| r["resourceType"] == ty);
    // LOINC code -> UCUM unit, for every lab and vital sign seen.
    let expected_units = BTreeMap::from([
        ("718-7", "g/dL"),
        ("2345-7", "mg/dL"),
        ("4548-4", "%"),
        ("18262-6", "mg/dL"),
        ("2160-0", "mg/dL"),
        ("2498-4", "ug/dL"),
        ("2823-3", "mmol/L"),
        ("29463-7", "kg"),
        ("8302-2", "cm"),
        ("8867-4", "/min"),
        ("39156-5", "kg/m2"),
    ]);
    let mut seen = BTreeSet::new();
    for o in of("Observation") {
        let (system, code) = coding(&o["code"]);
        assert_eq!(system, "http://loinc.org");
        let (_, category) = coding(&o["category"][0]);
        seen.insert(code.to_owned());
        if code == "85354-9" {
            assert_eq!(category, "vital-signs");
            let components = o["component"].as_array().unwrap();
            let codes: Vec<&str> = components.iter().map(|c| coding(&c["code"]).1).collect();
            assert_eq!(codes, ["8480-6", "8462-4"]);
            for c in components {
                assert_eq!(c["valueQuantity"]["code"], "mm[Hg]");
                assert_eq!(c["valueQuantity"]["system"], "http://unitsofmeasure.org");
            }
            continue;
        }
        let unit = expected_units.get(code).unwrap_or_else(|| panic!("unexpected code {code}"));
        assert_eq!(o["valueQuantity"]["code"], *unit, "{code}");
        assert_eq!(o["valueQuantity"]["system"], "http://unitsofmeasure.org");
        let lab = ["718-7", "2345-7", "4548-4", "18262-6", "2160-0", "2498-4", "2823-3"];
        let want = if lab.contains(&code) { "laboratory" } else { "vital-signs" };
        assert_eq!(category, want, "{code}");
    }
    assert_eq!(seen.len(), expected_units.len() + 1, "every lab and vital sign occurs: {seen:?}");

    let codes = |ty: &'static str, field: &str| -> BTreeSet<(String, String)> {
        of(ty)
            .map(|r| {
                let (s, c) = coding(&r[field]);
                (s.to_owned(), c.to_owned())
            })
            .collect()
    };
    let conditions = codes("Condition", "code");
    for c in ["38341003", "44054006", "195967001", "55822004"] {
        assert!(conditions.contains(&("http://snomed.info/sct".into(), c.into())), "{c}");
    }
    let medications = codes("MedicationRequest", "medicationCodeableConcept");
    let rxnorm = "http://www.nlm.nih.gov/research/umls/rxnorm";
    for m in ["860975", "314076", "617312", "745752"] {
        assert!(medications.contains(&(rxnorm.into(), m.into())), "{m}");
    }
    let vaccines = codes("Immunization", "vaccineCode");
    for v in ["140", "158", "115", "208"] {
        assert!(vaccines.contains(&("http://hl7.org/fhir/sid/cvx".into(), v.into())), "{v}");
    }
    assert!(codes("Procedure", "code").iter().all(|(s, _)| s == "http://snomed.info/sct"));
    assert!(codes("AllergyIntolerance", "code").iter().all(|(s, _)| s == "http://snomed.info/sct"));
    for e in of("Encounter") {
        let class = e["class"]["code"].as_str().unwrap();
        assert!(["AMB", "EMER", "IMP"].contains(&class), "{class}");
        assert_eq!(e["class"]["system"], "http://terminology.hl7.org/CodeSystem/v3-ActCode");
    }
    // Medications match the patient's conditions: metformin only for diabetics.
    for r in &records {
        let metformin = r
            .of_type("MedicationRequest")
            .any(|m| coding(&m["medicationCodeableConcept"]).1 == "860975");
        if metformin {
            assert!(r.has_condition("44054006"), "{}", r.id);
        }
    }
    // Notes are base64 text about a fictional person.
    for d in of("DocumentReference") {
        let attachment = &d["content"][0]["attachment"];
        assert_eq!(attachment["contentType"], "text/plain");
        let text = decode_base64(attachment["data"].as_str().unwrap());
        assert!(text.starts_with("Synthetic note, not a real person."), "{text}");
    }
}

#[test]
fn lab_values_are_plausible_and_follow_conditions() {
    let records = generate(&options(80, 4, 5));
    let ranges = BTreeMap::from([
        ("718-7", (6.0, 19.0)),
        ("2345-7", (50.0, 400.0)),
        ("4548-4", (4.0, 14.0)),
        ("18262-6", (30.0, 260.0)),
        ("2160-0", (0.3, 5.0)),
        ("2498-4", (5.0, 250.0)),
        ("2823-3", (2.8, 6.5)),
        ("29463-7", (35.0, 200.0)),
        ("8867-4", (40.0, 140.0)),
        ("39156-5", (15.0, 56.0)),
    ]);
    let (mut diabetic, mut other) = (Vec::new(), Vec::new());
    for r in &records {
        let is_diabetic = r.has_condition("44054006");
        for o in r.of_type("Observation") {
            let code = coding(&o["code"]).1;
            if let Some(&(lo, hi)) = ranges.get(code) {
                let v = o["valueQuantity"]["value"].as_f64().unwrap();
                assert!((lo..=hi).contains(&v), "{code} = {v}");
            }
            if code == "85354-9" {
                let sys = o["component"][0]["valueQuantity"]["value"].as_f64().unwrap();
                let dia = o["component"][1]["valueQuantity"]["value"].as_f64().unwrap();
                assert!((80.0..=200.0).contains(&sys) && (40.0..=130.0).contains(&dia));
                assert!(sys > dia, "{sys}/{dia}");
            }
            if code == "4548-4" {
                let v = o["valueQuantity"]["value"].as_f64().unwrap();
                if is_diabetic { diabetic.push(v) } else { other.push(v) }
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    assert!(diabetic.len() >= 10 && other.len() >= 10, "{} {}", diabetic.len(), other.len());
    let (d, o) = (mean(&diabetic), mean(&other));
    assert!(d > o + 1.0, "diabetics' mean HbA1c {d} against {o}");
    assert!((5.0..6.0).contains(&o), "non-diabetics' mean HbA1c {o}");
}

#[tokio::test]
async fn bundles_load_into_a_store_and_searches_find_them() {
    let records = generate(&options(4, 3, 9));
    let store = SqliteStore::open_in_memory().unwrap();
    for record in &records {
        let bundle = transaction_bundle(record);
        assert_eq!(bundle["type"], "transaction");
        let entries = bundle["entry"].as_array().unwrap();
        assert_eq!(entries.len(), record.all().count());
        assert_eq!(entries[0]["request"]["url"], format!("Patient/{}", record.id));
        let resources = entries
            .iter()
            .map(|e| {
                let r = Resource::parse(e["resource"].clone()).unwrap();
                let url = format!("{}/{}", r.resource_type, r.id.as_ref().unwrap());
                assert_eq!(e["request"]["method"], "PUT");
                assert_eq!(e["request"]["url"], url);
                r
            })
            .collect();
        store.update_all(resources).await.unwrap();
    }
    for record in &records {
        let want: BTreeSet<&str> = record
            .of_type("Observation")
            .filter(|o| coding(&o["code"]).1 == "4548-4")
            .map(|o| o["id"].as_str().unwrap())
            .collect();
        assert!(!want.is_empty());
        let patient = record.id.as_str();
        let params =
            [("code", "http://loinc.org|4548-4"), ("patient", patient), ("_count", "1000")];
        let query = SearchQuery::parse(ResourceType::Observation, params).unwrap();
        let page = store.search(&query).await.unwrap();
        let found: BTreeSet<&str> = page.entries.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(found, want, "{patient}");
        // Category and date searches work on the output too.
        let params = [
            ("category", "http://terminology.hl7.org/CodeSystem/observation-category|laboratory"),
            ("patient", patient),
            ("date", "ge2025"),
            ("_count", "1000"),
        ];
        let query = SearchQuery::parse(ResourceType::Observation, params).unwrap();
        let labs_2025 = store.search(&query).await.unwrap().total;
        let expected = record
            .of_type("Observation")
            .filter(|o| coding(&o["category"][0]).1 == "laboratory")
            .filter(|o| o["effectiveDateTime"].as_str().unwrap() >= "2025")
            .count();
        assert!(expected > 0);
        assert_eq!(labs_2025, expected as u64, "{patient}");
    }
}

fn decode_base64(s: &str) -> String {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let mut out = Vec::new();
    for chunk in s.as_bytes().chunks(4) {
        let digits: Vec<u8> = chunk.iter().filter(|&&c| c != b'=').map(|&c| value(c)).collect();
        let n = digits.iter().enumerate().fold(0u32, |n, (i, &d)| n | u32::from(d) << (18 - 6 * i));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..digits.len()]);
    }
    String::from_utf8(out).unwrap()
}
