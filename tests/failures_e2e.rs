//! Nothing is dropped silently: a Sentinel that refuses (403) and then fails (503) while
//! incidents arrive loses none of them. Failures are recorded, visible in health and
//! `xdrsync failures`, retried on their schedule (poisoned messages read back), and cleared once
//! the service recovers, with no further change in Defender.

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

    // Then an outage.
    sim.sim.faults.set(arm_fault(503));
    tokio::time::sleep(Duration::from_secs(8)).await;
    let failing = xdrsync::usecase::failures::list(&services).await.unwrap();
    assert!(!failing.is_empty(), "failed incidents are recorded");

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
