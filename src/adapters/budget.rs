//! The process-wide call budgets (ARCHITECTURE.md: “Failure rules”): one token bucket per API and
//! tenant, shared by every worker and the poller, so workers wait for a token instead of sending
//! and getting 429, and a 429's `Retry-After` pauses that API for everyone. ARM writes are a burst
//! and a refill, like ARM's own bucket; low-priority writes (alert relations) keep off its reserve.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::domain::budget::{Priority, TokenBucket};
use crate::error::PortError;

pub struct SharedBudget {
    service: &'static str,
    /// Only writes (POST, PUT, PATCH, DELETE) spend from it (ARM's write limit).
    pub writes_only: bool,
    bucket: Mutex<TokenBucket>,
    origin: Instant,
}

impl SharedBudget {
    pub fn per_minute(service: &'static str, calls: u32) -> Self {
        // A burst of five seconds' worth, at least one call.
        Self::new(service, TokenBucket::new(calls, Duration::from_secs(60), calls.div_ceil(12)), false)
    }

    /// ARM writes: a bucket of `burst` refilled at `per_second` (ARM's own per principal is 200
    /// and 10/s). A third of the burst is kept for normal writes: low-priority ones (alert
    /// relations) wait while the bucket holds less.
    pub fn arm_writes(service: &'static str, burst: u32, per_second: u32) -> Self {
        let bucket = TokenBucket::new(per_second, Duration::from_secs(1), burst).with_reserve(burst / 3);
        Self::new(service, bucket, true)
    }

    fn new(service: &'static str, bucket: TokenBucket, writes_only: bool) -> Self {
        Self { service, writes_only, bucket: Mutex::new(bucket), origin: Instant::now() }
    }

    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }

    /// Waits for a token, at most `max_wait`; a longer wait is a [`PortError::Throttled`] saying
    /// how long, so a queue message can go back to the queue with that delay instead.
    pub async fn acquire(&self, priority: Priority, max_wait: Duration) -> Result<(), PortError> {
        let started = Instant::now();
        loop {
            let waited = started.elapsed();
            let left = max_wait.saturating_sub(waited);
            let taken = self.bucket.lock().unwrap_or_else(|p| p.into_inner()).take(self.now(), priority, left);
            match taken {
                Ok(wait) if wait.is_zero() => return Ok(()),
                Ok(wait) => {
                    tracing::debug!(
                        budget.service = self.service,
                        wait_ms = wait.as_millis() as u64,
                        "waiting for the call budget"
                    );
                    tokio::time::sleep(wait).await;
                    return Ok(());
                }
                // A low-priority call asks again once the bucket may hold its token, so normal
                // calls arriving meanwhile go first.
                Err(wait) if priority == Priority::Low && wait <= left => tokio::time::sleep(wait).await,
                Err(wait) => {
                    return Err(PortError::Throttled {
                        service: self.service,
                        after: Some(wait),
                        message: "the call budget is spent for now".into(),
                    })
                }
            }
        }
    }

    /// A 429 said to wait: nobody in this process calls this API before then.
    pub fn pause(&self, pause: Duration) {
        self.bucket.lock().unwrap_or_else(|p| p.into_inner()).pause(self.now(), pause);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn callers_wait_for_tokens_and_a_pause_holds_everyone() {
        let b = SharedBudget::per_minute("graph", 60);
        for _ in 0..5 {
            b.acquire(Priority::Normal, Duration::ZERO).await.unwrap();
        }
        let start = Instant::now();
        b.acquire(Priority::Normal, Duration::from_secs(5)).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(1), "one call a second once the burst is spent");
        b.pause(Duration::from_secs(30));
        let e = b.acquire(Priority::Normal, Duration::from_secs(10)).await.unwrap_err();
        assert!(matches!(e, PortError::Throttled { after: Some(a), .. } if a >= Duration::from_secs(29)), "{e:?}");
        let start = Instant::now();
        b.acquire(Priority::Normal, Duration::from_secs(60)).await.unwrap();
        assert!(start.elapsed() >= Duration::from_secs(29));
    }

    /// Low-priority writes waiting for the bucket do not hold up normal writes that arrive after
    /// them: the normal ones are served first, then the low ones, within the refill rate.
    #[tokio::test(start_paused = true)]
    async fn normal_writes_overtake_waiting_low_priority_ones() {
        let b = std::sync::Arc::new(SharedBudget::arm_writes("sentinel", 30, 10));
        // Spend down to the reserve (10 of 30) with low-priority writes.
        for _ in 0..20 {
            b.acquire(Priority::Low, Duration::ZERO).await.unwrap();
        }
        let low = {
            let b = b.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    b.acquire(Priority::Low, Duration::from_secs(60)).await.unwrap();
                }
                Instant::now()
            })
        };
        tokio::task::yield_now().await;
        let start = Instant::now();
        for _ in 0..10 {
            b.acquire(Priority::Normal, Duration::ZERO).await.unwrap();
        }
        assert_eq!(start.elapsed(), Duration::ZERO, "the reserve is there for normal writes");
        let low_done = low.await.unwrap();
        // 10 reserved + 10 low tokens to refill at 10/s (the last one refills after 2 s).
        assert!(low_done - start >= Duration::from_millis(1900), "{:?}", low_done - start);
        let e = b.acquire(Priority::Low, Duration::from_millis(10)).await.unwrap_err();
        assert!(matches!(e, PortError::Throttled { after: Some(_), .. }), "{e:?}");
    }
}
