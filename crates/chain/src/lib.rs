//! Chain client for MedRec.
//!
//! - [`consent::ConsentIndex`]: who may see what, built from the `Relationships`
//!   contract's events and decided in memory before any record is read.
//! - [`follower::Follower`]: keeps the index at the chain's head through any alloy
//!   provider (the devchain in process, or a real node), undoing reorganised blocks,
//!   with the freshness a gatekeeper needs to fail closed.
//! - [`anchors::check_anchor`]: whether a provider really anchored a given access-log
//!   head in a given block (what a patient's client checks before trusting a proof).
//!
//! - [`inbox`]: a participant's notices (new relationships, status changes, pointer
//!   updates, grants and revocations) and the summary of each relationship.
//! - [`care`]: groups granted like one viewer, and break-glass openings of a patient's
//!   emergency set (part of the consent index; read for a patient's inbox).

pub mod anchors;
pub mod bench;
pub mod care;
pub mod consent;
pub mod follower;
pub mod inbox;
