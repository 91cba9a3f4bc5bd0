//! The Share page: what can be shared (each pointer named in words), the grants in
//! force with their window, and reading the window a patient chose.

use super::{Names, date, records::pointer_name, short_id};
use alloy::primitives::{Address, B256};
use medrec_chain::inbox::Summary;
use medrec_client::{patient::Window, timeline::span};
use medrec_primitives::RelationshipId;
use std::collections::BTreeMap;
use time::{Date, Month, OffsetDateTime};

/// A relationship whose records can be shared.
#[derive(Debug, Clone)]
pub struct Shareable {
    /// Its id.
    pub id: B256,
    /// The provider, named.
    pub provider: String,
    /// Its pointers: number and name in words.
    pub pointers: Vec<(u8, String)>,
}

/// A grant in force.
#[derive(Debug, Clone)]
pub struct GrantRow {
    /// The relationship.
    pub relationship: B256,
    /// The provider, named.
    pub provider: String,
    /// The viewer (a group's address when shared with a group).
    pub viewer: Address,
    /// The group's name, when the viewer is a group.
    pub group: Option<String>,
    /// What the viewer may see, in words.
    pub what: Vec<String>,
    /// From when.
    pub from: String,
    /// Until when.
    pub until: String,
    /// How long it still runs.
    pub remaining: String,
}

/// The accepted relationships with pointers, for the Share form.
pub fn shareable(
    summaries: &BTreeMap<RelationshipId, Summary>,
    names: &Names,
    pointers: &BTreeMap<(B256, u8), String>,
) -> Vec<Shareable> {
    summaries
        .iter()
        .filter(|(_, s)| s.status.is_some_and(medrec_primitives::Status::is_accepted))
        .filter(|(_, s)| !s.pointers.is_empty())
        .map(|(id, s)| Shareable {
            id: id.0,
            provider: s
                .provider
                .map_or_else(|| "Unknown provider".to_owned(), |p| names.provider(p)),
            pointers: (0..s.pointers.len())
                .filter_map(|n| u8::try_from(n).ok())
                .map(|n| (n, pointer_name(pointers, id.0, n)))
                .collect(),
        })
        .collect()
}

/// The grants still in force at `now`, ending soonest first; a grant to a group (its
/// address in `groups`) names the group.
pub fn grants(
    summaries: &BTreeMap<RelationshipId, Summary>,
    names: &Names,
    pointers: &BTreeMap<(B256, u8), String>,
    groups: &BTreeMap<Address, String>,
    now: u64,
) -> Vec<GrantRow> {
    let mut out: Vec<(u64, GrantRow)> = Vec::new();
    for (id, s) in summaries {
        for (viewer, (set, not_before, expires_at)) in &s.grants {
            if *expires_at <= now {
                continue;
            }
            out.push((
                *expires_at,
                GrantRow {
                    relationship: id.0,
                    provider: s
                        .provider
                        .map_or_else(|| "Unknown provider".to_owned(), |p| names.provider(p)),
                    viewer: *viewer,
                    group: groups.get(viewer).cloned(),
                    what: set.ids().map(|n| pointer_name(pointers, id.0, n)).collect(),
                    from: if *not_before <= now { "now".to_owned() } else { date(*not_before) },
                    until: date(*expires_at),
                    remaining: format!("ends in {}", span(expires_at - now)),
                },
            ));
        }
    }
    out.sort_by_key(|(e, g)| (*e, g.relationship));
    out.into_iter().map(|(_, g)| g).collect()
}

