//! Throwaway databases for the tests of these backends (the `test-utils` feature).

use super::{MysqlStore, PostgresStore, parse_url};
use crate::{Result, StoreError};
use sqlx::{
    AssertSqlSafe, ConnectOptions, Connection, MySql, MySqlConnection, PgConnection, Postgres,
    mysql::MySqlConnectOptions, postgres::PgConnectOptions,
};
use std::{
    ops::Deref,
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};
use tokio::sync::OnceCell;

/// Names of test databases start with this.
pub const PREFIX: &str = "medrec_t_";

/// Connections per test store: small, so that many cases run side by side.
pub const MAX_CONNECTIONS: u32 = 5;

/// Test databases older than this are left over from earlier runs (a case lasts
/// seconds).
const STALE_AFTER_SECS: u64 = 15 * 60;

static PG_SWEPT: OnceCell<()> = OnceCell::const_new();
static MYSQL_SWEPT: OnceCell<()> = OnceCell::const_new();
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A store on a fresh, empty, uniquely named database (`medrec_t_<unix
/// seconds>_<pid>_<counter>_<random>`), which is dropped with it. The first test
/// store of a process also drops the test databases that earlier runs left behind.
#[derive(Debug)]
pub struct TestStore<S> {
    store: S,
    database: String,
    admin: Admin,
}

/// How to reach the server as its administrator.
#[derive(Debug, Clone)]
enum Admin {
    Postgres(PgConnectOptions),
    Mysql(MySqlConnectOptions),
}

impl<S> Deref for TestStore<S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.store
    }
}

impl<S> TestStore<S> {
    /// The test database's name.
    pub fn database(&self) -> &str {
        &self.database
    }
}

impl TestStore<PostgresStore> {
    /// A store on a new database of the PostgreSQL server at `admin_url`, whose user
    /// may create databases.
    pub async fn postgres(admin_url: &str) -> Result<Self> {
        let options = parse_url::<Postgres>(admin_url)?;
        let admin = Admin::Postgres(options.clone());
        let database = admin.create_database().await?;
        match PostgresStore::connect_options(options.database(&database), MAX_CONNECTIONS).await {
            Ok(store) => Ok(Self { store, database, admin }),
            Err(e) => {
                let _ = admin.drop_database(&database).await;
                Err(e)
            }
        }
    }

    /// Another store on the same database, as another process would open it.
    pub async fn reconnect(&self) -> Result<PostgresStore> {
        let Admin::Postgres(options) = &self.admin else { unreachable!("a PostgreSQL store") };
        let options = options.clone().database(&self.database);
        PostgresStore::connect_options(options, MAX_CONNECTIONS).await
    }
}

impl TestStore<MysqlStore> {
    /// A store on a new database of the MySQL or MariaDB server at `admin_url`, whose
    /// user may create databases.
    pub async fn mysql(admin_url: &str) -> Result<Self> {
        let options = parse_url::<MySql>(admin_url)?;
        let admin = Admin::Mysql(options.clone());
        let database = admin.create_database().await?;
        match MysqlStore::connect_options(options.database(&database), MAX_CONNECTIONS).await {
            Ok(store) => Ok(Self { store, database, admin }),
            Err(e) => {
                let _ = admin.drop_database(&database).await;
                Err(e)
            }
        }
    }

    /// Another store on the same database, as another process would open it.
    pub async fn reconnect(&self) -> Result<MysqlStore> {
        let Admin::Mysql(options) = &self.admin else { unreachable!("a MySQL store") };
        let options = options.clone().database(&self.database);
        MysqlStore::connect_options(options, MAX_CONNECTIONS).await
    }
}

impl<S> Drop for TestStore<S> {
    fn drop(&mut self) {
        // Dropping needs the server, and a Drop cannot await: a thread of its own
        // with its own runtime does it, so the test's runtime is never blocked on.
        let admin = self.admin.clone();
        let database = std::mem::take(&mut self.database);
        let dropper = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build()
            else {
                return;
            };
            runtime.block_on(async {
                let drop = admin.drop_database(&database);
                let _ = tokio::time::timeout(Duration::from_secs(30), drop).await;
            });
        });
        let _ = dropper.join();
    }
}

fn unix_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn new_name() -> String {
    let mut random = [0u8; 4];
    getrandom::fill(&mut random).expect("the OS has randomness");
    format!(
        "{PREFIX}{}_{}_{}_{:08x}",
        unix_secs(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        u32::from_be_bytes(random)
    )
}

/// Whether a test database is left over from an earlier run.
fn is_stale(name: &str) -> bool {
    let created = name.strip_prefix(PREFIX).and_then(|rest| rest.split('_').next());
    created
        .and_then(|secs| secs.parse::<u64>().ok())
        .is_some_and(|secs| secs + STALE_AFTER_SECS < unix_secs())
}

/// Database names go into DDL, which takes no parameters: only ours are accepted.
fn checked(name: &str) -> Result<&str> {
    let ok = name.starts_with(PREFIX)
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(name)
    } else {
        Err(StoreError::Database(format!("'{name}' is not a test database name")))
    }
}

