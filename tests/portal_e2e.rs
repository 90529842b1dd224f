//! `XDRSYNC_TARGET=defender-portal` end to end on the simulator (docs/unified-portal.md “Mode
//! 2”): source tenant A's incidents ship alert rows, the simulated rule and correlation engine of
//! the onboarded workspace make target incidents in tenant B's Defender queue, and xdrsync syncs
//! status, owner, classification, tags and comments between them through Graph on both sides,
//! including a target incident grouping two source incidents, with no ping-pong.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use support::*;
use xdrsync::app;
use xdrsync::usecase::jobs::{poll, sync_message};
use xdrsync::usecase::Ports;
use xdrsync_sim::fakes::{MemoryQueue, MemoryStore};
use xdrsync_sim::sim::model::{GraphComment, GraphIncident};
use xdrsync_sim::sim::seed::{seed, SeedSpec};
use xdrsync_sim::sim::tenants::{spawn_tenants, tenant_configs, RunningTenantSims};
use xdrsync_sim::sim::{Sim, SimConfig, SimUser};

struct Setup {
    sims: RunningTenantSims,
    a: String,
    s: Ports,
}

async fn start(group_all: bool, sources: usize) -> (Setup, Vec<String>) {
    let primary = SimConfig::demo();
    let tenants = tenant_configs(&primary, 1);
    let a = tenants[0].tenant_id.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let sims = spawn_tenants(listener, primary, tenants, Vec::new()).await.expect("simulator starts");
    sims.sims.primary.world().users = vec![SimUser::new("bob@b.example", "Bob (target SOC)")];
    {
        let mut o = sims.sims.primary.options.lock().unwrap();
        o.correlation_engine = true;
        o.engine_groups_all = group_all;
    }
    let src = sims.sims.tenant(&a).unwrap().clone();
    src.world().users = vec![SimUser::new("ann@a.example", "Ann (source SOC)")];
    let ids = seed(&mut src.world(), &a, &SeedSpec { count: sources, max_alerts: 1, ..Default::default() });
    for id in &ids {
        src.world().incident_mut(id).unwrap().custom_tags.clear();
    }
    let mut vars: HashMap<String, String> = settings(&sims.primary(), None);
    vars.insert("XDRSYNC_DEFENDER_TENANTS".into(), format!("{a}=Contoso"));
    vars.insert("XDRSYNC_TARGET".into(), "defender-portal".into());
    let mut s = app::build(config(&vars));
    s.store = Arc::new(MemoryStore::new());
    s.queue = Arc::new(MemoryQueue::new());
    (Setup { sims, a, s }, ids)
}

impl Setup {
    fn source(&self) -> Arc<Sim> {
        self.sims.sims.tenant(&self.a).unwrap().clone()
    }

    fn target(&self) -> Arc<Sim> {
        self.sims.sims.primary.clone()
    }

    /// One poller tick, then every queued reconcile.
    async fn tick(&self) {
        let r = poll(&self.s).await.expect("tick");
        assert!(!r.contains("not synced"), "{r}");
        for _ in 0..20 {
            let msgs = self.s.queue.receive(&self.s.config.queue_name, 32, Duration::from_secs(30)).await.unwrap();
            if msgs.is_empty() {
                return;
            }
            for m in msgs {
                sync_message(&self.s, &m.text, u64::from(m.dequeue_count), &m.id).await;
                self.s.queue.delete(&self.s.config.queue_name, &m).await.unwrap();
            }
        }
        panic!("the queue never emptied");
    }

    /// Ticks until the engine's incidents exist and were synced once.
    async fn settle(&self) {
        for _ in 0..3 {
            self.tick().await;
        }
    }

    fn targets(&self) -> Vec<GraphIncident> {
        self.target().world().incidents.values().cloned().collect()
    }

    fn src(&self, id: &str) -> GraphIncident {
        self.source().world().incident(id).cloned().unwrap()
    }

    fn tgt(&self, id: &str) -> GraphIncident {
        self.target().world().incident(id).cloned().unwrap()
    }

    /// Every incident's last update and comment count on both sides.
    fn snapshot(&self) -> Vec<(String, time::OffsetDateTime, usize)> {
        let mut v: Vec<_> =
            self.targets().iter().map(|i| (format!("B{}", i.id), i.last_update_date_time, i.comments.len())).collect();
        v.extend(
            self.source()
                .world()
                .incidents
                .values()
                .map(|i| (format!("A{}", i.id), i.last_update_date_time, i.comments.len())),
        );
        v
    }
}

fn edit(sim: &Sim, id: &str, f: impl FnOnce(&mut GraphIncident)) {
    let mut w = sim.world();
    let now = w.now();
    let i = w.incident_mut(id).unwrap();
    f(i);
    i.last_update_date_time = now;
}

