//! Native alerts and entities on mirrors, end to end on the simulator (ARCHITECTURE.md: “Native
//! alerts”): alert rows → the simulated analytics rule → SecurityAlerts → xdrsync relates them
//! → what an analyst sees through `POST incidents/{id}/alerts` and `/entities`; with many tenants
//! and a second workspace, one run per workspace.

mod support;

use std::sync::Arc;

use secrecy::ExposeSecret;
use serde_json::{json, Value};
use support::*;
use xdrsync::app;
use xdrsync::domain::alert_links::relation_name;
use xdrsync::domain::names::sentinel_incident_name;
use xdrsync::domain::work::{ChangeHint, WorkItem};
use xdrsync::usecase::attach_alerts::{attach, attach_workspaces, AttachReport};
use xdrsync::usecase::sync::reconcile;
use xdrsync::usecase::Ports;
use xdrsync_sim::sim::seed::SeedSpec;
use xdrsync_sim::sim::tenants::RunningTenantSims;
use xdrsync_sim::sim::{RunningSim, Sim, SimConfig};

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
    // The rule's run never comes by itself: the test steps it, so nothing races a clock.
    set_delay(&sim, 24 * 3600 * 1000);
    let s = services(&sim);
    let ids = seed(&sim, SeedSpec { count: 1, min_alerts: 2, max_alerts: 2, ..Default::default() });
    sync(&s, &ids[0]).await;
    assert_eq!(run_attach(&s).await.found, 0, "the rule has not run yet");
    xdrsync_sim::sim::alert_rule::run_now(&mut sim.sim.world());
    assert_eq!(run_attach(&s).await.related, 2);
    // Defender adds an alert later.
    let r = sim_post(&sim, &format!("/_sim/defender/incidents/{}/edit", ids[0]), json!({"addAlerts": 1})).await;
    assert!(r.status().is_success());
    sync(&s, &ids[0]).await;
    assert_eq!(run_attach(&s).await.related, 0, "not made yet");
    xdrsync_sim::sim::alert_rule::run_now(&mut sim.sim.world());
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

/// Three tenants numbering incidents alike, Fabrikam (the second) routed to a second workspace
/// with its own DCR, attach on.
async fn three_tenants_two_workspaces() -> (RunningTenantSims, Vec<String>, Ports) {
    let (sims, ids) = start_two_workspaces(3).await;
    let mut vars = two_workspace_settings(&sims, None, &ids, &["Contoso", "Fabrikam", "Northwind"], 1);
    vars.insert("XDRSYNC_ALERTS_ATTACH_DELAY_MINUTES".into(), "1".into());
    let mut s = app::build(config(&vars));
    s.store = Arc::new(xdrsync_sim::fakes::MemoryStore::new());
    s.queue = Arc::new(xdrsync_sim::fakes::MemoryQueue::new());
    (sims, ids, s)
}

/// Every mirror of every tenant, synced (the poll enqueues, the workers' job reconciles).
async fn mirror_all(s: &Ports) {
    xdrsync::usecase::jobs::poll(s).await.expect("polled");
    loop {
        let msgs = s.queue.receive(&s.config.queue_name, 32, std::time::Duration::from_secs(30)).await.unwrap();
        if msgs.is_empty() {
            return;
        }
        for m in msgs {
            xdrsync::usecase::jobs::sync_message(s, &m.text, u64::from(m.dequeue_count), &m.id).await;
            s.queue.delete(&s.config.queue_name, &m).await.unwrap();
        }
    }
}

fn stat(sim: &Sim, key: &str) -> u64 {
    sim.stats.snapshot().get(key).copied().unwrap_or(0)
}

/// The `(DefenderTenantId, DefenderIncidentId)` of every rule alert related to a mirror.
fn related_details(ws: &Sim, tenant: &str, id: &str) -> Vec<(String, String)> {
    let w = ws.world();
    xdrsync_sim::sim::alert_rule::related_alerts(&w, &sentinel_incident_name(tenant, id))
        .into_iter()
        .map(|a| (a.custom_detail("DefenderTenantId").unwrap(), a.custom_detail("DefenderIncidentId").unwrap()))
        .collect()
}

