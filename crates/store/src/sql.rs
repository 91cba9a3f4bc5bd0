//! PostgreSQL and MySQL/MariaDB backends (sqlx).
