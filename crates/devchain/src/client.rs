//! A minimal JSON-RPC client over HTTP for the devchain's own tools (the miner and the
//! benchmarks), which call raw methods such as `medrec_getWork` and want no fillers.

use alloy::transports::http::reqwest;
use serde_json::{Value, json};

/// Calls `method` at `url`; the error is the transport failure or the node's message.
pub(crate) async fn call(
    http: &reqwest::Client,
    url: &str,
    method: &str,
    params: Value,
) -> Result<Value, String> {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let resp: Value = http
        .post(url)
        .json(&body)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    match resp.get("error") {
        Some(e) => Err(e["message"].as_str().map_or_else(|| e.to_string(), str::to_owned)),
        None => Ok(resp["result"].clone()),
    }
}
