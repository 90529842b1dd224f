//! The reconcile driven directly (simulator + in-memory storage): behaviours that need exact
//! control over what happens between two syncs.

mod support;

use serde_json::json;
use support::*;
use xdrsync::app;
use xdrsync::domain::names::sentinel_incident_name;
use xdrsync::domain::sentinel::*;
use xdrsync::domain::work::{ChangeHint, WorkItem};
use xdrsync::usecase::sync::{reconcile, SyncOutcome};
use xdrsync::usecase::Ports;
use xdrsync_sim::sim::seed::SeedSpec;
use xdrsync_sim::sim::{FaultKind, FaultRule, RunningSim, SimConfig};

async fn services(sim: &RunningSim, policy: Option<&str>) -> Ports {
    let mut vars = settings(sim, None);
    if let Some(p) = policy {
        vars.insert("XDRSYNC_CONFLICT_POLICY".into(), p.into());
    }
    let mut s = app::build(config(&vars));
    s.store = std::sync::Arc::new(xdrsync_sim::fakes::MemoryStore::new());
    s.queue = std::sync::Arc::new(xdrsync_sim::fakes::MemoryQueue::new());
    s
}

async fn sync(s: &Ports, id: &str) -> SyncOutcome {
    reconcile(s, &WorkItem::reconcile(&s.config.tenant_id, id, ChangeHint::Reconcile)).await.unwrap()
}

#[tokio::test]
async fn an_owner_unknown_to_entra_is_kept_in_a_label_and_does_not_loop() {
    let sim = start_sim(SimConfig::demo()).await;
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    let s = services(&sim, None).await;
    sim_post(&sim, &format!("/_sim/defender/incidents/{}/edit", ids[0]), json!({"assignedTo": "Ghost@Contoso.com"}))
        .await;
    sync(&s, &ids[0]).await;
    let name = sentinel_incident_name(&s.config.tenant_id, &ids[0]);
    {
        let w = sim.sim.world();
        let rec = &w.sentinel[&name];
        assert!(rec.writable.owner.is_none());
        assert!(rec.writable.labels.iter().any(|l| l.label_name == "Defender owner: ghost@contoso.com"));
        assert_eq!(
            w.incident(&ids[0]).unwrap().assigned_to.as_deref(),
            Some("Ghost@Contoso.com"),
            "never dropped in Defender"
        );
    }
    sim.sim.stats.reset();
    assert_eq!(sync(&s, &ids[0]).await, SyncOutcome::Unchanged);
    assert_eq!(sim_stat(&sim, "graph.users.get").await, 0, "the unknown user is cached");
    assert_eq!(sim_stat(&sim, "graph.incidents.patch").await + sim_stat(&sim, "arm.incidents.put").await, 0);
}

async fn both_sides_edit(policy: &str) -> (String, String, String) {
    let sim = start_sim(SimConfig::demo()).await;
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    let s = services(&sim, Some(policy)).await;
    sync(&s, &ids[0]).await;
    let name = sentinel_incident_name(&s.config.tenant_id, &ids[0]);
    // Sentinel first, Defender later: latest-wins picks Defender.
    sim_post(&sim, &format!("/_sim/sentinel/incidents/{name}/edit"), json!({"status": "Active"})).await;
    sim_post(
        &sim,
        &format!("/_sim/defender/incidents/{}/edit", ids[0]),
        json!({"status": "resolved", "classification": "falsePositive", "determination": "notMalicious"}),
    )
    .await;
    let SyncOutcome::Synced(report) = sync(&s, &ids[0]).await else { panic!("expected a sync") };
    assert_eq!(report.conflicts, 1);
    let w = sim.sim.world();
    let note = w.sentinel[&name]
        .comments
        .values()
        .map(|c| c.properties.message.clone())
        .find(|m| m.starts_with("[xdrsync]"))
        .unwrap();
    (w.incident(&ids[0]).unwrap().status.clone(), w.sentinel[&name].writable.status.clone(), note)
}

#[tokio::test]
async fn each_conflict_policy_from_configuration_decides_and_is_explained() {
    let (d, s, note) = both_sides_edit("latest-wins").await;
    assert_eq!((d.as_str(), s.as_str()), ("resolved", "Closed"));
    assert!(note.contains("Defender won"), "{note}");
    let (d, s, note) = both_sides_edit("sentinel-wins").await;
    // Defender's API cannot set inProgress: the resolved incident is reopened as active.
    assert_eq!((d.as_str(), s.as_str()), ("active", "Active"));
    assert!(note.contains("Sentinel won") && note.contains("policy sentinel-wins"), "{note}");
    assert!(!note.contains("SentinelWins") && !note.contains("Some("), "portal words, not Rust debug text: {note}");
    let (d, s, _) = both_sides_edit("defender-wins").await;
    assert_eq!((d.as_str(), s.as_str()), ("resolved", "Closed"));
}

