//! The consent index against the real contracts on the in-process EVM.

mod consent;
mod follower;
