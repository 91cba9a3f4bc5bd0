//! Calendar days: [`Date`] (days since 1970-01-01, written `YYYY-MM-DD`), its
//! parse error, and the day and instant texts that resources carry.

use medrec_store::format_instant;
use std::{fmt, str::FromStr};

/// The default reference date: histories end the day before it.
pub const DEFAULT_REFERENCE_DATE: Date = Date(20_454);

pub(crate) const MS_PER_DAY: i64 = 86_400_000;

/// A calendar day (proleptic Gregorian, UTC), written `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Date(i64);

impl Date {
    /// Days since 1970-01-01.
    pub const fn days_since_epoch(self) -> i64 {
        self.0
    }

    /// The day `days` after 1970-01-01.
    pub const fn from_days_since_epoch(days: i64) -> Self {
        Self(days)
    }
}

impl Default for Date {
    fn default() -> Self {
        DEFAULT_REFERENCE_DATE
    }
}

/// A reference date that is not a calendar date `YYYY-MM-DD`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a date: write it as YYYY-MM-DD, e.g. 2026-01-01")]
pub struct DateError(String);

impl FromStr for Date {
    type Err = DateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || DateError(s.chars().take(40).collect());
        if s.len() != 10 {
            return Err(bad());
        }
        let (start, _) = medrec_store::fhir::date_range(s).map_err(|_| bad())?;
        Ok(Self(start.div_euclid(MS_PER_DAY)))
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_instant(self.0 * MS_PER_DAY)[..10])
    }
}

pub(crate) fn day_text(day: i64) -> String {
    format_instant(day * MS_PER_DAY)[..10].to_owned()
}

pub(crate) fn instant(day: i64, minute: i64) -> String {
    format_instant(day * MS_PER_DAY + minute * 60_000).replace(".000Z", "Z")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generator::COVID_VACCINES_FROM;

    #[test]
    fn dates_parse_and_print() {
        assert_eq!(DEFAULT_REFERENCE_DATE.to_string(), "2026-01-01");
        assert_eq!("2026-01-01".parse::<Date>().unwrap(), DEFAULT_REFERENCE_DATE);
        assert_eq!(COVID_VACCINES_FROM, "2021-01-01".parse::<Date>().unwrap().0);
        for bad in ["2026", "2026-13-01", "2026-02-30", "tomorrow", "2026-01-01T00:00:00Z"] {
            assert!(bad.parse::<Date>().is_err(), "{bad}");
        }
    }
}
