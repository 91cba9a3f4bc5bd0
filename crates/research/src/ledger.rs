//! The provider's research ledger, in SQLite: the published texts of bounty queries
//! under their commitments, the answer released for each bounty, the ε each
//! researcher has spent, and the ε each patient's records have contributed to.
//!
//! [`Ledger::record_release`] is atomic: in one `IMMEDIATE` transaction it returns the
//! answer already stored for the bounty (spending nothing) or checks the researcher's
//! budget and every contributing patient's, stores the answer and adds its ε to the
//! researcher and to each of those patients. Several [`Ledger`]s (threads or
//! processes) may share one file; SQLite serializes their writes, so no budget is ever
//! overspent. Budgets are compared with a tolerance of 1e-9 ([`fits`]) so that, e.g.,
//! ten bounties of ε 0.1 fit a budget of 1.0 despite floating-point rounding.
//!
//! **Per-patient budgets.** The gatekeeper knows a patient by their relationship, so
//! the ledger keeps one cumulative ε per relationship, across all researchers and
//! bounties. Before computing a release the caller asks which patients still have room
//! for its ε ([`Ledger::patients_within`]) and leaves the others out of the cohort;
//! the release then charges its whole ε (values and suppression) to every patient in
//! the cohort, whether or not they had values in the window. Charging the whole cohort
//! keeps the budgets independent of medical data: who is left out depends only on who
//! opted in and on earlier releases, so leaving them out leaks nothing of their
//! records, and each patient's records feed releases whose ε adds up to at most the
//! budget (sequential composition).
//!
//! How many patients were left out is *not* released, not even noisily: it is a count
//! about the patients with no budget left, and a noisy release of it would spend the
//! ε of exactly those patients. The release states the budget in force instead
//! ([`crate::aggregate::Release::patient_budget`]).
//!
//! **Schema.** `PRAGMA user_version` holds the schema's version; [`Ledger::open`]
//! migrates older files in place (version 0, the files of before per-patient budgets,
//! gains the `research_patient_budgets` table) and refuses newer ones.

use crate::{aggregate::Release, query::BountyQuery};
use alloy_primitives::{Address, B256};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use std::{path::Path, sync::Mutex, time::Duration};

/// Rounding slack when comparing spent ε with a budget.
const BUDGET_TOLERANCE: f64 = 1e-9;
/// The schema version this code writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 1;

/// Whether `needed` more ε fits a budget of which `spent` is spent (with a tolerance
/// of 1e-9 for rounding).
pub fn fits(spent: f64, needed: f64, budget: f64) -> bool {
    spent + needed <= budget + BUDGET_TOLERANCE
}

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
    /// A contributing patient's budget was spent by another release while this one
    /// was computed: nothing was stored or spent; compute it again.
    #[error(
        "a contributing patient's privacy budget changed while the answer was computed: nothing was released; try again"
    )]
    PatientBudgetChanged,
    /// The file was written by a newer version of this software.
    #[error(
        "the research ledger has schema version {0}, newer than this software's {SCHEMA_VERSION}"
    )]
    Newer(i64),
}

impl Ledger {
    /// Opens (creating if needed) the ledger at `path`; `:memory:` gives a private
    /// in-memory ledger.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LedgerError> {
        let mut conn = Connection::open(path.as_ref())?;
        conn.busy_timeout(Duration::from_secs(30))?;
        // WAL lets readers go on while a writer commits; in-memory databases ignore it.
        let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        conn.execute_batch("PRAGMA foreign_keys = ON;")?;
        migrate(&mut conn)?;
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

    /// The ε the patient under budget key `relationship` has contributed to so far (the
    /// gatekeeper keys a patient by a hash of their record id, the same for all their
    /// relationships with the provider).
    pub fn patient_spent(&self, relationship: B256) -> Result<f64, LedgerError> {
        patient_spent(&self.conn(), relationship)
    }

    /// For each relationship, whether its patient has room for `needed` more ε within
    /// `budget` ([`fits`]).
    pub fn patients_within(
        &self,
        relationships: &[B256],
        needed: f64,
        budget: f64,
    ) -> Result<Vec<bool>, LedgerError> {
        let conn = self.conn();
        relationships.iter().map(|r| Ok(fits(patient_spent(&conn, *r)?, needed, budget))).collect()
    }

    /// Records `release` as the answer to `bounty_id` for `researcher` within
    /// `budget`, charging no patient (see [`Ledger::record_release`]).
    pub fn record(
        &self,
        bounty_id: &str,
        researcher: Address,
        release: &Release,
        budget: f64,
    ) -> Result<StoredRelease, LedgerError> {
        self.record_release(bounty_id, researcher, release, budget, &[], f64::INFINITY)
    }

    /// Records `release` as the answer to `bounty_id` for `researcher` within
    /// `budget`, and charges its ε to the patients of `patients` (relationship ids)
    /// within `patient_budget` each (see the module docs). If the bounty already has an
    /// answer, returns it unchanged and spends nothing, whoever asks: checking that
    /// `researcher` owns the bounty is the caller's job. If a patient no longer has
    /// room (another release charged them meanwhile), nothing is stored or spent:
    /// [`LedgerError::PatientBudgetChanged`].
    pub fn record_release(
        &self,
        bounty_id: &str,
        researcher: Address,
        release: &Release,
        budget: f64,
        patients: &[B256],
        patient_budget: f64,
    ) -> Result<StoredRelease, LedgerError> {
        let needed = release.epsilon;
        if !(needed.is_finite() && needed >= 0.0) {
            return Err(LedgerError::Invalid(format!("a release cannot spend ε {needed}")));
        }
        if !(budget.is_finite() && budget >= 0.0) {
            return Err(LedgerError::Invalid(format!("{budget} is not a budget")));
        }
        if patient_budget.is_nan() || patient_budget < 0.0 {
            return Err(LedgerError::Invalid(format!("{patient_budget} is not a patient budget")));
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
        if !fits(before, needed, budget) {
            return Err(LedgerError::BudgetExhausted { spent: before, budget, needed });
        }
        let mut charged = Vec::with_capacity(patients.len());
        for relationship in patients {
            let was = patient_spent(&tx, *relationship)?;
            if !fits(was, needed, patient_budget) {
                return Err(LedgerError::PatientBudgetChanged);
            }
            charged.push((relationship.to_string(), was + needed));
        }
        for (relationship, now) in charged {
            tx.execute(
                "INSERT INTO research_patient_budgets (relationship, spent, releases)
                 VALUES (?1, ?2, 1)
                 ON CONFLICT (relationship) DO UPDATE
                 SET spent = excluded.spent, releases = releases + 1",
                params![relationship, now],
            )?;
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

/// Brings the schema to [`SCHEMA_VERSION`] in one transaction: version 0 is both a new
/// file and a file of before versioning (the three original tables, which `IF NOT
/// EXISTS` leaves as they are); version 1 adds the per-patient budgets.
fn migrate(conn: &mut Connection) -> Result<(), LedgerError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(LedgerError::Newer(version));
    }
    if version < 1 {
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS research_queries (
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
             );
             CREATE TABLE IF NOT EXISTS research_patient_budgets (
                 relationship TEXT PRIMARY KEY,
                 spent REAL NOT NULL,
                 releases INTEGER NOT NULL
             );",
        )?;
        tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))?;
    }
    tx.commit()?;
    Ok(())
}

fn patient_spent(conn: &Connection, relationship: B256) -> Result<f64, LedgerError> {
    Ok(conn
        .query_row(
            "SELECT spent FROM research_patient_budgets WHERE relationship = ?1",
            params![relationship.to_string()],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0.0))
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
