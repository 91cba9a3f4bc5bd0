//! The schema of the access log on each server, and what else differs between them.

use sqlx::{
    AssertSqlSafe, Connection, Database, MySql, Postgres, mysql::MySqlConnectOptions,
    postgres::PgConnectOptions,
};
use std::fmt::Write as _;

/// The hash of the empty log, as stored.
const ZERO: &str = "0x0000000000000000000000000000000000000000000000000000000000000000";

/// The `audit_log` columns (types common to both servers).
const LOG_COLUMNS: &str = "
    seq BIGINT NOT NULL PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    requester VARCHAR(42) NOT NULL,
    action VARCHAR(32) NOT NULL,
    relationship VARCHAR(66) NULL,
    pointer BIGINT NULL,
    resource_type VARCHAR(32) NULL,
    resource_id VARCHAR(64) NULL,
    decision VARCHAR(80) NOT NULL,
    response_hash VARCHAR(66) NULL,
    epsilon_bits BIGINT NULL,
    prev_hash VARCHAR(66) NOT NULL,
    digest VARCHAR(66) NOT NULL,
    hash VARCHAR(66) NOT NULL";

/// The `audit_tree` columns.
const TREE_COLUMNS: &str = "
    level BIGINT NOT NULL,
    idx BIGINT NOT NULL,
    hash VARCHAR(66) NOT NULL,
    PRIMARY KEY (level, idx)";

/// The `audit_roots` columns.
const ROOTS_COLUMNS: &str = "
    log_size BIGINT NOT NULL PRIMARY KEY,
    root VARCHAR(66) NOT NULL,
    block_number BIGINT NOT NULL,
    tx_hash VARCHAR(66) NOT NULL";

/// What differs between the servers.
pub(super) trait Backend: Database {
    /// The server's name, for messages.
    const SERVER: &'static str;
    /// `$1, $2, ...` (PostgreSQL) rather than `?` (MySQL).
    const NUMBERED: bool;

    /// The statements that create the schema when missing; idempotent.
    fn schema() -> Vec<String>;

    /// Where `options` point, for messages (never the password).
    fn describe(options: &<Self::Connection as Connection>::Options) -> String;
}

impl Backend for Postgres {
    const SERVER: &'static str = "PostgreSQL";
    const NUMBERED: bool = true;

    fn schema() -> Vec<String> {
        vec![
            "BEGIN".into(),
            // Two logs starting at once on a new database must not race on the DDL.
            "SELECT pg_advisory_xact_lock(7306925846211536)".into(),
            format!("CREATE TABLE IF NOT EXISTS audit_log ({LOG_COLUMNS})"),
            "CREATE INDEX IF NOT EXISTS audit_log_relationship ON audit_log (relationship, seq)"
                .into(),
            "CREATE TABLE IF NOT EXISTS audit_head (id INTEGER NOT NULL PRIMARY KEY, \
             log_size BIGINT NOT NULL, head VARCHAR(66) NOT NULL)"
                .into(),
            format!(
                "INSERT INTO audit_head (id, log_size, head) VALUES (1, 0, '{ZERO}') \
                 ON CONFLICT (id) DO NOTHING"
            ),
            format!("CREATE TABLE IF NOT EXISTS audit_tree ({TREE_COLUMNS})"),
            format!("CREATE TABLE IF NOT EXISTS audit_roots ({ROOTS_COLUMNS})"),
            "COMMIT".into(),
        ]
    }

    fn describe(options: &PgConnectOptions) -> String {
        let (user, host, port) = (options.get_username(), options.get_host(), options.get_port());
        let database = options.get_database().unwrap_or(user);
        format!("postgres://{user}@{host}:{port}/{database}")
    }
}

impl Backend for MySql {
    const SERVER: &'static str = "MySQL";
    const NUMBERED: bool = false;

    fn schema() -> Vec<String> {
        let table = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin";
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS audit_log ({LOG_COLUMNS}, \
                 INDEX audit_log_relationship (relationship, seq)) {table}"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS audit_head (id INTEGER NOT NULL PRIMARY KEY, \
                 log_size BIGINT NOT NULL, head VARCHAR(66) NOT NULL) {table}"
            ),
            format!("INSERT IGNORE INTO audit_head (id, log_size, head) VALUES (1, 0, '{ZERO}')"),
            format!("CREATE TABLE IF NOT EXISTS audit_tree ({TREE_COLUMNS}) {table}"),
            format!("CREATE TABLE IF NOT EXISTS audit_roots ({ROOTS_COLUMNS}) {table}"),
        ]
    }

    fn describe(options: &MySqlConnectOptions) -> String {
        let (user, host, port) = (options.get_username(), options.get_host(), options.get_port());
        let database = options.get_database().unwrap_or("");
        format!("mysql://{user}@{host}:{port}/{database}")
    }
}

/// `sql` written with `?` placeholders, in the server's form.
pub(super) fn sql<DB: Backend>(sql: &str) -> AssertSqlSafe<String> {
    if !DB::NUMBERED {
        return AssertSqlSafe(sql.to_owned());
    }
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            let _ = write!(out, "${n}");
        } else {
            out.push(c);
        }
    }
    AssertSqlSafe(out)
}
