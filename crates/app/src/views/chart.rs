//! Charts drawn as inline SVG from geometry computed here (no script, no font
//! measurement): lab and vital trends over time with the reference range as a band,
//! and bars for a research release per group. Every chart also carries a sentence for
//! screen readers, and the pages list the same numbers as text.

use super::records::{Category, Filter, category_of};
use medrec_client::patient::records::Records;
use serde_json::Value;
use std::collections::BTreeMap;

/// Drawing area of a trend chart (SVG user units).
const W: f64 = 320.0;
const H: f64 = 150.0;
/// Room for the y labels on the left and the dates below.
const LEFT: f64 = 44.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 10.0;
const BOTTOM: f64 = 22.0;
/// At most this many trend charts on a page (the tests with the most results first).
const MAX_CHARTS: usize = 12;

/// One measurement: its day, its value and whether it lies outside the reference range.
#[derive(Debug, Clone, PartialEq)]
pub struct Dot {
    /// Centre, x.
    pub x: f64,
    /// Centre, y.
    pub y: f64,
    /// `2026-01-15: 97 mg/dL`.
    pub label: String,
    /// Outside the reference range.
    pub out: bool,
}

/// A label on an axis.
#[derive(Debug, Clone, PartialEq)]
pub struct Tick {
    /// Where (x for dates, y for values).
    pub at: f64,
    /// What it says.
    pub label: String,
}

/// The reference range, drawn as a band.
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    /// Top edge.
    pub y: f64,
    /// Height.
    pub height: f64,
}

/// One test or vital sign over time.
#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    /// What was measured.
    pub title: String,
    /// Its unit.
    pub unit: String,
    /// The `points` of the SVG polyline.
    pub points: String,
    /// The measurements.
    pub dots: Vec<Dot>,
    /// The reference range, when the results carry one.
    pub band: Option<Band>,
    /// The reference range in words (`70–99 mg/dL`, `below 99 mg/dL`), or empty.
    pub range: String,
    /// Value labels.
    pub y_ticks: Vec<Tick>,
    /// Date labels (first and last).
    pub x_ticks: Vec<Tick>,
    /// The newest value with its date.
    pub latest: String,
    /// The chart in one sentence, for screen readers.
    pub summary: String,
    /// Width and height of the drawing.
    pub size: (f64, f64),
    /// The left and right edges and the bottom of the plot area (for the axes).
    pub plot: (f64, f64, f64),
}

