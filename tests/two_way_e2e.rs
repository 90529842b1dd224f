//! Two-way sync end to end (standalone + simulator + Azurite), with Sentinel automation firing
//! the webhook on every update, xdrsync's own included: Sentinel edits reach Defender, Defender
//! edits reach Sentinel, both-sides edits resolve per policy with a conflict comment, a quiet
//! window afterwards writes nothing, each edit costs exactly its own write, and with the webhook
//! off the sweep still delivers every Sentinel edit.

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};
use support::*;
use xdrsync::app;
use xdrsync::domain::names::sentinel_incident_name;
use xdrsync::standalone::{self, Runner};
use xdrsync::usecase::Ports;
use xdrsync_sim::sim::seed::SeedSpec;
use xdrsync_sim::sim::{Automation, RunningSim, SimConfig};

const KEY: &str = "test-webhook-key-0123456789";
const WRITES: [&str; 5] =
    ["arm.incidents.put", "arm.comments.put", "graph.incidents.patch", "graph.incidents.comments.post", "logs.post"];

fn vars(sim: &RunningSim, az: &AzuriteProcess, prefix: Option<&str>) -> HashMap<String, String> {
    let mut v = settings(sim, Some(&az.connection_string()));
    v.insert("XDRSYNC_POLL_SCHEDULE".into(), "* * * * * *".into());
    v.insert("XDRSYNC_QUEUE_VISIBILITY_SECONDS".into(), "2".into());
    v.insert("XDRSYNC_WORKERS".into(), "4".into());
    if let Some(p) = prefix {
        v.insert("XDRSYNC_TABLE_PREFIX".into(), p.into());
    }
    v
}

async fn start(vars: &HashMap<String, String>) -> (Runner, Arc<Ports>) {
    let services = Arc::new(app::build(config(vars)));
    let runner = standalone::start(services.clone(), 0).await.expect("runner starts");
    (runner, services)
}

fn enable_automation(sim: &RunningSim, runner: &Runner) {
    enable_automation_with_key(sim, runner, KEY);
}

fn enable_automation_with_key(sim: &RunningSim, runner: &Runner, key: &str) {
    *sim.sim.automation.lock().unwrap() = Some(Automation {
        url: format!("http://127.0.0.1:{}/api/sentinel/incidents", runner.http_addr.port()),
        key: key.into(),
        delay_ms: 100,
    });
}

async fn mirror_all(sim: &RunningSim, tenant: &str, n: usize) -> Vec<String> {
    let ids = seed(sim, SeedSpec { count: n, max_alerts: 2, ..Default::default() });
    eventually(60, "mirrors", || {
        let w = sim.sim.world();
        ids.iter().all(|id| w.sentinel.contains_key(&sentinel_incident_name(tenant, id)))
    })
    .await;
    ids
}

fn writes(sim: &RunningSim) -> HashMap<&'static str, u64> {
    let s = sim.sim.stats.snapshot();
    WRITES.iter().map(|w| (*w, s.get(*w).copied().unwrap_or(0))).collect()
}

