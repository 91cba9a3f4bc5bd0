//! The parser of bounty query texts: the tokenizer, the grammar of the crate
//! documentation, and the checks of numbers, dates, codes, ranges and percentiles.
//! [`parse`] gives a [`Parsed`] query whose window may still be relative.

use super::{
    Aggregate, BountyQuery, Coding, ELEMENT, GroupBy, MAX_BINS, MAX_MAGNITUDE, MAX_QUANTILES,
    MAX_RELATIVE_DAYS, QueryError, date_text, number,
};
use time::{Date, Duration, Month};

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
    fn lenient_keywords_and_spacing() {
        let q: BountyQuery = "  MEAN ( observation.valuequantity )  WHERE range 0 .. 500 AND date<2026-01-15 and DATE>=2026-01-08 and Category=laboratory and CODE = http://loinc.org|2498-4 GROUP BY Sex"
            .parse()
            .expect("parses");
        assert_eq!(q.canonical(), TEXT);
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
