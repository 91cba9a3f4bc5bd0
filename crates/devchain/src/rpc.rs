//! Ethereum JSON-RPC over a [`Node`]: request parsing, dispatch and the standard
//! error conventions (codes, and revert data in `error.data` so that clients decode
//! custom errors).

use crate::{
    chain::{Block, Chain, LocatedLog, SignedTx, TxError, TxReceipt},
    evm::EvmError,
    node::Node,
};
use alloy::{
    consensus::{
        Receipt, ReceiptEnvelope, ReceiptWithBloom, TxEnvelope, TxType, transaction::Recovered,
    },
    eips::{BlockId, BlockNumberOrTag, eip2718::Encodable2718},
    primitives::{Address, B256, Bytes, TxKind, U64, U256, keccak256},
    rpc::types::{
        Block as RpcBlock, BlockTransactions, FeeHistory, Filter, Header as RpcHeader,
        Log as RpcLog, Transaction as RpcTransaction, TransactionReceipt, TransactionRequest,
    },
};
use revm::context::{TxEnv, result::ExecutionResult};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    /// The error code.
    pub code: i64,
    /// A message for people.
    pub message: String,
    /// Extra data (revert data for code 3).
    pub data: Option<Value>,
}

impl RpcError {
    /// -32700: the body is not JSON.
    pub fn parse(msg: impl std::fmt::Display) -> Self {
        Self::new(-32700, format!("parse error: {msg}"))
    }

    /// -32600: not a valid request object.
    pub fn invalid_request(msg: impl Into<String>) -> Self {
        Self::new(-32600, msg)
    }

    /// -32601: no such method.
    pub fn method_not_found(method: &str) -> Self {
        Self::new(-32601, format!("the method {method} does not exist/is not available"))
    }

    /// -32602: wrong parameters.
    pub fn invalid_params(msg: impl Into<String>) -> Self {
        Self::new(-32602, msg)
    }

    /// -32000: the server refused (transaction pool errors and the like).
    pub fn server(msg: impl Into<String>) -> Self {
        Self::new(-32000, msg)
    }

    /// 3: execution reverted, with the revert data.
    pub fn reverted(data: &Bytes) -> Self {
        Self { code: 3, message: "execution reverted".into(), data: Some(json!(data)) }
    }

    fn new(code: i64, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), data: None }
    }

    /// The JSON error object.
    pub fn to_json(&self) -> Value {
        let mut v = json!({ "code": self.code, "message": self.message });
        if let Some(data) = &self.data {
            v["data"] = data.clone();
        }
        v
    }
}

impl From<TxError> for RpcError {
    fn from(e: TxError) -> Self {
        match e {
            TxError::Decode(_) => Self::invalid_params(e.to_string()),
            _ => Self::server(e.to_string()),
        }
    }
}

type RpcResult = Result<Value, RpcError>;

/// Handles one JSON-RPC body (a request or a batch). `None` when nothing is to be
/// sent back (only notifications).
pub fn handle_body(node: &Node, body: &[u8]) -> Option<Value> {
    let parsed: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => return Some(response(Value::Null, Err(RpcError::parse(e)))),
    };
    match parsed {
        Value::Array(items) if items.is_empty() => {
            Some(response(Value::Null, Err(RpcError::invalid_request("empty batch"))))
        }
        Value::Array(items) => {
            let out: Vec<Value> =
                items.into_iter().filter_map(|item| handle_one(node, item)).collect();
            (!out.is_empty()).then_some(Value::Array(out))
        }
        item => handle_one(node, item),
    }
}

