//! A free-gas chain (`ChainConfig::free_gas`): base fee pinned at 0, unfunded keys
//! transact at price 0, and the guard of zero-price transactions (allowed targets,
//! success against the pending state, per-sender limits).

use alloy::{
    consensus::{SignableTransaction, TxEip1559, TxLegacy},
    network::{EthereumWallet, TxSignerSync},
    primitives::{Address, B256, Bytes, TxKind, U256, keccak256},
    providers::ProviderBuilder,
    signers::local::PrivateKeySigner,
    sol_types::SolCall,
};
use medrec_contracts::{AccessAnchors, ContractError, Registrar, Relationships};
use medrec_devchain::{
    chain::{
        Chain, ChainConfig, DEFAULT_FREE_GAS_BLOCK_GAS, DEFAULT_FREE_GAS_MAX_PENDING, Selection,
        TxError,
    },
    deploy::Deployment,
    genesis::{DevAccount, dev_accounts},
    node::{Node, SealMode},
    server,
    sign::sign_eip1559,
};
use serde_json::{Value, json};

fn free() -> ChainConfig {
    ChainConfig { free_gas: true, ..ChainConfig::default() }
}

/// A key that has never held anything.
fn fresh(name: &str) -> PrivateKeySigner {
    PrivateKeySigner::from_bytes(&keccak256(name)).unwrap()
}

fn institution() -> DevAccount {
    dev_accounts(1).remove(0)
}

/// A zero-price EIP-1559 transaction (max fee 0, tip 0).
fn zero_price(
    chain: &Chain,
    signer: &PrivateKeySigner,
    to: TxKind,
    input: Vec<u8>,
    gas: u64,
) -> Bytes {
    let tx = TxEip1559 {
        chain_id: chain.chain_id(),
        nonce: chain.next_nonce(signer.address()),
        gas_limit: gas,
        max_fee_per_gas: 0,
        max_priority_fee_per_gas: 0,
        to,
        value: U256::ZERO,
        access_list: Default::default(),
        input: input.into(),
    };
    sign_eip1559(signer, tx)
}

fn seal(chain: &mut Chain) -> u64 {
    let t = chain.latest().header.timestamp + 1;
    chain.seal(Address::repeat_byte(0xc0), t, &Selection::All).unwrap()
}

fn mined_ok(chain: &Chain, hash: &B256) -> bool {
    let (block, i) = chain.receipt(hash).expect("mined");
    block.receipts[i].success
}

/// The institution registers `provider` and `patient` (at zero price itself).
fn register(chain: &mut Chain, d: Deployment, provider: Address, patient: Address) {
    let inst = institution().signer();
    let calls = [
        Registrar::registerProviderCall {
            identity: keccak256("provider"),
            account: provider,
            endpoint: "https://gatekeeper.example".into(),
            encryptionKey: keccak256("key"),
        }
        .abi_encode(),
        Registrar::registerPatientCall { identity: keccak256("patient"), account: patient }
            .abi_encode(),
    ];
    for call in calls {
        let raw = zero_price(chain, &inst, TxKind::Call(d.registrar), call, 300_000);
        let hash = chain.submit(&raw).unwrap();
        seal(chain);
        assert!(mined_ok(chain, &hash));
    }
}

/// A provider's address encrypted for the patient: 36 random-looking bytes.
fn identity() -> Bytes {
    keccak256("identity").iter().chain(&keccak256("tag")[..4]).copied().collect()
}

/// The patient's key creates a relationship with `delegate` (sent by the patient).
fn create_call(delegate: Address) -> Vec<u8> {
    Relationships::createCall {
        delegate,
        queryCommitment: keccak256("salted Observation"),
        dataHash: keccak256("v1"),
        identity: identity(),
    }
    .abi_encode()
}

