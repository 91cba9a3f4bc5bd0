//! Bounty queries: the typed aggregate language, its canonical text and commitment.
//!
//! See the crate documentation for the grammar. [`BountyQuery`]'s `FromStr` accepts
//! only absolute date windows; [`BountyQuery::parse_relative`] also accepts
//! `date in last N days` and resolves it against a given day. [`BountyQuery::canonical`]
//! prints the one canonical text, and `canonical(parse(t))` parses back to the same query.

use crate::policy::Policy;
use alloy_primitives::{B256, keccak256};
use std::{fmt, str::FromStr};
use time::{Date, Duration, Month};

/// The only element aggregates read: `Observation.valueQuantity.value`.
pub const ELEMENT: &str = "Observation.valueQuantity";

/// The prefix hashed before a query's text, so that a bounty commitment can never
/// equal the commitment of another kind of text (e.g. a data pointer's query).
pub const COMMITMENT_DOMAIN: &[u8] = b"medrec/bounty-query/v1\n";

/// At most this many quantiles in one query.
pub const MAX_QUANTILES: usize = 20;

/// At most this many histogram bins.
pub const MAX_BINS: usize = 1000;

/// Bounds and numbers in a query must lie within ±this value.
pub const MAX_MAGNITUDE: f64 = 1e12;

/// A relative window is at most this many days long.
pub const MAX_RELATIVE_DAYS: i64 = 36_600;

/// The keccak256 commitment of a query text: `keccak256(COMMITMENT_DOMAIN || text)`,
/// over the text exactly as given (no parsing, no canonicalization).
pub fn commitment_of_text(text: &str) -> B256 {
    let mut bytes = Vec::with_capacity(COMMITMENT_DOMAIN.len() + text.len());
    bytes.extend_from_slice(COMMITMENT_DOMAIN);
    bytes.extend_from_slice(text.as_bytes());
    keccak256(&bytes)
}

/// What a bounty computes over the selected values.
#[derive(Debug, Clone, PartialEq)]
pub enum Aggregate {
    /// The number of values.
    Count,
    /// The sum of the (clamped) values.
    Sum,
    /// The mean of the (clamped) values.
    Mean,
    /// The smallest value (the 0th percentile).
    Min,
    /// The largest value (the 100th percentile).
    Max,
    /// Percentiles, each in 0..=100, strictly increasing.
    Quantiles(Vec<f64>),
    /// Counts of values in bins of this width from the range's low bound.
    Histogram(f64),
}

impl Aggregate {
    /// The aggregate's keyword.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Sum => "sum",
            Self::Mean => "mean",
            Self::Min => "min",
            Self::Max => "max",
            Self::Quantiles(_) => "quantiles",
            Self::Histogram(_) => "histogram",
        }
    }
}

/// A coded filter: `system|code`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Coding {
    /// The code system URI, e.g. `http://loinc.org`.
    pub system: String,
    /// The code, e.g. `2498-4`.
    pub code: String,
}

impl fmt::Display for Coding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}|{}", self.system, self.code)
    }
}

/// How cells are grouped; both false means one cell for the whole cohort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct GroupBy {
    /// One cell per `Patient.gender`.
    pub sex: bool,
    /// One cell per 10-year age band at the release date.
    pub age_band: bool,
}

/// A parsed, valid bounty query.
#[derive(Debug, Clone, PartialEq)]
pub struct BountyQuery {
    /// What is computed.
    pub aggregate: Aggregate,
    /// The Observation code the values must have.
    pub code: Coding,
    /// A category the Observation must have: a code (`laboratory`) or `system|code`.
    pub category: Option<String>,
    /// First day of the window (inclusive).
    pub from: Date,
    /// Day after the window (exclusive).
    pub until: Date,
    /// Values are clamped into `lo..=hi`.
    pub lo: f64,
    /// Upper bound of the value range.
    pub hi: f64,
    /// The grouping.
    pub group_by: GroupBy,
}

