//! The access log in SQLite (rusqlite).
//!
//! Three tables, created when missing: `audit_log` (one row per entry, keyed by `seq`,
//! indexed by `(relationship, seq)`), `audit_tree` (the hash of each complete subtree of
//! the Merkle tree above the leaves, keyed by `(level, idx)`, written in the append that
//! completes it; a leaf is computed from its entry's `hash`) and `audit_roots` (the
//! anchored roots, keyed by size). Logs written when `audit_tree` also held the leaves
//! open as they are: those rows are left in place and no longer read. They can live in the record
//! store's file or in a file of their own. Appends run in `IMMEDIATE` transactions, so
//! they serialise against every other writer of the file, in this process or another;
//! the head is the row with the highest `seq` (a primary key lookup) and the root comes
//! from at most `log2(size)` rows of `audit_tree`. A log written before the tree existed
//! gets its tree when opened. (`audit_anchors`, where earlier versions recorded the
//! anchored heads of the hash chain, is left as it is and no longer read.) All SQLite
//! work runs on tokio's blocking pool.

use super::{
    AccessLog, Anchor, LogHead, LoggedEntry, NewEntry,
    row::{self, COLUMNS, Row, corrupt, hex32, parse_b256, to_i64},
    tree::{self, Frontier, Node},
};
use crate::{Result, StoreError};
use alloy_primitives::B256;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};
use std::{
    collections::HashMap,
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
CREATE TABLE IF NOT EXISTS audit_tree (
    level INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (level, idx)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit_roots (
    log_size INTEGER PRIMARY KEY,
    root TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    tx_hash TEXT NOT NULL
) STRICT;
";

/// How many entry hashes a log written before the tree existed reads at a time while
/// its tree is built.
const CATCH_UP_PAGE: u64 = 10_000;

/// Most subtrees asked in one statement.
const NODES_PER_QUERY: usize = 200;

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
            // In WAL mode NORMAL loses no commit when the process dies, only the last
            // ones on a power loss, and spares an fsync per commit. The writer answers
            // requests before their entries are committed anyway (the queue is in
            // memory), so FULL would buy nothing the queue has not already given up.
            conn.pragma_update(None, "synchronous", "NORMAL")?;
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
        let mut conn = conn;
        conn.execute_batch(SCHEMA).map_err(|e| {
            StoreError::Database(format!("cannot create the access log's SQLite tables: {e}"))
        })?;
        let (size, _) = last_of(&conn)?;
        // A log written before the tree existed: no level-1 subtree covers its entries.
        if tree_size(&conn)? < size & !1 {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| db_error(&e))?;
            let (size, _) = last_of(&tx)?;
            catch_up(&tx, size)?;
            tx.commit().map_err(|e| db_error(&e))?;
        }
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

/// The size and last entry hash of the log (0 and zero when empty).
fn last_of(conn: &Connection) -> Result<(u64, B256)> {
    let last: Option<(i64, String)> = conn
        .prepare_cached("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .and_then(|mut st| st.query_row([], |row| Ok((row.get(0)?, row.get(1)?))).optional())
        .map_err(|e| db_error(&e))?;
    match last {
        None => Ok((0, B256::ZERO)),
        Some((seq, hash)) => Ok((
            u64::try_from(seq).map_err(|_| corrupt("holds a negative sequence number"))?,
            parse_b256(&hash, "an entry hash")?,
        )),
    }
}

/// The log's head: its last entry and the root of its tree.
fn head_of(conn: &Connection) -> Result<LogHead> {
    let (size, head) = last_of(conn)?;
    Ok(LogHead { size, head, root: root_of(conn, size)? })
}

/// The Merkle root of the first `size` entries, from the stored subtrees.
fn root_of(conn: &Connection, size: u64) -> Result<B256> {
    Ok(tree::fold(&tree_nodes(conn, &tree::decompose(0, size))?))
}

/// How many leaves the stored tree covers: its size rounded down to even (leaves are
/// not stored, [`tree::is_stored`]).
fn tree_size(conn: &Connection) -> Result<u64> {
    let last: Option<i64> = conn
        .prepare_cached("SELECT MAX(idx) FROM audit_tree WHERE level = 1")
        .and_then(|mut st| st.query_row([], |row| row.get(0)))
        .map_err(|e| db_error(&e))?;
    let last = last
        .map(|i| u64::try_from(i).map_err(|_| corrupt("holds a negative tree index")))
        .transpose()?;
    Ok(tree::stored_width(last))
}

/// The hashes of `nodes`, in order: stored subtrees from `audit_tree`, leaves from
/// their entries' hashes in `audit_log`; a missing one is an error.
fn tree_nodes(conn: &Connection, nodes: &[Node]) -> Result<Vec<B256>> {
    let inner: Vec<&Node> = nodes.iter().filter(|n| tree::is_stored(**n)).collect();
    let mut found = HashMap::with_capacity(inner.len());
    for chunk in inner.chunks(NODES_PER_QUERY) {
        let terms = vec!["(level = ? AND idx = ?)"; chunk.len()].join(" OR ");
        let sql = format!("SELECT level, idx, hash FROM audit_tree WHERE {terms}");
        let mut args: Vec<i64> = Vec::with_capacity(2 * chunk.len());
        for node in chunk {
            args.push(i64::from(node.level));
            args.push(to_i64(node.index, "tree index")?);
        }
        let mut statement = conn.prepare_cached(&sql).map_err(|e| db_error(&e))?;
        let rows = statement
            .query_map(params_from_iter(args), |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?, row.get::<_, String>(2)?))
            })
            .map_err(|e| db_error(&e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| db_error(&e))?;
        for (level, index, hash) in rows {
            found.insert((level, index), parse_b256(&hash, "a tree node")?);
        }
    }
    let seqs = row::leaf_seqs(nodes);
    let mut entries = HashMap::with_capacity(seqs.len());
    for chunk in seqs.chunks(NODES_PER_QUERY) {
        let marks = vec!["?"; chunk.len()].join(", ");
        let sql = format!("SELECT seq, hash FROM audit_log WHERE seq IN ({marks})");
        let args = chunk.iter().map(|&s| to_i64(s, "seq")).collect::<Result<Vec<i64>>>()?;
        let mut statement = conn.prepare_cached(&sql).map_err(|e| db_error(&e))?;
        let rows = statement
            .query_map(params_from_iter(args), |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })
            .map_err(|e| db_error(&e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| db_error(&e))?;
        for (seq, hash) in rows {
            let seq =
                u64::try_from(seq).map_err(|_| corrupt("holds a negative sequence number"))?;
            entries.insert(seq, parse_b256(&hash, "an entry hash")?);
        }
    }
    row::assemble(nodes, &found, &entries)
}

