//! Data-safety rules of the reconcile, driven directly against the simulator with in-memory
//! storage, observed only through the services' own APIs (what an analyst would see).

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;
use support::*;
use uuid::Uuid;
use xdrsync::app;
use xdrsync::domain::names::sentinel_incident_name;
use xdrsync::domain::sentinel::{SentinelComment, SentinelIncident, SentinelIncidentBody, SentinelSeverity};
use xdrsync::domain::work::{ChangeHint, WorkItem};
use xdrsync::error::PortError;
use xdrsync::ports::SentinelApi;
use xdrsync::usecase::sync::{reconcile, SyncOutcome};
use xdrsync::usecase::Ports;
use xdrsync_sim::sim::seed::SeedSpec;
use xdrsync_sim::sim::{RunningSim, SimConfig};

fn services(sim: &RunningSim) -> Ports {
    let mut s = app::build(config(&settings(sim, None)));
    s.store = Arc::new(xdrsync_sim::fakes::MemoryStore::new());
    s.queue = Arc::new(xdrsync_sim::fakes::MemoryQueue::new());
    s
}

async fn sync(s: &Ports, id: &str) -> SyncOutcome {
    reconcile(s, &WorkItem::reconcile(&s.config.tenant_id, id, ChangeHint::Reconcile)).await.unwrap()
}

async fn sentinel(s: &Ports, id: &str) -> SentinelIncident {
    s.sentinel.get_incident(&sentinel_incident_name(&s.config.tenant_id, id)).await.unwrap().unwrap()
}

#[tokio::test]
async fn a_full_incident_does_not_block_field_sync() {
    let sim = start_sim(SimConfig::demo()).await;
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    let s = services(&sim);
    sync(&s, &ids[0]).await;
    let name = sentinel_incident_name(&s.config.tenant_id, &ids[0]);
    let existing = s.sentinel.list_comments(&name).await.unwrap().len();
    // Analysts fill the incident up to Sentinel's 100 comments.
    for i in existing..100 {
        s.sentinel.put_comment(&name, &Uuid::new_v4(), &format!("analyst note {i}")).await.unwrap();
    }
    // Both portals change severity to two new values: a conflict, whose note Sentinel must refuse
    // (no room left).
    let base = sentinel(&s, &ids[0]).await.properties.writable.severity;
    let (in_sentinel, in_defender, expected) = match base {
        SentinelSeverity::High => ("Low", "medium", SentinelSeverity::Medium),
        _ => ("Informational", "high", SentinelSeverity::High),
    };
    sim_post(&sim, &format!("/_sim/sentinel/incidents/{name}/edit"), json!({"severity": in_sentinel})).await;
    sim_post(&sim, &format!("/_sim/defender/incidents/{}/edit", ids[0]), json!({"severity": in_defender})).await;
    let SyncOutcome::Synced(report) = sync(&s, &ids[0]).await else { panic!("expected a sync") };
    assert_eq!(report.conflicts, 1);
    assert_eq!(sentinel(&s, &ids[0]).await.properties.writable.severity, expected, "latest-wins: Defender");
    assert_eq!(s.sentinel.list_comments(&name).await.unwrap().len(), 100, "the note was refused, nothing else broke");
    // And the next trigger finds nothing left to do: the refusal is not a permanent error.
    let again = sync(&s, &ids[0]).await;
    let wrote = match &again {
        SyncOutcome::Synced(r) => r.sentinel_written || r.defender_patched,
        _ => false,
    };
    assert!(!wrote, "{again:?}");
}

/// A Sentinel port that lets an analyst edit land right after each of our comment writes.
struct EditAfterComment {
    inner: Arc<dyn SentinelApi>,
    sim: String,
    client: reqwest::Client,
}

