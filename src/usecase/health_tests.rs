//! Tests of the health rules (`health_rules.rs`, through `health.rs`): each status and reason, and the property that a
//! feed running on time on any schedule is never `unhealthy`.
use super::*;
use crate::domain::failures::FailureClass;
use crate::records::{ALERTS_FEED, HUNTING_FEED, INCIDENTS_FEED, SENTINEL_FEED};
use time::macros::datetime;
use time::Duration;

const NOW: OffsetDateTime = datetime!(2026-11-29 12:00 UTC);

/// The default poll (every 30 s) with a one-minute grace.
fn poll30() -> Cadence {
    Cadence { interval: Duration::seconds(30), grace: Duration::minutes(1) }
}

fn facts() -> Facts {
    let ok = FeedHealth { last_success: Some(NOW - Duration::seconds(20)), ..Default::default() };
    Facts {
        storage_reachable: true,
        feeds: vec![(INCIDENTS_FEED, ok.clone(), None), (SENTINEL_FEED, ok, None)],
        queue_backlog: Some(0),
        poison: Some(0),
        oldest_message: None,
        failures: vec![],
        jobs: vec![],
        workspace_jobs: vec![],
    }
}

fn failure(class: FailureClass, message: &str, age: Duration) -> FailureRecord {
    crate::domain::failures::record_failure(None, "t", "29", class, message, NOW - age, &[Duration::minutes(1)])
}

#[test]
fn a_job_feed_is_judged_on_its_own_schedule_and_named() {
    let mut f = facts();
    let five_min = Cadence { interval: Duration::minutes(5), grace: Duration::minutes(1) };
    // Ran 8 minutes ago on a 5-minute schedule: fine, though the poll runs every 30 s.
    let ran = FeedHealth { last_success: Some(NOW - Duration::minutes(8)), ..Default::default() };
    f.jobs.push((HUNTING_FEED, ran, five_min));
    assert_eq!(assess(&f, NOW, poll30()), ("healthy", vec![]));
    // Silent for 12 minutes on that schedule: unhealthy, by its own name.
    f.jobs[0].1.last_success = Some(NOW - Duration::minutes(12));
    let (status, reasons) = assess(&f, NOW, poll30());
    assert_eq!(status, "unhealthy");
    assert!(reasons[0].starts_with("Hunting export has not run"), "{reasons:?}");
    // Denied: names the permission to grant.
    f.jobs[0].1 = FeedHealth {
        failing_since: Some(NOW - Duration::seconds(5)),
        last_error_class: Some("forbidden".into()),
        last_error_service: Some("hunting".into()),
        ..Default::default()
    };
    let (status, reasons) = assess(&f, NOW, poll30());
    assert_eq!(status, "unhealthy");
    assert!(
        reasons[0].contains("Hunting export fails") && reasons[0].contains("ThreatHunting.Read.All"),
        "{reasons:?}"
    );
}

#[test]
fn an_attach_run_per_workspace_is_judged_and_named_on_its_own() {
    let mut f = facts();
    let ok = FeedHealth { last_success: Some(NOW - Duration::seconds(20)), ..Default::default() };
    let denied = FeedHealth {
        failing_since: Some(NOW - Duration::seconds(5)),
        last_error_class: Some("forbidden".into()),
        last_error_service: Some("log-analytics".into()),
        ..Default::default()
    };
    let every = poll30();
    f.workspace_jobs.push(("soc".into(), ALERTS_FEED, ok, every));
    f.workspace_jobs.push(("soc-emea".into(), ALERTS_FEED, denied, every));
    let (status, reasons) = assess(&f, NOW, every);
    assert_eq!(status, "unhealthy");
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].starts_with("Alert attach in soc-emea fails") && reasons[0].contains("Log Analytics Reader"));
    f.workspace_jobs.pop();
    assert_eq!(assess(&f, NOW, every), ("healthy", vec![]));
}

#[test]
fn quiet_and_working_is_healthy() {
    assert_eq!(assess(&facts(), NOW, poll30()), ("healthy", vec![]));
}

#[test]
fn a_feed_denied_names_the_missing_permission_at_once() {
    let mut f = facts();
    f.feeds[0].1 = FeedHealth {
        failing_since: Some(NOW - Duration::seconds(5)),
        last_error_service: Some("graph".into()),
        last_error_class: Some("forbidden".into()),
        ..f.feeds[0].1.clone()
    };
    let (status, reasons) = assess(&f, NOW, poll30());
    assert_eq!(status, "unhealthy");
    assert!(reasons[0].contains("Graph 403: grant the app SecurityIncident.ReadWrite.All"), "{reasons:?}");
}

#[test]
fn a_feed_failing_for_two_intervals_is_unhealthy_one_failure_degraded() {
    let mut f = facts();
    f.feeds[1].1.failing_since = Some(NOW - Duration::seconds(10));
    assert_eq!(assess(&f, NOW, poll30()).0, "degraded");
    // Two intervals plus the grace: 2 × 30 s + 60 s.
    f.feeds[1].1.failing_since = Some(NOW - Duration::seconds(120));
    assert_eq!(assess(&f, NOW, poll30()).0, "degraded");
    f.feeds[1].1.failing_since = Some(NOW - Duration::seconds(121));
    assert_eq!(assess(&f, NOW, poll30()).0, "unhealthy");
}

