//! The access log: the conformance suite on SQLite (a temp file and memory), PostgreSQL
//! and MariaDB/MySQL (a fresh database each, as the record store tests make them), and
//! what only some backends or the writer can show.

use medrec_store::{
    Result, StoreError,
    audit::{
        AccessLog, Anchor, AuditWriter, EnqueueError, LogHead, LoggedEntry, NewEntry, Proof,
        WriterConfig, check_chain,
        conformance::{TestLog, denied, full, head_of},
        inclusion_path, prove, prove_entries, root_at,
        sql::{MysqlAccessLog, PostgresAccessLog},
        sqlite::SqliteAccessLog,
        tree::Node,
        verify,
    },
    sql::{
        MysqlStore, PostgresStore,
        testing::{MAX_CONNECTIONS, TestStore},
    },
};
use std::{
    ops::Deref,
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

/// A database path unique to this test process; the file and its WAL companions are
/// removed (best effort) when dropped.
struct TempPath(PathBuf);

impl TempPath {
    fn new(tag: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("medrec-audit-{tag}-{}-{n}.sqlite", std::process::id());
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

/// A log and what must outlive it (its file or its database). Fields drop in order:
/// the log closes first.
struct Fixture<L, K> {
    log: L,
    _keep: K,
}

impl<L, K> Deref for Fixture<L, K> {
    type Target = L;

    fn deref(&self) -> &L {
        &self.log
    }
}

fn sqlite_file() -> Fixture<SqliteAccessLog, TempPath> {
    let path = TempPath::new("conformance");
    let log = SqliteAccessLog::open(&path.0).expect("a fresh temp file opens");
    Fixture { log, _keep: path }
}

medrec_store::audit_conformance_tests!(async { sqlite_file() });

mod in_memory {
    use medrec_store::audit::sqlite::SqliteAccessLog;

    medrec_store::audit_conformance_tests!(async {
        Box::new(SqliteAccessLog::open_in_memory().expect("an in-memory log opens"))
    });
}

mod postgres {
    use super::{Fixture, MAX_CONNECTIONS, PostgresAccessLog, PostgresStore, TestStore};

    const URL_VAR: &str = "MEDREC_TEST_PG_URL";
    const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

    pub(super) async fn fresh() -> Fixture<PostgresAccessLog, TestStore<PostgresStore>> {
        let url = std::env::var(URL_VAR).unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let unusable = |e: &dyn std::fmt::Display| -> ! {
            panic!(
                "the PostgreSQL server for the tests is unusable ({e}); start it, or set \
                 {URL_VAR} to the URL of one (default {DEFAULT_URL})"
            )
        };
        let db = TestStore::postgres(&url).await.unwrap_or_else(|e| unusable(&e));
        let options: sqlx::postgres::PgConnectOptions =
            url.parse().unwrap_or_else(|e| unusable(&e));
        let log =
            PostgresAccessLog::connect_options(options.database(db.database()), MAX_CONNECTIONS)
                .await
                .unwrap_or_else(|e| unusable(&e));
        Fixture { log, _keep: db }
    }

    medrec_store::audit_conformance_tests!(fresh());
}

mod mysql {
    use super::{Fixture, MAX_CONNECTIONS, MysqlAccessLog, MysqlStore, TestStore};

    const URL_VAR: &str = "MEDREC_TEST_MYSQL_URL";
    const DEFAULT_URL: &str = "mysql://root@127.0.0.1:3306/test";

    pub(super) async fn fresh() -> Fixture<MysqlAccessLog, TestStore<MysqlStore>> {
        let url = std::env::var(URL_VAR).unwrap_or_else(|_| DEFAULT_URL.to_owned());
        let unusable = |e: &dyn std::fmt::Display| -> ! {
            panic!(
                "the MariaDB/MySQL server for the tests is unusable ({e}); start it, or set \
                 {URL_VAR} to the URL of one (default {DEFAULT_URL})"
            )
        };
        let db = TestStore::mysql(&url).await.unwrap_or_else(|e| unusable(&e));
        let options: sqlx::mysql::MySqlConnectOptions =
            url.parse().unwrap_or_else(|e| unusable(&e));
        let log = MysqlAccessLog::connect_options(options.database(db.database()), MAX_CONNECTIONS)
            .await
            .unwrap_or_else(|e| unusable(&e));
        Fixture { log, _keep: db }
    }

    medrec_store::audit_conformance_tests!(fresh());
}

/// Appends from 8 tasks through two connections of their own (as two processes would)
/// still form one chain.
async fn two_handles_append_as_one<L: AccessLog + Clone + 'static>(a: L, b: L) {
    let mut tasks = Vec::new();
    for task in 0..8u8 {
        let log = if task % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            for round in 0..10u8 {
                let mut e = full(task);
                e.pointer = Some(round);
                log.append(e).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let head = check_chain(&a, 16).await.unwrap();
    assert_eq!(head.size, 80);
    assert_eq!(b.head().await.unwrap(), head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_connections_on_one_file_append_as_one() {
    let path = TempPath::new("two");
    let (a, b) = (SqliteAccessLog::open(&path.0).unwrap(), SqliteAccessLog::open(&path.0).unwrap());
    two_handles_append_as_one(a, b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_pools_append_as_one() {
    let first = postgres::fresh().await;
    let url = std::env::var("MEDREC_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let second = PostgresAccessLog::connect_options(options.database(first._keep.database()), 3)
        .await
        .unwrap();
    two_handles_append_as_one(first.log.clone(), second).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_pools_append_as_one() {
    let first = mysql::fresh().await;
    let url = std::env::var("MEDREC_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned());
    let options: sqlx::mysql::MySqlConnectOptions = url.parse().unwrap();
    let second =
        MysqlAccessLog::connect_options(options.database(first._keep.database()), 3).await.unwrap();
    two_handles_append_as_one(first.log.clone(), second).await;
}

#[tokio::test]
async fn the_log_survives_reopening_its_file() {
    let path = TempPath::new("reopen");
    let (head, anchor) = {
        let log = SqliteAccessLog::open(&path.0).unwrap();
        log.append_batch((1..=4).map(full).collect()).await.unwrap();
        let head = log.head().await.unwrap();
        let anchor = Anchor { size: 4, root: head.root, block: 3, tx: head.head };
        log.record_anchor(anchor).await.unwrap();
        (head, anchor)
    };
    let log = SqliteAccessLog::open(&path.0).unwrap();
    assert_eq!(log.head().await.unwrap(), head);
    assert_eq!(log.anchors().await.unwrap(), [anchor]);
    let next = log.append(full(5)).await.unwrap();
    assert_eq!((next.seq, next.prev_hash), (5, head.head));
    check_chain(&log, 100).await.unwrap();
}

#[tokio::test]
async fn unreachable_servers_are_database_errors() {
    let err =
        PostgresAccessLog::connect("postgres://postgres@127.0.0.1:1/postgres").await.unwrap_err();
    let StoreError::Database(message) = &err else { panic!("{err:?}") };
    assert!(
        message.contains("cannot connect to PostgreSQL at postgres://postgres@127.0.0.1:1/"),
        "{message}"
    );
    let err = MysqlAccessLog::connect("mysql://root:secret@127.0.0.1:1/test").await.unwrap_err();
    let StoreError::Database(message) = &err else { panic!("{err:?}") };
    assert!(
        message.contains("cannot connect to MySQL at mysql://root@127.0.0.1:1/test"),
        "{message}"
    );
    assert!(!message.contains("secret"), "{message}");
}

/// A log whose database can be switched off.
#[derive(Debug)]
struct Flaky {
    inner: SqliteAccessLog,
    down: AtomicBool,
    attempts: AtomicUsize,
}

#[async_trait::async_trait]
impl AccessLog for Flaky {
    async fn append_batch(&self, entries: Vec<NewEntry>) -> Result<Vec<LoggedEntry>> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Database("connection refused".into()));
        }
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
        relationships: &[alloy_primitives::B256],
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<LoggedEntry>> {
        self.inner.entries_about(relationships, after_seq, limit).await
    }

    async fn hashes(&self, from: u64, to: u64) -> Result<Vec<alloy_primitives::B256>> {
        self.inner.hashes(from, to).await
    }

    async fn digests(&self, from: u64, to: u64) -> Result<Vec<alloy_primitives::B256>> {
        self.inner.digests(from, to).await
    }

    async fn nodes(&self, nodes: &[Node]) -> Result<Vec<alloy_primitives::B256>> {
        self.inner.nodes(nodes).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_refuses_and_a_database_back_up_gets_everything() {
    let flaky = Arc::new(Flaky {
        inner: SqliteAccessLog::open_in_memory().unwrap(),
        down: AtomicBool::new(true),
        attempts: AtomicUsize::new(0),
    });
    let config = WriterConfig {
        capacity: 3,
        max_batch: 2,
        retry_delay: Duration::from_millis(5),
        linger: Duration::ZERO,
    };
    let writer = AuditWriter::spawn(flaky.clone(), config);
    // The writer holds at most one batch (2) besides the queue (3): the sixth entry at
    // the latest finds the queue full.
    let mut accepted = 0;
    let refused = loop {
        match writer.log(denied(accepted, None)) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        assert!(accepted <= 5, "the queue is bounded");
    };
    assert_eq!(refused, EnqueueError::QueueFull { capacity: 3 });
    assert_eq!(refused.to_string(), "the access log queue is full (3 entries wait to be written)");
    // Until the database is back, the writer keeps trying the same batch.
    while flaky.attempts.load(Ordering::SeqCst) < 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(flaky.head().await.unwrap().size, 0);
    flaky.down.store(false, Ordering::SeqCst);
    writer.flush().await.unwrap();
    let written = flaky.entries(0, 100).await.unwrap();
    let times: Vec<i64> = written.iter().map(|e| e.entry.time).collect();
    assert_eq!(times, (0..accepted).collect::<Vec<_>>(), "nothing lost, in order");
    // And there is room again.
    writer.log(denied(accepted, None)).unwrap();
    writer.flush().await.unwrap();
    assert_eq!(flaky.head().await.unwrap().size, u64::try_from(accepted).unwrap() + 1);
    check_chain(&*flaky, 10).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_batch_lingers_to_gather_more_before_its_commit() {
    let counted = Arc::new(Flaky {
        inner: SqliteAccessLog::open_in_memory().unwrap(),
        down: AtomicBool::new(false),
        attempts: AtomicUsize::new(0),
    });
    // A linger long enough that the twenty entries below arrive within it even on a
    // loaded machine; the flush at the end must not wait for it.
    let config = WriterConfig { linger: Duration::from_secs(2), ..WriterConfig::default() };
    let writer = AuditWriter::spawn(counted.clone(), config);
    // One entry wakes the writer; the rest arrive while it lingers.
    writer.log(denied(0, None)).unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    for t in 1..20 {
        writer.log(denied(t, None)).unwrap();
    }
    while counted.head().await.unwrap().size < 20 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(counted.attempts.load(Ordering::SeqCst), 1, "twenty entries, one commit");
    // A flush cuts the linger short: what it waits for is written at once.
    writer.log(denied(20, None)).unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let flushed = tokio::time::timeout(Duration::from_millis(1500), writer.flush()).await;
    assert!(flushed.is_ok_and(|r| r.is_ok()), "the flush did not wait out the linger");
    assert_eq!(counted.head().await.unwrap().size, 21);
    check_chain(&*counted, 30).await.unwrap();
}

/// A log of 100,000 entries appended in one batch: a root or a path reads a few stored
/// subtrees, and a proof stays within `2·log2(n)` hashes wherever the entry is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_stay_logarithmic_in_a_large_log() {
    const N: u64 = 100_000;
    let log = SqliteAccessLog::open_in_memory().unwrap();
    let entries = (0..N).map(|t| denied(i64::try_from(t).unwrap(), None)).collect();
    let written = log.append_batch(entries).await.unwrap();
    let head = log.head().await.unwrap();
    assert_eq!(head, head_of(&written));
    let anchor = Anchor { size: N, root: head.root, block: 1, tx: head.head };
    log.record_anchor(anchor).await.unwrap();
    // 2·log2(100,000) ≈ 33.2; the path is ⌈log2 n⌉ = 17 at most.
    let bound = 2 * (64 - (N - 1).leading_zeros()) as usize;
    for seq in [1, 2, 3, 777, 50_000, 65_536, 65_537, 99_999, N] {
        let proof = prove(&log, seq).await.unwrap().expect("anchored");
        assert!(proof.path.len() <= 17 && proof.path.len() <= bound, "entry {seq}");
        verify(&proof).unwrap();
    }
    // Earlier prefixes too, and a page of proofs at once.
    for size in [1, 1000, 65_536, 99_999] {
        let root = root_at(&log, size).await.unwrap();
        let prefix = usize::try_from(size).unwrap();
        assert_eq!(root, head_of(&written[..prefix]).root, "size {size}");
        let path = inclusion_path(&log, size, size).await.unwrap();
        let entry = written[prefix - 1].clone();
        verify(&Proof { entry, path, anchor: Anchor { size, root, ..anchor } }).unwrap();
    }
    let page = written[40_000..40_100].to_vec();
    for proof in prove_entries(&log, page).await.unwrap() {
        verify(&proof.expect("anchored")).unwrap();
    }
}

/// A log written before the Merkle tree existed (its tree rows gone) gets its tree when
/// it is opened again, and its entries prove against the root.
async fn a_log_without_a_tree_gets_one<L: TestLog>(log: &L, reopen: impl AsyncFnOnce() -> L) {
    let written = log.append_batch((1..=13).map(full).collect()).await.unwrap();
    log.execute("DELETE FROM audit_tree").await.unwrap();
    assert!(log.head().await.is_err(), "no tree");
    let log = reopen().await;
    let head = log.head().await.unwrap();
    assert_eq!(head, head_of(&written));
    log.record_anchor(Anchor { size: 13, root: head.root, block: 1, tx: head.head }).await.unwrap();
    for seq in 1..=13 {
        verify(&prove(&log, seq).await.unwrap().unwrap()).unwrap();
    }
    let next = log.append(full(14)).await.unwrap();
    let mut all = written;
    all.push(next);
    assert_eq!(check_chain(&log, 5).await.unwrap(), head_of(&all));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_log_without_a_tree_gets_one() {
    let path = TempPath::new("no-tree");
    let log = SqliteAccessLog::open(&path.0).unwrap();
    a_log_without_a_tree_gets_one(&log, async || SqliteAccessLog::open(&path.0).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_log_without_a_tree_gets_one() {
    let first = postgres::fresh().await;
    let url = std::env::var("MEDREC_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let database = first._keep.database().to_owned();
    a_log_without_a_tree_gets_one(&first.log, async || {
        PostgresAccessLog::connect_options(options.database(&database), 3).await.unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mysql_log_without_a_tree_gets_one() {
    let first = mysql::fresh().await;
    let url = std::env::var("MEDREC_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned());
    let options: sqlx::mysql::MySqlConnectOptions = url.parse().unwrap();
    let database = first._keep.database().to_owned();
    a_log_without_a_tree_gets_one(&first.log, async || {
        MysqlAccessLog::connect_options(options.database(&database), 3).await.unwrap()
    })
    .await;
}

/// A log written when `audit_tree` also held the leaves (earlier versions) opens as it
/// is: its entries prove, appends continue the tree without leaf rows, and the chain
/// check holds.
async fn a_log_with_leaf_rows_continues<L: TestLog>(log: &L, reopen: impl AsyncFnOnce() -> L) {
    let written = log.append_batch((1..=11).map(full).collect()).await.unwrap();
    let rows: Vec<String> = written
        .iter()
        .map(|e| {
            let leaf = medrec_store::audit::tree::leaf_hash(&e.hash);
            format!("(0, {}, '{leaf}')", e.seq - 1)
        })
        .collect();
    let insert = format!("INSERT INTO audit_tree (level, idx, hash) VALUES {}", rows.join(", "));
    log.execute(Box::leak(insert.into_boxed_str())).await.unwrap();
    let log = reopen().await;
    assert_eq!(log.head().await.unwrap(), head_of(&written));
    let mut all = written;
    all.extend(log.append_batch((12..=20).map(full).collect()).await.unwrap());
    let head = log.head().await.unwrap();
    assert_eq!(head, head_of(&all));
    log.record_anchor(Anchor { size: 20, root: head.root, block: 1, tx: head.head }).await.unwrap();
    for seq in 1..=20 {
        verify(&prove(&log, seq).await.unwrap().unwrap()).unwrap();
    }
    assert_eq!(check_chain(&log, 6).await.unwrap(), head);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_log_with_leaf_rows_continues() {
    let path = TempPath::new("leaf-rows");
    let log = SqliteAccessLog::open(&path.0).unwrap();
    a_log_with_leaf_rows_continues(&log, async || SqliteAccessLog::open(&path.0).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_log_with_leaf_rows_continues() {
    let first = postgres::fresh().await;
    let url = std::env::var("MEDREC_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let options: sqlx::postgres::PgConnectOptions = url.parse().unwrap();
    let database = first._keep.database().to_owned();
    a_log_with_leaf_rows_continues(&first.log, async || {
        PostgresAccessLog::connect_options(options.database(&database), 3).await.unwrap()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mysql_log_with_leaf_rows_continues() {
    let first = mysql::fresh().await;
    let url = std::env::var("MEDREC_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/test".to_owned());
    let options: sqlx::mysql::MySqlConnectOptions = url.parse().unwrap();
    let database = first._keep.database().to_owned();
    a_log_with_leaf_rows_continues(&first.log, async || {
        MysqlAccessLog::connect_options(options.database(&database), 3).await.unwrap()
    })
    .await;
}
