//! One translation of a typed FHIR search into SQL, for every database MedRec reads:
//! the native schema on SQLite, PostgreSQL and MySQL/MariaDB, and a provider's own
//! schema through the legacy mapping.
//!
//! A [`Target`] says where a search looks (which tables, which expression is the id,
//! the patient, the date, the last update, and how codings are found); a [`Dialect`]
//! says how the database spells placeholders, quoting, casts and dates. From the two,
//! [`Target::count`] and [`Target::page`] build the statements of one search page.
//!
//! SQL text is assembled from fixed fragments and from identifiers that were checked
//! to be plain (the mapping's table and column names) only: every value of a search
//! becomes a placeholder bound to an [`Arg`], never text in the statement.

use crate::search::{DateBound, SearchQuery, SortField, TokenMatch};
use std::fmt::Write as _;

/// The SQL spoken by a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// SQLite 3: `?` placeholders, `"identifiers"`.
    Sqlite,
    /// PostgreSQL: `$1, $2, …` placeholders, `"identifiers"`.
    Postgres,
    /// MySQL and MariaDB: `?` placeholders, `` `identifiers` ``.
    Mysql,
}

impl Dialect {
    /// Appends the placeholder of the `n`-th parameter (from 1).
    fn placeholder(self, n: usize, sql: &mut String) {
        match self {
            Self::Postgres => {
                let _ = write!(sql, "${n}");
            }
            Self::Sqlite | Self::Mysql => sql.push('?'),
        }
    }

    /// A quoted identifier. Identifiers come from code or from a checked mapping
    /// (plain ASCII letters, digits and `_`); quoting keeps reserved words usable.
    pub(crate) fn quote(self, name: &str) -> String {
        debug_assert!(
            name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "only plain identifiers are quoted"
        );
        match self {
            Self::Sqlite | Self::Postgres => format!("\"{name}\""),
            Self::Mysql => format!("`{name}`"),
        }
    }

    /// `expr` as text, to read.
    pub(crate) fn as_text(self, expr: &str) -> String {
        match self {
            Self::Sqlite | Self::Postgres => format!("CAST({expr} AS TEXT)"),
            Self::Mysql => format!("CAST({expr} AS CHAR)"),
        }
    }

    /// `expr` as text that compares and orders byte for byte.
    pub(crate) fn as_bytes(self, expr: &str) -> String {
        match self {
            Self::Sqlite => format!("CAST({expr} AS TEXT) COLLATE BINARY"),
            Self::Postgres => format!("CAST({expr} AS TEXT) COLLATE \"C\""),
            Self::Mysql => format!("CAST({expr} AS BINARY)"),
        }
    }

    /// As [`as_bytes`](Self::as_bytes), but `NULL` when the text is empty.
    pub(crate) fn as_bytes_or_null(self, expr: &str) -> String {
        match self {
            Self::Sqlite => format!("NULLIF(CAST({expr} AS TEXT), '') COLLATE BINARY"),
            Self::Postgres => format!("NULLIF(CAST({expr} AS TEXT), '') COLLATE \"C\""),
            Self::Mysql => format!("NULLIF(CAST({expr} AS BINARY), '')"),
        }
    }

    /// The length of `text` as `SUBSTR` counts it in a code column: bytes where codes
    /// are binary (MySQL), characters elsewhere.
    fn length(self, text: &str) -> i64 {
        let n = match self {
            Self::Mysql => text.len(),
            Self::Sqlite | Self::Postgres => text.chars().count(),
        };
        i64::try_from(n).unwrap_or(i64::MAX)
    }

    /// The instant of a date or date-time column in unix milliseconds, taken as UTC
    /// (its day only when `date_only`); `NULL` when it is not a date.
    pub(crate) fn epoch_ms(self, expr: &str, date_only: bool) -> String {
        match (self, date_only) {
            (Self::Sqlite, true) => format!("(unixepoch(date({expr})) * 1000)"),
            (Self::Sqlite, false) => format!("(unixepoch({expr}) * 1000)"),
            (Self::Postgres, true) => {
                format!("(CAST(EXTRACT(EPOCH FROM CAST({expr} AS DATE)) AS BIGINT) * 1000)")
            }
            (Self::Postgres, false) => {
                format!("(CAST(EXTRACT(EPOCH FROM CAST({expr} AS TIMESTAMP)) AS BIGINT) * 1000)")
            }
            (Self::Mysql, true) => {
                format!("(TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', DATE({expr})) * 1000)")
            }
            (Self::Mysql, false) => {
                format!("(TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', {expr}) * 1000)")
            }
        }
    }
}

