//! The errors of the chain: [`TxError`] when a transaction is refused at the door,
//! [`ChainError`] for queries, sealing and the data directory.

use super::ChainConfig;
use crate::{evm::EvmError, persist::PersistError};
use alloy::primitives::{Address, Bytes, U256};

/// Why a transaction was refused at the door (before any block).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxError {
    /// The bytes are not a signed transaction.
    #[error("failed to decode signed transaction: {0}")]
    Decode(String),
    /// A type this chain (london) does not run.
    #[error("transaction type {0} not supported (london: legacy, EIP-2930 and EIP-1559 only)")]
    UnsupportedType(u8),
    /// A legacy transaction without EIP-155 replay protection.
    #[error("only replay-protected (EIP-155) transactions allowed over RPC")]
    Unprotected,
    /// Signed for another chain.
    #[error("invalid chain id for signer: have {have} want {want}")]
    WrongChainId {
        /// The transaction's chain id.
        have: u64,
        /// This chain's id.
        want: u64,
    },
    /// The signature does not recover to an address.
    #[error("invalid sender: the signature does not recover")]
    InvalidSignature,
    /// The same transaction was already received.
    #[error("already known")]
    AlreadyKnown,
    /// The nonce was already used.
    #[error("nonce too low: next nonce {next}, tx nonce {got}")]
    NonceTooLow {
        /// The sender's next nonce.
        next: u64,
        /// The transaction's nonce.
        got: u64,
    },
    /// Too far ahead of the sender's next nonce.
    #[error(
        "nonce too high: next nonce {next}, tx nonce {got} (at most {max_gap} ahead are queued)"
    )]
    NonceTooHigh {
        /// The sender's next nonce.
        next: u64,
        /// The transaction's nonce.
        got: u64,
        /// How far ahead a nonce may be.
        max_gap: u64,
    },
    /// A pending transaction with the same nonce pays at least as much.
    #[error("replacement transaction underpriced")]
    ReplacementUnderpriced,
    /// Gas limit below the intrinsic cost.
    #[error("intrinsic gas too low: have {have}, want {want}")]
    IntrinsicGasTooLow {
        /// The transaction's gas limit.
        have: u64,
        /// The intrinsic gas.
        want: u64,
    },
    /// Gas limit above the block's.
    #[error("exceeds block gas limit: have {have}, block limit {limit}")]
    GasLimitTooHigh {
        /// The transaction's gas limit.
        have: u64,
        /// The block gas limit.
        limit: u64,
    },
    /// Fee cap below the base fee.
    #[error(
        "max fee per gas less than block base fee: maxFeePerGas: {max_fee}, baseFee: {base_fee}"
    )]
    FeeCapTooLow {
        /// The fee cap.
        max_fee: u128,
        /// The next block's base fee.
        base_fee: u64,
    },
    /// The chain stopped after its data directory failed.
    #[error("the chain stopped after a data directory failure ({0}); restart it")]
    Halted(String),
    /// Tip above fee cap.
    #[error("max priority fee per gas higher than max fee per gas")]
    TipAboveFeeCap,
    /// Not enough balance for gas and value.
    #[error("insufficient funds for gas * price + value: have {have} want {want}")]
    InsufficientFunds {
        /// The sender's balance.
        have: U256,
        /// What the transaction may cost.
        want: U256,
    },
    /// Not enough balance for a priced transaction on a chain where gas is free.
    #[error(
        "insufficient funds for gas * price + value: have {have} want {want} (gas is free on this chain: send with maxFeePerGas 0, or gasPrice 0)"
    )]
    InsufficientFundsFreeGas {
        /// The sender's balance.
        have: U256,
        /// What the transaction may cost.
        want: U256,
    },
    /// A zero-price transaction that moves value.
    #[error(
        "a transaction at zero gas price cannot send value (this one sends {value} wei): send no value, or pay for gas"
    )]
    FreeValueTransfer {
        /// The value it sends.
        value: U256,
    },
    /// A zero-price transaction to a contract outside the allowed ones.
    #[error(
        "a transaction at zero gas price may only call the MedRec contracts (and the contracts this chain allows); {to} is not one of them: pay for gas to call it"
    )]
    FreeTargetNotAllowed {
        /// What it calls.
        to: Address,
    },
    /// A zero-price contract creation from an account not allowed to deploy for free.
    #[error(
        "only the founding institution (and the deployers this chain allows) may deploy contracts at zero gas price; {sender} may not: pay for gas to deploy"
    )]
    FreeCreateNotAllowed {
        /// Who sent it.
        sender: Address,
    },
    /// A zero-price transaction that reverts against the pending state. Over
    /// JSON-RPC: code 3, "execution reverted", the revert data in `data`.
    #[error(
        "execution reverted: a transaction at zero gas price must succeed against the pending state, and this one reverts (revert data {data})"
    )]
    FreeReverted {
        /// The revert data (the contract's custom error).
        data: Bytes,
    },
    /// A zero-price transaction that fails (halts) against the pending state.
    #[error(
        "a transaction at zero gas price must succeed against the pending state, and this one fails: {reason}"
    )]
    FreeFails {
        /// What went wrong.
        reason: String,
    },
    /// The sender has as many zero-price transactions pending as allowed.
    #[error(
        "{sender} already has {max} transactions at zero gas price waiting to be mined, the most allowed: wait for them, or pay for gas"
    )]
    FreePendingLimit {
        /// Who sent it.
        sender: Address,
        /// The limit.
        max: u64,
    },
    /// A zero-price transaction whose gas limit exceeds what one sender may use at zero
    /// price in a block (it could never be included).
    #[error(
        "gas limit {have} is above the {allowance} gas that one sender may use at zero gas price per block: lower the gas limit, or pay for gas"
    )]
    FreeGasAboveAllowance {
        /// The transaction's gas limit.
        have: u64,
        /// Zero-price gas per sender per block.
        allowance: u64,
    },
}

/// Errors of chain queries and sealing.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The EVM refused to run something.
    #[error(transparent)]
    Evm(#[from] EvmError),
    /// Deploying the MedRec contracts at genesis failed.
    #[error("deploying the MedRec contracts failed: {0}")]
    Deploy(String),
    /// The data directory could not be read or written.
    #[error(transparent)]
    Persist(#[from] PersistError),
    /// The data directory holds a different chain than the one asked for.
    #[error(
        "the data directory holds another chain ({stored:?}) than the one asked for ({requested:?}); use another directory or the stored settings"
    )]
    ConfigMismatch {
        /// What the directory holds.
        stored: Box<ChainConfig>,
        /// What was asked for.
        requested: Box<ChainConfig>,
    },
    /// Replaying the journal did not reproduce a block.
    #[error("the data directory is inconsistent: replaying block {0} gives a different result")]
    Diverged(u64),
    /// The work was for an older head, or its transactions left the pool.
    #[error(
        "stale work: the chain moved on since it was handed out (head is block {head}); ask for new work"
    )]
    StaleWork {
        /// The current head.
        head: u64,
    },
    /// The nonce does not meet the work's target.
    #[error("the nonce does not meet the target of this work")]
    InvalidWork,
    /// A previous write to the data directory failed; the chain stopped taking blocks.
    #[error("the chain stopped after a data directory failure ({0}); restart it")]
    Halted(String),
}
