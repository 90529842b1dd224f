//! Served health (`GET /api/health` standalone, the `Health` function through the
//! custom-handler protocol): anonymous traffic costs one assessment per few seconds, counted
//! with the storage call counters against Azurite; while storage does not answer, both modes
//! answer within 2 s, `unhealthy`, with the last known facts; a queue whose front has waited
//! long is `degraded` and `status` shows its age; a feature the host has no timer for is named.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;
use xdrsync::usecase::health_cache::{self, HealthCache};
use xdrsync::usecase::Ports;
use xdrsync_sim::sim::SimConfig;

const KEY: &str = "test-webhook-key-0123456789";

fn storage_calls(s: &Ports) -> u64 {
    let c = s.counters.snapshot();
    c.table + c.queue
}

/// The `Health` function invoked as the host does; returns the HTTP output's status and body.
async fn invoke_health(base: &str, key: Option<&str>) -> (u16, Value) {
    let headers = key.map_or(json!({}), |k| json!({"x-xdrsync-key": [k]}));
    let req = json!({"Data": {"req": {"Url": "http://localhost:7071/api/health", "Method": "GET", "Query": "{}", "Headers": headers, "Params": {}}},
                     "Metadata": {"sys": {"MethodName": "Health"}}});
    let r = reqwest::Client::new()
        .post(format!("{base}/Health"))
        .header("X-Azure-Functions-InvocationId", uuid::Uuid::new_v4().to_string())
        .json(&req)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the invocation itself succeeds");
    let body: Value = r.json().await.unwrap();
    let res = &body["Outputs"]["res"];
    let inner: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
    (res["statusCode"].as_u64().unwrap() as u16, inner)
}

async fn get_health(base: &str, key: Option<&str>) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(format!("{base}/api/health"));
    if let Some(k) = key {
        req = req.header("x-xdrsync-key", k);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test]
async fn anonymous_health_traffic_costs_one_assessment_per_few_seconds() {
    let az = Azurite::start();
    let sim = start_sim(SimConfig::demo()).await;
    let s = Arc::new(xdrsync::app::build(config(&settings(&sim, Some(&az.connection_string())))));
    s.store.ensure_tables().await.unwrap();
    s.queue.ensure_queue(&s.config.queue_name).await.unwrap();
    s.queue.send(&s.config.queue_name, "{}").await.unwrap();
    // What one assessment costs, measured with an uncached check.
    let before = storage_calls(&s);
    let h = xdrsync::usecase::health::check(&s, true).await;
    let one = storage_calls(&s) - before;
    assert!(one >= 5, "an assessment reads storage ({one} calls)");
    eprintln!("one assessment: {one} storage calls");
    let d = h.details.unwrap();
    assert!(d.storage_reachable, "{:?}", h.reasons);
    assert!(d.oldest_message_age_seconds.is_some_and(|a| (0..60).contains(&a)), "Azurite's peek gives the age");

    let base = serve_router(xdrsync::standalone::router(s.clone())).await;
    let before = storage_calls(&s);
    let answers = futures::future::join_all((0..30).map(|_| get_health(&base, None))).await;
    for _ in 0..10 {
        assert_eq!(get_health(&base, None).await.0, 200);
    }
    assert!(answers.iter().all(|(code, body)| *code == 200 && body["status"] == "healthy"), "{answers:?}");
    assert_eq!(storage_calls(&s) - before, one, "40 requests, one assessment");
    // In Functions mode the same cache serves the `Health` function.
    let functions = serve_router(xdrsync::functions::router(s.clone())).await;
    for _ in 0..10 {
        assert_eq!(invoke_health(&functions, None).await.0, 200);
    }
    assert_eq!(storage_calls(&s) - before, one, "still one assessment");
    assert!(health_cache::TTL <= Duration::from_secs(10), "a few seconds");
}

/// A storage endpoint that accepts connections and never answers.
async fn silent_storage() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    xdrsync_sim::azurite::connection_string(port, port)
}

