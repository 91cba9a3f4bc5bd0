//! The access log in PostgreSQL and MySQL/MariaDB (sqlx).
//!
//! Four tables, created when missing by `connect`: `audit_log` (one row per entry,
//! keyed by `seq`, indexed by `(relationship, seq)`), `audit_head` (one row: the size
//! and last entry hash), `audit_tree` (the hash of each complete subtree of the Merkle
//! tree, keyed by `(level, idx)`) and `audit_roots` (the anchored roots, keyed by size).
//! An append locks the `audit_head` row (`SELECT ... FOR UPDATE`) first, then inserts
//! its entries after that head and the subtrees they complete, and moves the head, all
//! in one transaction: concurrent appends, from this process or any other, queue on that
//! lock, so sequence numbers have no gaps and the chain never forks (the primary key on
//! `seq` would refuse a fork anyway). The root of any prefix comes from at most
//! `log2(size)` rows of `audit_tree` (and a leaf from its entry's `hash`: `audit_tree`
//! holds the subtrees above the leaves; the leaf rows that earlier versions wrote are
//! left in place and no longer read). A log written before the tree existed gets its
//! tree when connected to. (`audit_anchors`, where earlier versions recorded the
//! anchored heads of the hash chain, is left as it is and no longer read.) Every value
//! is bound as a parameter.

