//! Reconciling from the poller's list page (docs/sync.md, “Reconcile from the list page”): a burst
//! costs Graph list pages, not one read per incident; messages stay within the queue's 64 KiB
//! (base64) whatever an incident holds; a snapshot older than what was synced is read again,
//! never applied; a tenant whose expanded listing fails falls back to reads and remembers it.
//! Every message goes through the custom-handler protocol as the Functions host delivers it.

mod support;

use serde_json::{json, Value};
use support::*;
use xdrsync::domain::names::sentinel_incident_name;
use xdrsync::domain::snapshot::MAX_MESSAGE_TEXT_BYTES;
use xdrsync::domain::work::WorkItem;
use xdrsync_sim::sim::seed::SeedSpec;
use xdrsync_sim::sim::SimConfig;

fn timer_payload() -> Value {
    json!({
        "Data": {"timer": {"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": false}},
        "Metadata": {"sys": {"MethodName": "IncidentPoller", "UtcNow": "2026-11-28T07:00:00Z", "RandGuid": "0f8fad5b-d9cb-469f-a165-70867728950e"}}
    })
}

/// The host's queue-trigger request: `Data.msg` is the message text, JSON-quoted once more.
fn queue_payload(text: &str) -> Value {
    json!({
        "Data": {"msg": serde_json::to_string(text).unwrap()},
        "Metadata": {"DequeueCount": 1, "Id": "\"6c3b9c5a\"", "PopReceipt": "\"AgAAAA\"",
                     "InsertionTime": "2026-11-28T07:00:00+00:00", "sys": {"MethodName": "IncidentSync"}}
    })
}

/// Invokes `function` and requires a 200.
async fn call(base: &str, function: &str, body: &Value) {
    let (status, answer) = invoke(base, function, body).await;
    assert_eq!(status, 200, "{function}: {answer}");
}

/// Texts the poller added to the queue since `from`.
fn new_texts(queue: &xdrsync_sim::fakes::MemoryQueue, from: usize) -> Vec<String> {
    queue.texts("xdrsync-incidents").split_off(from)
}

fn base64_len(text: &str) -> usize {
    text.len().div_ceil(3) * 4
}

#[tokio::test]
async fn a_burst_is_mirrored_from_list_pages_with_a_read_only_for_paged_alerts() {
    let sim = start_sim(SimConfig::demo()).await;
    let (services, queue) = services_with_fakes(&sim);
    let tenant = services.config.tenant_id.clone();
    let base = serve_router(xdrsync::functions::router(services.clone())).await;
    // The first tick walks the initial lookback's (empty) windows; the burst comes after it.
    call(&base, "IncidentPoller", &timer_payload()).await;
    let before = sim_stat(&sim, "graph.requests").await;
    let mut ids = seed(&sim, SeedSpec { count: 119, max_alerts: 4, ..Default::default() });
    // One incident with more alerts than a list page expands (the simulator's bound is 100).
    ids.extend(seed(&sim, SeedSpec { count: 1, big_incidents: 1, big_alerts: 120, seed: 8, ..Default::default() }));

    call(&base, "IncidentPoller", &timer_payload()).await;
    let texts = new_texts(&queue, 0);
    assert_eq!(texts.len(), 120);
    let carried = texts.iter().filter(|t| WorkItem::parse(t).unwrap().snapshot.is_some()).count();
    assert_eq!(carried, 119, "all but the paged one carry their incident");
    for t in &texts {
        assert!(base64_len(t) <= 64 * 1024, "within the queue's 64 KiB on the wire");
    }
    for t in &texts {
        call(&base, "IncidentSync", &queue_payload(t)).await;
    }
    {
        let world = sim.sim.world();
        for id in &ids {
            assert!(world.sentinel.contains_key(&sentinel_incident_name(&tenant, id)), "{id} mirrored");
        }
    }
    assert_eq!(sim_stat(&sim, "graph.incidents.get").await, 1, "only the paged incident is read");
    assert_eq!(sim_stat(&sim, "graph.alerts.list").await, 0);
    let graph = sim_stat(&sim, "graph.requests").await - before;
    let stats: Vec<_> = sim.sim.stats.snapshot().into_iter().filter(|(k, _)| k.starts_with("graph.")).collect();
    assert!(graph as f64 / 120.0 <= 0.1, "Graph calls per incident: {graph}/120: {stats:?}");
    // The next tick, between full passes of the overlap, reads one page: nothing new on it.
    let lists = sim_stat(&sim, "graph.incidents.list").await;
    call(&base, "IncidentPoller", &timer_payload()).await;
    assert_eq!(sim_stat(&sim, "graph.incidents.list").await, lists + 1);
    // Delivered again (a repeated message), nothing is written and nothing read.
    let puts = sim_stat(&sim, "arm.incidents.put").await;
    for t in texts.iter().filter(|t| WorkItem::parse(t).unwrap().snapshot.is_some()).take(5) {
        call(&base, "IncidentSync", &queue_payload(t)).await;
    }
    assert_eq!(sim_stat(&sim, "arm.incidents.put").await, puts);
    assert_eq!(sim_stat(&sim, "graph.incidents.get").await, 1);
}

