//! The SQLite backend (rusqlite): the embedded default, one file.
//!
//! [`SqliteStore`] keeps one database file in WAL mode with three tables:
//!
//! - `resources`: the current version of every resource, with its search columns
//!   (`patient`, `date_start`, `last_updated`) and its JSON;
//! - `resource_versions`: every version ever stored, with its JSON;
//! - `resource_tokens`: the `category` and `code` codings of each current version,
//!   rewritten on every update.
//!
//! All SQLite work runs on tokio's blocking pool, never on the async workers. Writes go
//! through one connection, each in its own `IMMEDIATE` transaction, so versions of a
//! resource are consecutive however many updates race. Reads use a small pool of
//! read-only connections that run in parallel with each other and with the writer (WAL
//! gives each read a consistent snapshot). Every value reaches SQLite as a bound
//! parameter; search SQL comes from the builder every backend shares
//! (`sql::builder`), out of fixed fragments only.

use crate::{
    RawStored, RecordStore, Result, StoreError, Stored,
    fhir::{Resource, ResourceId, ResourceType},
    now_ms,
    search::SearchQuery,
    sql::builder::{Dialect, Target, Tokens},
    stamp, with_id_for_create,
};
use rusqlite::{
    Connection, OpenFlags, OptionalExtension, TransactionBehavior, params, params_from_iter,
};
use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, LazyLock, Mutex, PoisonError},
    time::Duration,
};
use tokio::sync::{Mutex as AsyncMutex, Semaphore};

/// The schema version this code writes (`PRAGMA user_version`).
const SCHEMA_VERSION: i64 = 1;

/// How many read connections may be open (and reading) at once.
const MAX_READERS: usize = 4;

/// How long a connection waits for a lock held by another connection or process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS resources (
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    patient TEXT,
    date_start INTEGER,
    json TEXT NOT NULL,
    PRIMARY KEY (type, id)
) STRICT;
-- A compartment's page (type, patient, ORDER BY id) reads this index in order; without
-- id in it the planner walked the primary key over every resource of the type.
DROP INDEX IF EXISTS resources_patient;
CREATE INDEX IF NOT EXISTS resources_patient_id ON resources (type, patient, id);
CREATE INDEX IF NOT EXISTS resources_date_start ON resources (type, date_start);
CREATE INDEX IF NOT EXISTS resources_last_updated ON resources (type, last_updated);

CREATE TABLE IF NOT EXISTS resource_versions (
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (type, id, version),
    FOREIGN KEY (type, id) REFERENCES resources (type, id)
) STRICT;

CREATE TABLE IF NOT EXISTS resource_tokens (
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    param TEXT NOT NULL,
    system TEXT NOT NULL,
    code TEXT NOT NULL,
    PRIMARY KEY (type, id, param, system, code),
    FOREIGN KEY (type, id) REFERENCES resources (type, id)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS resource_tokens_code ON resource_tokens (type, param, code);
";

/// The columns [`Row`] reads, in order (`r` is the table alias).
const COLUMNS: &str = "r.type, r.id, r.version, r.last_updated, r.json";

/// A [`RecordStore`] in one SQLite database file.
///
/// Cloning is cheap and shares the connections.
#[derive(Clone)]
pub struct SqliteStore {
    /// The file, or `None` in memory.
    path: Option<PathBuf>,
    /// Read-only connections to the file; `None` in memory. Declared before the
    /// writer so that they close first and the writer, closing last, checkpoints and
    /// removes the WAL file.
    readers: Option<Arc<Readers>>,
    /// The one connection that writes (and, in memory, also reads).
    writer: Arc<AsyncMutex<Connection>>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field(
                "path",
                &self.path.as_deref().map_or("(in memory)".into(), Path::to_string_lossy),
            )
            .finish_non_exhaustive()
    }
}

/// A small pool of read-only connections, opened on demand.
struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// One permit per connection that may be in use, so there are never more than
    /// [`MAX_READERS`].
    permits: Arc<Semaphore>,
}