/// A number as people write it: at most 2 decimals, no trailing zeros.
pub fn number(v: f64) -> String {
    let s = format!("{v:.2}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Days since 1970 of a FHIR date or dateTime (its first ten characters).
fn day_of(date: &str) -> Option<i64> {
    let year: i32 = date.get(..4)?.parse().ok()?;
    let month: u8 = date.get(5..7)?.parse().ok()?;
    let day: u8 = date.get(8..10)?.parse().ok()?;
    let month = time::Month::try_from(month).ok()?;
    let parsed = time::Date::from_calendar_date(year, month, day).ok()?;
    // The Julian day of 1970-01-01.
    Some(i64::from(parsed.to_julian_day()) - 2_440_588)
}

/// The date of a resource as `YYYY-MM-DD`.
fn date_of(r: &Value) -> Option<&str> {
    ["effectiveDateTime", "issued"].iter().find_map(|f| r[f].as_str()).and_then(|d| d.get(..10))
}

struct Series {
    unit: String,
    points: Vec<(i64, String, f64)>,
    low: Option<f64>,
    high: Option<f64>,
}

/// The code and name of a coded concept.
fn concept(c: &Value) -> Option<(String, String)> {
    let coding = c["coding"].as_array()?.first()?;
    let code = coding["code"].as_str()?.to_owned();
    let name = c["text"]
        .as_str()
        .or_else(|| coding["display"].as_str())
        .map_or_else(|| code.clone(), str::to_owned);
    Some((code, name))
}

fn add(
    series: &mut BTreeMap<(String, String), Series>,
    key: (String, String),
    q: &Value,
    r: &Value,
    date: &str,
) {
    let (Some(value), Some(day)) = (q["value"].as_f64(), day_of(date)) else { return };
    let range = &r["referenceRange"][0];
    let s = series.entry(key).or_insert_with(|| Series {
        unit: q["unit"].as_str().or_else(|| q["code"].as_str()).unwrap_or("").to_owned(),
        points: Vec::new(),
        low: None,
        high: None,
    });
    s.points.push((day, date.to_owned(), value));
    s.low = s.low.or_else(|| range["low"]["value"].as_f64());
    s.high = s.high.or_else(|| range["high"]["value"].as_f64());
}

/// The trends among `resources` (Observations): one chart per test or vital sign with at
/// least two dated numeric values, components (e.g. systolic and diastolic pressure)
/// apart; the tests with the most results first.
pub fn trends<'a>(resources: impl IntoIterator<Item = &'a Value>) -> Vec<Trend> {
    let mut series: BTreeMap<(String, String), Series> = BTreeMap::new();
    for r in resources {
        if r["resourceType"] != "Observation" {
            continue;
        }
        let Some(date) = date_of(r) else { continue };
        if r["valueQuantity"].is_object()
            && let Some(key) = concept(&r["code"])
        {
            add(&mut series, key, &r["valueQuantity"], r, date);
        }
        for c in r["component"].as_array().into_iter().flatten() {
            if let Some(key) = concept(&c["code"]) {
                add(&mut series, key, &c["valueQuantity"], c, date);
            }
        }
    }
    let mut list: Vec<((String, String), Series)> =
        series.into_iter().filter(|(_, s)| s.points.len() >= 2).collect();
    list.sort_by(|a, b| b.1.points.len().cmp(&a.1.points.len()).then_with(|| a.0.1.cmp(&b.0.1)));
    list.into_iter().take(MAX_CHARTS).map(|((_, name), s)| draw(name, s)).collect()
}

/// The trends the Records page shows: when it is filtered to lab results or vitals,
/// one chart per test among those records (matching the search words, if any).
pub fn for_records(records: &Records, filter: &Filter) -> Vec<Trend> {
    let Some(category @ (Category::Labs | Category::Vitals)) = filter.category else {
        return Vec::new();
    };
    let needle = filter.text.trim().to_lowercase();
    trends(
        records
            .relationships
            .iter()
            .flat_map(|r| &r.pointers)
            .flat_map(|p| &p.resources)
            .filter(|r| category_of(r) == category),
    )
    .into_iter()
    .filter(|t| needle.is_empty() || t.title.to_lowercase().contains(&needle))
    .collect()
}

fn draw(title: String, mut s: Series) -> Trend {
    s.points.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    let values = s.points.iter().map(|p| p.2);
    let bounds = values.chain(s.low).chain(s.high);
    let (mut lo, mut hi) =
        bounds.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    let pad = ((hi - lo) * 0.1).max(hi.abs() * 0.02).max(0.5);
    lo -= pad;
    hi += pad;
    let (first, last) = (s.points[0].0, s.points[s.points.len() - 1].0);
    let span = (last - first).max(1) as f64;
    let x = |day: i64| LEFT + (day - first) as f64 / span * (W - LEFT - RIGHT);
    let y = |v: f64| TOP + (hi - v) / (hi - lo) * (H - TOP - BOTTOM);
    let outside = |v: f64| s.low.is_some_and(|l| v < l) || s.high.is_some_and(|h| v > h);
    let dots: Vec<Dot> = s
        .points
        .iter()
        .map(|(day, date, v)| Dot {
            x: round(x(*day)),
            y: round(y(*v)),
            label: format!("{date}: {} {}", number(*v), s.unit),
            out: outside(*v),
        })
        .collect();
    let points = dots.iter().map(|d| format!("{},{}", d.x, d.y)).collect::<Vec<_>>().join(" ");
    let band = match (s.low, s.high) {
        (None, None) => None,
        (low, high) => {
            let top = y(high.unwrap_or(hi).min(hi));
            let bottom = y(low.unwrap_or(lo).max(lo));
            Some(Band { y: round(top), height: round(bottom - top) })
        }
    };
    let range = match (s.low, s.high) {
        (Some(l), Some(h)) => format!("{}–{} {}", number(l), number(h), s.unit),
        (None, Some(h)) => format!("below {} {}", number(h), s.unit),
        (Some(l), None) => format!("above {} {}", number(l), s.unit),
        (None, None) => String::new(),
    };
    let y_ticks = [hi - pad, (hi + lo) / 2.0, lo + pad]
        .into_iter()
        .map(|v| Tick { at: round(y(v)), label: number(v) })
        .collect();
    let first_date = s.points[0].1.clone();
    let (_, last_date, last_value) = s.points[s.points.len() - 1].clone();
    let x_ticks = vec![
        Tick { at: LEFT, label: first_date.clone() },
        Tick { at: W - RIGHT, label: last_date.clone() },
    ];
    let out = dots.iter().filter(|d| d.out).count();
    let mut summary = format!(
        "{title}: {} results from {first_date} to {last_date}, the latest {} {}",
        dots.len(),
        number(last_value),
        s.unit
    );
    if !range.is_empty() {
        summary.push_str(&format!("; reference range {range}, {out} outside it"));
    }
    summary.push('.');
    Trend {
        latest: format!("{} {} on {last_date}", number(last_value), s.unit),
        title,
        unit: s.unit,
        points,
        dots,
        band,
        range,
        y_ticks,
        x_ticks,
        summary,
        size: (W, H),
        plot: (LEFT, W - RIGHT, H - BOTTOM),
    }
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

/// One bar of a bar chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// The group (`sex = female`), or `everyone`.
    pub label: String,
    /// Its value in words, or why there is none (`not released: about k patients or fewer`).
    pub value: String,
    /// Width in percent of the widest (0 when suppressed).
    pub percent: f64,
    /// Whether no value was released for it.
    pub suppressed: bool,
}

/// Bars from `(label, value)` pairs; `None` is a suppressed cell.
pub fn bars(cells: &[(String, Option<f64>)], k: usize) -> Vec<Bar> {
    let max = cells.iter().filter_map(|c| c.1).fold(0.0f64, |m, v| m.max(v.abs()));
    cells
        .iter()
        .map(|(label, value)| match value {
            Some(v) => Bar {
                label: label.clone(),
                value: number(*v),
                percent: if max > 0.0 { round(v.abs() / max * 100.0) } else { 0.0 },
                suppressed: false,
            },
            None => Bar {
                label: label.clone(),
                value: format!("not released: about {k} patients or fewer"),
                percent: 0.0,
                suppressed: true,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn glucose(date: &str, v: f64) -> Value {
        json!({"resourceType": "Observation", "effectiveDateTime": format!("{date}T08:00:00Z"),
            "code": {"coding": [{"code": "2345-7", "display": "Glucose"}]},
            "valueQuantity": {"value": v, "unit": "mg/dL"},
            "referenceRange": [{"low": {"value": 70}, "high": {"value": 99}}]})
    }

    #[test]
    fn a_trend_has_its_dots_in_time_order_and_the_reference_range_as_a_band() {
        let list = [
            glucose("2026-03-01", 120.0),
            glucose("2026-01-01", 90.0),
            glucose("2026-02-01", 80.0),
        ];
        let charts = trends(&list);
        assert_eq!(charts.len(), 1);
        let c = &charts[0];
        assert_eq!(c.title, "Glucose");
        assert_eq!(c.range, "70–99 mg/dL");
        assert_eq!(c.latest, "120 mg/dL on 2026-03-01");
        let xs: Vec<f64> = c.dots.iter().map(|d| d.x).collect();
        assert!(xs.windows(2).all(|w| w[0] < w[1]), "left to right in time: {xs:?}");
        assert_eq!(c.dots.iter().map(|d| d.out).collect::<Vec<_>>(), [false, false, true]);
        // Higher values are drawn higher (smaller y); the band spans 70 to 99.
        assert!(c.dots[2].y < c.dots[0].y && c.dots[0].y < c.dots[1].y);
        let band = c.band.as_ref().unwrap();
        assert!(band.y < c.dots[0].y && c.dots[0].y < band.y + band.height, "90 lies in the band");
        assert!(c.dots[2].y < band.y, "120 lies above it");
        assert!(c.summary.contains("3 results from 2026-01-01 to 2026-03-01"), "{}", c.summary);
        assert!(c.summary.ends_with("reference range 70–99 mg/dL, 1 outside it."), "{}", c.summary);
        assert_eq!(c.points.split(' ').count(), 3);
    }

    #[test]
    fn one_value_is_no_trend_and_components_are_charted_apart() {
        assert!(trends(&[glucose("2026-01-01", 90.0)]).is_empty());
        let bp = |date: &str, sys: f64| {
            json!({"resourceType": "Observation", "effectiveDateTime": date,
            "code": {"coding": [{"code": "85354-9", "display": "Blood pressure panel"}]},
            "component": [
                {"code": {"coding": [{"code": "8480-6", "display": "Systolic blood pressure"}]}, "valueQuantity": {"value": sys, "unit": "mm[Hg]"}},
                {"code": {"coding": [{"code": "8462-4", "display": "Diastolic blood pressure"}]}, "valueQuantity": {"value": 80, "unit": "mm[Hg]"}}
            ]})
        };
        let charts = trends(&[bp("2026-01-01", 120.0), bp("2026-02-01", 130.0)]);
        let titles: Vec<&str> = charts.iter().map(|c| c.title.as_str()).collect();
        assert_eq!(titles, ["Diastolic blood pressure", "Systolic blood pressure"]);
        assert!(charts.iter().all(|c| c.band.is_none() && c.range.is_empty()));
    }

    #[test]
    fn bars_scale_to_the_largest_and_suppressed_cells_say_why() {
        let b = bars(
            &[
                ("sex = female".into(), Some(70.0)),
                ("sex = male".into(), Some(35.0)),
                ("sex = other".into(), None),
            ],
            10,
        );
        assert_eq!(b.iter().map(|b| b.percent).collect::<Vec<_>>(), [100.0, 50.0, 0.0]);
        assert_eq!(b[2].value, "not released: about 10 patients or fewer");
        assert!(b[2].suppressed && !b[0].suppressed);
        assert_eq!(number(70.0), "70");
        assert_eq!(number(5.25), "5.25");
        assert_eq!(number(5.5), "5.5");
    }
}
