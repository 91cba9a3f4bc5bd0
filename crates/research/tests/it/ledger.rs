//! The ledger: published texts, stored answers, budgets, persistence, concurrency.

use crate::{day, iron_cohort, temp_path};
use alloy_primitives::{Address, B256, address};
use medrec_research::{
    aggregate::{Release, release},
    ledger::{Ledger, LedgerError, SCHEMA_VERSION},
    policy::Policy,
    query::{BountyQuery, commitment_of_text},
};
use rand_chacha::{ChaCha20Rng, rand_core::SeedableRng};
use std::sync::Arc;

const TEXT: &str = "count(Observation.valueQuantity) where code = http://loinc.org|2498-4 and date >= 2026-01-08 and date < 2026-01-15 and range 0..500";
const ALICE: Address = address!("0x00000000000000000000000000000000000a11ce");
const BOB: Address = address!("0x0000000000000000000000000000000000000b0b");

fn a_release(seed: u64, epsilon: f64) -> Release {
    let query: BountyQuery = TEXT.parse().expect("parses");
    let policy = Policy { epsilon_per_bounty: epsilon, ..Policy::default() };
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    release(&query, &policy, &iron_cohort(20), day(2026, 1, 15), &mut rng).expect("released")
}

fn bounty(i: usize) -> String {
    format!("0x{:064x}:{i}", 0xbeef)
}

#[test]
fn published_texts_are_found_by_commitment() {
    let ledger = Ledger::open(":memory:").expect("opens");
    let commitment = ledger.publish(TEXT).expect("published");
    assert_eq!(commitment, commitment_of_text(TEXT));
    assert_eq!(ledger.publish(TEXT).expect("again"), commitment, "idempotent");
    assert_eq!(ledger.text(commitment).expect("reads").as_deref(), Some(TEXT));
    assert_eq!(ledger.text(commitment_of_text("other")).expect("reads"), None);

    let loose = TEXT.replace("count", "COUNT");
    let err = ledger.publish(&loose).expect_err("not canonical");
    assert!(matches!(err, LedgerError::NotCanonical(_)));
    assert!(err.to_string().contains(TEXT), "{err}");
    assert!(matches!(ledger.publish("median(x)"), Err(LedgerError::NotCanonical(_))));
}

#[test]
fn an_answer_is_stored_and_returned_unchanged_without_spending() {
    let ledger = Ledger::open(":memory:").expect("opens");
    assert_eq!(ledger.answer(&bounty(1)).expect("reads"), None);
    let first = ledger.record(&bounty(1), ALICE, &a_release(1, 0.5), 5.0).expect("recorded");
    assert_eq!(first.epsilon(), 0.5);
    assert_eq!(first.spent(), 0.5);
    assert_eq!(first.researcher(), ALICE);
    assert_eq!(first.bounty_id(), bounty(1));
    assert_eq!(ledger.spent(ALICE).expect("spent"), 0.5);

    // Asking again, even with another noisy release, gives the stored answer.
    let other = a_release(2, 0.5);
    assert_ne!(&other, first.release());
    let again = ledger.record(&bounty(1), ALICE, &other, 5.0).expect("recorded");
    assert_eq!(again, first);
    assert_eq!(ledger.answer(&bounty(1)).expect("reads"), Some(first));
    assert_eq!(ledger.spent(ALICE).expect("spent"), 0.5, "nothing more spent");
    assert_eq!(ledger.spent(BOB).expect("spent"), 0.0);
}

