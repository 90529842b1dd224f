//! End to end in standalone mode (real binary code, simulator, Azurite): incidents mirrored
//! exactly once with correct fields and alerts; Defender updates reach Sentinel; a crash between
//! enqueue and cursor advance loses nothing; 20% faults converge; a quiet system writes nothing;
//! poison after 5 failures; two instances produce one mirror each and only one polls.

mod support;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::json;
use support::*;
use xdrsync::app;
use xdrsync::domain::names::sentinel_incident_name;
use xdrsync::ports::Table;
use xdrsync::standalone::{self, Runner};
use xdrsync::usecase::Ports;
use xdrsync_sim::sim::seed::SeedSpec;
use xdrsync_sim::sim::{FaultKind, FaultRule, RunningSim, SimConfig};

fn fast_settings(sim: &RunningSim, az: &AzuriteProcess) -> HashMap<String, String> {
    let mut v = settings(sim, Some(&az.connection_string()));
    v.insert("XDRSYNC_POLL_SCHEDULE".into(), "* * * * * *".into());
    v.insert("XDRSYNC_QUEUE_VISIBILITY_SECONDS".into(), "1".into());
    v.insert("XDRSYNC_WORKERS".into(), "4".into());
    v
}

async fn start_runner(vars: &HashMap<String, String>) -> (Runner, Arc<Ports>) {
    let services = Arc::new(app::build(config(vars)));
    let runner = standalone::start(services.clone(), 0).await.expect("runner starts");
    (runner, services)
}

fn mirrored(sim: &RunningSim, tenant: &str, ids: &[String]) -> usize {
    let w = sim.sim.world();
    ids.iter().filter(|id| w.sentinel.contains_key(&sentinel_incident_name(tenant, id))).count()
}