#[tokio::test]
async fn a_message_at_the_bound_carries_its_incident_and_one_byte_over_is_read_instead() {
    let sim = start_sim(SimConfig::demo()).await;
    let ids = seed(&sim, SeedSpec { count: 2, min_alerts: 1, max_alerts: 1, ..Default::default() });
    let (services, queue) = services_with_fakes(&sim);
    let tenant = services.config.tenant_id.clone();
    let base = serve_router(xdrsync::functions::router(services.clone())).await;
    call(&base, "IncidentPoller", &timer_payload()).await;
    let first = new_texts(&queue, 0);
    let len_of = |id: &str| first.iter().find(|t| WorkItem::parse(t).unwrap().incident_id == id).unwrap().len();
    // Pad each incident's alert so its message lands exactly on the bound, and one byte over.
    let pads = [MAX_MESSAGE_TEXT_BYTES - len_of(&ids[0]), MAX_MESSAGE_TEXT_BYTES - len_of(&ids[1]) + 1];
    {
        let mut w = sim.sim.world();
        for (id, pad) in ids.iter().zip(pads) {
            let alert = w.alerts_of(id)[0].id.clone();
            let description = w.alerts[&alert].description.clone() + &"x".repeat(pad);
            w.alerts.get_mut(&alert).unwrap().description = description;
            let now = w.now();
            w.incident_mut(id).unwrap().last_update_date_time = now;
        }
    }
    call(&base, "IncidentPoller", &timer_payload()).await;
    let texts = new_texts(&queue, first.len());
    assert_eq!(texts.len(), 2);
    let at = |id: &str| texts.iter().find(|t| WorkItem::parse(t).unwrap().incident_id == id).unwrap();
    assert_eq!(at(&ids[0]).len(), MAX_MESSAGE_TEXT_BYTES, "exactly at the bound");
    assert_eq!(base64_len(at(&ids[0])), 64 * 1024);
    assert!(WorkItem::parse(at(&ids[0])).unwrap().snapshot.is_some());
    assert!(WorkItem::parse(at(&ids[1])).unwrap().snapshot.is_none(), "over the bound: by id only");
    for t in &texts {
        call(&base, "IncidentSync", &queue_payload(t)).await;
    }
    assert_eq!(sim_stat(&sim, "graph.incidents.get").await, 1, "only the one over the bound is read");
    let w = sim.sim.world();
    for id in &ids {
        let mirror = &w.sentinel[&sentinel_incident_name(&tenant, id)];
        let alert = w.alerts_of(id)[0].id.clone();
        assert!(w.logs.values().flatten().any(|r| r["SystemAlertId"] == alert.as_str()), "{id}'s padded alert shipped");
        assert!(!mirror.writable.title.is_empty());
    }
}

#[tokio::test]
async fn a_snapshot_older_than_the_synced_version_is_read_again_never_applied() {
    let sim = start_sim(SimConfig::demo()).await;
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    let id = &ids[0];
    let (services, queue) = services_with_fakes(&sim);
    let tenant = services.config.tenant_id.clone();
    let name = sentinel_incident_name(&tenant, id);
    let base = serve_router(xdrsync::functions::router(services.clone())).await;
    call(&base, "IncidentPoller", &timer_payload()).await;
    let old = new_texts(&queue, 0).pop().unwrap();
    // Defender changes before the old message is delivered; the newer one is synced first.
    let r = sim_post(&sim, &format!("/_sim/defender/incidents/{id}/edit"), json!({"severity": "low"})).await;
    assert!(r.status().is_success());
    call(&base, "IncidentPoller", &timer_payload()).await;
    let newer = new_texts(&queue, 1).pop().unwrap();
    assert!(WorkItem::parse(&newer).unwrap().snapshot.is_some());
    call(&base, "IncidentSync", &queue_payload(&newer)).await;
    assert_eq!(sim.sim.world().sentinel[&name].writable.severity, "Low");
    assert_eq!(sim_stat(&sim, "graph.incidents.get").await, 0);
    // The old snapshot is older than what was synced: read again, and the mirror stays Low.
    call(&base, "IncidentSync", &queue_payload(&old)).await;
    assert_eq!(sim_stat(&sim, "graph.incidents.get").await, 1, "re-read instead of applied");
    assert_eq!(sim.sim.world().sentinel[&name].writable.severity, "Low");
}