fn comment(sim: &Sim, id: &str, text: &str) {
    let mut w = sim.world();
    let now = w.now();
    let i = w.incident_mut(id).unwrap();
    i.comments.push(GraphComment {
        comment: text.into(),
        created_by_display_name: "analyst".into(),
        created_date_time: now,
    });
    i.last_update_date_time = now;
}

#[tokio::test]
async fn a_source_incident_gets_its_target_incident_and_edits_cross_both_ways() {
    let (w, ids) = start(false, 1).await;
    let sid = &ids[0];
    edit(&w.source(), sid, |i| {
        i.status = "resolved".into();
        i.assigned_to = Some("ann@a.example".into());
        i.custom_tags = vec!["VIP".into()];
    });
    comment(&w.source(), sid, "seen on wks-1");
    w.settle().await;

    assert!(w.target().world().sentinel.is_empty(), "no Sentinel incident in this mode");
    let targets = w.targets();
    assert_eq!(targets.len(), 1, "the engine made one target incident");
    let tid = targets[0].id.clone();
    let t = w.tgt(&tid);
    assert_eq!(t.status, "resolved");
    assert_eq!(t.assigned_to, None, "ann is no user of tenant B");
    assert!(t.custom_tags.contains(&"Source owner: ann@a.example".to_string()), "{:?}", t.custom_tags);
    assert!(t.custom_tags.contains(&"VIP".to_string()));
    assert!(t.comments.iter().any(|c| c.comment.ends_with("seen on wks-1")), "the source's comment reached the target");

    // Target edits: status, owner (a user of B only), classification, a tag, a comment.
    edit(&w.target(), &tid, |i| {
        i.status = "active".into();
        i.assigned_to = Some("bob@b.example".into());
        i.classification = "truePositive".into();
        i.determination = "malware".into();
        i.custom_tags.push("Escalated".into());
    });
    comment(&w.target(), &tid, "contained by the target SOC");
    w.settle().await;
    let s = w.src(sid);
    assert_eq!(s.status, "active", "reopened on the target, reopened at the source");
    assert_eq!(s.classification, "truePositive");
    assert_eq!(s.determination, "malware");
    assert_eq!(s.assigned_to, None, "bob is no user of tenant A");
    assert!(s.custom_tags.contains(&"Target owner: bob@b.example".to_string()), "{:?}", s.custom_tags);
    assert!(s.custom_tags.contains(&"Escalated".to_string()));
    assert!(s.comments.iter().any(|c| c.comment.ends_with("contained by the target SOC")));
    assert_eq!(s.comments.iter().filter(|c| c.comment.contains("seen on wks-1")).count(), 1, "no echo back");

    let before = w.snapshot();
    w.settle().await;
    assert_eq!(w.snapshot(), before, "further ticks write nothing");

    let health = xdrsync::usecase::health::check(&w.s, false).await;
    assert_eq!(health.target, "defender-portal");
    let status = xdrsync::ops::status::gather(&w.s).await;
    assert!(xdrsync::ops::status::render(&status).contains("target defender-portal"));
    let lines = xdrsync::check::alerts::lines(&w.s).await;
    let target = lines.iter().find(|l| l.what == "Target").expect("check reports the target");
    assert!(target.ok, "{}", target.detail);
}

#[tokio::test]
async fn check_refuses_the_mode_when_the_only_source_is_the_workspace_tenant() {
    let (w, _) = start(false, 1).await;
    let mut vars: HashMap<String, String> = settings(&w.sims.primary(), None);
    vars.insert("XDRSYNC_TARGET".into(), "defender-portal".into());
    let s = app::build(config(&vars));
    let lines = xdrsync::check::alerts::lines(&s).await;
    let target = lines.iter().find(|l| l.what == "Target").expect("check reports the target");
    assert!(!target.ok && target.detail.contains("XDRSYNC_DEFENDER_TENANTS"), "{}", target.detail);
}

#[tokio::test]
async fn a_target_grouping_two_source_incidents_syncs_them_without_ping_pong() {
    let (w, ids) = start(true, 2).await;
    w.settle().await;
    let targets = w.targets();
    assert_eq!(targets.len(), 1, "the engine grouped both sources' alerts into one incident");
    let tid = targets[0].id.clone();

    edit(&w.source(), &ids[0], |i| i.status = "resolved".into());
    comment(&w.source(), &ids[0], "first source note");
    w.settle().await;
    assert_eq!(w.tgt(&tid).status, "resolved");
    assert_eq!(w.src(&ids[1]).status, "resolved", "S1's change reached S2 through the target");
    assert!(w.src(&ids[1]).comments.iter().any(|c| c.comment.ends_with("first source note")));
    assert_eq!(w.src(&ids[0]).comments.len(), 1, "nothing came back to S1");

    edit(&w.target(), &tid, |i| i.classification = "falsePositive".into());
    w.settle().await;
    assert_eq!(w.src(&ids[0]).classification, "falsePositive");
    assert_eq!(w.src(&ids[1]).classification, "falsePositive", "a target change fans out to every source");

    let before = w.snapshot();
    w.settle().await;
    assert_eq!(w.snapshot(), before, "no ping-pong: further ticks write nothing");
}