use super::{
    AccessLog, Anchor, LogHead, LoggedEntry, NewEntry,
    row::{self, COLUMNS, Row, corrupt, hex32, parse_b256, to_i64},
    tree::{self, Frontier, Node},
};
use crate::{Result, StoreError};
use alloy_primitives::B256;
use sqlx::{
    AssertSqlSafe, ConnectOptions, Connection, Database, Decode, Encode, Executor, IntoArguments,
    MySql, Pool, Postgres, Row as _, Type,
    mysql::{MySqlConnectOptions, MySqlPoolOptions},
    pool::PoolOptions,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use std::{collections::HashMap, time::Duration};

mod schema;

use schema::{Backend, sql};

/// Connections per pool when the caller does not say.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// How long `connect` waits for the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an operation waits for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// How many entry hashes a log written before the tree existed reads at a time while
/// its tree is built.
const CATCH_UP_PAGE: u64 = 10_000;

/// Most subtrees asked in one statement.
const NODES_PER_QUERY: usize = 200;

fn db_error(name: &str, e: &sqlx::Error) -> StoreError {
    StoreError::Database(format!("the access log ({name}) failed: {e}"))
}

fn parse_url<DB: Backend>(url: &str) -> Result<<DB::Connection as Connection>::Options> {
    url.parse().map_err(|e| {
        // The URL may hold a password: name only its scheme.
        let scheme = url.split_once("://").map_or("", |(s, _)| s);
        StoreError::Database(format!("invalid {} URL (scheme '{scheme}'): {e}", DB::SERVER))
    })
}

/// The backend-independent log over a sqlx pool.
#[derive(Debug)]
struct SqlLog<DB: Database> {
    pool: Pool<DB>,
}

impl<DB: Database> Clone for SqlLog<DB> {
    fn clone(&self) -> Self {
        Self { pool: self.pool.clone() }
    }
}

impl<DB> SqlLog<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> String: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> Option<String>: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    async fn open(
        pool: PoolOptions<DB>,
        options: <DB::Connection as Connection>::Options,
        max_connections: u32,
    ) -> Result<Self> {
        let (name, at) = (DB::SERVER, DB::describe(&options));
        let mut conn = match tokio::time::timeout(CONNECT_TIMEOUT, options.connect()).await {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => {
                return Err(StoreError::Database(format!("cannot connect to {name} at {at}: {e}")));
            }
            Err(_) => {
                return Err(StoreError::Database(format!(
                    "cannot connect to {name} at {at}: no answer within {}s",
                    CONNECT_TIMEOUT.as_secs()
                )));
            }
        };
        for statement in DB::schema() {
            if let Err(e) = sqlx::raw_sql(AssertSqlSafe(statement)).execute(&mut conn).await {
                return Err(StoreError::Database(format!(
                    "cannot create the access log tables in {name} at {at}: {e}"
                )));
            }
        }
        Self::catch_up_on(&mut conn).await.map_err(|e| {
            StoreError::Database(format!(
                "cannot build the access log's tree in {name} at {at}: {e}"
            ))
        })?;
        let _ = conn.close().await;
        let pool = pool
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        Ok(Self { pool })
    }

    fn err(e: &sqlx::Error) -> StoreError {
        db_error(DB::SERVER, e)
    }

    async fn append_batch(&self, entries: Vec<NewEntry>) -> Result<Vec<LoggedEntry>> {
        if entries.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.pool.begin().await.map_err(|e| Self::err(&e))?;
        let row =
            sqlx::query(sql::<DB>("SELECT log_size, head FROM audit_head WHERE id = 1 FOR UPDATE"))
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| Self::err(&e))?;
        let (mut size, mut last) = Self::last_from(&row)?;
        let mut frontier = Self::catch_up(&mut tx, size).await?;
        let insert = format!(
            "INSERT INTO audit_log ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        );
        let mut logged = Vec::with_capacity(entries.len());
        for entry in entries {
            let (entry, digest) = LoggedEntry::chain_with_digest(size + 1, last, entry);
            let r = Row::from_chained(&entry, &digest)?;
            sqlx::query(sql::<DB>(&insert))
                .bind(r.seq)
                .bind(r.time)
                .bind(r.requester)
                .bind(r.action)
                .bind(r.relationship)
                .bind(r.pointer)
                .bind(r.resource_type)
                .bind(r.resource_id)
                .bind(r.decision)
                .bind(r.response_hash)
                .bind(r.epsilon_bits)
                .bind(r.prev_hash)
                .bind(r.digest)
                .bind(r.hash)
                .execute(&mut *tx)
                .await
                .map_err(|e| Self::err(&e))?;
            Self::insert_nodes(&mut tx, &frontier.push(&entry.hash)).await?;
            (size, last) = (entry.seq, entry.hash);
            logged.push(entry);
        }
        sqlx::query(sql::<DB>("UPDATE audit_head SET log_size = ?, head = ? WHERE id = 1"))
            .bind(to_i64(size, "log size")?)
            .bind(hex32(&last))
            .execute(&mut *tx)
            .await
            .map_err(|e| Self::err(&e))?;
        tx.commit().await.map_err(|e| Self::err(&e))?;
        Ok(logged)
    }

    /// The size and last entry hash in a row of `audit_head`.
    fn last_from(row: &DB::Row) -> Result<(u64, B256)> {
        let size: i64 = row.try_get(0).map_err(|e| Self::err(&e))?;
        let head: String = row.try_get(1).map_err(|e| Self::err(&e))?;
        Ok((
            u64::try_from(size).map_err(|_| corrupt("holds a negative size"))?,
            parse_b256(&head, "a head")?,
        ))
    }

    /// The size and last entry hash, as `audit_head` holds them.
    async fn last(conn: &mut DB::Connection) -> Result<(u64, B256)> {
        let row = sqlx::query(sql::<DB>("SELECT log_size, head FROM audit_head WHERE id = 1"))
            .fetch_one(&mut *conn)
            .await
            .map_err(|e| Self::err(&e))?;
        Self::last_from(&row)
    }

    async fn head(&self) -> Result<LogHead> {
        let mut conn = self.pool.acquire().await.map_err(|e| Self::err(&e))?;
        let (size, head) = Self::last(&mut conn).await?;
        let root = tree::fold(&Self::tree_nodes(&mut conn, &tree::decompose(0, size)).await?);
        Ok(LogHead { size, head, root })
    }

    /// How many leaves the stored tree covers: its size rounded down to even (leaves
    /// are not stored, [`tree::is_stored`]).
    async fn tree_size(conn: &mut DB::Connection) -> Result<u64> {
        let last: Option<i64> =
            sqlx::query_scalar(sql::<DB>("SELECT MAX(idx) FROM audit_tree WHERE level = 1"))
                .fetch_one(&mut *conn)
                .await
                .map_err(|e| Self::err(&e))?;
        let last = last
            .map(|i| u64::try_from(i).map_err(|_| corrupt("holds a negative tree index")))
            .transpose()?;
        Ok(tree::stored_width(last))
    }

    /// The hashes of `nodes`, in order: stored subtrees from `audit_tree`, leaves from
    /// their entries' hashes in `audit_log`; a missing one is an error.
    async fn tree_nodes(conn: &mut DB::Connection, nodes: &[Node]) -> Result<Vec<B256>> {
        let inner: Vec<&Node> = nodes.iter().filter(|n| tree::is_stored(**n)).collect();
        let mut found = HashMap::with_capacity(inner.len());
        for chunk in inner.chunks(NODES_PER_QUERY) {
            let terms = vec!["(level = ? AND idx = ?)"; chunk.len()].join(" OR ");
            let text = format!("SELECT level, idx, hash FROM audit_tree WHERE {terms}");
            let mut query = sqlx::query(sql::<DB>(&text));
            for node in chunk {
                query = query.bind(i64::from(node.level)).bind(to_i64(node.index, "tree index")?);
            }
            let rows = query.fetch_all(&mut *conn).await.map_err(|e| Self::err(&e))?;
            for row in rows {
                let level: i64 = row.try_get(0).map_err(|e| Self::err(&e))?;
                let index: i64 = row.try_get(1).map_err(|e| Self::err(&e))?;
                let hash: String = row.try_get(2).map_err(|e| Self::err(&e))?;
                found.insert((level, index), parse_b256(&hash, "a tree node")?);
            }
        }
        let seqs = row::leaf_seqs(nodes);
        let mut entries = HashMap::with_capacity(seqs.len());
        for chunk in seqs.chunks(NODES_PER_QUERY) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let text = format!("SELECT seq, hash FROM audit_log WHERE seq IN ({marks})");
            let mut query = sqlx::query(sql::<DB>(&text));
            for &seq in chunk {
                query = query.bind(to_i64(seq, "seq")?);
            }
            let rows = query.fetch_all(&mut *conn).await.map_err(|e| Self::err(&e))?;
            for row in rows {
                let seq: i64 = row.try_get(0).map_err(|e| Self::err(&e))?;
                let hash: String = row.try_get(1).map_err(|e| Self::err(&e))?;
                let seq =
                    u64::try_from(seq).map_err(|_| corrupt("holds a negative sequence number"))?;
                entries.insert(seq, parse_b256(&hash, "an entry hash")?);
            }
        }
        row::assemble(nodes, &found, &entries)
    }

    /// Stores the subtrees an append completed (but the leaf: [`tree::is_stored`]).
    async fn insert_nodes(conn: &mut DB::Connection, nodes: &[(Node, B256)]) -> Result<()> {
        for (node, hash) in nodes.iter().filter(|(node, _)| tree::is_stored(*node)) {
            sqlx::query(sql::<DB>("INSERT INTO audit_tree (level, idx, hash) VALUES (?, ?, ?)"))
                .bind(i64::from(node.level))
                .bind(to_i64(node.index, "tree index")?)
                .bind(hex32(hash))
                .execute(&mut *conn)
                .await
                .map_err(|e| Self::err(&e))?;
        }
        Ok(())
    }

    /// The tree's frontier, after adding the leaves of entries the tree does not cover
    /// yet (a log written before the tree existed) up to `size`. Call with the head
    /// locked.
    async fn catch_up(conn: &mut DB::Connection, size: u64) -> Result<Frontier> {
        let have = Self::tree_size(conn).await?;
        if have > size {
            return Err(corrupt(&format!("has a tree of {have} entries over {size} entries")));
        }
        let subtrees = Self::tree_nodes(conn, &tree::decompose(0, have)).await?;
        let mut frontier =
            Frontier::new(have, subtrees).ok_or_else(|| corrupt("has an incomplete tree"))?;
        while frontier.size() < size {
            let from = frontier.size() + 1;
            let to = size.min(frontier.size() + CATCH_UP_PAGE);
            let texts: Vec<String> = sqlx::query_scalar(sql::<DB>(
                "SELECT hash FROM audit_log WHERE seq BETWEEN ? AND ? ORDER BY seq",
            ))
            .bind(to_i64(from, "seq")?)
            .bind(to_i64(to, "seq")?)
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| Self::err(&e))?;
            if texts.len() as u64 != to - from + 1 {
                return Err(corrupt(&format!("misses entries between {from} and {to}")));
            }
            for text in &texts {
                let hash = parse_b256(text, "an entry hash")?;
                Self::insert_nodes(conn, &frontier.push(&hash)).await?;
            }
        }
        Ok(frontier)
    }

    /// Builds the tree of a log written before the tree existed, if it is one.
    async fn catch_up_on(conn: &mut DB::Connection) -> Result<()> {
        let (size, _) = Self::last(conn).await?;
        // A log written before the tree existed: no level-1 subtree covers its entries.
        if Self::tree_size(conn).await? >= size & !1 {
            return Ok(());
        }
        let mut tx = conn.begin().await.map_err(|e| Self::err(&e))?;
        let row =
            sqlx::query(sql::<DB>("SELECT log_size, head FROM audit_head WHERE id = 1 FOR UPDATE"))
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| Self::err(&e))?;
        let (size, _) = Self::last_from(&row)?;
        Self::catch_up(&mut tx, size).await?;
        tx.commit().await.map_err(|e| Self::err(&e))
    }

    async fn nodes(&self, nodes: &[Node]) -> Result<Vec<B256>> {
        let mut conn = self.pool.acquire().await.map_err(|e| Self::err(&e))?;
        Self::tree_nodes(&mut conn, nodes).await
    }

    async fn record_anchor(&self, anchor: Anchor) -> Result<()> {
        let size = to_i64(anchor.size, "anchor size")?;
        let own = {
            let mut conn = self.pool.acquire().await.map_err(|e| Self::err(&e))?;
            let (log_size, _) = Self::last(&mut conn).await?;
            if anchor.size == 0 || anchor.size > log_size {
                None
            } else {
                let nodes = Self::tree_nodes(&mut conn, &tree::decompose(0, anchor.size)).await?;
                Some(tree::fold(&nodes))
            }
        };
        row::check_anchor(&anchor, own)?;
        let inserted = sqlx::query(sql::<DB>(
            "INSERT INTO audit_roots (log_size, root, block_number, tx_hash) VALUES (?, ?, ?, ?)",
        ))
        .bind(size)
        .bind(hex32(&anchor.root))
        .bind(to_i64(anchor.block, "block number")?)
        .bind(hex32(&anchor.tx))
        .execute(&self.pool)
        .await;
        match inserted {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                let old = self.anchors().await?.into_iter().find(|a| a.size == anchor.size);
                let old = old.ok_or_else(|| corrupt("lost an anchor"))?;
                row::check_same_anchor(&anchor, &old)
            }
            Err(e) => Err(Self::err(&e)),
        }
    }

    async fn anchors(&self) -> Result<Vec<Anchor>> {
        let rows = sqlx::query(sql::<DB>(
            "SELECT log_size, root, block_number, tx_hash FROM audit_roots ORDER BY log_size",
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| Self::err(&e))?;
        rows.iter()
            .map(|row| {
                let size: i64 = row.try_get(0).map_err(|e| Self::err(&e))?;
                let root: String = row.try_get(1).map_err(|e| Self::err(&e))?;
                let block: i64 = row.try_get(2).map_err(|e| Self::err(&e))?;
                let tx: String = row.try_get(3).map_err(|e| Self::err(&e))?;
                let negative = |_| corrupt("holds a negative anchor size or block");
                Ok(Anchor {
                    size: u64::try_from(size).map_err(negative)?,
                    root: parse_b256(&root, "an anchored root")?,
                    block: u64::try_from(block).map_err(negative)?,
                    tx: parse_b256(&tx, "an anchoring transaction")?,
                })
            })
            .collect()
    }

    fn entry_from(row: &DB::Row) -> Result<LoggedEntry> {
        let e = |e: sqlx::Error| Self::err(&e);
        Row {
            seq: row.try_get(0).map_err(e)?,
            time: row.try_get(1).map_err(e)?,
            requester: row.try_get(2).map_err(e)?,
            action: row.try_get(3).map_err(e)?,
            relationship: row.try_get(4).map_err(e)?,
            pointer: row.try_get(5).map_err(e)?,
            resource_type: row.try_get(6).map_err(e)?,
            resource_id: row.try_get(7).map_err(e)?,
            decision: row.try_get(8).map_err(e)?,
            response_hash: row.try_get(9).map_err(e)?,
            epsilon_bits: row.try_get(10).map_err(e)?,
            prev_hash: row.try_get(11).map_err(e)?,
            digest: row.try_get(12).map_err(e)?,
            hash: row.try_get(13).map_err(e)?,
        }
        .into_logged()
    }

    async fn entries(&self, after_seq: u64, limit: u32) -> Result<Vec<LoggedEntry>> {
        let text = format!("SELECT {COLUMNS} FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?");
        let rows = sqlx::query(sql::<DB>(&text))
            .bind(to_i64(after_seq, "sequence number")?)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| Self::err(&e))?;
        rows.iter().map(Self::entry_from).collect()
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
        let marks = vec!["?"; relationships.len()].join(", ");
        let text = format!(
            "SELECT {COLUMNS} FROM audit_log WHERE relationship IN ({marks}) AND seq > ? \
             ORDER BY seq LIMIT ?"
        );
        let mut query = sqlx::query(sql::<DB>(&text));
        for relationship in relationships {
            query = query.bind(hex32(relationship));
        }
        let rows = query
            .bind(to_i64(after_seq, "sequence number")?)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| Self::err(&e))?;
        rows.iter().map(Self::entry_from).collect()
    }

    async fn column(&self, column: &str, from: u64, to: u64) -> Result<Vec<B256>> {
        if from > to {
            return Ok(Vec::new());
        }
        let clamp = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let text = format!("SELECT {column} FROM audit_log WHERE seq BETWEEN ? AND ? ORDER BY seq");
        let texts: Vec<String> = sqlx::query_scalar(sql::<DB>(&text))
            .bind(clamp(from))
            .bind(clamp(to))
            .fetch_all(&self.pool)
            .await
            .map_err(|e| Self::err(&e))?;
        texts.iter().map(|t| parse_b256(t, column)).collect()
    }

    #[cfg(feature = "test-utils")]
    async fn execute(&self, statement: &'static str) -> Result<()> {
        sqlx::raw_sql(statement).execute(&self.pool).await.map_err(|e| Self::err(&e))?;
        Ok(())
    }
}

