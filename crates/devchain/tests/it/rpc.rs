//! Bad input over JSON-RPC: every refusal is a JSON-RPC error with the standard code
//! and a clear message, and the node keeps serving.

use alloy::{
    consensus::{TxEip1559, TxLegacy},
    network::TxSignerSync,
    primitives::{Address, TxKind, U256},
    transports::http::reqwest,
};
use medrec_devchain::{
    chain::{Chain, ChainConfig},
    genesis::dev_accounts,
    node::{Node, SealMode},
    server::{self, MAX_BODY, ServerHandle},
    sign::sign_eip1559,
};
use serde_json::{Value, json};
use std::time::Duration;

async fn start(seal: SealMode) -> (Node, ServerHandle) {
    let node = Node::new(Chain::new(ChainConfig::default()).unwrap(), seal);
    if let SealMode::Interval(every) = seal {
        tokio::spawn(node.clone().run_interval_sealer(every));
    }
    let handle = server::serve(node.clone(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    (node, handle)
}

async fn post(url: &str, body: impl Into<reqwest::Body>) -> (u16, Option<Value>) {
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (status, (!text.is_empty()).then(|| serde_json::from_str(&text).unwrap()))
}

async fn call(url: &str, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
    let (status, v) = post(url, body.to_string()).await;
    assert_eq!(status, 200);
    let v = v.unwrap();
    assert_eq!(v["id"], 7);
    v
}

fn error_of(v: &Value) -> (i64, String) {
    let e = &v["error"];
    assert!(v.get("result").is_none(), "expected an error, got {v}");
    (e["code"].as_i64().unwrap(), e["message"].as_str().unwrap().to_owned())
}

fn transfer(nonce: u64, chain_id: u64) -> TxEip1559 {
    TxEip1559 {
        chain_id,
        nonce,
        gas_limit: 21_000,
        max_fee_per_gas: 10_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(Address::repeat_byte(9)),
        value: U256::from(1u64),
        access_list: Default::default(),
        input: Default::default(),
    }
}

#[tokio::test]
async fn malformed_requests_get_standard_errors_and_the_node_keeps_serving() {
    let (_node, h) = start(SealMode::Instant).await;
    let url = h.url();
    let (status, v) = post(&url, "{not json").await;
    assert_eq!(status, 200);
    assert_eq!(error_of(&v.unwrap()).0, -32700);
    let (_, v) = post(&url, "[]").await;
    assert_eq!(error_of(&v.unwrap()).0, -32600);
    let (_, v) = post(&url, "42").await;
    assert_eq!(error_of(&v.unwrap()).0, -32600);
    let (_, v) = post(&url, r#"{"jsonrpc":"1.0","id":1,"method":"eth_chainId"}"#).await;
    assert_eq!(error_of(&v.unwrap()).0, -32600);
    let (code, msg) = error_of(&call(&url, "eth_noSuchMethod", json!([])).await);
    assert_eq!(code, -32601);
    assert!(msg.contains("eth_noSuchMethod"), "{msg}");
    let (code, msg) = error_of(&call(&url, "eth_getBalance", json!(["0x1234"])).await);
    assert_eq!(code, -32602);
    assert!(msg.contains("address"), "{msg}");
    let (code, _) = error_of(&call(&url, "eth_getBalance", json!([])).await);
    assert_eq!(code, -32602);
    let (code, _) = error_of(&call(&url, "eth_getBlockByNumber", json!({"not": "an array"})).await);
    assert_eq!(code, -32602);
    // Oversized body: refused with a JSON-RPC error before it is parsed.
    let (status, v) = post(&url, vec![b' '; MAX_BODY + 1]).await;
    assert_eq!(status, 413);
    let (code, msg) = error_of(&v.unwrap());
    assert_eq!(code, -32600);
    assert!(msg.contains("too large"), "{msg}");
    // A notification gets no answer; a batch answers each request in order.
    let (status, v) = post(&url, r#"{"jsonrpc":"2.0","method":"eth_chainId"}"#).await;
    assert_eq!((status, v), (204, None));
    let batch = r#"[{"jsonrpc":"2.0","id":1,"method":"eth_chainId"},{"jsonrpc":"2.0","id":2,"method":"nope"},{"jsonrpc":"2.0","method":"eth_chainId"}]"#;
    let (_, v) = post(&url, batch).await;
    let v = v.unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    assert_eq!(v[0]["result"], "0x7a69");
    assert_eq!(v[1]["error"]["code"], -32601);
    // Still serving.
    assert_eq!(call(&url, "eth_blockNumber", json!([])).await["result"], "0x3");
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_transactions_are_refused_with_the_reason() {
    let (_node, h) = start(SealMode::Instant).await;
    let url = h.url();
    let account = &dev_accounts(2)[1];
    let send = async |raw: &[u8]| {
        call(
            &url,
            "eth_sendRawTransaction",
            json!([format!("0x{}", alloy::primitives::hex::encode(raw))]),
        )
        .await
    };

    let (code, msg) = error_of(&send(b"\x02garbage").await);
    assert_eq!(code, -32602);
    assert!(msg.contains("decode"), "{msg}");

    let (code, msg) = error_of(&send(&sign_eip1559(&account.signer(), transfer(0, 1))).await);
    assert_eq!(code, -32000);
    assert_eq!(msg, "invalid chain id for signer: have 1 want 31337");

    // A valid signature over other bytes recovers to another address (with no funds).
    let mut raw = sign_eip1559(&account.signer(), transfer(0, 31337)).to_vec();
    let last = raw.len() - 40;
    raw[last] ^= 1;
    let (code, msg) = error_of(&send(&raw).await);
    assert_eq!(code, -32000);
    assert!(msg.contains("insufficient funds") || msg.contains("invalid sender"), "{msg}");

    // Legacy without EIP-155 replay protection.
    let mut legacy = TxLegacy {
        chain_id: None,
        nonce: 0,
        gas_price: 10_000_000_000,
        gas_limit: 21_000,
        to: TxKind::Call(Address::repeat_byte(9)),
        value: U256::from(1u64),
        input: Default::default(),
    };
    let sig = account.signer().sign_transaction_sync(&mut legacy).unwrap();
    let raw =
        alloy::eips::eip2718::Encodable2718::encoded_2718(&alloy::consensus::TxEnvelope::from(
            alloy::consensus::SignableTransaction::into_signed(legacy, sig),
        ));
    let (_, msg) = error_of(&send(&raw).await);
    assert!(msg.contains("replay-protected"), "{msg}");

    // Accepted once; the same bytes again are a replay.
    let raw = sign_eip1559(&account.signer(), transfer(0, 31337));
    assert!(send(&raw).await["result"].is_string());
    let (_, msg) = error_of(&send(&raw).await);
    assert_eq!(msg, "already known");
    let mut other = transfer(0, 31337);
    other.value = U256::from(2u64);
    let (_, msg) = error_of(&send(&sign_eip1559(&account.signer(), other)).await);
    assert_eq!(msg, "nonce too low: next nonce 1, tx nonce 0");

    let mut low = transfer(1, 31337);
    low.gas_limit = 20_000;
    let (_, msg) = error_of(&send(&sign_eip1559(&account.signer(), low)).await);
    assert_eq!(msg, "intrinsic gas too low: have 20000, want 21000");
    let mut cheap = transfer(1, 31337);
    cheap.max_fee_per_gas = 1;
    cheap.max_priority_fee_per_gas = 1;
    let (_, msg) = error_of(&send(&sign_eip1559(&account.signer(), cheap)).await);
    assert!(msg.starts_with("max fee per gas less than block base fee"), "{msg}");
    let mut rich = transfer(1, 31337);
    rich.value = U256::MAX / U256::from(2u64);
    let (_, msg) = error_of(&send(&sign_eip1559(&account.signer(), rich)).await);
    assert!(msg.starts_with("insufficient funds for gas * price + value"), "{msg}");

    // A nonce gap waits in the pool, and is mined once the gap is filled.
    let gap = send(&sign_eip1559(&account.signer(), transfer(2, 31337))).await;
    let gap_hash = gap["result"].as_str().unwrap().to_owned();
    assert_eq!(
        call(&url, "eth_getTransactionReceipt", json!([gap_hash])).await["result"],
        Value::Null
    );
    let pending = call(&url, "eth_getTransactionByHash", json!([gap_hash])).await;
    assert_eq!(pending["result"]["blockNumber"], Value::Null);
    send(&sign_eip1559(&account.signer(), transfer(1, 31337))).await;
    let receipt = call(&url, "eth_getTransactionReceipt", json!([gap_hash])).await;
    assert_eq!(receipt["result"]["status"], "0x1");
    let (_, msg) = error_of(&send(&sign_eip1559(&account.signer(), transfer(500, 31337))).await);
    assert!(msg.starts_with("nonce too high"), "{msg}");

    assert_eq!(
        call(&url, "eth_getTransactionCount", json!([account.address, "latest"])).await["result"],
        "0x3"
    );
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn calls_report_revert_data_and_old_state_is_refused() {
    let (node, h) = start(SealMode::Instant).await;
    let url = h.url();
    let registrar = node.with(|c| c.deployment()).unwrap().registrar;
    // registerPatient from a stranger: custom error NotInstitution(stranger).
    let data =
        alloy::sol_types::SolCall::abi_encode(&medrec_contracts::Registrar::registerPatientCall {
            identity: [1u8; 32].into(),
            account: Address::repeat_byte(5),
        });
    let tx = json!({"from": Address::repeat_byte(5), "to": registrar, "data": format!("0x{}", alloy::primitives::hex::encode(&data))});
    for method in ["eth_call", "eth_estimateGas"] {
        let v = call(&url, method, json!([tx, "latest"])).await;
        let (code, msg) = error_of(&v);
        assert_eq!((code, msg.as_str()), (3, "execution reverted"));
        let revert: alloy::primitives::Bytes =
            serde_json::from_value(v["error"]["data"].clone()).unwrap();
        assert_eq!(
            medrec_contracts::ContractError::decode(&revert),
            medrec_contracts::ContractError::NotInstitution { caller: Address::repeat_byte(5) }
        );
    }
    let (code, msg) = error_of(&call(&url, "eth_getBalance", json!([Address::ZERO, "0x1"])).await);
    assert_eq!(code, -32000);
    assert!(msg.contains("only the latest state"), "{msg}");
    h.shutdown().await.unwrap();
}

#[tokio::test]
async fn interval_sealing_mines_pending_transactions_on_the_timer() {
    let (node, h) = start(SealMode::Interval(Duration::from_millis(50))).await;
    let url = h.url();
    let account = &dev_accounts(2)[1];
    let mut heads = node.subscribe();
    let raw = sign_eip1559(&account.signer(), transfer(0, 31337));
    let hash = call(
        &url,
        "eth_sendRawTransaction",
        json!([format!("0x{}", alloy::primitives::hex::encode(&raw))]),
    )
    .await["result"]
        .clone();
    // Pending until the next tick: the pending nonce counts it, the latest does not.
    assert_eq!(node.with(|c| c.next_nonce(account.address)), 1);
    let receipt = loop {
        heads.changed().await.unwrap();
        let r = call(&url, "eth_getTransactionReceipt", json!([hash])).await;
        if !r["result"].is_null() {
            break r;
        }
    };
    assert_eq!(receipt["result"]["status"], "0x1");
    // Empty blocks keep coming on the timer.
    let before = *heads.borrow_and_update();
    heads.changed().await.unwrap();
    assert!(*heads.borrow() > before);
    h.shutdown().await.unwrap();
}
