//! Ethereum JSON-RPC over a [`Node`]: request parsing, dispatch and the standard
//! error conventions (codes, and revert data in `error.data` so that clients decode
//! custom errors).
//!
//! This module holds the error object, request handling and the method dispatch;
//! `state` resolves block tags and runs calls, gas estimates, dev-account signing and
//! fee history on the chain, and `convert` turns blocks, transactions, receipts and
//! logs into their JSON-RPC forms.

mod convert;
mod state;

use convert::*;
use state::*;

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
            // As nodes report a reverting call, so that clients decode the custom error.
            TxError::FreeReverted { data } => Self {
                code: 3,
                message: "execution reverted: a transaction at zero gas price must succeed against the pending state".into(),
                data: Some(json!(data)),
            },
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
            let (base, tip) = node.with(|c| (c.next_base_fee(), c.suggested_tip()));
            Ok(json!(U256::from(base) + U256::from(tip)))
        }
        "eth_maxPriorityFeePerGas" => Ok(json!(U256::from(node.with(Chain::suggested_tip)))),
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

/// The priority fee the devchain suggests (1 gwei, as anvil; none on a free-gas chain).
pub const DEFAULT_TIP: u64 = 1_000_000_000;

/// Most blocks one `eth_getLogs` may scan.
pub const MAX_LOG_RANGE: u64 = 1_000_000;

/// Decodes `raw` only to check it parses (used by callers that want early errors).
pub fn decode_raw(raw: &[u8]) -> Result<TxEnvelope, TxError> {
    use alloy::eips::eip2718::Decodable2718;
    let mut buf = raw;
    TxEnvelope::decode_2718(&mut buf).map_err(|e| TxError::Decode(e.to_string()))
}