impl BountyQuery {
    /// Parses `text`, also accepting a relative window `date in last N days`, which
    /// becomes `date >= today - N days and date < today`.
    pub fn parse_relative(text: &str, today: Date) -> Result<Self, QueryError> {
        parse(text)?.resolve(today)
    }

    /// The one canonical text of this query.
    pub fn canonical(&self) -> String {
        let element = match &self.aggregate {
            Aggregate::Quantiles(ps) => {
                let ps: Vec<String> = ps.iter().map(|p| number(*p)).collect();
                format!("{ELEMENT}, {}", ps.join(", "))
            }
            Aggregate::Histogram(w) => format!("{ELEMENT}, {}", number(*w)),
            _ => ELEMENT.to_owned(),
        };
        let mut s = format!("{}({element}) where code = {}", self.aggregate.name(), self.code);
        if let Some(c) = &self.category {
            s.push_str(" and category = ");
            s.push_str(c);
        }
        s.push_str(&format!(
            " and date >= {} and date < {} and range {}..{}",
            date_text(self.from),
            date_text(self.until),
            number(self.lo),
            number(self.hi)
        ));
        match (self.group_by.sex, self.group_by.age_band) {
            (true, true) => s.push_str(" group by sex, age_band"),
            (true, false) => s.push_str(" group by sex"),
            (false, true) => s.push_str(" group by age_band"),
            (false, false) => {}
        }
        s
    }

    /// The commitment of the canonical text (see [`commitment_of_text`]).
    pub fn commitment(&self) -> B256 {
        commitment_of_text(&self.canonical())
    }

    /// The ε this bounty spends: the policy's ε per bounty. Groups partition the
    /// patients, so every cell uses the full ε (parallel composition).
    pub fn epsilon_cost(&self, policy: &Policy) -> f64 {
        policy.epsilon_per_bounty
    }

    /// The number of histogram bins, or 0 for other aggregates.
    pub fn bins(&self) -> usize {
        match self.aggregate {
            Aggregate::Histogram(w) => bin_count(self.lo, self.hi, w),
            _ => 0,
        }
    }
}

impl FromStr for BountyQuery {
    type Err = QueryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parsed = parse(s)?;
        match parsed.window {
            Window::Absolute(from, until) => Ok(parsed.with_window(from, until)),
            Window::Relative(_) => Err(QueryError::RelativeWindow),
        }
    }
}

impl fmt::Display for BountyQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.canonical())
    }
}