fn handle_one(node: &Node, item: Value) -> Option<Value> {
    let Value::Object(mut obj) = item else {
        return Some(response(
            Value::Null,
            Err(RpcError::invalid_request("a request must be an object")),
        ));
    };
    let id = obj.remove("id");
    let is_notification = id.is_none();
    let id = id.unwrap_or(Value::Null);
    if !matches!(id, Value::Null | Value::Number(_) | Value::String(_)) {
        return Some(response(
            Value::Null,
            Err(RpcError::invalid_request("id must be a number or string")),
        ));
    }
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Some(response(id, Err(RpcError::invalid_request("jsonrpc must be \"2.0\""))));
    }
    let Some(Value::String(method)) = obj.remove("method") else {
        return Some(response(id, Err(RpcError::invalid_request("method must be a string"))));
    };
    let params = match obj.remove("params") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(p)) => p,
        Some(_) => {
            return Some(response(id, Err(RpcError::invalid_params("params must be an array"))));
        }
    };
    let result = dispatch(node, &method, &params);
    (!is_notification).then(|| response(id, result))
}

#[allow(clippy::needless_pass_by_value)] // consumed by json!
fn response(id: Value, result: RpcResult) -> Value {
    match result {
        Ok(v) => json!({ "jsonrpc": "2.0", "id": id, "result": v }),
        Err(e) => json!({ "jsonrpc": "2.0", "id": id, "error": e.to_json() }),
    }
}

fn param<T: DeserializeOwned>(params: &[Value], i: usize, what: &str) -> Result<T, RpcError> {
    let v = params.get(i).ok_or_else(|| {
        RpcError::invalid_params(format!("missing value for required argument {i} ({what})"))
    })?;
    serde_json::from_value(v.clone())
        .map_err(|e| RpcError::invalid_params(format!("invalid argument {i} ({what}): {e}")))
}