fn rows(sim: &RunningSim) -> usize {
    sim.sim.world().logs.values().map(Vec::len).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_incidents_are_mirrored_exactly_once_with_fields_and_alerts_then_updates_flow() {
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let vars = fast_settings(&sim, &az);
    let (runner, services) = start_runner(&vars).await;
    let tenant = services.config.tenant_id.clone();
    let ids =
        seed(&sim, SeedSpec { count: 100, max_alerts: 4, big_incidents: 1, big_alerts: 160, ..Default::default() });
    let alerts_total = sim.sim.world().alerts.len();
    eventually(90, "100 mirrors and every alert", || {
        mirrored(&sim, &tenant, &ids) == 100 && rows(&sim) == alerts_total
    })
    .await;

    {
        let w = sim.sim.world();
        assert_eq!(w.sentinel.len(), 100, "exactly one Sentinel incident per Defender incident");
        for id in &ids {
            let d = w.incident(id).unwrap();
            let s = &w.sentinel[&sentinel_incident_name(&tenant, id)];
            assert_eq!(s.writes, 1, "one write per new incident");
            assert_eq!(s.writable.title, d.display_name);
            let desc = s.writable.description.as_deref().unwrap();
            assert!(desc.starts_with(&format!("Defender XDR incident {id}: {}", d.incident_web_url)), "{desc}");
            assert!(desc.chars().count() <= 5000);
            assert_eq!(s.writable.status, "New");
            assert_eq!(s.writable.severity.as_str().to_ascii_lowercase(), d.severity.as_str());
            let labels: Vec<&str> = s.writable.labels.iter().map(|l| l.label_name.as_str()).collect();
            assert!(labels.contains(&"Microsoft Defender XDR"));
            for t in &d.custom_tags {
                assert!(labels.contains(&t.as_str()), "tag {t} on {id}");
            }
            let alert_count = w.alerts_of(id).len();
            assert_eq!(labels.contains(&"150+"), alert_count > 150, "{id}");
        }
        let mut per_incident: HashMap<String, usize> = HashMap::new();
        for r in w.logs.values().flatten() {
            *per_incident.entry(r["DefenderIncidentId"].as_str().unwrap().to_string()).or_default() += 1;
            let name = sentinel_incident_name(&tenant, r["DefenderIncidentId"].as_str().unwrap()).to_string();
            assert_eq!(r["SentinelIncidentName"], name.as_str());
            assert!(r["SystemAlertId"].is_string() && r["AlertName"].is_string() && r["Entities"].is_string());
        }
        for id in &ids {
            assert_eq!(
                per_incident.get(id).copied().unwrap_or(0),
                w.alerts_of(id).len(),
                "alerts of {id} each sent once"
            );
        }
    }

    // An analyst works incident 0 in Defender: status, owner, tags and a new alert.
    let id = &ids[0];
    let r = sim_post(&sim, &format!("/_sim/defender/incidents/{id}/edit"),
        json!({"status": "inProgress", "assignedTo": "bob@contoso.com", "customTags": ["phishing-wave"], "addAlerts": 1})).await;
    assert!(r.status().is_success());
    let name = sentinel_incident_name(&tenant, id);
    let bob = sim.sim.world().user_by_upn_or_id("bob@contoso.com").unwrap().id.clone();
    let before_rows = rows(&sim);
    eventually(30, "the Defender edit in Sentinel", || {
        let w = sim.sim.world();
        let s = &w.sentinel[&name];
        s.writable.status == "Active"
            && s.writable.owner.as_ref().and_then(|o| o.object_id.as_deref()) == Some(bob.as_str())
            && s.writable.labels.iter().any(|l| l.label_name == "phishing-wave")
    })
    .await;
    eventually(30, "the new alert shipped", || rows(&sim) == before_rows + 1).await;
    // Only the changed alert was sent again.
    assert_eq!(sim.sim.world().alerts.len(), alerts_total + 1);

    // Closing in Defender with a classification closes Sentinel with the mapped one.
    sim_post(
        &sim,
        &format!("/_sim/defender/incidents/{id}/edit"),
        json!({"status": "resolved", "classification": "truePositive", "determination": "malware"}),
    )
    .await;
    eventually(30, "the close in Sentinel", || {
        let w = sim.sim.world();
        let s = &w.sentinel[&name].writable;
        s.status == "Closed"
            && s.classification.as_deref() == Some("TruePositive")
            && s.classification_reason.as_deref() == Some("SuspiciousActivity")
    })
    .await;
    runner.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_at_20_percent_still_converge_and_a_quiet_system_then_writes_nothing() {
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let vars = fast_settings(&sim, &az);
    let (runner, services) = start_runner(&vars).await;
    let tenant = services.config.tenant_id.clone();
    // Seeded draws: the same sequence of faults every run (requests still interleave as they
    // come), so a failure here can be run again.
    sim.sim.faults.reseed(20);
    sim.sim.faults.set(vec![
        FaultRule {
            api: "all".into(),
            rate: 0.1,
            kind: FaultKind::Status { status: 429 },
            retry_after_secs: Some(1),
            remaining: None,
        },
        FaultRule {
            api: "all".into(),
            rate: 0.1,
            kind: FaultKind::Status { status: 500 },
            retry_after_secs: None,
            remaining: None,
        },
    ]);
    let ids = seed(&sim, SeedSpec { count: 30, ..Default::default() });
    let alerts_total = sim.sim.world().alerts.len();
    eventually(120, "convergence under faults", || mirrored(&sim, &tenant, &ids) == 30 && rows(&sim) >= alerts_total)
        .await;
    assert!(sim_stat(&sim, "graph.faults").await + sim_stat(&sim, "arm.faults").await > 0, "faults were injected");
    sim.sim.faults.set(vec![]);
    // Let in-flight work (retries included) finish: nothing queued or being processed.
    eventually_async(60, "the queue drained", || async { idle(&sim, &services).await }).await;
    assert_eq!(sim.sim.world().sentinel.len(), 30, "no duplicates despite retries");
    let mut ids_seen: Vec<String> =
        sim.sim.world().logs.values().flatten().map(|r| r["SystemAlertId"].as_str().unwrap().to_string()).collect();
    ids_seen.sort();
    ids_seen.dedup();
    assert_eq!(ids_seen.len(), alerts_total, "every alert arrived");
    // A quiet window of at least 3 whole polls, proven by the runner and by the simulator.
    sim.sim.stats.reset();
    let polls = after_polls(&sim, &runner, &services, 3, 30).await;
    assert!(polls >= 3, "{polls} polls in the quiet window");
    let stats = sim.sim.stats.snapshot();
    for list in ["graph.incidents.list", "arm.incidents.list"] {
        assert!(stats.get(list).copied().unwrap_or(0) >= 3, "{list}: the poller ran in the quiet window: {stats:?}");
    }
    for write in
        ["arm.incidents.put", "arm.comments.put", "graph.incidents.patch", "graph.incidents.comments.post", "logs.post"]
    {
        assert_eq!(stats.get(write).copied().unwrap_or(0), 0, "{write} during a quiet window: {stats:?}");
    }
    runner.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_between_enqueue_and_cursor_advance_loses_nothing() {
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let mut vars = fast_settings(&sim, &az);
    // A first run reaching back one hour lists everything in one window (no empty backfill
    // windows before the incidents), so the crash comes after the enqueues.
    vars.insert("XDRSYNC_INITIAL_LOOKBACK_HOURS".into(), "1".into());
    let services = app::build(config(&vars));
    services.store.ensure_tables().await.unwrap();
    services.queue.ensure_queue(&services.config.queue_name).await.unwrap();
    let tenant = services.config.tenant_id.clone();
    let ids = seed(&sim, SeedSpec { count: 12, ..Default::default() });
    // The poll enqueues, then "crashes" before saving the cursor: storage refuses the write.
    let mut crashing = services.clone();
    crashing.store = Arc::new(FailWrites { inner: services.store.clone(), table: Table::Cursors, upserts: false });
    let crashed = xdrsync::usecase::poll::poll_defender(&crashing).await;
    assert!(crashed.is_err(), "the cursor write failed");
    assert_eq!(
        services.queue.approximate_len(&services.config.queue_name).await.unwrap(),
        12,
        "messages were enqueued first"
    );
    // The process restarts: the next poll re-reads the same window (cursor never moved).
    let (runner, _) = start_runner(&vars).await;
    eventually(60, "every incident mirrored", || mirrored(&sim, &tenant, &ids) == 12).await;
    // The 12 messages of the crashed poll and the 12 of the re-read are all handled.
    eventually_async(60, "24 messages handled", || async {
        runner.stats.messages_done.load(Ordering::Relaxed) >= 24 && idle(&sim, &services).await
    })
    .await;
    {
        let w = sim.sim.world();
        assert_eq!(w.sentinel.len(), 12);
        assert!(w.sentinel.values().all(|r| r.writes == 1), "duplicate messages did not cause duplicate writes");
    }
    runner.shutdown().await;
}

/// A store whose inserts and replaces (and, with `upserts`, upserts) of one table fail: cursor
/// writes, as if the process died before saving the cursor; or failure records.
struct FailWrites {
    inner: Arc<dyn xdrsync::ports::StateStore>,
    table: Table,
    upserts: bool,
}

#[async_trait::async_trait]
impl xdrsync::ports::StateStore for FailWrites {
    async fn ensure_tables(&self) -> Result<(), xdrsync::error::PortError> {
        self.inner.ensure_tables().await
    }
    async fn get(
        &self,
        t: xdrsync::ports::Table,
        pk: &str,
        rk: &str,
    ) -> Result<Option<(xdrsync::ports::Entity, xdrsync::ports::ETag)>, xdrsync::error::PortError> {
        self.inner.get(t, pk, rk).await
    }
    async fn insert(
        &self,
        t: xdrsync::ports::Table,
        e: &xdrsync::ports::Entity,
    ) -> Result<xdrsync::ports::ETag, xdrsync::error::PortError> {
        if t == self.table {
            return Err(xdrsync::error::PortError::unavailable("crash", "process died"));
        }
        self.inner.insert(t, e).await
    }
    async fn replace(
        &self,
        t: xdrsync::ports::Table,
        e: &xdrsync::ports::Entity,
        etag: &xdrsync::ports::ETag,
    ) -> Result<xdrsync::ports::ETag, xdrsync::error::PortError> {
        if t == self.table {
            return Err(xdrsync::error::PortError::unavailable("crash", "process died"));
        }
        self.inner.replace(t, e, etag).await
    }
    async fn upsert(
        &self,
        t: xdrsync::ports::Table,
        e: &xdrsync::ports::Entity,
    ) -> Result<(), xdrsync::error::PortError> {
        if self.upserts && t == self.table {
            return Err(xdrsync::error::PortError::unavailable("storage", "table unavailable"));
        }
        self.inner.upsert(t, e).await
    }
    async fn upsert_many(
        &self,
        t: xdrsync::ports::Table,
        e: &[xdrsync::ports::Entity],
    ) -> Result<(), xdrsync::error::PortError> {
        self.inner.upsert_many(t, e).await
    }
    async fn delete(&self, t: xdrsync::ports::Table, pk: &str, rk: &str) -> Result<(), xdrsync::error::PortError> {
        self.inner.delete(t, pk, rk).await
    }
    async fn query_partition(
        &self,
        t: xdrsync::ports::Table,
        pk: &str,
    ) -> Result<Vec<xdrsync::ports::Entity>, xdrsync::error::PortError> {
        self.inner.query_partition(t, pk).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_failure_cannot_be_recorded_goes_to_the_poison_queue_after_5_dequeues() {
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let mut vars = fast_settings(&sim, &az);
    vars.insert("XDRSYNC_POLL_SCHEDULE".into(), "0 0 0 1 1 *".into()); // effectively never
                                                                       // A failure that is recorded goes back to the queue on a backoff; one that cannot be
                                                                       // recorded is left to the queue's own redelivery and poison rule.
    let mut s = app::build(config(&vars));
    s.store = Arc::new(FailWrites { inner: s.store.clone(), table: Table::Failures, upserts: true });
    let services = Arc::new(s);
    let runner = standalone::start(services.clone(), 0).await.expect("runner starts");
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    services.tokens.token(&services.config.arm_scope).await.unwrap();
    sim.sim.faults.set(vec![FaultRule {
        api: "arm".into(),
        rate: 1.0,
        kind: FaultKind::Status { status: 500 },
        retry_after_secs: None,
        remaining: None,
    }]);
    let item = xdrsync::domain::work::WorkItem::reconcile(
        &services.config.tenant_id,
        &ids[0],
        xdrsync::domain::work::ChangeHint::Defender,
    );
    services.queue.send(&services.config.queue_name, &item.to_json()).await.unwrap();
    let poison = format!("{}-poison", services.config.queue_name);
    let mut moved = false;
    for _ in 0..120 {
        let poisoned = services.queue.approximate_len(&poison).await.unwrap() == 1;
        if poisoned && services.queue.approximate_len(&services.config.queue_name).await.unwrap() == 0 {
            moved = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(moved, "message moved to {poison} and left the main queue");
    assert_eq!(runner.stats.messages_poisoned.load(Ordering::Relaxed), 1);
    assert_eq!(runner.stats.messages_failed.load(Ordering::Relaxed), 4, "4 failed attempts before the 5th poisons");
    let got = services.queue.receive(&poison, 1, std::time::Duration::from_secs(5)).await.unwrap();
    assert_eq!(got[0].text, item.to_json(), "the poison message is the original text");
    runner.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_make_one_mirror_per_incident_and_only_one_polls() {
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let vars = fast_settings(&sim, &az);
    let (a, services) = start_runner(&vars).await;
    let (b, _) = start_runner(&vars).await;
    let tenant = services.config.tenant_id.clone();
    let ids = seed(&sim, SeedSpec { count: 40, ..Default::default() });
    eventually(60, "40 mirrors", || mirrored(&sim, &tenant, &ids) == 40).await;
    let done = || a.stats.messages_done.load(Ordering::Relaxed) + b.stats.messages_done.load(Ordering::Relaxed);
    eventually_async(60, "40 messages handled", || async { done() >= 40 && idle(&sim, &services).await }).await;
    {
        let w = sim.sim.world();
        assert_eq!(w.sentinel.len(), 40);
        assert!(w.sentinel.values().all(|r| r.writes == 1));
    }
    let (pa, pb) = (a.stats.polls.load(Ordering::Relaxed), b.stats.polls.load(Ordering::Relaxed));
    assert!(pa + pb > 0);
    assert!(pa == 0 || pb == 0, "only one instance polls (a {pa}, b {pb})");
    let (da, db) = (a.stats.messages_done.load(Ordering::Relaxed), b.stats.messages_done.load(Ordering::Relaxed));
    // One message per incident from the poller; the sweep may add one more for a mirror it sees
    // while its first reconcile is still in flight (index written, state not yet), which reconciles
    // to no write. Never a message handled by both instances: every mirror was written once.
    assert!((40..=80).contains(&(da + db)), "messages handled across both instances: {da} + {db}");
    assert_eq!(a.stats.messages_failed.load(Ordering::Relaxed) + b.stats.messages_failed.load(Ordering::Relaxed), 0);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_defender_merge_closes_the_loser_with_a_label_and_a_note_and_the_survivor_gets_all_alerts() {
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let vars = fast_settings(&sim, &az);
    let (runner, services) = start_runner(&vars).await;
    let tenant = services.config.tenant_id.clone();
    let ids = seed(&sim, SeedSpec { count: 2, min_alerts: 2, max_alerts: 3, ..Default::default() });
    let alerts_total = sim.sim.world().alerts.len();
    eventually(30, "both mirrored with alerts", || mirrored(&sim, &tenant, &ids) == 2 && rows(&sim) == alerts_total)
        .await;
    let (loser, survivor) = (&ids[0], &ids[1]);
    let loser_alerts: Vec<String> = sim.sim.world().alerts_of(loser).iter().map(|a| a.id.clone()).collect();
    let r = sim_post(&sim, "/_sim/defender/merge", json!({"source": loser, "target": survivor})).await;
    assert!(r.status().is_success());
    let loser_name = sentinel_incident_name(&tenant, loser);
    eventually(30, "the loser closed, labelled and annotated", || {
        let w = sim.sim.world();
        let s = &w.sentinel[&loser_name];
        s.writable.status == "Closed"
            && s.writable.labels.iter().any(|l| l.label_name == "Redirected")
            && s.comments
                .values()
                .any(|c| c.properties.message.contains(&format!("merged this incident into incident {survivor}")))
    })
    .await;
    eventually(30, "the survivor's rows hold the moved alerts", || {
        let w = sim.sim.world();
        loser_alerts.iter().all(|a| {
            w.logs
                .values()
                .flatten()
                .any(|r| r["SystemAlertId"] == a.as_str() && r["DefenderIncidentId"] == survivor.as_str())
        })
    })
    .await;
    // A comment on the loser's mirror reaches the survivor in Defender.
    sim_post(
        &sim,
        &format!("/_sim/sentinel/incidents/{loser_name}/edit"),
        json!({"comment": "late note on the merged incident"}),
    )
    .await;
    eventually(30, "the note on the survivor", || {
        let w = sim.sim.world();
        w.incident(survivor).unwrap().comments.iter().any(|c| c.comment.ends_with("late note on the merged incident"))
    })
    .await;
    assert_eq!(sim.sim.world().sentinel.len(), 2, "no new incident appeared");
    runner.shutdown().await;
}
