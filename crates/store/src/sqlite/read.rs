//! The reading side of [`SqliteStore`]: reads by id and version, raw reads, and
//! searches, on the read-only connections (each search in one read transaction).

use super::{OrDatabase, SqliteStore};
use crate::{
    RawStored, RecordReader, Result, StoreError, Stored,
    fhir::{ResourceId, ResourceType},
    search::SearchQuery,
    sql::builder::{Dialect, Target, Tokens},
};
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use std::sync::LazyLock;

/// The columns [`Row`] reads, in order (`r` is the table alias).
const COLUMNS: &str = "r.type, r.id, r.version, r.last_updated, r.json";

/// The current row of a resource with its JSON text as stored.
fn read_raw(
    conn: &mut Connection,
    resource_type: ResourceType,
    id: &ResourceId,
) -> Result<Option<RawStored>> {
    let row = conn
        .prepare_cached(
            "SELECT r.version, r.last_updated, r.patient, r.json FROM resources r \
             WHERE r.type = ?1 AND r.id = ?2",
        )
        .and_then(|mut st| {
            st.query_row(params![resource_type.as_str(), id.as_str()], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, Option<String>>(2)?,
                    row.get::<_, String>(3)?,
                ))
            })
            .optional()
        })
        .db()?;
    let Some((version, last_updated, patient, json)) = row else { return Ok(None) };
    let version = u64::try_from(version).map_err(|_| {
        StoreError::Database(format!(
            "SQLite: stored row {resource_type}/{id} has a negative version"
        ))
    })?;
    Ok(Some(RawStored { resource_type, id: id.clone(), version, last_updated, patient, json }))
}

/// A stored row as SQLite gives it ([`COLUMNS`]).
struct Row {
    resource_type: String,
    id: String,
    version: i64,
    last_updated: i64,
    json: String,
}

impl Row {
    fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            resource_type: row.get(0)?,
            id: row.get(1)?,
            version: row.get(2)?,
            last_updated: row.get(3)?,
            json: row.get(4)?,
        })
    }

    fn into_stored(self) -> Result<Stored> {
        let bad = |what: &str| {
            StoreError::Database(format!(
                "SQLite: stored row {}/{} has {what}",
                self.resource_type, self.id
            ))
        };
        Ok(Stored {
            resource_type: self.resource_type.parse().map_err(|_| bad("an unknown type"))?,
            id: self.id.parse().map_err(|_| bad("an invalid id"))?,
            version: u64::try_from(self.version).map_err(|_| bad("a negative version"))?,
            last_updated: self.last_updated,
            json: serde_json::from_str(&self.json).map_err(|_| bad("invalid JSON"))?,
        })
    }
}

/// The native tables as a search target (`resources r`, codings in
/// `resource_tokens t`).
pub(crate) fn target() -> &'static Target {
    static TARGET: LazyLock<Target> = LazyLock::new(|| Target {
        from: "resources r".into(),
        type_column: Some("r.type"),
        id: "r.id".into(),
        patient: Some("r.patient".into()),
        date: Some("r.date_start".into()),
        last_updated: Some("r.last_updated".into()),
        tokens: Tokens::Table {
            from: "resource_tokens t",
            join: "t.type = r.type AND t.id = r.id",
            param: "t.param",
            system: "t.system",
            code: "t.code",
            code_prefix_index: None,
        },
    });
    &TARGET
}

fn search(conn: &mut Connection, query: &SearchQuery) -> Result<crate::Page> {
    let target = target();
    let count = target.count(Dialect::Sqlite, query);
    // One read transaction: the total and the page come from the same snapshot.
    let tx = conn.transaction().db()?;
    let total: i64 =
        tx.query_row(count.sql(), params_from_iter(count.args()), |row| row.get(0)).db()?;
    let mut entries = Vec::new();
    if query.count > 0 {
        let page = target.page(Dialect::Sqlite, query, COLUMNS);
        let mut st = tx.prepare(page.sql()).db()?;
        let rows = st.query_map(params_from_iter(page.args()), Row::read).db()?;
        for row in rows {
            entries.push(row.db()?.into_stored()?);
        }
    }
    tx.commit().db()?;
    Ok(crate::Page { total: u64::try_from(total).unwrap_or(0), entries })
}

