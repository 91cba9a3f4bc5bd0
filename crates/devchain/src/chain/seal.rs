//! Sealing: which pending transactions a block includes ([`Selection`]), sealing at
//! once, Proof-of-Work [`WorkTemplate`]s and their solutions, executing the chosen
//! transactions and building the block with its roots.

use super::{Block, Chain, ChainError, SignedTx, TxReceipt, tx_env};
use crate::{
    evm::{BlockCtx, Mode},
    persist::SNAPSHOT_EVERY,
};
use alloy::{
    consensus::{EMPTY_OMMER_ROOT_HASH, Header, ReceiptEnvelope, Transaction, proofs},
    primitives::{Address, B64, B256, Bloom, Bytes, Log, U256, keccak256},
};
use revm::context::result::{ExecutionResult, Output};
use std::collections::HashMap;

/// Work handed to a Proof-of-Work miner: the block it commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkTemplate {
    /// What the nonce must be found for.
    pub seal_hash: B256,
    /// The block's parent.
    pub parent_hash: B256,
    /// The block's number.
    pub number: u64,
    /// The miner, who becomes the block's coinbase (and owns its bounties).
    pub coinbase: Address,
    /// The block's timestamp.
    pub timestamp: u64,
    /// The block's difficulty.
    pub difficulty: U256,
    /// The transactions the block will hold, in order.
    pub txs: Vec<B256>,
}

/// Which pending transactions a new block includes.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Every executable transaction, in arrival order (per sender in nonce order),
    /// until the block is full.
    All,
    /// Only these (by hash), in arrival order, each with its sender's earlier nonces
    /// already mined or also listed; others wait.
    Only(Vec<B256>),
}

impl Chain {
    /// Executes the selected pending transactions into a new block mined by `coinbase`
    /// at `timestamp` (never earlier than the parent's); returns its number. Seals an
    /// empty block when nothing is selected.
    pub fn seal(
        &mut self,
        coinbase: Address,
        timestamp: u64,
        selection: &Selection,
    ) -> Result<u64, ChainError> {
        if let Some(reason) = &self.halted {
            return Err(ChainError::Halted(reason.clone()));
        }
        let ctx = self.next_block_ctx(timestamp, coinbase);
        let chosen = self.choose(selection, ctx.gas_limit);
        self.execute_block(&ctx, chosen, None)
    }

    /// Work for a Proof-of-Work block mined by `coinbase`: the selected transactions
    /// that can surely execute (each sender's balance covers all of its selected
    /// transactions at their full gas limit and fee cap).
    pub fn prepare_work(
        &self,
        coinbase: Address,
        timestamp: u64,
        selection: &Selection,
    ) -> WorkTemplate {
        let mut ctx = self.next_block_ctx(timestamp, coinbase);
        let parent = &self.latest().header;
        let grandparent = parent.number.checked_sub(1).and_then(|n| self.block(n));
        ctx.difficulty = crate::pow::next_difficulty(
            parent,
            grandparent.as_deref().map(|b| &b.header),
            self.config.pow_initial_difficulty,
            self.config.pow_target_block_secs,
        );
        let mut spend: HashMap<Address, U256> = HashMap::new();
        let mut blocked = std::collections::HashSet::new();
        let chosen: Vec<SignedTx> = self
            .choose(selection, ctx.gas_limit)
            .into_iter()
            .filter(|t| {
                if blocked.contains(&t.sender) {
                    return false;
                }
                let cost = U256::from(t.envelope.gas_limit())
                    * U256::from(t.envelope.max_fee_per_gas())
                    + t.envelope.value();
                let total = spend.entry(t.sender).or_default();
                *total += cost;
                if *total > self.evm.balance(t.sender) {
                    blocked.insert(t.sender);
                    return false;
                }
                true
            })
            .collect();
        let root = proofs::calculate_transaction_root(
            &chosen.iter().map(|t| t.envelope.clone()).collect::<Vec<_>>(),
        );
        WorkTemplate {
            seal_hash: crate::pow::seal_hash(
                self.latest().hash,
                ctx.number,
                coinbase,
                ctx.timestamp,
                ctx.difficulty,
                root,
            ),
            parent_hash: self.latest().hash,
            number: ctx.number,
            coinbase,
            timestamp: ctx.timestamp,
            difficulty: ctx.difficulty,
            txs: chosen.iter().map(|t| t.hash).collect(),
        }
    }

