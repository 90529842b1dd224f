//! Call budgets, pure: a token bucket that refills at a steady rate, can be paused (a 429's
//! `Retry-After` stops every caller of that API, not just the one that got it), and answers how
//! long a caller must wait for its call. Time is an offset from any fixed origin, passed in.
//!
//! Callers have a [`Priority`]: low-priority calls (ARM relation PUTs, which can wait) take a token
//! only while the bucket holds more than its reserve, so a burst of them never delays the calls
//! users wait for (mirror creation, field sync).

use std::time::Duration;

/// Whether a call may use the whole bucket or only what lies above its reserve.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Priority {
    #[default]
    Normal,
    /// Takes a token only while the bucket holds more than its reserve, and never queues ahead
    /// of a normal call: it is told when to ask again.
    Low,
}

/// One API's budget (e.g. Graph calls of one tenant, ARM writes of one principal).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    per_second: f64,
    capacity: f64,
    tokens: f64,
    /// When `tokens` was last brought up to date.
    at: Duration,
    paused_until: Duration,
    /// Tokens low-priority calls leave for normal ones.
    reserve: f64,
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
            reserve: 0.0,
        }
    }

    /// Keeps `reserve` tokens (at most all but one) away from low-priority calls.
    pub fn with_reserve(mut self, reserve: u32) -> Self {
        self.reserve = f64::from(reserve).min(self.capacity - 1.0);
        self
    }

    /// The tokens held at `now` (negative while callers are queued for future tokens).
    pub fn tokens(&mut self, now: Duration) -> f64 {
        self.refill(now);
        self.tokens
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

    /// Takes one token for a call of `priority`: `Ok(wait)` as [`reserve`](Self::reserve) for a
    /// normal call; a low-priority call gets `Ok(ZERO)` only when the bucket holds more than its
    /// reserve now (and the bucket is not paused), else `Err(when to ask again)` with nothing
    /// taken, so normal calls arriving meanwhile go first.
    pub fn take(&mut self, now: Duration, priority: Priority, max_wait: Duration) -> Result<Duration, Duration> {
        if priority == Priority::Normal {
            return self.reserve(now, max_wait);
        }
        self.refill(now);
        let needed = self.reserve + 1.0;
        let for_token = if self.tokens >= needed {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((needed - self.tokens) / self.per_second)
        };
        let wait = for_token.max(self.paused_until.saturating_sub(now));
        if !wait.is_zero() {
            return Err(wait);
        }
        self.tokens -= 1.0;
        Ok(Duration::ZERO)
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

    #[test]
    fn low_priority_calls_leave_the_reserve_to_normal_ones() {
        // ARM-like: 10 tokens, 2 a second, 4 kept for normal calls.
        let mut b = TokenBucket::new(2, S, 10).with_reserve(4);
        for _ in 0..6 {
            assert_eq!(b.take(Duration::ZERO, Priority::Low, Duration::ZERO), Ok(Duration::ZERO));
        }
        assert_eq!(b.take(Duration::ZERO, Priority::Low, 10 * S), Err(S / 2), "the reserve is not theirs");
        for _ in 0..4 {
            assert_eq!(b.take(Duration::ZERO, Priority::Normal, Duration::ZERO), Ok(Duration::ZERO));
        }
        // Normal calls queue for future tokens; a low one waits until they are served and the
        // reserve has refilled (1 queued normal + 4 reserved + its own = 6 tokens, 3 s).
        assert_eq!(b.take(Duration::ZERO, Priority::Normal, S), Ok(S / 2));
        assert_eq!(b.take(Duration::ZERO, Priority::Low, 60 * S), Err(3 * S));
        assert_eq!(b.take(3 * S, Priority::Low, Duration::ZERO), Ok(Duration::ZERO));
        b.pause(3 * S, 10 * S);
        assert_eq!(b.take(10 * S, Priority::Low, Duration::ZERO), Err(3 * S), "a pause holds low calls too");
    }

    #[test]
    fn a_reserve_never_takes_the_whole_bucket() {
        let mut b = TokenBucket::new(1, S, 3).with_reserve(50);
        assert_eq!(b.take(Duration::ZERO, Priority::Low, Duration::ZERO), Ok(Duration::ZERO));
    }

    fn op() -> impl Strategy<Value = (u64, bool)> {
        (0u64..60_000, any::<bool>())
    }

    proptest! {
        /// Mixed priorities never exceed the rate either: capacity plus what a window refills.
        #[test]
        fn mixed_priorities_never_exceed_the_rate(ops in proptest::collection::vec(op(), 1..400)) {
            let mut ops = ops;
            ops.sort();
            let mut b = TokenBucket::new(10, S, 200).with_reserve(50);
            let mut granted: Vec<f64> = Vec::new();
            for (at, low) in ops {
                let now = Duration::from_millis(at);
                let priority = if low { Priority::Low } else { Priority::Normal };
                if let Ok(wait) = b.take(now, priority, 10 * S) {
                    granted.push((now + wait).as_secs_f64());
                }
            }
            granted.sort_by(f64::total_cmp);
            for (i, start) in granted.iter().enumerate() {
                let n = granted[i..].iter().take_while(|t| **t < start + 10.0).count() as f64;
                prop_assert!(n <= 200.0 + 100.0 + 1e-6, "{n} calls in 10 s");
            }
        }

        /// Whatever low-priority traffic came before, it never leaves the bucket below its
        /// reserve: the next `reserve` normal calls go at once.
        #[test]
        fn low_priority_traffic_never_delays_the_reserve(lows in proptest::collection::vec(0u64..60_000, 0..600), at in 0u64..60_000) {
            let mut lows = lows;
            lows.sort();
            let mut b = TokenBucket::new(10, S, 200).with_reserve(50);
            for t in lows {
                let now = Duration::from_millis(t);
                if b.take(now, Priority::Low, Duration::ZERO).is_ok() {
                    prop_assert!(b.tokens(now) >= 50.0 - 1e-9);
                }
            }
            let now = Duration::from_millis(at.max(60_000));
            for _ in 0..50 {
                prop_assert_eq!(b.take(now, Priority::Normal, Duration::ZERO), Ok(Duration::ZERO));
            }
        }

        /// Low-priority calls are told to wait, never starved forever: the wait they are given is
        /// enough for the bucket to hold their token above the reserve, if nobody else calls.
        #[test]
        fn low_priority_calls_are_told_a_sufficient_wait(normals in 0usize..400, at in 0u64..10_000) {
            let mut b = TokenBucket::new(10, S, 200).with_reserve(50);
            let now = Duration::from_millis(at);
            for _ in 0..normals {
                let _ = b.take(now, Priority::Normal, 60 * S);
            }
            match b.take(now, Priority::Low, Duration::ZERO) {
                Ok(_) => {}
                Err(wait) => {
                    let later = now + wait + Duration::from_micros(1);
                    prop_assert_eq!(b.take(later, Priority::Low, Duration::ZERO), Ok(Duration::ZERO));
                }
            }
        }

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
