//! Native alerts and entities on mirrors, end to end on the simulator (ARCHITECTURE.md: “Native
//! alerts”): alert rows → the simulated analytics rule → SecurityAlerts → xdrsync relates them
//! → what an analyst sees through `POST incidents/{id}/alerts` and `/entities`.

mod support;

use std::sync::Arc;

use secrecy::ExposeSecret;
use serde_json::{json, Value};
use support::*;
use xdrsync::app;
use xdrsync::domain::alert_links::relation_name;
use xdrsync::domain::names::sentinel_incident_name;
use xdrsync::domain::work::{ChangeHint, WorkItem};
use xdrsync::usecase::attach_alerts::{attach, AttachReport};
use xdrsync::usecase::sync::reconcile;
use xdrsync::usecase::Ports;
use xdrsync_sim::sim::seed::SeedSpec;
use xdrsync_sim::sim::{RunningSim, SimConfig};

fn services(sim: &RunningSim) -> Ports {
    let mut vars = settings(sim, None);
    vars.insert("XDRSYNC_ATTACH_ALERTS".into(), "true".into());
    vars.insert("XDRSYNC_ALERTS_ATTACH_DELAY_MINUTES".into(), "1".into());
    let mut s = app::build(config(&vars));
    s.store = Arc::new(xdrsync_sim::fakes::MemoryStore::new());
    s.queue = Arc::new(xdrsync_sim::fakes::MemoryQueue::new());
    s
}

async fn sync(s: &Ports, id: &str) {
    reconcile(s, &WorkItem::reconcile(&s.config.tenant_id, id, ChangeHint::Reconcile)).await.expect("reconciled");
}

async fn run_attach(s: &Ports) -> AttachReport {
    attach(s).await.expect("alerts related")
}

/// `POST …/incidents/{name}/{what}` (alerts or entities), as the portal's tabs read them.
async fn list(sim: &RunningSim, s: &Ports, id: &str, what: &str) -> Value {
    let name = sentinel_incident_name(&s.config.tenant_id, id);
    let token = s.tokens.token(&s.config.arm_scope).await.unwrap();
    let url = format!("{}/incidents/{name}/{what}?api-version=2025-09-01", s.config.security_insights_base());
    let r = reqwest::Client::new().post(url).bearer_auth(token.expose_secret()).send().await.unwrap();
    assert!(r.status().is_success(), "{what}: {}", r.status());
    let _ = sim;
    r.json().await.unwrap()
}

async fn alert_count(sim: &RunningSim, s: &Ports, id: &str) -> usize {
    list(sim, s, id, "alerts").await["value"].as_array().map_or(0, Vec::len)
}

fn set_delay(sim: &RunningSim, ms: u64) {
    sim.sim.options.lock().unwrap().alert_rule_delay_ms = ms;
}

