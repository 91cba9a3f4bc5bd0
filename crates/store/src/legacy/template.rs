//! The resource template of a mapping: `{Column}` placeholders with conversions,
//! compiled once, then rendered for each row.

use super::{
    LegacyError,
    mapping::{Coding, Compiler, Mapping, Source},
    row::row_error,
};
use crate::{Result, StoreError, fhir::date_range};
use serde_json::{Map, Value};

/// How a placeholder's text becomes JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Conversion {
    String,
    Integer,
    Decimal,
    Boolean,
    Date,
    DateTime,
    Lowercase,
}

impl Conversion {
    pub(super) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "string" => Self::String,
            "integer" => Self::Integer,
            "decimal" => Self::Decimal,
            "boolean" => Self::Boolean,
            "date" => Self::Date,
            "datetime" => Self::DateTime,
            "lowercase" => Self::Lowercase,
            _ => return None,
        })
    }

    pub(super) const fn name(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Decimal => "decimal",
            Self::Boolean => "boolean",
            Self::Date => "date",
            Self::DateTime => "datetime",
            Self::Lowercase => "lowercase",
        }
    }
}

#[derive(Debug, Clone)]
pub(super) enum Piece {
    Text(String),
    Column(usize),
}

/// A compiled template.
#[derive(Debug, Clone)]
pub(super) enum Node {
    Literal(Value),
    Object(Vec<(String, Self)>),
    Array(Vec<Self>),
    /// Exactly one placeholder: a typed value.
    Typed(usize, Conversion),
    /// Text with placeholders.
    Text(Vec<Piece>),
}

/// Whether a template node holds a placeholder.
pub(super) fn is_dynamic(node: &Node) -> bool {
    match node {
        Node::Literal(_) => false,
        Node::Typed(..) | Node::Text(_) => true,
        Node::Array(items) => items.iter().any(is_dynamic),
        Node::Object(fields) => fields.iter().any(|(_, f)| is_dynamic(f)),
    }
}

impl Compiler {
    pub(super) fn node(&mut self, value: &Value) -> Result<Node, LegacyError> {
        Ok(match value {
            Value::Object(obj) => Node::Object(
                obj.iter()
                    .map(|(k, v)| Ok((k.clone(), self.node(v)?)))
                    .collect::<Result<_, LegacyError>>()?,
            ),
            Value::Array(list) => {
                Node::Array(list.iter().map(|v| self.node(v)).collect::<Result<_, _>>()?)
            }
            Value::String(s) => self.text(s)?,
            other => Node::Literal(other.clone()),
        })
    }

    /// A template string: literal text, one typed placeholder, or text with
    /// placeholders.
    pub(super) fn text(&mut self, s: &str) -> Result<Node, LegacyError> {
        let mut pieces: Vec<Piece> = Vec::new();
        let mut literal = String::new();
        let mut chars = s.chars().peekable();
        let mut typed = None;
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    literal.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    literal.push('}');
                }
                '{' => {
                    let mut inner = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        inner.push(c);
                    }
                    if !closed {
                        return Err(self.bad(format!("template string '{s}' has an unclosed '{{'")));
                    }
                    let (reference, conversion) = match inner.split_once(':') {
                        Some((r, t)) => (
                            r,
                            Conversion::parse(t).ok_or_else(|| {
                                self.bad(format!(
                                    "'{t}' in '{{{inner}}}' is not a conversion (string, integer, \
                                     decimal, boolean, date, datetime, lowercase)"
                                ))
                            })?,
                        ),
                        None => (inner.as_str(), Conversion::String),
                    };
                    let slot = self.slot(reference)?;
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    pieces.push(Piece::Column(slot));
                    typed = Some((slot, conversion));
                }
                '}' => {
                    return Err(self.bad(format!(
                        "template string '{s}' has a lone '}}' (write '}}}}' for a brace)"
                    )));
                }
                c => literal.push(c),
            }
        }
        if pieces.is_empty() {
            return Ok(Node::Literal(Value::String(literal)));
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        match (pieces.as_slice(), typed) {
            ([Piece::Column(_)], Some((slot, conversion))) => Ok(Node::Typed(slot, conversion)),
            _ => Ok(Node::Text(pieces)),
        }
    }
}

/// The FHIR date or dateTime of a column's text: `YYYY-MM-DD` or
/// `YYYY-MM-DD[ T]HH:MM[:SS[.fff]][Z]`, taken as UTC.
pub(super) fn fhir_date(text: &str, date_only: bool) -> Option<String> {
    let text = text.trim();
    let day = text.get(..10)?;
    date_range(day).ok()?;
    if day.len() != 10 {
        return None;
    }
    let rest = &text[10..];
    if rest.is_empty() || date_only {
        return Some(day.to_owned());
    }
    let rest = rest.strip_prefix([' ', 'T'])?;
    let rest = rest.strip_suffix('Z').unwrap_or(rest);
    let (hm, seconds) = match rest.len() {
        5 => (rest, "00"),
        _ if rest.len() >= 8 && rest.as_bytes()[5] == b':' => {
            let frac = &rest[8..];
            let frac_ok = frac.is_empty()
                || frac
                    .strip_prefix('.')
                    .is_some_and(|f| !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()));
            if !frac_ok {
                return None;
            }
            (&rest[..5], &rest[6..8])
        }
        _ => return None,
    };
    let out = format!("{day}T{hm}:{seconds}Z");
    date_range(&out).ok()?;
    Some(out)
}

