//! Record stores for MedRec (issue 4).
//!
//! Will hold the `RecordStore` trait with its SQLite, PostgreSQL and MySQL/MariaDB
//! backends, FHIR R4 search, and the read-only mapping of a provider's existing
//! relational schema. Nothing lives here yet.