    /// Seals the block of `work` with a nonce that solves it.
    pub fn seal_work(&mut self, work: &WorkTemplate, nonce: u64) -> Result<u64, ChainError> {
        if let Some(reason) = &self.halted {
            return Err(ChainError::Halted(reason.clone()));
        }
        let head = self.latest().header.number;
        if work.parent_hash != self.latest().hash {
            return Err(ChainError::StaleWork { head });
        }
        if !crate::pow::meets(work.seal_hash, nonce, work.difficulty) {
            return Err(ChainError::InvalidWork);
        }
        let mut chosen = Vec::with_capacity(work.txs.len());
        for hash in &work.txs {
            let Some((sender, n)) = self.pool_hashes.get(hash) else {
                return Err(ChainError::StaleWork { head });
            };
            chosen.push(self.pool[sender][n].tx.clone());
        }
        let mut ctx = self.next_block_ctx(work.timestamp, work.coinbase);
        ctx.difficulty = work.difficulty;
        self.execute_block(&ctx, chosen, Some((work.seal_hash, crate::pow::nonce_field(nonce))))
    }

    fn execute_block(
        &mut self,
        ctx: &BlockCtx,
        chosen: Vec<SignedTx>,
        pow: Option<(B256, B64)>,
    ) -> Result<u64, ChainError> {
        let ctx = ctx.clone();
        let mut txs = Vec::with_capacity(chosen.len());
        let mut receipts = Vec::with_capacity(chosen.len());
        let mut cumulative = 0u64;
        for tx in chosen {
            self.remove_from_pool(&tx);
            if cumulative + tx.envelope.gas_limit() > ctx.gas_limit {
                continue;
            }
            let env = tx_env(&tx);
            // A transaction no longer valid (an earlier one spent the funds) is dropped.
            let Ok(result) = self.evm.run(&ctx, env, Mode::Commit) else { continue };
            let (success, gas_used, logs, output, created) = match result {
                ExecutionResult::Success { gas, logs, output, .. } => {
                    let created = match &output {
                        Output::Create(_, addr) => *addr,
                        Output::Call(_) => None,
                    };
                    (true, gas.tx_gas_used(), logs, output.into_data(), created)
                }
                ExecutionResult::Revert { gas, output, .. } => {
                    (false, gas.tx_gas_used(), vec![], output, None)
                }
                ExecutionResult::Halt { gas, .. } => {
                    (false, gas.tx_gas_used(), vec![], Bytes::new(), None)
                }
            };
            cumulative += gas_used;
            receipts.push(TxReceipt {
                success,
                gas_used,
                cumulative_gas_used: cumulative,
                logs,
                contract_address: created,
                effective_gas_price: tx.envelope.effective_gas_price(Some(ctx.base_fee)),
                output,
            });
            txs.push(tx);
        }
        let block = self.build_block(&ctx, txs, receipts, cumulative, pow);
        let number = block.header.number;
        let mut location = None;
        if let Some(journal) = &mut self.journal {
            match journal.append(&block) {
                Ok(loc) => location = Some(loc),
                Err(e) => {
                    // The block is executed in memory but not durable: stop taking
                    // blocks rather than report one that a crash would lose.
                    self.halted = Some(e.to_string());
                    return Err(e.into());
                }
            }
        }
        for (i, tx) in block.txs.iter().enumerate() {
            self.tx_index.insert(tx.hash, (number, i));
        }
        self.by_hash.insert(block.hash, number);
        self.blocks.push(block, location);
        if self.journal.is_some() && number.is_multiple_of(SNAPSHOT_EVERY) {
            self.snapshot()?;
        }
        Ok(number)
    }

    fn build_block(
        &self,
        ctx: &BlockCtx,
        txs: Vec<SignedTx>,
        receipts: Vec<TxReceipt>,
        gas_used: u64,
        pow: Option<(B256, B64)>,
    ) -> Block {
        let parent = &self.latest().header;
        let parent_hash = self.latest().hash;
        let envelopes: Vec<ReceiptEnvelope<Log>> =
            receipts.iter().zip(&txs).map(|(r, t)| r.envelope(t.envelope.tx_type())).collect();
        let mut bloom = Bloom::ZERO;
        for r in &receipts {
            bloom.accrue_bloom(&r.bloom());
        }
        let transactions_root = proofs::calculate_transaction_root(
            &txs.iter().map(|t| t.envelope.clone()).collect::<Vec<_>>(),
        );
        let receipts_root = proofs::calculate_receipt_root(&envelopes);
        // Not a Merkle-Patricia state root: a hash chain over the parent's state
        // commitment and this block's receipts, which is what the devchain can keep
        // cheaply (documented in the devchain README).
        let state_root =
            keccak256([parent.state_root.as_slice(), receipts_root.as_slice()].concat());
        let header = Header {
            parent_hash,
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            beneficiary: ctx.coinbase,
            state_root,
            transactions_root,
            receipts_root,
            logs_bloom: bloom,
            difficulty: ctx.difficulty,
            number: ctx.number,
            gas_limit: ctx.gas_limit,
            gas_used,
            timestamp: ctx.timestamp,
            extra_data: Bytes::new(),
            mix_hash: pow.map_or(B256::ZERO, |p| p.0),
            nonce: pow.map_or(B64::ZERO, |p| p.1),
            base_fee_per_gas: Some(ctx.base_fee),
            ..Default::default()
        };
        let hash = header.hash_slow();
        Block { header, hash, txs, receipts }
    }
}