#[tokio::test]
async fn health_answers_within_two_seconds_unhealthy_with_the_last_known_facts_while_storage_hangs() {
    let sim = start_sim(SimConfig::demo()).await;
    let vars = settings(&sim, None);
    // Facts gathered while storage answered (in memory here).
    let mut known = xdrsync::app::build(config(&vars));
    known.store = Arc::new(xdrsync_sim::fakes::MemoryStore::new());
    known.queue = Arc::new(xdrsync_sim::fakes::MemoryQueue::new());
    known.health_cache = Arc::new(HealthCache::with_ttl(Duration::ZERO));
    let h = health_cache::current(&known, true).await;
    assert_eq!(h.status, "healthy", "{:?}", h.reasons);
    // The same service, now on a storage account that never answers.
    let mut hung_vars = vars.clone();
    hung_vars.insert("AzureWebJobsStorage".into(), silent_storage().await);
    let mut hung = xdrsync::app::build(config(&hung_vars));
    hung.health_cache = known.health_cache.clone();
    let hung = Arc::new(hung);

    let standalone = serve_router(xdrsync::standalone::router(hung.clone())).await;
    let functions = serve_router(xdrsync::functions::router(hung.clone())).await;
    for mode in ["standalone", "functions"] {
        let began = Instant::now();
        let (code, body) = match mode {
            "standalone" => get_health(&standalone, Some(KEY)).await,
            _ => invoke_health(&functions, Some(KEY)).await,
        };
        let took = began.elapsed();
        eprintln!("{mode}: answered {code} in {took:?} while storage hangs");
        assert!(took < Duration::from_secs(2), "{mode}: answered after {took:?}");
        assert_eq!(code, 503, "{mode}: {body}");
        assert_eq!(body["status"], "unhealthy", "{mode}: {body}");
        assert_eq!(body["reasons"][0], "storage is unreachable", "{mode}: {body}");
        assert!(body["factsFrom"].is_string(), "{mode}: says when the facts are from: {body}");
        assert_eq!(body["details"]["storageReachable"], false, "{mode}: {body}");
        assert!(!body["details"]["feeds"].as_array().unwrap().is_empty(), "{mode}: last known feeds: {body}");
    }
    // Anonymous callers get the status and reasons only, as fast.
    let began = Instant::now();
    let (code, body) = get_health(&standalone, None).await;
    assert!(began.elapsed() < Duration::from_secs(2));
    assert_eq!((code, body.get("details")), (503, None), "{body}");
}

#[tokio::test]
async fn an_old_message_degrades_health_and_status_shows_its_age() {
    let sim = start_sim(SimConfig::demo()).await;
    let (s, queue) = services_with_fakes(&sim);
    let name = s.config.queue_name.clone();
    for _ in 0..3 {
        xdrsync::ports::WorkQueue::send(queue.as_ref(), &name, "{}").await.unwrap();
    }
    assert_eq!(xdrsync::usecase::health::check(&s, false).await.status, "healthy");
    queue.backdate(&name, Duration::from_secs(600));
    let h = xdrsync::usecase::health::check(&s, false).await;
    assert_eq!(h.status, "degraded", "{:?}", h.reasons);
    assert!(h.reasons.iter().any(|r| r.contains("oldest queue message has waited")), "{:?}", h.reasons);
    let st = xdrsync::ops::status::gather(&s).await;
    assert!(st.oldest_message_age_seconds.is_some_and(|a| a >= 600), "{st:?}");
    let text = xdrsync::ops::status::render(&st);
    assert!(text.contains("backlog 3 · oldest 10 min"), "{text}");
    assert!(text.contains("DEGRADED"), "{text}");
}

#[tokio::test]
async fn a_feature_the_host_has_no_timer_for_makes_served_health_unhealthy_naming_the_setting() {
    let sim = start_sim(SimConfig::demo()).await;
    let mut vars = settings(&sim, None);
    vars.insert("XDRSYNC_HUNTING_TABLES".into(), "DeviceProcessEvents".into());
    let cfg = config(&vars);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("functions");
    let given = xdrsync::functions::host_timers::given_functions(&root);
    let gaps = xdrsync::functions::host_timers::gaps(&cfg, |k| k == "XDRSYNC_POLL_SCHEDULE", given.as_deref());
    let (s, _) = services_with_fakes(&sim);
    s.health_cache.set_notes(gaps.iter().map(ToString::to_string).collect());
    let base = serve_router(xdrsync::functions::router(s)).await;
    let (code, body) = invoke_health(&base, None).await;
    assert_eq!(code, 503, "{body}");
    let first = body["reasons"][0].as_str().unwrap();
    assert!(first.contains("HuntingExport") && first.contains("XDRSYNC_HUNTING_SCHEDULE is not set"), "{body}");
}
