//! The shared cases on a SQLite file, and rows of it that do not fit the mapping.

use super::{LegacyDb, cases, found, id, page, read};
use medrec_store::{RecordReader, StoreError, fhir::ResourceType};

#[tokio::test]
async fn each_type_reads_by_id_as_fhir() {
    cases::each_type_reads_by_id_as_fhir(&LegacyDb::new("").open()).await;
}

#[tokio::test]
async fn searches_filter_in_sql_like_the_native_backends() {
    cases::searches_filter_in_sql_like_the_native_backends(&LegacyDb::new("").open()).await;
}

#[tokio::test]
async fn paging_and_sorting_give_the_totals_and_orders_of_the_native_backends() {
    let db = LegacyDb::new("");
    cases::paging_and_sorting_give_the_totals_and_orders_of_the_native_backends(&db.open()).await;
}

#[tokio::test]
async fn sql_metacharacters_in_values_are_data() {
    let db = LegacyDb::new(cases::SQL_PATIENT);
    cases::sql_metacharacters_in_values_are_data(&db.open()).await;
    assert_eq!((db.count("patient_info"), db.count("result_info")), (4, 3));
}

#[tokio::test]
async fn resources_parse_and_hash_the_same_on_every_read() {
    let db = LegacyDb::new("");
    cases::resources_parse_and_hash_the_same_on_every_read(&db.open(), &db.open()).await;
}

#[tokio::test]
async fn a_row_that_does_not_fit_is_a_database_error_naming_the_column_not_the_value() {
    let db = LegacyDb::new(
        "INSERT INTO result_info VALUES (904, 1003, 'Panel', '03/01/2024', NULL);
         INSERT INTO resultdetail_info VALUES (9041, 904, '718-7', 'Hemoglobin', '12', 'g/dL', NULL);",
    );
    let store = db.open();
    let err = store.read(ResourceType::Observation, &id("9041")).await.unwrap_err();
    let StoreError::Database(message) = &err else { panic!("{err:?}") };
    assert!(message.contains("Observation/9041"), "{message}");
    assert!(message.contains("result_info.ResultDateTime"), "{message}");
    assert!(!message.contains("03/01/2024"), "{message}");
    // Other rows are still served.
    assert_eq!(found(&store, ResourceType::Observation, &[("patient", "1001")]).await.len(), 4);
}

#[tokio::test]
async fn a_row_without_a_last_update_was_last_updated_at_the_epoch() {
    let db = LegacyDb::new(
        "INSERT INTO result_info VALUES (905, 1003, 'Panel', '2025-07-01 10:00:00', NULL);
         INSERT INTO resultdetail_info VALUES (9051, 905, '718-7', 'Hemoglobin', '12', 'g/dL', NULL);",
    );
    let store = db.open();
    let o = read(&store, ResourceType::Observation, "9051").await;
    assert_eq!(o.last_updated, 0);
    assert_eq!(o.json["meta"]["lastUpdated"], "1970-01-01T00:00:00.000Z");
    let obs = ResourceType::Observation;
    assert_eq!(found(&store, obs, &[("_lastUpdated", "lt2000")]).await, ["9051"]);
    assert_eq!(found(&store, obs, &[("_lastUpdated", "ge2000")]).await.len(), 6);
    let (_, ids) = page(&store, obs, &[("_sort", "_lastUpdated"), ("_count", "2")]).await;
    assert_eq!(ids, ["9051", "9011"]);
}
