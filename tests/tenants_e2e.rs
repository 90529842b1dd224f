//! Many Defender tenants into one Sentinel workspace, end to end against the simulator (one sim
//! per Defender tenant behind one address, with overlapping incident ids on purpose): mirrors
//! are distinct and show their tenant; Sentinel edits (sweep and webhook) reach only the right
//! tenant; one tenant's 403 or revoked consent is isolated and visible in per-tenant health;
//! routing to a second workspace; a removed tenant's work is acknowledged and reported; owners
//! across tenants.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use support::*;
use uuid::Uuid;
use xdrsync::app;
use xdrsync::domain::names::sentinel_incident_name;
use xdrsync::domain::work::{ChangeHint, WorkItem};
use xdrsync::usecase::jobs::{poll, sync_message, QueueVerdict};
use xdrsync::usecase::Ports;
use xdrsync_sim::fakes::{MemoryQueue, MemoryStore};
use xdrsync_sim::sim::seed::{seed, SeedSpec};
use xdrsync_sim::sim::tenants::{spawn_tenants, tenant_configs, RunningTenantSims};
use xdrsync_sim::sim::{SimConfig, SimUser};

const NAMES: [&str; 3] = ["Contoso", "Fabrikam", "Northwind"];

async fn start(extra_workspace: bool) -> (RunningTenantSims, Vec<String>) {
    let primary = SimConfig::demo();
    let tenants = tenant_configs(&primary, 3);
    let ids: Vec<String> = tenants.iter().map(|t| t.tenant_id.clone()).collect();
    let mut workspaces = Vec::new();
    if extra_workspace {
        let mut ws = primary.clone();
        ws.workspace.name = "soc-emea".into();
        ws.dcr_immutable_id = "dcr-00000000000000000000000000000002".into();
        workspaces.push(ws);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let sims = spawn_tenants(listener, primary, tenants, workspaces).await.expect("simulator starts");
    // Each customer tenant has its own users; Fabrikam has the MSSP's alice as a B2B guest.
    for (i, t) in ids.iter().enumerate() {
        let sim = sims.sims.tenant(t).unwrap();
        let domain = NAMES[i].to_ascii_lowercase();
        let mut users = vec![SimUser::new(&format!("admin@{domain}.example"), "Tenant Admin")];
        if i == 1 {
            let mut guest = SimUser::new("alice_contoso.com#EXT#@fabrikam.onmicrosoft.com", "Alice (guest)");
            guest.mail = "alice@contoso.com".into();
            users.push(guest);
        }
        sim.world().users = users;
    }
    (sims, ids)
}

fn vars(sims: &RunningTenantSims, tenants: &[String], only: Option<&[usize]>) -> HashMap<String, String> {
    let mut v = settings(&sims.primary(), None);
    let list: Vec<String> = tenants
        .iter()
        .enumerate()
        .filter(|(i, _)| only.is_none_or(|o| o.contains(i)))
        .map(|(i, t)| format!("{t}={}", NAMES[i]))
        .collect();
    v.insert("XDRSYNC_DEFENDER_TENANTS".into(), list.join(","));
    v
}

fn build(vars: &HashMap<String, String>, store: Arc<MemoryStore>, queue: Arc<MemoryQueue>) -> Ports {
    let mut s = app::build(config(vars));
    s.store = store;
    s.queue = queue;
    s
}

/// Runs queued work until the queue is empty; returns the verdicts.
async fn drain(s: &Ports) -> Vec<QueueVerdict> {
    let mut out = Vec::new();
    for _ in 0..50 {
        let msgs = s.queue.receive(&s.config.queue_name, 32, Duration::from_secs(30)).await.unwrap();
        if msgs.is_empty() {
            return out;
        }
        for m in msgs {
            let v = sync_message(s, &m.text, u64::from(m.dequeue_count), &m.id).await;
            s.queue.delete(&s.config.queue_name, &m).await.unwrap();
            out.push(v);
        }
    }
    panic!("the queue never emptied");
}

fn seed_all(sims: &RunningTenantSims, tenants: &[String], n: usize) -> Vec<Vec<String>> {
    tenants
        .iter()
        .map(|t| {
            let sim = sims.sims.tenant(t).unwrap();
            seed(&mut sim.world(), t, &SeedSpec { count: n, max_alerts: 2, ..Default::default() })
        })
        .collect()
}

fn mirror(sims: &RunningTenantSims, tenant: &str, id: &str) -> Option<xdrsync_sim::sim::model::SentinelRecord> {
    sims.sims.primary.world().sentinel.get(&sentinel_incident_name(tenant, id)).cloned()
}

/// A Sentinel severity other than the Defender one given, and what Defender then shows.
fn other_severity(defender: &str) -> (&'static str, &'static str) {
    if defender == "low" {
        ("High", "high")
    } else {
        ("Low", "low")
    }
}

fn labels(r: &xdrsync_sim::sim::model::SentinelRecord) -> Vec<String> {
    r.writable.labels.iter().map(|l| l.label_name.clone()).collect()
}

async fn control(sims: &RunningTenantSims, method: reqwest::Method, path: &str, body: Value) -> Value {
    sim_control(&sims.base_url(), method, path, body).await
}

#[tokio::test]
async fn three_tenants_with_the_same_ids_get_distinct_mirrors_and_edits_reach_only_their_tenant() {
    let (sims, tenants) = start(false).await;
    let ids = seed_all(&sims, &tenants, 3);
    assert_eq!(ids[0], ids[1], "the simulator's tenants number incidents alike, on purpose");
    let s = build(&vars(&sims, &tenants, None), Arc::new(MemoryStore::new()), Arc::new(MemoryQueue::new()));
    poll(&s).await.expect("every tenant polled");
    drain(&s).await;

    assert_eq!(sims.sims.primary.world().sentinel.len(), 9, "3 tenants × 3 incidents, none overwritten");
    for (i, t) in tenants.iter().enumerate() {
        let sim = sims.sims.tenant(t).unwrap();
        for id in &ids[i] {
            let m = mirror(&sims, t, id).expect("mirror of each tenant's incident");
            let d_title = sim.world().incident(id).unwrap().display_name.clone();
            assert_eq!(m.writable.title, format!("[{}] {d_title}", NAMES[i]));
            assert!(labels(&m).contains(&format!("Defender tenant: {}", NAMES[i])), "{:?}", labels(&m));
            let desc = m.writable.description.clone().unwrap_or_default();
            let link = desc.lines().next().unwrap_or_default();
            assert!(
                link.contains(&format!("/{id}/")) && link.ends_with(&format!("?tid={t}")),
                "deep link to the tenant: {link}"
            );
        }
    }

    // A Sentinel edit, found by the sweep, reaches only Fabrikam's incident with that id.
    let target = &ids[1][1];
    let name = sentinel_incident_name(&tenants[1], target);
    let mut new_labels = labels(&mirror(&sims, &tenants[1], target).unwrap());
    new_labels.push("VIP".into());
    let severity = |t: usize| sims.sims.tenant(&tenants[t]).unwrap().world().incident(target).unwrap().severity.clone();
    let before: Vec<String> = (0..3).map(severity).collect();
    let want = other_severity(&before[1]);
    let r = sim_post(
        &sims.primary(),
        &format!("/_sim/sentinel/incidents/{name}/edit"),
        json!({"severity": want.0, "labels": new_labels}),
    )
    .await;
    assert!(r.status().is_success());
    poll(&s).await.expect("second tick");
    drain(&s).await;
    let tags = |t: usize| sims.sims.tenant(&tenants[t]).unwrap().world().incident(target).unwrap().custom_tags.clone();
    assert_eq!(severity(1), want.1);
    assert_eq!(tags(1), vec!["VIP".to_string()], "the tenant label never becomes a Defender tag");
    for other in [0, 2] {
        assert_eq!(severity(other), before[other], "tenant {} untouched", NAMES[other]);
        assert!(tags(other).is_empty());
    }

    // The webhook path: Northwind's mirror edited, the playbook payload posted.
    let target = &ids[2][0];
    let name = sentinel_incident_name(&tenants[2], target);
    let sev = |t: usize| sims.sims.tenant(&tenants[t]).unwrap().world().incident(target).unwrap().severity.clone();
    let before: Vec<String> = (0..3).map(sev).collect();
    let want = other_severity(&before[2]);
    sim_post(&sims.primary(), &format!("/_sim/sentinel/incidents/{name}/edit"), json!({"severity": want.0})).await;
    let resource = {
        let w = sims.sims.primary.world();
        let r = &w.sentinel[&name];
        json!({"id": format!("{}/incidents/{name}", sims.sims.primary.sentinel_base()).replace("/incidents/", "/Incidents/"), "name": name.to_string(), "etag": r.etag})
    };
    let body = serde_json::to_vec(&json!({"object": resource})).unwrap();
    let answer = xdrsync::usecase::webhook::handle(
        &s,
        xdrsync::usecase::webhook::WebhookCall {
            key: Some("test-webhook-key-0123456789"),
            content_type: Some("application/json"),
            body: &body,
        },
    )
    .await;
    assert_eq!(answer.status, 202, "{}", answer.body);
    drain(&s).await;
    assert_eq!(sev(2), want.1);
    assert_eq!((sev(0), sev(1)), (before[0].clone(), before[1].clone()), "the others untouched");

    // Quiet afterwards: no ping-pong of the tenant label or titles.
    let puts = || sims.sims.primary.stats.snapshot().get("arm.incidents.put").copied().unwrap_or(0);
    let patches = || {
        tenants
            .iter()
            .map(|t| sims.sims.tenant(t).unwrap().stats.snapshot().get("graph.incidents.patch").copied().unwrap_or(0))
            .sum::<u64>()
    };
    let (p0, d0) = (puts(), patches());
    poll(&s).await.unwrap();
    drain(&s).await;
    poll(&s).await.unwrap();
    drain(&s).await;
    assert_eq!((puts(), patches()), (p0, d0), "nothing written when nothing changed");
}

#[tokio::test]
async fn one_tenants_403_and_another_ones_revoked_consent_stay_isolated_and_show_in_health() {
    let (sims, tenants) = start(false).await;
    let s = build(&vars(&sims, &tenants, None), Arc::new(MemoryStore::new()), Arc::new(MemoryQueue::new()));
    control(
        &sims,
        reqwest::Method::POST,
        &format!("/_sim/tenants/{}/permissions/withhold", tenants[1]),
        json!({"role": "SecurityIncident.ReadWrite.All"}),
    )
    .await;
    control(&sims, reqwest::Method::DELETE, &format!("/_sim/tenants/{}/consent", tenants[2]), json!({})).await;
    let ids = seed_all(&sims, &tenants, 2);
    let e = poll(&s).await.expect_err("two tenants fail");
    assert!(e.contains("Fabrikam") && e.contains("Northwind") && !e.contains("Contoso"), "{e}");
    drain(&s).await;
    for id in &ids[0] {
        assert!(mirror(&sims, &tenants[0], id).is_some(), "Contoso keeps syncing");
    }
    assert!(mirror(&sims, &tenants[1], &ids[1][0]).is_none());

    let h = xdrsync::usecase::health::check(&s, true).await;
    let v = serde_json::to_value(&h).unwrap();
    let tenant =
        |i: usize| v["tenants"].as_array().unwrap().iter().find(|t| t["tenantId"] == tenants[i]).unwrap().clone();
    assert_eq!(tenant(0)["status"], "healthy", "{v}");
    assert_eq!(tenant(1)["status"], "unhealthy", "{v}");
    assert!(tenant(1)["reasons"].to_string().contains("Graph 403"), "{v}");
    assert_eq!(tenant(2)["status"], "unhealthy", "{v}");
    assert_eq!(h.status, "degraded", "the others still sync: {v}");
    assert!(h.reasons.iter().any(|r| r.starts_with("tenant Fabrikam:")), "{:?}", h.reasons);
    assert_eq!(h.http_status(), 200);
    // `xdrsync status` shows the same, one row per tenant.
    let st = xdrsync::ops::status::gather(&s).await;
    assert_eq!(st.tenants.len(), 3);
    let text = xdrsync::ops::status::render(&st);
    let row =
        |name: &str| text.lines().find(|l| l.starts_with(&format!("tenant {name}"))).unwrap_or_default().to_string();
    assert!(row("Fabrikam").contains("unhealthy") && row("Fabrikam").contains("Graph 403"), "{text}");
    assert!(row("Contoso").contains("healthy") && !row("Contoso").contains("unhealthy"), "{text}");

    // Consent restored: Northwind catches up at the next tick.
    control(&sims, reqwest::Method::PUT, &format!("/_sim/tenants/{}/consent", tenants[2]), json!({})).await;
    let _ = poll(&s).await;
    drain(&s).await;
    assert!(mirror(&sims, &tenants[2], &ids[2][0]).is_some());
}

#[tokio::test]
async fn a_routed_tenant_goes_to_its_own_workspace_and_dcr() {
    let (sims, tenants) = start(true).await;
    let ws2 = sims.sims.workspaces[0].config.workspace.resource_id();
    let mut v = vars(&sims, &tenants, None);
    v.insert("XDRSYNC_TENANT_WORKSPACES".into(), format!("{}={ws2}|dcr-00000000000000000000000000000002", tenants[1]));
    let s = build(&v, Arc::new(MemoryStore::new()), Arc::new(MemoryQueue::new()));
    let ids = seed_all(&sims, &tenants, 2);
    poll(&s).await.expect("polled");
    drain(&s).await;
    let second = sims.sims.workspaces[0].clone();
    for id in &ids[1] {
        assert!(second.world().sentinel.contains_key(&sentinel_incident_name(&tenants[1], id)), "Fabrikam → soc-emea");
        assert!(mirror(&sims, &tenants[1], id).is_none(), "not in the default workspace");
    }
    for id in &ids[0] {
        assert!(mirror(&sims, &tenants[0], id).is_some());
    }
    let rows_second: usize = second.world().logs.values().map(Vec::len).sum();
    assert!(rows_second > 0, "Fabrikam's alert rows went to its own DCR");
    let rows_default: Vec<Value> = sims.sims.primary.world().logs.values().flatten().cloned().collect();
    assert!(rows_default.iter().all(|r| r["DefenderTenantId"] != tenants[1]), "no Fabrikam rows in the default DCR");

    // A Sentinel edit in the second workspace reaches Fabrikam (its own sweep).
    let name = sentinel_incident_name(&tenants[1], &ids[1][0]);
    let before = sims.sims.tenant(&tenants[1]).unwrap().world().incident(&ids[1][0]).unwrap().severity.clone();
    let want = other_severity(&before);
    {
        let mut w = second.world();
        let r = w.sentinel.get_mut(&name).unwrap();
        r.writable.severity = want.0.into();
        r.etag = format!("\"{}\"", Uuid::new_v4());
        let now = time::OffsetDateTime::now_utc();
        r.read_only.last_modified_time_utc = now;
    }
    poll(&s).await.expect("polled");
    drain(&s).await;
    let sev = sims.sims.tenant(&tenants[1]).unwrap().world().incident(&ids[1][0]).unwrap().severity.clone();
    assert_eq!(sev, want.1);
}

#[tokio::test]
async fn a_routed_workspace_in_another_region_gets_its_rows_through_its_own_endpoint() {
    let (sims, tenants) = start(true).await;
    let second = sims.sims.workspaces[0].clone();
    // The second workspace's data collection endpoint: its own address, counting what it gets.
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    let dce = serve_router(sims.sims.workspace_endpoint(0).layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                next.run(req).await
            }
        },
    )))
    .await;
    let ws2 = second.config.workspace.resource_id();
    let mut v = vars(&sims, &tenants, None);
    v.insert(
        "XDRSYNC_TENANT_WORKSPACES".into(),
        format!("{}={ws2}|dcr-00000000000000000000000000000002|{dce}", tenants[1]),
    );
    let s = build(&v, Arc::new(MemoryStore::new()), Arc::new(MemoryQueue::new()));
    seed_all(&sims, &tenants, 2);
    poll(&s).await.expect("polled");
    drain(&s).await;
    let rows_second: Vec<Value> = second.world().logs.values().flatten().cloned().collect();
    assert!(!rows_second.is_empty() && rows_second.iter().all(|r| r["DefenderTenantId"] == tenants[1]));
    assert!(calls.load(std::sync::atomic::Ordering::SeqCst) > 0, "Fabrikam's rows went through its own endpoint");
    let rows_default: Vec<Value> = sims.sims.primary.world().logs.values().flatten().cloned().collect();
    assert!(!rows_default.is_empty(), "the other tenants' rows went to the default endpoint");
    assert!(rows_default.iter().all(|r| r["DefenderTenantId"] != tenants[1]));
}

