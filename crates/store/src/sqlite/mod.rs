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
//!
//! This module holds the store and its connections; the schema and its setup are in
//! `schema`, the [`RecordWriter`](crate::RecordWriter) side (one transaction per
//! write) in `write`, and the [`RecordReader`](crate::RecordReader) side (reads and
//! searches on the read-only connections) in `read`.

mod read;
mod schema;
mod write;

#[cfg(test)]
pub(crate) use read::target;

use crate::{Result, StoreError};
use rusqlite::{Connection, OpenFlags};
use schema::setup;
use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};
use tokio::sync::{Mutex as AsyncMutex, Semaphore};

/// How many read connections may be open (and reading) at once.
const MAX_READERS: usize = 4;

/// How long a connection waits for a lock held by another connection or process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// A [`RecordStore`](crate::RecordStore) in one SQLite database file.
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

crate::inherent_record_methods!(SqliteStore);
