//! Contract tests: the MedRec contracts executed on the in-process EVM (revm, london).
//!
//! Every external function, access rule, revert path and event is exercised here.

mod harness;
mod registrar;
mod relationships;
