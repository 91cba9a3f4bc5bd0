//! The conformance suite every [`AccessLog`] backend passes.
//!
//! Each case takes a fresh, empty log. A backend's integration tests expand
//! [`audit_conformance_tests!`](crate::audit_conformance_tests) with an expression that
//! makes one (anything that derefs to a [`TestLog`]).

#![allow(clippy::missing_panics_doc, missing_docs)]

use super::{
    AccessLog, Action, Anchor, AuditWriter, ChainError, Decision, LogHead, LoggedEntry, NewEntry,
    Proof, ProofError, ResourceRef, WriterConfig, check_chain, inclusion_path, prove, root_at,
    tree::Frontier, verify,
};
use crate::{
    Result,
    audit::{
        sql::{MysqlAccessLog, PostgresAccessLog},
        sqlite::SqliteAccessLog,
    },
    fhir::ResourceType,
};
use alloy_primitives::{Address, B256};
use std::{sync::Arc, time::Duration};

/// Expands to one `#[tokio::test]` per conformance case; `$make` is an async
/// expression giving a fresh, empty log (anything that derefs to a [`TestLog`]).
#[macro_export]
macro_rules! audit_conformance_tests {
    ($make:expr) => {
        $crate::audit_conformance_tests!(@cases $make;
            appends_continue_the_chain, concurrent_appends_form_one_chain,
            entries_about_filters_by_relationship, anchors_round_trip, proofs_verify,
            every_entry_proves_in_every_prefix, tampering_is_detected,
            tampering_with_the_tree_is_detected,
            the_writer_flushes_everything_in_order);
    };
    (@cases $make:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let log = $make.await;
                $crate::audit::conformance::$case(&*log).await;
            }
        )*
    };
}

/// A backend the suite can tamper with.
#[async_trait::async_trait]
pub trait TestLog: AccessLog + Clone + 'static {
    /// Runs `sql` on the log's database, as an attacker with database access would.
    async fn execute(&self, sql: &'static str) -> Result<()>;
}

#[async_trait::async_trait]
impl TestLog for SqliteAccessLog {
    async fn execute(&self, sql: &'static str) -> Result<()> {
        self.execute_for_tests(sql).await
    }
}

#[async_trait::async_trait]
impl TestLog for PostgresAccessLog {
    async fn execute(&self, sql: &'static str) -> Result<()> {
        self.execute_for_tests(sql).await
    }
}

#[async_trait::async_trait]
impl TestLog for MysqlAccessLog {
    async fn execute(&self, sql: &'static str) -> Result<()> {
        self.execute_for_tests(sql).await
    }
}

fn rel(n: u8) -> B256 {
    B256::repeat_byte(n)
}

/// A full entry: every optional field set, values derived from `n`.
pub fn full(n: u8) -> NewEntry {
    NewEntry {
        time: 1_767_225_600_000 + i64::from(n),
        requester: Address::repeat_byte(n),
        action: Action::PointerRead,
        relationship: Some(rel(0xa0)),
        pointer: Some(n),
        resource: Some(ResourceRef {
            resource_type: ResourceType::Observation,
            id: Some(format!("obs-{n}").parse().expect("a valid id")),
        }),
        decision: Decision::AllowViewer,
        response_hash: Some(B256::repeat_byte(n.wrapping_add(1))),
        epsilon: Some(f64::from(n) / 3.0),
    }
}

/// A bare entry: no optional field, denied.
pub fn denied(time: i64, relationship: Option<B256>) -> NewEntry {
    let mut e = NewEntry::new(
        time,
        Address::ZERO,
        Action::FhirSearch,
        "deny:not-a-viewer".parse().expect("a valid decision"),
    );
    e.relationship = relationship;
    e.resource = Some(ResourceRef { resource_type: ResourceType::Patient, id: None });
    e
}

/// The head of a log of `entries`, its root computed here, in memory.
pub fn head_of(entries: &[LoggedEntry]) -> LogHead {
    let mut tree = Frontier::new(0, Vec::new()).expect("the empty frontier");
    for e in entries {
        tree.push(&e.hash);
    }
    LogHead {
        size: entries.len() as u64,
        head: entries.last().map_or(B256::ZERO, |e| e.hash),
        root: tree.root(),
    }
}

