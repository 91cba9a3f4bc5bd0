//! The embedded MedRec chain: an Ethereum node on revm, in process.
//!
//! - [`evm::Evm`]: the world state at the `london` spec and transaction execution.
//! - [`chain::Chain`]: blocks, receipts, the transaction pool and sealing.
//! - [`genesis`]: the funded development accounts of the standard test mnemonic.
//! - [`deploy::deploy_medrec`]: the MedRec contracts on an [`evm::Evm`].
//! - [`gas::measure`]: the gas snapshot of every MedRec operation.
//! - [`pow`]: Proof-of-Work sealing (work, verification, difficulty) and [`miner`],
//!   the reference miner that researchers run.
//! - [`node::Node`]: a running chain with its sealing mode; [`rpc`] answers standard
//!   Ethereum JSON-RPC over it, [`server`] over HTTP and [`transport`] in process as
//!   an alloy transport.

pub mod bench;
mod blocks;
pub mod chain;
mod client;
pub mod deploy;
pub mod evm;
pub mod gas;
pub mod genesis;
pub mod miner;
pub mod node;
pub mod persist;
pub mod pow;
pub mod rpc;
pub mod server;
pub mod sign;
pub mod transport;