async fn edit_sentinel(sim: &RunningSim, name: &uuid::Uuid, body: Value) {
    let r = sim_post(sim, &format!("/_sim/sentinel/incidents/{name}/edit"), body).await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

async fn edit_defender(sim: &RunningSim, id: &str, body: Value) {
    let r = sim_post(sim, &format!("/_sim/defender/incidents/{id}/edit"), body).await;
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

fn labels_plus(sim: &RunningSim, name: &uuid::Uuid, extra: &str) -> Vec<String> {
    let w = sim.sim.world();
    let mut l: Vec<String> = w.sentinel[name].writable.labels.iter().map(|l| l.label_name.clone()).collect();
    l.push(extra.into());
    l
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_flow_both_ways_with_automation_and_a_quiet_window_writes_nothing() {
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let (runner, services) = start(&vars(&sim, &az, None)).await;
    enable_automation(&sim, &runner);
    let tenant = services.config.tenant_id.clone();
    let ids = mirror_all(&sim, &tenant, 50).await;
    let names: Vec<uuid::Uuid> = ids.iter().map(|id| sentinel_incident_name(&tenant, id)).collect();

    // 50 Sentinel edits, five kinds.
    for (i, name) in names.iter().enumerate() {
        let body = match i % 5 {
            0 => json!({"status": "Active", "severity": "Low"}),
            1 => json!({"ownerUpn": "carol@contoso.com"}),
            2 => {
                json!({"status": "Closed", "classification": "FalsePositive", "classificationReason": "IncorrectAlertLogic"})
            }
            3 => json!({"labels": labels_plus(&sim, name, &format!("case-{i}"))}),
            _ => json!({"comment": format!("analyst note {i}"), "by": "carol@contoso.com"}),
        };
        edit_sentinel(&sim, name, body).await;
    }
    eventually(60, "50 Sentinel edits in Defender", || {
        let w = sim.sim.world();
        ids.iter().enumerate().all(|(i, id)| {
            let d = w.incident(id).unwrap();
            match i % 5 {
                // Defender's API cannot set inProgress: the incident stays active there.
                0 => d.severity == "low" && d.status == "active",
                1 => d.assigned_to.as_deref() == Some("carol@contoso.com"),
                2 => d.status == "resolved" && d.classification == "falsePositive" && d.determination == "other",
                3 => d.custom_tags.contains(&format!("case-{i}")),
                _ => d.comments.iter().any(|c| c.comment == format!("[Sentinel] carol@contoso.com: analyst note {i}")),
            }
        })
    })
    .await;

    // 50 Defender edits, five kinds.
    for (i, id) in ids.iter().enumerate() {
        let body = match i % 5 {
            0 => json!({"assignedTo": "dave@contoso.com"}),
            1 => json!({"severity": "high"}),
            2 => json!({"status": "active"}),
            3 => json!({"customTags": [format!("case-{i}"), "escalated"]}),
            _ => json!({"comment": format!("defender note {i}"), "by": "erin@contoso.com"}),
        };
        edit_defender(&sim, id, body).await;
    }
    let dave = sim.sim.world().user_by_upn_or_id("dave@contoso.com").unwrap().id.clone();
    eventually(60, "50 Defender edits in Sentinel", || {
        let w = sim.sim.world();
        ids.iter().enumerate().all(|(i, id)| {
            let r = &w.sentinel[&sentinel_incident_name(&tenant, id)];
            let s = &r.writable;
            match i % 5 {
                0 => s.owner.as_ref().and_then(|o| o.object_id.as_deref()) == Some(dave.as_str()),
                1 => s.severity == "High",
                2 => s.status == "New" && s.classification.is_none(),
                3 => s.labels.iter().any(|l| l.label_name == "escalated"),
                _ => r
                    .comments
                    .values()
                    .any(|c| c.properties.message == format!("[Defender] erin@contoso.com: defender note {i}")),
            }
        })
    })
    .await;

    // Quiet: at least 3 whole polls with automation armed; nothing may be written anywhere.
    eventually_async(60, "the edits' work done", || async { idle(&sim, &services).await }).await;
    sim.sim.stats.reset();
    let polls = after_polls(&sim, &runner, &services, 3, 30).await;
    assert!(polls >= 3, "{polls} polls in the quiet window");
    for list in ["graph.incidents.list", "arm.incidents.list"] {
        let n = sim_stat(&sim, list).await;
        assert!(n >= 3, "{list}: the poller ran in the quiet window ({n} requests)");
    }
    let quiet = writes(&sim);
    assert!(quiet.values().all(|n| *n == 0), "writes in a quiet window: {quiet:?}");
    assert_eq!(sim_stat(&sim, "automation.deliveries").await, 0, "no writes, so no automation either");

    // Sentinel's Active (which Defender's API cannot hold) was not undone by any later sync.
    {
        let w = sim.sim.world();
        for i in (0..50).step_by(5) {
            assert_eq!(w.sentinel[&names[i]].writable.status, "Active", "incident {i} kept Sentinel's status");
        }
    }

    // One Sentinel edit costs exactly one Defender PATCH, and no Sentinel write.
    let before = sim_stat(&sim, "automation.deliveries").await;
    edit_sentinel(&sim, &names[7], json!({"severity": "Informational"})).await;
    eventually(20, "the severity in Defender", || {
        sim.sim.world().incident(&ids[7]).unwrap().severity == "informational"
    })
    .await;
    // Anything the edit set off afterwards (the Defender poll seeing the PATCH) is done.
    after_polls(&sim, &runner, &services, 2, 30).await;
    let w1 = writes(&sim);
    assert_eq!(w1["graph.incidents.patch"], 1, "{w1:?}");
    assert_eq!(w1["arm.incidents.put"], 0, "{w1:?}");
    assert_eq!(sim_stat(&sim, "automation.deliveries").await - before, 1, "one delivery: the analyst's edit");

    // One Defender owner edit costs exactly one Sentinel PUT, and no Defender write.
    sim.sim.stats.reset();
    edit_defender(&sim, &ids[6], json!({"assignedTo": "erin@contoso.com"})).await;
    let erin = sim.sim.world().user_by_upn_or_id("erin@contoso.com").unwrap().id.clone();
    eventually(20, "the owner in Sentinel", || {
        sim.sim.world().sentinel[&names[6]].writable.owner.as_ref().and_then(|o| o.object_id.clone())
            == Some(erin.clone())
    })
    .await;
    // Anything the edit set off afterwards (automation on our PUT, the sweep) is done.
    after_polls(&sim, &runner, &services, 2, 30).await;
    let w2 = writes(&sim);
    assert_eq!(w2["arm.incidents.put"], 1, "{w2:?}");
    assert_eq!(w2["graph.incidents.patch"], 0, "{w2:?}");
    runner.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_edited_between_syncs_resolve_by_latest_wins_with_a_conflict_comment() {
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let prefix = unique_prefix();
    let v = vars(&sim, &az, Some(&prefix));
    let (runner, services) = start(&v).await;
    let tenant = services.config.tenant_id.clone();
    let ids = mirror_all(&sim, &tenant, 20).await;
    // Every first sync saved its state (a mirror exists before its state row does).
    eventually_async(60, "the first syncs done", || async { idle(&sim, &services).await }).await;
    runner.shutdown().await;

    // While xdrsync is stopped: Defender sets inProgress + a tag, then Sentinel (later) closes.
    for id in &ids {
        edit_defender(&sim, id, json!({"status": "inProgress", "customTags": ["from-defender"]})).await;
    }
    for id in &ids {
        let name = sentinel_incident_name(&tenant, id);
        edit_sentinel(&sim, &name, json!({"status": "Closed", "classification": "TruePositive", "classificationReason": "SuspiciousActivity", "severity": "High"})).await;
    }
    {
        // The simulator's clock never repeats a time, so each Sentinel edit is the later one.
        let w = sim.sim.world();
        for id in &ids {
            let sentinel_time = w.sentinel[&sentinel_incident_name(&tenant, id)].read_only.last_modified_time_utc;
            assert!(sentinel_time > w.incident(id).unwrap().last_update_date_time, "Sentinel edited {id} later");
        }
    }
    let (runner, _) = start(&v).await;
    eventually(60, "conflicts resolved", || {
        let w = sim.sim.world();
        ids.iter().all(|id| {
            let d = w.incident(id).unwrap();
            let s = &w.sentinel[&sentinel_incident_name(&tenant, id)];
            d.status == "resolved"
                && d.classification == "truePositive"
                && d.severity == "high"
                && s.writable.status == "Closed"
                && s.writable.labels.iter().any(|l| l.label_name == "from-defender")
                && s.comments.values().any(|c| c.properties.message.starts_with("[xdrsync] Both portals changed"))
        })
    })
    .await;
    {
        let w = sim.sim.world();
        for id in &ids {
            let s = &w.sentinel[&sentinel_incident_name(&tenant, id)];
            let notes: Vec<_> = s.comments.values().filter(|c| c.properties.message.starts_with("[xdrsync]")).collect();
            assert_eq!(notes.len(), 1, "one conflict comment on {id}");
            assert!(
                notes[0].properties.message.contains("status: Defender had Active, Sentinel had Closed; Sentinel won"),
                "{}",
                notes[0].properties.message
            );
            assert!(
                w.incident(id).unwrap().custom_tags.contains(&"from-defender".to_string()),
                "the non-conflicting edit survived"
            );
        }
    }
    runner.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_webhook_off_the_sweep_still_delivers_every_sentinel_edit() {
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let (runner, services) = start(&vars(&sim, &az, None)).await;
    let tenant = services.config.tenant_id.clone();
    let ids = mirror_all(&sim, &tenant, 10).await;
    // The playbook fires on every edit but presents a key xdrsync refuses: the webhook is off in
    // effect, and only the sweep can carry the edits.
    enable_automation_with_key(&sim, &runner, "a-key-xdrsync-does-not-hold");
    sim.sim.stats.reset();
    for id in &ids {
        let name = sentinel_incident_name(&tenant, id);
        edit_sentinel(
            &sim,
            &name,
            json!({"status": "Active", "ownerUpn": "bob@contoso.com", "comment": "seen by the sweep"}),
        )
        .await;
    }
    eventually(30, "sweep delivered every edit", || {
        let w = sim.sim.world();
        ids.iter().all(|id| {
            let d = w.incident(id).unwrap();
            d.assigned_to.as_deref() == Some("bob@contoso.com")
                && d.comments.iter().any(|c| c.comment.ends_with("seen by the sweep"))
        })
    })
    .await;
    assert!(sim_stat(&sim, "automation.fired").await >= 10, "the playbook fired on the analysts' edits");
    eventually_async(30, "every playbook call answered", || async {
        sim_stat(&sim, "automation.failures").await == sim_stat(&sim, "automation.fired").await
    })
    .await;
    assert_eq!(sim_stat(&sim, "automation.deliveries").await, 0, "the webhook accepted none: the sweep did it all");

    runner.shutdown().await;
}