fn failed(what: &str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
    move |e| StoreError::Database(format!("{what}: {e}"))
}

impl Admin {
    async fn create_database(&self) -> Result<String> {
        let name = new_name();
        match self {
            Self::Postgres(options) => {
                let mut conn = pg_admin(options).await?;
                PG_SWEPT.get_or_init(|| pg_sweep(&mut conn)).await;
                let sql = format!("CREATE DATABASE \"{}\"", checked(&name)?);
                let created = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await;
                let _ = conn.close().await;
                created.map_err(failed("cannot create a PostgreSQL test database"))?;
            }
            Self::Mysql(options) => {
                let mut conn = mysql_admin(options).await?;
                MYSQL_SWEPT.get_or_init(|| mysql_sweep(&mut conn)).await;
                let sql = format!(
                    "CREATE DATABASE `{}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
                    checked(&name)?
                );
                let created = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await;
                let _ = conn.close().await;
                created.map_err(failed("cannot create a MySQL test database"))?;
            }
        }
        Ok(name)
    }

    async fn drop_database(&self, name: &str) -> Result<()> {
        match self {
            Self::Postgres(options) => {
                let mut conn = pg_admin(options).await?;
                let dropped = pg_drop(&mut conn, name).await;
                let _ = conn.close().await;
                dropped
            }
            Self::Mysql(options) => {
                let mut conn = mysql_admin(options).await?;
                let dropped = mysql_drop(&mut conn, name).await;
                let _ = conn.close().await;
                dropped
            }
        }
    }
}

async fn pg_admin(options: &PgConnectOptions) -> Result<PgConnection> {
    let at = <Postgres as super::Backend>::describe(options);
    options
        .connect()
        .await
        .map_err(|e| StoreError::Database(format!("cannot connect to PostgreSQL at {at}: {e}")))
}

async fn mysql_admin(options: &MySqlConnectOptions) -> Result<MySqlConnection> {
    let at = <MySql as super::Backend>::describe(options);
    options
        .connect()
        .await
        .map_err(|e| StoreError::Database(format!("cannot connect to MySQL at {at}: {e}")))
}

async fn pg_drop(conn: &mut PgConnection, name: &str) -> Result<()> {
    // FORCE ends the store's connections first.
    let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", checked(name)?);
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await
        .map_err(failed("cannot drop a PostgreSQL test database"))?;
    Ok(())
}

async fn mysql_drop(conn: &mut MySqlConnection, name: &str) -> Result<()> {
    let name = checked(name)?;
    // End the store's connections first: one left in a transaction would hold the
    // drop up.
    let ids: Vec<i64> = sqlx::query_scalar(
        "SELECT CAST(ID AS SIGNED) FROM information_schema.PROCESSLIST WHERE DB = ?",
    )
    .bind(name)
    .fetch_all(&mut *conn)
    .await
    .map_err(failed("cannot list a MySQL test database's connections"))?;
    for id in ids {
        let kill = format!("KILL CONNECTION {id}");
        let _ = sqlx::raw_sql(AssertSqlSafe(kill)).execute(&mut *conn).await;
    }
    let sql = format!("DROP DATABASE IF EXISTS `{name}`");
    sqlx::raw_sql(AssertSqlSafe(sql))
        .execute(&mut *conn)
        .await
        .map_err(failed("cannot drop a MySQL test database"))?;
    Ok(())
}

const LIKE_PREFIX: &str = "medrec\\_t\\_%";

/// Drops the test databases earlier runs left behind (best effort).
async fn pg_sweep(conn: &mut PgConnection) {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname::text FROM pg_database WHERE datname LIKE $1")
            .bind(LIKE_PREFIX)
            .fetch_all(&mut *conn)
            .await
            .unwrap_or_default();
    for name in names.iter().filter(|n| is_stale(n)) {
        let _ = pg_drop(conn, name).await;
    }
}

/// Drops the test databases earlier runs left behind (best effort).
async fn mysql_sweep(conn: &mut MySqlConnection) {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?",
    )
    .bind(LIKE_PREFIX)
    .fetch_all(&mut *conn)
    .await
    .unwrap_or_default();
    for name in names.iter().filter(|n| is_stale(n)) {
        let _ = mysql_drop(conn, name).await;
    }
}