async fn all(log: &dyn AccessLog) -> Vec<LoggedEntry> {
    log.entries(0, 10_000).await.unwrap()
}

pub async fn appends_continue_the_chain(log: &dyn AccessLog) {
    assert_eq!(log.head().await.unwrap(), LogHead::EMPTY);
    assert!(all(log).await.is_empty());
    assert!(log.append_batch(Vec::new()).await.unwrap().is_empty());
    assert_eq!(log.head().await.unwrap().size, 0);

    let first = log.append(full(1)).await.unwrap();
    assert_eq!((first.seq, first.prev_hash), (1, B256::ZERO));
    assert!(first.is_consistent());
    assert_eq!(log.head().await.unwrap(), head_of(std::slice::from_ref(&first)));
    let second = log.append(denied(5, None)).await.unwrap();
    assert_eq!((second.seq, second.prev_hash), (2, first.hash));
    let batch = log
        .append_batch(vec![full(3), denied(-7, Some(rel(1))), full(200), full(0)])
        .await
        .unwrap();
    assert_eq!(batch.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4, 5, 6]);
    assert_eq!(batch[0].prev_hash, second.hash);
    for pair in batch.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
    }
    let mut written = vec![first, second];
    written.extend(batch);
    assert_eq!(log.head().await.unwrap(), head_of(&written));
    assert_eq!(log.head().await.unwrap().head, written[5].hash);

    // Everything reads back exactly, epsilon bits and all.
    let read = all(log).await;
    assert_eq!(read, written);
    assert_eq!(read[5].entry.epsilon.map(f64::to_bits), Some(0f64.to_bits()));
    assert_eq!(read[4].entry.epsilon.map(f64::to_bits), Some((200.0f64 / 3.0).to_bits()));
    assert_eq!(log.entries(4, 1).await.unwrap(), [written[4].clone()]);
    assert!(log.entries(6, 10).await.unwrap().is_empty());

    let hashes: Vec<B256> = written.iter().map(|e| e.hash).collect();
    let digests: Vec<B256> = written.iter().map(LoggedEntry::digest).collect();
    assert_eq!(log.hashes(1, 6).await.unwrap(), hashes);
    assert_eq!(log.hashes(2, 3).await.unwrap(), hashes[1..3]);
    assert_eq!(log.hashes(5, 99).await.unwrap(), hashes[4..]);
    assert!(log.hashes(4, 3).await.unwrap().is_empty());
    assert_eq!(log.digests(1, 6).await.unwrap(), digests);
    assert_eq!(check_chain(log, 4).await.unwrap(), head_of(&written));
    for size in 0..=6usize {
        assert_eq!(root_at(log, size as u64).await.unwrap(), head_of(&written[..size]).root);
    }
    assert!(root_at(log, 7).await.is_err(), "no tree of 7 entries yet");
}

pub async fn concurrent_appends_form_one_chain<L: TestLog>(log: &L) {
    const TASKS: u8 = 8;
    const ROUNDS: u8 = 12;
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let log = log.clone();
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for round in 0..ROUNDS {
                // Mark each entry with its task (requester) and round (pointer).
                let mut e = full(task);
                e.pointer = Some(round);
                if round % 3 == 0 {
                    let mut e2 = e.clone();
                    e2.pointer = Some(100 + round);
                    mine.extend(log.append_batch(vec![e, e2]).await.unwrap());
                } else {
                    mine.push(log.append(e).await.unwrap());
                }
            }
            mine
        }));
    }
    let mut returned = Vec::new();
    for task in tasks {
        returned.extend(task.await.unwrap());
    }
    let per_task = u64::from(ROUNDS) + u64::from(ROUNDS.div_ceil(3));
    let total = u64::from(TASKS) * per_task;
    let head = check_chain(log, 37).await.unwrap();
    assert_eq!(head.size, total);
    let read = all(log).await;
    assert_eq!(read.len() as u64, total);
    // What each append returned is exactly what was stored at its place.
    returned.sort_by_key(|e| e.seq);
    assert_eq!(returned, read);
    // Each task's entries are in the order it appended them.
    for task in 0..TASKS {
        let order: Vec<u8> = read
            .iter()
            .filter(|e| e.entry.requester == Address::repeat_byte(task))
            .map(|e| e.entry.pointer.unwrap())
            .collect();
        let mut expected = Vec::new();
        for round in 0..ROUNDS {
            expected.push(round);
            if round % 3 == 0 {
                expected.push(100 + round);
            }
        }
        assert_eq!(order, expected, "task {task}");
    }
}

