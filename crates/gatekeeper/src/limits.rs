//! Rate limits: how many requests one requester, or one IP address signing in, may send.
//!
//! Each limit is a token bucket (in its GCRA form: one "theoretical arrival time" per
//! key) of `burst` requests refilled at `per_second`. Two are applied:
//!
//! - **per requester**, keyed by the authenticated address, inside the
//!   [`Authenticated`](crate::auth::Authenticated) extractor, so every authenticated
//!   route is covered;
//! - **per IP address** on the unauthenticated sign-in routes `GET /auth/nonce` and
//!   `POST /auth/siwe`, keyed by the peer's address (`ConnectInfo<SocketAddr>`; a router
//!   served without connect info has no peer address and is not limited there).
//!
//! Over the limit a request is answered 429 with `Retry-After` (whole seconds, rounded
//! up) and a FHIR OperationOutcome whose issue code is `throttled`.
//!
//! Memory is bounded: a [`KeyedLimiter`] holds at most `capacity` keys. A key whose
//! bucket has refilled completely is the same as an absent one and is dropped when room
//! is needed; when every slot is still in use, a new key is refused (429) rather than
//! let the table grow, as the other caches of the gatekeeper do.
//!
//! [`RateLimits::off`] switches both limits off (for benchmarks).

use axum::response::{IntoResponse, Response};
use std::{
    collections::HashMap,
    hash::Hash,
    num::NonZeroU32,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Keys a limiter holds at most by default.
pub const DEFAULT_CAPACITY: usize = 100_000;

/// One rate limit: a sustained rate and a burst.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per second, sustained.
    pub per_second: NonZeroU32,
    /// Requests that may arrive at once after a quiet period.
    pub burst: NonZeroU32,
}

impl RateLimit {
    /// `per_second` sustained with bursts of `burst`; `None` when either is zero.
    pub fn new(per_second: u32, burst: u32) -> Option<Self> {
        Some(Self { per_second: NonZeroU32::new(per_second)?, burst: NonZeroU32::new(burst)? })
    }

    /// The time one request's token takes to come back.
    fn interval(self) -> Duration {
        Duration::from_secs(1) / self.per_second.get()
    }
}

/// The gatekeeper's rate limits; `None` switches one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Per authenticated requester (every authenticated route).
    pub requester: Option<RateLimit>,
    /// Per IP address on `GET /auth/nonce` and `POST /auth/siwe`.
    pub sign_in: Option<RateLimit>,
    /// Per IP address, the requests on data routes that fail to authenticate (no or
    /// refused credentials, unknown signers): past it, that address's signed requests
    /// are refused with 429 before their signature is checked.
    pub unauthenticated: Option<RateLimit>,
}

impl RateLimits {
    /// No limits at all (benchmarks, tests that send many requests).
    pub const fn off() -> Self {
        Self { requester: None, sign_in: None, unauthenticated: None }
    }
}

impl Default for RateLimits {
    /// 20 requests per second per requester with bursts of 40; 5 sign-in requests per
    /// second per IP address with bursts of 20; 10 failed authentications per second per
    /// IP address with bursts of 50.
    fn default() -> Self {
        Self {
            requester: RateLimit::new(20, 40),
            sign_in: RateLimit::new(5, 20),
            unauthenticated: RateLimit::new(10, 50),
        }
    }
}

/// A request refused because its sender is over a rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "too many requests: the limit is {per_second} per second with bursts of {burst}; try again in {} s",
    self.retry_after_secs()
)]
pub struct Throttled {
    /// When a request would be accepted again.
    pub retry_after: Duration,
    /// The limit's sustained rate.
    pub per_second: u32,
    /// The limit's burst.
    pub burst: u32,
}

impl Throttled {
    /// [`Throttled::retry_after`] in whole seconds, rounded up and at least 1 (the
    /// `Retry-After` header's value).
    pub fn retry_after_secs(&self) -> u64 {
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        secs.max(1)
    }
}

impl IntoResponse for Throttled {
    fn into_response(self) -> Response {
        crate::error::ApiError::Throttled(self).into_response()
    }
}

/// A token bucket per key, holding at most `capacity` keys.
#[derive(Debug)]
pub struct KeyedLimiter<K> {
    limit: RateLimit,
    capacity: usize,
    state: Mutex<State<K>>,
}

#[derive(Debug)]
struct State<K> {
    /// Per key, when its bucket will be full again (the GCRA "theoretical arrival time").
    full_at: HashMap<K, Instant>,
    /// No sweep for room before this (sweeps are O(keys)).
    next_sweep: Option<Instant>,
}

impl<K: Hash + Eq + Clone> KeyedLimiter<K> {
    /// A limiter of `limit` per key, for up to [`DEFAULT_CAPACITY`] keys.
    pub fn new(limit: RateLimit) -> Self {
        Self::with_capacity(limit, DEFAULT_CAPACITY)
    }

    /// A limiter of `limit` per key, for up to `capacity` keys (at least 1).
    pub fn with_capacity(limit: RateLimit, capacity: usize) -> Self {
        let state = State { full_at: HashMap::new(), next_sweep: None };
        Self { limit, capacity: capacity.max(1), state: Mutex::new(state) }
    }

