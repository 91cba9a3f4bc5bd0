//! Tests of the in-process EVM and of the gas measurement.

mod evm;
mod free_gas;
mod gas;
mod node;
mod parity;
mod persist;
mod pow;
mod rpc;
mod tools;
