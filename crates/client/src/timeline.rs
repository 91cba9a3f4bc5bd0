//! Showing FHIR resources to a person: one timeline across providers, newest first, and
//! one `collection` Bundle of everything; plus the time helpers the commands share.

use alloy::primitives::{Address, B256};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// One resource as a line of the timeline.
#[derive(Debug, Clone)]
pub struct Line {
    /// Its clinical date as written in the resource (`None` when it has none).
    pub date: Option<String>,
    /// The provider that serves it.
    pub provider: Address,
    /// The relationship it came through.
    pub relationship: B256,
    /// `resourceType`.
    pub kind: String,
    /// `resourceType/id`.
    pub reference: String,
    /// The display text of its code.
    pub text: String,
    /// Its value with unit, if any.
    pub value: Option<String>,
}

impl Line {
    /// The line as JSON.
    pub fn json(&self) -> Value {
        json!({
            "date": self.date,
            "provider": self.provider,
            "relationship": self.relationship,
            "type": self.kind,
            "reference": self.reference,
            "text": self.text,
            "value": self.value,
        })
    }

    /// The line for a person.
    pub fn human(&self) -> String {
        let date = self.date.as_deref().map_or("(undated)", |d| d.get(..10).unwrap_or(d));
        let value = self.value.as_deref().map(|v| format!("  {v}")).unwrap_or_default();
        format!(
            "{date:<10}  {}  {:<20} {}{value}",
            short_address(self.provider),
            self.kind,
            self.text
        )
    }
}

/// `0x1234…abcd`.
pub fn short_address(a: Address) -> String {
    let s = a.to_string();
    format!("{}…{}", &s[..6], &s[s.len() - 4..])
}

/// `0x12345678…`.
pub fn short_hash(h: B256) -> String {
    let s = h.to_string();
    format!("{}…", &s[..10])
}

/// The clinical date of a resource: the first of the usual FHIR date elements it has.
pub fn clinical_date(r: &Value) -> Option<String> {
    const PATHS: &[&[&str]] = &[
        &["effectiveDateTime"],
        &["effectivePeriod", "start"],
        &["effectiveInstant"],
        &["onsetDateTime"],
        &["onsetPeriod", "start"],
        &["authoredOn"],
        &["occurrenceDateTime"],
        &["occurrencePeriod", "start"],
        &["performedDateTime"],
        &["performedPeriod", "start"],
        &["recordedDate"],
        &["period", "start"],
        &["issued"],
        &["date"],
        &["birthDate"],
        &["meta", "lastUpdated"],
    ];
    PATHS.iter().find_map(|path| {
        path.iter().try_fold(r, |v, key| v.get(key)).and_then(Value::as_str).map(str::to_owned)
    })
}

/// The display text of a CodeableConcept.
fn concept_text(c: &Value) -> Option<String> {
    c["text"].as_str().map(str::to_owned).or_else(|| {
        c["coding"].as_array()?.iter().find_map(|coding| {
            coding["display"]
                .as_str()
                .map(str::to_owned)
                .or_else(|| coding["code"].as_str().map(str::to_owned))
        })
    })
}

/// What the resource is about, in words.
fn text_of(r: &Value) -> String {
    let concept = ["code", "medicationCodeableConcept", "vaccineCode", "type"]
        .iter()
        .find_map(|k| {
            let v = &r[*k];
            match v {
                Value::Array(list) => list.iter().find_map(concept_text),
                Value::Object(_) => concept_text(v),
                _ => None,
            }
        })
        .or_else(|| r["class"]["display"].as_str().map(str::to_owned))
        .or_else(|| r["class"]["code"].as_str().map(str::to_owned));
    if let Some(text) = concept {
        return text;
    }
    if r["resourceType"] == "Patient" {
        let name = &r["name"][0];
        let given: Vec<&str> =
            name["given"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        return format!("{} {}", given.join(" "), name["family"].as_str().unwrap_or_default())
            .trim()
            .to_owned();
    }
    r["id"].as_str().unwrap_or_default().to_owned()
}

/// The value of an observation-like resource, with its unit.
fn value_of(r: &Value) -> Option<String> {
    if let Some(q) = r.get("valueQuantity") {
        let number = match &q["value"] {
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        let unit = q["unit"].as_str().or_else(|| q["code"].as_str()).unwrap_or_default();
        return Some(format!("{number} {unit}").trim_end().to_owned());
    }
    if let Some(c) = r.get("valueCodeableConcept") {
        return concept_text(c);
    }
    if let Some(s) = r["valueString"].as_str() {
        return Some(s.to_owned());
    }
    if let Some(b) = r["valueBoolean"].as_bool() {
        return Some(b.to_string());
    }
    if let Some(s) = r["clinicalStatus"]["coding"][0]["code"].as_str() {
        return Some(s.to_owned());
    }
    r["status"].as_str().map(str::to_owned)
}

/// `resourceType/id` of a resource.
pub fn reference(r: &Value) -> String {
    format!(
        "{}/{}",
        r["resourceType"].as_str().unwrap_or("Resource"),
        r["id"].as_str().unwrap_or_default()
    )
}

/// One timeline of resources (provider, relationship, resource), each resource once per
/// provider, newest first, undated ones last.
pub fn timeline<'a>(items: impl IntoIterator<Item = (Address, B256, &'a Value)>) -> Vec<Line> {
    let mut seen = BTreeSet::new();
    let mut lines: Vec<Line> = items
        .into_iter()
        .filter(|(provider, _, r)| seen.insert((*provider, reference(r))))
        .map(|(provider, relationship, r)| Line {
            date: clinical_date(r),
            provider,
            relationship,
            kind: r["resourceType"].as_str().unwrap_or("Resource").to_owned(),
            reference: reference(r),
            text: text_of(r),
            value: value_of(r),
        })
        .collect();
    lines.sort_by(|a, b| {
        b.date
            .is_some()
            .cmp(&a.date.is_some())
            .then_with(|| b.date.cmp(&a.date))
            .then_with(|| a.reference.cmp(&b.reference))
    });
    lines
}