#[tokio::test]
async fn every_mirror_shows_its_alerts_and_their_entities_up_to_150_and_a_rerun_writes_nothing() {
    let sim = start_sim(SimConfig::demo()).await;
    let s = services(&sim);
    let ids = seed(
        &sim,
        SeedSpec { count: 3, min_alerts: 2, max_alerts: 5, big_incidents: 1, big_alerts: 160, ..Default::default() },
    );
    for id in &ids {
        sync(&s, id).await;
    }
    let report = run_attach(&s).await;
    let alerts_total: usize = ids.iter().map(|id| sim.sim.world().alerts_of(id).len()).sum();
    assert_eq!(report.found, alerts_total, "one SecurityAlert per alert row");
    assert_eq!(report.over_limit, 10, "the big incident's alerts beyond 150");
    for id in &ids {
        let expected = sim.sim.world().alerts_of(id).len().min(150);
        assert_eq!(alert_count(&sim, &s, id).await, expected, "incident {id} shows its alerts");
        let entities = list(&sim, &s, id, "entities").await;
        let kinds: Vec<&str> =
            entities["entities"].as_array().unwrap().iter().filter_map(|e| e["kind"].as_str()).collect();
        assert!(!kinds.is_empty(), "incident {id} shows entities");
        // Every host the evidence names is on the Entities tab.
        let hosts: Vec<String> = sim
            .sim
            .world()
            .alerts_of(id)
            .iter()
            .take(150)
            .flat_map(|a| a.evidence.iter())
            .filter(|e| e["@odata.type"].as_str().is_some_and(|t| t.ends_with("deviceEvidence")))
            .take(1)
            .filter_map(|e| e["deviceDnsName"].as_str().map(|d| d.split('.').next().unwrap_or(d).to_string()))
            .collect();
        for h in hosts {
            assert!(
                entities["entities"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|e| e["kind"] == "Host" && e["properties"]["HostName"] == h.as_str()),
                "host {h} of incident {id} is on its Entities tab: {entities}"
            );
        }
    }
    // The relations carry xdrsync's deterministic names.
    let name = sentinel_incident_name(&s.config.tenant_id, &ids[0]);
    {
        let w = sim.sim.world();
        let rels = &w.sentinel[&name].relations;
        let sys = rels.values().next().unwrap()["properties"]["relatedResourceName"].as_str().unwrap().to_string();
        assert!(rels.contains_key(&relation_name(&s.config.tenant_id, &ids[0], &sys).to_string()));
    }
    // A rerun, and one that lost its cursor, write nothing.
    let created = sim_stat(&sim, "arm.relations.created").await;
    let lists = sim_stat(&sim, "arm.relations.list").await;
    let again = run_attach(&s).await;
    assert_eq!((again.related, again.unrelated), (0, 0), "{again}");
    assert_eq!(sim_stat(&sim, "arm.relations.list").await, lists, "alerts settled before are not planned again");
    s.store.delete(xdrsync::ports::Table::Cursors, &s.config.tenant_id, "alerts").await.unwrap();
    let fresh = run_attach(&s).await;
    assert_eq!((fresh.related, fresh.unrelated), (0, 0), "{fresh}");
    assert_eq!(sim_stat(&sim, "arm.relations.created").await, created, "no relation created twice");
    assert_eq!(sim_stat(&sim, "arm.relations.rewritten").await, 0);
}

#[tokio::test]
async fn a_late_alert_is_attached_once_the_rule_has_made_it() {
    let sim = start_sim(SimConfig::demo()).await;
    set_delay(&sim, 700);
    let s = services(&sim);
    let ids = seed(&sim, SeedSpec { count: 1, min_alerts: 2, max_alerts: 2, ..Default::default() });
    sync(&s, &ids[0]).await;
    assert_eq!(run_attach(&s).await.found, 0, "the rule has not run yet");
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    assert_eq!(run_attach(&s).await.related, 2);
    // Defender adds an alert later.
    let r = sim_post(&sim, &format!("/_sim/defender/incidents/{}/edit", ids[0]), json!({"addAlerts": 1})).await;
    assert!(r.status().is_success());
    sync(&s, &ids[0]).await;
    assert_eq!(run_attach(&s).await.related, 0, "not made yet");
    tokio::time::sleep(std::time::Duration::from_millis(900)).await;
    let report = run_attach(&s).await;
    assert_eq!(report.related, 1, "{report}");
    assert_eq!(alert_count(&sim, &s, &ids[0]).await, 3);
}

#[tokio::test]
async fn a_merge_moves_the_losers_alerts_to_the_survivor() {
    let sim = start_sim(SimConfig::demo()).await;
    let s = services(&sim);
    let ids = seed(&sim, SeedSpec { count: 2, min_alerts: 2, max_alerts: 3, ..Default::default() });
    for id in &ids {
        sync(&s, id).await;
    }
    run_attach(&s).await;
    let (loser, survivor) = (&ids[0], &ids[1]);
    let loser_alerts = sim.sim.world().alerts_of(loser).len();
    let survivor_alerts = sim.sim.world().alerts_of(survivor).len();
    assert_eq!(alert_count(&sim, &s, loser).await, loser_alerts);
    let r = sim_post(&sim, "/_sim/defender/merge", json!({"source": loser, "target": survivor})).await;
    assert!(r.status().is_success());
    sync(&s, loser).await;
    sync(&s, survivor).await;
    // Removing a relation needs Microsoft Sentinel Contributor (Responder may not delete).
    sim.sim.permissions.lock().unwrap().workspace_roles.insert("Microsoft Sentinel Contributor".into());
    let report = run_attach(&s).await;
    assert_eq!(report.unrelated, loser_alerts, "{report}");
    assert_eq!(report.related, loser_alerts, "{report}");
    assert_eq!(alert_count(&sim, &s, survivor).await, loser_alerts + survivor_alerts, "the survivor shows them all");
    assert_eq!(alert_count(&sim, &s, loser).await, 0, "the loser shows none");
    let again = run_attach(&s).await;
    assert_eq!((again.related, again.unrelated), (0, 0), "settled: {again}");
}