#[test]
fn an_exhausted_budget_is_refused_with_the_numbers() {
    let ledger = Ledger::open(":memory:").expect("opens");
    let r = a_release(1, 0.4);
    ledger.record(&bounty(1), ALICE, &r, 1.0).expect("first");
    ledger.record(&bounty(2), ALICE, &r, 1.0).expect("second");
    let err = ledger.record(&bounty(3), ALICE, &r, 1.0).expect_err("over budget");
    match err {
        LedgerError::BudgetExhausted { spent, budget, needed } => {
            assert!((spent - 0.8).abs() < 1e-12, "{spent}");
            assert_eq!((budget, needed), (1.0, 0.4));
        }
        ref other => panic!("{other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "the researcher's privacy budget is exhausted: 0.8 of 1 spent, this bounty needs 0.4"
    );
    assert_eq!(ledger.answer(&bounty(3)).expect("reads"), None, "nothing stored");
    assert!((ledger.spent(ALICE).expect("spent") - 0.8).abs() < 1e-12);
    // Another researcher has their own budget; ten releases of 0.1 fit 1.0 exactly.
    let tenth = a_release(1, 0.1);
    for i in 10..20 {
        ledger.record(&bounty(i), BOB, &tenth, 1.0).expect("fits");
    }
    assert!(ledger.record(&bounty(20), BOB, &tenth, 1.0).is_err());
}

#[test]
fn the_ledger_persists_across_reopening() {
    let path = temp_path("ledger.sqlite");
    let stored = {
        let ledger = Ledger::open(&path).expect("opens");
        ledger.publish(TEXT).expect("published");
        ledger.record(&bounty(1), ALICE, &a_release(3, 0.5), 5.0).expect("recorded")
    };
    let ledger = Ledger::open(&path).expect("reopens");
    assert_eq!(ledger.text(commitment_of_text(TEXT)).expect("reads").as_deref(), Some(TEXT));
    assert_eq!(ledger.answer(&bounty(1)).expect("reads"), Some(stored));
    assert_eq!(ledger.spent(ALICE).expect("spent"), 0.5);
}

#[test]
fn concurrent_records_never_overspend() {
    // Budget 5.0 at 0.5 a bounty: exactly ten of the 40 distinct bounties fit, whether
    // the threads share one Ledger or each opens the file itself.
    let path = temp_path("concurrent.sqlite");
    let shared = Arc::new(Ledger::open(&path).expect("opens"));
    let release = Arc::new(a_release(4, 0.5));
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let path = path.clone();
            let shared = Arc::clone(&shared);
            let release = Arc::clone(&release);
            std::thread::spawn(move || {
                let own = Ledger::open(&path).expect("opens");
                let ledger = if t % 2 == 0 { &own } else { &*shared };
                let mut granted = 0;
                for i in 0..5 {
                    match ledger.record(&bounty(t * 5 + i), ALICE, &release, 5.0) {
                        Ok(_) => granted += 1,
                        Err(LedgerError::BudgetExhausted { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                granted
            })
        })
        .collect();
    let granted: usize = handles.into_iter().map(|h| h.join().expect("thread")).sum();
    assert_eq!(granted, 10);
    assert_eq!(shared.spent(ALICE).expect("spent"), 5.0);
    let answered = (0..40).filter(|i| shared.answer(&bounty(*i)).expect("reads").is_some()).count();
    assert_eq!(answered, 10);
}

fn relationship(i: u8) -> B256 {
    B256::repeat_byte(i)
}

#[test]
fn each_release_charges_its_patients_and_a_spent_patient_has_no_room() {
    let ledger = Ledger::open(":memory:").expect("opens");
    let (r1, r2, r3) = (relationship(1), relationship(2), relationship(3));
    let r = a_release(1, 0.4);
    // Two researchers, one patient budget of 1.0: r1 is in both releases, r2 in one.
    ledger.record_release(&bounty(1), ALICE, &r, 5.0, &[r1, r2], 1.0).expect("first");
    ledger.record_release(&bounty(2), BOB, &r, 5.0, &[r1], 1.0).expect("second");
    assert!((ledger.patient_spent(r1).expect("spent") - 0.8).abs() < 1e-12);
    assert_eq!(ledger.patient_spent(r2).expect("spent"), 0.4);
    assert_eq!(ledger.patient_spent(r3).expect("spent"), 0.0);
    assert_eq!(
        ledger.patients_within(&[r1, r2, r3], 0.4, 1.0).expect("asks"),
        vec![false, true, true],
        "r1 has 0.2 left, not enough for 0.4"
    );
    assert_eq!(ledger.patients_within(&[r1], 0.2, 1.0).expect("asks"), vec![true]);
    // A replay charges nobody.
    ledger.record_release(&bounty(1), ALICE, &r, 5.0, &[r1, r2], 1.0).expect("replay");
    assert!((ledger.patient_spent(r1).expect("spent") - 0.8).abs() < 1e-12);
    // A release that would pass r1's budget (a caller that did not leave r1 out, or a
    // concurrent release) is refused whole: nothing stored, nobody charged.
    let err = ledger.record_release(&bounty(3), BOB, &r, 5.0, &[r2, r1], 1.0).expect_err("r1");
    assert!(matches!(err, LedgerError::PatientBudgetChanged), "{err}");
    assert_eq!(ledger.answer(&bounty(3)).expect("reads"), None);
    assert_eq!(ledger.patient_spent(r2).expect("spent"), 0.4, "r2 not charged");
    assert_eq!(ledger.spent(BOB).expect("spent"), 0.4, "the researcher not charged");
    // Without r1 it goes through.
    ledger.record_release(&bounty(3), BOB, &r, 5.0, &[r2], 1.0).expect("without r1");
    assert_eq!(ledger.patient_spent(r2).expect("spent"), 0.8);
}

/// The schema of ledgers written before per-patient budgets (no user_version).
const OLD_SCHEMA: &str = "CREATE TABLE research_queries (commitment TEXT PRIMARY KEY, text TEXT NOT NULL);
CREATE TABLE research_answers (bounty_id TEXT PRIMARY KEY, researcher TEXT NOT NULL, release TEXT NOT NULL, epsilon REAL NOT NULL, spent REAL NOT NULL);
CREATE TABLE research_budgets (researcher TEXT PRIMARY KEY, spent REAL NOT NULL);";

#[test]
fn an_old_ledger_file_opens_migrated_and_keeps_working() {
    let path = temp_path("old-ledger.sqlite");
    // An old file: one published text, one stored answer (a release without the new
    // fields) and Alice's budget.
    let mut old_release = serde_json::to_value(a_release(2, 0.5)).expect("json");
    let fields = old_release.as_object_mut().expect("an object");
    fields.remove("suppression");
    fields.remove("patient_budget");
    {
        let conn = rusqlite::Connection::open(&path).expect("creates");
        conn.execute_batch(OLD_SCHEMA).expect("old schema");
        conn.execute(
            "INSERT INTO research_queries VALUES (?1, ?2)",
            rusqlite::params![commitment_of_text(TEXT).to_string(), TEXT],
        )
        .expect("text");
        conn.execute(
            "INSERT INTO research_answers VALUES (?1, ?2, ?3, 0.5, 0.5)",
            rusqlite::params![bounty(1), ALICE.to_string(), old_release.to_string()],
        )
        .expect("answer");
        conn.execute(
            "INSERT INTO research_budgets VALUES (?1, 0.5)",
            rusqlite::params![ALICE.to_string()],
        )
        .expect("budget");
    }
    let ledger = Ledger::open(&path).expect("an old file opens");
    assert_eq!(ledger.text(commitment_of_text(TEXT)).expect("reads").as_deref(), Some(TEXT));
    let stored = ledger.answer(&bounty(1)).expect("reads").expect("the old answer");
    assert_eq!(stored.release().suppression, None);
    assert_eq!(stored.release().patient_budget, None);
    assert_eq!(ledger.spent(ALICE).expect("spent"), 0.5);
    // It keeps working: a replay, and a new release charging patients.
    let again = ledger.record(&bounty(1), ALICE, &a_release(3, 0.5), 5.0).expect("replay");
    assert_eq!(again, stored);
    ledger
        .record_release(&bounty(2), ALICE, &a_release(3, 0.5), 5.0, &[relationship(9)], 10.0)
        .expect("a new release");
    assert_eq!(ledger.patient_spent(relationship(9)).expect("spent"), 0.5);
    drop(ledger);
    // Migrated once: it reopens with everything, at the current version.
    let ledger = Ledger::open(&path).expect("reopens");
    assert_eq!(ledger.spent(ALICE).expect("spent"), 1.0);
    assert_eq!(ledger.patient_spent(relationship(9)).expect("spent"), 0.5);
    drop(ledger);
    let conn = rusqlite::Connection::open(&path).expect("opens");
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).expect("version");
    assert_eq!(version, SCHEMA_VERSION);
    // A file from a newer version is refused, not damaged.
    conn.execute_batch("PRAGMA user_version = 99").expect("bump");
    drop(conn);
    assert!(matches!(Ledger::open(&path), Err(LedgerError::Newer(99))));
}
