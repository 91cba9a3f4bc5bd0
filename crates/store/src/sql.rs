//! PostgreSQL and MySQL/MariaDB backends (sqlx).
//!
//! Both backends keep the same three tables, created when missing by `connect`:
//!
//! - `resources`: the current version of every resource, with its indexed search
//!   columns (`patient`, `date_start`, `last_updated`) and its JSON;
//! - `resource_versions`: every version's JSON, for `read_version`;
//! - `resource_tokens`: the `category` and `code` codings of the current versions,
//!   rewritten on every update.
//!
//! JSON is stored as text, exactly as `serde_json` writes it (never as a JSON column
//! type, which would normalise it), so it reads back exactly. Every value is bound as a
//! parameter. Writes run in one transaction each; concurrent updates of one resource
//! serialise on its row (an upsert claims the next version), and a transaction the
//! server aborts as a deadlock or serialisation failure is retried.
//!
//! Ids, patients, codes and systems compare byte for byte (`COLLATE "C"` on PostgreSQL,
//! binary collations and strings on MySQL), and `_id` orders by bytes, as in the
//! other backends.

use crate::{
    Page, RecordStore, Result, StoreError, Stored,
    fhir::{Resource, ResourceId, ResourceType},
    now_ms,
    search::{SearchQuery, SortField, TokenMatch},
    stamp, with_id_for_create,
};
use sqlx::{
    AssertSqlSafe, ConnectOptions, Connection, Database, Decode, Encode, Executor, MySql, Pool,
    Postgres, Row, Type,
    mysql::{MySqlConnectOptions, MySqlPoolOptions},
    pool::PoolOptions,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use std::{fmt::Write as _, time::Duration};

/// Connections per pool when the caller does not say.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// How long `connect` waits for the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an operation waits for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// Tries of a write transaction the server aborted as a deadlock.
const WRITE_ATTEMPTS: u32 = 8;

/// The SQL a backend runs: everything that differs between the dialects.
#[derive(Debug)]
struct Dialect {
    /// The server's name, for messages.
    name: &'static str,
    /// `$1, $2, ...` (PostgreSQL) rather than `?` (MySQL).
    numbered: bool,
    /// Creates the schema when missing; idempotent.
    schema: &'static [&'static str],
    /// Inserts version 1 of a new resource: type, id, last_updated, patient,
    /// date_start, json. Fails with a unique violation when the id exists.
    insert_new: &'static str,
    /// Codes are indexed by `left(code, 256)`: code conditions repeat it so that the
    /// index serves them.
    left_code_index: bool,
    /// As `insert_new`, but when the resource exists, locks its row and claims the next
    /// version instead. Returns that version unless `claimed_version` is needed.
    claim: &'static str,
    /// Reads the version just claimed (type, id), when `claim` cannot return it.
    claimed_version: Option<&'static str>,
    /// Sets the current row of a claimed version: last_updated, patient, date_start,
    /// json, type, id.
    update_current: &'static str,
    /// Keeps a version: type, id, version, last_updated, json.
    insert_version: &'static str,
    /// Forgets a resource's tokens: type, id.
    delete_tokens: &'static str,
    /// The current version: type, id.
    read: &'static str,
    /// A given version: type, id, version.
    read_version: &'static str,
    /// Runs on the connection before a write transaction begins.
    before_write: Option<&'static str>,
    /// Begins a search's read-only transaction, one snapshot for total and page.
    begin_search: &'static str,
}

