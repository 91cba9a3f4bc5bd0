//! The conformance suite against every backend, the last two on real servers.

mod audit;
mod legacy;
mod mysql;
mod postgres;
mod sqlite;
