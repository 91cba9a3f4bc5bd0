//! One module per subcommand.

pub(crate) mod app;
pub(crate) mod bench;
pub(crate) mod chain;
pub(crate) mod clinician;
pub(crate) mod common;
pub(crate) mod demo;
mod enforce;
pub(crate) mod group;
pub(crate) mod institution;
pub(crate) mod patient;
pub(crate) mod provider;
pub(crate) mod recovery;
pub(crate) mod relate;
pub(crate) mod research;
pub(crate) mod synth;
pub(crate) mod viewer;