/// The delegate adds a pointer to `account`'s relationship.
fn add_pointer_call(account: Address) -> Vec<u8> {
    Relationships::addPointerCall {
        account,
        queryCommitment: keccak256("salted MedicationRequest"),
        dataHash: keccak256("meds v1"),
        bounty: keccak256("count(MedicationRequest)"),
    }
    .abi_encode()
}

#[test]
fn unfunded_keys_run_a_relationship_at_zero_price() {
    let mut chain = Chain::new(free()).unwrap();
    assert_eq!(chain.block(0).unwrap().header.base_fee_per_gas, Some(0));
    let d = chain.deployment().expect("deployed at zero price by the founding institution");
    for n in 1..=3 {
        let block = chain.block(n).unwrap();
        assert_eq!(block.receipts[0].effective_gas_price, 0, "deployment {n} paid nothing");
    }
    let (provider, patient) = (fresh("provider"), fresh("patient"));
    let delegate_key = fresh("delegate");
    let delegate = delegate_key.address();
    register(&mut chain, d, provider.address(), patient.address());

    let steps = [
        (&patient, d.relationships, create_call(delegate)),
        (&delegate_key, d.relationships, add_pointer_call(patient.address())),
        (&patient, d.relationships, Relationships::acceptCall { delegate }.abi_encode()),
        (
            &provider,
            d.anchors,
            AccessAnchors::anchorCall { head: keccak256("log"), size: 1 }.abi_encode(),
        ),
    ];
    for (signer, to, input) in steps {
        let raw = zero_price(&chain, signer, TxKind::Call(to), input, 200_000);
        let hash = chain.submit(&raw).unwrap();
        seal(&mut chain);
        let (block, i) = chain.receipt(&hash).unwrap();
        assert!(block.receipts[i].success);
        assert!(block.receipts[i].gas_used > 21_000, "gas is still counted");
        assert_eq!(block.receipts[i].effective_gas_price, 0);
    }
    for who in [provider.address(), patient.address(), delegate] {
        assert_eq!(chain.balance(who), U256::ZERO, "nobody was funded");
    }
    assert_eq!(chain.nonce(patient.address()), 2);
    assert_eq!(chain.nonce(delegate), 1);
    assert_eq!(chain.nonce(provider.address()), 1, "the provider only anchored");
}

#[test]
fn the_base_fee_stays_zero_after_full_blocks() {
    let config = ChainConfig { free_gas_block_gas: 30_000_000, ..free() };
    let mut chain = Chain::new(config).unwrap();
    let inst = institution().signer();
    let burner = dev_accounts(2)[1].signer();
    // Init code that loops until its gas runs out: JUMPDEST PUSH1 0 JUMP.
    let burn = vec![0x5b, 0x60, 0x00, 0x56];
    for _ in 0..3 {
        // At zero price it would fail: refused, since zero-price must succeed.
        let raw = zero_price(&chain, &inst, TxKind::Create, burn.clone(), 29_000_000);
        assert!(matches!(chain.submit(&raw), Err(TxError::FreeFails { .. })));
        // A funded account pays 1 wei per gas to burn two thirds of a block.
        let tx = TxEip1559 {
            chain_id: chain.chain_id(),
            nonce: chain.next_nonce(burner.address()),
            gas_limit: 20_000_000,
            max_fee_per_gas: 1,
            max_priority_fee_per_gas: 1,
            to: TxKind::Create,
            value: U256::ZERO,
            access_list: Default::default(),
            input: burn.clone().into(),
        };
        chain.submit(&sign_eip1559(&burner, tx)).unwrap();
        let n = seal(&mut chain);
        let header = chain.block(n).unwrap().header.clone();
        assert_eq!(header.gas_used, 20_000_000, "block {n} is above its target");
        assert_eq!(header.base_fee_per_gas, Some(0), "block {n}");
        assert_eq!(chain.next_base_fee(), 0);
    }
}

