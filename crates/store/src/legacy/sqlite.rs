//! The legacy mapping over a provider's SQLite file, opened read-only.

use super::{LegacyConfig, LegacyError, by_id, mapping::Mapping, row::RawRow};
use crate::{
    Page, RecordReader, Result, StoreError, Stored,
    fhir::{ResourceId, ResourceType},
    search::SearchQuery,
    sql::builder::Dialect,
};
use rusqlite::{Connection, OpenFlags, params_from_iter};
use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

/// How long a read waits for a lock held by the provider's own writers.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A provider's own SQLite database, served read-only as FHIR through a
/// [`LegacyConfig`].
///
/// Cloning is cheap and shares the connection.
#[derive(Clone)]
pub struct LegacySqliteStore {
    path: PathBuf,
    config: Arc<LegacyConfig>,
    conn: Arc<Mutex<Connection>>,
}

impl fmt::Debug for LegacySqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LegacySqliteStore")
            .field("path", &self.path)
            .field("types", &self.config.mappings.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn sqlite_error(e: &rusqlite::Error) -> StoreError {
    StoreError::Database(format!("legacy SQLite database: {e}"))
}

impl LegacySqliteStore {
    /// Opens the SQLite database at `path` read-only and checks that every table and
    /// column `config` names exists. This does blocking file I/O; call it before
    /// serving or from a blocking task.
    ///
    /// # Errors
    ///
    /// [`LegacyError::Database`] when the file cannot be opened as a SQLite database;
    /// [`LegacyError::UnknownTable`] or [`LegacyError::UnknownColumn`] when the mapping
    /// does not fit its schema.
    pub fn open(path: impl AsRef<Path>, config: LegacyConfig) -> Result<Self, LegacyError> {
        let path = path.as_ref();
        let db = |e: rusqlite::Error| LegacyError::Database(format!("{}: {e}", path.display()));
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(db)?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
        conn.pragma_update(None, "query_only", true).map_err(db)?;
        for mapping in config.mappings.values() {
            let mut schema = BTreeMap::new();
            for table in mapping.tables() {
                schema.insert(table.clone(), sqlite_columns(&conn, table).map_err(db)?);
            }
            mapping.check_schema(&schema)?;
        }
        Ok(Self {
            path: path.to_owned(),
            config: Arc::new(config),
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the connection, on tokio's blocking pool.
    async fn with_conn<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &LegacyConfig) -> Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        let config = Arc::clone(&self.config);
        let task = tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&conn, &config)
        });
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(StoreError::Database(format!("legacy SQLite task did not finish: {e}"))),
        }
    }
}

/// The columns of `table` in a SQLite database (none when there is no such table).
fn sqlite_columns(conn: &Connection, table: &str) -> rusqlite::Result<Vec<String>> {
    let mut st = conn.prepare_cached("SELECT name FROM pragma_table_info(?1)")?;
    st.query_map([table], |row| row.get(0))?.collect()
}

fn read_row(row: &rusqlite::Row<'_>, columns: usize) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        id: row.get(0)?,
        date_ms: row.get(1)?,
        last_updated_ms: row.get(2)?,
        cells: (0..columns).map(|i| row.get(3 + i)).collect::<rusqlite::Result<_>>()?,
    })
}

fn search(conn: &Connection, mapping: &Mapping, query: &SearchQuery) -> Result<Page> {
    let d = Dialect::Sqlite;
    let target = mapping.target(d);
    let count = target.count(d, query);
    // One read transaction: the total and the page come from the same snapshot.
    conn.execute_batch("BEGIN").map_err(|e| sqlite_error(&e))?;
    let result = (|| {
        let total: i64 = conn
            .query_row(count.sql(), params_from_iter(count.args()), |row| row.get(0))
            .map_err(|e| sqlite_error(&e))?;
        let mut entries = Vec::new();
        if query.count > 0 {
            let page = target.page(d, query, &mapping.select_sql(d));
            let mut st = conn.prepare_cached(page.sql()).map_err(|e| sqlite_error(&e))?;
            let n = mapping.columns.len();
            let rows = st
                .query_map(params_from_iter(page.args()), |row| read_row(row, n))
                .map_err(|e| sqlite_error(&e))?;
            for row in rows {
                entries.push(mapping.build(row.map_err(|e| sqlite_error(&e))?)?);
            }
        }
        Ok(Page { total: u64::try_from(total).unwrap_or(0), entries })
    })();
    // A read transaction has nothing to keep; ending it cannot lose anything.
    let _ = conn.execute_batch("COMMIT");
    result
}

#[async_trait::async_trait]
impl RecordReader for LegacySqliteStore {
    async fn read(&self, resource_type: ResourceType, id: &ResourceId) -> Result<Option<Stored>> {
        Ok(self.search(&by_id(resource_type, id)).await?.entries.pop())
    }

    async fn read_version(
        &self,
        resource_type: ResourceType,
        id: &ResourceId,
        version: u64,
    ) -> Result<Option<Stored>> {
        if version == 1 { self.read(resource_type, id).await } else { Ok(None) }
    }

    async fn search(&self, query: &SearchQuery) -> Result<Page> {
        if !self.config.mappings.contains_key(&query.resource_type) {
            return Ok(Page { total: 0, entries: Vec::new() });
        }
        let query = query.clone();
        self.with_conn(move |conn, config| {
            let mapping = &config.mappings[&query.resource_type];
            search(conn, mapping, &query)
        })
        .await
    }
}
