//! The access log in SQLite (rusqlite).
//!
//! Two tables, created when missing: `audit_log` (one row per entry, keyed by `seq`,
//! indexed by `(relationship, seq)`) and `audit_anchors` (keyed by size). They can live
//! in the record store's file or in a file of their own. Appends run in `IMMEDIATE`
//! transactions, so they serialise against every other writer of the file, in this
//! process or another; the head is the row with the highest `seq` (a primary key
//! lookup). All SQLite work runs on tokio's blocking pool.

use super::{AccessLog, Anchor, COLUMNS, LogHead, LoggedEntry, NewEntry, Row, to_i64};
use crate::{Result, StoreError};
use alloy_primitives::B256;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};
use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

/// How long a connection waits for a lock held by another connection or process.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_log (
    seq INTEGER PRIMARY KEY,
    at_ms INTEGER NOT NULL,
    requester TEXT NOT NULL,
    action TEXT NOT NULL,
    relationship TEXT,
    pointer INTEGER,
    resource_type TEXT,
    resource_id TEXT,
    decision TEXT NOT NULL,
    response_hash TEXT,
    epsilon_bits INTEGER,
    prev_hash TEXT NOT NULL,
    digest TEXT NOT NULL,
    hash TEXT NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS audit_log_relationship ON audit_log (relationship, seq);
CREATE TABLE IF NOT EXISTS audit_anchors (
    log_size INTEGER PRIMARY KEY,
    head TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    tx_hash TEXT NOT NULL
) STRICT;
";

/// An [`AccessLog`] in a SQLite database file. Cloning shares the connection.
#[derive(Clone)]
pub struct SqliteAccessLog {
    path: Option<PathBuf>,
    conn: Arc<Mutex<Connection>>,
}

impl fmt::Debug for SqliteAccessLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteAccessLog")
            .field(
                "path",
                &self.path.as_deref().map_or("(in memory)".into(), Path::to_string_lossy),
            )
            .finish_non_exhaustive()
    }
}

fn db_error(e: &rusqlite::Error) -> StoreError {
    StoreError::Database(format!("the access log (SQLite) failed: {e}"))
}

impl SqliteAccessLog {
    /// Opens (or creates) the log in the database file at `path`, in WAL mode.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let opened = Connection::open(path).and_then(|conn| {
            conn.busy_timeout(BUSY_TIMEOUT)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            Ok(conn)
        });
        let conn = opened.map_err(|e| {
            StoreError::Database(format!(
                "cannot open the access log's SQLite database {}: {e}",
                path.display()
            ))
        })?;
        Self::with_connection(conn, Some(path.to_owned()))
    }

    /// A log in memory, gone when the last clone is dropped.
    pub fn open_in_memory() -> Result<Self> {
        let conn = Connection::open_in_memory().map_err(|e| db_error(&e))?;
        Self::with_connection(conn, None)
    }

    fn with_connection(conn: Connection, path: Option<PathBuf>) -> Result<Self> {
        conn.execute_batch(SCHEMA).map_err(|e| {
            StoreError::Database(format!("cannot create the access log's SQLite tables: {e}"))
        })?;
        Ok(Self { path, conn: Arc::new(Mutex::new(conn)) })
    }

    /// The database file, `None` in memory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Runs `f` on the connection, on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Database(format!("an access log task failed: {e}")))?
    }

    /// Runs `sql` as is, for tests that tamper with the log.
    #[cfg(feature = "test-utils")]
    pub async fn execute_for_tests(&self, sql: &'static str) -> Result<()> {
        self.run(move |conn| conn.execute_batch(sql).map_err(|e| db_error(&e))).await
    }
}