#[test]
fn zero_price_value_and_foreign_targets_are_refused() {
    let mut chain = Chain::new(free()).unwrap();
    let inst = institution().signer();
    let other = fresh("someone");
    // Value at zero price, even from a funded account.
    let d = chain.deployment().unwrap();
    let tx = TxEip1559 {
        chain_id: chain.chain_id(),
        nonce: chain.next_nonce(inst.address()),
        gas_limit: 21_000,
        max_fee_per_gas: 0,
        max_priority_fee_per_gas: 0,
        to: TxKind::Call(other.address()),
        value: U256::from(1u64),
        access_list: Default::default(),
        input: Bytes::new(),
    };
    let err = chain.submit(&sign_eip1559(&inst, tx)).unwrap_err();
    assert_eq!(err, TxError::FreeValueTransfer { value: U256::from(1u64) });
    assert!(err.to_string().contains("cannot send value"), "{err}");
    // A call to an address that is not an allowed contract.
    let raw = zero_price(&chain, &other, TxKind::Call(Address::repeat_byte(0x42)), vec![], 50_000);
    let err = chain.submit(&raw).unwrap_err();
    assert_eq!(err, TxError::FreeTargetNotAllowed { to: Address::repeat_byte(0x42) });
    assert!(err.to_string().contains("may only call the MedRec contracts"), "{err}");
    // A contract creation by anyone but the founding institution.
    let raw = zero_price(&chain, &other, TxKind::Create, vec![0x00], 100_000);
    assert_eq!(
        chain.submit(&raw).unwrap_err(),
        TxError::FreeCreateNotAllowed { sender: other.address() }
    );
    // A legacy transaction at gas price 0 is zero-price too.
    let mut legacy = TxLegacy {
        chain_id: Some(chain.chain_id()),
        nonce: 0,
        gas_price: 0,
        gas_limit: 50_000,
        to: TxKind::Call(Address::repeat_byte(0x42)),
        value: U256::ZERO,
        input: Bytes::new(),
    };
    let sig = other.sign_transaction_sync(&mut legacy).unwrap();
    let raw = medrec_devchain::chain::encode_raw(&legacy.into_signed(sig).into());
    assert!(matches!(chain.submit(&raw), Err(TxError::FreeTargetNotAllowed { .. })));
    assert_eq!(chain.pending_count(), 0);
    // The allowlist in the config admits more targets and deployers.
    let config = ChainConfig {
        free_gas_targets: vec![d.registrar, Address::repeat_byte(0x42)],
        free_gas_deployers: vec![other.address()],
        ..free()
    };
    let mut chain = Chain::new(config).unwrap();
    let raw = zero_price(&chain, &other, TxKind::Call(Address::repeat_byte(0x42)), vec![], 50_000);
    let to_allowed = chain.submit(&raw).unwrap();
    seal(&mut chain);
    assert!(mined_ok(&chain, &to_allowed));
    // Init code returning empty runtime code.
    let raw = zero_price(&chain, &other, TxKind::Create, vec![0x00], 100_000);
    let created = chain.submit(&raw).unwrap();
    seal(&mut chain);
    assert!(mined_ok(&chain, &created));
}