/// Why a query text is not a valid bounty query.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The text is empty.
    #[error(
        "the query is empty: write e.g. 'mean(Observation.valueQuantity) where code = http://loinc.org|2498-4 and date >= 2026-01-08 and date < 2026-01-15 and range 0..500'"
    )]
    Empty,
    /// Not one of the aggregates.
    #[error(
        "unknown aggregate '{0}': use count, sum, mean, min, max, quantiles(...) or histogram(...)"
    )]
    UnknownAggregate(String),
    /// The element is not supported.
    #[error("unsupported element '{0}': only Observation.valueQuantity can be aggregated")]
    UnknownElement(String),
    /// Something else was found where a part of the query was expected.
    #[error("expected {expected} but found {found}")]
    Expected {
        /// What the grammar wanted.
        expected: String,
        /// What was there (`the end of the query` at the end).
        found: String,
    },
    /// A filter other than code, category, date and range.
    #[error("unknown filter '{0}': use code, category, date or range")]
    UnknownFilter(String),
    /// A filter given twice.
    #[error("the filter '{0}' is given twice")]
    Duplicate(String),
    /// A required filter is missing.
    #[error("the query needs {0}")]
    Missing(&'static str),
    /// Text after the end of the query.
    #[error("unexpected '{0}' after the end of the query")]
    Trailing(String),
    /// Not a finite decimal number.
    #[error("'{0}' is not a number: write a decimal like 12 or -0.5")]
    Number(String),
    /// A number beyond ±[`MAX_MAGNITUDE`].
    #[error("{0} is too large: numbers must be within ±1e12")]
    TooLarge(String),
    /// Not a `YYYY-MM-DD` date.
    #[error("'{0}' is not a date: write it as YYYY-MM-DD, e.g. 2026-01-08")]
    Date(String),
    /// Not `system|code`.
    #[error("'{0}' is not a code: write it as system|code, e.g. http://loinc.org|2498-4")]
    Code(String),
    /// A category that is not a plain code or `system|code`.
    #[error("'{0}' is not a category: write a code such as laboratory, or system|code")]
    Category(String),
    /// The window's start is not before its end.
    #[error("the date window is empty or inverted: {from} is not before {until}")]
    InvertedWindow {
        /// The start given.
        from: String,
        /// The end given.
        until: String,
    },
    /// `range lo..hi` with lo >= hi.
    #[error("the range is empty or inverted: {lo} is not below {hi}")]
    InvertedRange {
        /// The low bound.
        lo: String,
        /// The high bound.
        hi: String,
    },
    /// `range` without `lo..hi`.
    #[error("'{0}' is not a range: write it as lo..hi, e.g. range 0..500")]
    Range(String),
    /// `quantiles()` with nothing in it.
    #[error(
        "quantiles needs at least one percentile, e.g. quantiles(Observation.valueQuantity, 25, 50, 75)"
    )]
    NoQuantiles,
    /// Too many quantiles.
    #[error("at most 20 quantiles may be asked for, not {0}")]
    TooManyQuantiles(usize),
    /// A percentile outside 0..=100.
    #[error("percentile {0} is outside 0..100")]
    Percentile(String),
    /// The same percentile twice.
    #[error("percentile {0} is asked for twice")]
    DuplicatePercentile(String),
    /// A histogram width that is not positive.
    #[error("the histogram width must be positive, not {0}")]
    Width(String),
    /// A histogram with too many bins.
    #[error(
        "the histogram would have {0} bins: at most 1000 are allowed, so use a wider bin or a narrower range"
    )]
    TooManyBins(usize),
    /// An unknown grouping.
    #[error("cannot group by '{0}': use sex, age_band or both")]
    UnknownGroup(String),
    /// `date in last N days` where only absolute dates are allowed.
    #[error(
        "relative windows (date in last N days) must be turned into dates by the provider before publishing: write date >= YYYY-MM-DD and date < YYYY-MM-DD"
    )]
    RelativeWindow,
    /// A relative window of a bad length.
    #[error("'{0}' is not a number of days: write date in last N days with N between 1 and 36600")]
    Days(String),
    /// Mixing a relative window with absolute dates.
    #[error("the date window is given both as 'date in last N days' and as dates: use one")]
    MixedWindow,
}

// ---------------------------------------------------------------------------------
// Parsing

/// The window of a parsed text, before resolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Window {
    Absolute(Date, Date),
    Relative(i64),
}

/// A parsed text whose window may still be relative.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Parsed {
    pub(crate) aggregate: Aggregate,
    pub(crate) code: Coding,
    pub(crate) category: Option<String>,
    pub(crate) window: Window,
    pub(crate) lo: f64,
    pub(crate) hi: f64,
    pub(crate) group_by: GroupBy,
}

impl Parsed {
    pub(crate) fn with_window(self, from: Date, until: Date) -> BountyQuery {
        BountyQuery {
            aggregate: self.aggregate,
            code: self.code,
            category: self.category,
            from,
            until,
            lo: self.lo,
            hi: self.hi,
            group_by: self.group_by,
        }
    }

    pub(crate) fn resolve(self, today: Date) -> Result<BountyQuery, QueryError> {
        match self.window {
            Window::Absolute(from, until) => Ok(self.with_window(from, until)),
            Window::Relative(days) => {
                let from = today
                    .checked_sub(Duration::days(days))
                    .ok_or_else(|| QueryError::Days(days.to_string()))?;
                Ok(self.with_window(from, today))
            }
        }
    }