/// The access log on PostgreSQL (tested with PostgreSQL 15).
#[derive(Debug, Clone)]
pub struct PostgresAccessLog {
    inner: SqlLog<Postgres>,
}

impl PostgresAccessLog {
    /// Connects to `url` (`postgres://user:password@host:port/database`) with a pool of
    /// up to [`DEFAULT_MAX_CONNECTIONS`], creating the tables when missing.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_options(parse_url::<Postgres>(url)?, DEFAULT_MAX_CONNECTIONS).await
    }

    /// As [`connect`](Self::connect), with parsed options and a pool of up to
    /// `max_connections`.
    pub async fn connect_options(options: PgConnectOptions, max_connections: u32) -> Result<Self> {
        let pool = PgPoolOptions::new();
        Ok(Self { inner: SqlLog::open(pool, options, max_connections).await? })
    }
}

/// The access log on MySQL or MariaDB (tested with MariaDB 10.11).
#[derive(Debug, Clone)]
pub struct MysqlAccessLog {
    inner: SqlLog<MySql>,
}

impl MysqlAccessLog {
    /// Connects to `url` (`mysql://user:password@host:port/database`) with a pool of up
    /// to [`DEFAULT_MAX_CONNECTIONS`], creating the tables when missing.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_options(parse_url::<MySql>(url)?, DEFAULT_MAX_CONNECTIONS).await
    }

    /// As [`connect`](Self::connect), with parsed options and a pool of up to
    /// `max_connections`.
    pub async fn connect_options(
        options: MySqlConnectOptions,
        max_connections: u32,
    ) -> Result<Self> {
        let pool = MySqlPoolOptions::new();
        Ok(Self { inner: SqlLog::open(pool, options, max_connections).await? })
    }
}

