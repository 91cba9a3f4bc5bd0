//! Research mining for MedRec (issue 6).
//!
//! Will hold the typed bounty-query language, its canonical text and commitment,
//! and the private aggregates (k-anonymity, differential privacy, budgets).
//! Nothing lives here yet.