/// One FHIR R4 `collection` Bundle of resources (gatekeeper base URL, resource), each
/// resource once per gatekeeper, its `fullUrl` where that gatekeeper serves it.
pub fn collection<'a>(items: impl IntoIterator<Item = (&'a str, &'a Value)>) -> Value {
    let mut seen = BTreeSet::new();
    let entries: Vec<Value> = items
        .into_iter()
        .map(|(base, r)| (base.trim_end_matches('/'), r))
        .filter(|(base, r)| seen.insert((base.to_owned(), reference(r))))
        .map(|(base, r)| {
            json!({
                "fullUrl": format!("{base}/fhir/{}", reference(r)),
                "resource": r,
            })
        })
        .collect();
    json!({
        "resourceType": "Bundle",
        "type": "collection",
        "timestamp": when(unix_now()),
        "total": entries.len(),
        "entry": entries,
    })
}

/// Seconds since the Unix epoch, by this machine's clock.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A Unix time as RFC 3339 (`never` for the far future of "no expiry").
pub fn when(unix: u64) -> String {
    if unix >= u64::from(u32::MAX) {
        return "never".to_owned();
    }
    i64::try_from(unix)
        .ok()
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// A span of seconds in words (`3 h 5 min`).
pub fn span(seconds: u64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 2 * 86_400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        s => format!("{} days", s / 86_400),
    }
}

/// Parses a duration like `90s`, `15m`, `1h`, `7d` or `2w` into seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| {
        format!("'{text}' is not a duration: write a number and a unit, like 1h or 7d")
    })?;
    let unit = match unit.trim() {
        "s" | "sec" | "secs" | "second" | "seconds" => 1,
        "m" | "min" | "mins" | "minute" | "minutes" => 60,
        "h" | "hour" | "hours" => 3600,
        "d" | "day" | "days" => 86_400,
        "w" | "week" | "weeks" => 7 * 86_400,
        other => return Err(format!("unknown unit '{other}' in '{text}': use s, m, h, d or w")),
    };
    n.checked_mul(unit)
        .filter(|s| *s > 0)
        .ok_or_else(|| format!("'{text}' is not a usable duration"))
}

/// Parses an RFC 3339 time (`2026-05-01T09:00:00Z`) into Unix seconds.
pub fn parse_time(text: &str) -> Result<u64, String> {
    let t = OffsetDateTime::parse(text.trim(), &Rfc3339)
        .map_err(|_| format!("'{text}' is not an RFC 3339 time such as 2026-05-01T09:00:00Z"))?;
    u64::try_from(t.unix_timestamp()).map_err(|_| format!("'{text}' is before 1970"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_times_parse() {
        assert_eq!(parse_duration("90s"), Ok(90));
        assert_eq!(parse_duration("1h"), Ok(3600));
        assert_eq!(parse_duration("7d"), Ok(7 * 86_400));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3 fortnights").is_err());
        assert_eq!(parse_time("1970-01-01T00:01:00Z"), Ok(60));
        assert!(parse_time("tomorrow").is_err());
        assert_eq!(when(60), "1970-01-01T00:01:00Z");
    }

    #[test]
    fn the_timeline_is_newest_first_with_text_and_value() {
        let a = json!({"resourceType": "Observation", "id": "a", "effectiveDateTime": "2024-01-02",
            "code": {"coding": [{"system": "http://loinc.org", "code": "718-7", "display": "Hemoglobin"}]},
            "valueQuantity": {"value": 13.5, "unit": "g/dL"}});
        let b = json!({"resourceType": "Condition", "id": "b", "onsetDateTime": "2025-06-01",
            "code": {"text": "Asthma"}});
        let c = json!({"resourceType": "Basic", "id": "c"});
        let p = Address::repeat_byte(1);
        let lines = timeline([
            (p, B256::ZERO, &a),
            (p, B256::ZERO, &c),
            (p, B256::ZERO, &b),
            (p, B256::ZERO, &a),
        ]);
        let refs: Vec<&str> = lines.iter().map(|l| l.reference.as_str()).collect();
        assert_eq!(refs, ["Condition/b", "Observation/a", "Basic/c"]);
        assert_eq!(lines[1].text, "Hemoglobin");
        assert_eq!(lines[1].value.as_deref(), Some("13.5 g/dL"));
        let bundle = collection([("http://gk/", &a), ("http://gk", &a), ("http://other", &a)]);
        assert_eq!(bundle["type"], "collection");
        assert_eq!(bundle["entry"].as_array().unwrap().len(), 2);
        assert_eq!(bundle["entry"][0]["fullUrl"], "http://gk/fhir/Observation/a");
    }
}