pub(super) fn is_true(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "t" | "yes" | "y" => Some(true),
        "0" | "false" | "f" | "no" | "n" => Some(false),
        _ => None,
    }
}

pub(super) fn number(s: &str) -> Option<serde_json::Number> {
    let s = s.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b)) {
        return None;
    }
    serde_json::from_str(s).ok()
}

pub(super) struct Renderer<'a> {
    pub(super) mapping: &'a Mapping,
    pub(super) id: &'a str,
    pub(super) cells: &'a [Option<String>],
}

impl Renderer<'_> {
    /// A cell's text; `None` when `NULL` or empty.
    pub(super) fn cell(&self, slot: usize) -> Option<&str> {
        self.cells.get(slot)?.as_deref().filter(|s| !s.is_empty())
    }

    pub(super) fn source(&self, source: &Source) -> Option<String> {
        match source {
            Source::Fixed(s) => Some(s.clone()),
            Source::Column(i) => self.cell(*i).map(str::to_owned),
        }
    }

    pub(super) fn not_a(&self, slot: usize, what: &str) -> StoreError {
        row_error(
            self.mapping.resource_type,
            self.id,
            format!("column {} does not hold a {what}", self.mapping.columns[slot]),
        )
    }

    pub(super) fn convert(&self, slot: usize, conversion: Conversion) -> Result<Option<Value>> {
        let Some(text) = self.cell(slot) else { return Ok(None) };
        let bad = || self.not_a(slot, conversion.name());
        Ok(Some(match conversion {
            Conversion::String => Value::String(text.to_owned()),
            Conversion::Lowercase => Value::String(text.to_lowercase()),
            Conversion::Integer => Value::from(text.trim().parse::<i64>().map_err(|_| bad())?),
            Conversion::Decimal => Value::Number(number(text).ok_or_else(bad)?),
            Conversion::Boolean => Value::Bool(is_true(text).ok_or_else(bad)?),
            Conversion::Date => Value::String(fhir_date(text, true).ok_or_else(bad)?),
            Conversion::DateTime => Value::String(fhir_date(text, false).ok_or_else(bad)?),
        }))
    }

    /// The template with the row's values. A string whose placeholders are `NULL`
    /// renders to `None`, and so does an object or array with placeholders of which
    /// none rendered (its literal fields, such as an extension's `url`, go with it).
    pub(super) fn render(&self, node: &Node) -> Result<Option<Value>> {
        Ok(match node {
            Node::Literal(v) => Some(v.clone()),
            Node::Typed(slot, conversion) => self.convert(*slot, *conversion)?,
            Node::Text(pieces) => {
                let mut out = String::new();
                for piece in pieces {
                    match piece {
                        Piece::Text(t) => out.push_str(t),
                        Piece::Column(slot) => match self.cell(*slot) {
                            Some(text) => out.push_str(text),
                            None => return Ok(None),
                        },
                    }
                }
                Some(Value::String(out))
            }
            Node::Array(items) => {
                let (mut list, mut data) = (Vec::new(), false);
                for item in items {
                    if let Some(v) = self.render(item)? {
                        data |= is_dynamic(item);
                        list.push(v);
                    }
                }
                (data || !is_dynamic(node)).then_some(Value::Array(list))
            }
            Node::Object(fields) => {
                let (mut obj, mut data) = (Map::new(), false);
                for (key, field) in fields {
                    if let Some(v) = self.render(field)? {
                        data |= is_dynamic(field);
                        obj.insert(key.clone(), v);
                    }
                }
                (data || !is_dynamic(node)).then_some(Value::Object(obj))
            }
        })
    }

    pub(super) fn concept(&self, coding: &Coding) -> Option<Value> {
        let code = self.source(&coding.code)?;
        let mut c = Map::new();
        c.insert("system".into(), Value::String(coding.system.clone()));
        c.insert("code".into(), Value::String(code));
        if let Some(display) = coding.display.as_ref().and_then(|d| self.source(d)) {
            c.insert("display".into(), Value::String(display));
        }
        Some(serde_json::json!({ "coding": [Value::Object(c)] }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_read_as_utc_fhir_dates() {
        assert_eq!(fhir_date("2024-03-01", false).as_deref(), Some("2024-03-01"));
        assert_eq!(
            fhir_date("2024-03-01 08:30:00", false).as_deref(),
            Some("2024-03-01T08:30:00Z")
        );
        assert_eq!(fhir_date("2024-03-01T08:30", false).as_deref(), Some("2024-03-01T08:30:00Z"));
        assert_eq!(
            fhir_date("2024-03-01 08:30:00.250", false).as_deref(),
            Some("2024-03-01T08:30:00Z")
        );
        assert_eq!(fhir_date("2024-03-01 08:30:00", true).as_deref(), Some("2024-03-01"));
        for bad in
            ["2024-02-30", "03/01/2024", "2024-03-01 8:30", "2024-03-01 08:30:00+02:00", "20240301"]
        {
            assert_eq!(fhir_date(bad, false), None, "{bad}");
        }
    }
}
