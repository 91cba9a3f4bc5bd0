//! Proof-of-Work sealing with competing miners.

use alloy::{
    consensus::TxEip1559,
    primitives::{Address, TxKind, U256, keccak256},
    sol_types::{SolCall, SolEvent},
};
use medrec_contracts::{Registrar, Relationships};
use medrec_devchain::{
    chain::{Chain, ChainConfig, ChainError, Selection},
    genesis::dev_accounts,
    miner::{MinerConfig, mine},
    node::{Node, SealMode, WorkError},
    pow, server,
    sign::sign_eip1559,
};
use std::time::Duration;

fn pow_node() -> Node {
    let config = ChainConfig {
        pow_initial_difficulty: 2_000,
        pow_target_block_secs: 1,
        ..ChainConfig::default()
    };
    Node::new(Chain::new(config).unwrap(), SealMode::Pow)
}

fn tx(from: usize, nonce: u64, to: Address, input: Vec<u8>) -> Vec<u8> {
    let tx = TxEip1559 {
        chain_id: 31337,
        nonce,
        gas_limit: 300_000,
        max_fee_per_gas: 50_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(to),
        value: U256::ZERO,
        access_list: Default::default(),
        input: input.into(),
    };
    sign_eip1559(&dev_accounts(10)[from].signer(), tx).to_vec()
}

#[test]
fn only_a_valid_solution_seals_and_the_header_proves_it() {
    let node = pow_node();
    let miner = Address::repeat_byte(0xaa);
    let head = node.with(|c| c.latest().header.number);
    assert!(node.mine_now().is_err(), "a PoW chain does not seal by itself");
    let raw = tx(1, 0, Address::repeat_byte(1), vec![]);
    node.submit_raw(&raw).unwrap();
    assert_eq!(node.with(|c| c.latest().header.number), head, "submitting does not seal");

    let work = node.get_work(miner, &Selection::All);
    assert_eq!(work.txs.len(), 1);
    let bad = (0..).find(|n| !pow::meets(work.seal_hash, *n, work.difficulty)).unwrap();
    assert!(matches!(
        node.submit_work(work.seal_hash, bad),
        Err(WorkError::Chain(ChainError::InvalidWork))
    ));
    assert!(matches!(node.submit_work(keccak256("nope"), 0), Err(WorkError::Unknown)));
    let nonce = pow::solve(work.seal_hash, work.difficulty, 0, u64::MAX).unwrap();
    let number = node.submit_work(work.seal_hash, nonce).unwrap();
    assert_eq!(number, head + 1);
    let header = node.with(|c| c.latest().header.clone());
    assert_eq!(header.beneficiary, miner);
    assert_eq!(header.difficulty, work.difficulty);
    assert!(pow::verify_header(&header));
    // A second solution for the same height is stale.
    let again = pow::solve(work.seal_hash, work.difficulty, nonce + 1, u64::MAX).unwrap();
    assert!(node.submit_work(work.seal_hash, again).is_err());
}

#[test]
fn a_miner_chooses_which_pending_transactions_it_mines() {
    let node = pow_node();
    let a = tx(1, 0, Address::repeat_byte(1), vec![]);
    let b = tx(2, 0, Address::repeat_byte(2), vec![]);
    node.submit_raw(&a).unwrap();
    let b_hash = node.submit_raw(&b).unwrap();
    let work = node.get_work(Address::repeat_byte(0xbb), &Selection::Only(vec![b_hash]));
    assert_eq!(work.txs, vec![b_hash]);
    let nonce = pow::solve(work.seal_hash, work.difficulty, 0, u64::MAX).unwrap();
    node.submit_work(work.seal_hash, nonce).unwrap();
    let mined: Vec<_> = node.with(|c| c.latest().txs.iter().map(|t| t.hash).collect());
    assert_eq!(mined, vec![b_hash]);
    assert_eq!(node.with(|c| c.pending_count()), 1, "the other transaction waits");
}

/// Two researchers mine against each other over JSON-RPC; each owns exactly the
/// bounties of the blocks it sealed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_miners_own_the_bounties_of_their_blocks() {
    let node = pow_node();
    let handle = server::serve(node.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let accounts = dev_accounts(10);
    let d = node.with(|c| c.deployment()).unwrap();
    let (provider, patient, delegate) = (&accounts[1], &accounts[2], &accounts[3]);
    // Set up a relationship, then queue pointer updates, each with a bounty.
    // Dev account 0 deployed the contracts: its next nonce follows those deployments.
    let institution_nonce = node.with(|c| c.nonce(accounts[0].address));
    node.submit_raw(&tx(
        0,
        institution_nonce,
        d.registrar,
        Registrar::registerProviderCall {
            identity: keccak256("p"),
            account: provider.address,
            endpoint: "https://gk".into(),
            encryptionKey: keccak256("k"),
        }
        .abi_encode(),
    ))
    .unwrap();
    let miners = [Address::repeat_byte(0x11), Address::repeat_byte(0x22)];
    let run = |coinbase: Address, blocks: u64| {
        let config = MinerConfig {
            rpc_url: handle.url(),
            coinbase,
            blocks: Some(blocks),
            include: None,
            refresh: Duration::from_millis(200),
        };
        async move { mine(&config, |_| {}).await.unwrap() }
    };
    run(miners[0], 1).await;
    // The patient's key creates the relationship, the provider named only encrypted.
    node.submit_raw(&tx(
        2,
        0,
        d.relationships,
        Relationships::createCall {
            delegate: delegate.address,
            queryCommitment: keccak256("q"),
            dataHash: keccak256("d0"),
            identity: vec![0x5a; 36].into(),
        }
        .abi_encode(),
    ))
    .unwrap();
    for i in 0..6u64 {
        node.submit_raw(&tx(
            3,
            i,
            d.relationships,
            Relationships::updatePointerCall {
                account: patient.address,
                pointerId: U256::ZERO,
                dataHash: keccak256(format!("d{}", i + 1)),
                bounty: keccak256(format!("bounty {i}")),
            }
            .abi_encode(),
        ))
        .unwrap();
    }
    let start = node.with(|c| c.latest().header.number);
    // Both mine until 8 more blocks exist between them.
    let (a, b) = tokio::join!(run(miners[0], 4), run(miners[1], 4));
    assert_eq!(a + b, 8);
    let blocks: Vec<_> =
        node.with(|c| (start + 1..=start + 8).map(|n| c.block(n).unwrap()).collect());
    let mut owned = [0usize; 2];
    for block in &blocks {
        assert!(pow::verify_header(&block.header), "block {} proves its work", block.header.number);
        let who = miners
            .iter()
            .position(|m| *m == block.header.beneficiary)
            .expect("sealed by one of the two");
        for receipt in &block.receipts {
            for log in &receipt.logs {
                if let Ok(bounty) = Relationships::BountyPosted::decode_log(log) {
                    assert_eq!(
                        bounty.owner, block.header.beneficiary,
                        "the block's miner owns its bounties"
                    );
                    owned[who] += 1;
                }
            }
        }
    }
    assert_eq!(owned[0] + owned[1], 6, "every update's bounty has an owner");
    handle.shutdown().await.unwrap();
}
