//! Contract tests: the MedRec contracts executed on the in-process EVM (revm, london).
//!
//! Every external function, access rule, revert path and event is exercised here.

// Calls are built inline and handed over by value: the tests read better that way.
#![allow(clippy::needless_pass_by_value)]

mod anchors;
mod harness;
mod registrar;
mod relationships;