#[test]
fn old_failures_and_poison_degrade_and_denied_incidents_are_unhealthy() {
    let mut f = facts();
    f.failures = vec![failure(FailureClass::Unavailable, "sentinel is unavailable", Duration::minutes(16))];
    assert_eq!(assess(&f, NOW, poll30()).0, "degraded");
    f.failures = vec![failure(FailureClass::Unavailable, "sentinel is unavailable", Duration::minutes(1))];
    f.poison = Some(2);
    assert_eq!(assess(&f, NOW, poll30()).0, "degraded");
    let mut denied = failure(FailureClass::Forbidden, "sentinel denied the call", Duration::minutes(1));
    denied.service = Some("sentinel".into());
    f.failures.push(denied);
    let (status, reasons) = assess(&f, NOW, poll30());
    assert_eq!(status, "unhealthy");
    assert!(reasons.iter().any(|r| r.contains("Microsoft Sentinel Responder")), "{reasons:?}");
}

#[test]
fn a_silent_poller_is_unhealthy() {
    let mut f = facts();
    f.feeds[0].1.last_success = Some(NOW - Duration::minutes(5));
    assert_eq!(assess(&f, NOW, poll30()).0, "unhealthy");
}

#[test]
fn no_storage_is_unhealthy() {
    let mut f = facts();
    f.storage_reachable = false;
    assert_eq!(assess(&f, NOW, poll30()), ("unhealthy", vec!["storage is unreachable".to_string()]));
}

#[test]
fn an_old_message_at_the_front_of_a_small_queue_degrades() {
    let mut f = facts();
    f.queue_backlog = Some(8);
    f.oldest_message = Some(NOW - Duration::minutes(4));
    assert_eq!(assess(&f, NOW, poll30()), ("healthy", vec![]));
    f.oldest_message = Some(NOW - Duration::minutes(10));
    let (status, reasons) = assess(&f, NOW, poll30());
    assert_eq!(status, "degraded");
    assert!(reasons[0].contains("oldest queue message has waited 600 s"), "{reasons:?}");
}

/// The state `record_feed` leaves after each run: (when it was recorded, success).
fn feed_after(runs: &[(OffsetDateTime, bool)], now: OffsetDateTime) -> FeedHealth {
    let mut h = FeedHealth::default();
    for (at, ok) in runs.iter().filter(|(at, _)| *at <= now) {
        if *ok {
            h.failing_since = None;
            h.last_success = Some(*at);
        } else {
            h.failing_since.get_or_insert(*at);
            h.last_error_at = Some(*at);
            h.last_error_class = Some("unavailable".into());
        }
    }
    h
}

const SCHEDULES: [&str; 6] =
    ["*/2 * * * * *", "*/30 * * * * *", "0 */2 * * * *", "0 */5 * * * *", "0 0 * * * *", "0 0 9-17 * * 1-5"];

proptest::proptest! {
    #![proptest_config(proptest::test_runner::Config::with_cases(48))]
    /// A feed whose runs start at each occurrence and end before the next (within a run's
    /// grace), with no two failures in a row, is never `unhealthy`, at any instant.
    #[test]
    fn a_feed_that_runs_on_time_is_never_unhealthy(
        which in 0..SCHEDULES.len(),
        start in 0i64..(90 * 86_400),
        runs in proptest::collection::vec((0.0f64..1.0, proptest::bool::weighted(0.3)), 3..30),
        probes in proptest::collection::vec(0.0f64..1.0, 3),
    ) {
        let schedule = crate::domain::schedule::Schedule::parse(SCHEDULES[which]).unwrap();
        let grace = Duration::minutes(1);
        let mut at = schedule.next_after(datetime!(2026-01-01 0:00 UTC) + Duration::seconds(start)).unwrap();
        let mut recorded = Vec::new();
        let mut failed_last = true; // the first run succeeds
        for (share, fails) in &runs {
            let next = schedule.next_after(at).unwrap();
            let took = (next - at).min(grace) * *share;
            let ok = failed_last || !fails;
            recorded.push((at + took, ok));
            failed_last = !ok;
            at = next;
        }
        let first = recorded[0].0;
        let last = recorded.last().unwrap().0;
        let mut instants: Vec<OffsetDateTime> = recorded
            .iter()
            .flat_map(|(t, _)| [*t - Duration::milliseconds(1), *t, *t + Duration::milliseconds(1)])
            .collect();
        instants.extend(probes.iter().map(|p| first + (last - first) * *p));
        for now in instants.into_iter().filter(|t| *t >= first && *t <= last) {
            let interval = schedule.interval_around(now).unwrap();
            let mut f = facts();
            f.feeds.clear();
            f.jobs.push((HUNTING_FEED, feed_after(&recorded, now), Cadence { interval, grace }));
            let (status, reasons) = assess(&f, now, Cadence { interval, grace });
            proptest::prop_assert_ne!(status, "unhealthy", "{} at {}: {:?}", SCHEDULES[which], now, reasons);
        }
    }
}

#[test]
fn a_feed_that_stops_on_any_schedule_turns_unhealthy_after_two_intervals_and_the_grace() {
    let grace = Duration::minutes(1);
    for expr in &SCHEDULES[..5] {
        let schedule = crate::domain::schedule::Schedule::parse(expr).unwrap();
        let interval = schedule.interval_around(NOW).unwrap();
        let cadence = Cadence { interval, grace };
        let mut f = facts();
        f.feeds.clear();
        let ran = FeedHealth { last_success: Some(NOW - cadence.limit()), ..Default::default() };
        f.jobs.push((HUNTING_FEED, ran, cadence));
        assert_eq!(assess(&f, NOW, cadence).0, "healthy", "{expr}");
        f.jobs[0].1.last_success = Some(NOW - cadence.limit() - Duration::seconds(1));
        assert_eq!(assess(&f, NOW, cadence).0, "unhealthy", "{expr}");
    }
}
