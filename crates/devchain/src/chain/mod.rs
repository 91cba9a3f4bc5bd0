//! The chain: blocks, receipts, the transaction pool, and sealing.
//!
//! [`Chain`] owns the world state ([`Evm`]) and the sealed blocks. Transactions enter
//! through [`Chain::submit`] (a signed, EIP-2718-encoded transaction, exactly what
//! `eth_sendRawTransaction` carries), which checks them the way a real node's pool
//! does; [`Chain::seal`] executes the executable ones into a new block.
//! Queries answer what the JSON-RPC layer needs.
//!
//! The code is split by concern; every public item is re-exported here, so its path
//! stays `chain::…`:
//! - `config`: [`ChainConfig`], how a chain starts;
//! - `error`: [`TxError`] (refusals at the door) and [`ChainError`];
//! - `block`: sealed [`Block`]s, their [`TxReceipt`]s and [`LocatedLog`]s;
//! - `open`: creating, opening, replaying and snapshotting a chain, genesis and the
//!   deployment of the MedRec contracts;
//! - `state`: queries of state, blocks, transactions and logs, and `eth_call`;
//! - `pool`: [`SignedTx`], the checks of [`Chain::submit`] and the pending pool;
//! - `free`: the guard of zero-price transactions (a free-gas chain);
//! - `seal`: [`Selection`], [`Chain::seal`], Proof-of-Work [`WorkTemplate`]s and
//!   building blocks.

mod block;
mod config;
mod error;
mod free;
mod open;
mod pool;
mod seal;
mod state;

pub use block::{Block, LocatedLog, MinedAt, TxReceipt};
pub use config::{ChainConfig, DEFAULT_FREE_GAS_BLOCK_GAS, DEFAULT_FREE_GAS_MAX_PENDING};
pub use error::{ChainError, TxError};
pub use pool::{MAX_NONCE_GAP, SignedTx, encode_raw, intrinsic_gas, tx_env};
pub use seal::{Selection, WorkTemplate};

use crate::{
    blocks::BlockStore, deploy::Deployment, evm::Evm, genesis::DevAccount, persist::Journal,
};
use alloy::primitives::{Address, B256};
use pool::PoolTx;
use std::collections::{BTreeMap, HashMap};

/// The chain: state, blocks and pool.
#[derive(Debug)]
pub struct Chain {
    config: ChainConfig,
    evm: Evm,
    blocks: BlockStore,
    by_hash: HashMap<B256, u64>,
    tx_index: HashMap<B256, (u64, usize)>,
    pool: BTreeMap<Address, BTreeMap<u64, PoolTx>>,
    pool_hashes: HashMap<B256, (Address, u64)>,
    arrivals: u64,
    accounts: Vec<DevAccount>,
    deployment: Option<Deployment>,
    journal: Option<Journal>,
    halted: Option<String>,
}
