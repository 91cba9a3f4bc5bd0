use alloy::{
    consensus::TxEip1559,
    primitives::{Address, TxKind, U256},
};
use medrec_devchain::{
    chain::{Chain, ChainConfig, ChainError, Selection},
    genesis::dev_accounts,
    sign::sign_eip1559,
};
use std::path::PathBuf;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("medrec-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Sends `n` transfers from dev account 1 and seals each into its own block.
fn transfers(chain: &mut Chain, n: u64) {
    let sender = &dev_accounts(2)[1];
    for _ in 0..n {
        let tx = TxEip1559 {
            chain_id: chain.chain_id(),
            nonce: chain.next_nonce(sender.address),
            gas_limit: 21_000,
            max_fee_per_gas: u128::from(chain.next_base_fee()) * 2,
            max_priority_fee_per_gas: 1,
            to: TxKind::Call(Address::repeat_byte(0x42)),
            value: U256::from(1_000u64),
            access_list: Default::default(),
            input: Default::default(),
        };
        chain.submit(&sign_eip1559(&sender.signer(), tx)).unwrap();
        let t = chain.latest().header.timestamp + 1;
        chain.seal(Address::repeat_byte(7), t, &Selection::All).unwrap();
    }
}

#[test]
fn a_reopened_chain_has_every_block_receipt_and_balance() {
    let dir = temp_dir("reopen");
    let config = ChainConfig::default();
    let (head, hash, balance) = {
        let mut chain = Chain::open(config.clone(), &dir).unwrap();
        assert!(chain.deployment().is_some());
        transfers(&mut chain, 5);
        let head = chain.latest().header.number;
        (head, chain.latest().hash, chain.balance(Address::repeat_byte(0x42)))
    };
    assert_eq!(balance, U256::from(5_000u64));
    let chain = Chain::open(config, &dir).unwrap();
    assert_eq!(chain.latest().header.number, head);
    assert_eq!(chain.latest().hash, hash);
    assert_eq!(chain.balance(Address::repeat_byte(0x42)), balance);
    assert_eq!(chain.nonce(dev_accounts(2)[1].address), 5);
    let last_tx = chain.latest().txs[0].hash;
    let (block, i) = chain.receipt(&last_tx).unwrap();
    assert!(block.receipts[i].success);
    assert_eq!(chain.deployment(), Chain::new(ChainConfig::default()).unwrap().deployment());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_snapshot_plus_the_blocks_after_it_restore_the_same_state() {
    let dir = temp_dir("snapshot");
    let config = ChainConfig::default();
    {
        let mut chain = Chain::open(config.clone(), &dir).unwrap();
        transfers(&mut chain, 3);
        chain.snapshot().unwrap();
        transfers(&mut chain, 4);
    }
    assert!(dir.join("state.snap").exists());
    let mut chain = Chain::open(config, &dir).unwrap();
    assert_eq!(chain.balance(Address::repeat_byte(0x42)), U256::from(7_000u64));
    assert_eq!(chain.nonce(dev_accounts(2)[1].address), 7);
    // The restored chain keeps going, and the contracts' code and storage came back.
    transfers(&mut chain, 1);
    let d = chain.deployment().unwrap();
    assert!(!chain.code(d.registrar).is_empty());
    assert_eq!(
        chain.storage(d.registrar, U256::from(4)),
        U256::from(1),
        "institutionCount (slot 4)"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_data_dir_refuses_another_chain() {
    let dir = temp_dir("mismatch");
    drop(Chain::open(ChainConfig::default(), &dir).unwrap());
    let other = ChainConfig { chain_id: 1337, ..ChainConfig::default() };
    let err = Chain::open(other, &dir).unwrap_err();
    assert!(matches!(err, ChainError::ConfigMismatch { .. }), "{err}");
    assert!(err.to_string().contains("use another directory"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn old_blocks_are_read_back_from_the_data_directory() {
    let dir = temp_dir("old-blocks");
    let mut chain = Chain::open(ChainConfig::default(), &dir).unwrap();
    chain.set_sync_each_block(false);
    // More blocks than are kept decoded in memory.
    transfers(&mut chain, 1_100);
    chain.flush().unwrap();
    let old = chain.block(5).unwrap();
    assert_eq!(old.header.number, 5);
    assert_eq!(chain.block_by_hash(&old.hash).unwrap().header.number, 5);
    let tx = old.txs[0].hash;
    let (block, index) = chain.receipt(&tx).unwrap();
    assert_eq!((block.header.number, index), (5, 0));
    assert!(block.receipts[0].success);
    assert_eq!(chain.block(6).unwrap().header.parent_hash, old.hash);
    let latest = chain.latest().header.number;
    drop(chain);
    let chain = Chain::open(ChainConfig::default(), &dir).unwrap();
    assert_eq!(chain.latest().header.number, latest);
    assert_eq!(chain.block(5).unwrap().hash, old.hash);
    assert!(chain.receipt(&tx).is_some());
    // Logs of old blocks: the deployment's InstitutionAdded in block 1.
    let filter = alloy::rpc::types::Filter::new().address(chain.deployment().unwrap().registrar);
    assert_eq!(chain.logs(&filter, 0, latest).len(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn an_ephemeral_chain_spills_old_blocks_and_leaves_no_file() {
    let before = spill_files();
    let mut chain = Chain::new_spilled(ChainConfig::default()).unwrap();
    transfers(&mut chain, 1_050);
    let old = chain.block(3).unwrap();
    assert_eq!(old.header.number, 3);
    assert!(chain.receipt(&old.txs[0].hash).is_some());
    assert_eq!(chain.balance(Address::repeat_byte(0x42)), U256::from(1_050_000u64));
    chain.snapshot().unwrap();
    assert_eq!(spill_files(), before, "the spill file is unlinked at once");
}

/// Spill files of this process in the temp directory.
fn spill_files() -> usize {
    let prefix = format!("medrec-chain-{}-", std::process::id());
    std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .count()
}
