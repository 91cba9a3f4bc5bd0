//! Conformance of the postgres backend.