/// The engine moves a source's alerts out of a grouping target into a new incident (a split).
fn split_out(target: &Sim, from: &str, source_incident: &str) -> String {
    let mut w = target.world();
    let now = w.now();
    let new_id = w.next_incident_id;
    w.next_incident_id += 1;
    let mut fresh = w.incident(from).cloned().unwrap();
    fresh.id = new_id.to_string();
    fresh.seq = w.next_seq();
    fresh.created_date_time = now;
    fresh.last_update_date_time = now;
    fresh.comments.clear();
    w.incidents.insert(new_id, fresh);
    let mut moved = 0;
    for a in w.alerts.values_mut() {
        let names_it =
            a.custom_details.as_ref().and_then(|d| d["DefenderIncidentId"][0].as_str()) == Some(source_incident);
        if names_it && a.incident_id.as_deref() == Some(from) {
            a.incident_id = Some(new_id.to_string());
            a.last_update_date_time = now;
            moved += 1;
        }
    }
    assert!(moved > 0, "the source had alerts in the target");
    w.incident_mut(from).unwrap().last_update_date_time = now;
    new_id.to_string()
}

#[tokio::test]
async fn a_split_target_drops_the_link_of_the_source_it_no_longer_holds() {
    let (w, ids) = start(true, 2).await;
    w.settle().await;
    let tid = w.targets()[0].id.clone();
    let link = |incident: &str| {
        let key = xdrsync::state::RowKey::new(&format!("portal-link:{}", w.a), incident).unwrap();
        let store = w.s.store.clone();
        async move {
            xdrsync::state::load::<std::collections::BTreeSet<String>>(
                store.as_ref(),
                xdrsync::ports::Table::Cursors,
                &key,
            )
            .await
            .unwrap()
            .map(|v| v.value.into_iter().collect::<Vec<_>>())
            .unwrap_or_default()
        }
    };
    assert_eq!(link(&ids[0]).await, vec![tid.clone()]);

    let t2 = split_out(&w.target(), &tid, &ids[0]);
    w.settle().await;
    assert_eq!(link(&ids[0]).await, vec![t2.clone()], "the first source now follows only the new target");
    assert_eq!(link(&ids[1]).await, vec![tid.clone()], "the second source stays with the old one");

    edit(&w.target(), &tid, |i| i.classification = "falsePositive".into());
    edit(&w.target(), &t2, |i| i.classification = "truePositive".into());
    w.settle().await;
    assert_eq!(w.src(&ids[1]).classification, "falsePositive");
    assert_eq!(w.src(&ids[0]).classification, "truePositive", "each source follows its own target");

    let before = w.snapshot();
    w.settle().await;
    assert_eq!(w.snapshot(), before, "no ping-pong after the split");
}

#[tokio::test]
async fn check_probes_graph_on_the_target_tenant_and_names_the_missing_permission() {
    let (w, _) = start(false, 1).await;
    let line = |lines: &[xdrsync::check::CheckLine], what: &str| {
        let l = lines.iter().find(|l| l.what == what).unwrap_or_else(|| panic!("check reports {what}"));
        (l.ok, l.detail.clone())
    };
    let lines = xdrsync::check::alerts::lines(&w.s).await;
    for what in ["Target incidents", "Target alerts"] {
        let (ok, detail) = line(&lines, what);
        assert!(ok, "{what}: {detail}");
    }
    // Tenant B's app loses every security permission (alerts_v2 reads accept incident roles too).
    for role in [
        "SecurityIncident.ReadWrite.All",
        "SecurityIncident.Read.All",
        "SecurityAlert.Read.All",
        "SecurityAlert.ReadWrite.All",
    ] {
        let r = sim_post(&w.sims.primary(), "/_sim/permissions/withhold", serde_json::json!({ "role": role })).await;
        assert!(r.status().is_success());
    }
    let lines = xdrsync::check::alerts::lines(&w.s).await;
    let (ok, detail) = line(&lines, "Target incidents");
    assert!(
        !ok && detail.contains("SecurityIncident.ReadWrite.All") && detail.contains("XDRSYNC_TENANT_ID"),
        "{detail}"
    );
    let (ok, detail) = line(&lines, "Target alerts");
    assert!(!ok && detail.contains("SecurityAlert.Read.All"), "{detail}");
    let source = w.source();
    assert!(
        source.permissions().graph_app_roles.contains("SecurityIncident.ReadWrite.All"),
        "the source tenant keeps its grants"
    );
}