fn head_of(conn: &Connection) -> Result<LogHead> {
    let last: Option<(i64, String)> = conn
        .query_row("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .optional()
        .map_err(|e| db_error(&e))?;
    match last {
        None => Ok(LogHead { size: 0, head: B256::ZERO }),
        Some((seq, hash)) => Ok(LogHead {
            size: u64::try_from(seq)
                .map_err(|_| super::corrupt("holds a negative sequence number"))?,
            head: super::parse_b256(&hash, "an entry hash")?,
        }),
    }
}

fn read_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        seq: row.get(0)?,
        time: row.get(1)?,
        requester: row.get(2)?,
        action: row.get(3)?,
        relationship: row.get(4)?,
        pointer: row.get(5)?,
        resource_type: row.get(6)?,
        resource_id: row.get(7)?,
        decision: row.get(8)?,
        response_hash: row.get(9)?,
        epsilon_bits: row.get(10)?,
        prev_hash: row.get(11)?,
        digest: row.get(12)?,
        hash: row.get(13)?,
    })
}

fn query_entries(
    conn: &Connection,
    sql: &str,
    args: Vec<rusqlite::types::Value>,
) -> Result<Vec<LoggedEntry>> {
    let mut statement = conn.prepare_cached(sql).map_err(|e| db_error(&e))?;
    let rows = statement
        .query_map(params_from_iter(args), read_row)
        .map_err(|e| db_error(&e))?
        .collect::<rusqlite::Result<Vec<Row>>>()
        .map_err(|e| db_error(&e))?;
    rows.into_iter().map(Row::into_logged).collect()
}

fn hash_column(conn: &Connection, column: &'static str, from: i64, to: i64) -> Result<Vec<B256>> {
    let sql = format!("SELECT {column} FROM audit_log WHERE seq BETWEEN ?1 AND ?2 ORDER BY seq");
    let mut statement = conn.prepare_cached(&sql).map_err(|e| db_error(&e))?;
    let texts = statement
        .query_map(params![from, to], |row| row.get::<_, String>(0))
        .map_err(|e| db_error(&e))?
        .collect::<rusqlite::Result<Vec<String>>>()
        .map_err(|e| db_error(&e))?;
    texts.iter().map(|t| super::parse_b256(t, column)).collect()
}

/// `from..=to` as SQLite integers (clamped: no entry is beyond `i64::MAX`).
fn seq_range(from: u64, to: u64) -> Option<(i64, i64)> {
    let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    (from <= to).then(|| (clamp(from), clamp(to)))
}

