//! Conformance of the mysql backend, on a real MariaDB or MySQL server.
//!
//! The server is `mysql://root@127.0.0.1:3306/test` unless
//! `MEDREC_TEST_MYSQL_URL` names another (its user must be able to create databases).
//! Every case gets a database of its own. An unreachable server fails the tests.

use medrec_store::{
    StoreError,
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

crate::postgres::sql_server_tests!(fresh());