    /// The limit applied.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Keys currently held.
    pub fn len(&self) -> usize {
        self.lock().full_at.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `key` is over its limit at `now`, without taking a token: when it is, how
    /// long until a request would pass.
    pub fn peek(&self, key: &K, now: Instant) -> Option<Throttled> {
        let interval = self.limit.interval();
        let window = interval * self.limit.burst.get();
        let state = self.lock();
        let full_at = *state.full_at.get(key)?;
        let ahead = full_at.max(now) + interval - now;
        (ahead > window).then(|| Throttled {
            retry_after: ahead - window,
            per_second: self.limit.per_second.get(),
            burst: self.limit.burst.get(),
        })
    }

    /// Takes one token from `key`'s bucket at `now`, or says how long until one is there.
    pub fn check(&self, key: &K, now: Instant) -> Result<(), Throttled> {
        let interval = self.limit.interval();
        let window = interval * self.limit.burst.get();
        let throttled = |retry_after| Throttled {
            retry_after,
            per_second: self.limit.per_second.get(),
            burst: self.limit.burst.get(),
        };
        let mut state = self.lock();
        if let Some(full_at) = state.full_at.get_mut(key) {
            let next = (*full_at).max(now) + interval;
            let ahead = next - now;
            if ahead > window {
                return Err(throttled(ahead - window));
            }
            *full_at = next;
            return Ok(());
        }
        if state.full_at.len() >= self.capacity {
            // Buckets that have refilled are the same as absent ones: drop them.
            if state.next_sweep.is_none_or(|t| now >= t) {
                state.full_at.retain(|_, full_at| *full_at > now);
                state.next_sweep = Some(now + window);
            }
            if state.full_at.len() >= self.capacity {
                let soonest = state
                    .full_at
                    .values()
                    .min()
                    .map_or(interval, |t| t.saturating_duration_since(now));
                return Err(throttled(soonest.max(interval)));
            }
        }
        state.full_at.insert(key.clone(), now + interval);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(per_second: u32, burst: u32) -> RateLimit {
        RateLimit::new(per_second, burst).unwrap()
    }

    #[test]
    fn peeking_takes_no_token() {
        let l = KeyedLimiter::new(limit(1, 2));
        let t0 = Instant::now();
        assert!(l.peek(&1, t0).is_none(), "an unknown key is under its limit");
        l.check(&1, t0).unwrap();
        for _ in 0..10 {
            assert!(l.peek(&1, t0).is_none(), "peeking must not use the burst up");
        }
        l.check(&1, t0).unwrap();
        assert!(l.peek(&1, t0).is_some(), "the burst of 2 is used");
        assert!(l.check(&1, t0).is_err());
        assert!(l.peek(&1, t0 + Duration::from_secs(1)).is_none(), "a token came back");
    }

    #[test]
    fn a_burst_passes_then_one_request_per_interval() {
        let l = KeyedLimiter::new(limit(2, 3));
        let t0 = Instant::now();
        for _ in 0..3 {
            l.check(&1, t0).unwrap();
        }
        let err = l.check(&1, t0).unwrap_err();
        assert_eq!(err.retry_after, Duration::from_millis(500));
        assert_eq!(err.retry_after_secs(), 1);
        // Refused requests take no token: half a second later exactly one passes.
        let t1 = t0 + Duration::from_millis(500);
        l.check(&1, t1).unwrap();
        assert!(l.check(&1, t1).is_err());
        // After a quiet period the whole burst is back.
        let t2 = t1 + Duration::from_secs(10);
        for _ in 0..3 {
            l.check(&1, t2).unwrap();
        }
        assert!(l.check(&1, t2).is_err());
    }

    #[test]
    fn keys_have_their_own_buckets() {
        let l = KeyedLimiter::new(limit(1, 1));
        let t = Instant::now();
        l.check(&"a", t).unwrap();
        assert!(l.check(&"a", t).is_err());
        l.check(&"b", t).unwrap();
    }

    #[test]
    fn memory_is_bounded_and_refilled_buckets_make_room() {
        let l = KeyedLimiter::with_capacity(limit(1, 2), 3);
        let t = Instant::now();
        for k in 0..3 {
            l.check(&k, t).unwrap();
        }
        // Full of live buckets: a new key is refused, the table does not grow.
        let err = l.check(&99, t).unwrap_err();
        assert_eq!(err.retry_after, Duration::from_secs(1));
        assert_eq!(l.len(), 3);
        // Known keys still work.
        l.check(&0, t).unwrap();
        // Once buckets have refilled, they are dropped for new keys.
        let later = t + Duration::from_secs(5);
        l.check(&99, later).unwrap();
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn the_response_is_a_429_operation_outcome_with_retry_after() {
        let t = Throttled { retry_after: Duration::from_millis(1500), per_second: 1, burst: 2 };
        assert_eq!(t.retry_after_secs(), 2);
        let response = t.into_response();
        assert_eq!(response.status(), axum::http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[axum::http::header::RETRY_AFTER], "2");
        assert!(t.to_string().contains("try again in 2 s"));
    }

    #[test]
    fn zero_is_not_a_limit() {
        assert!(RateLimit::new(0, 1).is_none());
        assert!(RateLimit::new(1, 0).is_none());
    }
}
