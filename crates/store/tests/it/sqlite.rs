//! Conformance of the sqlite backend.
