//! The reference Proof-of-Work miner: asks a node for work over JSON-RPC, searches a
//! nonce, submits it, and repeats. `medrec research mine` runs it.

use crate::pow;
use alloy::{
    primitives::{Address, B256, U64, U256},
    transports::http::reqwest,
};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// What to mine.
#[derive(Debug, Clone)]
pub struct MinerConfig {
    /// The node's JSON-RPC URL.
    pub rpc_url: String,
    /// The miner's address: the coinbase of the blocks it seals.
    pub coinbase: Address,
    /// Stop after sealing this many blocks (`None`: until stopped).
    pub blocks: Option<u64>,
    /// Only include these pending transactions (`None`: all that fit).
    pub include: Option<Vec<B256>>,
    /// Ask for fresh work at least this often.
    pub refresh: Duration,
}

/// A block this miner sealed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Mined {
    /// Its number.
    pub block: u64,
    /// The work it solved.
    pub seal_hash: B256,
    /// The nonce found.
    pub nonce: u64,
    /// Its difficulty.
    pub difficulty: U256,
    /// Transactions it holds.
    pub transactions: usize,
}

/// Why mining stopped.
#[derive(Debug, thiserror::Error)]
pub enum MinerError {
    /// The node could not be reached or answered with an error.
    #[error("the node at {url} failed: {detail}")]
    Rpc {
        /// The node.
        url: String,
        /// What happened.
        detail: String,
    },
}

async fn rpc(
    http: &reqwest::Client,
    url: &str,
    method: &str,
    params: Value,
) -> Result<Value, MinerError> {
    crate::client::call(http, url, method, params)
        .await
        .map_err(|detail| MinerError::Rpc { url: url.to_owned(), detail })
}

/// Mines until `config.blocks` are sealed, calling `on_block` for each.
pub async fn mine(
    config: &MinerConfig,
    mut on_block: impl FnMut(&Mined),
) -> Result<u64, MinerError> {
    let http = reqwest::Client::new();
    let url = config.rpc_url.as_str();
    let mut sealed = 0;
    let mut next_nonce: u64 = rand_start(config.coinbase);
    while config.blocks.is_none_or(|n| sealed < n) {
        let params = match &config.include {
            Some(hashes) => json!([config.coinbase, hashes]),
            None => json!([config.coinbase]),
        };
        let work = rpc(&http, url, "medrec_getWork", params).await?;
        let seal_hash: B256 = field(&work, "sealHash", url)?;
        let difficulty: U256 = field(&work, "difficulty", url)?;
        let number: U64 = field(&work, "number", url)?;
        let transactions = work["transactions"].as_array().map_or(0, Vec::len);
        let deadline = Instant::now() + config.refresh;
        let mut found = None;
        while found.is_none() && Instant::now() < deadline {
            let start = next_nonce;
            let chunk = 50_000;
            found = tokio::task::spawn_blocking(move || {
                pow::solve(seal_hash, difficulty, start, chunk)
            })
            .await
            .map_err(|e| MinerError::Rpc { url: url.to_owned(), detail: e.to_string() })?;
            next_nonce = next_nonce.wrapping_add(chunk);
        }
        let Some(nonce) = found else { continue };
        match rpc(&http, url, "medrec_submitWork", json!([seal_hash, U64::from(nonce)])).await {
            Ok(_) => {
                sealed += 1;
                on_block(&Mined { block: number.to(), seal_hash, nonce, difficulty, transactions });
            }
            // Someone else sealed this height first: ask for new work.
            Err(MinerError::Rpc { detail, .. }) if detail.starts_with("stale work") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(sealed)
}

fn field<T: serde::de::DeserializeOwned>(
    work: &Value,
    key: &str,
    url: &str,
) -> Result<T, MinerError> {
    serde_json::from_value(work[key].clone()).map_err(|e| MinerError::Rpc {
        url: url.to_owned(),
        detail: format!("bad work field {key}: {e}"),
    })
}

fn rand_start(coinbase: Address) -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seed = alloy::primitives::keccak256([coinbase.as_slice(), &t.to_be_bytes()].concat());
    u64::from_be_bytes(seed[..8].try_into().expect("8 bytes"))
}