#[async_trait::async_trait]
impl AccessLog for SqliteAccessLog {
    async fn append_batch(&self, entries: Vec<NewEntry>) -> Result<Vec<LoggedEntry>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| db_error(&e))?;
            let mut head = head_of(&tx)?;
            let mut logged = Vec::with_capacity(entries.len());
            {
                let sql = format!(
                    "INSERT INTO audit_log ({COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
                );
                let mut insert = tx.prepare_cached(&sql).map_err(|e| db_error(&e))?;
                for entry in entries {
                    let entry = LoggedEntry::chain(head.size + 1, head.head, entry);
                    let r = Row::from_logged(&entry)?;
                    insert
                        .execute(params![
                            r.seq,
                            r.time,
                            r.requester,
                            r.action,
                            r.relationship,
                            r.pointer,
                            r.resource_type,
                            r.resource_id,
                            r.decision,
                            r.response_hash,
                            r.epsilon_bits,
                            r.prev_hash,
                            r.digest,
                            r.hash
                        ])
                        .map_err(|e| db_error(&e))?;
                    head = LogHead { size: entry.seq, head: entry.hash };
                    logged.push(entry);
                }
            }
            tx.commit().map_err(|e| db_error(&e))?;
            Ok(logged)
        })
        .await
    }

    async fn head(&self) -> Result<LogHead> {
        self.run(|conn| head_of(conn)).await
    }

    async fn record_anchor(&self, anchor: Anchor) -> Result<()> {
        let size = to_i64(anchor.size, "anchor size")?;
        let block = to_i64(anchor.block, "block number")?;
        self.run(move |conn| {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| db_error(&e))?;
            let own: Option<String> = tx
                .query_row("SELECT hash FROM audit_log WHERE seq = ?1", [size], |row| row.get(0))
                .optional()
                .map_err(|e| db_error(&e))?;
            let own = own.map(|h| super::parse_b256(&h, "an entry hash")).transpose()?;
            super::check_anchor(&anchor, own)?;
            let old = tx
                .query_row(
                    "SELECT head, block_number, tx_hash FROM audit_anchors WHERE log_size = ?1",
                    [size],
                    |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, i64>(1)?,
                            row.get::<_, String>(2)?,
                        ))
                    },
                )
                .optional()
                .map_err(|e| db_error(&e))?;
            if let Some((head, block, tx_hash)) = old {
                let old = anchor_from(anchor.size, &head, block, &tx_hash)?;
                return super::check_same_anchor(&anchor, &old);
            }
            tx.execute(
                "INSERT INTO audit_anchors (log_size, head, block_number, tx_hash) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![size, super::hex32(&anchor.head), block, super::hex32(&anchor.tx)],
            )
            .map_err(|e| db_error(&e))?;
            tx.commit().map_err(|e| db_error(&e))
        })
        .await
    }

    async fn anchors(&self) -> Result<Vec<Anchor>> {
        self.run(|conn| {
            let mut statement = conn
                .prepare_cached(
                    "SELECT log_size, head, block_number, tx_hash FROM audit_anchors \
                     ORDER BY log_size",
                )
                .map_err(|e| db_error(&e))?;
            let rows = statement
                .query_map([], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                        row.get::<_, String>(3)?,
                    ))
                })
                .map_err(|e| db_error(&e))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(|e| db_error(&e))?;
            rows.iter()
                .map(|(size, head, block, tx)| {
                    let size = u64::try_from(*size)
                        .map_err(|_| super::corrupt("holds a negative anchor size"))?;
                    anchor_from(size, head, *block, tx)
                })
                .collect()
        })
        .await
    }

    async fn entries(&self, after_seq: u64, limit: u32) -> Result<Vec<LoggedEntry>> {
        let after = to_i64(after_seq, "sequence number")?;
        self.run(move |conn| {
            let sql =
                format!("SELECT {COLUMNS} FROM audit_log WHERE seq > ?1 ORDER BY seq LIMIT ?2");
            query_entries(conn, &sql, vec![after.into(), i64::from(limit).into()])
        })
        .await
    }

    async fn entries_about(
        &self,
        relationships: &[B256],
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<LoggedEntry>> {
        if relationships.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let after = to_i64(after_seq, "sequence number")?;
        let mut args: Vec<rusqlite::types::Value> =
            relationships.iter().map(|r| super::hex32(r).into()).collect();
        let marks = vec!["?"; args.len()].join(", ");
        args.push(after.into());
        args.push(i64::from(limit).into());
        self.run(move |conn| {
            let sql = format!(
                "SELECT {COLUMNS} FROM audit_log WHERE relationship IN ({marks}) AND seq > ? \
                 ORDER BY seq LIMIT ?"
            );
            query_entries(conn, &sql, args)
        })
        .await
    }

    async fn hashes(&self, from_seq: u64, to_seq_inclusive: u64) -> Result<Vec<B256>> {
        let Some((from, to)) = seq_range(from_seq, to_seq_inclusive) else {
            return Ok(Vec::new());
        };
        self.run(move |conn| hash_column(conn, "hash", from, to)).await
    }

    async fn digests(&self, from_seq: u64, to_seq_inclusive: u64) -> Result<Vec<B256>> {
        let Some((from, to)) = seq_range(from_seq, to_seq_inclusive) else {
            return Ok(Vec::new());
        };
        self.run(move |conn| hash_column(conn, "digest", from, to)).await
    }
}

fn anchor_from(size: u64, head: &str, block: i64, tx: &str) -> Result<Anchor> {
    Ok(Anchor {
        size,
        head: super::parse_b256(head, "an anchored head")?,
        block: u64::try_from(block).map_err(|_| super::corrupt("holds a negative block number"))?,
        tx: super::parse_b256(tx, "an anchoring transaction")?,
    })
}
