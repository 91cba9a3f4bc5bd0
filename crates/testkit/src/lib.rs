//! Test harness for MedRec (issue 5).
//!
//! Will spawn a devchain, gatekeepers with fresh databases and wallets in-process
//! on port 0, for integration and end-to-end tests. Nothing lives here yet.