#[tokio::test]
async fn a_removed_tenants_mirrors_stay_its_work_is_acknowledged_and_it_is_reported() {
    let (sims, tenants) = start(false).await;
    let store = Arc::new(MemoryStore::new());
    let queue = Arc::new(MemoryQueue::new());
    let s = build(&vars(&sims, &tenants, None), store.clone(), queue.clone());
    let ids = seed_all(&sims, &tenants, 1);
    poll(&s).await.unwrap();
    drain(&s).await;
    // Restart without Northwind.
    let s = build(&vars(&sims, &tenants, Some(&[0, 1])), store, queue);
    let item = WorkItem::reconcile(&tenants[2], &ids[2][0], ChangeHint::Sentinel);
    let verdict = sync_message(&s, &item.to_json(), 1, "m-1").await;
    assert!(matches!(&verdict, QueueVerdict::Drop(m) if m.contains("XDRSYNC_DEFENDER_TENANTS")), "{verdict:?}");
    assert!(mirror(&sims, &tenants[2], &ids[2][0]).is_some(), "its mirror stays");
    let scoped = s.partition_of(&tenants[2]);
    let records = xdrsync::usecase::failures::list(&scoped).await.unwrap();
    assert_eq!(records.len(), 1, "recorded where an operator sees it");
    let h = xdrsync::usecase::health::check(&s, false).await;
    let v = serde_json::to_value(&h).unwrap();
    let removed = v["tenants"].as_array().unwrap().iter().find(|t| t["tenantId"] == tenants[2]).unwrap().clone();
    assert_eq!(removed["status"], "removed", "{v}");
    assert_eq!(removed["displayName"], "Northwind");
    assert_eq!(removed["failures"], 1, "its recorded failure is counted, not hidden: {removed}");
    // The tick no longer polls it and works.
    poll(&s).await.expect("two tenants polled");
}