#[tokio::test]
async fn with_responder_only_a_moved_alert_reaches_the_survivor_and_stays_on_the_loser() {
    let sim = start_sim(SimConfig::demo()).await;
    let s = services(&sim);
    let ids = seed(&sim, SeedSpec { count: 2, min_alerts: 2, max_alerts: 2, ..Default::default() });
    for id in &ids {
        sync(&s, id).await;
    }
    run_attach(&s).await;
    let r = sim_post(&sim, "/_sim/defender/merge", json!({"source": ids[0], "target": ids[1]})).await;
    assert!(r.status().is_success());
    sync(&s, &ids[1]).await;
    let report = run_attach(&s).await;
    assert_eq!((report.related, report.unrelate_forbidden), (2, 2), "{report}");
    assert_eq!(alert_count(&sim, &s, &ids[1]).await, 4);
    assert_eq!(alert_count(&sim, &s, &ids[0]).await, 2, "left in place, logged");
}

#[tokio::test]
async fn without_a_role_that_may_query_the_workspace_the_run_fails_and_changes_nothing() {
    let sim = start_sim(SimConfig::demo()).await;
    let s = services(&sim);
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    sync(&s, &ids[0]).await;
    sim.sim.permissions.lock().unwrap().workspace_roles.clear();
    let e = attach(&s).await.expect_err("forbidden");
    assert!(e.to_string().contains("denied"), "{e}");
    assert_eq!(sim_stat(&sim, "arm.relations.created").await, 0);
}

#[tokio::test]
async fn check_probes_the_query_api_and_says_a_single_tenant_onboarded_workspace_needs_no_portal_mode() {
    let sim = start_sim(SimConfig::demo()).await;
    let mut vars = settings(&sim, None);
    vars.insert("XDRSYNC_ATTACH_ALERTS".into(), "true".into());
    vars.insert("XDRSYNC_DEFENDER_PORTAL_ONBOARDED".into(), "true".into());
    let mut s = app::build(config(&vars));
    s.store = Arc::new(xdrsync_sim::fakes::MemoryStore::new());
    s.queue = Arc::new(xdrsync_sim::fakes::MemoryQueue::new());
    let lines = xdrsync::check::run(&s).await;
    let query = lines.iter().find(|l| l.what.starts_with("Log Analytics query")).expect("a query line");
    assert!(query.ok, "{}", query.detail);
    let portal = lines.iter().find(|l| l.what == "Defender portal").expect("a portal line");
    assert!(portal.detail.contains("single-tenant setups need no defender-portal mode"), "{}", portal.detail);
    // Without a role that may query, the line names the role.
    sim.sim.permissions.lock().unwrap().workspace_roles.clear();
    let lines = xdrsync::check::run(&s).await;
    let query = lines.iter().find(|l| l.what.starts_with("Log Analytics query")).unwrap();
    assert!(!query.ok && query.detail.contains("Log Analytics Reader"), "{}", query.detail);
}

#[tokio::test]
async fn attaching_alerts_needs_the_workspace_id_and_says_so() {
    let sim = start_sim(SimConfig::demo()).await;
    let mut vars = settings(&sim, None);
    vars.insert("XDRSYNC_ATTACH_ALERTS".into(), "true".into());
    vars.remove("XDRSYNC_WORKSPACE_ID");
    let e = xdrsync::config::Config::from_vars(&vars).expect_err("a missing Workspace ID");
    assert_eq!(e.var, "XDRSYNC_WORKSPACE_ID");
    vars.insert("XDRSYNC_WORKSPACE_ID".into(), "soc-workspace".into());
    assert_eq!(xdrsync::config::Config::from_vars(&vars).expect_err("not a GUID").var, "XDRSYNC_WORKSPACE_ID");
    vars.insert("XDRSYNC_ATTACH_ALERTS".into(), "false".into());
    vars.remove("XDRSYNC_WORKSPACE_ID");
    assert!(xdrsync::config::Config::from_vars(&vars).is_ok(), "off by default, nothing more needed");
}
