//! Conformance of the sqlite backend.

use medrec_store::{
    RecordStore, StoreError,
    fhir::{Resource, ResourceId, ResourceType},
    search::SearchQuery,
    sqlite::SqliteStore,
};
use serde_json::{Value, json};
use std::{
    ops::Deref,
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
};

/// A database path unique to this test process; the file and its WAL companions are
/// removed (best effort) when dropped.
struct TempPath(PathBuf);

impl TempPath {
    fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("medrec-store-{tag}-{}-{n}.sqlite", std::process::id());
        let path = Self(std::env::temp_dir().join(name));
        path.remove();
        path
    }

    fn remove(&self) {
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut name = self.0.clone().into_os_string();
            name.push(suffix);
            let _ = std::fs::remove_file(name);
        }
    }
}

impl Drop for TempPath {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A store on its own temporary file.
struct TempStore {
    // Fields drop in order: the store closes before its file is removed.
    store: SqliteStore,
    _path: TempPath,
}

impl Deref for TempStore {
    type Target = SqliteStore;

    fn deref(&self) -> &SqliteStore {
        &self.store
    }
}

fn fresh() -> TempStore {
    let path = TempPath::new("conformance");
    let store = SqliteStore::open(&path.0).expect("a fresh temp file opens");
    TempStore { store, _path: path }
}

medrec_store::conformance_tests!(async { fresh() });

/// The same suite on the in-memory store.
mod in_memory {
    use medrec_store::sqlite::SqliteStore;

    medrec_store::conformance_tests!(async {
        Box::new(SqliteStore::open_in_memory().expect("an in-memory store opens"))
    });
}

fn r(v: Value) -> Resource {
    Resource::parse(v).unwrap()
}

fn id(s: &str) -> ResourceId {
    s.parse().unwrap()
}

async fn found(store: &dyn RecordStore, ty: ResourceType, params: &[(&str, &str)]) -> Vec<String> {
    let query = SearchQuery::parse(ty, params.iter().copied()).unwrap();
    store.search(&query).await.unwrap().entries.iter().map(|s| s.id.to_string()).collect()
}

fn database_error(result: medrec_store::Result<SqliteStore>) -> String {
    match result {
        Err(StoreError::Database(message)) => message,
        Err(other) => panic!("expected a database error, got {other}"),
        Ok(store) => panic!("expected a database error, opened {store:?}"),
    }
}

#[tokio::test]
async fn reopening_the_file_keeps_every_version() {
    let path = TempPath::new("reopen");
    let (created, v2) = {
        let store = SqliteStore::open(&path.0).unwrap();
        let created = store
            .create(r(json!({"resourceType": "Patient", "birthDate": "1970-01-01"})))
            .await
            .unwrap();
        store
            .update(r(json!({"resourceType": "Patient", "id": "p", "gender": "male"})))
            .await
            .unwrap();
        let v2 = store
            .update(r(json!({"resourceType": "Patient", "id": "p", "gender": "female"})))
            .await
            .unwrap();
        (created, v2)
    };
    let store = SqliteStore::open(&path.0).unwrap();
    assert_eq!(store.read(ResourceType::Patient, &created.id).await.unwrap().unwrap(), created);
    assert_eq!(store.read(ResourceType::Patient, &id("p")).await.unwrap().unwrap(), v2);
    let v1 = store.read_version(ResourceType::Patient, &id("p"), 1).await.unwrap().unwrap();
    assert_eq!(v1.json["gender"], "male");
    assert_eq!(found(&store, ResourceType::Patient, &[("_sort", "_id")]).await.len(), 2);
    // Versions continue where they were.
    let v3 = store.update(r(json!({"resourceType": "Patient", "id": "p"}))).await.unwrap();
    assert_eq!(v3.version, 3);
    assert_eq!(store.path(), Some(std::fs::canonicalize(&path.0).unwrap().as_path()));
}

#[tokio::test]
async fn the_file_is_in_wal_mode_with_the_schema() {
    let path = TempPath::new("wal");
    let store = SqliteStore::open(&path.0).unwrap();
    let conn = rusqlite::Connection::open(&path.0).unwrap();
    let mode: String = conn.query_row("PRAGMA journal_mode", [], |row| row.get(0)).unwrap();
    assert_eq!(mode, "wal");
    let names: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'index') ORDER BY name")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for name in [
        "resources",
        "resource_versions",
        "resource_tokens",
        "resources_patient_id",
        "resources_date_start",
        "resources_last_updated",
        "resource_tokens_code",
    ] {
        assert!(names.iter().any(|n| n == name), "{name} missing from {names:?}");
    }
    // A compartment's page is read from the patient index in order, not by walking
    // every resource of the type through the primary key (which made reading every
    // patient's records quadratic in the number of patients).
    let plan: Vec<String> = conn
        .prepare(
            "EXPLAIN QUERY PLAN SELECT r.json FROM resources r \
             WHERE r.type = 'Observation' AND r.patient = 'p1' ORDER BY r.id ASC LIMIT 500",
        )
        .unwrap()
        .query_map([], |row| row.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let plan = plan.join(" | ");
    assert!(plan.contains("resources_patient_id"), "{plan}");
    assert!(!plan.contains("TEMP B-TREE"), "no sort needed: {plan}");
    drop(store);
}

