//! The `medrec` binary in separate processes, over loopback.

mod chain;
mod provider;
