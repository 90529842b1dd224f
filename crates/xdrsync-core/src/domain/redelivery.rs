//! When a failed queue message comes back, pure (ARCHITECTURE.md: “Failure rules”). A passing
//! outage, a throttle or a role still propagating must not spend the queue's deliveries (the host
//! poisons after 5): the handler records the failure and gives the message back as a fresh one
//! after a delay that grows from seconds to a few minutes. Only what a person must fix moves to
//! the hours-long `Failures` schedule.

use std::time::Duration;

use super::failures::FailureClass;

/// The first delay of a failed message.
pub const FIRST_DELAY: Duration = Duration::from_secs(5);
/// The longest delay between two attempts of a message.
pub const LONGEST_DELAY: Duration = Duration::from_secs(300);
/// Attempts a refused credential or role (401/403) gets on the short backoff, about 45 minutes in
/// all (a role assignment may take up to 30 minutes to propagate); after them it waits on the
/// `Failures` schedule, as a person likely has to act.
pub const ACCESS_ATTEMPTS: u32 = 12;

/// What happens to a message whose reconcile failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redelivery {
    /// Back to the queue as a fresh message, visible after this delay.
    Requeue(Duration),
    /// Acknowledged; the `Failures` record brings it back on its schedule.
    Schedule,
}

/// The delay before the `attempt`-th retry (1-based): 5 s doubling, at most [`LONGEST_DELAY`];
/// `jitter` in [0, 1) adds up to a fifth, so incidents failing together do not return together.
pub fn backoff(attempt: u32, jitter: f64) -> Duration {
    let doublings = attempt.max(1).saturating_sub(1).min(16);
    let base = FIRST_DELAY.saturating_mul(1u32 << doublings).min(LONGEST_DELAY);
    base.mul_f64(1.0 + jitter.clamp(0.0, 0.999) / 5.0).min(LONGEST_DELAY)
}

/// What to do with a message after its `attempt`-th failure (the incident's count in `Failures`)
/// of `class`; `retry_after` is the service's own wait, when it gave one.
pub fn redelivery(class: FailureClass, attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Redelivery {
    match class {
        // The service refused the request as made, or the queue gave up: hours, not seconds.
        FailureClass::Rejected | FailureClass::Poisoned => Redelivery::Schedule,
        FailureClass::Unauthorized | FailureClass::Forbidden if attempt > ACCESS_ATTEMPTS => Redelivery::Schedule,
        _ => Redelivery::Requeue(backoff(attempt, jitter).max(retry_after.unwrap_or_default())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn grows_from_seconds_to_a_capped_few_minutes() {
        let delays: Vec<u64> = (1..=8).map(|a| backoff(a, 0.0).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff(1_000, 0.99), LONGEST_DELAY);
    }

    #[test]
    fn outages_and_throttles_are_requeued_forever_and_rejections_wait_on_the_schedule() {
        for class in [FailureClass::Unavailable, FailureClass::Throttled, FailureClass::Conflict] {
            assert_eq!(redelivery(class, 500, None, 0.0), Redelivery::Requeue(LONGEST_DELAY), "{class:?}");
        }
        assert_eq!(redelivery(FailureClass::Rejected, 1, None, 0.0), Redelivery::Schedule);
        assert_eq!(redelivery(FailureClass::Forbidden, 1, None, 0.0), Redelivery::Requeue(FIRST_DELAY));
        assert_eq!(redelivery(FailureClass::Forbidden, ACCESS_ATTEMPTS + 1, None, 0.0), Redelivery::Schedule);
        let long = Duration::from_secs(900);
        assert_eq!(
            redelivery(FailureClass::Throttled, 1, Some(long), 0.0),
            Redelivery::Requeue(long),
            "the service's wait"
        );
    }

    #[test]
    fn after_a_60_second_refusal_every_incident_is_retried_within_two_minutes_of_its_end() {
        // An incident first failing at any second of the window, retried on the backoff.
        for start in 0..60u64 {
            let (mut t, mut attempt) = (start, 1);
            while t < 60 {
                t += backoff(attempt, 0.999).as_secs();
                attempt += 1;
            }
            assert!(t <= 60 + 120, "first failure at {start} s: retried at {t} s");
        }
    }

    proptest! {
        #[test]
        fn never_shrinks_and_stays_within_bounds(attempt in 1u32..10_000, j1 in 0.0f64..1.0, j2 in 0.0f64..1.0) {
            let d = backoff(attempt, j1);
            prop_assert!(d >= FIRST_DELAY && d <= LONGEST_DELAY);
            prop_assert!(backoff(attempt + 1, 0.0) >= backoff(attempt, 0.0));
            prop_assert!(backoff(attempt, j2) >= backoff(attempt, 0.0));
        }
    }
}