#[tokio::test]
async fn a_corrupt_file_is_a_database_error() {
    let path = TempPath::new("corrupt");
    std::fs::write(&path.0, "this is not a SQLite database, just text ".repeat(200)).unwrap();
    let message = database_error(SqliteStore::open(&path.0));
    assert!(message.contains("not a database"), "{message}");
    assert!(message.contains(&*path.0.to_string_lossy()), "names the file: {message}");
    // The file is left as it was.
    assert!(std::fs::read_to_string(&path.0).unwrap().starts_with("this is not"));
}

#[tokio::test]
async fn an_unusable_path_is_a_database_error() {
    let missing_dir = std::env::temp_dir()
        .join(format!("medrec-store-no-such-dir-{}", std::process::id()))
        .join("records.sqlite");
    let message = database_error(SqliteStore::open(&missing_dir));
    assert!(message.contains("unable to open database file"), "{message}");
    assert!(message.contains(&*missing_dir.to_string_lossy()), "names the file: {message}");
    assert!(!missing_dir.parent().unwrap().exists());
    // A directory is no database file either.
    let message = database_error(SqliteStore::open(std::env::temp_dir()));
    assert!(message.starts_with("cannot open SQLite database"), "{message}");
}

#[tokio::test]
async fn a_schema_from_a_newer_medrec_is_refused() {
    let path = TempPath::new("newer");
    drop(SqliteStore::open(&path.0).unwrap());
    rusqlite::Connection::open(&path.0).unwrap().pragma_update(None, "user_version", 99).unwrap();
    let message = database_error(SqliteStore::open(&path.0));
    assert!(message.contains("version 99"), "{message}");
}

#[tokio::test]
async fn a_version_1_store_is_reindexed_for_the_new_parameters() {
    let path = TempPath::new("v1");
    let store = SqliteStore::open(&path.0).unwrap();
    store
        .update(r(json!({"resourceType": "Patient", "id": "p1", "gender": "female",
                         "name": [{"family": "Curie"}]})))
        .await
        .unwrap();
    drop(store);
    // What version 1 left: no codings beyond category and code.
    let conn = rusqlite::Connection::open(&path.0).unwrap();
    conn.execute("DELETE FROM resource_tokens WHERE param NOT IN ('category', 'code')", [])
        .unwrap();
    conn.pragma_update(None, "user_version", 1).unwrap();
    drop(conn);
    let store = SqliteStore::open(&path.0).unwrap();
    for (name, value) in [("name", "cur"), ("gender", "female")] {
        let q = SearchQuery::parse(ResourceType::Patient, [(name, value)]).unwrap();
        assert_eq!(store.search(&q).await.unwrap().total, 1, "{name}");
    }
    let version: i64 = rusqlite::Connection::open(&path.0)
        .unwrap()
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, 2);
}