macro_rules! delegate_access_log {
    ($log:ty) => {
        #[async_trait::async_trait]
        impl AccessLog for $log {
            async fn append_batch(&self, entries: Vec<NewEntry>) -> Result<Vec<LoggedEntry>> {
                self.inner.append_batch(entries).await
            }

            async fn head(&self) -> Result<LogHead> {
                self.inner.head().await
            }

            async fn record_anchor(&self, anchor: Anchor) -> Result<()> {
                self.inner.record_anchor(anchor).await
            }

            async fn anchors(&self) -> Result<Vec<Anchor>> {
                self.inner.anchors().await
            }

            async fn entries(&self, after_seq: u64, limit: u32) -> Result<Vec<LoggedEntry>> {
                self.inner.entries(after_seq, limit).await
            }

            async fn entries_about(
                &self,
                relationships: &[B256],
                after_seq: u64,
                limit: u32,
            ) -> Result<Vec<LoggedEntry>> {
                self.inner.entries_about(relationships, after_seq, limit).await
            }

            async fn hashes(&self, from_seq: u64, to_seq_inclusive: u64) -> Result<Vec<B256>> {
                self.inner.column("hash", from_seq, to_seq_inclusive).await
            }

            async fn digests(&self, from_seq: u64, to_seq_inclusive: u64) -> Result<Vec<B256>> {
                self.inner.column("digest", from_seq, to_seq_inclusive).await
            }

            async fn nodes(&self, nodes: &[Node]) -> Result<Vec<B256>> {
                self.inner.nodes(nodes).await
            }
        }

        impl $log {
            /// Runs `statement` as is, for tests that tamper with the log.
            #[cfg(feature = "test-utils")]
            pub async fn execute_for_tests(&self, statement: &'static str) -> Result<()> {
                self.inner.execute(statement).await
            }
        }
    };
}

delegate_access_log!(PostgresAccessLog);
delegate_access_log!(MysqlAccessLog);