pub async fn entries_about_filters_by_relationship(log: &dyn AccessLog) {
    let (a, b, c) = (rel(1), rel(2), rel(3));
    let plan = [Some(a), None, Some(b), Some(a), Some(c), Some(b), Some(a), None];
    let entries = plan.iter().zip(0..).map(|(r, t)| denied(t, *r)).collect();
    log.append_batch(entries).await.unwrap();
    let seqs = |v: Vec<LoggedEntry>| v.iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(seqs(log.entries_about(&[a], 0, 100).await.unwrap()), [1, 4, 7]);
    assert_eq!(seqs(log.entries_about(&[b, a], 0, 100).await.unwrap()), [1, 3, 4, 6, 7]);
    assert_eq!(seqs(log.entries_about(&[a, b], 1, 2).await.unwrap()), [3, 4]);
    assert_eq!(seqs(log.entries_about(&[a, b], 4, 100).await.unwrap()), [6, 7]);
    assert_eq!(seqs(log.entries_about(&[c], 0, 100).await.unwrap()), [5]);
    assert!(log.entries_about(&[rel(9)], 0, 100).await.unwrap().is_empty());
    assert!(log.entries_about(&[], 0, 100).await.unwrap().is_empty());
    assert!(log.entries_about(&[a], 0, 0).await.unwrap().is_empty());
    let got = log.entries_about(&[c], 0, 1).await.unwrap();
    assert_eq!(got[0].entry, denied(4, Some(c)));
}

pub async fn anchors_round_trip(log: &dyn AccessLog) {
    assert!(log.anchors().await.unwrap().is_empty());
    let written = log.append_batch((1..=6).map(full).collect()).await.unwrap();
    let anchor = |size: usize, block: u64| Anchor {
        size: size as u64,
        root: head_of(&written[..size]).root,
        block,
        tx: B256::repeat_byte(u8::try_from(block).unwrap()),
    };
    log.record_anchor(anchor(5, 20)).await.unwrap();
    log.record_anchor(anchor(2, 10)).await.unwrap();
    log.record_anchor(anchor(2, 10)).await.unwrap(); // the same again: nothing changes
    assert_eq!(log.anchors().await.unwrap(), [anchor(2, 10), anchor(5, 20)]);
    // Another anchor at a recorded size, a root that is not the log's (the hash of the
    // last entry, as anchored before the tree, or the root of another size), or a size
    // the log has not reached are refused.
    let err = log.record_anchor(anchor(2, 11)).await.unwrap_err();
    assert!(err.to_string().contains("already recorded"), "{err}");
    for root in [written[2].hash, written[2].prev_hash, anchor(4, 15).root] {
        let mut wrong = anchor(3, 15);
        wrong.root = root;
        let err = log.record_anchor(wrong).await.unwrap_err();
        assert!(err.to_string().contains("is not the access log's root"), "{err}");
    }
    let mut beyond = anchor(6, 30);
    beyond.size = 7;
    let err = log.record_anchor(beyond).await.unwrap_err();
    assert!(err.to_string().contains("has no entry 7"), "{err}");
    assert_eq!(log.anchors().await.unwrap(), [anchor(2, 10), anchor(5, 20)]);
}

