//! The one retry policy: exponential backoff with full jitter, `Retry-After` honoured (capped),
//! bounded attempts. Only [`ApiError::is_retryable`] errors are retried.

use std::future::Future;
use std::time::Duration;

use crate::error::ApiError;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Total attempts including the first.
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Longest `Retry-After` we will sleep for inside one call; longer waits surface as errors so
    /// the queue redelivers later instead of holding a worker.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt `attempt + 1` (attempt counts from 1), or `None` to give up.
    /// `jitter` in [0, 1) picks the point inside the backoff window (full jitter).
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Option<Duration> {
        if attempt >= self.max_attempts {
            return None;
        }
        if let Some(ra) = retry_after {
            return (ra <= self.max_retry_after).then_some(ra);
        }
        let exp = self.base_delay.saturating_mul(1u32 << (attempt - 1).min(20));
        let window = exp.min(self.max_delay);
        Some(window.mul_f64(jitter.clamp(0.0, 1.0)).max(Duration::from_millis(10)))
    }

    /// Runs `op` until it succeeds, fails with a non-retryable error, or attempts run out.
    pub async fn run<T, F, Fut>(&self, mut op: F) -> Result<T, ApiError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() => match self.delay(attempt, e.retry_after(), rand::random()) {
                    Some(d) => {
                        tracing::debug!(attempt, delay_ms = d.as_millis() as u64, error.message = %e, "retrying");
                        tokio::time::sleep(d).await;
                        attempt += 1;
                    }
                    None => return Err(e),
                },
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy { max_attempts: 10, ..Default::default() };
        assert_eq!(p.delay(1, None, 1.0), Some(Duration::from_millis(200)));
        assert_eq!(p.delay(3, None, 1.0), Some(Duration::from_millis(800)));
        assert_eq!(p.delay(9, None, 1.0), Some(Duration::from_secs(10)));
        assert_eq!(p.delay(10, None, 1.0), None);
    }

    #[test]
    fn retry_after_wins_unless_too_long() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, Some(Duration::from_secs(3)), 0.5), Some(Duration::from_secs(3)));
        assert_eq!(p.delay(1, Some(Duration::from_secs(600)), 0.5), None);
    }

    #[tokio::test(start_paused = true)]
    async fn retries_only_retryable_errors() {
        let p = RetryPolicy::default();
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = p
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(ApiError::from_status("graph", 400, None, ""))
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let calls = AtomicU32::new(0);
        let r = p
            .run(|| async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(ApiError::from_status("graph", 429, Some(Duration::from_secs(2)), ""))
                } else {
                    Ok(7)
                }
            })
            .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }
}
