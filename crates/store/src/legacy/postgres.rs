//! The legacy mapping over a provider's PostgreSQL database, in read-only sessions.

use super::{LegacyConfig, LegacyError, by_id, mapping::Mapping, row::RawRow, schema::Spelled};
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

/// A provider's own PostgreSQL database, served read-only as FHIR through a
/// [`LegacyConfig`].
///
/// The mapping's names are matched to the schema as PostgreSQL spells them (a table
/// created without quotes as `PatientID` has the column `patientid`; an exact
/// spelling wins over one differing in case), in the connection's current schema.
/// Its connections are read-only sessions (`default_transaction_read_only`), and the
/// store never issues a write. Cloning is cheap and shares the pool.
#[derive(Clone)]
pub struct LegacyPostgresStore {
    config: Arc<LegacyConfig>,
    pool: sqlx::PgPool,
}

impl fmt::Debug for LegacyPostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LegacyPostgresStore")
            .field("types", &self.config.mappings.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn pg_error(e: &sqlx::Error) -> StoreError {
    StoreError::Database(format!("legacy PostgreSQL database: {e}"))
}

impl LegacyPostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`)
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
        mut config: LegacyConfig,
        max_connections: u32,
    ) -> Result<Self, LegacyError> {
        use sqlx::{ConnectOptions, Connection as _};
        let options: sqlx::postgres::PgConnectOptions = url.parse().map_err(|e| {
            let scheme = url.split_once("://").map_or("", |(s, _)| s);
            LegacyError::Database(format!("invalid PostgreSQL URL (scheme '{scheme}'): {e}"))
        })?;
        let options = options.options([("default_transaction_read_only", "on")]);
        let failed = |e: sqlx::Error| LegacyError::Database(format!("PostgreSQL: {e}"));
        let mut conn = tokio::time::timeout(CONNECT_TIMEOUT, options.connect())
            .await
            .map_err(|_| {
                LegacyError::Database(format!(
                    "PostgreSQL: no answer within {}s",
                    CONNECT_TIMEOUT.as_secs()
                ))
            })?
            .map_err(failed)?;
        let checked = async {
            for mapping in config.mappings.values_mut() {
                let mut schema = BTreeMap::new();
                let mut names: BTreeMap<String, Spelled> = BTreeMap::new();
                for table in mapping.tables() {
                    let rows: Vec<(String, String)> = sqlx::query_as(
                        "SELECT CAST(table_name AS TEXT), CAST(column_name AS TEXT) \
                         FROM information_schema.columns \
                         WHERE table_schema = current_schema() AND lower(table_name) = lower($1) \
                         ORDER BY ordinal_position",
                    )
                    .bind(table.as_str())
                    .fetch_all(&mut conn)
                    .await
                    .map_err(failed)?;
                    // The table spelled exactly so, else the only one differing in case.
                    let mut spellings: Vec<&String> = rows.iter().map(|(t, _)| t).collect();
                    spellings.dedup();
                    let spelled = match spellings.iter().find(|t| **t == table) {
                        Some(t) => Some((*t).clone()),
                        None if spellings.len() == 1 => Some(spellings[0].clone()),
                        None => None,
                    };
                    let columns: Vec<String> = match &spelled {
                        Some(t) => {
                            rows.iter().filter(|(r, _)| r == t).map(|(_, c)| c.clone()).collect()
                        }
                        None => Vec::new(),
                    };
                    if let Some(t) = spelled {
                        names.insert(table.clone(), (t, columns.clone()));
                    }
                    schema.insert(table.clone(), columns);
                }
                mapping.check_schema(&schema)?;
                mapping.respell(&names);
            }
            Ok::<_, LegacyError>(())
        }
        .await;
        let _ = conn.close().await;
        checked?;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(max_connections.max(1))
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_lazy_with(options);
        Ok(Self { config: Arc::new(config), pool })
    }
}

async fn search(pool: &sqlx::PgPool, mapping: &Mapping, query: &SearchQuery) -> Result<Page> {
    use sqlx::Row as _;
    let d = Dialect::Postgres;
    let target = mapping.target(d);
    let count = target.count(d, query);
    // One repeatable-read transaction: the total and the page come from the same
    // snapshot.
    let mut tx = pool.begin().await.map_err(|e| pg_error(&e))?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(|e| pg_error(&e))?;
    let total: i64 = sqlx_query(&count)
        .fetch_one(&mut *tx)
        .await
        .and_then(|row| row.try_get(0))
        .map_err(|e| pg_error(&e))?;
    let mut entries = Vec::new();
    if query.count > 0 {
        let page = target.page(d, query, &mapping.select_sql(d));
        let rows = sqlx_query(&page).fetch_all(&mut *tx).await.map_err(|e| pg_error(&e))?;
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
            entries.push(mapping.build(read().map_err(|e| pg_error(&e))?)?);
        }
    }
    // A read-only transaction has nothing to keep.
    let _ = tx.rollback().await;
    Ok(Page { total: u64::try_from(total).unwrap_or(0), entries })
}

#[async_trait::async_trait]
impl RecordReader for LegacyPostgresStore {
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