const POSTGRES: Dialect = Dialect {
    name: "PostgreSQL",
    numbered: true,
    schema: &[
        "BEGIN",
        // Two stores starting at once on a new database must not race on the DDL.
        "SELECT pg_advisory_xact_lock(7306925846211535)",
        r#"CREATE TABLE IF NOT EXISTS resources (
            resource_type VARCHAR(32) COLLATE "C" NOT NULL,
            id VARCHAR(64) COLLATE "C" NOT NULL,
            version BIGINT NOT NULL,
            last_updated BIGINT NOT NULL,
            patient VARCHAR(64) COLLATE "C",
            date_start BIGINT,
            json TEXT NOT NULL,
            PRIMARY KEY (resource_type, id)
        )"#,
        // A compartment's page (type, patient, ORDER BY id) reads this index in order.
        "DROP INDEX IF EXISTS resources_patient",
        "CREATE INDEX IF NOT EXISTS resources_patient_id ON resources (resource_type, patient, id)",
        "CREATE INDEX IF NOT EXISTS resources_date ON resources (resource_type, date_start)",
        "CREATE INDEX IF NOT EXISTS resources_last_updated \
            ON resources (resource_type, last_updated)",
        r#"CREATE TABLE IF NOT EXISTS resource_versions (
            resource_type VARCHAR(32) COLLATE "C" NOT NULL,
            id VARCHAR(64) COLLATE "C" NOT NULL,
            version BIGINT NOT NULL,
            last_updated BIGINT NOT NULL,
            json TEXT NOT NULL,
            PRIMARY KEY (resource_type, id, version)
        )"#,
        r#"CREATE TABLE IF NOT EXISTS resource_tokens (
            resource_type VARCHAR(32) COLLATE "C" NOT NULL,
            id VARCHAR(64) COLLATE "C" NOT NULL,
            param VARCHAR(16) COLLATE "C" NOT NULL,
            code_system TEXT COLLATE "C" NOT NULL,
            code TEXT COLLATE "C" NOT NULL
        )"#,
        "CREATE INDEX IF NOT EXISTS resource_tokens_resource ON resource_tokens (resource_type, id)",
        // Codes can be long, longer than a B-tree entry may be: index their start.
        "CREATE INDEX IF NOT EXISTS resource_tokens_code \
            ON resource_tokens (resource_type, param, left(code, 256))",
        "COMMIT",
    ],
    insert_new: "INSERT INTO resources \
        (resource_type, id, version, last_updated, patient, date_start, json) \
        VALUES ($1, $2, 1, $3, $4, $5, $6)",
    left_code_index: true,
    claim: "INSERT INTO resources \
        (resource_type, id, version, last_updated, patient, date_start, json) \
        VALUES ($1, $2, 1, $3, $4, $5, $6) \
        ON CONFLICT (resource_type, id) DO UPDATE SET version = resources.version + 1 \
        RETURNING version",
    claimed_version: None,
    update_current: "UPDATE resources SET last_updated = $1, patient = $2, date_start = $3, \
        json = $4 WHERE resource_type = $5 AND id = $6",
    insert_version: "INSERT INTO resource_versions \
        (resource_type, id, version, last_updated, json) VALUES ($1, $2, $3, $4, $5)",
    delete_tokens: "DELETE FROM resource_tokens WHERE resource_type = $1 AND id = $2",
    read: "SELECT version, last_updated, json FROM resources \
        WHERE resource_type = $1 AND id = $2",
    read_version: "SELECT version, last_updated, json FROM resource_versions \
        WHERE resource_type = $1 AND id = $2 AND version = $3",
    before_write: None,
    begin_search: "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
};

