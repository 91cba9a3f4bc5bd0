//! The SQLite backend (rusqlite): the embedded default, one file.