/// Stores the subtrees an append completed (but the leaf: [`tree::is_stored`]).
fn insert_nodes(conn: &Connection, nodes: &[(Node, B256)]) -> Result<()> {
    let mut stored = nodes.iter().filter(|(node, _)| tree::is_stored(*node)).peekable();
    if stored.peek().is_none() {
        return Ok(());
    }
    let mut insert = conn
        .prepare_cached("INSERT INTO audit_tree (level, idx, hash) VALUES (?1, ?2, ?3)")
        .map_err(|e| db_error(&e))?;
    for (node, hash) in stored {
        insert
            .execute(params![i64::from(node.level), to_i64(node.index, "tree index")?, hex32(hash)])
            .map_err(|e| db_error(&e))?;
    }
    Ok(())
}

/// The tree's frontier, after adding the leaves of entries the tree does not cover yet
/// (a log written before the tree existed) up to `size`. Call inside a write
/// transaction.
fn catch_up(conn: &Connection, size: u64) -> Result<Frontier> {
    let have = tree_size(conn)?;
    if have > size {
        return Err(corrupt(&format!("has a tree of {have} entries over {size} entries")));
    }
    let subtrees = tree_nodes(conn, &tree::decompose(0, have))?;
    let mut frontier =
        Frontier::new(have, subtrees).ok_or_else(|| corrupt("has an incomplete tree"))?;
    while frontier.size() < size {
        let from = frontier.size() + 1;
        let to = size.min(frontier.size() + CATCH_UP_PAGE);
        let hashes = hash_column(conn, "hash", to_i64(from, "seq")?, to_i64(to, "seq")?)?;
        if hashes.len() as u64 != to - from + 1 {
            return Err(corrupt(&format!("misses entries between {from} and {to}")));
        }
        for hash in &hashes {
            insert_nodes(conn, &frontier.push(hash))?;
        }
    }
    Ok(frontier)
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
    texts.iter().map(|t| parse_b256(t, column)).collect()
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
            let (mut size, mut last) = last_of(&tx)?;
            let mut frontier = catch_up(&tx, size)?;
            let mut logged = Vec::with_capacity(entries.len());
            {
                let sql = format!(
                    "INSERT INTO audit_log ({COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)"
                );
                let mut insert = tx.prepare_cached(&sql).map_err(|e| db_error(&e))?;
                for entry in entries {
                    let (entry, digest) = LoggedEntry::chain_with_digest(size + 1, last, entry);
                    let r = Row::from_chained(&entry, &digest)?;
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
                    insert_nodes(&tx, &frontier.push(&entry.hash))?;
                    (size, last) = (entry.seq, entry.hash);
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
            let (log_size, _) = last_of(&tx)?;
            let own = if anchor.size == 0 || anchor.size > log_size {
                None
            } else {
                Some(root_of(&tx, anchor.size)?)
            };
            row::check_anchor(&anchor, own)?;
            let old = tx
                .query_row(
                    "SELECT root, block_number, tx_hash FROM audit_roots WHERE log_size = ?1",
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
            if let Some((root, block, tx_hash)) = old {
                let old = anchor_from(anchor.size, &root, block, &tx_hash)?;
                return row::check_same_anchor(&anchor, &old);
            }
            tx.execute(
                "INSERT INTO audit_roots (log_size, root, block_number, tx_hash) \
                 VALUES (?1, ?2, ?3, ?4)",
                params![size, hex32(&anchor.root), block, hex32(&anchor.tx)],
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
                    "SELECT log_size, root, block_number, tx_hash FROM audit_roots \
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
                        .map_err(|_| corrupt("holds a negative anchor size"))?;
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
            relationships.iter().map(|r| hex32(r).into()).collect();
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

    async fn nodes(&self, nodes: &[Node]) -> Result<Vec<B256>> {
        let nodes = nodes.to_vec();
        self.run(move |conn| tree_nodes(conn, &nodes)).await
    }
}

fn anchor_from(size: u64, root: &str, block: i64, tx: &str) -> Result<Anchor> {
    Ok(Anchor {
        size,
        root: parse_b256(root, "an anchored root")?,
        block: u64::try_from(block).map_err(|_| corrupt("holds a negative block number"))?,
        tx: parse_b256(tx, "an anchoring transaction")?,
    })
}