const MYSQL: Dialect = Dialect {
    name: "MySQL",
    numbered: false,
    // Identifiers and the type compare with utf8mb4_bin; systems and codes are binary
    // strings, because even utf8mb4_bin ignores trailing spaces (PAD SPACE).
    schema: &[
        "CREATE TABLE IF NOT EXISTS resources (
            resource_type VARCHAR(32) NOT NULL,
            id VARCHAR(64) NOT NULL,
            version BIGINT NOT NULL,
            last_updated BIGINT NOT NULL,
            patient VARCHAR(64) NULL,
            date_start BIGINT NULL,
            json LONGTEXT NOT NULL,
            PRIMARY KEY (resource_type, id),
            INDEX resources_patient (resource_type, patient),
            INDEX resources_date (resource_type, date_start),
            INDEX resources_last_updated (resource_type, last_updated)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS resource_versions (
            resource_type VARCHAR(32) NOT NULL,
            id VARCHAR(64) NOT NULL,
            version BIGINT NOT NULL,
            last_updated BIGINT NOT NULL,
            json LONGTEXT NOT NULL,
            PRIMARY KEY (resource_type, id, version)
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "CREATE TABLE IF NOT EXISTS resource_tokens (
            resource_type VARCHAR(32) NOT NULL,
            id VARCHAR(64) NOT NULL,
            param VARCHAR(16) NOT NULL,
            code_system MEDIUMBLOB NOT NULL,
            code MEDIUMBLOB NOT NULL,
            INDEX resource_tokens_resource (resource_type, id),
            INDEX resource_tokens_code (resource_type, param, code(255))
        ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
    ],
    insert_new: "INSERT INTO resources \
        (resource_type, id, version, last_updated, patient, date_start, json) \
        VALUES (?, ?, 1, ?, ?, ?, ?)",
    left_code_index: false,
    claim: "INSERT INTO resources \
        (resource_type, id, version, last_updated, patient, date_start, json) \
        VALUES (?, ?, 1, ?, ?, ?, ?) \
        ON DUPLICATE KEY UPDATE version = version + 1",
    claimed_version: Some(
        "SELECT version FROM resources WHERE resource_type = ? AND id = ? FOR UPDATE",
    ),
    update_current: "UPDATE resources SET last_updated = ?, patient = ?, date_start = ?, \
        json = ? WHERE resource_type = ? AND id = ?",
    insert_version: "INSERT INTO resource_versions \
        (resource_type, id, version, last_updated, json) VALUES (?, ?, ?, ?, ?)",
    delete_tokens: "DELETE FROM resource_tokens WHERE resource_type = ? AND id = ?",
    read: "SELECT version, last_updated, json FROM resources WHERE resource_type = ? AND id = ?",
    read_version: "SELECT version, last_updated, json FROM resource_versions \
        WHERE resource_type = ? AND id = ? AND version = ?",
    // Writes lock only the rows they touch: no gap locks, so fewer deadlocks.
    before_write: Some("SET TRANSACTION ISOLATION LEVEL READ COMMITTED"),
    begin_search: "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
};

/// What the shared code needs to know of a sqlx driver.
trait Backend: Database {
    /// Its SQL.
    const DIALECT: Dialect;

    /// Where `options` point, for messages (never the password).
    fn describe(options: &<Self::Connection as Connection>::Options) -> String;
}

impl Backend for Postgres {
    const DIALECT: Dialect = POSTGRES;

    fn describe(options: &PgConnectOptions) -> String {
        let (user, host, port) = (options.get_username(), options.get_host(), options.get_port());
        let database = options.get_database().unwrap_or(user);
        format!("postgres://{user}@{host}:{port}/{database}")
    }
}

impl Backend for MySql {
    const DIALECT: Dialect = MYSQL;

    fn describe(options: &MySqlConnectOptions) -> String {
        let (user, host, port) = (options.get_username(), options.get_host(), options.get_port());
        let database = options.get_database().unwrap_or("");
        format!("mysql://{user}@{host}:{port}/{database}")
    }
}

/// A record store on PostgreSQL (tested with PostgreSQL 15).
#[derive(Debug, Clone)]
pub struct PostgresStore {
    inner: SqlStore<Postgres>,
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user:password@host:port/database`) with a pool of
    /// up to [`DEFAULT_MAX_CONNECTIONS`], creating the schema when it is missing.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, DEFAULT_MAX_CONNECTIONS).await
    }

    /// As [`connect`](Self::connect), with a pool of up to `max_connections`.
    pub async fn connect_with(url: &str, max_connections: u32) -> Result<Self> {
        let options = parse_url::<Postgres>(url)?;
        Self::connect_options(options, max_connections).await
    }

    /// As [`connect_with`](Self::connect_with), with parsed connect options.
    pub async fn connect_options(options: PgConnectOptions, max_connections: u32) -> Result<Self> {
        let pool = PgPoolOptions::new();
        Ok(Self { inner: SqlStore::open(pool, options, max_connections).await? })
    }
}

/// A record store on MySQL or MariaDB (tested with MariaDB 10.11).
#[derive(Debug, Clone)]
pub struct MysqlStore {
    inner: SqlStore<MySql>,
}

impl MysqlStore {
    /// Connects to `url` (`mysql://user:password@host:port/database`) with a pool of up
    /// to [`DEFAULT_MAX_CONNECTIONS`], creating the schema when it is missing.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, DEFAULT_MAX_CONNECTIONS).await
    }

    /// As [`connect`](Self::connect), with a pool of up to `max_connections`.
    pub async fn connect_with(url: &str, max_connections: u32) -> Result<Self> {
        let options = parse_url::<MySql>(url)?;
        Self::connect_options(options, max_connections).await
    }

    /// As [`connect_with`](Self::connect_with), with parsed connect options.
    pub async fn connect_options(
        options: MySqlConnectOptions,
        max_connections: u32,
    ) -> Result<Self> {
        let pool = MySqlPoolOptions::new();
        Ok(Self { inner: SqlStore::open(pool, options, max_connections).await? })
    }
}