#[tokio::test]
async fn a_sentinel_owner_is_assigned_where_the_tenant_knows_the_user_else_kept_in_a_comment() {
    let (sims, tenants) = start(false).await;
    let s = build(&vars(&sims, &tenants, None), Arc::new(MemoryStore::new()), Arc::new(MemoryQueue::new()));
    let ids = seed_all(&sims, &tenants, 1);
    poll(&s).await.unwrap();
    drain(&s).await;
    for t in [0, 1] {
        let name = sentinel_incident_name(&tenants[t], &ids[t][0]);
        let r = sim_post(
            &sims.primary(),
            &format!("/_sim/sentinel/incidents/{name}/edit"),
            json!({"ownerUpn": "alice@contoso.com"}),
        )
        .await;
        assert!(r.status().is_success());
    }
    poll(&s).await.unwrap();
    drain(&s).await;
    let incident = |t: usize| sims.sims.tenant(&tenants[t]).unwrap().world().incident(&ids[t][0]).unwrap().clone();
    assert_eq!(incident(1).assigned_to.as_deref(), Some("alice@contoso.com"), "Fabrikam has alice as a B2B guest");
    let contoso = incident(0);
    assert_eq!(contoso.assigned_to, None, "Contoso does not know alice: assignment kept");
    let notes: Vec<&str> =
        contoso.comments.iter().map(|c| c.comment.as_str()).filter(|c| c.contains("alice@contoso.com")).collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(notes[0].starts_with("[Sentinel] "));
    // Quiet afterwards: the owner is not asked again, the note not repeated, Sentinel keeps alice.
    poll(&s).await.unwrap();
    drain(&s).await;
    poll(&s).await.unwrap();
    drain(&s).await;
    assert_eq!(incident(0).comments.iter().filter(|c| c.comment.contains("alice@contoso.com")).count(), 1);
    let m = mirror(&sims, &tenants[0], &ids[0][0]).unwrap();
    assert!(m.writable.owner.is_some(), "Sentinel keeps its owner");
}

