//! The shared cases on a real PostgreSQL server. The server is
//! `postgres://postgres@127.0.0.1:5432/postgres` unless `MEDREC_TEST_PG_URL` names
//! another; each case gets a fresh database of its own. The fixtures' schema is created
//! as a PostgreSQL provider would write it: `DATETIME` is `TIMESTAMP`, and the unquoted
//! names (`PatientID`) are folded to lower case, which the mapping still names.

use super::cases;
use medrec_store::{
    legacy::{LegacyError, LegacyPostgresStore},
    sql::{PostgresStore, testing::TestStore},
};
use sqlx::{AssertSqlSafe, Connection as _};

const URL_VAR: &str = "MEDREC_TEST_PG_URL";
const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh database with the fixtures (and `extra` SQL), dropped with it.
struct LegacyDb {
    url: String,
    _database: TestStore<PostgresStore>,
}

impl LegacyDb {
    async fn new(extra: &str) -> Self {
        let admin = std::env::var(URL_VAR).unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let database = TestStore::postgres(&admin).await.unwrap_or_else(|e| {
            panic!(
                "the PostgreSQL server for the tests is unusable ({e}); start it or set {URL_VAR}"
            )
        });
        let (base, params) = admin.split_once('?').map_or((admin.as_str(), ""), |(b, p)| (b, p));
        let server = base.rsplit_once('/').map_or(base, |(s, _)| s);
        let mut url = format!("{server}/{}", database.database());
        if !params.is_empty() {
            url = format!("{url}?{params}");
        }
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        let schema = super::fixture("medrec-v1-schema.sql").replace("DATETIME", "TIMESTAMP");
        for sql in [schema, super::fixture("medrec-v1-seed.sql"), extra.to_owned()] {
            if !sql.is_empty() {
                sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
            }
        }
        conn.close().await.unwrap();
        Self { url, _database: database }
    }

    async fn open(&self) -> LegacyPostgresStore {
        LegacyPostgresStore::connect(&self.url, super::config(), 4).await.unwrap()
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
    let e = LegacyPostgresStore::connect(&db.url, config, 1).await.unwrap_err();
    assert!(matches!(&e, LegacyError::UnknownColumn { column, .. } if column == "Sex"), "{e}");
    let mapping = r#"{"resources": {"Patient": {"table": "patients", "id": "PatientID"}}}"#;
    let config = medrec_store::legacy::LegacyConfig::from_json(mapping).unwrap();
    let e = LegacyPostgresStore::connect(&db.url, config, 1).await.unwrap_err();
    assert!(matches!(&e, LegacyError::UnknownTable { table, .. } if table == "patients"), "{e}");
    let e =
        LegacyPostgresStore::connect("postgres://root:secret@127.0.0.1:1/x", super::config(), 1)
            .await
            .unwrap_err();
    assert!(matches!(e, LegacyError::Database(_)) && !e.to_string().contains("secret"), "{e}");
}

#[tokio::test]
async fn a_quoted_mixed_case_schema_is_read_as_written() {
    let db = LegacyDb::new("").await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(
        r#"CREATE TABLE "Person" ("PersonID" INTEGER PRIMARY KEY, "Sex" TEXT);
           INSERT INTO "Person" VALUES (7, 'female');"#
            .to_owned(),
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    let mapping = r#"{"resources": {"Patient": {"table": "Person", "id": "PersonID",
        "template": {"gender": "{Sex}"}}}}"#;
    let config = medrec_store::legacy::LegacyConfig::from_json(mapping).unwrap();
    let people = LegacyPostgresStore::connect(&db.url, config, 1).await.unwrap();
    let p = super::read(&people, medrec_store::fhir::ResourceType::Patient, "7").await;
    assert_eq!(p.json["gender"], "female");
}