/// A value bound to a placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arg<'a> {
    /// An integer.
    Int(i64),
    /// Text.
    Text(&'a str),
}

/// A statement being built: SQL text with placeholders, and their values in order.
#[derive(Debug, Clone)]
pub(crate) struct Sql<'a> {
    dialect: Dialect,
    text: String,
    args: Vec<Arg<'a>>,
}

impl<'a> Sql<'a> {
    /// A statement in `dialect` starting with the fixed SQL `start`.
    pub(crate) fn new(dialect: Dialect, start: &str) -> Self {
        Self { dialect, text: start.to_owned(), args: Vec::new() }
    }

    /// Appends fixed SQL (never a value).
    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.text.push_str(sql);
        self
    }

    /// Appends a placeholder bound to `arg`.
    pub(crate) fn arg(&mut self, arg: Arg<'a>) -> &mut Self {
        self.args.push(arg);
        self.dialect.placeholder(self.args.len(), &mut self.text);
        self
    }

    /// Appends a placeholder bound to text.
    pub(crate) fn text(&mut self, value: &'a str) -> &mut Self {
        self.arg(Arg::Text(value))
    }

    /// Appends a placeholder bound to an integer.
    pub(crate) fn int(&mut self, value: i64) -> &mut Self {
        self.arg(Arg::Int(value))
    }

    /// The SQL text.
    pub(crate) fn sql(&self) -> &str {
        &self.text
    }

    /// The values of the placeholders, in order.
    pub(crate) fn args(&self) -> &[Arg<'a>] {
        &self.args
    }
}

/// Where the codings a `category` or `code` search compares with are found.
#[derive(Debug, Clone)]
pub(crate) enum Tokens {
    /// A table of codings, one row per (resource, parameter, system, code), matched
    /// with `EXISTS`. Each field is a fixed SQL fragment over the alias the table
    /// is given in `from`.
    Table {
        /// The table and its alias, e.g. `resource_tokens t`.
        from: &'static str,
        /// What ties a coding to the searched row, e.g. `t.id = r.id AND …`.
        join: &'static str,
        /// The column naming the parameter (`category` or `code`).
        param: &'static str,
        /// The coding's system.
        system: &'static str,
        /// The coding's code.
        code: &'static str,
        /// Codes are indexed by their first this many characters: conditions on the
        /// code repeat the comparison on `left(code, n)` so that the index serves them.
        code_prefix_index: Option<u32>,
    },
    /// At most one coding per parameter, from the row itself (a legacy mapping).
    Mapped {
        /// The `category` coding.
        category: Option<MappedCoding>,
        /// The `code` coding.
        code: Option<MappedCoding>,
    },
}

/// A coding a legacy mapping makes: a fixed system, and a fixed code or one from a
/// column.
#[derive(Debug, Clone)]
pub(crate) struct MappedCoding {
    /// The code system.
    pub(crate) system: String,
    /// The code.
    pub(crate) code: MappedCode,
}

/// Where a mapped coding's code comes from.
#[derive(Debug, Clone)]
pub(crate) enum MappedCode {
    /// Always this code.
    Fixed(String),
    /// An expression giving the code as bytes, `NULL` when the row has none.
    Column(String),
}

/// Where a search looks: every field is fixed SQL or built from checked identifiers.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// The tables after `FROM`, with their joins.
    pub(crate) from: String,
    /// The column holding the resource type, when the tables hold several types; it
    /// is compared with the searched type.
    pub(crate) type_column: Option<&'static str>,
    /// The id, compared and ordered byte for byte.
    pub(crate) id: String,
    /// The patient whose compartment holds the row; `None`: a `patient` search
    /// matches nothing.
    pub(crate) patient: Option<String>,
    /// The start of the resource's date in unix ms, `NULL` when it has none; `None`:
    /// a `date` search matches nothing.
    pub(crate) date: Option<String>,
    /// The last update in unix ms, never `NULL`; `None`: every row was last updated
    /// at the Unix epoch.
    pub(crate) last_updated: Option<String>,
    /// How codings are found.
    pub(crate) tokens: Tokens,
}

