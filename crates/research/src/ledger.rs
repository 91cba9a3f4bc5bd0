//! The provider's research ledger, in SQLite: the published texts of bounty queries
//! under their commitments, the answer released for each bounty, and the ε each
//! researcher has spent.
//!
//! [`Ledger::record`] is atomic: in one `IMMEDIATE` transaction it returns the answer
//! already stored for the bounty (spending nothing) or checks the researcher's budget,
//! stores the answer and adds its ε. Several [`Ledger`]s (threads or processes) may
//! share one file; SQLite serializes their writes, so a budget is never overspent.
//! Budgets are compared with a tolerance of 1e-9 so that, e.g., ten bounties of ε 0.1
//! fit a budget of 1.0 despite floating-point rounding.

use crate::{aggregate::Release, query::BountyQuery};
use alloy_primitives::{Address, B256};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::{path::Path, sync::Mutex, time::Duration};

/// Rounding slack when comparing spent ε with a budget.
const BUDGET_TOLERANCE: f64 = 1e-9;

/// The research ledger (see the module docs).
#[derive(Debug)]
pub struct Ledger {
    conn: Mutex<Connection>,
}

/// An answer as stored for a bounty.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRelease {
    bounty_id: String,
    researcher: Address,
    release: Release,
    epsilon: f64,
    spent: f64,
}

impl StoredRelease {
    /// The bounty id (`<relationship id>:<sequence>`).
    pub fn bounty_id(&self) -> &str {
        &self.bounty_id
    }

    /// The researcher it was released to.
    pub fn researcher(&self) -> Address {
        self.researcher
    }

    /// The released aggregate.
    pub fn release(&self) -> &Release {
        &self.release
    }

    /// The ε this release spent.
    pub fn epsilon(&self) -> f64 {
        self.epsilon
    }

    /// The researcher's total ε spent right after this release was recorded.
    pub fn spent(&self) -> f64 {
        self.spent
    }
}

/// Why a ledger operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The database failed.
    #[error("the research ledger failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The researcher's budget cannot pay for this release.
    #[error(
        "the researcher's privacy budget is exhausted: {spent} of {budget} spent, this bounty needs {needed}"
    )]
    BudgetExhausted {
        /// ε already spent.
        spent: f64,
        /// The budget.
        budget: f64,
        /// ε the bounty needs.
        needed: f64,
    },
    /// The text to publish is not a canonical bounty query.
    #[error("only canonical bounty queries are published: {0}")]
    NotCanonical(String),
    /// A release's ε or the budget is not a usable number.
    #[error("invalid ε or budget: {0}")]
    Invalid(String),
    /// A stored row cannot be read back.
    #[error("the research ledger holds a damaged entry: {0}")]
    Corrupt(String),
}

