//! Incidents whose reconcile did not complete, pure (ARCHITECTURE.md: “Failure rules”): what is
//! recorded and when it is tried again. Nothing is dropped silently and nothing waits for a
//! person forever: every failure has a record, retried on a schedule, until a success clears it.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::time_fmt::{rfc3339, rfc3339_opt};

/// Why a reconcile failed, by what fixes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FailureClass {
    Throttled,
    Unavailable,
    Conflict,
    /// Credentials refused.
    Unauthorized,
    /// A permission or role is missing.
    Forbidden,
    /// The service refused the request as made (a 400 with its message).
    Rejected,
    /// The queue gave up on the message after its deliveries.
    Poisoned,
}

/// Attempts a [`FailureClass::Rejected`] failure gets on the schedule before it slows down to
/// [`REJECTED_INTERVAL`].
pub const REJECTED_ATTEMPTS: u32 = 3;
/// How often rejected work is tried after its first attempts: a refusal caused by a passing state
/// heals without a person, and one that does not stays visible in `failures` and health.
pub const REJECTED_INTERVAL: Duration = Duration::hours(3);

/// One failed incident (`Failures` table, PK tenant, RK Defender id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureRecord {
    pub tenant_id: String,
    pub incident_id: String,
    #[serde(default)]
    pub sentinel_name: Option<String>,
    #[serde(with = "rfc3339")]
    pub first_failure: OffsetDateTime,
    #[serde(with = "rfc3339")]
    pub last_failure: OffsetDateTime,
    pub attempts: u32,
    pub class: FailureClass,
    /// The service that failed (`graph`, `sentinel`, …), when one did.
    #[serde(default)]
    pub service: Option<String>,
    pub message: String,
    /// When it is enqueued again (`None` in records written by versions that left rejected work
    /// to an operator: `xdrsync retry` enqueues it).
    #[serde(default, with = "rfc3339_opt")]
    pub next_retry: Option<OffsetDateTime>,
}

/// The delay before the `attempt`-th retry (1-based): the schedule's steps, then its last step
/// forever.
pub fn retry_delay(schedule: &[Duration], attempt: u32) -> Duration {
    let i = (attempt.max(1) as usize - 1).min(schedule.len().saturating_sub(1));
    schedule.get(i).copied().unwrap_or(Duration::hours(3))
}

/// The record after one more failure.
pub fn record_failure(
    previous: Option<&FailureRecord>,
    tenant_id: &str,
    incident_id: &str,
    class: FailureClass,
    message: &str,
    now: OffsetDateTime,
    schedule: &[Duration],
) -> FailureRecord {
    let attempts = previous.map_or(0, |p| p.attempts) + 1;
    // Nothing is final. A request the service refuses is tried a few times on the schedule,
    // then every few hours, with the service's words kept for a person meanwhile.
    let next_retry = Some(now + next_delay(class, schedule, attempts));
    FailureRecord {
        tenant_id: tenant_id.to_string(),
        incident_id: incident_id.to_string(),
        sentinel_name: previous.and_then(|p| p.sentinel_name.clone()),
        first_failure: previous.map_or(now, |p| p.first_failure),
        last_failure: now,
        attempts,
        class,
        service: None,
        message: message.chars().take(2_000).collect(),
        next_retry,
    }
}

fn next_delay(class: FailureClass, schedule: &[Duration], attempts: u32) -> Duration {
    match class {
        FailureClass::Rejected if attempts >= REJECTED_ATTEMPTS => REJECTED_INTERVAL,
        _ => retry_delay(schedule, attempts),
    }
}

/// The record while its message is back in the queue until `returns`: the schedule does not
/// enqueue it again before then (plus a minute's grace), only if that message were lost.
pub fn held_for_message(r: FailureRecord, returns: OffsetDateTime) -> FailureRecord {
    let floor = returns + Duration::minutes(1);
    FailureRecord { next_retry: Some(r.next_retry.map_or(floor, |t| t.max(floor))), ..r }
}

/// The records whose retry is due.
pub fn due(records: &[FailureRecord], now: OffsetDateTime) -> Vec<&FailureRecord> {
    records.iter().filter(|r| r.next_retry.is_some_and(|t| t <= now)).collect()
}

/// The record once its retry is enqueued: not due again before the next step of the schedule,
/// so a tick does not enqueue it twice while the first retry is still in the queue.
pub fn retry_enqueued(r: &FailureRecord, now: OffsetDateTime, schedule: &[Duration]) -> FailureRecord {
    FailureRecord { next_retry: Some(now + next_delay(r.class, schedule, r.attempts + 1)), ..r.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-29 12:00 UTC);

    fn schedule() -> Vec<Duration> {
        vec![Duration::minutes(1), Duration::minutes(5), Duration::minutes(30), Duration::hours(3)]
    }

    #[test]
    fn outages_back_off_and_are_never_final() {
        let mut r = None;
        let mut delays = Vec::new();
        for i in 0..6 {
            let now = NOW + Duration::hours(i);
            let next = record_failure(r.as_ref(), "t", "29", FailureClass::Unavailable, "503", now, &schedule());
            delays.push(next.next_retry.unwrap() - now);
            r = Some(next);
        }
        assert_eq!(
            delays,
            [1, 5, 30, 180, 180, 180].map(Duration::minutes),
            "1 min, 5 min, 30 min, then every 3 hours"
        );
        let r = r.unwrap();
        assert_eq!((r.attempts, r.first_failure), (6, NOW));
    }

    #[test]
    fn a_rejected_request_is_retried_every_three_hours_after_its_first_attempts_and_a_403_never_waits_for_a_person() {
        let mut r = None;
        let mut delays = Vec::new();
        for _ in 0..REJECTED_ATTEMPTS + 3 {
            let next = record_failure(r.as_ref(), "t", "29", FailureClass::Rejected, "bad", NOW, &schedule());
            delays.push(next.next_retry.expect("never waits for a person") - NOW);
            r = Some(next);
        }
        assert_eq!(delays, [1, 5, 180, 180, 180, 180].map(Duration::minutes));
        let r = r.unwrap();
        let again = retry_enqueued(&r, NOW, &schedule());
        assert_eq!(again.next_retry, Some(NOW + REJECTED_INTERVAL), "the enqueued retry keeps the slow pace");
        let mut f = None;
        for _ in 0..10 {
            f = Some(record_failure(f.as_ref(), "t", "29", FailureClass::Forbidden, "403", NOW, &schedule()));
        }
        assert!(f.unwrap().next_retry.is_some());
    }

    #[test]
    fn due_records_are_enqueued_once_per_step() {
        let r = record_failure(None, "t", "29", FailureClass::Unavailable, "503", NOW, &schedule());
        assert!(due(std::slice::from_ref(&r), NOW).is_empty());
        let later = NOW + Duration::minutes(2);
        assert_eq!(due(std::slice::from_ref(&r), later).len(), 1);
        let enqueued = retry_enqueued(&r, later, &schedule());
        assert!(due(std::slice::from_ref(&enqueued), later + Duration::minutes(1)).is_empty());
    }

    #[test]
    fn a_record_whose_message_is_back_in_the_queue_is_not_due_before_it_returns() {
        let r = record_failure(None, "t", "29", FailureClass::Unavailable, "503", NOW, &[Duration::seconds(2)]);
        let held = held_for_message(r, NOW + Duration::minutes(5));
        assert!(due(std::slice::from_ref(&held), NOW + Duration::minutes(5)).is_empty());
        assert_eq!(due(std::slice::from_ref(&held), NOW + Duration::minutes(6)).len(), 1, "a lost message is retried");
    }
}
