//! The mapping's own checks: the demo mapping loads; bad mappings are refused, by the
//! checks of the file or by the database, with readable errors.

use super::{FIXTURES, LegacyDb, config};
use medrec_store::{
    fhir::ResourceType,
    legacy::{LegacyConfig, LegacyError, LegacySqliteStore},
};
use serde_json::{Value, json};

#[test]
fn the_demo_mapping_loads() {
    let types: Vec<_> = config().resource_types().collect();
    assert_eq!(
        types,
        [
            ResourceType::Patient,
            ResourceType::Observation,
            ResourceType::MedicationRequest,
            ResourceType::Immunization,
            ResourceType::Encounter
        ]
    );
}

fn refused(text: &str) -> LegacyError {
    LegacyConfig::from_json(text).expect_err("the mapping is refused")
}

fn refused_by_the_database(text: &str) -> LegacyError {
    let db = LegacyDb::new("");
    let config = LegacyConfig::from_json(text).unwrap();
    LegacySqliteStore::open(&db.0, config).expect_err("the mapping does not fit")
}

fn with(resource: &str, mapping: &Value) -> String {
    json!({"resources": {resource: mapping}}).to_string()
}

#[test]
fn bad_mappings_are_refused_with_readable_errors() {
    let obs = |extra: Value| {
        let mut m = json!({"table": "resultdetail_info", "id": "ResultDetailID"});
        m.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        with("Observation", &m)
    };

    let e = refused(r#"{"resources": {"Patient": {"table": "patient_info"}}}"#);
    assert!(
        matches!(e, LegacyError::Json(_)) && e.to_string().contains("missing field `id`"),
        "{e}"
    );
    let e = refused(r#"{"resources": {"Patient": {"tabel": "patient_info", "id": "PatientID"}}}"#);
    assert!(e.to_string().contains("unknown field `tabel`"), "{e}");
    let e = refused("{\"resources\": ");
    assert!(matches!(e, LegacyError::Json(_)), "{e}");

    let e = refused(&with(
        "Patient",
        &json!({"table": "patient_info; DROP TABLE x", "id": "PatientID"}),
    ));
    assert!(
        matches!(&e, LegacyError::NotAnIdentifier { name, .. } if name == "patient_info; DROP TABLE x"),
        "{e}"
    );
    assert!(e.to_string().contains("not a plain SQL identifier"), "{e}");
    let e = refused(&obs(json!({"patient": "result_info.Patient\"ID"})));
    assert!(matches!(e, LegacyError::NotAnIdentifier { .. }), "{e}");
    let e = refused(&obs(json!({"template": {"x": "{Value) OR (1}"}})));
    assert!(matches!(e, LegacyError::NotAnIdentifier { .. }), "{e}");

    for (mapping, words) in [
        (with("Basic", &json!({"table": "t", "id": "id"})), "not a resource type"),
        (obs(json!({"patient": "result_info.PatientID"})), "neither `table` nor joined"),
        (
            obs(json!({"template": {"subject": {"reference": "Patient/1"}}})),
            "may not set `subject`",
        ),
        (
            obs(json!({"date": "Value", "template": {"effectiveDateTime": "{Value}"}})),
            "may not set `effectiveDateTime`",
        ),
        (obs(json!({"template": {"status": "{Value:money}"}})), "not a conversion"),
        (obs(json!({"template": {"status": "{Value"}})), "unclosed"),
        (obs(json!({"code": {"system": "http://loinc.org"}})), "exactly one of `code`"),
        (
            obs(
                json!({"joins": [{"table": "resultdetail_info", "on": [["ResultID", "ResultID"]]}]}),
            ),
            "appears twice",
        ),
        (
            with(
                "Patient",
                &json!({"table": "patient_info", "id": "PatientID", "patient": "PatientID"}),
            ),
            "own compartment",
        ),
        (
            with(
                "Patient",
                &json!({"table": "patient_info", "id": "PatientID", "value": {"column": "DOB"}}),
            ),
            "only an Observation",
        ),
        (
            with(
                "Immunization",
                &json!({"table": "immunization_info", "id": "ImmunizationID", "category": {"system": "s", "code": "c"}}),
            ),
            "no category",
        ),
    ] {
        let e = refused(&mapping);
        assert!(matches!(e, LegacyError::Mapping { .. }), "{mapping}: {e:?}");
        assert!(e.to_string().contains(words), "{mapping}: {e}");
    }

    // Names that are identifiers but not in the database.
    let e =
        refused_by_the_database(&with("Patient", &json!({"table": "patients", "id": "PatientID"})));
    assert!(matches!(&e, LegacyError::UnknownTable { table, .. } if table == "patients"), "{e}");
    assert!(e.to_string().contains("table 'patients'"), "{e}");
    let e = refused_by_the_database(&obs(json!({"template": {"status": "{Flag}"}})));
    assert!(
        matches!(&e, LegacyError::UnknownColumn { table, column, .. } if table == "resultdetail_info" && column == "Flag"),
        "{e}"
    );
    assert!(e.to_string().contains("column 'Flag' of table 'resultdetail_info'"), "{e}");
    let e = refused_by_the_database(&obs(
        json!({"joins": [{"table": "result_info", "on": [["ResultID", "result_info.Result"]]}]}),
    ));
    assert!(matches!(&e, LegacyError::UnknownColumn { column, .. } if column == "Result"), "{e}");

    // A file that is not there, and a database that is not one.
    let e = LegacyConfig::load(format!("{FIXTURES}/no-such-mapping.json")).unwrap_err();
    assert!(
        matches!(e, LegacyError::Io { .. }) && e.to_string().contains("no-such-mapping.json"),
        "{e}"
    );
    let e = LegacySqliteStore::open(format!("{FIXTURES}/medrec-v1.json"), config()).unwrap_err();
    assert!(matches!(e, LegacyError::Database(_)), "{e}");
}