pub async fn proofs_verify(log: &dyn AccessLog) {
    assert!(prove(log, 1).await.unwrap().is_none(), "nothing logged");
    let written = log.append_batch((1..=6).map(full).collect()).await.unwrap();
    assert!(prove(log, 1).await.unwrap().is_none(), "nothing anchored");
    let head = log.head().await.unwrap();
    let at3 =
        Anchor { size: 3, root: head_of(&written[..3]).root, block: 1, tx: B256::repeat_byte(1) };
    log.record_anchor(at3).await.unwrap();
    for seq in 1..=3 {
        let proof = prove(log, seq).await.unwrap().expect("anchored");
        assert_eq!(proof.anchor, at3);
        assert_eq!(proof.entry, written[usize::try_from(seq).unwrap() - 1]);
        assert_eq!(proof.path.len(), if seq == 3 { 1 } else { 2 }, "entry {seq} of 3");
        verify(&proof).unwrap();
    }
    assert!(prove(log, 4).await.unwrap().is_none(), "not anchored yet");
    let at6 = Anchor { size: 6, root: head.root, block: 2, tx: B256::repeat_byte(2) };
    log.record_anchor(at6).await.unwrap();
    for seq in 1..=6 {
        let proof = prove(log, seq).await.unwrap().expect("anchored");
        assert_eq!(proof.anchor, if seq <= 3 { at3 } else { at6 }, "the first covering anchor");
        verify(&proof).unwrap();
    }
    assert!(prove(log, 0).await.unwrap().is_none());
    assert!(prove(log, 7).await.unwrap().is_none());
    // A proof against the wrong anchor fails.
    let mut proof = prove(log, 2).await.unwrap().unwrap();
    proof.anchor.root = at6.root;
    assert_eq!(verify(&proof), Err(ProofError::RootMismatch { seq: 2, anchor_size: 3 }));
}

/// For every size from 1 to 20, anchored: every entry's proof from the stored tree
/// verifies, and its path is the one computed here in memory.
pub async fn every_entry_proves_in_every_prefix(log: &dyn AccessLog) {
    let mut written = Vec::new();
    for n in 1..=20u8 {
        written.extend(log.append_batch(vec![full(n)]).await.unwrap());
        let root = head_of(&written).root;
        assert_eq!(log.head().await.unwrap().root, root);
        let anchor =
            Anchor { size: u64::from(n), root, block: u64::from(n), tx: B256::repeat_byte(n) };
        log.record_anchor(anchor).await.unwrap();
    }
    for anchor in log.anchors().await.unwrap() {
        for seq in 1..=anchor.size {
            let path = inclusion_path(log, seq, anchor.size).await.unwrap();
            assert!(path.len() <= 5, "entry {seq} of {}", anchor.size);
            let entry = written[usize::try_from(seq).unwrap() - 1].clone();
            verify(&Proof { entry, path, anchor }).unwrap();
        }
        assert!(inclusion_path(log, anchor.size + 1, anchor.size).await.is_err());
    }
    // Batches of every length continue the same tree.
    let more = log.append_batch((21..=33).map(full).collect()).await.unwrap();
    written.extend(more);
    assert_eq!(log.head().await.unwrap(), head_of(&written));
    assert_eq!(check_chain(log, 7).await.unwrap(), head_of(&written));
}

pub async fn tampering_is_detected<L: TestLog>(log: &L) {
    let mut entries: Vec<NewEntry> = (1..=5).map(full).collect();
    entries[1] = denied(2, Some(rel(0xa0)));
    log.append_batch(entries).await.unwrap();
    let head = log.head().await.unwrap();
    log.record_anchor(Anchor { size: 5, root: head.root, block: 9, tx: B256::repeat_byte(9) })
        .await
        .unwrap();
    for seq in 1..=5 {
        verify(&prove(log, seq).await.unwrap().unwrap()).unwrap();
    }

    // A denial rewritten as an allowed read, directly in the database.
    log.execute("UPDATE audit_log SET decision = 'allow-patient' WHERE seq = 2").await.unwrap();
    let proof = prove(log, 2).await.unwrap().unwrap();
    assert_eq!(proof.entry.entry.decision, Decision::AllowPatient, "the update took");
    assert_eq!(verify(&proof), Err(ProofError::EntryAltered { seq: 2 }));
    // The same with the entry's hash recomputed to match: the path no longer leads to
    // the anchored root.
    let mut forged = proof.clone();
    forged.entry = LoggedEntry::chain(2, forged.entry.prev_hash, forged.entry.entry);
    assert_eq!(verify(&forged), Err(ProofError::RootMismatch { seq: 2, anchor_size: 5 }));

    // Another requester put on entry 4.
    log.execute(
        "UPDATE audit_log SET requester = '0x00000000000000000000000000000000000000ee' \
         WHERE seq = 4",
    )
    .await
    .unwrap();
    let proof = prove(log, 4).await.unwrap().unwrap();
    assert_eq!(proof.entry.entry.requester, Address::with_last_byte(0xee));
    assert_eq!(verify(&proof), Err(ProofError::EntryAltered { seq: 4 }));

    // Untouched entries still prove; the chain check finds the first alteration.
    verify(&prove(log, 3).await.unwrap().unwrap()).unwrap();
    verify(&prove(log, 5).await.unwrap().unwrap()).unwrap();
    let err = check_chain(log, 10).await.unwrap_err();
    assert!(matches!(err, ChainError::Broken { seq: 2 }), "{err}");
}