macro_rules! delegate_record_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl RecordStore for $store {
            async fn create(&self, resource: Resource) -> Result<Stored> {
                self.inner.create(&resource).await
            }

            async fn update(&self, resource: Resource) -> Result<Stored> {
                let mut stored = self.inner.update_all(std::slice::from_ref(&resource)).await?;
                Ok(stored.pop().expect("one resource in, one stored"))
            }

            async fn update_all(&self, resources: Vec<Resource>) -> Result<Vec<Stored>> {
                self.inner.update_all(&resources).await
            }

            async fn read(
                &self,
                resource_type: ResourceType,
                id: &ResourceId,
            ) -> Result<Option<Stored>> {
                self.inner.read(resource_type, id, None).await
            }

            async fn read_version(
                &self,
                resource_type: ResourceType,
                id: &ResourceId,
                version: u64,
            ) -> Result<Option<Stored>> {
                match i64::try_from(version) {
                    Ok(version) => self.inner.read(resource_type, id, Some(version)).await,
                    Err(_) => Ok(None),
                }
            }

            async fn search(&self, query: &SearchQuery) -> Result<Page> {
                self.inner.search(query).await
            }
        }
    };
}

delegate_record_store!(PostgresStore);
delegate_record_store!(MysqlStore);

fn parse_url<DB: Backend>(url: &str) -> Result<<DB::Connection as Connection>::Options> {
    url.parse().map_err(|e| {
        // The URL may hold a password: name only its scheme.
        let scheme = url.split_once("://").map_or("", |(s, _)| s);
        StoreError::Database(format!("invalid {} URL (scheme '{scheme}'): {e}", DB::DIALECT.name))
    })
}

/// Why a write transaction failed.
enum Failure {
    /// The server aborted it (deadlock, serialisation): run it again.
    Retry(sqlx::Error),
    /// It failed for good.
    Store(StoreError),
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        let retry = matches!(&e, sqlx::Error::Database(d)
            if matches!(d.code().as_deref(), Some("40001" | "40P01")));
        if retry { Self::Retry(e) } else { Self::Store(database_error(&e)) }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

fn database_error(e: &sqlx::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

/// A value bound to a dynamically built statement.
#[derive(Debug, Clone, Copy)]
enum Arg<'a> {
    Int(i64),
    Text(&'a str),
}

/// A statement being built, with its arguments in order.
struct Statement<'a> {
    sql: String,
    args: Vec<Arg<'a>>,
    numbered: bool,
}

impl<'a> Statement<'a> {
    fn new(numbered: bool, sql: &str) -> Self {
        Self { sql: sql.to_owned(), args: Vec::new(), numbered }
    }

    fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder bound to `arg`.
    fn arg(&mut self, arg: Arg<'a>) -> &mut Self {
        self.args.push(arg);
        if self.numbered {
            let _ = write!(self.sql, "${}", self.args.len());
        } else {
            self.sql.push('?');
        }
        self
    }

    fn text(&mut self, s: &'a str) -> &mut Self {
        self.arg(Arg::Text(s))
    }

    fn int(&mut self, i: i64) -> &mut Self {
        self.arg(Arg::Int(i))
    }
}

/// The backend-independent store over a sqlx pool.
#[derive(Debug)]
struct SqlStore<DB: Database> {
    pool: Pool<DB>,
}

impl<DB: Database> Clone for SqlStore<DB> {
    fn clone(&self) -> Self {
        Self { pool: self.pool.clone() }
    }
}

impl<DB> SqlStore<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Decode<'a, DB> + Type<DB>,
    for<'a> String: Decode<'a, DB> + Type<DB>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Encode<'a, DB> + Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    /// Checks that the server answers, creates the schema when missing and opens the
    /// pool.
    async fn open(
        pool: PoolOptions<DB>,
        options: <DB::Connection as Connection>::Options,
        max_connections: u32,
    ) -> Result<Self> {
        let name = DB::DIALECT.name;
        let at = DB::describe(&options);
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
        for &statement in DB::DIALECT.schema {
            if let Err(e) = sqlx::raw_sql(statement).execute(&mut conn).await {
                return Err(StoreError::Database(format!(
                    "cannot create the record schema in {name} at {at}: {e}"
                )));
            }
        }
        let _ = conn.close().await;
        let pool = pool
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        Ok(Self { pool })
    }