    /// The same query ignoring where its window lies: for matching offers.
    pub(crate) fn shape_matches(&self, q: &BountyQuery) -> bool {
        let window = match self.window {
            Window::Absolute(from, until) => from == q.from && until == q.until,
            Window::Relative(days) => (q.until - q.from).whole_days() == days,
        };
        window
            && self.aggregate == q.aggregate
            && self.code == q.code
            && self.category == q.category
            && self.lo == q.lo
            && self.hi == q.hi
            && self.group_by == q.group_by
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Open,
    Close,
    Comma,
    Eq,
    Ge,
    Lt,
}

impl Token {
    fn describe(&self) -> String {
        match self {
            Self::Word(w) => format!("'{}'", w.chars().take(60).collect::<String>()),
            Self::Open => "'('".into(),
            Self::Close => "')'".into(),
            Self::Comma => "','".into(),
            Self::Eq => "'='".into(),
            Self::Ge => "'>='".into(),
            Self::Lt => "'<'".into(),
        }
    }
}

fn tokenize(text: &str) -> Result<Vec<Token>, QueryError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' | ',' | '=' => {
                chars.next();
                out.push(match c {
                    '(' => Token::Open,
                    ')' => Token::Close,
                    ',' => Token::Comma,
                    _ => Token::Eq,
                });
            }
            '>' => {
                chars.next();
                if chars.next_if_eq(&'=').is_none() {
                    return Err(QueryError::Expected {
                        expected: "'>=' (windows are date >= start and date < end)".into(),
                        found: "'>'".into(),
                    });
                }
                out.push(Token::Ge);
            }
            '<' => {
                chars.next();
                if chars.peek() == Some(&'=') {
                    return Err(QueryError::Expected {
                        expected: "'<' (windows end before a date: date < end)".into(),
                        found: "'<='".into(),
                    });
                }
                out.push(Token::Lt);
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || "(),=<>".contains(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                out.push(Token::Word(word));
            }
        }
    }
    Ok(out)
}

struct Cursor {
    tokens: Vec<Token>,
    at: usize,
}

impl Cursor {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn found(&self) -> String {
        self.peek().map_or_else(|| "the end of the query".to_owned(), Token::describe)
    }

    fn expect(&mut self, token: &Token, expected: &str) -> Result<(), QueryError> {
        if self.peek() == Some(token) {
            self.at += 1;
            Ok(())
        } else {
            Err(QueryError::Expected { expected: expected.into(), found: self.found() })
        }
    }

    fn word(&mut self, expected: &str) -> Result<String, QueryError> {
        match self.peek() {
            Some(Token::Word(w)) => {
                let w = w.clone();
                self.at += 1;
                Ok(w)
            }
            _ => Err(QueryError::Expected { expected: expected.into(), found: self.found() }),
        }
    }

    fn keyword(&mut self, keyword: &str) -> Result<(), QueryError> {
        match self.peek() {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword) => {
                self.at += 1;
                Ok(())
            }
            _ => {
                Err(QueryError::Expected { expected: format!("'{keyword}'"), found: self.found() })
            }
        }
    }

    fn at_keyword(&self, keyword: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w.eq_ignore_ascii_case(keyword))
    }
}

