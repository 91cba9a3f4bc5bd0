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
//!
//! The fixed statements of each server are in `statements`; searches are built by the
//! SQL builder shared with the SQLite and legacy backends (`builder`).

pub(crate) mod builder;
mod statements;
mod store;
#[cfg(feature = "test-utils")]
pub mod testing;

use crate::{
    Page, RecordReader, RecordWriter, Result, StoreError, Stored,
    fhir::{Resource, ResourceId, ResourceType},
    search::SearchQuery,
};
use sqlx::{
    Connection, Database, MySql, Postgres,
    mysql::{MySqlConnectOptions, MySqlPoolOptions},
    postgres::{PgConnectOptions, PgPoolOptions},
};
use statements::Statements;
use std::time::Duration;
use store::SqlStore;

/// Connections per pool when the caller does not say.
pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;

/// How long `connect` waits for the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an operation waits for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// Tries of a write transaction the server aborted as a deadlock.
const WRITE_ATTEMPTS: u32 = 8;

/// What the shared code needs to know of a sqlx driver.
trait Backend: Database {
    /// Its SQL.
    const STATEMENTS: Statements;

    /// Where `options` point, for messages (never the password).
    fn describe(options: &<Self::Connection as Connection>::Options) -> String;
}

impl Backend for Postgres {
    const STATEMENTS: Statements = statements::POSTGRES;

    fn describe(options: &PgConnectOptions) -> String {
        let (user, host, port) = (options.get_username(), options.get_host(), options.get_port());
        let database = options.get_database().unwrap_or(user);
        format!("postgres://{user}@{host}:{port}/{database}")
    }
}

impl Backend for MySql {
    const STATEMENTS: Statements = statements::MYSQL;

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
        impl RecordReader for $store {
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

            async fn read_versions(
                &self,
                resource_type: ResourceType,
                id: &ResourceId,
                versions: std::ops::RangeInclusive<u64>,
            ) -> Result<Vec<Stored>> {
                let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
                let (from, to) = (clamp(*versions.start()), clamp(*versions.end()));
                self.inner.read_versions(resource_type, id, from, to).await
            }

            async fn search(&self, query: &SearchQuery) -> Result<Page> {
                self.inner.search(query).await
            }
        }

        #[async_trait::async_trait]
        impl RecordWriter for $store {
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
        }

        crate::inherent_record_methods!($store);
    };
}

delegate_record_store!(PostgresStore);
delegate_record_store!(MysqlStore);

fn parse_url<DB: Backend>(url: &str) -> Result<<DB::Connection as Connection>::Options> {
    url.parse().map_err(|e| {
        // The URL may hold a password: name only its scheme.
        let scheme = url.split_once("://").map_or("", |(s, _)| s);
        StoreError::Database(format!(
            "invalid {} URL (scheme '{scheme}'): {e}",
            DB::STATEMENTS.name
        ))
    })
}