impl Readers {
    fn take(&self) -> Result<Connection> {
        if let Some(conn) = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop() {
            return Ok(conn);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)
            .and_then(|conn| conn.busy_timeout(BUSY_TIMEOUT).map(|()| conn))
            // Reads come from memory, not from the OS's page cache page by page: a
            // 32 MiB page cache per reader, and the file mapped.
            .and_then(|conn| conn.pragma_update(None, "cache_size", -32_768).map(|()| conn))
            .and_then(|conn| {
                conn.pragma_update_and_check(None, "mmap_size", 268_435_456_i64, |_| Ok(()))
                    .map(|()| conn)
            })
            .map_err(|e| open_error(&self.path, &e))?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        self.idle.lock().unwrap_or_else(PoisonError::into_inner).push(conn);
    }
}

impl SqliteStore {
    /// Opens the database file at `path`, creating it and its schema when missing.
    ///
    /// The database is switched to WAL mode. This does blocking file I/O; call it
    /// before serving or from a blocking task.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] naming the path when the file cannot be opened or
    /// created, is not a SQLite database, cannot use WAL, or has a schema from a newer
    /// MedRec.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let conn = Connection::open(path).map_err(|e| open_error(path, &e))?;
        setup(&conn, true).map_err(|e| match e {
            StoreError::Database(message) => StoreError::Database(format!(
                "cannot open SQLite database {}: {message}",
                path.display()
            )),
            other => other,
        })?;
        // Readers open the very file the writer has, whatever the working directory.
        let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
        let readers = Readers {
            path: path.clone(),
            idle: Mutex::new(Vec::with_capacity(MAX_READERS)),
            permits: Arc::new(Semaphore::new(MAX_READERS)),
        };
        Ok(Self {
            path: Some(path),
            writer: Arc::new(AsyncMutex::new(conn)),
            readers: Some(Arc::new(readers)),
        })
    }

    /// A fresh, empty database in memory, gone when the last clone is dropped (for
    /// tests and tools). It has one connection, so its reads do not run in parallel.
    ///
    /// # Errors
    ///
    /// [`StoreError::Database`] when SQLite cannot set it up.
    pub fn open_in_memory() -> Result<Self> {
        let conn = Connection::open_in_memory().db()?;
        setup(&conn, false)?;
        Ok(Self { path: None, writer: Arc::new(AsyncMutex::new(conn)), readers: None })
    }

    /// The database file, or `None` in memory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Runs `f` on the writer connection, on the blocking pool. Waiting for the
    /// connection happens asynchronously; the work finishes even when the caller is
    /// cancelled.
    async fn with_writer<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let mut conn = Arc::clone(&self.writer).lock_owned().await;
        blocking(move || f(&mut conn)).await
    }

    /// Runs `f` on a read-only connection (the writer when in memory).
    async fn with_reader<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let Some(readers) = &self.readers else {
            return self.with_writer(f).await;
        };
        let permit = Arc::clone(&readers.permits)
            .acquire_owned()
            .await
            .map_err(|e| StoreError::Database(format!("SQLite readers: {e}")))?;
        let readers = Arc::clone(readers);
        blocking(move || {
            let _permit = permit;
            let mut conn = readers.take()?;
            let result = f(&mut conn);
            readers.give_back(conn);
            result
        })
        .await
    }

    async fn write(&self, resources: Vec<Resource>, mode: Mode) -> Result<Vec<Stored>> {
        if mode == Mode::Update && resources.iter().any(|r| r.id.is_none()) {
            return Err(StoreError::MissingId);
        }
        self.with_writer(move |conn| write(conn, &resources, mode)).await
    }
}

/// Runs blocking work on tokio's blocking pool; a panic there resumes here.
async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(StoreError::Database(format!("SQLite task did not finish: {e}"))),
    }
}

/// SQLite failures as store errors.
trait OrDatabase<T> {
    /// [`StoreError::Database`] with SQLite's message.
    fn db(self) -> Result<T>;
}

impl<T> OrDatabase<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T> {
        self.map_err(|e| StoreError::Database(format!("SQLite: {e}")))
    }
}

