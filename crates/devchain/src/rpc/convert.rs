//! The JSON-RPC forms of the chain's blocks, transactions, receipts and logs, and the
//! search behind `eth_getLogs`.

use super::*;

pub(super) fn get_logs(c: &Chain, filter: &Filter) -> Result<Vec<RpcLog>, RpcError> {
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

pub(super) fn rpc_log(l: LocatedLog) -> RpcLog {
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

pub(super) fn rpc_tx(tx: &SignedTx, mined: Option<(&Block, usize)>) -> RpcTransaction {
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

pub(super) fn rpc_receipt(block: &Block, receipt: &TxReceipt, index: usize) -> TransactionReceipt {
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

pub(super) fn rpc_block(block: &Block, full: bool) -> RpcBlock {
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
