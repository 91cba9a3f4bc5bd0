//! The guard of zero-price transactions: what keeps a free-gas chain (no value ever
//! moves, so there is no funding trail between a provider and its relationships) from
//! being flooded, since price no longer does.
//!
//! A transaction whose effective gas price in the next block is 0 is admitted only when
//! 1. it sends no value;
//! 2. it calls one of the MedRec contracts this chain deployed or a contract in
//!    [`ChainConfig::free_gas_targets`](super::ChainConfig::free_gas_targets), or it
//!    creates a contract from the founding institution (development account 0) or an
//!    account in [`ChainConfig::free_gas_deployers`](super::ChainConfig::free_gas_deployers);
//! 3. its gas limit fits in the zero-price gas one sender may use per block
//!    ([`ChainConfig::free_gas_block_gas`](super::ChainConfig::free_gas_block_gas); an
//!    allowed deployer's contract creation only in the block), and
//!    its sender has fewer than
//!    [`ChainConfig::free_gas_max_pending`](super::ChainConfig::free_gas_max_pending)
//!    zero-price transactions pending;
//! 4. it succeeds when executed against the pending state (the latest state after the
//!    transactions the next block would include); a revert is refused with the
//!    contract's revert data.
//!
//! A block includes at most `free_gas_block_gas` gas (counted by gas limit) of one
//! sender's zero-price transactions; the rest wait for the next blocks. Transactions that
//! pay a price are admitted as before.

use super::{Chain, Selection, SignedTx, TxError, tx_env};
use alloy::{
    consensus::{Transaction, TxEnvelope},
    primitives::{Address, TxKind},
};
use revm::context::result::ExecutionResult;

/// Whether `tx` pays nothing per gas in a block with base fee `base_fee`.
pub(super) fn is_zero_price(tx: &TxEnvelope, base_fee: u64) -> bool {
    tx.effective_gas_price(Some(base_fee)) == 0
}

impl Chain {
    /// The checks of a zero-price transaction before it enters the pool (all but the
    /// pool-wide ones, nonce and gas limit, which [`Chain::submit`] makes first).
    pub(super) fn admit_free(&self, tx: &SignedTx) -> Result<(), TxError> {
        let e = &tx.envelope;
        if !e.value().is_zero() {
            return Err(TxError::FreeValueTransfer { value: e.value() });
        }
        match e.kind() {
            TxKind::Call(to) => {
                if !self.free_target(to) {
                    return Err(TxError::FreeTargetNotAllowed { to });
                }
            }
            TxKind::Create => {
                if !self.free_deployer(tx.sender) {
                    return Err(TxError::FreeCreateNotAllowed { sender: tx.sender });
                }
            }
        }
        let allowance = self.free_allowance(tx);
        if e.gas_limit() > allowance {
            return Err(TxError::FreeGasAboveAllowance { have: e.gas_limit(), allowance });
        }
        let max = self.config.free_gas_max_pending;
        if self.pending_free(tx.sender) >= max {
            return Err(TxError::FreePendingLimit { sender: tx.sender, max });
        }
        self.succeeds_when_pending(tx)
    }

    /// The zero-price gas `tx`'s sender may use per block: `free_gas_block_gas`, except
    /// for a contract creation by an allowed deployer (the founding institution deploys
    /// the MedRec contracts, larger than one sender's allowance), bounded only by the
    /// block.
    pub(super) fn free_allowance(&self, tx: &SignedTx) -> u64 {
        if tx.envelope.kind() == TxKind::Create && self.free_deployer(tx.sender) {
            u64::MAX
        } else {
            self.config.free_gas_block_gas
        }
    }

    /// Whether zero-price transactions may call `to`.
    pub fn free_target(&self, to: Address) -> bool {
        self.deployment.is_some_and(|d| [d.registrar, d.relationships, d.anchors].contains(&to))
            || self.config.free_gas_targets.contains(&to)
    }

    /// Whether `sender` may create contracts at zero price.
    pub fn free_deployer(&self, sender: Address) -> bool {
        self.accounts.first().is_some_and(|a| a.address == sender)
            || self.config.free_gas_deployers.contains(&sender)
    }

    /// Number of zero-price transactions `sender` has pending.
    pub fn pending_free(&self, sender: Address) -> u64 {
        let base_fee = self.next_base_fee();
        self.pool.get(&sender).map_or(0, |queue| {
            queue.values().filter(|t| is_zero_price(&t.tx.envelope, base_fee)).count() as u64
        })
    }

    /// Executes `tx` after the transactions the next block would include, and refuses
    /// it unless it succeeds.
    fn succeeds_when_pending(&self, tx: &SignedTx) -> Result<(), TxError> {
        let ctx = self.next_block_ctx(self.latest().header.timestamp, Address::ZERO);
        let ahead = self.choose(&Selection::All, ctx.gas_limit);
        let result = self
            .evm
            .simulate_after(&ctx, ahead.iter().map(tx_env), tx_env(tx))
            .map_err(|e| TxError::FreeFails { reason: e.to_string() })?;
        match result {
            ExecutionResult::Success { .. } => Ok(()),
            ExecutionResult::Revert { output, .. } => Err(TxError::FreeReverted { data: output }),
            ExecutionResult::Halt { reason, .. } => {
                Err(TxError::FreeFails { reason: format!("{reason:?}") })
            }
        }
    }
}
