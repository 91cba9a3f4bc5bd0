//! The anchorer against the in-process devchain (the real `AccessAnchors` contract)
//! with a SQLite access log.

use alloy::{
    network::EthereumWallet,
    primitives::{Address, B256},
    providers::{Provider, ProviderBuilder},
};
use medrec_chain::anchors::{AnchorClaim, check_anchor};
use medrec_contracts::{AccessAnchors, ContractError};
use medrec_devchain::server;
use medrec_gatekeeper::anchor::{AnchorConfig, AnchorError, AnchorOutcome, Anchorer};
use medrec_store::audit::{
    AccessLog, Action, Decision, NewEntry, root_at, sqlite::SqliteAccessLog,
};
use medrec_testkit::medrec::{Medrec, PROVIDER, STRANGER};
use std::{net::SocketAddr, sync::Arc, time::Duration};

const PERIOD: Duration = Duration::from_secs(3600);

fn log() -> Arc<dyn AccessLog> {
    Arc::new(SqliteAccessLog::open_in_memory().expect("an in-memory SQLite log opens"))
}

async fn append(log: &Arc<dyn AccessLog>, n: u64) {
    for i in 0..n {
        let time = 1_767_225_600_000 + i64::try_from(i).unwrap();
        let entry = NewEntry::new(
            time,
            Address::repeat_byte(0x44),
            Action::FhirRead,
            Decision::AllowViewer,
        );
        log.append(entry).await.expect("appended");
    }
}

/// An anchorer signing as dev account `account` through the in-process transport.
fn anchorer(m: &Medrec, log: &Arc<dyn AccessLog>, account: usize) -> Anchorer<impl Provider> {
    let config = AnchorConfig::new(m.at.anchors, m.address(account), PERIOD);
    Anchorer::new(m.wallet(account), log.clone(), config)
}

/// Transactions sent by `account` so far.
async fn sent(m: &Medrec, account: usize) -> u64 {
    m.reader().get_transaction_count(m.address(account)).await.expect("nonce")
}

/// The `Anchored` events on chain, in order.
async fn anchored_events(m: &Medrec) -> Vec<AccessAnchors::Anchored> {
    let reader = m.reader();
    AccessAnchors::new(m.at.anchors, &reader)
        .Anchored_filter()
        .from_block(0)
        .query()
        .await
        .expect("eth_getLogs")
        .into_iter()
        .map(|(event, _)| event)
        .collect()
}

#[tokio::test]
async fn any_number_of_entries_is_one_transaction_per_round() {
    let m = Medrec::new().await;
    let log = log();
    let a = anchorer(&m, &log, PROVIDER);
    let mut total = 0;
    for (round, n) in [1u64, 40, 3].into_iter().enumerate() {
        append(&log, n).await;
        total += n;
        let AnchorOutcome::Anchored(anchor) = a.anchor_now().await.expect("anchored") else {
            panic!("the log grew: round {round} must anchor")
        };
        let head = log.head().await.unwrap();
        assert_eq!((anchor.size, anchor.root), (total, head.root), "the Merkle root is anchored");
        assert_eq!(root_at(&*log, total).await.unwrap(), head.root);
        assert_eq!(sent(&m, PROVIDER).await, round as u64 + 1, "one transaction for {n} entries");
        assert_eq!(log.anchors().await.unwrap().last(), Some(&anchor), "recorded in the log");
        // What a patient's client checks: this very anchor is on chain.
        let claim = AnchorClaim { size: anchor.size, root: anchor.root, block: anchor.block };
        check_anchor(&m.reader(), m.at.anchors, m.address(PROVIDER), claim)
            .await
            .expect("the recorded anchor is on chain");
        let receipt = m.reader().get_transaction_receipt(anchor.tx).await.unwrap().unwrap();
        assert_eq!(receipt.block_number, Some(anchor.block));
    }
    let sizes: Vec<u64> = anchored_events(&m).await.iter().map(|e| e.size).collect();
    assert_eq!(sizes, [1, 41, 44]);
    assert_eq!(log.anchors().await.unwrap().len(), 3);
    assert_eq!(a.rounds(), 3);
}

