//! The `medrec` binary in separate processes, over loopback.

mod bench;
mod chain;
mod provider;
mod synth;