#[tokio::test]
async fn defenders_determination_survives_a_round_trip_through_sentinel() {
    let sim = start_sim(SimConfig::demo()).await;
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    let s = services(&sim, None).await;
    sim_post(
        &sim,
        &format!("/_sim/defender/incidents/{}/edit", ids[0]),
        json!({"status": "resolved", "classification": "truePositive", "determination": "malware"}),
    )
    .await;
    sync(&s, &ids[0]).await;
    let name = sentinel_incident_name(&s.config.tenant_id, &ids[0]);
    assert_eq!(sim.sim.world().sentinel[&name].writable.classification.as_deref(), Some("TruePositive"));
    // An analyst reopens in Sentinel, then closes again as TruePositive.
    sim_post(
        &sim,
        &format!("/_sim/sentinel/incidents/{name}/edit"),
        json!({"status": "Active", "classification": null, "classificationReason": null}),
    )
    .await;
    sync(&s, &ids[0]).await;
    assert_eq!(sim.sim.world().incident(&ids[0]).unwrap().status, "active", "reopened");
    sim_post(
        &sim,
        &format!("/_sim/sentinel/incidents/{name}/edit"),
        json!({"status": "Closed", "classification": "TruePositive", "classificationReason": "SuspiciousActivity"}),
    )
    .await;
    sync(&s, &ids[0]).await;
    let w = sim.sim.world();
    let d = w.incident(&ids[0]).unwrap();
    assert_eq!(d.status, "resolved");
    assert_eq!(d.classification, "truePositive");
    assert_eq!(d.determination, "malware", "kept, not replaced by a default");
}

#[tokio::test]
async fn a_status_defender_cannot_take_neither_loops_nor_is_asked_for_again() {
    let sim = start_sim(SimConfig::demo()).await;
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    let s = services(&sim, None).await;
    sync(&s, &ids[0]).await;
    let name = sentinel_incident_name(&s.config.tenant_id, &ids[0]);
    sim_post(
        &sim,
        &format!("/_sim/sentinel/incidents/{name}/edit"),
        json!({"status": "Active", "ownerUpn": "carol@contoso.com"}),
    )
    .await;
    sim.sim.stats.reset();
    sync(&s, &ids[0]).await;
    {
        let w = sim.sim.world();
        let d = w.incident(&ids[0]).unwrap();
        assert_eq!(d.assigned_to.as_deref(), Some("carol@contoso.com"), "the rest of the PATCH went through");
        assert_eq!(d.status, "active", "Defender keeps the status its API can hold");
        assert_eq!(w.sentinel[&name].writable.status, "Active", "Sentinel keeps the analyst's status");
    }
    assert_eq!(sim_stat(&sim, "graph.incidents.patch").await, 2, "one refused PATCH, one without the status");
    // Nothing changes afterwards: no ping-pong, no second attempt.
    sim.sim.stats.reset();
    sim_post(&sim, &format!("/_sim/defender/incidents/{}/edit", ids[0]), json!({"customTags": ["later"]})).await;
    sync(&s, &ids[0]).await;
    assert_eq!(sim_stat(&sim, "graph.incidents.patch").await, 0, "Defender is not asked for inProgress again");
    assert_eq!(sim.sim.world().sentinel[&name].writable.status, "Active");
    assert_eq!(sync(&s, &ids[0]).await, SyncOutcome::Unchanged);
}

