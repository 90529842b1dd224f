//! The standalone HTTP surface: `xdrsync run` answers only `GET /api/health` and
//! `POST /api/sentinel/incidents`, on `XDRSYNC_HTTP_BIND`; every Functions invocation route is a
//! JSON 404 and runs nothing (the same envelope on the Functions handler does sync). A body over
//! the webhook's limit gets the documented JSON 413 on both servers; a caller without the key is
//! answered 401 from the headers, before any body is read.

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::{json, Value};
use support::*;
use xdrsync::domain::names::sentinel_incident_name;
use xdrsync::domain::work::{ChangeHint, WorkItem};
use xdrsync::standalone::{self, Runner};
use xdrsync::usecase::webhook::MAX_BODY_BYTES;
use xdrsync::usecase::Ports;
use xdrsync_sim::fakes::{MemoryQueue, MemoryStore};
use xdrsync_sim::sim::seed::SeedSpec;
use xdrsync_sim::sim::{RunningSim, SimConfig};

const KEY: &str = "test-webhook-key-0123456789";

/// A runner on 127.0.0.1 with in-memory storage whose poller never fires during a test.
async fn start_runner(sim: &RunningSim) -> (Runner, Arc<Ports>, Arc<MemoryQueue>) {
    let mut vars: HashMap<String, String> = settings(sim, None);
    vars.insert("XDRSYNC_HTTP_BIND".into(), "127.0.0.1".into());
    vars.insert("XDRSYNC_POLL_SCHEDULE".into(), "0 0 0 1 1 *".into());
    let mut ports = xdrsync::app::build(config(&vars));
    let queue = Arc::new(MemoryQueue::new());
    ports.store = Arc::new(MemoryStore::new());
    ports.queue = queue.clone();
    let services = Arc::new(ports);
    let runner = standalone::start(services.clone(), 0).await.expect("runner starts");
    (runner, services, queue)
}

fn base(runner: &Runner) -> String {
    format!("http://{}", runner.http_addr)
}

async fn json_of(r: reqwest::Response) -> (u16, String, Value) {
    let status = r.status().as_u16();
    let content_type = r.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    (status, content_type, r.json().await.unwrap_or(Value::Null))
}

fn sync_envelope(tenant: &str, incident_id: &str) -> Value {
    let msg = WorkItem::reconcile(tenant, incident_id, ChangeHint::Defender).to_json();
    json!({"Data": {"msg": msg}, "Metadata": {"DequeueCount": 1, "Id": "\"1\"", "sys": {"MethodName": "IncidentSync"}}})
}

#[tokio::test]
async fn standalone_binds_to_xdrsync_http_bind() {
    let sim = start_sim(SimConfig::demo()).await;
    let (runner, _, _) = start_runner(&sim).await;
    assert_eq!(runner.http_addr.ip(), std::net::Ipv4Addr::LOCALHOST);
    assert_ne!(runner.http_addr.port(), 0);
    runner.shutdown().await;
}

#[tokio::test]
async fn standalone_answers_404_to_every_functions_route_and_runs_nothing() {
    let sim = start_sim(SimConfig::demo()).await;
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    let (runner, services, queue) = start_runner(&sim).await;
    let tenant = services.config.tenant_id.clone();
    let url = base(&runner);
    let client = reqwest::Client::new();
    let timer = json!({"Data": {"timer": {"IsPastDue": false}}, "Metadata": {"sys": {"MethodName": "IncidentPoller"}}});
    let webhook = json!({"Data": {"req": {"Method": "POST", "Headers": {"Content-Type": ["application/json"],
        "x-xdrsync-key": [KEY]}, "Body": "{}"}}, "Metadata": {"sys": {"MethodName": "SentinelWebhook"}}});
    let health = json!({"Data": {"req": {"Method": "GET"}}, "Metadata": {"sys": {"MethodName": "Health"}}});
    let posts = [
        ("/IncidentSync", sync_envelope(&tenant, &ids[0])),
        ("/IncidentPoller", timer),
        ("/SentinelWebhook", webhook),
        ("/Health", health),
        ("/api/other", json!({})),
    ];
    for (path, envelope) in &posts {
        let r = client.post(format!("{url}{path}")).json(envelope).send().await.unwrap();
        let (status, content_type, body) = json_of(r).await;
        assert_eq!(status, 404, "POST {path}: {body}");
        assert_eq!(content_type, "application/json", "POST {path}");
        assert_eq!(body["error"]["code"], "NotFound", "POST {path}: {body}");
    }
    for path in ["/", "/api/other", "/IncidentSync", "/api/sentinel/incidents"] {
        let (status, _, body) = json_of(client.get(format!("{url}{path}")).send().await.unwrap()).await;
        assert_eq!(status, 404, "GET {path}: {body}");
        assert_eq!(body["error"]["code"], "NotFound", "GET {path}: {body}");
    }
    let (status, _, body) = json_of(client.post(format!("{url}/api/health")).send().await.unwrap()).await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("NotFound")), "POST /api/health: {body}");

    assert_eq!(sim_stat(&sim, "arm.incidents.put").await, 0, "no Sentinel write");
    assert!(sim.sim.world().sentinel.is_empty(), "nothing mirrored");
    assert!(queue.texts(&services.config.queue_name).is_empty(), "nothing enqueued");
    assert_eq!(runner.stats.polls.load(std::sync::atomic::Ordering::Relaxed), 0);
    runner.shutdown().await;

    // The same envelope on the Functions handler does reconcile: the 404 above is what kept it out.
    let functions = serve_router(xdrsync::functions::router(services.clone())).await;
    let r = client.post(format!("{functions}/IncidentSync")).json(&posts[0].1).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(sim_stat(&sim, "arm.incidents.put").await, 1);
    assert!(sim.sim.world().sentinel.contains_key(&sentinel_incident_name(&tenant, &ids[0])));
}