/// Reads a `YYYY-MM-DD` date (midnight UTC) as Unix seconds.
pub fn parse_day(text: &str) -> Result<u64, String> {
    let bad = || format!("'{text}' is not a date; write it as year-month-day, like 2026-05-01.");
    let mut parts = text.trim().split('-');
    let (Some(y), Some(m), Some(d), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let year: i32 = y.parse().map_err(|_| bad())?;
    let month: u8 = m.parse().map_err(|_| bad())?;
    let day: u8 = d.parse().map_err(|_| bad())?;
    let month = Month::try_from(month).map_err(|_| bad())?;
    let date = Date::from_calendar_date(year, month, day).map_err(|_| bad())?;
    let t = OffsetDateTime::new_utc(date, time::Time::MIDNIGHT).unix_timestamp();
    u64::try_from(t).map_err(|_| bad())
}

/// The window a patient chose: from a day (empty: now), until a day (empty: for
/// `duration` seconds from the start).
pub fn window(from: &str, until: &str, duration: u64) -> Result<Window, String> {
    let from = if from.trim().is_empty() { None } else { Some(parse_day(from)?) };
    let until = if until.trim().is_empty() {
        None
    } else {
        // Until a day means to the end of that day.
        Some(parse_day(until)? + 86_400)
    };
    if let (Some(f), Some(u)) = (from, until)
        && u <= f
    {
        return Err(
            "The sharing would end before it starts: choose a later 'until' day.".to_owned()
        );
    }
    Ok(Window { from, until, duration: Some(duration) })
}

/// A viewer's address, read from a form (with a sentence when it is not one).
pub fn viewer(text: &str) -> Result<Address, String> {
    let text = text.trim();
    if text.starts_with("0x") || text.starts_with("0X") {
        return text.parse::<Address>().map_err(|_| {
            format!(
                "'{text}' is not an address: ask the viewer for theirs, it looks like 0x followed by 40 hex digits (or give the code their app shows)."
            )
        });
    }
    medrec_primitives::code::decode(text).map_err(|e| {
        let mut why = e.to_string();
        if let Some(first) = why.get(..1) {
            why = format!("{}{}", first.to_uppercase(), &why[1..]);
        }
        format!("{why}. Type the viewer's code as their app shows it, or their address (0x followed by 40 hex digits).")
    })
}

/// `relationship 0x1234abcd…`.
pub fn relationship_words(id: B256) -> String {
    format!("relationship {}", short_id(id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use medrec_primitives::{PointerSet, Status};

    #[test]
    fn active_grants_name_their_records_and_expiry() {
        let id = RelationshipId(B256::repeat_byte(5));
        let viewer = Address::repeat_byte(9);
        let mut s = Summary {
            provider: Some(Address::repeat_byte(1)),
            status: Some(Status::Accepted),
            pointers: vec![(B256::ZERO, B256::ZERO), (B256::ZERO, B256::ZERO)],
            ..Summary::default()
        };
        s.grants.insert(viewer, (PointerSet::from_ids([1]).unwrap(), 0, 10_000));
        s.grants.insert(Address::repeat_byte(8), (PointerSet::from_ids([0]).unwrap(), 0, 500));
        let summaries = BTreeMap::from([(id, s)]);
        let mut names = BTreeMap::new();
        names.insert((id.0, 1), "Vitals (4 records)".to_owned());
        let list = grants(&summaries, &Names::default(), &names, &BTreeMap::new(), 1_000);
        assert_eq!(list.len(), 1, "the expired grant is not in force");
        assert_eq!(list[0].viewer, viewer);
        assert_eq!(list[0].group, None, "a viewer, not a group");
        let groups = BTreeMap::from([(viewer, "Pharmacists".to_owned())]);
        let named = grants(&summaries, &Names::default(), &names, &groups, 1_000);
        assert_eq!(named[0].group.as_deref(), Some("Pharmacists"));
        assert_eq!(list[0].what, ["Vitals (4 records)"]);
        assert_eq!(list[0].from, "now");
        assert_eq!(list[0].remaining, "ends in 2 h 30 min");
        let can = shareable(&summaries, &Names::default(), &names);
        assert_eq!(can[0].pointers[0].1, "Records of pointer 0 (not fetched yet)");
        assert_eq!(can[0].pointers[1], (1, "Vitals (4 records)".to_owned()));
    }

    #[test]
    fn the_window_is_read_from_days_in_utc() {
        assert_eq!(parse_day("1970-01-02"), Ok(86_400));
        assert!(parse_day("02/01/1970").unwrap_err().contains("year-month-day"));
        assert!(parse_day("2026-02-30").is_err());
        let w = window("1970-01-02", "1970-01-03", 7 * 86_400).unwrap();
        assert_eq!((w.from, w.until), (Some(86_400), Some(3 * 86_400)));
        assert_eq!(
            window("", "", 3600).unwrap(),
            Window { from: None, until: None, duration: Some(3600) }
        );
        assert!(window("1970-01-03", "1970-01-01", 1).is_err());
        assert!(viewer("not an address").unwrap_err().contains("0x followed by 40 hex digits"));
        assert!(viewer("0x12").unwrap_err().contains("is not an address"));
        // The code the viewer's app shows, typed in lower case with spaces.
        let a = Address::repeat_byte(0x24);
        let code = medrec_primitives::code::encode(a).to_lowercase().replace('-', " ");
        assert_eq!(viewer(&code).unwrap(), a);
        let mut typo = medrec_primitives::code::encode(a);
        typo.replace_range(0..1, if typo.starts_with('A') { "B" } else { "A" });
        assert!(
            viewer(&typo).unwrap_err().starts_with("The code's check characters do not match"),
            "{}",
            viewer(&typo).unwrap_err()
        );
    }
}
