//! The consent index against the real contracts on the in-process EVM.

mod anchors;
mod care;
mod consent;
mod follower;
mod inbox;
