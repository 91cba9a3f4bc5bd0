//! Where "now" comes from: the system clock in service, a hand-set one in tests.
//!
//! The core functions take `now` (unix seconds) as an argument; only the HTTP layer
//! reads a [`Clock`].

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

/// The current unix time in whole seconds (0 if the system clock is before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A source of the current unix time in seconds.
///
/// Cloning a manual clock shares it: setting one clone moves them all.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self { manual: None }
    }

    /// A clock that stays at `now` until [`Clock::set`] or [`Clock::advance`] moves it.
    pub fn manual(now: u64) -> Self {
        Self { manual: Some(Arc::new(AtomicU64::new(now))) }
    }

    /// The current unix time in seconds.
    pub fn now(&self) -> u64 {
        self.manual.as_ref().map_or_else(unix_now, |t| t.load(Ordering::Relaxed))
    }

    /// Sets a manual clock to `now`; the system clock ignores it and returns `false`.
    pub fn set(&self, now: u64) -> bool {
        self.manual.as_ref().map(|t| t.store(now, Ordering::Relaxed)).is_some()
    }

    /// Moves a manual clock forward by `secs`; the system clock ignores it and returns
    /// `false`.
    pub fn advance(&self, secs: u64) -> bool {
        self.manual.as_ref().map(|t| t.fetch_add(secs, Ordering::Relaxed)).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_is_shared_by_its_clones() {
        let clock = Clock::manual(1_000);
        let other = clock.clone();
        assert!(other.advance(5));
        assert_eq!(clock.now(), 1_005);
        assert!(clock.set(7));
        assert_eq!(other.now(), 7);
    }

    #[test]
    fn system_clock_ignores_setting() {
        let clock = Clock::system();
        assert!(!clock.set(7));
        assert!(clock.now() > 1_600_000_000);
    }
}
