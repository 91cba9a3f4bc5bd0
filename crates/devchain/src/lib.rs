//! The embedded MedRec chain.
//!
//! Today this crate holds the execution core, [`evm::Evm`]: a revm world state at the
//! `london` spec with a block context; [`deploy::deploy_medrec`], which puts the MedRec
//! contracts on it; and [`gas::measure`], the gas snapshot of every MedRec operation.
//! The JSON-RPC node, sealing modes and persistence are built on it in issue 3.

pub mod deploy;
pub mod evm;
pub mod gas;