fn open_error(path: &Path, e: &rusqlite::Error) -> StoreError {
    StoreError::Database(format!("cannot open SQLite database {}: {e}", path.display()))
}

/// Pragmas and schema of a freshly opened writer connection.
fn setup(conn: &Connection, wal: bool) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT).db()?;
    if wal {
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)).db()?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Database(format!(
                "cannot switch to WAL mode (journal mode is {mode})"
            )));
        }
    }
    // WAL with FULL syncs every commit: a stored record survives a power cut.
    conn.pragma_update(None, "synchronous", "FULL").db()?;
    conn.pragma_update(None, "foreign_keys", true).db()?;
    conn.execute_batch("BEGIN IMMEDIATE").db()?;
    let created = (|| {
        let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if version > SCHEMA_VERSION {
            return Ok(Err(StoreError::Database(format!(
                "the schema is version {version}, newer than this MedRec knows ({SCHEMA_VERSION})"
            ))));
        }
        conn.execute_batch(SCHEMA)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        Ok(Ok(()))
    })();
    match created {
        Ok(Ok(())) => conn.execute_batch("COMMIT").db(),
        Ok(Err(e)) => {
            conn.execute_batch("ROLLBACK").db()?;
            Err(e)
        }
        Err(e) => {
            // Keep the first error; the rollback only tidies up.
            let _ = conn.execute_batch("ROLLBACK");
            Err(e).db()
        }
    }
}

/// What a write does when the id exists or is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Refuse an existing id; assign one when missing.
    Create,
    /// Add a version; an id is required.
    Update,
}

/// Stores `resources` in one IMMEDIATE transaction: all or none.
fn write(conn: &mut Connection, resources: &[Resource], mode: Mode) -> Result<Vec<Stored>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).db()?;
    // Read the clock once the write lock is held, so later versions never get earlier
    // stamps from this process.
    let now = now_ms();
    let stored = resources
        .iter()
        .map(|resource| write_one(&tx, resource, mode, now))
        .collect::<Result<Vec<_>>>()?;
    tx.commit().db()?;
    Ok(stored)
}

fn write_one(conn: &Connection, resource: &Resource, mode: Mode, now: i64) -> Result<Stored> {
    let resource_type = resource.resource_type;
    let ty = resource_type.as_str();
    if resource.id.is_none() && mode == Mode::Update {
        return Err(StoreError::MissingId);
    }
    let resource = with_id_for_create(resource);
    let id = resource.id.clone().expect("named above");
    let previous: Option<(i64, i64)> = conn
        .prepare_cached("SELECT version, last_updated FROM resources WHERE type = ?1 AND id = ?2")
        .and_then(|mut st| {
            st.query_row(params![ty, id.as_str()], |row| Ok((row.get(0)?, row.get(1)?))).optional()
        })
        .db()?;
    if mode == Mode::Create && previous.is_some() {
        return Err(StoreError::Exists { resource_type, id });
    }
    let version = previous.map_or(1, |(v, _)| v + 1);
    // A version is never stamped earlier than the one before it, even if the clock
    // steps back.
    let last_updated = previous.map_or(now, |(_, at)| now.max(at));
    let version_u64 = u64::try_from(version).map_err(|_| {
        StoreError::Database(format!("SQLite: stored version {version} of {ty}/{id}"))
    })?;
    let json = stamp(&resource, &id, version_u64, last_updated);
    let text = serde_json::to_string(&json)
        .map_err(|e| StoreError::Database(format!("cannot serialize {ty}/{id}: {e}")))?;
    let patient = resource.index.patient.as_deref();
    let date_start = resource.index.date.map(|(start, _)| start);

    let run = || -> rusqlite::Result<()> {
        conn.prepare_cached(
            "INSERT INTO resources (type, id, version, last_updated, patient, date_start, json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (type, id) DO UPDATE SET
                 version = excluded.version,
                 last_updated = excluded.last_updated,
                 patient = excluded.patient,
                 date_start = excluded.date_start,
                 json = excluded.json",
        )?
        .execute(params![
            ty,
            id.as_str(),
            version,
            last_updated,
            patient,
            date_start,
            text
        ])?;
        conn.prepare_cached(
            "INSERT INTO resource_versions (type, id, version, last_updated, json)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![ty, id.as_str(), version, last_updated, text])?;
        conn.prepare_cached("DELETE FROM resource_tokens WHERE type = ?1 AND id = ?2")?
            .execute(params![ty, id.as_str()])?;
        let mut insert = conn.prepare_cached(
            "INSERT OR IGNORE INTO resource_tokens (type, id, param, system, code)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for token in &resource.index.tokens {
            insert.execute(params![ty, id.as_str(), token.param, token.system, token.code])?;
        }
        Ok(())
    };
    run().db()?;
    Ok(Stored { resource_type, id, version: version_u64, last_updated, json })
}

/// The current row of a resource with its JSON text as stored.
fn read_raw(
    conn: &mut Connection,
    resource_type: ResourceType,
    id: &ResourceId,
) -> Result<Option<RawStored>> {
    let row = conn
        .prepare_cached(
            "SELECT r.version, r.last_updated, r.patient, r.json FROM resources r \
             WHERE r.type = ?1 AND r.id = ?2",
        )
        .and_then(|mut st| {
            st.query_row(params![resource_type.as_str(), id.as_str()], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, Option<String>>(2)?,
                    row.get::<_, String>(3)?,
                ))
            })
            .optional()
        })
        .db()?;
    let Some((version, last_updated, patient, json)) = row else { return Ok(None) };
    let version = u64::try_from(version).map_err(|_| {
        StoreError::Database(format!(
            "SQLite: stored row {resource_type}/{id} has a negative version"
        ))
    })?;
    Ok(Some(RawStored { resource_type, id: id.clone(), version, last_updated, patient, json }))
}