#[tokio::test]
async fn no_new_entries_means_no_transaction() {
    let m = Medrec::new().await;
    let log = log();
    let a = anchorer(&m, &log, PROVIDER);
    assert_eq!(a.anchor_now().await.unwrap(), AnchorOutcome::Unchanged { size: 0 }, "empty log");
    assert_eq!(sent(&m, PROVIDER).await, 0);
    append(&log, 5).await;
    assert!(matches!(a.anchor_now().await.unwrap(), AnchorOutcome::Anchored(_)));
    for _ in 0..3 {
        assert_eq!(a.anchor_now().await.unwrap(), AnchorOutcome::Unchanged { size: 5 });
    }
    assert_eq!(sent(&m, PROVIDER).await, 1);
    assert_eq!(log.anchors().await.unwrap().len(), 1);
    // A restarted gatekeeper (a new anchorer over the same log) does not anchor again.
    let restarted = anchorer(&m, &log, PROVIDER);
    assert_eq!(restarted.anchor_now().await.unwrap(), AnchorOutcome::Unchanged { size: 5 });
    assert_eq!(sent(&m, PROVIDER).await, 1);
}

#[tokio::test]
async fn a_chain_that_is_down_records_nothing_and_the_next_round_recovers() {
    let m = Medrec::new().await;
    let handle = server::serve(m.node.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = handle.url();
    let addr: SocketAddr = url.trim_start_matches("http://").parse().expect("host:port");
    let wallet = ProviderBuilder::new()
        .wallet(EthereumWallet::from(m.accounts[PROVIDER].signer()))
        .connect_http(url.parse().unwrap());
    let log = log();
    let config = AnchorConfig::new(m.at.anchors, m.address(PROVIDER), PERIOD);
    let a = Anchorer::new(wallet, log.clone(), config);
    append(&log, 7).await;

    handle.shutdown().await.unwrap();
    for _ in 0..2 {
        let err = a.anchor_now().await.unwrap_err();
        assert!(matches!(err, AnchorError::Chain(_)), "{err:?}");
        assert!(err.to_string().starts_with("the chain node failed"), "{err}");
    }
    assert!(log.anchors().await.unwrap().is_empty(), "nothing anchored, nothing recorded");
    assert_eq!(sent(&m, PROVIDER).await, 0);

    let handle = server::serve(m.node.clone(), addr).await.expect("the same port again");
    append(&log, 2).await;
    let AnchorOutcome::Anchored(anchor) = a.anchor_now().await.expect("recovered") else {
        panic!("the log grew while the chain was down")
    };
    assert_eq!(anchor.size, 9, "the head at recovery, not the one of the failed rounds");
    assert_eq!(log.anchors().await.unwrap(), [anchor]);
    assert_eq!(sent(&m, PROVIDER).await, 1);
    assert_eq!(a.rounds(), 3);
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_account_that_is_no_provider_is_refused_and_nothing_is_recorded() {
    let m = Medrec::new().await;
    let log = log();
    append(&log, 2).await;
    let a = anchorer(&m, &log, STRANGER);
    match a.anchor_now().await.unwrap_err() {
        AnchorError::Refused(ContractError::NotProvider { caller }) => {
            assert_eq!(caller, m.address(STRANGER));
        }
        other => panic!("expected NotProvider, got {other:?}"),
    }
    assert!(log.anchors().await.unwrap().is_empty());
    assert!(anchored_events(&m).await.is_empty());
}

#[tokio::test]
async fn the_periodic_task_anchors_once_per_growth_and_stops_on_shutdown() {
    let m = Medrec::new().await;
    let log = log();
    append(&log, 25).await;
    let config = AnchorConfig::new(m.at.anchors, m.address(PROVIDER), Duration::from_millis(20));
    let a = Arc::new(Anchorer::new(m.wallet(PROVIDER), log.clone(), config));
    let handle = a.clone().spawn();
    // Wait for a few rounds: the first anchors, the others find nothing new.
    wait_for(|| a.rounds() >= 4).await;
    handle.shutdown().await;
    let rounds = a.rounds();
    assert_eq!(sent(&m, PROVIDER).await, 1, "25 entries, {rounds} rounds, one transaction");
    let anchors = log.anchors().await.unwrap();
    assert_eq!(anchors.len(), 1);
    assert_eq!((anchors[0].size, anchors[0].root), (25, log.head().await.unwrap().root));
    // Stopped: no round runs any more, even when the log grows.
    append(&log, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(a.rounds(), rounds);
    assert_eq!(sent(&m, PROVIDER).await, 1);
    assert_ne!(anchors[0].root, B256::ZERO);
}

/// Polls `done` until it holds (a hung task fails the test after a minute).
async fn wait_for(done: impl Fn() -> bool) {
    for _ in 0..6000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the condition did not hold within a minute");
}
