//! Chain client for MedRec.
//!
//! - [`consent::ConsentIndex`]: who may see what, built from the `Relationships`
//!   contract's events and decided in memory before any record is read.
//!
//! To come (issue 4): the alloy provider setup every party uses, sending with
//! confirmation, and the event follower that keeps the index at the chain's head.

pub mod bench;
pub mod consent;