pub(crate) fn parse(text: &str) -> Result<Parsed, QueryError> {
    let tokens = tokenize(text)?;
    if tokens.is_empty() {
        return Err(QueryError::Empty);
    }
    let mut c = Cursor { tokens, at: 0 };
    let name = c.word("an aggregate such as mean(...)")?;
    let lower = name.to_ascii_lowercase();
    if !["count", "sum", "mean", "min", "max", "quantiles", "histogram"].contains(&lower.as_str()) {
        return Err(QueryError::UnknownAggregate(short(&name)));
    }
    c.expect(&Token::Open, &format!("'(' after {lower}"))?;
    let element = c.word("the element Observation.valueQuantity")?;
    if !element.eq_ignore_ascii_case(ELEMENT)
        && !element.eq_ignore_ascii_case("Observation.valueQuantity.value")
    {
        return Err(QueryError::UnknownElement(short(&element)));
    }
    let mut args = Vec::new();
    while c.peek() == Some(&Token::Comma) {
        c.at += 1;
        args.push(c.word("a number")?);
    }
    c.expect(&Token::Close, "')'")?;
    let aggregate = match lower.as_str() {
        "quantiles" => Aggregate::Quantiles(percentiles(&args)?),
        "histogram" => match args.as_slice() {
            [w] => {
                let w = parse_number(w)?;
                if w <= 0.0 {
                    return Err(QueryError::Width(number(w)));
                }
                Aggregate::Histogram(w)
            }
            _ => {
                return Err(QueryError::Expected {
                    expected: "one bin width, e.g. histogram(Observation.valueQuantity, 10)".into(),
                    found: format!("{} arguments", args.len()),
                });
            }
        },
        other => {
            if let Some(a) = args.first() {
                return Err(QueryError::Expected {
                    expected: format!("')' ({other} takes only the element)"),
                    found: format!("'{}'", short(a)),
                });
            }
            match other {
                "count" => Aggregate::Count,
                "sum" => Aggregate::Sum,
                "mean" => Aggregate::Mean,
                "min" => Aggregate::Min,
                _ => Aggregate::Max,
            }
        }
    };
    c.keyword("where")?;

    let mut code = None;
    let mut category = None;
    let mut from = None;
    let mut until = None;
    let mut relative = None;
    let mut range = None;
    loop {
        let filter = c.word("a filter: code, category, date or range")?;
        match filter.to_ascii_lowercase().as_str() {
            "code" => {
                c.expect(&Token::Eq, "'=' after code")?;
                let w = c.word("system|code")?;
                if code.is_some() {
                    return Err(QueryError::Duplicate("code".into()));
                }
                code = Some(parse_coding(&w)?);
            }
            "category" => {
                c.expect(&Token::Eq, "'=' after category")?;
                let w = c.word("a category such as laboratory")?;
                if category.is_some() {
                    return Err(QueryError::Duplicate("category".into()));
                }
                category = Some(parse_category(&w)?);
            }
            "date" => match c.peek() {
                Some(Token::Ge) => {
                    c.at += 1;
                    let w = c.word("a date YYYY-MM-DD")?;
                    if from.is_some() {
                        return Err(QueryError::Duplicate("date >=".into()));
                    }
                    from = Some(parse_date(&w)?);
                }
                Some(Token::Lt) => {
                    c.at += 1;
                    let w = c.word("a date YYYY-MM-DD")?;
                    if until.is_some() {
                        return Err(QueryError::Duplicate("date <".into()));
                    }
                    until = Some(parse_date(&w)?);
                }
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("in") => {
                    c.at += 1;
                    c.keyword("last")?;
                    let n = c.word("a number of days")?;
                    c.keyword("days")?;
                    if relative.is_some() {
                        return Err(QueryError::Duplicate("date in last".into()));
                    }
                    let days = n
                        .parse::<i64>()
                        .ok()
                        .filter(|d| (1..=MAX_RELATIVE_DAYS).contains(d))
                        .ok_or_else(|| QueryError::Days(short(&n)))?;
                    relative = Some(days);
                }
                _ => {
                    return Err(QueryError::Expected {
                        expected: "'>=', '<' or 'in last N days' after date".into(),
                        found: c.found(),
                    });
                }
            },
            "range" => {
                // `lo..hi`, also written `lo .. hi`, `lo ..hi` or `lo.. hi`.
                let mut text = c.word("lo..hi")?;
                while let Some(Token::Word(next)) = c.peek() {
                    let joins =
                        text.ends_with("..") || (next.starts_with("..") && !text.contains(".."));
                    if !joins {
                        break;
                    }
                    text.push_str(next);
                    c.at += 1;
                }
                if range.is_some() {
                    return Err(QueryError::Duplicate("range".into()));
                }
                range = Some(parse_range(&text)?);
            }
            _ => return Err(QueryError::UnknownFilter(short(&filter))),
        }
        if c.at_keyword("and") {
            c.at += 1;
        } else {
            break;
        }
    }

    let mut group_by = GroupBy::default();
    if c.at_keyword("group") {
        c.at += 1;
        c.keyword("by")?;
        loop {
            let g = c.word("sex or age_band")?;
            match g.to_ascii_lowercase().as_str() {
                "sex" if !group_by.sex => group_by.sex = true,
                "age_band" if !group_by.age_band => group_by.age_band = true,
                "sex" | "age_band" => return Err(QueryError::Duplicate(format!("group by {g}"))),
                _ => return Err(QueryError::UnknownGroup(short(&g))),
            }
            if c.peek() == Some(&Token::Comma) || c.at_keyword("and") {
                c.at += 1;
            } else {
                break;
            }
        }
    }
    if let Some(t) = c.peek() {
        let t = match t {
            Token::Word(w) => short(w),
            other => other.describe().trim_matches('\'').to_owned(),
        };
        return Err(QueryError::Trailing(t));
    }

    let code = code.ok_or(QueryError::Missing("a code filter: add 'code = system|code'"))?;
    let window = match (from, until, relative) {
        (None, None, Some(days)) => Window::Relative(days),
        (_, _, Some(_)) => return Err(QueryError::MixedWindow),
        (Some(from), Some(until), None) => {
            if from >= until {
                return Err(QueryError::InvertedWindow {
                    from: date_text(from),
                    until: date_text(until),
                });
            }
            Window::Absolute(from, until)
        }
        (None, _, None) => {
            return Err(QueryError::Missing(
                "the start of the date window: add 'date >= YYYY-MM-DD'",
            ));
        }
        (_, None, None) => {
            return Err(QueryError::Missing("the end of the date window: add 'date < YYYY-MM-DD'"));
        }
    };
    let (lo, hi) = range.ok_or(QueryError::Missing("a value range: add 'range lo..hi'"))?;
    if let Aggregate::Histogram(w) = aggregate {
        let bins = bin_count(lo, hi, w);
        if bins > MAX_BINS {
            return Err(QueryError::TooManyBins(bins));
        }
    }
    Ok(Parsed { aggregate, code, category, window, lo, hi, group_by })
}

