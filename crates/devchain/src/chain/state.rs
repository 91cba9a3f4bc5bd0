//! Queries of a chain: its configuration, state at the latest block, blocks,
//! transactions and logs, and simulating a call in the next block (`eth_call`).

use super::{Block, Chain, ChainConfig, LocatedLog, MinedAt, SignedTx};
use crate::{
    deploy::Deployment,
    evm::{BlockCtx, EvmError, Mode},
    genesis::DevAccount,
};
use alloy::{
    eips::eip1559::BaseFeeParams,
    primitives::{Address, B256, Bytes, U256},
    rpc::types::Filter,
};
use revm::context::{TxEnv, result::ExecutionResult};
use std::sync::Arc;

impl Chain {
    /// The chain id.
    pub const fn chain_id(&self) -> u64 {
        self.config.chain_id
    }

    /// The configuration.
    pub const fn config(&self) -> &ChainConfig {
        &self.config
    }

    /// The funded development accounts.
    pub fn dev_accounts(&self) -> &[DevAccount] {
        &self.accounts
    }

    /// Where the MedRec contracts were deployed at genesis, if they were.
    pub const fn deployment(&self) -> Option<Deployment> {
        self.deployment
    }

    /// The latest sealed block.
    pub fn latest(&self) -> &Block {
        self.blocks.latest()
    }

    /// Block by number (read back from the data directory if it is not in memory).
    pub fn block(&self, number: u64) -> Option<Arc<Block>> {
        self.blocks.get(number)
    }

    /// Block by hash.
    pub fn block_by_hash(&self, hash: &B256) -> Option<Arc<Block>> {
        self.by_hash.get(hash).and_then(|n| self.block(*n))
    }

    /// Balance at the latest block.
    pub fn balance(&self, account: Address) -> U256 {
        self.evm.balance(account)
    }

    /// Nonce at the latest block.
    pub fn nonce(&self, account: Address) -> u64 {
        self.evm.nonce(account)
    }

    /// The nonce the sender's next transaction needs, counting pending ones.
    pub fn next_nonce(&self, account: Address) -> u64 {
        let mut next = self.evm.nonce(account);
        if let Some(queue) = self.pool.get(&account) {
            while queue.contains_key(&next) {
                next += 1;
            }
        }
        next
    }

    /// Code at the latest block.
    pub fn code(&self, account: Address) -> Bytes {
        self.evm.code(account)
    }

    /// Storage at the latest block.
    pub fn storage(&self, account: Address, slot: U256) -> U256 {
        self.evm.storage(account, slot)
    }

    /// The base fee the next block will have (EIP-1559; always 0 on a free-gas chain,
    /// pinned as Besu's `zeroBaseFee`, since the EIP-1559 rule would raise it to 1 wei
    /// and more after a block above its target).
    pub fn next_base_fee(&self) -> u64 {
        if self.config.free_gas {
            return 0;
        }
        let parent = &self.latest().header;
        if parent.number == 0 {
            return self.config.initial_base_fee;
        }
        parent
            .next_block_base_fee(BaseFeeParams::ethereum())
            .unwrap_or(self.config.initial_base_fee)
    }

    /// The priority fee per gas the node suggests (`eth_maxPriorityFeePerGas`): 1 gwei,
    /// as anvil, or nothing on a free-gas chain.
    pub const fn suggested_tip(&self) -> u64 {
        if self.config.free_gas { 0 } else { crate::rpc::DEFAULT_TIP }
    }

    /// A transaction and, if mined, its block number and index.
    pub fn transaction(&self, hash: &B256) -> Option<(SignedTx, Option<MinedAt>)> {
        if let Some(&(number, index)) = self.tx_index.get(hash) {
            let block = self.block(number)?;
            return Some((block.txs[index].clone(), Some((block, index))));
        }
        let (sender, nonce) = self.pool_hashes.get(hash)?;
        Some((self.pool.get(sender)?.get(nonce)?.tx.clone(), None))
    }

    /// The block holding a mined transaction, and its index there (the receipt is
    /// `block.receipts[index]`).
    pub fn receipt(&self, hash: &B256) -> Option<(Arc<Block>, usize)> {
        let &(number, index) = self.tx_index.get(hash)?;
        Some((self.block(number)?, index))
    }

    /// Number of transactions waiting in the pool.
    pub fn pending_count(&self) -> usize {
        self.pool_hashes.len()
    }

    /// Logs matching `filter` in blocks `from..=to`.
    pub fn logs(&self, filter: &Filter, from: u64, to: u64) -> Vec<LocatedLog> {
        let mut out = Vec::new();
        let to = to.min(self.latest().header.number);
        for number in from..=to {
            let Some(block) = self.block(number) else { break };
            if !filter.matches_bloom(block.header.logs_bloom) {
                continue;
            }
            let mut log_index = 0;
            for (i, receipt) in block.receipts.iter().enumerate() {
                for log in &receipt.logs {
                    if filter.matches(log) {
                        out.push(LocatedLog {
                            log: log.clone(),
                            block_number: number,
                            block_hash: block.hash,
                            block_timestamp: block.header.timestamp,
                            tx_hash: block.txs[i].hash,
                            tx_index: i as u64,
                            log_index,
                        });
                    }
                    log_index += 1;
                }
            }
        }
        out
    }

    /// Simulates `tx` on the latest state in the context of the next block (`eth_call`).
    pub fn simulate(&mut self, tx: TxEnv) -> Result<ExecutionResult, EvmError> {
        let block = self.next_block_ctx(self.latest().header.timestamp, Address::ZERO);
        self.evm.run(&block, tx, Mode::Simulate)
    }

    /// The context of the next block.
    pub fn next_block_ctx(&self, timestamp: u64, coinbase: Address) -> BlockCtx {
        let parent = &self.latest().header;
        BlockCtx {
            number: parent.number + 1,
            timestamp: timestamp.max(parent.timestamp),
            coinbase,
            base_fee: self.next_base_fee(),
            gas_limit: self.config.block_gas_limit,
            difficulty: U256::from(1u64),
        }
    }
}
