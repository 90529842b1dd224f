//! The custom-handler protocol, driven as the Functions host drives it: `GET /` readiness,
//! `POST /{FunctionName}` with `{Data, Metadata}`, replies `{Outputs, Logs, ReturnValue}`;
//! JSON-quoted queue text; non-2xx only when nothing could be recorded; the real binary serving on
//! FUNCTIONS_CUSTOMHANDLER_PORT with no subcommand.

mod support;

use serde_json::{json, Value};
use support::*;
use xdrsync::domain::names::sentinel_incident_name;
use xdrsync::domain::work::{ChangeHint, WorkItem};
use xdrsync_sim::sim::seed::SeedSpec;
use xdrsync_sim::sim::{FaultKind, FaultRule, SimConfig};

fn timer_payload() -> Value {
    json!({
        "Data": {"timer": {"Schedule": {"AdjustForDST": true}, "ScheduleStatus": null, "IsPastDue": false}},
        "Metadata": {"sys": {"MethodName": "IncidentPoller", "UtcNow": "2026-11-28T07:00:00Z", "RandGuid": "0f8fad5b-d9cb-469f-a165-70867728950e"}}
    })
}

fn queue_payload(message: Value, dequeue_count: u32) -> Value {
    json!({
        "Data": {"msg": message},
        "Metadata": {"DequeueCount": dequeue_count, "Id": "\"6c3b9c5a\"", "PopReceipt": "\"AgAAAA\"",
                     "InsertionTime": "2026-11-28T07:00:00+00:00", "sys": {"MethodName": "IncidentSync"}}
    })
}

fn assert_envelope(v: &Value) {
    assert!(v.get("Outputs").is_some_and(Value::is_object), "Outputs: {v}");
    assert!(v.get("Logs").is_some_and(Value::is_array), "Logs: {v}");
    assert!(v.get("ReturnValue").is_some(), "ReturnValue: {v}");
}

#[tokio::test]
async fn timer_invocation_polls_and_enqueues_json_object_messages() {
    let sim = start_sim(SimConfig::demo()).await;
    seed(&sim, SeedSpec { count: 7, ..Default::default() });
    let (services, queue) = services_with_fakes(&sim);
    let base = serve_router(xdrsync::functions::router(services.clone())).await;
    assert_eq!(reqwest::get(&base).await.unwrap().status(), 200, "readiness");

    let (status, body) = invoke(&base, "IncidentPoller", &timer_payload()).await;
    assert_eq!(status, 200);
    assert_envelope(&body);
    let texts = queue.texts("xdrsync-incidents");
    assert_eq!(texts.len(), 7);
    for t in &texts {
        assert!(t.starts_with('{'), "messages are JSON objects, never bare strings: {t}");
        WorkItem::parse(t).unwrap();
    }
    // A second tick with nothing new enqueues nothing.
    invoke(&base, "IncidentPoller", &timer_payload()).await;
    assert_eq!(queue.texts("xdrsync-incidents").len(), 7);
}

#[tokio::test]
async fn queue_invocation_accepts_json_quoted_text_raw_text_and_objects() {
    let sim = start_sim(SimConfig::demo()).await;
    let ids = seed(&sim, SeedSpec { count: 3, ..Default::default() });
    let (services, _) = services_with_fakes(&sim);
    let base = serve_router(xdrsync::functions::router(services.clone())).await;
    let tenant = services.config.tenant_id.clone();
    let item = |id: &str| WorkItem::reconcile(&tenant, id, ChangeHint::Defender);

    // 1. The host's usual form: the message text JSON-quoted once more.
    let quoted = Value::String(serde_json::to_string(&item(&ids[0]).to_json()).unwrap());
    // 2. Plain message text.
    let plain = Value::String(item(&ids[1]).to_json());
    // 3. Already an object.
    let object: Value = serde_json::from_str(&item(&ids[2]).to_json()).unwrap();
    for msg in [quoted, plain, object] {
        let (status, body) = invoke(&base, "IncidentSync", &queue_payload(msg, 1)).await;
        assert_eq!(status, 200, "{body}");
        assert_envelope(&body);
    }
    let world = sim.sim.world();
    for id in &ids {
        assert!(world.sentinel.contains_key(&sentinel_incident_name(&tenant, id)), "incident {id} mirrored");
    }
}

