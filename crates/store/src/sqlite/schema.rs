//! The SQLite schema and the setup of a freshly opened writer connection: pragmas,
//! WAL, and the tables created or checked in one transaction.

use super::{BUSY_TIMEOUT, OrDatabase};
use crate::{Result, StoreError, fhir::Resource};
use rusqlite::Connection;

/// The schema version this code writes (`PRAGMA user_version`): 2 indexes the
/// `identifier`, `gender`, `status`, `clinical-status` and `name` search parameters
/// in `resource_tokens` (version 1 held `category` and `code` only).
const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS resources (
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    patient TEXT,
    date_start INTEGER,
    json TEXT NOT NULL,
    PRIMARY KEY (type, id)
) STRICT;
-- A compartment's page (type, patient, ORDER BY id) reads this index in order; without
-- id in it the planner walked the primary key over every resource of the type.
DROP INDEX IF EXISTS resources_patient;
CREATE INDEX IF NOT EXISTS resources_patient_id ON resources (type, patient, id);
CREATE INDEX IF NOT EXISTS resources_date_start ON resources (type, date_start);
CREATE INDEX IF NOT EXISTS resources_last_updated ON resources (type, last_updated);

CREATE TABLE IF NOT EXISTS resource_versions (
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    version INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    json TEXT NOT NULL,
    PRIMARY KEY (type, id, version),
    FOREIGN KEY (type, id) REFERENCES resources (type, id)
) STRICT;

CREATE TABLE IF NOT EXISTS resource_tokens (
    type TEXT NOT NULL,
    id TEXT NOT NULL,
    param TEXT NOT NULL,
    system TEXT NOT NULL,
    code TEXT NOT NULL,
    PRIMARY KEY (type, id, param, system, code),
    FOREIGN KEY (type, id) REFERENCES resources (type, id)
) STRICT, WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS resource_tokens_code ON resource_tokens (type, param, code);
";

/// Rebuilds every current resource's codings from its JSON (a store written by an
/// older version indexed fewer parameters).
fn reindex_tokens(conn: &Connection) -> rusqlite::Result<Result<()>> {
    let rows: Vec<(String, String, String)> = conn
        .prepare("SELECT type, id, json FROM resources")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?
        .collect::<rusqlite::Result<_>>()?;
    conn.execute("DELETE FROM resource_tokens", [])?;
    let mut insert = conn.prepare(
        "INSERT OR IGNORE INTO resource_tokens (type, id, param, system, code) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (ty, id, json) in rows {
        let parsed = serde_json::from_str(&json).ok().and_then(|v| Resource::parse(v).ok());
        let Some(resource) = parsed else {
            return Ok(Err(StoreError::Database(format!(
                "SQLite: stored row {ty}/{id} is not a resource this MedRec reads"
            ))));
        };
        for token in &resource.index.tokens {
            insert.execute(rusqlite::params![ty, id, token.param, token.system, token.code])?;
        }
    }
    Ok(Ok(()))
}

/// Pragmas and schema of a freshly opened writer connection.
pub(super) fn setup(conn: &Connection, wal: bool) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT).db()?;
    if wal {
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)).db()?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Database(format!(
                "cannot switch to WAL mode (journal mode is {mode})"
            )));
        }
    }
    // WAL with FULL syncs every commit: a stored record survives a power cut.
    conn.pragma_update(None, "synchronous", "FULL").db()?;
    conn.pragma_update(None, "foreign_keys", true).db()?;
    conn.execute_batch("BEGIN IMMEDIATE").db()?;
    let created = (|| {
        let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if version > SCHEMA_VERSION {
            return Ok(Err(StoreError::Database(format!(
                "the schema is version {version}, newer than this MedRec knows ({SCHEMA_VERSION})"
            ))));
        }
        conn.execute_batch(SCHEMA)?;
        if version < 2
            && let Err(e) = reindex_tokens(conn)?
        {
            return Ok(Err(e));
        }
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        Ok(Ok(()))
    })();
    match created {
        Ok(Ok(())) => conn.execute_batch("COMMIT").db(),
        Ok(Err(e)) => {
            conn.execute_batch("ROLLBACK").db()?;
            Err(e)
        }
        Err(e) => {
            // Keep the first error; the rollback only tidies up.
            let _ = conn.execute_batch("ROLLBACK");
            Err(e).db()
        }
    }
}
