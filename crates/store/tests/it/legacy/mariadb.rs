//! The shared cases on a real MariaDB (or MySQL) server: the original demo database's
//! kind. The server is `mysql://root@127.0.0.1:3306/test` unless
//! `MEDREC_TEST_MYSQL_URL` names another; each case gets a fresh database of its own.

use super::cases;
use medrec_store::{
    legacy::{LegacyError, LegacyMysqlStore},
    sql::{MysqlStore, testing::TestStore},
};
use sqlx::{AssertSqlSafe, Connection as _};

const URL_VAR: &str = "MEDREC_TEST_MYSQL_URL";
const DEFAULT_URL: &str = "mysql://root@127.0.0.1:3306/test";

/// A fresh database with the fixtures (and `extra` SQL), dropped with it.
struct LegacyDb {
    url: String,
    _database: TestStore<MysqlStore>,
}

impl LegacyDb {
    async fn new(extra: &str) -> Self {
        let admin = std::env::var(URL_VAR).unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let database = TestStore::mysql(&admin).await.unwrap_or_else(|e| {
            panic!("the MariaDB/MySQL server for the tests is unusable ({e}); start it or set {URL_VAR}")
        });
        let (base, params) = admin.split_once('?').map_or((admin.as_str(), ""), |(b, p)| (b, p));
        let server = base.rsplit_once('/').map_or(base, |(s, _)| s);
        let mut url = format!("{server}/{}", database.database());
        if !params.is_empty() {
            url = format!("{url}?{params}");
        }
        let mut conn = sqlx::MySqlConnection::connect(&url).await.unwrap();
        for sql in [super::fixture("medrec-v1-schema.sql"), super::fixture("medrec-v1-seed.sql")] {
            sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
        }
        if !extra.is_empty() {
            sqlx::raw_sql(AssertSqlSafe(extra.to_owned())).execute(&mut conn).await.unwrap();
        }
        conn.close().await.unwrap();
        Self { url, _database: database }
    }

    async fn open(&self) -> LegacyMysqlStore {
        LegacyMysqlStore::connect(&self.url, super::config(), 4).await.unwrap()
    }
}

#[tokio::test]
async fn each_type_reads_by_id_as_fhir() {
    let db = LegacyDb::new("").await;
    cases::each_type_reads_by_id_as_fhir(&db.open().await).await;
}

#[tokio::test]
async fn searches_filter_in_sql_like_the_native_backends() {
    let db = LegacyDb::new("").await;
    cases::searches_filter_in_sql_like_the_native_backends(&db.open().await).await;
}

#[tokio::test]
async fn paging_and_sorting_give_the_totals_and_orders_of_the_native_backends() {
    let db = LegacyDb::new("").await;
    cases::paging_and_sorting_give_the_totals_and_orders_of_the_native_backends(&db.open().await)
        .await;
}

#[tokio::test]
async fn sql_metacharacters_in_values_are_data() {
    let db = LegacyDb::new(cases::SQL_PATIENT).await;
    cases::sql_metacharacters_in_values_are_data(&db.open().await).await;
}

#[tokio::test]
async fn resources_parse_and_hash_the_same_on_every_read() {
    let db = LegacyDb::new("").await;
    let (one, two) = (db.open().await, db.open().await);
    cases::resources_parse_and_hash_the_same_on_every_read(&one, &two).await;
}

#[tokio::test]
async fn the_mapping_is_checked_against_the_schema() {
    let db = LegacyDb::new("").await;
    let mapping = r#"{"resources": {"Patient": {"table": "patient_info", "id": "PatientID",
        "template": {"gender": "{Sex}"}}}}"#;
    let config = medrec_store::legacy::LegacyConfig::from_json(mapping).unwrap();
    let e = LegacyMysqlStore::connect(&db.url, config, 1).await.unwrap_err();
    assert!(matches!(&e, LegacyError::UnknownColumn { column, .. } if column == "Sex"), "{e}");
    let mapping = r#"{"resources": {"Patient": {"table": "patients", "id": "PatientID"}}}"#;
    let config = medrec_store::legacy::LegacyConfig::from_json(mapping).unwrap();
    let e = LegacyMysqlStore::connect(&db.url, config, 1).await.unwrap_err();
    assert!(matches!(&e, LegacyError::UnknownTable { table, .. } if table == "patients"), "{e}");
    let e = LegacyMysqlStore::connect("mysql://root:secret@127.0.0.1:1/x", super::config(), 1)
        .await
        .unwrap_err();
    assert!(matches!(e, LegacyError::Database(_)) && !e.to_string().contains("secret"), "{e}");
}
