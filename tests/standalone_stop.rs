//! Crashes and stops of `xdrsync run` against the simulator and Azurite: a worker killed
//! mid-message delays it by the processing lease only, a long reconcile keeps its message to
//! itself, and SIGTERM during a slow tick exits within 10 s with the lease released and the
//! message in hand visible again.

mod support;

use std::collections::HashMap;
use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;
use xdrsync::domain::names::sentinel_incident_name;
use xdrsync::domain::work::{ChangeHint, WorkItem};
use xdrsync::ports::Table;
use xdrsync::records::Lease;
use xdrsync::standalone::{self, Runner, PROCESSING_LEASE};
use xdrsync::state::{load, RowKey};
use xdrsync::usecase::Ports;
use xdrsync_sim::sim::seed::SeedSpec;
use xdrsync_sim::sim::{FaultKind, FaultRule, RunningSim, SimConfig};

/// Settings with the poller off, one worker, and an HTTP timeout above the slow answers here.
fn quiet_settings(sim: &RunningSim, az: &AzuriteProcess) -> HashMap<String, String> {
    let mut v = settings(sim, Some(&az.connection_string()));
    v.insert("XDRSYNC_POLL_SCHEDULE".into(), "0 0 0 1 1 *".into());
    v.insert("XDRSYNC_WORKERS".into(), "1".into());
    v.insert("XDRSYNC_HTTP_TIMEOUT_SECONDS".into(), "120".into());
    v.insert("XDRSYNC_HTTP_BIND".into(), "127.0.0.1".into());
    v
}

async fn start_runner(vars: &HashMap<String, String>) -> (Runner, Arc<Ports>) {
    let services = Arc::new(xdrsync::app::build(config(vars)));
    let runner = standalone::start(services.clone(), 0).await.expect("runner starts");
    (runner, services)
}

/// The next Graph call (only) answers after `secs`.
fn slow_graph_once(sim: &RunningSim, secs: u64) {
    sim.sim.faults.set(vec![FaultRule {
        api: "graph".into(),
        rate: 1.0,
        kind: FaultKind::Slow { millis: secs * 1000 },
        retry_after_secs: None,
        remaining: Some(1),
    }]);
}

async fn enqueue(services: &Ports, incident: &str) {
    let item = WorkItem::reconcile(&services.config.tenant_id, incident, ChangeHint::Defender);
    services.queue.send(&services.config.queue_name, &item.to_json()).await.expect("enqueued");
}

fn mirrored(sim: &RunningSim, services: &Ports, incident: &str) -> bool {
    sim.sim.world().sentinel.contains_key(&sentinel_incident_name(&services.config.tenant_id, incident))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_message_reappears_within_the_processing_lease_for_another_worker() {
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    let vars = quiet_settings(&sim, &az);
    slow_graph_once(&sim, 90);
    let (first, services) = start_runner(&vars).await;
    enqueue(&services, &ids[0]).await;
    eventually_async(30, "the first worker inside its (slow) reconcile", || async {
        sim_stat(&sim, "graph.faults").await == 1
    })
    .await;
    first.kill();
    let killed = Instant::now();
    let (second, _) = start_runner(&vars).await;
    eventually(PROCESSING_LEASE.as_secs() + 15, "the second worker to mirror the incident", || {
        mirrored(&sim, &services, &ids[0])
    })
    .await;
    let took = killed.elapsed();
    println!("mirrored {took:?} after the kill (processing lease {PROCESSING_LEASE:?})");
    assert!(took <= PROCESSING_LEASE + Duration::from_secs(5), "{took:?}");
    eventually(10, "the second worker to settle the message", || {
        second.stats.messages_done.load(Ordering::Relaxed) == 1
    })
    .await;
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_longer_than_the_processing_lease_keeps_its_message_invisible() {
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    let vars = quiet_settings(&sim, &az);
    let slow = PROCESSING_LEASE + Duration::from_secs(10);
    slow_graph_once(&sim, slow.as_secs());
    let (a, services) = start_runner(&vars).await;
    let (b, _) = start_runner(&vars).await;
    let began = Instant::now();
    enqueue(&services, &ids[0]).await;
    eventually(slow.as_secs() + 30, "the incident mirrored", || mirrored(&sim, &services, &ids[0])).await;
    assert!(began.elapsed() >= slow, "mirrored before the slow reconcile ended: the message reappeared");
    eventually_async(30, "the queue empty", || async { idle(&sim, &services).await }).await;
    let done = |r: &Runner| r.stats.messages_done.load(Ordering::Relaxed);
    let failed = |r: &Runner| r.stats.messages_failed.load(Ordering::Relaxed);
    assert_eq!((done(&a) + done(&b), failed(&a) + failed(&b)), (1, 0), "processed once, by one worker");
    a.shutdown().await;
    b.shutdown().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_slow_tick_exits_within_10_s_with_the_lease_released_and_the_message_back() {
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    let mut vars = quiet_settings(&sim, &az);
    vars.insert("XDRSYNC_POLL_SCHEDULE".into(), "*/1 * * * * *".into());
    vars.insert("XDRSYNC_HTTP_PORT".into(), free_port().to_string());
    // Every Graph call takes a minute: the poller's tick and the worker's reconcile both hang.
    sim.sim.faults.set(vec![FaultRule {
        api: "graph".into(),
        rate: 1.0,
        kind: FaultKind::Slow { millis: 60_000 },
        retry_after_secs: None,
        remaining: None,
    }]);
    let services = Arc::new(xdrsync::app::build(config(&vars)));
    services.queue.ensure_queue(&services.config.queue_name).await.unwrap();
    enqueue(&services, &ids[0]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_run(&vars, dir.path());
    eventually_async(30, "a poll and a reconcile both waiting on Graph", || async {
        sim_stat(&sim, "graph.faults").await >= 2
    })
    .await;
    let lease_key = RowKey::new("leases", xdrsync::usecase::jobs::POLLER_NAME).unwrap();
    let lease = load::<Lease>(services.store.as_ref(), Table::Leases, &lease_key).await.unwrap().expect("held");
    assert!(lease.value.expires > services.clock.now(), "the lease is held during the tick");

    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let sent = Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                return Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    })
    .await
    .unwrap();
    let took = sent.elapsed();
    println!("exited {took:?} after SIGTERM");
    let status = status.expect("exited at all");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert!(status.success(), "{status:?}");

    let lease = load::<Lease>(services.store.as_ref(), Table::Leases, &lease_key).await.unwrap().expect("row");
    assert!(lease.value.expires <= services.clock.now(), "the lease was not released: {:?}", lease.value);
    // Visible again now, not after the processing lease.
    let back = services.queue.receive(&services.config.queue_name, 1, Duration::from_secs(1)).await.unwrap();
    assert_eq!(back.len(), 1, "the message in hand was not given back");
    assert!(back[0].text.contains(&ids[0]), "{}", back[0].text);
}
