//! The `medrec` binary in separate processes, over loopback.

mod bench;
mod chain;
mod demo;
mod patient;
mod provider;
mod research;
mod synth;