#[async_trait]
impl SentinelApi for EditAfterComment {
    async fn workspace_role_definitions(&self) -> Result<Vec<String>, PortError> {
        self.inner.workspace_role_definitions().await
    }
    async fn get_incident(&self, name: &Uuid) -> Result<Option<SentinelIncident>, PortError> {
        self.inner.get_incident(name).await
    }
    async fn put_incident(&self, name: &Uuid, body: &SentinelIncidentBody) -> Result<SentinelIncident, PortError> {
        self.inner.put_incident(name, body).await
    }
    async fn list_incidents_modified_since(
        &self,
        since: time::OffsetDateTime,
    ) -> Result<Vec<SentinelIncident>, PortError> {
        self.inner.list_incidents_modified_since(since).await
    }
    async fn list_comments(&self, incident: &Uuid) -> Result<Vec<SentinelComment>, PortError> {
        self.inner.list_comments(incident).await
    }
    async fn put_comment(&self, incident: &Uuid, comment: &Uuid, message: &str) -> Result<(), PortError> {
        self.inner.put_comment(incident, comment, message).await?;
        let url = format!("{}/_sim/sentinel/incidents/{incident}/edit", self.sim);
        self.client.post(url).json(&json!({"severity": "Informational"})).send().await.unwrap();
        Ok(())
    }
}

#[tokio::test]
async fn an_analyst_edit_landing_right_after_our_comment_write_is_still_synced() {
    let sim = start_sim(SimConfig::demo()).await;
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    let mut s = services(&sim);
    s.sentinel =
        Arc::new(EditAfterComment { inner: s.sentinel.clone(), sim: sim.base_url(), client: reqwest::Client::new() });
    // A Defender comment makes the reconcile write a Sentinel comment; the analyst edits right after.
    s.defender.add_comment(&ids[0], "first look").await.unwrap();
    sync(&s, &ids[0]).await;
    assert_eq!(sentinel(&s, &ids[0]).await.properties.writable.severity, SentinelSeverity::Informational);
    // The edit is not taken for ours: the next reconcile sends it to Defender.
    let SyncOutcome::Synced(report) = sync(&s, &ids[0]).await else { panic!("the analyst's edit must be seen") };
    assert!(report.defender_patched, "{report:?}");
    let d = s.defender.get_incident(&ids[0]).await.unwrap().unwrap();
    assert_eq!(d.severity.to_string(), "informational");
}

async fn defender_comment(sim: &RunningSim, id: &str, text: &str) {
    let r = sim_post(sim, &format!("/_sim/defender/incidents/{id}/edit"), json!({"comment": text})).await;
    assert!(r.status().is_success());
}

#[tokio::test]
async fn defender_comments_listed_newest_first_are_copied_once_each() {
    let mut cfg = SimConfig::demo();
    cfg.options.graph_comment_order = xdrsync_sim::sim::CommentOrder::NewestFirst;
    let sim = start_sim(cfg).await;
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    let s = services(&sim);
    defender_comment(&sim, &ids[0], "first look").await;
    defender_comment(&sim, &ids[0], "host isolated").await;
    sync(&s, &ids[0]).await;
    defender_comment(&sim, &ids[0], "closing soon").await;
    sync(&s, &ids[0]).await;
    sync(&s, &ids[0]).await;
    let name = sentinel_incident_name(&s.config.tenant_id, &ids[0]);
    let copies: Vec<String> = s
        .sentinel
        .list_comments(&name)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.properties.message)
        .filter(|m| m.starts_with("[Defender]"))
        .collect();
    for text in ["first look", "host isolated", "closing soon"] {
        assert_eq!(copies.iter().filter(|m| m.ends_with(text)).count(), 1, "{text} in {copies:?}");
    }
    assert_eq!(copies.len(), 3, "{copies:?}");
}