/// The whole product: `xdrsync run` (scheduler, queue workers, HTTP) on Azurite, three tenants,
/// Sentinel automation calling the webhook; one tenant's consent revoked shows in
/// `GET /api/health` while the others keep syncing.
#[tokio::test]
async fn standalone_with_azurite_three_tenants_and_health_over_http() {
    let az = Azurite::start();
    let (sims, tenants) = start(false).await;
    let mut v = vars(&sims, &tenants, None);
    v.insert("AzureWebJobsStorage".into(), az.connection_string());
    v.insert("XDRSYNC_POLL_SCHEDULE".into(), "* * * * * *".into());
    v.insert("XDRSYNC_QUEUE_VISIBILITY_SECONDS".into(), "2".into());
    let services = Arc::new(app::build(config(&v)));
    let runner = xdrsync::standalone::start(services.clone(), 0).await.expect("runner starts");
    *sims.sims.primary.automation.lock().unwrap() = Some(xdrsync_sim::sim::Automation {
        url: format!("http://127.0.0.1:{}/api/sentinel/incidents", runner.http_addr.port()),
        key: "test-webhook-key-0123456789".into(),
        delay_ms: 50,
    });
    let ids = seed_all(&sims, &tenants, 2);
    eventually(60, "every tenant's incidents mirrored", || {
        tenants.iter().zip(&ids).all(|(t, list)| list.iter().all(|id| mirror(&sims, t, id).is_some()))
    })
    .await;

    // A Sentinel edit on Contoso's mirror reaches Contoso only (webhook or sweep).
    let name = sentinel_incident_name(&tenants[0], &ids[0][0]);
    let before: Vec<String> = (0..3)
        .map(|t| sims.sims.tenant(&tenants[t]).unwrap().world().incident(&ids[t][0]).unwrap().severity.clone())
        .collect();
    let want = other_severity(&before[0]);
    let r =
        sim_post(&sims.primary(), &format!("/_sim/sentinel/incidents/{name}/edit"), json!({"severity": want.0})).await;
    assert!(r.status().is_success());
    let severity =
        |t: usize| sims.sims.tenant(&tenants[t]).unwrap().world().incident(&ids[t][0]).unwrap().severity.clone();
    eventually(30, "Contoso's incident edited", || severity(0) == want.1).await;
    assert_eq!(severity(1), before[1]);
    assert_eq!(severity(2), before[2]);

    control(&sims, reqwest::Method::DELETE, &format!("/_sim/tenants/{}/consent", tenants[1]), json!({})).await;
    let url = format!("http://{}/api/health", runner.http_addr);
    let health = wait_for(30, "Fabrikam unhealthy in health", || {
        let url = url.clone();
        async move {
            let v: Value = reqwest::Client::new()
                .get(&url)
                .header("x-xdrsync-key", "test-webhook-key-0123456789")
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let fabrikam = v["tenants"].as_array()?.iter().find(|t| t["displayName"] == "Fabrikam")?.clone();
            (fabrikam["status"] == "unhealthy").then_some(v)
        }
    })
    .await;
    assert_eq!(health["status"], "degraded", "{health}");
    let others: Vec<&Value> =
        health["tenants"].as_array().unwrap().iter().filter(|t| t["displayName"] != "Fabrikam").collect();
    assert!(others.iter().all(|t| t["status"] == "healthy"), "{health}");
    // Contoso keeps syncing while Fabrikam is locked out.
    let more = seed(
        &mut sims.sims.tenant(&tenants[0]).unwrap().world(),
        &tenants[0],
        &SeedSpec { count: 1, max_alerts: 1, ..Default::default() },
    );
    eventually(30, "Contoso's new incident mirrored", || mirror(&sims, &tenants[0], &more[0]).is_some()).await;
    runner.shutdown().await;
}