#[tokio::test]
async fn a_retryable_failure_is_recorded_and_given_back_canonical_with_a_delay_not_a_host_redelivery() {
    let sim = start_sim(SimConfig::demo()).await;
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    let (services, queue) = services_with_fakes(&sim);
    let base = serve_router(xdrsync::functions::router(services.clone())).await;
    services.tokens.token(&services.config.arm_scope).await.unwrap();
    sim.sim.faults.set(vec![FaultRule {
        api: "arm".into(),
        rate: 1.0,
        kind: FaultKind::Status { status: 500 },
        retry_after_secs: None,
        remaining: None,
    }]);
    let item = WorkItem::reconcile(&services.config.tenant_id, &ids[0], ChangeHint::Defender);
    // Exactly as the host serialises queue data: the message text JSON-quoted once more.
    let msg = Value::String(serde_json::to_string(&item.to_json()).unwrap());
    let (status, body) = invoke(&base, "IncidentSync", &queue_payload(msg, 1)).await;
    assert_eq!(status, 200, "no delivery of the host spent on an outage: {body}");
    assert_envelope(&body);
    assert!(body["Logs"][0].as_str().unwrap().contains(&ids[0]));
    assert!(sim.sim.world().sentinel.is_empty());
    assert_eq!(queue.texts("xdrsync-incidents"), vec![item.to_json()], "the canonical item, never the host's text");
    let records = xdrsync::usecase::failures::list(&services).await.unwrap();
    assert_eq!(records.len(), 1, "recorded in Failures");
    assert_eq!(records[0].attempts, 1);
}

#[tokio::test]
async fn a_failure_nothing_can_record_answers_non_2xx_so_the_host_redelivers() {
    let sim = start_sim(SimConfig::demo()).await;
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    let (services, _) = services_with_fakes(&sim);
    let mut s = (*services).clone();
    s.store = std::sync::Arc::new(Unreachable);
    s.queue = std::sync::Arc::new(Unreachable);
    let base = serve_router(xdrsync::functions::router(std::sync::Arc::new(s))).await;
    let item = WorkItem::reconcile(&services.config.tenant_id, &ids[0], ChangeHint::Defender);
    let msg = Value::String(serde_json::to_string(&item.to_json()).unwrap());
    let (status, body) = invoke(&base, "IncidentSync", &queue_payload(msg, 1)).await;
    assert!(status >= 500, "storage down: the host keeps the message ({status}) {body}");
    assert_envelope(&body);
    let (status, _) = invoke(&base, "IncidentSync", &queue_payload(json!("abcd"), 1)).await;
    assert!(status >= 500, "not a work item, but the poison queue is unreachable: kept ({status})");
}

/// Storage that does not answer.
struct Unreachable;

fn down() -> xdrsync::error::PortError {
    xdrsync::error::PortError::unavailable("storage", "connection refused")
}

#[async_trait::async_trait]
impl xdrsync::ports::StateStore for Unreachable {
    async fn ensure_tables(&self) -> Result<(), xdrsync::error::PortError> {
        Err(down())
    }
    async fn get(
        &self,
        _: xdrsync::ports::Table,
        _: &str,
        _: &str,
    ) -> Result<Option<(xdrsync::ports::Entity, xdrsync::ports::ETag)>, xdrsync::error::PortError> {
        Err(down())
    }
    async fn insert(
        &self,
        _: xdrsync::ports::Table,
        _: &xdrsync::ports::Entity,
    ) -> Result<xdrsync::ports::ETag, xdrsync::error::PortError> {
        Err(down())
    }
    async fn replace(
        &self,
        _: xdrsync::ports::Table,
        _: &xdrsync::ports::Entity,
        _: &xdrsync::ports::ETag,
    ) -> Result<xdrsync::ports::ETag, xdrsync::error::PortError> {
        Err(down())
    }
    async fn upsert(
        &self,
        _: xdrsync::ports::Table,
        _: &xdrsync::ports::Entity,
    ) -> Result<(), xdrsync::error::PortError> {
        Err(down())
    }
    async fn upsert_many(
        &self,
        _: xdrsync::ports::Table,
        _: &[xdrsync::ports::Entity],
    ) -> Result<(), xdrsync::error::PortError> {
        Err(down())
    }
    async fn delete(&self, _: xdrsync::ports::Table, _: &str, _: &str) -> Result<(), xdrsync::error::PortError> {
        Err(down())
    }
    async fn query_partition(
        &self,
        _: xdrsync::ports::Table,
        _: &str,
    ) -> Result<Vec<xdrsync::ports::Entity>, xdrsync::error::PortError> {
        Err(down())
    }
}

#[async_trait::async_trait]
impl xdrsync::ports::WorkQueue for Unreachable {
    async fn ensure_queue(&self, _: &str) -> Result<(), xdrsync::error::PortError> {
        Err(down())
    }
    async fn send_later(&self, _: &str, _: &str, _: std::time::Duration) -> Result<(), xdrsync::error::PortError> {
        Err(down())
    }
    async fn receive(
        &self,
        _: &str,
        _: u8,
        _: std::time::Duration,
    ) -> Result<Vec<xdrsync::ports::QueueMessage>, xdrsync::error::PortError> {
        Err(down())
    }
    async fn delete(&self, _: &str, _: &xdrsync::ports::QueueMessage) -> Result<(), xdrsync::error::PortError> {
        Err(down())
    }
    async fn release(
        &self,
        _: &str,
        _: &xdrsync::ports::QueueMessage,
        _: std::time::Duration,
    ) -> Result<(), xdrsync::error::PortError> {
        Err(down())
    }
    async fn approximate_len(&self, _: &str) -> Result<usize, xdrsync::error::PortError> {
        Err(down())
    }
    async fn peek_oldest_inserted(&self, _: &str) -> Result<Option<time::OffsetDateTime>, xdrsync::error::PortError> {
        Err(down())
    }
}

