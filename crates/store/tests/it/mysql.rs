//! Conformance of the mysql backend, on a real MariaDB or MySQL server.
//!
//! The server is `mysql://root@127.0.0.1:3306/test` unless
//! `MEDREC_TEST_MYSQL_URL` names another (its user must be able to create databases).
//! Every case gets a database of its own. An unreachable server fails the tests.

use medrec_store::{
    RecordStore, StoreError,
    fhir::{Resource, ResourceType},
    search::SearchQuery,
    sql::{MysqlStore, testing::TestStore},
};

const URL_VAR: &str = "MEDREC_TEST_MYSQL_URL";
const DEFAULT_URL: &str = "mysql://root@127.0.0.1:3306/test";

async fn fresh() -> TestStore<MysqlStore> {
    let url = std::env::var(URL_VAR).unwrap_or_else(|_| DEFAULT_URL.to_owned());
    TestStore::mysql(&url).await.unwrap_or_else(|e| {
        panic!(
            "the MariaDB/MySQL server for the tests is unusable ({e}); start it, or set {URL_VAR} \
             to the URL of one (default {DEFAULT_URL})"
        )
    })
}

medrec_store::conformance_tests!(fresh());

#[tokio::test]
async fn an_unreachable_server_is_a_database_error() {
    let err = MysqlStore::connect("mysql://root@127.0.0.1:1/test").await.unwrap_err();
    let StoreError::Database(message) = &err else { panic!("{err:?}") };
    assert!(message.contains("cannot connect to MySQL at"), "{message}");
    assert!(message.contains("127.0.0.1:1"), "{message}");
    let err = MysqlStore::connect("mysql://root:secret@127.0.0.1:port/x").await.unwrap_err();
    let StoreError::Database(message) = &err else { panic!("{err:?}") };
    assert!(message.contains("invalid MySQL URL") && !message.contains("secret"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_again_keeps_the_schema_and_the_records() {
    let store = fresh().await;
    let json = serde_json::json!({"resourceType": "Patient", "id": "again"});
    store.update(Resource::parse(json).unwrap()).await.unwrap();
    let other = store.reconnect().await.unwrap();
    let read = other.read(ResourceType::Patient, &"again".parse().unwrap()).await.unwrap();
    assert_eq!(read.unwrap().version, 1);
    assert_eq!(other.search(&SearchQuery::all(ResourceType::Patient)).await.unwrap().total, 1);
}

use crate::postgres::checks;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_codes_and_systems_compare_exactly() {
    checks::ids_codes_and_systems_compare_exactly(&*fresh().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resources_without_a_date_sort_last() {
    checks::resources_without_a_date_sort_last(&*fresh().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_writes_serialise() {
    checks::racing_writes_serialise(&*fresh().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_values_are_stored_and_found() {
    checks::long_values_are_stored_and_found(&*fresh().await).await;
}
