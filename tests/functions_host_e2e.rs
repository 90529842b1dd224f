//! Functions mode end to end, through the host emulator (`xdrsync_sim::functions_host`) and the
//! real router: the timer polls, the queue trigger delivers each message as the host serialises
//! it, with host.json's redelivery and poison rules. Nothing is lost or mirrored twice when long
//! throttles send messages back to the queue, and a passing ARM refusal heals within minutes in
//! both modes (ARCHITECTURE.md: “Failure rules”).

mod support;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;
use xdrsync::domain::names::sentinel_incident_name;
use xdrsync::usecase::Ports;
use xdrsync_sim::fakes::{MemoryQueue, MemoryStore};
use xdrsync_sim::functions_host::{FunctionsHost, HostConfig};
use xdrsync_sim::sim::seed::SeedSpec;
use xdrsync_sim::sim::{FaultKind, FaultRule, RunningSim, SimConfig};

fn mirrored(sim: &RunningSim, tenant: &str, ids: &[String]) -> usize {
    let world = sim.sim.world();
    ids.iter().filter(|id| world.sentinel.contains_key(&sentinel_incident_name(tenant, id))).count()
}

fn ports(sim: &RunningSim, extra: &[(&str, &str)]) -> (Arc<Ports>, Arc<MemoryQueue>) {
    let mut vars: HashMap<String, String> = settings(sim, None);
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    let mut s = xdrsync::app::build(config(&vars));
    let queue = Arc::new(MemoryQueue::new());
    s.store = Arc::new(MemoryStore::new());
    s.queue = queue.clone();
    (Arc::new(s), queue)
}

async fn host_for(services: &Arc<Ports>, queue: Arc<MemoryQueue>) -> Arc<FunctionsHost> {
    let base = serve_router(xdrsync::functions::router(services.clone())).await;
    FunctionsHost::new(base, queue, HostConfig::from_repo_host_json(&services.config.queue_name, "IncidentSync"))
}

fn arm_refuses() -> Vec<FaultRule> {
    vec![FaultRule {
        api: "arm".into(),
        rate: 1.0,
        kind: FaultKind::Status { status: 403 },
        retry_after_secs: None,
        remaining: None,
    }]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timer_queue_and_sync_mirror_every_incident_exactly_once_when_long_throttles_defer_messages() {
    // Expanded list pages fail (as reported on very large tenants): the poll falls back to plain
    // pages, so each message's sync reads its incident from Graph and meets the throttles.
    let mut cfg = SimConfig::demo();
    cfg.options.graph_list_expand_fails_above = Some(0);
    let sim = start_sim(cfg).await;
    let ids = seed(&sim, SeedSpec { count: 40, ..Default::default() });
    let (services, queue) = ports(&sim, &[]);
    let tenant = services.config.tenant_id.clone();
    let host = host_for(&services, queue.clone()).await;
    assert!(host.invoke_timer("IncidentPoller").await.succeeded(), "the first tick lists and enqueues");
    assert_eq!(queue.texts(&services.config.queue_name).len(), ids.len());

    // Graph asks for a 12 s pause (longer than LONGEST_INLINE_WAIT) a few times: the process's
    // Graph budget pauses, and every message meeting it goes back to the queue for the wait.
    sim.sim.faults.set(vec![FaultRule {
        api: "graph".into(),
        rate: 1.0,
        kind: FaultKind::Status { status: 429 },
        retry_after_secs: Some(12),
        remaining: Some(3),
    }]);
    let running = host.start(Some(("IncidentPoller", Duration::from_secs(5))));
    let queue_name = services.config.queue_name.clone();
    eventually_async(120, "every incident mirrored and the queue empty", || {
        let (sim, services, queue_name) = (&sim, &services, &queue_name);
        let (tenant, ids) = (&tenant, &ids);
        async move {
            mirrored(sim, tenant, ids) == ids.len()
                && services.queue.approximate_len(queue_name).await.unwrap_or(usize::MAX) == 0
        }
    })
    .await;
    running.stop().await;

    let history = host.history();
    let deferred = history.iter().filter(|i| i.logs().iter().any(|l| l.contains("throttled, back in"))).count();
    assert!(deferred > 0, "the throttles deferred messages (else this test proves nothing)");
    for text in history.iter().filter_map(|i| i.message.as_deref()) {
        let item = xdrsync::domain::work::WorkItem::parse(text).expect("a work item");
        assert_eq!(text, item.to_json(), "every message in the queue is the canonical work item");
    }
    assert!(history.iter().all(|i| i.logs().iter().all(|l| !l.contains("moved to"))), "no message poisoned");
    assert_eq!(host.stats.poisoned.load(Ordering::Relaxed), 0);
    assert!(queue.texts(&format!("{queue_name}-poison")).is_empty());
    assert!(xdrsync::usecase::failures::list(&services).await.unwrap().is_empty(), "nothing left failing");
    let world = sim.sim.world();
    assert_eq!(world.sentinel.len(), ids.len(), "one mirror per incident, no other");
    let rows: Vec<String> =
        world.logs.values().flatten().filter_map(|r| r["RowDigest"].as_str().map(str::to_string)).collect();
    let mut unique = rows.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), rows.len(), "no alert row sent twice");
}