#[tokio::test]
async fn permanently_bad_messages_are_acknowledged_and_change_nothing() {
    let sim = start_sim(SimConfig::demo()).await;
    seed(&sim, SeedSpec { count: 1, ..Default::default() });
    let (services, queue) = services_with_fakes(&sim);
    let base = serve_router(xdrsync::functions::router(services.clone())).await;
    let other_tenant =
        WorkItem::reconcile("00000000-0000-0000-0000-000000000009", "1001", ChangeHint::Defender).to_json();
    for msg in [json!("abcd"), json!("{\"kind\":\"explode\"}"), json!(other_tenant), json!(42)] {
        let (status, body) = invoke(&base, "IncidentSync", &queue_payload(msg.clone(), 1)).await;
        assert_eq!(status, 200, "{msg}: {body}");
        assert_envelope(&body);
        assert!(!body["Logs"].as_array().unwrap().is_empty());
    }
    assert_eq!(sim_stat(&sim, "arm.incidents.put").await, 0);
    assert!(sim.sim.world().sentinel.is_empty());
    // What is not a work item is in the poison queue at once, where health and `status` count it.
    assert_eq!(queue.texts("xdrsync-incidents-poison"), vec!["abcd", "{\"kind\":\"explode\"}", "42"]);
    // The other tenant's item is a work item: recorded in its partition, not poisoned.
    let other = services.partition_of("00000000-0000-0000-0000-000000000009");
    assert_eq!(xdrsync::usecase::failures::list(&other).await.unwrap().len(), 1);
    // A malformed envelope is the host's bug, not a message: a 400 with a reason.
    let r = reqwest::Client::new().post(format!("{base}/IncidentSync")).body("not json").send().await.unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn health_in_payload_mode_returns_an_http_output_binding() {
    let sim = start_sim(SimConfig::demo()).await;
    let (services, _) = services_with_fakes(&sim);
    let base = serve_router(xdrsync::functions::router(services)).await;
    let req = json!({"Data": {"req": {"Url": "http://localhost:7071/api/health", "Method": "GET", "Query": "{}", "Headers": {}, "Params": {}}},
                     "Metadata": {"sys": {"MethodName": "Health"}}});
    let (status, body) = invoke(&base, "Health", &req).await;
    assert_eq!(status, 200);
    let res = &body["Outputs"]["res"];
    assert_eq!(res["statusCode"], 200);
    let inner: Value = serde_json::from_str(res["body"].as_str().unwrap()).unwrap();
    assert_eq!(inner["status"], "healthy");
    assert!(inner.get("details").is_none(), "anonymous: status and reasons only: {inner}");
    // With the webhook key in the forwarded headers, the details.
    let mut keyed = req.clone();
    keyed["Data"]["req"]["Headers"] = json!({"x-xdrsync-key": ["test-webhook-key-0123456789"]});
    let (_, body) = invoke(&base, "Health", &keyed).await;
    let inner: Value = serde_json::from_str(body["Outputs"]["res"]["body"].as_str().unwrap()).unwrap();
    assert_eq!(inner["details"]["storageReachable"], true, "{inner}");
}

#[tokio::test]
async fn the_binary_serves_the_protocol_on_functions_customhandler_port_by_default() {
    let sim = start_sim(SimConfig::demo()).await;
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    let az = Azurite::start();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut vars = settings(&sim, Some(&az.connection_string()));
    vars.insert("FUNCTIONS_CUSTOMHANDLER_PORT".into(), port.to_string());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_xdrsync"))
        .env_clear()
        .envs(vars.iter())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let mut ready = false;
    for _ in 0..100 {
        if reqwest::get(&base).await.is_ok() {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "handler answered GET / within 10 s");
    let tenant = sim.sim.config.tenant_id.clone();
    let (status, _) = invoke(&base, "IncidentPoller", &timer_payload()).await;
    assert_eq!(status, 200);
    let msg = Value::String(
        serde_json::to_string(&WorkItem::reconcile(&tenant, &ids[0], ChangeHint::Defender).to_json()).unwrap(),
    );
    let (status, body) = invoke(&base, "IncidentSync", &queue_payload(msg, 1)).await;
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 200, "{body}");
    assert!(sim.sim.world().sentinel.contains_key(&sentinel_incident_name(&tenant, &ids[0])));
}
