//! Conformance of the mysql backend.
