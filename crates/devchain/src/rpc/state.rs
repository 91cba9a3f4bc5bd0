//! What the methods compute on the chain: block tags resolved to numbers, the
//! latest-state check, calls and gas estimates, signing for dev accounts, and fee
//! history.

use super::*;

pub(super) fn resolve_number(c: &Chain, tag: BlockNumberOrTag) -> Option<u64> {
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
pub(super) fn check_latest(node: &Node, block: Option<BlockId>) -> Result<(), RpcError> {
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

pub(super) fn state_at(
    node: &Node,
    p: &[Value],
    block_arg: usize,
    f: impl FnOnce(&Chain, Address) -> Value,
) -> RpcResult {
    let address: Address = param(p, 0, "address")?;
    check_latest(node, opt_param(p, block_arg, "block")?)?;
    Ok(node.with(|c| f(c, address)))
}

pub(super) fn evm_error(e: EvmError) -> RpcError {
    match e {
        EvmError::Rejected(msg) => RpcError::server(msg),
        EvmError::NoAddress => RpcError::server(e.to_string()),
    }
}

/// The EVM transaction for an `eth_call` / `eth_estimateGas` request.
pub(super) fn call_env(c: &Chain, req: &TransactionRequest) -> Result<TxEnv, RpcError> {
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
pub(super) fn estimate_gas(c: &mut Chain, req: &TransactionRequest) -> Result<u64, RpcError> {
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

pub(super) fn sign_for_dev_account(
    c: &mut Chain,
    req: &TransactionRequest,
) -> Result<Bytes, RpcError> {
    let from = req.from.ok_or_else(|| RpcError::invalid_params("from is required"))?;
    let account = c.dev_accounts().iter().find(|a| a.address == from).cloned().ok_or_else(|| {
        RpcError::server(format!(
            "{from} is not an unlocked development account; sign the transaction and use eth_sendRawTransaction"
        ))
    })?;
    let base = c.next_base_fee();
    let tip = req.max_priority_fee_per_gas.unwrap_or(u128::from(c.suggested_tip()));
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

pub(super) fn fee_history(node: &Node, p: &[Value]) -> RpcResult {
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
pub(super) fn block_rewards(block: &Block, base: u64, percentiles: &[f64]) -> Vec<u128> {
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
