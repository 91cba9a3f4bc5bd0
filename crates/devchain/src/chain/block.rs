//! Sealed blocks: [`Block`], the [`TxReceipt`] of each of its transactions, and the
//! [`LocatedLog`]s that queries return.

use super::SignedTx;
use alloy::{
    consensus::{Header, Receipt, ReceiptEnvelope, ReceiptWithBloom, TxType},
    primitives::{Address, B256, Bloom, Bytes, Log},
};
use std::sync::Arc;

/// What executing a transaction in a block produced.
#[derive(Debug, Clone)]
pub struct TxReceipt {
    /// Whether it succeeded (status 1).
    pub success: bool,
    /// Gas used by this transaction.
    pub gas_used: u64,
    /// Gas used by the block up to and including this transaction.
    pub cumulative_gas_used: u64,
    /// Its logs.
    pub logs: Vec<Log>,
    /// Address of the contract it created, if any.
    pub contract_address: Option<Address>,
    /// Price per gas actually paid.
    pub effective_gas_price: u128,
    /// Return or revert data (kept for debugging and error reports).
    pub output: Bytes,
}

impl TxReceipt {
    /// The consensus form (with bloom), whose list hashes to the receipts root.
    pub fn envelope(&self, tx_type: TxType) -> ReceiptEnvelope<Log> {
        let receipt = Receipt {
            status: self.success.into(),
            cumulative_gas_used: self.cumulative_gas_used,
            logs: self.logs.clone(),
        };
        let with_bloom = ReceiptWithBloom::new(receipt, self.bloom());
        match tx_type {
            TxType::Legacy => ReceiptEnvelope::Legacy(with_bloom),
            TxType::Eip2930 => ReceiptEnvelope::Eip2930(with_bloom),
            TxType::Eip4844 => ReceiptEnvelope::Eip4844(with_bloom),
            TxType::Eip7702 => ReceiptEnvelope::Eip7702(with_bloom),
            TxType::Eip1559 => ReceiptEnvelope::Eip1559(with_bloom),
        }
    }

    /// The logs bloom of this receipt.
    pub fn bloom(&self) -> Bloom {
        let mut bloom = Bloom::ZERO;
        for log in &self.logs {
            bloom.accrue_log(log);
        }
        bloom
    }
}

/// A sealed block.
#[derive(Debug, Clone)]
pub struct Block {
    /// Its header.
    pub header: Header,
    /// Its hash.
    pub hash: B256,
    /// Its transactions, in order.
    pub txs: Vec<SignedTx>,
    /// Their receipts, in the same order.
    pub receipts: Vec<TxReceipt>,
}

/// The block holding a mined transaction, and the transaction's index in it.
pub type MinedAt = (Arc<Block>, usize);

/// A log with where it sits in the chain.
#[derive(Debug, Clone)]
pub struct LocatedLog {
    /// The log.
    pub log: Log,
    /// Block number.
    pub block_number: u64,
    /// Block hash.
    pub block_hash: B256,
    /// Block timestamp.
    pub block_timestamp: u64,
    /// Transaction hash.
    pub tx_hash: B256,
    /// Transaction index in the block.
    pub tx_index: u64,
    /// Log index in the block.
    pub log_index: u64,
}