/// The number of bins of width `w` covering `lo..hi` (saturating).
pub(crate) fn bin_count(lo: f64, hi: f64, w: f64) -> usize {
    let n = ((hi - lo) / w).ceil();
    if n.is_finite() && n >= 1.0 {
        if n > 1e9 { usize::MAX } else { n as usize }
    } else if n.is_finite() {
        1
    } else {
        usize::MAX
    }
}

fn percentiles(args: &[String]) -> Result<Vec<f64>, QueryError> {
    if args.is_empty() {
        return Err(QueryError::NoQuantiles);
    }
    if args.len() > MAX_QUANTILES {
        return Err(QueryError::TooManyQuantiles(args.len()));
    }
    let mut ps = Vec::with_capacity(args.len());
    for a in args {
        let p = parse_number(a)?;
        if !(0.0..=100.0).contains(&p) {
            return Err(QueryError::Percentile(number(p)));
        }
        if ps.contains(&p) {
            return Err(QueryError::DuplicatePercentile(number(p)));
        }
        ps.push(p);
    }
    ps.sort_by(f64::total_cmp);
    Ok(ps)
}

fn parse_number(text: &str) -> Result<f64, QueryError> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let ok = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && !(digits.contains('.') && frac.is_empty());
    if !ok {
        return Err(QueryError::Number(short(text)));
    }
    let v: f64 = text.parse().map_err(|_| QueryError::Number(short(text)))?;
    if !v.is_finite() || v.abs() > MAX_MAGNITUDE {
        return Err(QueryError::TooLarge(short(text)));
    }
    // -0 and 0 are the same number and print the same.
    Ok(if v == 0.0 { 0.0 } else { v })
}

fn parse_range(text: &str) -> Result<(f64, f64), QueryError> {
    let Some((lo, hi)) = text.split_once("..") else {
        return Err(QueryError::Range(short(text)));
    };
    let (lo, hi) = (parse_number(lo)?, parse_number(hi)?);
    if lo >= hi {
        return Err(QueryError::InvertedRange { lo: number(lo), hi: number(hi) });
    }
    Ok((lo, hi))
}