#[tokio::test]
async fn the_index_follows_the_current_version() {
    let store = fresh();
    let obs = |code: &str, date: &str| {
        r(json!({"resourceType": "Observation", "id": "o", "subject": {"reference": "Patient/p1"},
                 "code": {"coding": [{"system": "http://loinc.org", "code": code}]}, "effectiveDateTime": date}))
    };
    store.update(obs("2498-4", "2020-01-01")).await.unwrap();
    store.update(obs("718-7", "2025-01-01")).await.unwrap();
    let ty = ResourceType::Observation;
    assert!(found(&*store, ty, &[("code", "2498-4")]).await.is_empty(), "old tokens are gone");
    assert_eq!(found(&*store, ty, &[("code", "718-7")]).await, ["o"]);
    assert!(found(&*store, ty, &[("date", "2020")]).await.is_empty());
    assert_eq!(found(&*store, ty, &[("date", "2025")]).await, ["o"]);
    // Moved to another patient's compartment, and out of any.
    let moved =
        json!({"resourceType": "Observation", "id": "o", "subject": {"reference": "Patient/p2"}});
    store.update(r(moved)).await.unwrap();
    assert!(found(&*store, ty, &[("patient", "p1")]).await.is_empty());
    assert_eq!(found(&*store, ty, &[("patient", "p2")]).await, ["o"]);
    assert!(found(&*store, ty, &[("code", "718-7")]).await.is_empty());
    store.update(r(json!({"resourceType": "Observation", "id": "o"}))).await.unwrap();
    assert!(found(&*store, ty, &[("patient", "p2")]).await.is_empty());
}

#[tokio::test]
async fn resources_without_a_date_match_no_date_search_and_sort_last() {
    let store = fresh();
    let ty = ResourceType::Observation;
    store.update(r(json!({"resourceType": "Observation", "id": "a"}))).await.unwrap();
    for (id, date) in [("b", "2020"), ("c", "2021")] {
        store
            .update(r(json!({"resourceType": "Observation", "id": id, "effectiveDateTime": date})))
            .await
            .unwrap();
    }
    assert_eq!(found(&*store, ty, &[("date", "ge1900")]).await, ["b", "c"]);
    assert_eq!(found(&*store, ty, &[("date", "lt3000")]).await, ["b", "c"]);
    assert_eq!(found(&*store, ty, &[("_sort", "date")]).await, ["b", "c", "a"]);
    assert_eq!(found(&*store, ty, &[("_sort", "-date")]).await, ["c", "b", "a"]);
}

#[tokio::test]
async fn a_created_patient_is_its_own_compartment() {
    let store = fresh();
    let created = store.create(r(json!({"resourceType": "Patient"}))).await.unwrap();
    assert_eq!(
        found(&*store, ResourceType::Patient, &[("patient", created.id.as_str())]).await,
        [created.id.to_string()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_and_writes_interleave_without_errors() {
    let store = std::sync::Arc::new(fresh());
    let mut tasks = Vec::new();
    for writer in 0..4 {
        let store = std::sync::Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                let resource =
                    r(json!({"resourceType": "Observation", "id": format!("w{writer}-{i}"),
                    "code": {"coding": [{"system": "http://loinc.org", "code": "718-7"}]}}));
                store.update(resource).await.unwrap();
            }
        }));
    }
    for _ in 0..8 {
        let store = std::sync::Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut last = 0;
            for _ in 0..25 {
                let query = SearchQuery::parse(ResourceType::Observation, [("code", "718-7")]);
                let page = store.search(&query.unwrap()).await.unwrap();
                assert!(page.total >= last, "committed writes never disappear");
                assert_eq!(page.entries.len() as u64, page.total.min(50), "total and page agree");
                last = page.total;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let page = store.search(&SearchQuery::all(ResourceType::Observation)).await.unwrap();
    assert_eq!(page.total, 100);
}

#[test]
fn debug_names_the_file_only() {
    let store = SqliteStore::open_in_memory().unwrap();
    assert_eq!(format!("{store:?}"), "SqliteStore { path: \"(in memory)\", .. }");
    assert!(store.path().is_none());
}