impl Target {
    /// `SELECT COUNT(*)` of the rows `query` matches (paging aside).
    pub(crate) fn count<'a>(&self, dialect: Dialect, query: &'a SearchQuery) -> Sql<'a> {
        let mut s = Sql::new(dialect, "SELECT COUNT(*) FROM ");
        s.push(&self.from);
        self.where_clause(&mut s, query);
        s
    }

    /// `SELECT columns` of one page of the rows `query` matches, in its order.
    pub(crate) fn page<'a>(
        &self,
        dialect: Dialect,
        query: &'a SearchQuery,
        columns: &str,
    ) -> Sql<'a> {
        let mut s = Sql::new(dialect, "SELECT ");
        s.push(columns).push(" FROM ").push(&self.from);
        self.where_clause(&mut s, query);
        self.order_by(&mut s, query);
        s.push(" LIMIT ").int(query.count.into()).push(" OFFSET ").int(query.offset.into());
        s
    }

    /// ` WHERE …` of `query`.
    fn where_clause<'a>(&self, s: &mut Sql<'a>, query: &'a SearchQuery) {
        match self.type_column {
            Some(column) => {
                s.push(" WHERE ").push(column).push(" = ").text(query.resource_type.as_str());
            }
            None => {
                s.push(" WHERE 1 = 1");
            }
        }
        if !query.ids.is_empty() {
            s.push(" AND ").push(&self.id).push(" IN (");
            for (i, id) in query.ids.iter().enumerate() {
                if i > 0 {
                    s.push(", ");
                }
                s.text(id.as_str());
            }
            s.push(")");
        }
        if let Some(patient) = &query.patient {
            match &self.patient {
                Some(column) => s.push(" AND ").push(column).push(" = ").text(patient.as_str()),
                None => s.push(" AND 1 = 0"),
            };
        }
        for (param, groups) in [("category", &query.category), ("code", &query.code)] {
            for any_of in groups {
                self.tokens(s, param, any_of);
            }
        }
        for condition in &query.tokens {
            self.tokens(s, condition.param, &condition.any_of);
        }
        for any_of in &query.name {
            self.name(s, any_of);
        }
        match &self.date {
            Some(date) if !query.date.is_empty() => {
                // A resource without a date matches no date condition.
                s.push(" AND ").push(date).push(" IS NOT NULL");
                bounds(s, date, &query.date);
            }
            Some(_) => {}
            None if query.date.is_empty() => {}
            None => {
                s.push(" AND 1 = 0");
            }
        }
        match &self.last_updated {
            Some(column) => bounds(s, column, &query.last_updated),
            None => {
                if !query.last_updated.iter().all(|b| b.matches(0)) {
                    s.push(" AND 1 = 0");
                }
            }
        }
    }

    /// One token parameter: some coding of `param` matches one of `any_of`.
    fn tokens<'a>(&self, s: &mut Sql<'a>, param: &'static str, any_of: &'a [TokenMatch]) {
        match &self.tokens {
            Tokens::Table { from, join, param: param_column, system, code, code_prefix_index } => {
                s.push(" AND EXISTS (SELECT 1 FROM ").push(from).push(" WHERE ").push(join);
                s.push(" AND ").push(param_column).push(" = ").text(param).push(" AND (");
                if any_of.is_empty() {
                    s.push("1 = 0");
                }
                for (i, token) in any_of.iter().enumerate() {
                    if i > 0 {
                        s.push(" OR ");
                    }
                    match (&token.system, &token.code) {
                        (None, None) => {
                            s.push("1 = 1");
                        }
                        (Some(value), None) => {
                            s.push(system).push(" = ").text(value);
                        }
                        (system_value, Some(value)) => {
                            s.push("(");
                            if let Some(system_value) = system_value {
                                s.push(system).push(" = ").text(system_value).push(" AND ");
                            }
                            s.push(code).push(" = ").text(value);
                            if let Some(n) = code_prefix_index {
                                s.push(&format!(" AND left({code}, {n}) = left(")).text(value);
                                s.push(&format!(", {n})"));
                            }
                            s.push(")");
                        }
                    }
                }
                s.push("))");
            }
            Tokens::Mapped { category, code } => {
                // A mapping makes at most a category and a code: any other token
                // parameter matches nothing.
                let coding = match param {
                    "category" => category,
                    "code" => code,
                    _ => &None,
                };
                let mut alternatives = 0;
                for token in any_of {
                    let Some(condition) = coding.as_ref().and_then(|c| mapped(c, token)) else {
                        continue;
                    };
                    s.push(if alternatives == 0 { " AND (" } else { " OR " });
                    alternatives += 1;
                    match condition {
                        Mapped::Always => s.push("1 = 1"),
                        Mapped::Equals(column, value) => s.push(column).push(" = ").text(value),
                        Mapped::Present(column) => s.push(column).push(" IS NOT NULL"),
                    };
                }
                s.push(if alternatives == 0 { " AND 1 = 0" } else { ")" });
            }
        }
    }

    /// One `name` parameter: some indexed name part starts with one of `any_of`
    /// (normalised text, compared character for character).
    fn name<'a>(&self, s: &mut Sql<'a>, any_of: &'a [String]) {
        let Tokens::Table { from, join, param, code, .. } = &self.tokens else {
            // A mapping makes no names.
            s.push(" AND 1 = 0");
            return;
        };
        s.push(" AND EXISTS (SELECT 1 FROM ").push(from).push(" WHERE ").push(join);
        s.push(" AND ").push(param).push(" = ").text("name").push(" AND (");
        if any_of.is_empty() {
            s.push("1 = 0");
        }
        for (i, prefix) in any_of.iter().enumerate() {
            if i > 0 {
                s.push(" OR ");
            }
            // PostgreSQL's SUBSTR takes an `integer` length, not the `bigint` bound.
            let (cast, end) = match s.dialect {
                Dialect::Postgres => ("CAST(", " AS INTEGER)"),
                Dialect::Sqlite | Dialect::Mysql => ("", ""),
            };
            s.push("SUBSTR(").push(code).push(", 1, ").push(cast);
            s.int(s.dialect.length(prefix)).push(end).push(") = ").text(prefix);
        }
        s.push("))");
    }

    /// ` ORDER BY` the sort keys, then the id ascending; rows without a date come last
    /// in both directions of a date sort.
    fn order_by(&self, s: &mut Sql<'_>, query: &SearchQuery) {
        s.push(" ORDER BY ");
        for key in &query.sort {
            let direction = if key.descending { " DESC, " } else { " ASC, " };
            match key.field {
                SortField::Id => {
                    s.push(&self.id).push(direction);
                }
                SortField::LastUpdated => {
                    if let Some(column) = &self.last_updated {
                        s.push(column).push(direction);
                    }
                }
                SortField::Date => {
                    if let Some(date) = &self.date {
                        s.push(date).push(" IS NULL, ").push(date).push(direction);
                    }
                }
            }
        }
        s.push(&self.id).push(" ASC");
    }
}