    async fn create(&self, resource: &Resource) -> Result<Stored> {
        let resource = with_id_for_create(resource);
        let id = resource.id.clone().expect("named above");
        let mut stored = self.write(&[(&*resource, &id)], true).await?;
        Ok(stored.pop().expect("one resource in, one stored"))
    }

    async fn update_all(&self, resources: &[Resource]) -> Result<Vec<Stored>> {
        let items = resources
            .iter()
            .map(|r| r.id.as_ref().map(|id| (r, id)).ok_or(StoreError::MissingId))
            .collect::<Result<Vec<_>>>()?;
        if items.is_empty() {
            return Ok(Vec::new());
        }
        self.write(&items, false).await
    }

    /// Writes `items` in one transaction, again when the server aborts it as a deadlock.
    ///
    /// Rows are written (and so locked) in one global order, by type and id, whatever
    /// the order given: two batches over the same resources then wait for each other
    /// instead of deadlocking. The result comes back in the order given.
    async fn write(&self, items: &[(&Resource, &ResourceId)], create: bool) -> Result<Vec<Stored>> {
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by_key(|&i| (items[i].0.resource_type.as_str(), items[i].1.as_str()));
        let sorted: Vec<(&Resource, &ResourceId)> = order.iter().map(|&i| items[i]).collect();
        let mut attempt = 1;
        loop {
            match self.try_write(&sorted, create).await {
                Ok(stored) => {
                    let mut placed: Vec<Option<Stored>> = vec![None; items.len()];
                    for (s, &i) in stored.into_iter().zip(&order) {
                        placed[i] = Some(s);
                    }
                    return Ok(placed.into_iter().flatten().collect());
                }
                Err(Failure::Store(e)) => return Err(e),
                Err(Failure::Retry(e)) if attempt >= WRITE_ATTEMPTS => {
                    return Err(database_error(&e));
                }
                Err(Failure::Retry(_)) => {
                    // Back off a little, with jitter, so the contenders spread out.
                    let mut jitter = [0u8; 1];
                    let _ = getrandom::fill(&mut jitter);
                    let ms = u64::from(attempt) * 5 + u64::from(jitter[0] % 16);
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    attempt += 1;
                }
            }
        }
    }

    async fn try_write(
        &self,
        items: &[(&Resource, &ResourceId)],
        create: bool,
    ) -> Result<Vec<Stored>, Failure> {
        let mut conn = self.pool.acquire().await?;
        if let Some(statement) = DB::DIALECT.before_write {
            sqlx::raw_sql(statement).execute(&mut *conn).await?;
        }
        let mut tx = Connection::begin(&mut *conn).await?;
        let mut stored = Vec::with_capacity(items.len());
        for &(resource, id) in items {
            stored.push(Self::write_one(&mut tx, resource, id, create).await?);
        }
        tx.commit().await?;
        Ok(stored)
    }