#[tokio::test]
async fn a_sentinel_comment_that_leaves_the_incident_untouched_still_reaches_defender() {
    let mut cfg = SimConfig::demo();
    cfg.options.sentinel_comment_touches_incident = false;
    let sim = start_sim(cfg).await;
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    let s = services(&sim);
    sync(&s, &ids[0]).await;
    let name = sentinel_incident_name(&s.config.tenant_id, &ids[0]);
    let etag_before = sentinel(&s, &ids[0]).await.etag;
    s.sentinel.put_comment(&name, &Uuid::new_v4(), "called the user, benign").await.unwrap();
    assert_eq!(sentinel(&s, &ids[0]).await.etag, etag_before, "the simulator left the incident untouched");
    sync(&s, &ids[0]).await;
    let d = s.defender.get_incident(&ids[0]).await.unwrap().unwrap();
    let copied = d
        .comments
        .iter()
        .filter(|c| c.comment.as_deref().is_some_and(|t| t.ends_with("called the user, benign")))
        .count();
    assert_eq!(copied, 1, "{:?}", d.comments);
    assert_eq!(sim_stat(&sim, "arm.incidents.put.read_only_sent").await, 0, "no read-only property was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_edit_of_1000_incidents_in_one_overlap_reaches_defender_through_the_sweep_alone() {
    use futures::stream::{self, StreamExt};
    use xdrsync::usecase::poll::poll_sentinel;
    let sim = start_sim(SimConfig::demo()).await;
    let ids = seed(&sim, SeedSpec { count: 1000, min_alerts: 1, max_alerts: 1, ..Default::default() });
    let mut s = services(&sim);
    let queue = Arc::new(xdrsync_sim::fakes::MemoryQueue::new());
    s.queue = queue.clone();
    let s = Arc::new(s);
    let mirror = |id: String| {
        let s = s.clone();
        async move { sync(&s, &id).await }
    };
    stream::iter(ids.clone()).map(mirror).buffer_unordered(16).collect::<Vec<_>>().await;
    // The sweep learns the mirrors (our own writes: nothing to enqueue).
    assert_eq!(poll_sentinel(&s).await.unwrap().enqueued, 0);
    // An analyst closes all of them at once, inside one overlap window; no webhook.
    let tenant = s.config.tenant_id.clone();
    for id in &ids {
        let name = sentinel_incident_name(&tenant, id);
        sim_post(&sim, &format!("/_sim/sentinel/incidents/{name}/edit"), json!({"severity": "Informational"})).await;
    }
    let swept = poll_sentinel(&s).await.expect("the sweep's cursor row still fits");
    assert_eq!(swept.enqueued, 1000);
    assert_eq!(poll_sentinel(&s).await.unwrap().enqueued, 0, "a re-read of the window enqueues nothing twice");
    // Every message reaches Defender.
    let texts = queue.texts(&s.config.queue_name);
    let deliver = |text: String| {
        let s = s.clone();
        async move { xdrsync::usecase::jobs::sync_message(&s, &text, 1, "m").await }
    };
    stream::iter(texts).map(deliver).buffer_unordered(16).collect::<Vec<_>>().await;
    let mut informational = 0;
    for id in &ids {
        let d = s.defender.get_incident(id).await.unwrap().unwrap();
        informational += usize::from(d.severity.to_string() == "informational");
    }
    assert_eq!(informational, 1000);
}

#[tokio::test]
async fn an_incident_microsoft_sentinel_created_is_not_mirrored_back_into_its_workspace() {
    let sim = start_sim(SimConfig::demo()).await;
    let spec = SeedSpec { count: 1, service_source: Some("microsoftSentinel".into()), ..Default::default() };
    let ids = seed(&sim, spec);
    let s = services(&sim);
    assert_eq!(sync(&s, &ids[0]).await, SyncOutcome::NotMirrored);
    assert_eq!(sync(&s, &ids[0]).await, SyncOutcome::Unchanged, "noted once");
    let name = sentinel_incident_name(&s.config.tenant_id, &ids[0]);
    assert!(s.sentinel.get_incident(&name).await.unwrap().is_none(), "no second copy in the workspace");
    let health = xdrsync::usecase::health::check(&s, true).await;
    assert_eq!(health.details.unwrap().sentinel_incidents_not_mirrored, 1);
    // With the setting on (a target workspace other than the source), it is mirrored.
    let mut vars = settings(&sim, None);
    vars.insert("XDRSYNC_MIRROR_SENTINEL_INCIDENTS".into(), "true".into());
    let mut on = app::build(config(&vars));
    on.store = s.store.clone();
    on.queue = s.queue.clone();
    let later = sync(&on, &ids[0]).await;
    assert!(matches!(later, SyncOutcome::Synced(ref r) if r.created), "{later:?}");
}

/// A Sentinel port that refuses the next comment write (as a 400 would).
struct RefuseNextComment {
    inner: Arc<dyn SentinelApi>,
    armed: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl SentinelApi for RefuseNextComment {
    async fn workspace_role_definitions(&self) -> Result<Vec<String>, PortError> {
        self.inner.workspace_role_definitions().await
    }
    async fn get_incident(&self, name: &Uuid) -> Result<Option<SentinelIncident>, PortError> {
        self.inner.get_incident(name).await
    }
    async fn put_incident(&self, name: &Uuid, body: &SentinelIncidentBody) -> Result<SentinelIncident, PortError> {
        self.inner.put_incident(name, body).await
    }
    async fn list_incidents_modified_since(
        &self,
        since: time::OffsetDateTime,
    ) -> Result<Vec<SentinelIncident>, PortError> {
        self.inner.list_incidents_modified_since(since).await
    }
    async fn list_comments(&self, incident: &Uuid) -> Result<Vec<SentinelComment>, PortError> {
        self.inner.list_comments(incident).await
    }
    async fn put_comment(&self, incident: &Uuid, comment: &Uuid, message: &str) -> Result<(), PortError> {
        if self.armed.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return Err(PortError::rejected("sentinel", "status 400: the comment was refused"));
        }
        self.inner.put_comment(incident, comment, message).await
    }
}

#[tokio::test]
async fn a_refused_comment_copy_is_recorded_retried_and_then_copied() {
    let sim = start_sim(SimConfig::demo()).await;
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    let mut s = services(&sim);
    s.sentinel = Arc::new(RefuseNextComment { inner: s.sentinel.clone(), armed: false.into() });
    let item = WorkItem::reconcile(&s.config.tenant_id, &ids[0], ChangeHint::Reconcile).to_json();
    xdrsync::usecase::jobs::sync_message(&s, &item, 1, "m1").await;
    defender_comment(&sim, &ids[0], "escalated to tier 2").await;
    let refusing = RefuseNextComment { inner: services(&sim).sentinel.clone(), armed: true.into() };
    let mut s2 = s.clone();
    s2.sentinel = Arc::new(refusing);
    xdrsync::usecase::jobs::sync_message(&s2, &item, 1, "m2").await;
    let failures = xdrsync::usecase::failures::list(&s2).await.unwrap();
    assert_eq!(failures.len(), 1, "the refused copy is visible to an operator");
    assert!(failures[0].message.contains("refused"), "{failures:?}");
    // The retry copies it (the copy was not marked as done) and clears the record.
    xdrsync::usecase::jobs::sync_message(&s2, &item, 1, "m3").await;
    let name = sentinel_incident_name(&s.config.tenant_id, &ids[0]);
    let copies = s
        .sentinel
        .list_comments(&name)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.properties.message.ends_with("escalated to tier 2"))
        .count();
    assert_eq!(copies, 1);
    assert!(xdrsync::usecase::failures::list(&s2).await.unwrap().is_empty());
}

