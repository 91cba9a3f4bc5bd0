//! The conformance suite against every backend, the last two on real servers.

mod mysql;
mod postgres;
mod sqlite;
