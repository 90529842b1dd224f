//! The process-wide call budgets (ARCHITECTURE.md: “Failure rules”): one token bucket per API and
//! tenant, shared by every worker and the poller, so workers wait for a token instead of sending
//! and getting 429, and a 429's `Retry-After` pauses that API for everyone.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::domain::budget::TokenBucket;
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

    pub fn writes_per_second(service: &'static str, writes: u32) -> Self {
        Self::new(service, TokenBucket::new(writes, Duration::from_secs(1), writes), true)
    }

    fn new(service: &'static str, bucket: TokenBucket, writes_only: bool) -> Self {
        Self { service, writes_only, bucket: Mutex::new(bucket), origin: Instant::now() }
    }

    fn now(&self) -> Duration {
        Instant::now().saturating_duration_since(self.origin)
    }

    /// Waits for a token, at most `max_wait`; a longer wait is a [`PortError::Throttled`] saying
    /// how long, so a queue message can go back to the queue with that delay instead.
    pub async fn acquire(&self, max_wait: Duration) -> Result<(), PortError> {
        let reserved = self.bucket.lock().unwrap_or_else(|p| p.into_inner()).reserve(self.now(), max_wait);
        match reserved {
            Ok(wait) if wait.is_zero() => Ok(()),
            Ok(wait) => {
                tracing::debug!(
                    budget.service = self.service,
                    wait_ms = wait.as_millis() as u64,
                    "waiting for the call budget"
                );
                tokio::time::sleep(wait).await;
                Ok(())
            }
            Err(wait) => Err(PortError::Throttled {
                service: self.service,
                after: Some(wait),
                message: "the call budget is spent for now".into(),
            }),
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
            b.acquire(Duration::ZERO).await.unwrap();
        }
        let start = Instant::now();
        b.acquire(Duration::from_secs(5)).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(1), "one call a second once the burst is spent");
        b.pause(Duration::from_secs(30));
        let e = b.acquire(Duration::from_secs(10)).await.unwrap_err();
        assert!(matches!(e, PortError::Throttled { after: Some(a), .. } if a >= Duration::from_secs(29)), "{e:?}");
        let start = Instant::now();
        b.acquire(Duration::from_secs(60)).await.unwrap();
        assert!(start.elapsed() >= Duration::from_secs(29));
    }
}