fn parse_coding(text: &str) -> Result<Coding, QueryError> {
    match text.split_once('|') {
        Some((system, code)) if !system.is_empty() && !code.is_empty() && !code.contains('|') => {
            Ok(Coding { system: system.to_owned(), code: code.to_owned() })
        }
        _ => Err(QueryError::Code(short(text))),
    }
}

fn parse_category(text: &str) -> Result<String, QueryError> {
    let ok = match text.split_once('|') {
        Some((s, c)) => !s.is_empty() && !c.is_empty() && !c.contains('|'),
        None => !text.is_empty(),
    };
    if ok { Ok(text.to_owned()) } else { Err(QueryError::Category(short(text))) }
}

/// Parses `YYYY-MM-DD`.
pub(crate) fn parse_date(text: &str) -> Result<Date, QueryError> {
    let bad = || QueryError::Date(short(text));
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return Err(bad());
    }
    let digits = |r: std::ops::Range<usize>| -> Result<u32, QueryError> {
        let s = &text[r];
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    let (y, m, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let month = u8::try_from(m).ok().and_then(|m| Month::try_from(m).ok()).ok_or_else(bad)?;
    let day = u8::try_from(d).map_err(|_| bad())?;
    let year = i32::try_from(y).map_err(|_| bad())?;
    if year < 1 {
        return Err(bad());
    }
    Date::from_calendar_date(year, month, day).map_err(|_| bad())
}

/// `YYYY-MM-DD`.
pub(crate) fn date_text(d: Date) -> String {
    format!("{:04}-{:02}-{:02}", d.year(), u8::from(d.month()), d.day())
}

/// A number's canonical text: the shortest decimal that reads back as the same `f64`.
pub(crate) fn number(v: f64) -> String {
    if v == 0.0 { "0".to_owned() } else { format!("{v}") }
}

fn short(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if s.chars().count() > 60 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "mean(Observation.valueQuantity) where code = http://loinc.org|2498-4 and category = laboratory and date >= 2026-01-08 and date < 2026-01-15 and range 0..500 group by sex";

    #[test]
    fn canonical_round_trip() {
        let q: BountyQuery = TEXT.parse().expect("parses");
        assert_eq!(q.canonical(), TEXT);
        assert_eq!(q.canonical().parse::<BountyQuery>().expect("parses"), q);
    }

    #[test]
    fn lenient_keywords_and_spacing() {
        let q: BountyQuery = "  MEAN ( observation.valuequantity )  WHERE range 0 .. 500 AND date<2026-01-15 and DATE>=2026-01-08 and Category=laboratory and CODE = http://loinc.org|2498-4 GROUP BY Sex"
            .parse()
            .expect("parses");
        assert_eq!(q.canonical(), TEXT);
    }

    #[test]
    fn numbers_are_canonical() {
        let q: BountyQuery = "quantiles(Observation.valueQuantity, 75, 25.50, 0) where code = a|b and date >= 2026-01-01 and date < 2026-01-02 and range -0.0..+12.50"
            .parse()
            .expect("parses");
        assert_eq!(
            q.canonical(),
            "quantiles(Observation.valueQuantity, 0, 25.5, 75) where code = a|b and date >= 2026-01-01 and date < 2026-01-02 and range 0..12.5"
        );
        assert_eq!(q.canonical().parse::<BountyQuery>().expect("parses"), q);
    }

    #[test]
    fn relative_windows_resolve() {
        let today = Date::from_calendar_date(2026, Month::January, 15).expect("date");
        let text = "count(Observation.valueQuantity) where code = a|b and date in last 7 days and range 0..1";
        let q = BountyQuery::parse_relative(text, today).expect("parses");
        assert_eq!(date_text(q.from), "2026-01-08");
        assert_eq!(date_text(q.until), "2026-01-15");
        assert_eq!(text.parse::<BountyQuery>(), Err(QueryError::RelativeWindow));
    }

    #[test]
    fn numbers_reject_non_finite() {
        for bad in ["NaN", "inf", "-inf", "1e5", "1.", ".5", "0x10", ""] {
            assert!(parse_number(bad).is_err(), "{bad}");
        }
        assert!(matches!(parse_number("10000000000000"), Err(QueryError::TooLarge(_))));
    }
}