/// A stored row as SQLite gives it ([`COLUMNS`]).
struct Row {
    resource_type: String,
    id: String,
    version: i64,
    last_updated: i64,
    json: String,
}

impl Row {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            resource_type: row.get(0)?,
            id: row.get(1)?,
            version: row.get(2)?,
            last_updated: row.get(3)?,
            json: row.get(4)?,
        })
    }

    fn into_stored(self) -> Result<Stored> {
        let bad = |what: &str| {
            StoreError::Database(format!(
                "SQLite: stored row {}/{} has {what}",
                self.resource_type, self.id
            ))
        };
        Ok(Stored {
            resource_type: self.resource_type.parse().map_err(|_| bad("an unknown type"))?,
            id: self.id.parse().map_err(|_| bad("an invalid id"))?,
            version: u64::try_from(self.version).map_err(|_| bad("a negative version"))?,
            last_updated: self.last_updated,
            json: serde_json::from_str(&self.json).map_err(|_| bad("invalid JSON"))?,
        })
    }
}

/// The native tables as a search target (`resources r`, codings in
/// `resource_tokens t`).
pub(crate) fn target() -> &'static Target {
    static TARGET: LazyLock<Target> = LazyLock::new(|| Target {
        from: "resources r".into(),
        type_column: Some("r.type"),
        id: "r.id".into(),
        patient: Some("r.patient".into()),
        date: Some("r.date_start".into()),
        last_updated: Some("r.last_updated".into()),
        tokens: Tokens::Table {
            from: "resource_tokens t",
            join: "t.type = r.type AND t.id = r.id",
            param: "t.param",
            system: "t.system",
            code: "t.code",
            code_prefix_index: None,
        },
    });
    &TARGET
}

fn search(conn: &mut Connection, query: &SearchQuery) -> Result<crate::Page> {
    let target = target();
    let count = target.count(Dialect::Sqlite, query);
    // One read transaction: the total and the page come from the same snapshot.
    let tx = conn.transaction().db()?;
    let total: i64 =
        tx.query_row(count.sql(), params_from_iter(count.args()), |row| row.get(0)).db()?;
    let mut entries = Vec::new();
    if query.count > 0 {
        let page = target.page(Dialect::Sqlite, query, COLUMNS);
        let mut st = tx.prepare(page.sql()).db()?;
        let rows = st.query_map(params_from_iter(page.args()), Row::read).db()?;
        for row in rows {
            entries.push(row.db()?.into_stored()?);
        }
    }
    tx.commit().db()?;
    Ok(crate::Page { total: u64::try_from(total).unwrap_or(0), entries })
}