#[async_trait::async_trait]
impl RecordReader for SqliteStore {
    async fn read(&self, resource_type: ResourceType, id: &ResourceId) -> Result<Option<Stored>> {
        let id = id.clone();
        self.with_reader(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM resources r WHERE r.type = ?1 AND r.id = ?2"
            ))
            .and_then(|mut st| {
                st.query_row(params![resource_type.as_str(), id.as_str()], Row::read).optional()
            })
            .db()?
            .map(Row::into_stored)
            .transpose()
        })
        .await
    }

    async fn read_raw(
        &self,
        resource_type: ResourceType,
        id: &ResourceId,
    ) -> Result<Option<RawStored>> {
        // A primary-key read takes microseconds: when a reader connection is free at
        // once, run it here rather than hand it to the blocking pool and back.
        if let Some(readers) = &self.readers
            && let Ok(permit) = readers.permits.try_acquire()
        {
            let mut conn = readers.take()?;
            let result = read_raw(&mut conn, resource_type, id);
            readers.give_back(conn);
            drop(permit);
            return result;
        }
        let id = id.clone();
        self.with_reader(move |conn| read_raw(conn, resource_type, &id)).await
    }

    async fn read_version(
        &self,
        resource_type: ResourceType,
        id: &ResourceId,
        version: u64,
    ) -> Result<Option<Stored>> {
        let Ok(version) = i64::try_from(version) else {
            return Ok(None);
        };
        let id = id.clone();
        self.with_reader(move |conn| {
            conn.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM resource_versions r \
                 WHERE r.type = ?1 AND r.id = ?2 AND r.version = ?3"
            ))
            .and_then(|mut st| {
                st.query_row(params![resource_type.as_str(), id.as_str(), version], Row::read)
                    .optional()
            })
            .db()?
            .map(Row::into_stored)
            .transpose()
        })
        .await
    }

    async fn read_versions(
        &self,
        resource_type: ResourceType,
        id: &ResourceId,
        versions: std::ops::RangeInclusive<u64>,
    ) -> Result<Vec<Stored>> {
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let (from, to) = (clamp(*versions.start()), clamp(*versions.end()));
        let id = id.clone();
        self.with_reader(move |conn| {
            let mut st = conn
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM resource_versions r \
                     WHERE r.type = ?1 AND r.id = ?2 AND r.version BETWEEN ?3 AND ?4 \
                     ORDER BY r.version DESC"
                ))
                .db()?;
            let rows = st
                .query_map(params![resource_type.as_str(), id.as_str(), from, to], Row::read)
                .db()?;
            rows.map(|row| row.db()?.into_stored()).collect()
        })
        .await
    }

    async fn search(&self, query: &SearchQuery) -> Result<crate::Page> {
        let query = query.clone();
        self.with_reader(move |conn| search(conn, &query)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_sql_binds_every_value() {
        let query = SearchQuery::parse(
            ResourceType::Observation,
            [
                ("_id", "a,b"),
                ("patient", "p1"),
                ("code", "x' OR 1=1 --,http://loinc.org|"),
                ("date", "ge2025"),
                ("_lastUpdated", "lt2026"),
                ("_sort", "-date"),
            ],
        )
        .unwrap();
        let count = target().count(Dialect::Sqlite, &query);
        let sql = count.sql();
        assert!(!sql.contains('\''), "{sql}");
        assert!(!sql.contains("loinc"), "{sql}");
        assert_eq!(sql.matches('?').count(), count.args().len());
        assert_eq!(count.args().len(), 1 + 2 + 1 + 3 + 1 + 1);
        let page = target().page(Dialect::Sqlite, &query, COLUMNS);
        assert!(
            page.sql().ends_with(
                " ORDER BY r.date_start IS NULL, r.date_start DESC, r.id ASC LIMIT ? OFFSET ?"
            ),
            "{}",
            page.sql()
        );
        assert_eq!(page.args().len(), count.args().len() + 2);
    }
}