fn opt_param<T: DeserializeOwned>(
    params: &[Value],
    i: usize,
    what: &str,
) -> Result<Option<T>, RpcError> {
    match params.get(i) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => param(params, i, what).map(Some),
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> RpcResult {
    serde_json::to_value(v).map_err(|e| RpcError::new(-32603, format!("internal error: {e}")))
}

fn hex(n: u64) -> Value {
    json!(U64::from(n))
}

/// The devchain's client version string.
pub const CLIENT_VERSION: &str = concat!("medrec-devchain/v", env!("CARGO_PKG_VERSION"));

fn dispatch(node: &Node, method: &str, p: &[Value]) -> RpcResult {
    match method {
        "web3_clientVersion" => Ok(json!(CLIENT_VERSION)),
        "web3_sha3" => Ok(json!(keccak256(param::<Bytes>(p, 0, "data")?))),
        "net_version" => Ok(json!(node.with(|c| c.chain_id()).to_string())),
        "net_listening" => Ok(json!(true)),
        "net_peerCount" | "eth_hashrate" => Ok(hex(0)),
        "eth_chainId" => Ok(hex(node.with(|c| c.chain_id()))),
        "eth_blockNumber" => Ok(hex(node.with(|c| c.latest().header.number))),
        "eth_syncing" => Ok(json!(false)),
        "eth_mining" => Ok(json!(node.is_mining())),
        "eth_coinbase" => Ok(json!(Address::ZERO)),
        "eth_accounts" => {
            Ok(json!(node.with(|c| c.dev_accounts().iter().map(|a| a.address).collect::<Vec<_>>())))
        }
        "eth_gasPrice" => {
            Ok(json!(U256::from(node.with(Chain::next_base_fee)) + U256::from(DEFAULT_TIP)))
        }
        "eth_maxPriorityFeePerGas" => Ok(json!(U256::from(DEFAULT_TIP))),
        "eth_feeHistory" => fee_history(node, p),
        "eth_getBalance" => state_at(node, p, 1, |c, a| json!(c.balance(a))),
        "eth_getTransactionCount" => {
            let address: Address = param(p, 0, "address")?;
            let pending = matches!(
                opt_param::<BlockId>(p, 1, "block")?,
                Some(BlockId::Number(BlockNumberOrTag::Pending))
            );
            if pending {
                return Ok(hex(node.with(|c| c.next_nonce(address))));
            }
            state_at(node, p, 1, |c, a| hex(c.nonce(a)))
        }
        "eth_getCode" => state_at(node, p, 1, |c, a| json!(c.code(a))),
        "eth_getStorageAt" => {
            let slot: U256 = param(p, 1, "slot")?;
            check_latest(node, opt_param(p, 2, "block")?)?;
            let address: Address = param(p, 0, "address")?;
            Ok(json!(B256::from(node.with(|c| c.storage(address, slot)))))
        }
        "eth_call" => {
            let req: TransactionRequest = param(p, 0, "transaction")?;
            check_latest(node, opt_param(p, 1, "block")?)?;
            let result = node.with_mut(|c| {
                let env = call_env(c, &req)?;
                c.simulate(env).map_err(evm_error)
            })?;
            match result {
                ExecutionResult::Success { output, .. } => Ok(json!(output.into_data())),
                ExecutionResult::Revert { output, .. } => Err(RpcError::reverted(&output)),
                ExecutionResult::Halt { reason, .. } => {
                    Err(RpcError::server(format!("execution halted: {reason:?}")))
                }
            }
        }
        "eth_estimateGas" => {
            let req: TransactionRequest = param(p, 0, "transaction")?;
            check_latest(node, opt_param(p, 1, "block")?)?;
            node.with_mut(|c| estimate_gas(c, &req)).map(hex)
        }
        "eth_sendRawTransaction" => {
            let raw: Bytes = param(p, 0, "signed transaction")?;
            node.submit_raw(&raw).map(|h| json!(h)).map_err(RpcError::from)
        }
        "eth_sendTransaction" => {
            let req: TransactionRequest = param(p, 0, "transaction")?;
            let raw = node.with_mut(|c| sign_for_dev_account(c, &req))?;
            node.submit_raw(&raw).map(|h| json!(h)).map_err(RpcError::from)
        }
        "eth_getTransactionByHash" => {
            let hash: B256 = param(p, 0, "hash")?;
            node.with(|c| match c.transaction(&hash) {
                Some((tx, Some((block, index)))) => to_json(&rpc_tx(&tx, Some((&block, index)))),
                Some((tx, None)) => to_json(&rpc_tx(&tx, None)),
                None => Ok(Value::Null),
            })
        }
        "eth_getTransactionReceipt" => {
            let hash: B256 = param(p, 0, "hash")?;
            node.with(|c| match c.receipt(&hash) {
                Some((block, index)) => {
                    to_json(&rpc_receipt(&block, &block.receipts[index], index))
                }
                None => Ok(Value::Null),
            })
        }
        "eth_getBlockByNumber" => {
            let tag: BlockNumberOrTag = param(p, 0, "block")?;
            let full = opt_param::<bool>(p, 1, "full transactions")?.unwrap_or(false);
            node.with(|c| match resolve_number(c, tag).and_then(|n| c.block(n)) {
                Some(block) => to_json(&rpc_block(&block, full)),
                None => Ok(Value::Null),
            })
        }
        "eth_getBlockByHash" => {
            let hash: B256 = param(p, 0, "hash")?;
            let full = opt_param::<bool>(p, 1, "full transactions")?.unwrap_or(false);
            node.with(|c| match c.block_by_hash(&hash) {
                Some(block) => to_json(&rpc_block(&block, full)),
                None => Ok(Value::Null),
            })
        }
        "eth_getBlockTransactionCountByNumber" => {
            let tag: BlockNumberOrTag = param(p, 0, "block")?;
            Ok(node.with(|c| {
                resolve_number(c, tag)
                    .and_then(|n| c.block(n))
                    .map_or(Value::Null, |b| hex(b.txs.len() as u64))
            }))
        }
        "eth_getBlockTransactionCountByHash" => {
            let hash: B256 = param(p, 0, "hash")?;
            Ok(node
                .with(|c| c.block_by_hash(&hash).map_or(Value::Null, |b| hex(b.txs.len() as u64))))
        }
        "eth_getLogs" => {
            let filter: Filter = param(p, 0, "filter")?;
            node.with(|c| get_logs(c, &filter)).and_then(|logs| to_json(&logs))
        }
        "medrec_getWork" => {
            let coinbase: Address = param(p, 0, "coinbase")?;
            let only: Option<Vec<B256>> = opt_param(p, 1, "transaction hashes")?;
            let selection =
                only.map_or(crate::chain::Selection::All, crate::chain::Selection::Only);
            let w = node.get_work(coinbase, &selection);
            Ok(json!({
                "sealHash": w.seal_hash,
                "parentHash": w.parent_hash,
                "number": hex(w.number),
                "coinbase": w.coinbase,
                "timestamp": hex(w.timestamp),
                "difficulty": w.difficulty,
                "target": crate::pow::target(w.difficulty),
                "transactions": w.txs,
            }))
        }
        "medrec_submitWork" => {
            let seal: B256 = param(p, 0, "seal hash")?;
            let nonce: U64 = param(p, 1, "nonce")?;
            node.submit_work(seal, nonce.to::<u64>())
                .map(hex)
                .map_err(|e| RpcError::server(e.to_string()))
        }
        "evm_mine" => {
            node.mine_now().map_err(|e| RpcError::server(e.to_string()))?;
            Ok(json!("0x0"))
        }
        "evm_increaseTime" => {
            let secs: U64 = param(p, 0, "seconds")?;
            Ok(hex(node.increase_time(secs.to::<u64>())))
        }
        _ => Err(RpcError::method_not_found(method)),
    }
}

/// The priority fee the devchain suggests (1 gwei, as anvil).
pub const DEFAULT_TIP: u64 = 1_000_000_000;

/// Most blocks one `eth_getLogs` may scan.
pub const MAX_LOG_RANGE: u64 = 1_000_000;

fn resolve_number(c: &Chain, tag: BlockNumberOrTag) -> Option<u64> {
    let latest = c.latest().header.number;
    match tag {
        BlockNumberOrTag::Number(n) => Some(n),
        BlockNumberOrTag::Earliest => Some(0),
        BlockNumberOrTag::Latest
        | BlockNumberOrTag::Pending
        | BlockNumberOrTag::Safe
        | BlockNumberOrTag::Finalized => Some(latest),
    }
}

/// The devchain keeps only the latest state: a query for an older block is refused
/// rather than answered wrongly.
fn check_latest(node: &Node, block: Option<BlockId>) -> Result<(), RpcError> {
    let Some(block) = block else { return Ok(()) };
    let (latest, latest_hash) = node.with(|c| (c.latest().header.number, c.latest().hash));
    let ok = match block {
        BlockId::Number(BlockNumberOrTag::Number(n)) => n == latest,
        BlockId::Number(BlockNumberOrTag::Earliest) => latest == 0,
        BlockId::Number(_) => true,
        BlockId::Hash(h) => h.block_hash == latest_hash,
    };
    if ok {
        Ok(())
    } else {
        Err(RpcError::server(format!(
            "historical state is not available: the devchain keeps only the latest state (block {latest})"
        )))
    }
}

fn state_at(
    node: &Node,
    p: &[Value],
    block_arg: usize,
    f: impl FnOnce(&Chain, Address) -> Value,
) -> RpcResult {
    let address: Address = param(p, 0, "address")?;
    check_latest(node, opt_param(p, block_arg, "block")?)?;
    Ok(node.with(|c| f(c, address)))
}

fn evm_error(e: EvmError) -> RpcError {
    match e {
        EvmError::Rejected(msg) => RpcError::server(msg),
        EvmError::NoAddress => RpcError::server(e.to_string()),
    }
}

/// The EVM transaction for an `eth_call` / `eth_estimateGas` request.
fn call_env(c: &Chain, req: &TransactionRequest) -> Result<TxEnv, RpcError> {
    let from = req.from.unwrap_or_default();
    let cap = c.config().block_gas_limit;
    let gas_limit = req.gas.unwrap_or(cap).min(cap);
    let (tx_type, gas_price, tip) = match (req.gas_price, req.max_fee_per_gas) {
        (Some(price), _) => (0, price, None),
        (None, Some(max)) => (2, max, Some(req.max_priority_fee_per_gas.unwrap_or(0).min(max))),
        (None, None) => (0, 0, None),
    };
    Ok(TxEnv {
        tx_type,
        caller: from,
        gas_limit,
        gas_price,
        kind: req.to.unwrap_or(TxKind::Create),
        value: req.value.unwrap_or_default(),
        data: req.input.input().cloned().unwrap_or_default(),
        nonce: c.nonce(from),
        chain_id: Some(c.chain_id()),
        access_list: req.access_list.clone().unwrap_or_default(),
        gas_priority_fee: tip,
        ..Default::default()
    })
}

/// The lowest gas limit with which the call succeeds (binary search, as geth).
fn estimate_gas(c: &mut Chain, req: &TransactionRequest) -> Result<u64, RpcError> {
    let env = call_env(c, req)?;
    let cap = env.gas_limit;
    let run = |c: &mut Chain, gas: u64| -> Result<ExecutionResult, RpcError> {
        let mut e = env.clone();
        e.gas_limit = gas;
        c.simulate(e).map_err(evm_error)
    };
    let used = match run(c, cap)? {
        ExecutionResult::Success { gas, .. } => gas.tx_gas_used(),
        ExecutionResult::Revert { output, .. } => return Err(RpcError::reverted(&output)),
        ExecutionResult::Halt { reason, .. } => {
            return Err(RpcError::server(format!(
                "gas required exceeds allowance ({cap}): {reason:?}"
            )));
        }
    };
    let ok = |c: &mut Chain, gas: u64| run(c, gas).map(|r| r.is_success()).unwrap_or(false);
    let mut lo = used.saturating_sub(1);
    let mut hi = cap;
    let optimistic = ((used + 2_300) * 64 / 63).min(cap);
    if ok(c, optimistic) {
        hi = optimistic;
    } else {
        lo = optimistic;
    }
    while hi - lo > 1 && (hi - lo) * 1000 > hi * 15 {
        let mid = lo + (hi - lo) / 2;
        if ok(c, mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

fn sign_for_dev_account(c: &mut Chain, req: &TransactionRequest) -> Result<Bytes, RpcError> {
    let from = req.from.ok_or_else(|| RpcError::invalid_params("from is required"))?;
    let account = c.dev_accounts().iter().find(|a| a.address == from).cloned().ok_or_else(|| {
        RpcError::server(format!(
            "{from} is not an unlocked development account; sign the transaction and use eth_sendRawTransaction"
        ))
    })?;
    let base = c.next_base_fee();
    let tip = req.max_priority_fee_per_gas.unwrap_or(u128::from(DEFAULT_TIP));
    let gas = match req.gas {
        Some(g) => g,
        None => estimate_gas(c, req)?,
    };
    let tx = alloy::consensus::TxEip1559 {
        chain_id: c.chain_id(),
        nonce: req.nonce.unwrap_or_else(|| c.next_nonce(from)),
        gas_limit: gas,
        max_fee_per_gas: req.max_fee_per_gas.unwrap_or(u128::from(base) * 2 + tip),
        max_priority_fee_per_gas: tip,
        to: req.to.unwrap_or(TxKind::Create),
        value: req.value.unwrap_or_default(),
        access_list: req.access_list.clone().unwrap_or_default(),
        input: req.input.input().cloned().unwrap_or_default(),
    };
    Ok(crate::sign::sign_eip1559(&account.signer(), tx))
}

fn fee_history(node: &Node, p: &[Value]) -> RpcResult {
    let count: U64 = param(p, 0, "block count")?;
    let newest: BlockNumberOrTag = param(p, 1, "newest block")?;
    let percentiles: Vec<f64> = opt_param(p, 2, "reward percentiles")?.unwrap_or_default();
    if percentiles.iter().any(|q| !(0.0..=100.0).contains(q))
        || percentiles.windows(2).any(|w| w[0] > w[1])
    {
        return Err(RpcError::invalid_params(
            "reward percentiles must be ascending values between 0 and 100",
        ));
    }
    node.with(|c| {
        let newest = resolve_number(c, newest).unwrap_or(0).min(c.latest().header.number);
        let count = count.to::<u64>().clamp(1, 1024).min(newest + 1);
        let oldest = newest + 1 - count;
        let mut base_fees = Vec::new();
        let mut ratios = Vec::new();
        let mut rewards = Vec::new();
        for n in oldest..=newest {
            let block = c.block(n).expect("in range");
            let base = block.header.base_fee_per_gas.unwrap_or(0);
            base_fees.push(u128::from(base));
            ratios.push(block.header.gas_used as f64 / block.header.gas_limit as f64);
            if !percentiles.is_empty() {
                rewards.push(block_rewards(&block, base, &percentiles));
            }
        }
        base_fees.push(u128::from(if newest == c.latest().header.number {
            c.next_base_fee()
        } else {
            c.block(newest + 1).and_then(|b| b.header.base_fee_per_gas).unwrap_or(0)
        }));
        let history = FeeHistory {
            base_fee_per_gas: base_fees,
            gas_used_ratio: ratios,
            base_fee_per_blob_gas: vec![],
            blob_gas_used_ratio: vec![],
            oldest_block: oldest,
            reward: (!percentiles.is_empty()).then_some(rewards),
        };
        to_json(&history)
    })
}

/// Tips paid in `block` at the given gas-weighted percentiles.
fn block_rewards(block: &Block, base: u64, percentiles: &[f64]) -> Vec<u128> {
    let mut tips: Vec<(u128, u64)> = block
        .receipts
        .iter()
        .map(|r| (r.effective_gas_price.saturating_sub(u128::from(base)), r.gas_used))
        .collect();
    if tips.is_empty() {
        return vec![0; percentiles.len()];
    }
    tips.sort_unstable();
    let total: u64 = tips.iter().map(|t| t.1).sum();
    percentiles
        .iter()
        .map(|q| {
            let threshold = (total as f64 * q / 100.0) as u64;
            let mut sum = 0;
            for (tip, gas) in &tips {
                sum += gas;
                if sum >= threshold {
                    return *tip;
                }
            }
            tips.last().map_or(0, |t| t.0)
        })
        .collect()
}

fn get_logs(c: &Chain, filter: &Filter) -> Result<Vec<RpcLog>, RpcError> {
    let latest = c.latest().header.number;
    let (from, to) = if let Some(hash) = filter.get_block_hash() {
        let block = c
            .block_by_hash(&hash)
            .ok_or_else(|| RpcError::server(format!("unknown block {hash}")))?;
        (block.header.number, block.header.number)
    } else {
        let (from, to) = filter.block_option.as_range();
        let from = from.and_then(|t| resolve_number(c, *t)).unwrap_or(latest);
        let to = to.and_then(|t| resolve_number(c, *t)).unwrap_or(latest);
        (from, to)
    };
    if from > to {
        return Err(RpcError::invalid_params(format!(
            "invalid block range: fromBlock {from} is after toBlock {to}"
        )));
    }
    if to - from > MAX_LOG_RANGE {
        return Err(RpcError::server(format!(
            "block range too large: at most {MAX_LOG_RANGE} blocks per query"
        )));
    }
    Ok(c.logs(filter, from, to).into_iter().map(rpc_log).collect())
}

fn rpc_log(l: LocatedLog) -> RpcLog {
    RpcLog {
        inner: l.log,
        block_hash: Some(l.block_hash),
        block_number: Some(l.block_number),
        block_timestamp: None,
        transaction_hash: Some(l.tx_hash),
        transaction_index: Some(l.tx_index),
        log_index: Some(l.log_index),
        removed: false,
    }
}

fn rpc_tx(tx: &SignedTx, mined: Option<(&Block, usize)>) -> RpcTransaction {
    let base = mined.and_then(|(b, _)| b.header.base_fee_per_gas);
    RpcTransaction {
        inner: Recovered::new_unchecked(tx.envelope.clone(), tx.sender),
        block_hash: mined.map(|(b, _)| b.hash),
        block_number: mined.map(|(b, _)| b.header.number),
        transaction_index: mined.map(|(_, i)| i as u64),
        effective_gas_price: mined
            .map(|_| alloy::consensus::Transaction::effective_gas_price(&tx.envelope, base)),
        block_timestamp: None,
    }
}

fn rpc_receipt(block: &Block, receipt: &TxReceipt, index: usize) -> TransactionReceipt {
    let tx = &block.txs[index];
    let first_log_index: usize = block.receipts[..index].iter().map(|r| r.logs.len()).sum();
    let logs: Vec<RpcLog> = receipt
        .logs
        .iter()
        .enumerate()
        .map(|(i, log)| RpcLog {
            inner: log.clone(),
            block_hash: Some(block.hash),
            block_number: Some(block.header.number),
            block_timestamp: None,
            transaction_hash: Some(tx.hash),
            transaction_index: Some(index as u64),
            log_index: Some((first_log_index + i) as u64),
            removed: false,
        })
        .collect();
    let with_bloom = ReceiptWithBloom::new(
        Receipt {
            status: receipt.success.into(),
            cumulative_gas_used: receipt.cumulative_gas_used,
            logs,
        },
        receipt.bloom(),
    );
    let inner = match tx.envelope.tx_type() {
        TxType::Legacy => ReceiptEnvelope::Legacy(with_bloom),
        TxType::Eip2930 => ReceiptEnvelope::Eip2930(with_bloom),
        TxType::Eip4844 => ReceiptEnvelope::Eip4844(with_bloom),
        TxType::Eip7702 => ReceiptEnvelope::Eip7702(with_bloom),
        TxType::Eip1559 => ReceiptEnvelope::Eip1559(with_bloom),
    };
    TransactionReceipt {
        inner,
        transaction_hash: tx.hash,
        transaction_index: Some(index as u64),
        block_hash: Some(block.hash),
        block_number: Some(block.header.number),
        gas_used: receipt.gas_used,
        effective_gas_price: receipt.effective_gas_price,
        blob_gas_used: None,
        blob_gas_price: None,
        from: tx.sender,
        to: alloy::consensus::Transaction::to(&tx.envelope),
        contract_address: receipt.contract_address,
    }
}

fn rpc_block(block: &Block, full: bool) -> RpcBlock {
    let size: usize = alloy::rlp::Encodable::length(&block.header)
        + block.txs.iter().map(|t| t.envelope.encode_2718_len()).sum::<usize>()
        + 4;
    let transactions = if full {
        BlockTransactions::Full(
            block.txs.iter().enumerate().map(|(i, t)| rpc_tx(t, Some((block, i)))).collect(),
        )
    } else {
        BlockTransactions::Hashes(block.txs.iter().map(|t| t.hash).collect())
    };
    RpcBlock {
        header: RpcHeader {
            hash: block.hash,
            inner: block.header.clone(),
            total_difficulty: Some(U256::from(block.header.number + 1)),
            size: Some(U256::from(size)),
        },
        uncles: vec![],
        transactions,
        withdrawals: None,
    }
}

/// Decodes `raw` only to check it parses (used by callers that want early errors).
pub fn decode_raw(raw: &[u8]) -> Result<TxEnvelope, TxError> {
    use alloy::eips::eip2718::Decodable2718;
    let mut buf = raw;
    TxEnvelope::decode_2718(&mut buf).map_err(|e| TxError::Decode(e.to_string()))
}
