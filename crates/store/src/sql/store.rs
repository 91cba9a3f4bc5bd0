//! The store shared by the PostgreSQL and MySQL/MariaDB backends, generic over the
//! sqlx driver: connecting, writes with their retries, reads and searches.

use super::{
    ACQUIRE_TIMEOUT, Backend, CONNECT_TIMEOUT, WRITE_ATTEMPTS,
    builder::{Sql, sqlx_query},
};
use crate::{
    Page, Result, StoreError, Stored,
    fhir::{Resource, ResourceId, ResourceType},
    now_ms,
    search::SearchQuery,
    stamp, with_id_for_create,
};
use sqlx::{
    ConnectOptions, Connection, Database, Decode, Encode, Executor, Pool, Row, Type,
    pool::PoolOptions,
};
use std::time::Duration;

/// Why a write transaction failed.
pub(super) enum Failure {
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

pub(super) fn database_error(e: &sqlx::Error) -> StoreError {
    StoreError::Database(e.to_string())
}

/// The backend-independent store over a sqlx pool.
#[derive(Debug)]
pub(super) struct SqlStore<DB: Database> {
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
    pub(super) async fn open(
        pool: PoolOptions<DB>,
        options: <DB::Connection as Connection>::Options,
        max_connections: u32,
    ) -> Result<Self> {
        let name = DB::STATEMENTS.name;
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
        for &statement in DB::STATEMENTS.schema {
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

    pub(super) async fn create(&self, resource: &Resource) -> Result<Stored> {
        let resource = with_id_for_create(resource);
        let id = resource.id.clone().expect("named above");
        let mut stored = self.write(&[(&*resource, &id)], true).await?;
        Ok(stored.pop().expect("one resource in, one stored"))
    }

    pub(super) async fn update_all(&self, resources: &[Resource]) -> Result<Vec<Stored>> {
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
        if let Some(statement) = DB::STATEMENTS.before_write {
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
        let d = &DB::STATEMENTS;
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
            let mut insert = Sql::new(
                d.dialect,
                "INSERT INTO resource_tokens (resource_type, id, param, code_system, code) VALUES ",
            );
            for (i, token) in resource.index.tokens.iter().enumerate() {
                insert.push(if i == 0 { "(" } else { ", (" });
                insert.text(ty).push(", ").text(id.as_str()).push(", ").text(token.param);
                insert.push(", ").text(&token.system).push(", ").text(&token.code).push(")");
            }
            sqlx_query(&insert).execute(&mut *conn).await?;
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
    pub(super) async fn read(
        &self,
        resource_type: ResourceType,
        id: &ResourceId,
        version: Option<i64>,
    ) -> Result<Option<Stored>> {
        let d = &DB::STATEMENTS;
        let query = match version {
            None => sqlx::query(d.read).bind(resource_type.as_str()).bind(id.as_str()),
            Some(v) => {
                sqlx::query(d.read_version).bind(resource_type.as_str()).bind(id.as_str()).bind(v)
            }
        };
        let row = query.fetch_optional(&self.pool).await.map_err(|e| database_error(&e))?;
        row.map(|row| stored(resource_type, id.clone(), &row, 0)).transpose()
    }

    /// The versions numbered `from..=to`, newest first, in one statement.
    pub(super) async fn read_versions(
        &self,
        resource_type: ResourceType,
        id: &ResourceId,
        from: i64,
        to: i64,
    ) -> Result<Vec<Stored>> {
        let rows = sqlx::query(DB::STATEMENTS.read_versions)
            .bind(resource_type.as_str())
            .bind(id.as_str())
            .bind(from)
            .bind(to)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| database_error(&e))?;
        rows.iter().map(|row| stored(resource_type, id.clone(), row, 0)).collect()
    }

    pub(super) async fn search(&self, query: &SearchQuery) -> Result<Page> {
        let d = &DB::STATEMENTS;
        let mut tx = self.pool.begin_with(d.begin_search).await.map_err(|e| database_error(&e))?;
        let target = (d.target)();
        let count = target.count(d.dialect, query);
        let total: i64 = sqlx_query(&count)
            .fetch_one(&mut *tx)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| database_error(&e))?;
        let total = u64::try_from(total).map_err(|_| corrupt("a negative count"))?;
        let mut entries = Vec::new();
        if query.count > 0 && total > u64::from(query.offset) {
            let page = target.page(d.dialect, query, "r.id, r.version, r.last_updated, r.json");
            let rows =
                sqlx_query(&page).fetch_all(&mut *tx).await.map_err(|e| database_error(&e))?;
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

pub(super) fn corrupt(what: &str) -> StoreError {
    StoreError::Database(format!("the record database holds {what}"))
}
