//! The fixed SQL of the PostgreSQL and MySQL/MariaDB backends: the schema, the writes
//! and the reads by id. Searches are built by [`super::builder`].

use super::builder::{Dialect, Target, Tokens};
use std::sync::LazyLock;

/// The SQL a backend runs: everything that differs between the servers.
#[derive(Debug)]
pub(super) struct Statements {
    /// The server's name, for messages.
    pub(super) name: &'static str,
    /// How the server spells placeholders, quotes and casts.
    pub(super) dialect: Dialect,
    /// Creates the schema when missing; idempotent.
    pub(super) schema: &'static [&'static str],
    /// Inserts version 1 of a new resource: type, id, last_updated, patient,
    /// date_start, json. Fails with a unique violation when the id exists.
    pub(super) insert_new: &'static str,
    /// Where a search looks: the tables above in this server's spelling.
    pub(super) target: fn() -> &'static Target,
    /// As `insert_new`, but when the resource exists, locks its row and claims the next
    /// version instead. Returns that version unless `claimed_version` is needed.
    pub(super) claim: &'static str,
    /// Reads the version just claimed (type, id), when `claim` cannot return it.
    pub(super) claimed_version: Option<&'static str>,
    /// Sets the current row of a claimed version: last_updated, patient, date_start,
    /// json, type, id.
    pub(super) update_current: &'static str,
    /// Keeps a version: type, id, version, last_updated, json.
    pub(super) insert_version: &'static str,
    /// Forgets a resource's tokens: type, id.
    pub(super) delete_tokens: &'static str,
    /// The current version: type, id.
    pub(super) read: &'static str,
    /// A given version: type, id, version.
    pub(super) read_version: &'static str,
    /// The versions in a range, newest first: type, id, lowest, highest.
    pub(super) read_versions: &'static str,
    /// Runs on the connection before a write transaction begins.
    pub(super) before_write: Option<&'static str>,
    /// Begins a search's read-only transaction, one snapshot for total and page.
    pub(super) begin_search: &'static str,
}

pub(super) const POSTGRES: Statements = Statements {
    name: "PostgreSQL",
    dialect: Dialect::Postgres,
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
    target: postgres_target,
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
    read_versions: "SELECT version, last_updated, json FROM resource_versions \
        WHERE resource_type = $1 AND id = $2 AND version BETWEEN $3 AND $4 \
        ORDER BY version DESC",
    before_write: None,
    begin_search: "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY",
};

pub(super) const MYSQL: Statements = Statements {
    name: "MySQL",
    dialect: Dialect::Mysql,
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
    target: mysql_target,
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
    read_versions: "SELECT version, last_updated, json FROM resource_versions \
        WHERE resource_type = ? AND id = ? AND version BETWEEN ? AND ? \
        ORDER BY version DESC",
    // Writes lock only the rows they touch: no gap locks, so fewer deadlocks.
    before_write: Some("SET TRANSACTION ISOLATION LEVEL READ COMMITTED"),
    begin_search: "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
};

fn postgres_target() -> &'static Target {
    static TARGET: LazyLock<Target> = LazyLock::new(|| native_target(Some(256)));
    &TARGET
}

fn mysql_target() -> &'static Target {
    static TARGET: LazyLock<Target> = LazyLock::new(|| native_target(None));
    &TARGET
}

/// The native tables as a search target (`resources r`, codings in
/// `resource_tokens t`); codes are indexed by their first `code_prefix_index`
/// characters when given.
fn native_target(code_prefix_index: Option<u32>) -> Target {
    Target {
        from: "resources r".into(),
        type_column: Some("r.resource_type"),
        id: "r.id".into(),
        patient: Some("r.patient".into()),
        date: Some("r.date_start".into()),
        last_updated: Some("r.last_updated".into()),
        tokens: Tokens::Table {
            from: "resource_tokens t",
            join: "t.resource_type = r.resource_type AND t.id = r.id",
            param: "t.param",
            system: "t.code_system",
            code: "t.code",
            code_prefix_index,
        },
    }
}
