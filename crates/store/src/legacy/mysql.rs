//! The legacy mapping over a provider's MySQL or MariaDB database, in read-only
//! sessions.

use super::{LegacyConfig, LegacyError, by_id, mapping::Mapping, row::RawRow};
use crate::{
    Page, RecordReader, Result, StoreError, Stored,
    fhir::{ResourceId, ResourceType},
    search::SearchQuery,
    sql::builder::{Dialect, sqlx_query},
};
use std::{collections::BTreeMap, fmt, sync::Arc, time::Duration};

/// How long `connect` waits for the server.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a read waits for a pooled connection.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// A provider's own MySQL or MariaDB database (the original MedRec demo database's
/// kind), served read-only as FHIR through a [`LegacyConfig`].
///
/// Its connections are read-only sessions (`SET SESSION TRANSACTION READ ONLY`), and
/// the store never issues a write. Cloning is cheap and shares the pool.
#[derive(Clone)]
pub struct LegacyMysqlStore {
    config: Arc<LegacyConfig>,
    pool: sqlx::MySqlPool,
}

impl fmt::Debug for LegacyMysqlStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LegacyMysqlStore")
            .field("types", &self.config.mappings.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn mysql_error(e: &sqlx::Error) -> StoreError {
    StoreError::Database(format!("legacy MySQL database: {e}"))
}

impl LegacyMysqlStore {
    /// Connects to the database at `url` (`mysql://user:password@host:port/database`)
    /// with a pool of up to `max_connections`, and checks that every table and column
    /// `config` names exists in that database.
    ///
    /// # Errors
    ///
    /// [`LegacyError::Database`] when the URL is invalid (the message names its scheme
    /// only, never the password) or the server cannot be reached;
    /// [`LegacyError::UnknownTable`] or [`LegacyError::UnknownColumn`] when the mapping
    /// does not fit the schema.
    pub async fn connect(
        url: &str,
        config: LegacyConfig,
        max_connections: u32,
    ) -> Result<Self, LegacyError> {
        use sqlx::{ConnectOptions, Connection as _, Executor as _};
        let options: sqlx::mysql::MySqlConnectOptions = url.parse().map_err(|e| {
            let scheme = url.split_once("://").map_or("", |(s, _)| s);
            LegacyError::Database(format!("invalid MySQL URL (scheme '{scheme}'): {e}"))
        })?;
        let failed = |e: sqlx::Error| LegacyError::Database(format!("MySQL: {e}"));
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
            .await
            .map_err(|_| {
                LegacyError::Database(format!(
                    "MySQL: no answer within {}s",
                    CONNECT_TIMEOUT.as_secs()
                ))
            })?
            .map_err(failed)?;
        let checked = async {
            for mapping in config.mappings.values() {
                let mut schema = BTreeMap::new();
                for table in mapping.tables() {
                    let columns: Vec<String> = sqlx::query_scalar(
                        "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS \
                         WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
                    )
                    .bind(table.as_str())
                    .fetch_all(&mut conn)
                    .await
                    .map_err(failed)?;
                    schema.insert(table.clone(), columns);
                }
                mapping.check_schema(&schema)?;
            }
            Ok::<_, LegacyError>(())
        }
        .await;
        let _ = conn.close().await;
        checked?;
        let pool = sqlx::mysql::MySqlPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("SET SESSION TRANSACTION READ ONLY").await.map(|_| ())
                })
            })
            .connect_lazy_with(options);
        Ok(Self { config: Arc::new(config), pool })
    }
}

async fn search(pool: &sqlx::MySqlPool, mapping: &Mapping, query: &SearchQuery) -> Result<Page> {
    use sqlx::Row as _;
    let d = Dialect::Mysql;
    let target = mapping.target(d);
    let count = target.count(d, query);
    // One transaction: the total and the page come from the same snapshot.
    let mut tx = pool.begin().await.map_err(|e| mysql_error(&e))?;
    let total: i64 = sqlx_query(&count)
        .fetch_one(&mut *tx)
        .await
        .and_then(|row| row.try_get(0))
        .map_err(|e| mysql_error(&e))?;
    let mut entries = Vec::new();
    if query.count > 0 {
        let page = target.page(d, query, &mapping.select_sql(d));
        let rows = sqlx_query(&page).fetch_all(&mut *tx).await.map_err(|e| mysql_error(&e))?;
        for row in rows {
            let read = || -> Result<RawRow, sqlx::Error> {
                Ok(RawRow {
                    id: row.try_get(0)?,
                    date_ms: row.try_get(1)?,
                    last_updated_ms: row.try_get(2)?,
                    cells: (0..mapping.columns.len())
                        .map(|i| row.try_get(3 + i))
                        .collect::<Result<_, _>>()?,
                })
            };
            entries.push(mapping.build(read().map_err(|e| mysql_error(&e))?)?);
        }
    }
    // A read-only transaction has nothing to keep.
    let _ = tx.rollback().await;
    Ok(Page { total: u64::try_from(total).unwrap_or(0), entries })
}

#[async_trait::async_trait]
impl RecordReader for LegacyMysqlStore {
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
        match self.config.mappings.get(&query.resource_type) {
            Some(mapping) => search(&self.pool, mapping, query).await,
            None => Ok(Page { total: 0, entries: Vec::new() }),
        }
    }
}