#[async_trait::async_trait]
impl RecordStore for SqliteStore {
    async fn create(&self, resource: Resource) -> Result<Stored> {
        let mut stored = self.write(vec![resource], Mode::Create).await?;
        stored.pop().ok_or_else(|| StoreError::Database("SQLite: nothing was stored".into()))
    }

    async fn update(&self, resource: Resource) -> Result<Stored> {
        let mut stored = self.write(vec![resource], Mode::Update).await?;
        stored.pop().ok_or_else(|| StoreError::Database("SQLite: nothing was stored".into()))
    }

    async fn update_all(&self, resources: Vec<Resource>) -> Result<Vec<Stored>> {
        if resources.is_empty() {
            return Ok(Vec::new());
        }
        self.write(resources, Mode::Update).await
    }

    async fn read(&self, resource_type: ResourceType, id: &ResourceId) -> Result<Option<Stored>> {
        let id = id.clone();
        self.with_reader(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM resources r WHERE r.type = ?1 AND r.id = ?2"
            ))
            .and_then(|mut st| {
                st.query_row(params![resource_type.as_str(), id.as_str()], Row::read).optional()
            })
            .db()?
            .map(Row::into_stored)
            .transpose()
        })
        .await
    }

    async fn read_raw(
        &self,
        resource_type: ResourceType,
        id: &ResourceId,
    ) -> Result<Option<RawStored>> {
        let query = {
            let id = id.clone();
            move |conn: &mut Connection| read_raw(conn, resource_type, &id)
        };
        // A primary-key read takes microseconds: when a reader connection is free at
        // once, run it here rather than hand it to the blocking pool and back.
        if let Some(readers) = &self.readers
            && let Ok(permit) = Arc::clone(&readers.permits).try_acquire_owned()
        {
            let mut conn = readers.take()?;
            let result = query(&mut conn);
            readers.give_back(conn);
            drop(permit);
            return result;
        }
        self.with_reader(query).await
    }

    async fn read_version(
        &self,
        resource_type: ResourceType,
        id: &ResourceId,
        version: u64,
    ) -> Result<Option<Stored>> {
        let Ok(version) = i64::try_from(version) else {
            return Ok(None);
        };
        let id = id.clone();
        self.with_reader(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM resource_versions r \
                 WHERE r.type = ?1 AND r.id = ?2 AND r.version = ?3"
            ))
            .and_then(|mut st| {
                st.query_row(params![resource_type.as_str(), id.as_str(), version], Row::read)
                    .optional()
            })
            .db()?
            .map(Row::into_stored)
            .transpose()
        })
        .await
    }

    async fn search(&self, query: &SearchQuery) -> Result<crate::Page> {
        let query = query.clone();
        self.with_reader(move |conn| search(conn, &query)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_sql_binds_every_value() {
        let query = SearchQuery::parse(
            ResourceType::Observation,
            [
                ("_id", "a,b"),
                ("patient", "p1"),
                ("code", "x' OR 1=1 --,http://loinc.org|"),
                ("date", "ge2025"),
                ("_lastUpdated", "lt2026"),
                ("_sort", "-date"),
            ],
        )
        .unwrap();
        let count = target().count(Dialect::Sqlite, &query);
        let sql = count.sql();
        assert!(!sql.contains('\''), "{sql}");
        assert!(!sql.contains("loinc"), "{sql}");
        assert_eq!(sql.matches('?').count(), count.args().len());
        assert_eq!(count.args().len(), 1 + 2 + 1 + 3 + 1 + 1);
        let page = target().page(Dialect::Sqlite, &query, COLUMNS);
        assert!(
            page.sql().ends_with(
                " ORDER BY r.date_start IS NULL, r.date_start DESC, r.id ASC LIMIT ? OFFSET ?"
            ),
            "{}",
            page.sql()
        );
        assert_eq!(page.args().len(), count.args().len() + 2);
    }
}
