//! The EHR manager web UI (patient, provider and researcher views).
//!
//! A client of the gatekeepers' JSON API; it holds no data access of its own.
//! Nothing lives here yet.