impl Ledger {
    /// Opens (creating if needed) the ledger at `path`; `:memory:` gives a private
    /// in-memory ledger.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LedgerError> {
        let conn = Connection::open(path.as_ref())?;
        conn.busy_timeout(Duration::from_secs(30))?;
        // WAL lets readers go on while a writer commits; in-memory databases ignore it.
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.execute_batch(
            "PRAGMA foreign_keys = ON;
             CREATE TABLE IF NOT EXISTS research_queries (
                 commitment TEXT PRIMARY KEY,
                 text TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS research_answers (
                 bounty_id TEXT PRIMARY KEY,
                 researcher TEXT NOT NULL,
                 release TEXT NOT NULL,
                 epsilon REAL NOT NULL,
                 spent REAL NOT NULL
             );
             CREATE TABLE IF NOT EXISTS research_budgets (
                 researcher TEXT PRIMARY KEY,
                 spent REAL NOT NULL
             );",
        )?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic mid-transaction rolled it back: the connection is still sound.
        self.conn.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Publishes a canonical query text under its commitment (idempotent) and returns
    /// the commitment. Texts that are not canonical bounty queries are refused.
    pub fn publish(&self, text: &str) -> Result<B256, LedgerError> {
        let q: BountyQuery = text.parse().map_err(|e| LedgerError::NotCanonical(format!("{e}")))?;
        let canonical = q.canonical();
        if canonical != text {
            return Err(LedgerError::NotCanonical(format!(
                "the text differs from its canonical form '{canonical}'"
            )));
        }
        let commitment = q.commitment();
        self.conn().execute(
            "INSERT OR IGNORE INTO research_queries (commitment, text) VALUES (?1, ?2)",
            params![commitment.to_string(), text],
        )?;
        Ok(commitment)
    }

    /// The published text with this commitment, if any.
    pub fn text(&self, commitment: B256) -> Result<Option<String>, LedgerError> {
        Ok(self
            .conn()
            .query_row(
                "SELECT text FROM research_queries WHERE commitment = ?1",
                params![commitment.to_string()],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// The answer stored for a bounty, if it was redeemed.
    pub fn answer(&self, bounty_id: &str) -> Result<Option<StoredRelease>, LedgerError> {
        stored(&self.conn(), bounty_id)
    }

    /// The ε `researcher` has spent so far.
    pub fn spent(&self, researcher: Address) -> Result<f64, LedgerError> {
        spent(&self.conn(), researcher)
    }

    /// Records `release` as the answer to `bounty_id` for `researcher` within
    /// `budget` (see the module docs). If the bounty already has an answer, returns it
    /// unchanged and spends nothing, whoever asks: checking that `researcher` owns the
    /// bounty is the caller's job.
    pub fn record(
        &self,
        bounty_id: &str,
        researcher: Address,
        release: &Release,
        budget: f64,
    ) -> Result<StoredRelease, LedgerError> {
        let needed = release.epsilon;
        if !(needed.is_finite() && needed >= 0.0) {
            return Err(LedgerError::Invalid(format!("a release cannot spend ε {needed}")));
        }
        if !(budget.is_finite() && budget >= 0.0) {
            return Err(LedgerError::Invalid(format!("{budget} is not a budget")));
        }
        let json = serde_json::to_string(release)
            .map_err(|e| LedgerError::Invalid(format!("the release cannot be stored: {e}")))?;
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if let Some(existing) = stored(&tx, bounty_id)? {
            return Ok(existing);
        }
        let before = spent(&tx, researcher)?;
        let after = before + needed;
        if after > budget + BUDGET_TOLERANCE {
            return Err(LedgerError::BudgetExhausted { spent: before, budget, needed });
        }
        let who = researcher.to_string();
        tx.execute(
            "INSERT INTO research_budgets (researcher, spent) VALUES (?1, ?2)
             ON CONFLICT (researcher) DO UPDATE SET spent = excluded.spent",
            params![who, after],
        )?;
        tx.execute(
            "INSERT INTO research_answers (bounty_id, researcher, release, epsilon, spent)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![bounty_id, who, json, needed, after],
        )?;
        tx.commit()?;
        // What was stored, exactly as a later `answer` reads it back.
        let release = serde_json::from_str(&json)
            .map_err(|e| LedgerError::Corrupt(format!("bounty {bounty_id}: release: {e}")))?;
        Ok(StoredRelease {
            bounty_id: bounty_id.to_owned(),
            researcher,
            release,
            epsilon: needed,
            spent: after,
        })
    }
}

fn spent(conn: &Connection, researcher: Address) -> Result<f64, LedgerError> {
    Ok(conn
        .query_row(
            "SELECT spent FROM research_budgets WHERE researcher = ?1",
            params![researcher.to_string()],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0.0))
}

fn stored(conn: &Connection, bounty_id: &str) -> Result<Option<StoredRelease>, LedgerError> {
    let row: Option<(String, String, f64, f64)> = conn
        .query_row(
            "SELECT researcher, release, epsilon, spent FROM research_answers WHERE bounty_id = ?1",
            params![bounty_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    let Some((researcher, release, epsilon, spent)) = row else { return Ok(None) };
    let researcher = researcher
        .parse()
        .map_err(|_| LedgerError::Corrupt(format!("bounty {bounty_id}: researcher address")))?;
    let release = serde_json::from_str(&release)
        .map_err(|e| LedgerError::Corrupt(format!("bounty {bounty_id}: release: {e}")))?;
    Ok(Some(StoredRelease { bounty_id: bounty_id.to_owned(), researcher, release, epsilon, spent }))
}
