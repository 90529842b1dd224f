//! Nothing is dropped silently: a Sentinel that refuses (403) and then fails (503) while
//! incidents arrive loses none of them. Failures are recorded, visible in health and
//! `xdrsync failures`, retried on their schedule, and cleared once the service recovers, with no
//! further change in Defender; nothing ends in the poison queue.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use support::*;
use xdrsync::app;
use xdrsync::domain::names::sentinel_incident_name;
use xdrsync::standalone;
use xdrsync::usecase::Ports;
use xdrsync_sim::sim::seed::SeedSpec;
use xdrsync_sim::sim::{FaultKind, FaultRule, SimConfig};

fn arm_fault(status: u16) -> Vec<FaultRule> {
    vec![FaultRule {
        api: "arm".into(),
        rate: 1.0,
        kind: FaultKind::Status { status },
        retry_after_secs: None,
        remaining: None,
    }]
}

async fn health(url: &str, key: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(k) = key {
        req = req.header("x-xdrsync-key", k);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn mirrored(s: &Ports, ids: &[String]) -> usize {
    let mut n = 0;
    for id in ids {
        if let Ok(Some(_)) = s.sentinel.get_incident(&sentinel_incident_name(&s.config.tenant_id, id)).await {
            n += 1;
        }
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_refusing_then_failing_loses_no_incident() {
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let mut vars: HashMap<String, String> = settings(&sim, Some(&az.connection_string()));
    vars.insert("XDRSYNC_POLL_SCHEDULE".into(), "* * * * * *".into());
    vars.insert("XDRSYNC_QUEUE_VISIBILITY_SECONDS".into(), "1".into());
    vars.insert("XDRSYNC_RETRY_SCHEDULE_SECONDS".into(), "2,4,6".into());
    vars.insert("XDRSYNC_INITIAL_LOOKBACK_HOURS".into(), "1".into());
    let key = vars["XDRSYNC_WEBHOOK_KEY"].clone();
    let services = Arc::new(app::build(config(&vars)));
    let runner = standalone::start(services.clone(), 0).await.unwrap();
    let health_url = format!("http://{}/api/health", runner.http_addr);

    // The role assignment has not propagated yet: every ARM call is 403.
    sim.sim.faults.set(arm_fault(403));
    let ids = seed(&sim, SeedSpec { count: 10, ..Default::default() });
    let mut named = false;
    for _ in 0..100 {
        let (status, body) = health(&health_url, None).await;
        let reasons = body["reasons"].to_string();
        if status == 503 && reasons.contains("Microsoft Sentinel Responder") {
            assert!(body.get("details").is_none(), "anonymous callers get status and reasons only: {body}");
            named = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(named, "health names the missing role while ARM answers 403");
    let (_, detailed) = health(&health_url, Some(&key)).await;
    assert!(detailed["details"]["failures"].as_u64().is_some(), "the key shows details: {detailed}");

    // Then an outage: the failures recorded now say the service was unavailable, not forbidden.
    sim.sim.faults.set(arm_fault(503));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let failing = xdrsync::usecase::failures::list(&services).await.unwrap();
        // A 503 with Retry-After is recorded as throttling, one without as unavailable: either says "later".
        use xdrsync::domain::failures::FailureClass::{Throttled, Unavailable};
        if failing.iter().any(|f| matches!(f.class, Unavailable | Throttled)) {
            assert!(
                failing.iter().all(|f| ids.contains(&f.incident_id)),
                "records name the seeded incidents: {failing:?}"
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the outage is recorded as such: {failing:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(mirrored(&services, &ids).await, 0, "nothing reached Sentinel during the refusal and the outage");

    // Recovery: with no further change in Defender, every incident arrives.
    sim.sim.faults.set(vec![]);
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while mirrored(&services, &ids).await < ids.len() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for every incident to be mirrored");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !xdrsync::usecase::failures::list(&services).await.unwrap().is_empty() {
        assert!(std::time::Instant::now() < deadline, "failure records are cleared by the successes");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(services.queue.approximate_len(&format!("{}-poison", services.config.queue_name)).await.unwrap(), 0);
    runner.shutdown().await;
}

/// A clock the test moves.
struct ManualClock(std::sync::Mutex<time::OffsetDateTime>);

impl ManualClock {
    fn advance_to(&self, t: time::OffsetDateTime) {
        *self.0.lock().unwrap() = t;
    }
}

impl xdrsync::ports::Clock for ManualClock {
    fn now(&self) -> time::OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

/// Runs every due retry: the poller's re-enqueue, then each message as a worker would.
async fn retry_due_and_run(s: &Ports) -> Vec<xdrsync::usecase::jobs::QueueVerdict> {
    xdrsync::usecase::failures::retry_due(s).await.unwrap();
    let mut verdicts = Vec::new();
    for m in s.queue.receive(&s.config.queue_name, 32, Duration::from_secs(60)).await.unwrap() {
        verdicts.push(xdrsync::usecase::jobs::sync_message(s, &m.text, 1, &m.id).await);
        s.queue.delete(&s.config.queue_name, &m).await.unwrap();
    }
    verdicts
}

#[tokio::test]
async fn rejected_work_is_retried_every_three_hours_visible_meanwhile_and_cleared_by_the_next_success() {
    use xdrsync::domain::failures::{FailureClass, REJECTED_ATTEMPTS, REJECTED_INTERVAL};
    use xdrsync::domain::work::{ChangeHint, WorkItem};
    use xdrsync::usecase::jobs::QueueVerdict;

    let sim = start_sim(SimConfig::demo()).await;
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    let (services, _) = services_with_fakes(&sim);
    let clock = Arc::new(ManualClock(std::sync::Mutex::new(time::OffsetDateTime::now_utc())));
    let mut s = (*services).clone();
    s.clock = clock.clone();
    // Sentinel refuses the request as made (a 400), as for a transient state of the incident.
    sim.sim.faults.set(arm_fault(400));
    let item = WorkItem::reconcile(&s.config.tenant_id, &ids[0], ChangeHint::Defender);
    let verdict = xdrsync::usecase::jobs::sync_message(&s, &item.to_json(), 1, "m-1").await;
    assert!(matches!(verdict, QueueVerdict::Drop(_)), "recorded and acknowledged: {verdict:?}");

    for _ in 0..REJECTED_ATTEMPTS + 2 {
        let r = xdrsync::usecase::failures::list(&s).await.unwrap().remove(0);
        assert_eq!(r.class, FailureClass::Rejected);
        let next = r.next_retry.expect("rejected work never waits for a person alone");
        if r.attempts >= REJECTED_ATTEMPTS {
            assert_eq!(next - r.last_failure, REJECTED_INTERVAL, "after the first attempts, every 3 hours");
        }
        // Visible in health the whole time.
        let h = serde_json::to_value(xdrsync::usecase::health::check(&s, true).await).unwrap();
        assert_eq!(h["details"]["failures"], 1, "{h}");
        clock.advance_to(next + time::Duration::seconds(1));
        let verdicts = retry_due_and_run(&s).await;
        assert_eq!(verdicts.len(), 1, "retried without a person: {verdicts:?}");
    }
    let attempts = xdrsync::usecase::failures::list(&s).await.unwrap()[0].attempts;
    assert_eq!(attempts, REJECTED_ATTEMPTS + 3);

    // The refusal passes: the next scheduled retry mirrors it and clears the record.
    sim.sim.faults.set(vec![]);
    let next = xdrsync::usecase::failures::list(&s).await.unwrap()[0].next_retry.unwrap();
    clock.advance_to(next + time::Duration::seconds(1));
    let verdicts = retry_due_and_run(&s).await;
    assert!(matches!(verdicts.as_slice(), [QueueVerdict::Done(_)]), "{verdicts:?}");
    assert!(xdrsync::usecase::failures::list(&s).await.unwrap().is_empty(), "cleared by the success");
    assert_eq!(mirrored(&s, &ids).await, 1);
}
