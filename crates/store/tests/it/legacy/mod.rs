//! The read-only mapping of a legacy schema (MedRec 2.0's demo database) to FHIR: the
//! shared cases (`cases`) on SQLite (`sqlite`, with rows that do not fit), on a real
//! MariaDB (`mariadb`) and on a real PostgreSQL (`postgres`), and the mapping's own checks (`mapping`).

mod cases;
mod mapping;
mod mariadb;
mod postgres;
mod sqlite;

use medrec_store::{
    RecordReader, Stored,
    fhir::{ResourceId, ResourceType},
    legacy::{LegacyConfig, LegacySqliteStore},
    search::SearchQuery,
};
use std::{
    path::PathBuf,
    sync::atomic::{AtomicUsize, Ordering},
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/legacy");

fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!("{FIXTURES}/{name}")).unwrap()
}

fn config() -> LegacyConfig {
    LegacyConfig::load(format!("{FIXTURES}/medrec-v1.json")).unwrap()
}

/// A legacy database file built from the fixtures, removed when dropped.
struct LegacyDb(PathBuf);

impl LegacyDb {
    /// The schema, the seed, then `extra` SQL.
    fn new(extra: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("medrec-legacy-{}-{n}.sqlite", std::process::id());
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_file(&path);
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(&fixture("medrec-v1-schema.sql")).unwrap();
        conn.execute_batch(&fixture("medrec-v1-seed.sql")).unwrap();
        conn.execute_batch(extra).unwrap();
        Self(path)
    }

    fn open(&self) -> LegacySqliteStore {
        LegacySqliteStore::open(&self.0, config()).unwrap()
    }

    fn count(&self, table: &str) -> i64 {
        let conn = rusqlite::Connection::open(&self.0).unwrap();
        conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |row| row.get(0)).unwrap()
    }
}

impl Drop for LegacyDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn id(s: &str) -> ResourceId {
    s.parse().unwrap()
}

// The helpers take any reader: a legacy store, or a full store (`SqliteStore`).
async fn page<S: RecordReader + ?Sized>(
    store: &S,
    ty: ResourceType,
    params: &[(&str, &str)],
) -> (u64, Vec<String>) {
    let query = SearchQuery::parse(ty, params.iter().copied()).unwrap();
    let page = store.search(&query).await.unwrap();
    (page.total, page.entries.iter().map(|s| s.id.to_string()).collect())
}

async fn found<S: RecordReader + ?Sized>(
    store: &S,
    ty: ResourceType,
    params: &[(&str, &str)],
) -> Vec<String> {
    let (total, ids) = page(store, ty, params).await;
    assert_eq!(total, ids.len() as u64, "{ty} {params:?}: one page holds all");
    ids
}

async fn read<S: RecordReader + ?Sized>(store: &S, ty: ResourceType, i: &str) -> Stored {
    store.read(ty, &id(i)).await.unwrap().unwrap_or_else(|| panic!("{ty}/{i} is there"))
}