/// Sentinel as the reconcile sees it, except that an analyst's edit lands just before our
/// first PUT, so that PUT carries a stale etag.
struct EditBeforeFirstPut {
    inner: std::sync::Arc<dyn xdrsync::ports::SentinelApi>,
    sim: std::sync::Arc<xdrsync_sim::sim::Sim>,
    edited: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl xdrsync::ports::SentinelApi for EditBeforeFirstPut {
    async fn workspace_role_definitions(&self) -> Result<Vec<String>, xdrsync::error::PortError> {
        self.inner.workspace_role_definitions().await
    }
    async fn get_incident(&self, name: &uuid::Uuid) -> Result<Option<SentinelIncident>, xdrsync::error::PortError> {
        self.inner.get_incident(name).await
    }
    async fn put_incident(
        &self,
        name: &uuid::Uuid,
        body: &SentinelIncidentBody,
    ) -> Result<SentinelIncident, xdrsync::error::PortError> {
        if !self.edited.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let mut w = self.sim.world();
            let rec = w.sentinel.get_mut(name).unwrap();
            rec.writable.owner = Some(xdrsync_sim::sim::model::OwnerInfo {
                object_id: Some("not-used".into()),
                user_principal_name: Some("carol@contoso.com".into()),
                ..Default::default()
            });
            rec.etag = "\"analyst-was-here\"".into();
        }
        self.inner.put_incident(name, body).await
    }
    async fn list_incidents_modified_since(
        &self,
        since: time::OffsetDateTime,
    ) -> Result<Vec<SentinelIncident>, xdrsync::error::PortError> {
        self.inner.list_incidents_modified_since(since).await
    }
    async fn list_comments(&self, incident: &uuid::Uuid) -> Result<Vec<SentinelComment>, xdrsync::error::PortError> {
        self.inner.list_comments(incident).await
    }
    async fn put_comment(
        &self,
        incident: &uuid::Uuid,
        comment: &uuid::Uuid,
        message: &str,
    ) -> Result<(), xdrsync::error::PortError> {
        self.inner.put_comment(incident, comment, message).await
    }
}

#[tokio::test]
async fn a_stale_etag_during_a_reconcile_rereads_both_sides_and_keeps_the_concurrent_edit() {
    let sim = start_sim(SimConfig::demo()).await;
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    let mut s = services(&sim, None).await;
    sync(&s, &ids[0]).await;
    let name = sentinel_incident_name(&s.config.tenant_id, &ids[0]);
    s.sentinel = std::sync::Arc::new(EditBeforeFirstPut {
        inner: s.sentinel.clone(),
        sim: sim.sim.clone(),
        edited: false.into(),
    });
    // Defender changes severity, so the reconcile must PUT Sentinel; the analyst's owner edit
    // lands just before that PUT.
    sim_post(&sim, &format!("/_sim/defender/incidents/{}/edit", ids[0]), json!({"severity": "low"})).await;
    sim.sim.stats.reset();
    let SyncOutcome::Synced(report) = sync(&s, &ids[0]).await else { panic!("expected a sync") };
    assert!(sim_stat(&sim, "arm.incidents.conflict").await >= 1, "the first PUT hit a stale etag");
    assert!(report.sentinel_written && report.defender_patched);
    let w = sim.sim.world();
    assert_eq!(w.sentinel[&name].writable.severity, "Low", "Defender's change arrived");
    assert_eq!(
        w.incident(&ids[0]).unwrap().assigned_to.as_deref(),
        Some("carol@contoso.com"),
        "the analyst's edit was reread and synced, not overwritten"
    );
}

#[tokio::test]
async fn a_sentinel_comment_whose_copy_answer_was_lost_reaches_defender_once() {
    let sim = start_sim(SimConfig::demo()).await;
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    let s = services(&sim, None).await;
    sync(&s, &ids[0]).await;
    let name = sentinel_incident_name(&s.config.tenant_id, &ids[0]);
    sim_post(&sim, &format!("/_sim/sentinel/incidents/{name}/edit"), json!({"comment": "only once please"})).await;
    // The copy to Defender is stored, but its answer is lost.
    sim.sim.faults.set(vec![FaultRule {
        api: "graph".into(),
        rate: 1.0,
        kind: FaultKind::CommitThenFail { status: 500 },
        retry_after_secs: None,
        remaining: Some(1),
    }]);
    let item = WorkItem::reconcile(&s.config.tenant_id, &ids[0], ChangeHint::Reconcile);
    assert!(reconcile(&s, &item).await.is_err(), "the lost answer surfaces; the message is retried later");
    sync(&s, &ids[0]).await;
    assert_eq!(sync(&s, &ids[0]).await, SyncOutcome::Unchanged);
    let copies = sim
        .sim
        .world()
        .incident(&ids[0])
        .unwrap()
        .comments
        .iter()
        .filter(|c| c.comment.contains("only once please"))
        .count();
    assert_eq!(copies, 1, "the retry found the stored copy instead of posting again");
    assert_eq!(sim_stat(&sim, "graph.incidents.comments.post").await, 1);
}