    /// Stores the next version of one resource (version 1 when `create`).
    async fn write_one(
        conn: &mut DB::Connection,
        resource: &Resource,
        id: &ResourceId,
        create: bool,
    ) -> Result<Stored, Failure> {
        let d = &DB::DIALECT;
        let ty = resource.resource_type.as_str();
        // A patient reference that is not an id can never match a `patient` search.
        let patient = resource.index.patient.as_deref().filter(|p| p.parse::<ResourceId>().is_ok());
        let date_start = resource.index.date.map(|(start, _)| start);
        let mut last_updated = now_ms();
        let mut json = stamp(resource, id, 1, last_updated);
        let mut text = json.to_string();
        let insert = sqlx::query(if create { d.insert_new } else { d.claim })
            .bind(ty)
            .bind(id.as_str())
            .bind(last_updated)
            .bind(patient)
            .bind(date_start)
            .bind(text.as_str());
        let version: i64 = if create {
            match insert.execute(&mut *conn).await {
                Ok(_) => 1,
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    return Err(Failure::Store(StoreError::Exists {
                        resource_type: resource.resource_type,
                        id: id.clone(),
                    }));
                }
                Err(e) => return Err(e.into()),
            }
        } else if let Some(select) = d.claimed_version {
            insert.execute(&mut *conn).await?;
            let row = sqlx::query(select).bind(ty).bind(id.as_str()).fetch_one(&mut *conn).await?;
            row.try_get(0)?
        } else {
            insert.fetch_one(&mut *conn).await?.try_get(0)?
        };
        if version > 1 {
            // The row existed: it is locked now, so the clock reads after the previous
            // version's.
            let number = u64::try_from(version).map_err(|_| corrupt("a negative version"))?;
            last_updated = now_ms();
            json = stamp(resource, id, number, last_updated);
            text = json.to_string();
            sqlx::query(d.update_current)
                .bind(last_updated)
                .bind(patient)
                .bind(date_start)
                .bind(text.as_str())
                .bind(ty)
                .bind(id.as_str())
                .execute(&mut *conn)
                .await?;
            sqlx::query(d.delete_tokens).bind(ty).bind(id.as_str()).execute(&mut *conn).await?;
        }
        sqlx::query(d.insert_version)
            .bind(ty)
            .bind(id.as_str())
            .bind(version)
            .bind(last_updated)
            .bind(text.as_str())
            .execute(&mut *conn)
            .await?;
        if !resource.index.tokens.is_empty() {
            let mut insert = Statement::new(
                d.numbered,
                "INSERT INTO resource_tokens (resource_type, id, param, code_system, code) VALUES ",
            );
            for (i, token) in resource.index.tokens.iter().enumerate() {
                insert.push(if i == 0 { "(" } else { ", (" });
                insert.text(ty).push(", ").text(id.as_str()).push(", ").text(token.param);
                insert.push(", ").text(&token.system).push(", ").text(&token.code).push(")");
            }
            bind(&insert).execute(&mut *conn).await?;
        }
        Ok(Stored {
            resource_type: resource.resource_type,
            id: id.clone(),
            version: u64::try_from(version).map_err(|_| corrupt("a negative version"))?,
            last_updated,
            json,
        })
    }

    /// The current version (`version` None) or a given one.
    async fn read(
        &self,
        resource_type: ResourceType,
        id: &ResourceId,
        version: Option<i64>,
    ) -> Result<Option<Stored>> {
        let d = &DB::DIALECT;
        let query = match version {
            None => sqlx::query(d.read).bind(resource_type.as_str()).bind(id.as_str()),
            Some(v) => {
                sqlx::query(d.read_version).bind(resource_type.as_str()).bind(id.as_str()).bind(v)
            }
        };
        let row = query.fetch_optional(&self.pool).await.map_err(|e| database_error(&e))?;
        row.map(|row| stored(resource_type, id.clone(), &row, 0)).transpose()
    }

    async fn search(&self, query: &SearchQuery) -> Result<Page> {
        let d = &DB::DIALECT;
        let mut tx = self.pool.begin_with(d.begin_search).await.map_err(|e| database_error(&e))?;
        let mut count = Statement::new(d.numbered, "SELECT COUNT(*) FROM resources r");
        where_clause(&mut count, d, query);
        let total: i64 = bind(&count)
            .fetch_one(&mut *tx)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| database_error(&e))?;
        let total = u64::try_from(total).map_err(|_| corrupt("a negative count"))?;
        let mut entries = Vec::new();
        if query.count > 0 && total > u64::from(query.offset) {
            let mut page = Statement::new(
                d.numbered,
                "SELECT r.id, r.version, r.last_updated, r.json FROM resources r",
            );
            where_clause(&mut page, d, query);
            order_by(&mut page, query);
            page.push(" LIMIT ").int(query.count.into()).push(" OFFSET ").int(query.offset.into());
            let rows = bind(&page).fetch_all(&mut *tx).await.map_err(|e| database_error(&e))?;
            for row in &rows {
                let id: String = row.try_get(0).map_err(|e| database_error(&e))?;
                let id = id.parse().map_err(|_| corrupt("an invalid id"))?;
                entries.push(stored(query.resource_type, id, row, 1)?);
            }
        }
        tx.commit().await.map_err(|e| database_error(&e))?;
        Ok(Page { total, entries })
    }
}

/// A query for `statement` with its arguments bound.
fn bind<'s, DB>(statement: &'s Statement<'_>) -> sqlx::query::Query<'s, DB, DB::Arguments>
where
    DB: Database,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
{
    // Only placeholders and fixed SQL go into the text; every value is an argument.
    let mut query = sqlx::query(AssertSqlSafe(statement.sql.clone()));
    for arg in &statement.args {
        query = match *arg {
            Arg::Int(i) => query.bind(i),
            Arg::Text(s) => query.bind(s),
        };
    }
    query
}

