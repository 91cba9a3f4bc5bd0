//! The writing side of [`SqliteStore`]: every write is one `IMMEDIATE` transaction
//! on the one writer connection, all or none.

use super::{OrDatabase, SqliteStore};
use crate::{
    RecordWriter, Result, StoreError, Stored, fhir::Resource, now_ms, stamp, with_id_for_create,
};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

impl SqliteStore {
    async fn write(&self, resources: Vec<Resource>, mode: Mode) -> Result<Vec<Stored>> {
        if mode == Mode::Update && resources.iter().any(|r| r.id.is_none()) {
            return Err(StoreError::MissingId);
        }
        self.with_writer(move |conn| write(conn, &resources, mode)).await
    }
}

/// What a write does when the id exists or is missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Refuse an existing id; assign one when missing.
    Create,
    /// Add a version; an id is required.
    Update,
}

/// Stores `resources` in one IMMEDIATE transaction: all or none.
fn write(conn: &mut Connection, resources: &[Resource], mode: Mode) -> Result<Vec<Stored>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).db()?;
    // Read the clock once the write lock is held, so later versions never get earlier
    // stamps from this process.
    let now = now_ms();
    let stored = resources
        .iter()
        .map(|resource| write_one(&tx, resource, mode, now))
        .collect::<Result<Vec<_>>>()?;
    tx.commit().db()?;
    Ok(stored)
}

fn write_one(conn: &Connection, resource: &Resource, mode: Mode, now: i64) -> Result<Stored> {
    let resource_type = resource.resource_type;
    let ty = resource_type.as_str();
    if resource.id.is_none() && mode == Mode::Update {
        return Err(StoreError::MissingId);
    }
    let resource = with_id_for_create(resource);
    let id = resource.id.clone().expect("named above");
    let previous: Option<(i64, i64)> = conn
        .prepare_cached("SELECT version, last_updated FROM resources WHERE type = ?1 AND id = ?2")
        .and_then(|mut st| {
            st.query_row(params![ty, id.as_str()], |row| Ok((row.get(0)?, row.get(1)?))).optional()
        })
        .db()?;
    if mode == Mode::Create && previous.is_some() {
        return Err(StoreError::Exists { resource_type, id });
    }
    let version = previous.map_or(1, |(v, _)| v + 1);
    // A version is never stamped earlier than the one before it, even if the clock
    // steps back.
    let last_updated = previous.map_or(now, |(_, at)| now.max(at));
    let version_u64 = u64::try_from(version).map_err(|_| {
        StoreError::Database(format!("SQLite: stored version {version} of {ty}/{id}"))
    })?;
    let json = stamp(&resource, &id, version_u64, last_updated);
    let text = serde_json::to_string(&json)
        .map_err(|e| StoreError::Database(format!("cannot serialize {ty}/{id}: {e}")))?;
    let patient = resource.index.patient.as_deref();
    let date_start = resource.index.date.map(|(start, _)| start);

    let run = || -> rusqlite::Result<()> {
        conn.prepare_cached(
            "INSERT INTO resources (type, id, version, last_updated, patient, date_start, json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (type, id) DO UPDATE SET
                 version = excluded.version,
                 last_updated = excluded.last_updated,
                 patient = excluded.patient,
                 date_start = excluded.date_start,
                 json = excluded.json",
        )?
        .execute(params![
            ty,
            id.as_str(),
            version,
            last_updated,
            patient,
            date_start,
            text
        ])?;
        conn.prepare_cached(
            "INSERT INTO resource_versions (type, id, version, last_updated, json)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![ty, id.as_str(), version, last_updated, text])?;
        conn.prepare_cached("DELETE FROM resource_tokens WHERE type = ?1 AND id = ?2")?
            .execute(params![ty, id.as_str()])?;
        let mut insert = conn.prepare_cached(
            "INSERT OR IGNORE INTO resource_tokens (type, id, param, system, code)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        for token in &resource.index.tokens {
            insert.execute(params![ty, id.as_str(), token.param, token.system, token.code])?;
        }
        Ok(())
    };
    run().db()?;
    Ok(Stored { resource_type, id, version: version_u64, last_updated, json })
}

#[async_trait::async_trait]
impl RecordWriter for SqliteStore {
    async fn create(&self, resource: Resource) -> Result<Stored> {
        let mut stored = self.write(vec![resource], Mode::Create).await?;
        stored.pop().ok_or_else(|| StoreError::Database("SQLite: nothing was stored".into()))
    }

    async fn update(&self, resource: Resource) -> Result<Stored> {
        let mut stored = self.write(vec![resource], Mode::Update).await?;
        stored.pop().ok_or_else(|| StoreError::Database("SQLite: nothing was stored".into()))
    }

    async fn update_all(&self, resources: Vec<Resource>) -> Result<Vec<Stored>> {
        if resources.is_empty() {
            return Ok(Vec::new());
        }
        self.write(resources, Mode::Update).await
    }
}
