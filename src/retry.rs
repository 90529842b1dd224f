//! The one retry policy: exponential backoff with full jitter, `Retry-After` honoured (capped),
//! bounded attempts. Only [`PortError::is_retryable`] errors are retried.
//!
//! The retry budget of one queue message (ARCHITECTURE.md: “Failure rules”): every HTTP call of
//! one delivery draws its retries from one shared [`MessageBudget`] (task-local), so a reconcile
//! that makes ten calls cannot multiply them; once the budget is spent, or a service asks for a
//! wait longer than [`RetryPolicy::max_retry_after`], the error surfaces and the message goes back
//! to the queue with a delay.

use std::future::Future;
use std::time::Duration;

use crate::error::PortError;

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
            max_attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(10),
        }
    }
}

/// Retries left for every call made while handling one queue message.
#[derive(Debug)]
pub struct MessageBudget {
    retries_left: std::sync::atomic::AtomicU32,
}

/// Retries one message delivery may spend across all of its calls.
pub const RETRIES_PER_MESSAGE: u32 = 8;

tokio::task_local! {
    static BUDGET: MessageBudget;
}

impl MessageBudget {
    /// Runs `fut` with a budget of `retries` shared by every call inside it.
    pub async fn scope<F: Future>(retries: u32, fut: F) -> F::Output {
        BUDGET.scope(MessageBudget { retries_left: std::sync::atomic::AtomicU32::new(retries) }, fut).await
    }

    /// Whether the caller is handling a queue message (and so should not wait long).
    pub fn in_message() -> bool {
        BUDGET.try_with(|_| ()).is_ok()
    }

    /// Takes one retry from the current message's budget; `true` outside any message (timers and
    /// commands are bounded by the per-call attempts alone).
    fn take() -> bool {
        use std::sync::atomic::Ordering;
        BUDGET
            .try_with(|b| b.retries_left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok())
            .unwrap_or(true)
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
    pub async fn run<T, F, Fut>(&self, mut op: F) -> Result<T, PortError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, PortError>>,
    {
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() => match self.delay(attempt, e.retry_after(), rand::random()) {
                    Some(d) if MessageBudget::take() => {
                        tracing::debug!(attempt, delay_ms = d.as_millis() as u64, error.message = %e, "retrying");
                        tokio::time::sleep(d).await;
                        attempt += 1;
                    }
                    _ => return Err(e),
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
        let p = RetryPolicy { max_attempts: 10, max_delay: Duration::from_secs(10), ..Default::default() };
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
        assert_eq!(p.delay(1, Some(Duration::from_secs(11)), 0.5), None, "a long wait goes back to the queue");
    }

    #[tokio::test(start_paused = true)]
    async fn retries_only_retryable_errors() {
        let p = RetryPolicy::default();
        let calls = AtomicU32::new(0);
        let r: Result<(), _> = p
            .run(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(PortError::rejected("graph", "bad"))
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let calls = AtomicU32::new(0);
        let r = p
            .run(|| async {
                if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    Err(PortError::Throttled {
                        service: "graph",
                        after: Some(Duration::from_secs(2)),
                        message: String::new(),
                    })
                } else {
                    Ok(7)
                }
            })
            .await;
        assert_eq!(r.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn one_message_shares_one_budget_across_its_calls() {
        let p = RetryPolicy { max_attempts: 100, ..Default::default() };
        let calls = AtomicU32::new(0);
        let always_busy = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(PortError::unavailable("sentinel", "503"))
        };
        MessageBudget::scope(5, async {
            assert!(p.run(always_busy).await.is_err());
            assert!(p.run(always_busy).await.is_err());
        })
        .await;
        // First call: 1 attempt + 5 retries; the second finds the budget spent: 1 attempt.
        assert_eq!(calls.load(Ordering::SeqCst), 7);
    }
}