#[tokio::test]
async fn standalone_answers_the_public_routes() {
    let sim = start_sim(SimConfig::demo()).await;
    let (runner, _, _) = start_runner(&sim).await;
    let url = base(&runner);
    let client = reqwest::Client::new();
    let (status, content_type, body) = json_of(client.get(format!("{url}/api/health")).send().await.unwrap()).await;
    assert!(status == 200 || status == 503, "{status}: {body}");
    assert_eq!(content_type, "application/json");
    assert!(body["status"].is_string() && body["reasons"].is_array(), "{body}");
    assert!(body.get("details").is_none(), "anonymous callers get status and reasons only: {body}");
    let r = client
        .post(format!("{url}/api/sentinel/incidents"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    let (status, content_type, body) = json_of(r).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(content_type, "application/json");
    assert_eq!(body["error"]["code"], "Unauthorized");
    runner.shutdown().await;
}

async fn assert_json_413(url: &str, key: Option<&str>) {
    let mut req =
        reqwest::Client::new()
            .post(url)
            .header("content-type", "application/json")
            .body(vec![b' '; MAX_BODY_BYTES + 1]);
    if let Some(k) = key {
        req = req.header("x-xdrsync-key", k);
    }
    let (status, content_type, body) = json_of(req.send().await.unwrap()).await;
    assert_eq!(status, 413, "{url}: {body}");
    assert_eq!(content_type, "application/json", "{url}");
    assert_eq!(body["error"]["code"], "PayloadTooLarge", "{url}: {body}");
    let expected = format!("body is {} bytes; the limit is {MAX_BODY_BYTES}", MAX_BODY_BYTES + 1);
    assert_eq!(body["error"]["message"], expected.as_str(), "{url}: {body}");
}

#[tokio::test]
async fn a_body_over_the_limit_gets_the_json_413_on_both_servers() {
    let sim = start_sim(SimConfig::demo()).await;
    let (runner, services, queue) = start_runner(&sim).await;
    let functions = serve_router(xdrsync::functions::router(services.clone())).await;
    for server in [base(&runner), functions] {
        let url = format!("{server}/api/sentinel/incidents");
        assert_json_413(&url, Some(KEY)).await;
    }
    assert!(queue.texts(&services.config.queue_name).is_empty());
    runner.shutdown().await;
}

/// Sends a webhook request's head declaring a body, sends none of it, and reads the answer.
async fn head_only(addr: std::net::SocketAddr, key: Option<&str>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let key = key.map(|k| format!("x-xdrsync-key: {k}\r\n")).unwrap_or_default();
    let head = format!(
        "POST /api/sentinel/incidents HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{key}Content-Length: 1000\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut got = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), tcp.read(&mut got))
        .await
        .expect("answered from the headers, without waiting for the body")
        .unwrap();
    String::from_utf8_lossy(&got[..n]).into_owned()
}

#[tokio::test]
async fn the_key_is_checked_from_the_headers_before_any_body_is_read() {
    let sim = start_sim(SimConfig::demo()).await;
    let (runner, services, queue) = start_runner(&sim).await;
    for key in [None, Some("test-webhook-key-012345678X")] {
        let got = head_only(runner.http_addr, key).await;
        assert!(got.starts_with("HTTP/1.1 401"), "{key:?}: {got}");
        assert!(got.contains("\"Unauthorized\""), "{got}");
    }
    // With the key, the server does wait for the body it was promised.
    let waited =
        tokio::time::timeout(std::time::Duration::from_millis(500), head_only(runner.http_addr, Some(KEY))).await;
    assert!(waited.is_err(), "answered a keyed request before its body: {waited:?}");
    assert!(queue.texts(&services.config.queue_name).is_empty());
    runner.shutdown().await;
}