/// Defender's comment POST is not idempotent: while another instance holds the incident's comment
/// claim, a reconcile posts nothing and gives its work back (a conflict, retried); once the claim
/// is free the copy is posted exactly once, and a rerun posts nothing.
#[tokio::test]
async fn two_instances_never_post_one_sentinel_comment_into_defender_twice() {
    let sim = start_sim(SimConfig::demo()).await;
    let s = services(&sim);
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    sync(&s, &ids[0]).await;
    let name = sentinel_incident_name(&s.config.tenant_id, &ids[0]);
    sim_post(&sim, &format!("/_sim/sentinel/incidents/{name}/edit"), json!({"comment": "seen once"})).await;
    let copies = |sim: &RunningSim| {
        sim.sim.world().incident(&ids[0]).unwrap().comments.iter().filter(|c| c.comment.ends_with("seen once")).count()
    };

    let other = xdrsync::usecase::comment_claim::acquire(&s, &ids[0]).await.expect("the other instance claims");
    let item = WorkItem::reconcile(&s.config.tenant_id, &ids[0], ChangeHint::Sentinel);
    let held = reconcile(&s, &item).await;
    assert!(matches!(&held, Err(xdrsync::usecase::UseCaseError::Retry(e)) if e.is_conflict()), "{held:?}");
    assert_eq!(copies(&sim), 0, "nothing posted while the claim is held elsewhere");

    xdrsync::usecase::comment_claim::release(&s, other).await;
    sync(&s, &ids[0]).await;
    assert_eq!(copies(&sim), 1, "posted once the claim is free");
    sync(&s, &ids[0]).await;
    assert_eq!(copies(&sim), 1, "a rerun posts nothing");
}
