//! Call budgets, pure: a token bucket that refills at a steady rate, can be paused (a 429's
//! `Retry-After` stops every caller of that API, not just the one that got it), and answers how
//! long a caller must wait for its call. Time is an offset from any fixed origin, passed in.

use std::time::Duration;

/// One API's budget (e.g. Graph calls of one tenant, ARM writes of one principal).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    per_second: f64,
    capacity: f64,
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Duration,
    paused_until: Duration,
}

impl TokenBucket {
    /// A full bucket refilling `calls` per `period`, holding at most `capacity` calls.
    pub fn new(calls: u32, period: Duration, capacity: u32) -> Self {
        let capacity = f64::from(capacity.max(1));
        Self {
            per_second: f64::from(calls.max(1)) / period.as_secs_f64().max(1e-9),
            capacity,
            tokens: capacity,
            at: Duration::ZERO,
            paused_until: Duration::ZERO,
        }
    }

    fn refill(&mut self, now: Duration) {
        if now > self.at {
            self.tokens = (self.tokens + (now - self.at).as_secs_f64() * self.per_second).min(self.capacity);
            self.at = now;
        }
    }

    /// Reserves one call and returns how long to wait before making it; `Err(wait)` (nothing
    /// reserved) when the wait would be longer than `max_wait`.
    pub fn reserve(&mut self, now: Duration, max_wait: Duration) -> Result<Duration, Duration> {
        self.refill(now);
        let for_token = if self.tokens >= 1.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((1.0 - self.tokens) / self.per_second)
        };
        let for_pause = self.paused_until.saturating_sub(now);
        let wait = for_token.max(for_pause);
        if wait > max_wait {
            return Err(wait);
        }
        // Going below zero queues this caller behind the ones already waiting.
        self.tokens -= 1.0;
        Ok(wait)
    }

    /// Stops every call until `now + pause` (a service's `Retry-After`).
    pub fn pause(&mut self, now: Duration, pause: Duration) {
        self.paused_until = self.paused_until.max(now + pause);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_burst_then_the_steady_rate() {
        let mut b = TokenBucket::new(120, 60 * S, 10);
        for _ in 0..10 {
            assert_eq!(b.reserve(Duration::ZERO, Duration::ZERO), Ok(Duration::ZERO));
        }
        // The 11th call waits half a second (2 calls a second), the 12th a full second.
        assert_eq!(b.reserve(Duration::ZERO, S), Ok(S / 2));
        assert_eq!(b.reserve(Duration::ZERO, 5 * S), Ok(S));
        assert_eq!(b.reserve(Duration::ZERO, S), Err(S * 3 / 2), "longer than the caller can wait: not reserved");
        assert_eq!(b.reserve(S, S), Ok(S / 2), "time refills");
    }

    #[test]
    fn a_pause_stops_every_caller_until_it_ends() {
        let mut b = TokenBucket::new(5, S, 5);
        b.pause(Duration::ZERO, 30 * S);
        assert_eq!(b.reserve(10 * S, 60 * S), Ok(20 * S));
        assert_eq!(b.reserve(10 * S, 10 * S), Err(20 * S));
        b.pause(10 * S, 5 * S);
        assert_eq!(b.reserve(31 * S, S), Ok(Duration::ZERO), "a shorter pause never shortens a longer one");
    }

    proptest! {
        /// However callers arrive, the calls granted within any window never exceed the capacity
        /// plus what the rate refills in that window.
        #[test]
        fn never_more_than_the_rate_allows(arrivals in proptest::collection::vec(0u64..120_000, 1..400)) {
            let mut arrivals = arrivals;
            arrivals.sort();
            let mut b = TokenBucket::new(120, 60 * S, 10);
            let mut granted: Vec<f64> = Vec::new();
            for at in arrivals {
                let now = Duration::from_millis(at);
                if let Ok(wait) = b.reserve(now, 10 * S) {
                    granted.push((now + wait).as_secs_f64());
                }
            }
            granted.sort_by(f64::total_cmp);
            for (i, start) in granted.iter().enumerate() {
                let window = 60.0;
                let n = granted[i..].iter().take_while(|t| **t < start + window).count() as f64;
                prop_assert!(n <= 10.0 + 120.0 + 1e-6, "{n} calls in a minute");
            }
        }
    }
}