#[tokio::test]
async fn a_reverting_zero_price_call_is_refused_with_its_revert_data() {
    let node = Node::new(Chain::new(free()).unwrap(), SealMode::Instant);
    let d = node.with(|c| c.deployment()).unwrap();
    let stranger = fresh("stranger");
    // A creation whose encrypted identity is one byte short.
    let short = Bytes::from(vec![7u8; 35]);
    let call = Relationships::createCall {
        delegate: Address::repeat_byte(2),
        queryCommitment: keccak256("q"),
        dataHash: keccak256("h"),
        identity: short.clone(),
    };
    let raw = node.with(|c| {
        zero_price(c, &stranger, TxKind::Call(d.relationships), call.abi_encode(), 200_000)
    });
    // In the chain: a typed refusal carrying the contract's error.
    let err = node.submit_raw(&raw).unwrap_err();
    let TxError::FreeReverted { data } = &err else { panic!("{err}") };
    assert_eq!(
        ContractError::decode(data),
        ContractError::BadCiphertext { length: U256::from(35) }
    );
    // Over JSON-RPC: code 3, "execution reverted", the data.
    let handle = server::serve(node.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let reply = rpc(&handle.url(), "eth_sendRawTransaction", json!([raw])).await;
    assert_eq!(reply["error"]["code"], 3, "{reply}");
    assert!(reply["error"]["message"].as_str().unwrap().starts_with("execution reverted"));
    assert_eq!(reply["error"]["data"], json!(data));
    // Through alloy with a fixed gas limit (no estimate first): the client's decoding
    // of refusals (`as_revert_data`) reads the contract's error.
    let p = ProviderBuilder::new()
        .wallet(EthereumWallet::from(stranger.clone()))
        .connect_http(handle.url().parse().unwrap());
    let err = Relationships::new(d.relationships, &p)
        .create(Address::repeat_byte(2), keccak256("q"), keccak256("h"), short)
        .gas(200_000)
        .max_fee_per_gas(0)
        .max_priority_fee_per_gas(0)
        .send()
        .await
        .unwrap_err();
    let data = err.as_revert_data().expect("revert data in the error");
    assert_eq!(
        ContractError::decode(&data),
        ContractError::BadCiphertext { length: U256::from(35) }
    );
    assert_eq!(node.with(Chain::pending_count), 0);
    assert_eq!(node.with(|c| c.latest().header.number), 3, "nothing was mined");
    handle.shutdown().await.unwrap();
}

#[test]
fn the_pending_state_counts_transactions_not_yet_mined() {
    // The delegate adds a pointer to a relationship whose creation by the patient is
    // still pending: admitted, since it succeeds after the creation; without it, it
    // would revert.
    let mut chain = Chain::new(free()).unwrap();
    let d = chain.deployment().unwrap();
    let (provider, patient) = (fresh("provider"), fresh("patient"));
    let delegate = fresh("delegate");
    register(&mut chain, d, provider.address(), patient.address());
    let add = add_pointer_call(patient.address());
    let early = zero_price(&chain, &delegate, TxKind::Call(d.relationships), add, 150_000);
    let err = chain.submit(&early).unwrap_err();
    let TxError::FreeReverted { data } = &err else { panic!("{err}") };
    assert_eq!(
        ContractError::decode(data),
        ContractError::UnknownRelationship {
            rel_id: medrec_primitives::RelationshipId::derive(
                patient.address(),
                delegate.address()
            )
        }
    );
    let create = zero_price(
        &chain,
        &patient,
        TxKind::Call(d.relationships),
        create_call(delegate.address()),
        200_000,
    );
    let created = chain.submit(&create).unwrap();
    let added = chain.submit(&early).unwrap();
    seal(&mut chain);
    assert!(mined_ok(&chain, &created));
    assert!(mined_ok(&chain, &added));
}

#[test]
fn a_sender_has_few_zero_price_transactions_pending_and_little_gas_per_block() {
    let mut chain = Chain::new(free()).unwrap();
    let d = chain.deployment().unwrap();
    let provider = fresh("provider");
    register(&mut chain, d, provider.address(), fresh("patient").address());
    assert_eq!(DEFAULT_FREE_GAS_MAX_PENDING, 16);
    assert_eq!(DEFAULT_FREE_GAS_BLOCK_GAS, 3_000_000);
    // Anchors of a growing log: each succeeds after the ones before it.
    let anchor = |size: u64| {
        AccessAnchors::anchorCall { head: keccak256(size.to_be_bytes()), size }.abi_encode()
    };
    let gas = 400_000; // 7 of these fit in a sender's zero-price gas per block
    let mut hashes = Vec::new();
    for size in 1..=16 {
        let raw = zero_price(&chain, &provider, TxKind::Call(d.anchors), anchor(size), gas);
        hashes.push(chain.submit(&raw).unwrap());
    }
    let raw = zero_price(&chain, &provider, TxKind::Call(d.anchors), anchor(17), gas);
    let err = chain.submit(&raw).unwrap_err();
    assert_eq!(err, TxError::FreePendingLimit { sender: provider.address(), max: 16 });
    assert!(err.to_string().contains("wait for them"), "{err}");
    // A gas limit above the per-block allowance could never be mined.
    let other = fresh("other");
    let raw = zero_price(&chain, &other, TxKind::Call(d.anchors), anchor(1), 3_000_001);
    assert_eq!(
        chain.submit(&raw).unwrap_err(),
        TxError::FreeGasAboveAllowance { have: 3_000_001, allowance: 3_000_000 }
    );
    // Blocks include at most 3,000,000 gas (by limit) of the provider's zero-price ones.
    let n = seal(&mut chain);
    assert_eq!(chain.block(n).unwrap().txs.len(), 7);
    assert_eq!(chain.pending_count(), 9);
    // Replacing a pending zero-price transaction with another is not paying more.
    let replace = {
        let tx = TxEip1559 {
            chain_id: chain.chain_id(),
            nonce: chain.nonce(provider.address()),
            gas_limit: gas + 1,
            max_fee_per_gas: 0,
            max_priority_fee_per_gas: 0,
            to: TxKind::Call(d.anchors),
            value: U256::ZERO,
            access_list: Default::default(),
            input: anchor(8).into(),
        };
        sign_eip1559(&provider, tx)
    };
    assert_eq!(chain.submit(&replace).unwrap_err(), TxError::ReplacementUnderpriced);
    let n = seal(&mut chain);
    assert_eq!(chain.block(n).unwrap().txs.len(), 7);
    // Room again: a new one is admitted (its predecessors are pending or mined).
    let raw = zero_price(&chain, &provider, TxKind::Call(d.anchors), anchor(17), gas);
    hashes.push(chain.submit(&raw).unwrap());
    seal(&mut chain);
    assert_eq!(chain.pending_count(), 0);
    assert!(hashes.iter().all(|h| mined_ok(&chain, h)), "each anchor succeeded");
}

#[test]
fn priced_transactions_work_as_before() {
    let mut chain = Chain::new(free()).unwrap();
    let sender = &dev_accounts(2)[1];
    // A transfer of value to any address, with a tip: not zero-price, so no guard.
    let tx = TxEip1559 {
        chain_id: chain.chain_id(),
        nonce: 0,
        gas_limit: 21_000,
        max_fee_per_gas: 2,
        max_priority_fee_per_gas: 2,
        to: TxKind::Call(Address::repeat_byte(0x42)),
        value: U256::from(1_000u64),
        access_list: Default::default(),
        input: Bytes::new(),
    };
    let hash = chain.submit(&sign_eip1559(&sender.signer(), tx)).unwrap();
    seal(&mut chain);
    let (block, i) = chain.receipt(&hash).unwrap();
    assert!(block.receipts[i].success);
    assert_eq!(block.receipts[i].effective_gas_price, 2);
    assert_eq!(chain.balance(Address::repeat_byte(0x42)), U256::from(1_000u64));
    // An unfunded key that offers a price cannot pay it, and is told that gas is free.
    let broke = fresh("broke");
    let tx = TxEip1559 {
        chain_id: chain.chain_id(),
        nonce: 0,
        gas_limit: 100_000,
        max_fee_per_gas: 1,
        max_priority_fee_per_gas: 1,
        to: TxKind::Call(chain.deployment().unwrap().relationships),
        value: U256::ZERO,
        access_list: Default::default(),
        input: Bytes::new(),
    };
    let err = chain.submit(&sign_eip1559(&broke, tx)).unwrap_err();
    assert!(matches!(err, TxError::InsufficientFundsFreeGas { .. }), "{err}");
    assert!(err.to_string().contains("insufficient funds"), "{err}");
    assert!(err.to_string().contains("maxFeePerGas 0"), "{err}");
    // Without free gas nothing changes: the base fee is 1 gwei and a zero fee cap is
    // below it.
    let mut priced = Chain::new(ChainConfig::default()).unwrap();
    assert!(priced.next_base_fee() > 0);
    let d = priced.deployment().unwrap();
    let raw = zero_price(&priced, &broke, TxKind::Call(d.relationships), vec![], 100_000);
    assert!(matches!(priced.submit(&raw), Err(TxError::FeeCapTooLow { .. })));
}

#[test]
fn data_directories_remember_whether_gas_is_free() {
    let base = std::env::temp_dir().join(format!("medrec-free-gas-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (plain, freed) = (base.join("plain"), base.join("free"));
    // A directory from before free gas existed: chain.json without the free_gas fields.
    drop(Chain::open(ChainConfig::default(), &plain).unwrap());
    let meta = plain.join("chain.json");
    let mut stored: Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    let fields = stored["config"].as_object_mut().unwrap();
    assert_eq!(fields.remove("free_gas"), Some(json!(false)));
    fields.retain(|k, _| !k.starts_with("free_gas"));
    std::fs::write(&meta, serde_json::to_vec(&stored).unwrap()).unwrap();
    let stored = Chain::stored_config(&plain).unwrap().unwrap();
    assert_eq!(stored, ChainConfig::default(), "old settings read as before");
    let chain = Chain::open(ChainConfig::default(), &plain).unwrap();
    assert!(chain.next_base_fee() > 0);
    assert!(!chain.config().free_gas);
    drop(chain);
    assert!(Chain::open(free(), &plain).is_err(), "gas pricing of a chain does not change");

    let mut chain = Chain::open(free(), &freed).unwrap();
    let d = chain.deployment().unwrap();
    let provider = fresh("provider");
    register(&mut chain, d, provider.address(), fresh("patient").address());
    let head = chain.latest().hash;
    drop(chain);
    let stored = Chain::stored_config(&freed).unwrap().unwrap();
    assert!(stored.free_gas);
    let mut chain = Chain::open(stored, &freed).unwrap();
    assert_eq!(chain.latest().hash, head);
    assert_eq!(chain.next_base_fee(), 0);
    let anchor = AccessAnchors::anchorCall { head: keccak256("x"), size: 1 }.abi_encode();
    let raw = zero_price(&chain, &provider, TxKind::Call(d.anchors), anchor, 200_000);
    let hash = chain.submit(&raw).unwrap();
    seal(&mut chain);
    assert!(mined_ok(&chain, &hash));
    drop(chain);
    assert!(Chain::open(ChainConfig::default(), &freed).is_err());
    std::fs::remove_dir_all(&base).unwrap();
}

async fn rpc(url: &str, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    alloy::transports::http::reqwest::Client::new()
        .post(url)
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn json_rpc_over_http_quotes_no_price() {
    let node = Node::new(Chain::new(free()).unwrap(), SealMode::Instant);
    let handle = server::serve(node.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = handle.url();
    assert_eq!(rpc(&url, "eth_gasPrice", json!([])).await["result"], "0x0");
    assert_eq!(rpc(&url, "eth_maxPriorityFeePerGas", json!([])).await["result"], "0x0");
    let history = rpc(&url, "eth_feeHistory", json!(["0x4", "latest", [20.0, 80.0]])).await;
    let r = &history["result"];
    assert_eq!(r["baseFeePerGas"], json!(["0x0", "0x0", "0x0", "0x0", "0x0"]), "{history}");
    assert_eq!(r["reward"], json!(vec![vec!["0x0", "0x0"]; 4]), "{history}");
    let block = rpc(&url, "eth_getBlockByNumber", json!(["latest", false])).await;
    assert_eq!(block["result"]["baseFeePerGas"], "0x0");
    // The same on a priced chain is not zero.
    let priced = Node::new(Chain::new(ChainConfig::default()).unwrap(), SealMode::Instant);
    let other = server::serve(priced, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    assert_ne!(rpc(&other.url(), "eth_gasPrice", json!([])).await["result"], "0x0");
    other.shutdown().await.unwrap();
    handle.shutdown().await.unwrap();
}

#[tokio::test]
async fn alloys_fillers_send_from_an_unfunded_key_once_told_the_price_is_zero() {
    let node = Node::new(Chain::new(free()).unwrap(), SealMode::Instant);
    let d = node.with(|c| c.deployment()).unwrap();
    let inst = ProviderBuilder::new()
        .wallet(EthereumWallet::from(institution().signer()))
        .connect_client(node.rpc_client());
    let (provider, patient) = (fresh("provider"), fresh("patient"));
    // The funded institution with the default fillers: they suggest a tip of 1 wei
    // (alloy's floor), a priced transaction that it pays.
    let receipt = Registrar::new(d.registrar, &inst)
        .registerProvider(keccak256("p"), provider.address(), "https://p".into(), keccak256("k"))
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status());
    assert_eq!(receipt.effective_gas_price, 1);
    Registrar::new(d.registrar, &inst)
        .registerPatient(keccak256("pt"), patient.address())
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();

    // An unfunded key with the same default fillers (what crates/client's
    // `Chain::sender` builds): the 1-wei tip is a price it cannot pay.
    let p = ProviderBuilder::new()
        .wallet(EthereumWallet::from(patient.clone()))
        .connect_client(node.rpc_client());
    let rel = Relationships::new(d.relationships, &p);
    let delegate = fresh("delegate").address();
    let create = rel.create(delegate, keccak256("Observation"), keccak256("v1"), identity());
    let err = create.send().await.unwrap_err();
    assert!(err.to_string().contains("insufficient funds"), "{err}");
    assert!(err.to_string().contains("gas is free on this chain"), "{err}");
    // Told the price (max fee 0, or a legacy gas price 0), the same fillers estimate
    // the gas and the nonce, and the transaction is mined at price 0. (A new provider:
    // alloy's cached nonce manager counted the refused transaction's nonce as used.)
    let p = ProviderBuilder::new()
        .wallet(EthereumWallet::from(patient.clone()))
        .connect_client(node.rpc_client());
    let rel = Relationships::new(d.relationships, &p);
    let create = rel.create(delegate, keccak256("Observation"), keccak256("v1"), identity());
    let receipt = create
        .max_fee_per_gas(0)
        .max_priority_fee_per_gas(0)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status());
    assert_eq!(receipt.effective_gas_price, 0);
    let p = ProviderBuilder::new()
        .wallet(EthereumWallet::from(provider.clone()))
        .connect_client(node.rpc_client());
    let anchors = AccessAnchors::new(d.anchors, &p);
    let anchor = anchors.anchor(keccak256("log"), 1).gas_price(0);
    let receipt = anchor.send().await.unwrap().get_receipt().await.unwrap();
    assert!(receipt.status());
    assert_eq!(receipt.effective_gas_price, 0);
    // Or a provider whose gas filler estimates zero fees: no per-call setting.
    let mut zero = alloy::providers::fillers::GasFiller::default();
    zero.estimator = alloy::providers::utils::Eip1559Estimator::new(|_, _| {
        alloy::eips::eip1559::Eip1559Estimation { max_fee_per_gas: 0, max_priority_fee_per_gas: 0 }
    });
    let p = ProviderBuilder::new()
        .disable_recommended_fillers()
        .filler(zero)
        .with_simple_nonce_management()
        .fetch_chain_id()
        .wallet(EthereumWallet::from(patient.clone()))
        .connect_client(node.rpc_client());
    let receipt = Relationships::new(d.relationships, &p)
        .setResearchConsent(delegate, true)
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status());
    assert_eq!(receipt.effective_gas_price, 0);
    assert_eq!(node.with(|c| c.balance(patient.address())), U256::ZERO);
}