/// The `WHERE` conditions of `query`, on `resources r`.
fn where_clause<'a>(s: &mut Statement<'a>, d: &Dialect, query: &'a SearchQuery) {
    s.push(" WHERE r.resource_type = ").text(query.resource_type.as_str());
    if !query.ids.is_empty() {
        s.push(" AND r.id IN (");
        for (i, id) in query.ids.iter().enumerate() {
            if i > 0 {
                s.push(", ");
            }
            s.text(id.as_str());
        }
        s.push(")");
    }
    if let Some(patient) = &query.patient {
        s.push(" AND r.patient = ").text(patient.as_str());
    }
    for (param, lists) in [("category", &query.category), ("code", &query.code)] {
        for any_of in lists {
            tokens_exist(s, d, param, any_of);
        }
    }
    if !query.date.is_empty() {
        // A resource without a date never matches a date condition.
        s.push(" AND r.date_start IS NOT NULL");
    }
    for (column, bounds) in [("r.date_start", &query.date), ("r.last_updated", &query.last_updated)]
    {
        for bound in bounds {
            let (lower, upper) = bound.bounds();
            if let Some(lower) = lower {
                s.push(" AND ").push(column).push(" >= ").int(lower);
            }
            if let Some(upper) = upper {
                s.push(" AND ").push(column).push(" < ").int(upper);
            }
        }
    }
}

/// One token parameter: some coding of `param` matches one of `any_of`.
fn tokens_exist<'a>(s: &mut Statement<'a>, d: &Dialect, param: &'a str, any_of: &'a [TokenMatch]) {
    s.push(
        " AND EXISTS (SELECT 1 FROM resource_tokens t \
         WHERE t.resource_type = r.resource_type AND t.id = r.id AND t.param = ",
    )
    .text(param)
    .push(" AND (");
    if any_of.is_empty() {
        s.push("1 = 0");
    }
    for (i, token) in any_of.iter().enumerate() {
        if i > 0 {
            s.push(" OR ");
        }
        s.push("(1 = 1");
        if let Some(system) = &token.system {
            s.push(" AND t.code_system = ").text(system);
        }
        if let Some(code) = &token.code {
            s.push(" AND t.code = ").text(code);
            if d.left_code_index {
                s.push(" AND left(t.code, 256) = left(").text(code).push(", 256)");
            }
        }
        s.push(")");
    }
    s.push("))");
}

/// `ORDER BY` the sort keys, then `_id` ascending; resources without a date come last
/// in both directions of a date sort.
fn order_by(s: &mut Statement<'_>, query: &SearchQuery) {
    s.push(" ORDER BY ");
    for key in &query.sort {
        let direction = if key.descending { " DESC, " } else { " ASC, " };
        match key.field {
            SortField::Id => s.push("r.id"),
            SortField::LastUpdated => s.push("r.last_updated"),
            SortField::Date => s.push("r.date_start IS NULL, r.date_start"),
        };
        s.push(direction);
    }
    s.push("r.id ASC");
}

/// A stored version from a row whose columns from `first` are version, last_updated
/// and json.
fn stored<R>(resource_type: ResourceType, id: ResourceId, row: &R, first: usize) -> Result<Stored>
where
    R: Row,
    for<'a> i64: Decode<'a, R::Database> + Type<R::Database>,
    for<'a> String: Decode<'a, R::Database> + Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    let version: i64 = row.try_get(first).map_err(|e| database_error(&e))?;
    let last_updated: i64 = row.try_get(first + 1).map_err(|e| database_error(&e))?;
    let text: String = row.try_get(first + 2).map_err(|e| database_error(&e))?;
    let json = serde_json::from_str(&text).map_err(|_| corrupt("JSON that does not parse"))?;
    let version = u64::try_from(version).map_err(|_| corrupt("a negative version"))?;
    Ok(Stored { resource_type, id, version, last_updated, json })
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Database(format!("the record database holds {what}"))
}

/// Throwaway databases for the tests of these backends (the `test-utils` feature).
#[cfg(feature = "test-utils")]
pub mod testing {
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
            match PostgresStore::connect_options(options.database(&database), MAX_CONNECTIONS).await
            {
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
                let Ok(runtime) =
                    tokio::runtime::Builder::new_current_thread().enable_all().build()
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
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
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
}