#[tokio::test]
async fn an_expanded_listing_that_fails_falls_back_to_reads_and_is_left_off_for_the_tenant() {
    let sim = start_sim(SimConfig::demo()).await;
    sim.sim.options.lock().unwrap().graph_list_expand_fails_above = Some(0);
    let ids = seed(&sim, SeedSpec { count: 5, ..Default::default() });
    let (services, queue) = services_with_fakes(&sim);
    let tenant = services.config.tenant_id.clone();
    let base = serve_router(xdrsync::functions::router(services.clone())).await;
    call(&base, "IncidentPoller", &timer_payload()).await;
    let texts = new_texts(&queue, 0);
    assert_eq!(texts.len(), 5, "the poll still enqueued every incident");
    assert!(texts.iter().all(|t| WorkItem::parse(t).unwrap().snapshot.is_none()));
    let failed = sim_stat(&sim, "graph.incidents.list.expanded").await;
    assert!(failed >= 1);
    for t in &texts {
        call(&base, "IncidentSync", &queue_payload(t)).await;
    }
    assert_eq!(sim_stat(&sim, "graph.incidents.get").await, 5, "one read per incident");
    for id in &ids {
        assert!(sim.sim.world().sentinel.contains_key(&sentinel_incident_name(&tenant, id)));
    }
    // Remembered: the next tick lists without the expansion.
    seed(&sim, SeedSpec { count: 2, seed: 3, ..Default::default() });
    call(&base, "IncidentPoller", &timer_payload()).await;
    assert_eq!(new_texts(&queue, 5).len(), 2);
    assert_eq!(sim_stat(&sim, "graph.incidents.list.expanded").await, failed, "expansion not tried again");
}

/// Graph's documented example of incidents listed with their alerts (“List incidents”, example
/// 2) is read by the adapter as whole incidents, each carried in its message; the request asks
/// for `$expand=alerts` with the window's `$filter` and `$top=50`.
#[tokio::test]
async fn the_documented_expanded_list_page_is_read_as_whole_incidents() {
    use axum::extract::RawQuery;
    use axum::routing::get;
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/graph/incidents-list-expand-alerts.json");
    let page: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen = asked.clone();
    let app = axum::Router::new().route(
        "/v1.0/security/incidents",
        get(move |RawQuery(q): RawQuery| {
            seen.lock().unwrap().push(q.unwrap_or_default());
            let page = page.clone();
            async move { axum::Json(page) }
        }),
    );
    let base = serve_router(app).await;
    let sim = start_sim(SimConfig::demo()).await;
    let mut vars = settings(&sim, None);
    vars.insert("XDRSYNC_GRAPH_ENDPOINT".into(), base);
    let ports = xdrsync::app::build(config(&vars));
    let since = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let window = xdrsync::domain::cursor::Window { since, until: None };
    let got = ports.defender.list_incident_page(window, None).await.unwrap();
    assert_eq!(got.items.len(), 1);
    let full = got.items[0].full.clone().expect("whole incident");
    assert_eq!(full.id, "2972395");
    assert_eq!(full.complete_alerts().map(<[_]>::len), Some(1));
    let (item, text) = WorkItem::reconcile_listed("t", full, xdrsync::domain::work::ChangeHint::Defender);
    assert!(item.snapshot.is_some());
    let back = WorkItem::parse(&text).unwrap();
    assert_eq!(format!("{back:#?}"), format!("{item:#?}"), "round trip through the message");
    let q = asked.lock().unwrap()[0].clone();
    let q = urlencoding_decode(&q);
    assert!(q.contains("$expand=alerts") && q.contains("$top=50") && q.contains("lastUpdateDateTime ge"), "{q}");
}

fn urlencoding_decode(q: &str) -> String {
    url::form_urlencoded::parse(q.as_bytes()).map(|(k, v)| format!("{k}={v}&")).collect()
}