#[tokio::test]
async fn with_many_tenants_every_mirror_in_every_workspace_shows_its_own_tenants_alerts() {
    let (sims, tenants, s) = three_tenants_two_workspaces().await;
    let spec = SeedSpec { count: 2, min_alerts: 2, max_alerts: 3, ..Default::default() };
    let ids: Vec<Vec<String>> = tenants
        .iter()
        .map(|t| xdrsync_sim::sim::seed::seed(&mut sims.sims.tenant(t).unwrap().world(), t, &spec))
        .collect();
    assert_eq!(ids[0], ids[1], "incident ids overlap across tenants, on purpose");
    mirror_all(&s).await; // the tick also ran attach once, before the mirrors existed
    let runs = attach_workspaces(&s).await;
    assert_eq!(runs.len(), 2, "one run per workspace");
    for (ws, r) in &runs {
        let r = r.as_ref().unwrap_or_else(|e| panic!("{ws}: {e}"));
        assert!(r.related > 0, "{ws}: {r}");
    }
    let view = sims.primary();
    for (i, t) in tenants.iter().enumerate() {
        let scoped = s.for_tenant(t).unwrap();
        let ws = if i == 1 { &sims.sims.workspaces[0] } else { &sims.sims.primary };
        let tenant_sim = sims.sims.tenant(t).unwrap().clone();
        for id in &ids[i] {
            let expected = tenant_sim.world().alerts_of(id).len();
            assert_eq!(alert_count(&view, &scoped, id).await, expected, "tenant {i} incident {id} shows its alerts");
            let entities = list(&view, &scoped, id, "entities").await;
            assert!(!entities["entities"].as_array().unwrap().is_empty(), "tenant {i} incident {id} shows entities");
            let details = related_details(ws, t, id);
            assert_eq!(details.len(), expected);
            assert!(
                details.iter().all(|(tenant, incident)| tenant.eq_ignore_ascii_case(t) && incident == id),
                "only tenant {i}'s alerts of incident {id} are on its mirror: {details:?}"
            );
        }
    }
    // Fabrikam's alerts were made and queried in its own workspace, by resource id.
    let emea = &sims.sims.workspaces[0];
    assert!(stat(emea, "logquery.by_resource_id") > 0);
    assert!(emea
        .world()
        .rule
        .alerts
        .iter()
        .all(|a| a.custom_detail("DefenderTenantId").as_deref() == Some(tenants[1].as_str())));
    assert!(!sims
        .sims
        .primary
        .world()
        .rule
        .alerts
        .iter()
        .any(|a| a.custom_detail("DefenderTenantId").as_deref() == Some(tenants[1].as_str())));
    // A cursor per workspace, under the workspace's key; none in a tenant's partition.
    for w in s.each_workspace() {
        let key = xdrsync::state::RowKey::new(&w.config.workspace.key(), "alerts").unwrap();
        assert!(s.store.get(xdrsync::ports::Table::Cursors, &key.pk, &key.rk).await.unwrap().is_some());
    }
    for t in &tenants {
        assert!(s.store.get(xdrsync::ports::Table::Cursors, t, "alerts").await.unwrap().is_none());
    }
    // A rerun writes nothing anywhere.
    let created = stat(&sims.sims.primary, "arm.relations.created") + stat(emea, "arm.relations.created");
    for (ws, r) in attach_workspaces(&s).await {
        let r = r.unwrap();
        assert_eq!((r.related, r.unrelated), (0, 0), "{ws}: {r}");
    }
    assert_eq!(stat(&sims.sims.primary, "arm.relations.created") + stat(emea, "arm.relations.created"), created);
}

#[tokio::test]
async fn a_workspace_whose_query_is_refused_fails_alone_and_health_names_it() {
    let (sims, tenants, s) = three_tenants_two_workspaces().await;
    for t in &tenants {
        let spec = SeedSpec { count: 1, min_alerts: 2, max_alerts: 2, ..Default::default() };
        xdrsync_sim::sim::seed::seed(&mut sims.sims.tenant(t).unwrap().world(), t, &spec);
    }
    mirror_all(&s).await;
    // The second workspace no longer lets xdrsync query it.
    sims.sims.workspaces[0].permissions.lock().unwrap().workspace_roles.clear();
    let runs = attach_workspaces(&s).await;
    let (ok, failed): (Vec<_>, Vec<_>) = runs.iter().partition(|(_, r)| r.is_ok());
    assert_eq!(failed.len(), 1, "{runs:?}");
    assert_eq!(failed[0].0, "soc-emea");
    assert_eq!(ok[0].1.as_ref().unwrap().related, 4, "the default workspace's two tenants went on");
    let health = xdrsync::usecase::health::check(&s, true).await;
    assert!(
        health
            .reasons
            .iter()
            .any(|r| r.starts_with("Alert attach in soc-emea fails") && r.contains("Log Analytics Reader")),
        "{:?}",
        health.reasons
    );
    assert!(!health.reasons.iter().any(|r| r.contains("in soc-workspace")), "{:?}", health.reasons);
    let feeds = health.details.unwrap().feeds;
    let attach: Vec<_> = feeds.iter().filter(|f| f.feed == "alerts").collect();
    assert_eq!(attach.len(), 2, "one attach feed per workspace");
    // The second workspace's query API is strict as the service: an unknown workspace is a 404,
    // a token for another audience a 401.
    let token = s.tokens.token(&s.config.alerts.scope).await.unwrap();
    let arm = s.tokens.token(&s.config.arm_scope).await.unwrap();
    let body = json!({"query": "SecurityAlert", "timespan": "P1D"});
    let unknown = format!(
        "{}/v1/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-soc/providers/Microsoft.OperationalInsights/workspaces/nowhere/query",
        sims.base_url()
    );
    let r = reqwest::Client::new().post(&unknown).bearer_auth(token.expose_secret()).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let j: Value = r.json().await.unwrap();
    assert!(j["error"]["code"].is_string(), "{j}");
    let emea = format!("{}/v1{}/query", sims.base_url(), sims.sims.workspaces[0].config.workspace.resource_id());
    let r = reqwest::Client::new().post(&emea).bearer_auth(arm.expose_secret()).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401, "an ARM token is not for the query API");
    let by_guid =
        format!("{}/v1/workspaces/{}/query", sims.base_url(), sims.sims.workspaces[0].config.workspace.customer_id());
    let r = reqwest::Client::new().post(&by_guid).bearer_auth(token.expose_secret()).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 403, "the same workspace by its GUID, still without a role");
}
