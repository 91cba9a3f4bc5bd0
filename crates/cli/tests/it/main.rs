//! The `medrec` binary in separate processes, over loopback.

mod bench;
mod bench_research;
mod care;
mod chain;
mod demo;
mod keys;
mod patient;
mod patient_workflow;
mod provider;
mod research;
mod synth;
mod viewer;
mod workflow;