/// A stored subtree rewritten: the proofs that climb through it fail, the others
/// hold, and the check of the whole log finds it.
pub async fn tampering_with_the_tree_is_detected<L: TestLog>(log: &L) {
    log.append_batch((1..=6).map(full).collect()).await.unwrap();
    let head = log.head().await.unwrap();
    log.record_anchor(Anchor { size: 6, root: head.root, block: 9, tx: B256::repeat_byte(9) })
        .await
        .unwrap();
    check_chain(log, 10).await.unwrap();
    // The subtree of entries 1 and 2 (level 1, the sibling of the subtree of entries 3
    // and 4; leaves are not stored, they come from the entries' hashes).
    log.execute(
        "UPDATE audit_tree SET hash = \
         '0x1111111111111111111111111111111111111111111111111111111111111111' \
         WHERE level = 1 AND idx = 0",
    )
    .await
    .unwrap();
    for seq in [3, 4] {
        let proof = prove(log, seq).await.unwrap().unwrap();
        assert_eq!(verify(&proof), Err(ProofError::RootMismatch { seq, anchor_size: 6 }));
    }
    for seq in [1, 2, 5, 6] {
        verify(&prove(log, seq).await.unwrap().unwrap()).unwrap();
    }
    let err = check_chain(log, 10).await.unwrap_err();
    assert!(matches!(err, ChainError::TreeMismatch { level: 1, index: 0 }), "{err}");
    // A leaf row as earlier versions wrote them is not read: a forged one changes
    // nothing.
    log.execute(
        "INSERT INTO audit_tree (level, idx, hash) VALUES (0, 4, \
         '0x2222222222222222222222222222222222222222222222222222222222222222')",
    )
    .await
    .unwrap();
    verify(&prove(log, 6).await.unwrap().unwrap()).unwrap();
    // Nor is one written: a row already at entry 7's leaf does not stop its append.
    log.execute(
        "INSERT INTO audit_tree (level, idx, hash) VALUES (0, 6, \
         '0x2222222222222222222222222222222222222222222222222222222222222222')",
    )
    .await
    .unwrap();
    assert_eq!(log.append(full(7)).await.unwrap().seq, 7);
}

pub async fn the_writer_flushes_everything_in_order<L: TestLog>(log: &L) {
    let config = WriterConfig {
        capacity: 64,
        max_batch: 7,
        retry_delay: Duration::from_millis(10),
        linger: Duration::from_millis(1),
    };
    let writer = AuditWriter::spawn(Arc::new(log.clone()), config);
    let mut queued = 0;
    for t in 0..150 {
        let entry = denied(t, Some(rel(1)));
        loop {
            match writer.log(entry.clone()) {
                Ok(()) => break,
                // A full queue is the caller's to handle; here, wait for room.
                Err(super::EnqueueError::QueueFull { capacity: 64 }) => {
                    writer.flush().await.unwrap();
                }
                Err(e) => panic!("{e}"),
            }
        }
        queued += 1;
        if t == 100 {
            writer.flush().await.unwrap();
            assert_eq!(log.head().await.unwrap().size, 101, "flushed up to here");
        }
    }
    writer.flush().await.unwrap();
    let read = all(log).await;
    assert_eq!(read.len(), queued);
    let times: Vec<i64> = read.iter().map(|e| e.entry.time).collect();
    assert_eq!(times, (0..150).collect::<Vec<_>>(), "in the order queued");
    check_chain(log, 50).await.unwrap();
    // Entries queued before a shutdown are written too.
    writer.log(denied(150, None)).unwrap();
    writer.shutdown().await;
    assert_eq!(log.head().await.unwrap().size, 151);
}