/// Refuses ARM for 60 s while incidents arrive, then waits for every mirror; returns how long
/// after the refusals ended the last one appeared.
async fn heal_after_refusal(sim: &RunningSim, services: &Ports, count: usize) -> Duration {
    sim.sim.faults.set(arm_refuses());
    let ids = seed(sim, SeedSpec { count, ..Default::default() });
    let window = Instant::now() + Duration::from_secs(60);
    let tenant = services.config.tenant_id.clone();
    // During the window: failures are recorded, none mirrored.
    eventually_async(50, "the refused incidents recorded in Failures", || async {
        xdrsync::usecase::failures::list(services).await.map(|r| r.len()).unwrap_or(0) == count
    })
    .await;
    tokio::time::sleep_until(window.into()).await;
    assert_eq!(mirrored(sim, &tenant, &ids), 0, "ARM refused everything in the window");
    sim.sim.faults.set(vec![]);
    let ended = Instant::now();
    eventually(150, "every incident mirrored after the refusals", || mirrored(sim, &tenant, &ids) == count).await;
    ended.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_mode_a_60_second_arm_refusal_heals_within_two_minutes_without_spending_deliveries() {
    let sim = start_sim(SimConfig::demo()).await;
    let (services, queue) = ports(&sim, &[]);
    let host = host_for(&services, queue.clone()).await;
    let running = host.start(Some(("IncidentPoller", Duration::from_secs(5))));
    let late = heal_after_refusal(&sim, &services, 11).await;
    running.stop().await;
    eprintln!("functions mode: every incident mirrored {:.1} s after a 60 s ARM refusal ended", late.as_secs_f64());
    assert!(late <= Duration::from_secs(120), "mirrored {} s after the refusals ended", late.as_secs());
    assert_eq!(host.stats.queue_failed.load(Ordering::Relaxed), 0, "no delivery of the host spent");
    assert_eq!(host.stats.poisoned.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_mode_a_60_second_arm_refusal_heals_within_two_minutes() {
    let sim = start_sim(SimConfig::demo()).await;
    let (services, queue) = ports(&sim, &[("XDRSYNC_POLL_SCHEDULE", "*/5 * * * * *")]);
    let runner = xdrsync::standalone::start(services.clone(), 0).await.unwrap();
    let late = heal_after_refusal(&sim, &services, 11).await;
    runner.shutdown().await;
    eprintln!("standalone mode: every incident mirrored {:.1} s after a 60 s ARM refusal ended", late.as_secs_f64());
    assert!(late <= Duration::from_secs(120), "mirrored {} s after the refusals ended", late.as_secs());
    assert!(queue.texts(&format!("{}-poison", services.config.queue_name)).is_empty());
}

#[tokio::test]
async fn messages_written_by_reconcile_and_retry_are_canonical_and_sync_through_the_host() {
    let sim = start_sim(SimConfig::demo()).await;
    let ids = seed(&sim, SeedSpec { count: 4, ..Default::default() });
    let (services, queue) = ports(&sim, &[]);
    let tenant = services.config.tenant_id.clone();
    let opts = xdrsync::ops::reconcile::Options {
        since: time::Duration::days(1),
        incidents: ids[..2].to_vec(),
        dry_run: false,
    };
    let report = xdrsync::ops::reconcile::run(&services, &opts).await.unwrap();
    assert_eq!(report.enqueued.len(), 2, "{report:?}");
    for id in &ids[2..] {
        xdrsync::usecase::failures::note(
            &services,
            id,
            xdrsync::domain::failures::FailureClass::Unavailable,
            None,
            "503",
        )
        .await;
    }
    let retried = xdrsync::usecase::failures::retry(&services, None).await.unwrap();
    assert_eq!(retried.enqueued.len(), 2, "{retried:?}");
    for text in queue.texts(&services.config.queue_name) {
        let item = xdrsync::domain::work::WorkItem::parse(&text).unwrap();
        assert_eq!(text, item.to_json(), "canonical work items only");
    }
    let host = host_for(&services, queue.clone()).await;
    while host.process_batch().await.unwrap() > 0 {}
    assert_eq!(mirrored(&sim, &tenant, &ids), ids.len());
    assert!(host.history().iter().all(|i| i.succeeded()));
    assert!(queue.texts(&format!("{}-poison", services.config.queue_name)).is_empty());
}