/// How one token matches a mapped coding.
enum Mapped<'t, 'a> {
    /// Every row: the fixed code matches.
    Always,
    /// Rows whose code column equals the value.
    Equals(&'t str, &'a str),
    /// Rows with a code (any code in the system).
    Present(&'t str),
}

/// How `token` matches `coding`; `None` when it never does.
fn mapped<'t, 'a>(coding: &'t MappedCoding, token: &'a TokenMatch) -> Option<Mapped<'t, 'a>> {
    if token.system.as_ref().is_some_and(|system| *system != coding.system) {
        return None;
    }
    match (&coding.code, &token.code) {
        (MappedCode::Fixed(fixed), Some(code)) => (fixed == code).then_some(Mapped::Always),
        (MappedCode::Fixed(_), None) => Some(Mapped::Always),
        (MappedCode::Column(column), Some(code)) => Some(Mapped::Equals(column, code)),
        (MappedCode::Column(column), None) => Some(Mapped::Present(column)),
    }
}

/// ` AND expr >= ? AND expr < ?` for each bound.
fn bounds(s: &mut Sql<'_>, expr: &str, list: &[DateBound]) {
    for bound in list {
        let (lower, upper) = bound.bounds();
        if let Some(lower) = lower {
            s.push(" AND ").push(expr).push(" >= ").int(lower);
        }
        if let Some(upper) = upper {
            s.push(" AND ").push(expr).push(" < ").int(upper);
        }
    }
}

/// Binds the arguments of a statement to a rusqlite statement.
impl rusqlite::ToSql for Arg<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        Ok(match *self {
            Self::Int(i) => rusqlite::types::ToSqlOutput::from(i),
            Self::Text(t) => rusqlite::types::ToSqlOutput::from(t),
        })
    }
}

/// A sqlx query for `statement` with its arguments bound.
pub(crate) fn sqlx_query<'s, DB>(
    statement: &'s Sql<'_>,
) -> sqlx::query::Query<'s, DB, DB::Arguments>
where
    DB: sqlx::Database,
    for<'a> &'a str: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    for<'a> i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    // Only fixed SQL, checked identifiers and placeholders are in the text; every value
    // is an argument.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(statement.sql().to_owned()));
    for arg in statement.args() {
        query = match *arg {
            Arg::Int(i) => query.bind(i),
            Arg::Text(t) => query.bind(t),
        };
    }
    query
}

#[cfg(test)]
mod tests;