#[tokio::test]
async fn check_probes_each_routed_dcr_and_flags_a_route_without_one_when_alerts_are_attached() {
    let (sims, tenants) = start(true).await;
    let second = sims.sims.workspaces[0].clone();
    let ws2 = second.config.workspace.resource_id();
    let mut v = vars(&sims, &tenants, None);
    v.insert("XDRSYNC_ATTACH_ALERTS".into(), "true".into());
    v.insert("XDRSYNC_TENANT_WORKSPACES".into(), format!("{}={ws2}|dcr-00000000000000000000000000000002", tenants[1]));
    let s = build(&v, Arc::new(MemoryStore::new()), Arc::new(MemoryQueue::new()));
    let lines = xdrsync::check::run(&s).await;
    let routed = lines.iter().find(|l| l.what == "Logs Ingestion of soc-emea").expect("the routed DCR is probed");
    assert!(routed.ok, "{}", routed.detail);
    assert!(!lines.iter().any(|l| l.what.starts_with("native alerts of tenant")), "the route has its DCR");

    // The routed DCR refuses xdrsync's identity: check names the role.
    second.permissions.lock().unwrap().dcr_roles.clear();
    let lines = xdrsync::check::run(&s).await;
    let routed = lines.iter().find(|l| l.what == "Logs Ingestion of soc-emea").unwrap();
    assert!(!routed.ok && routed.detail.contains("Monitoring Metrics Publisher"), "{}", routed.detail);

    // Routed without its own DCR: its alert rows would reach the default workspace's rule.
    v.insert("XDRSYNC_TENANT_WORKSPACES".into(), format!("{}={ws2}", tenants[1]));
    let s = build(&v, Arc::new(MemoryStore::new()), Arc::new(MemoryQueue::new()));
    let lines = xdrsync::check::alerts::lines(&s).await;
    let flagged = lines.iter().find(|l| l.what == format!("native alerts of tenant {}", tenants[1])).expect("flagged");
    assert!(!flagged.ok && flagged.detail.contains("|dcr-"), "{}", flagged.detail);
}
