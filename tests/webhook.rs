//! The Sentinel webhook's contract: the playbook payload or a bare incident resource with the
//! right key is accepted (202) and enqueues a reconcile; every bad input gets its documented
//! 4xx with a JSON reason and changes nothing. Exercised on `/api/sentinel/incidents` (standalone
//! and forwarded mode) and through the Functions payload (`POST /SentinelWebhook`).

mod support;

use serde_json::{json, Value};
use support::*;
use xdrsync::domain::work::{ChangeHint, WorkItem};
use xdrsync_sim::sim::seed::SeedSpec;
use xdrsync_sim::sim::SimConfig;

const KEY: &str = "test-webhook-key-0123456789";

struct Fixture {
    sim: xdrsync_sim::sim::RunningSim,
    base: String,
    queue: std::sync::Arc<xdrsync_sim::fakes::MemoryQueue>,
    payload: Value,
    queue_name: String,
    services: std::sync::Arc<xdrsync::usecase::Ports>,
    incident_id: String,
}

async fn fixture() -> Fixture {
    let sim = start_sim(SimConfig::demo()).await;
    let ids = seed(&sim, SeedSpec { count: 1, ..Default::default() });
    let (services, queue) = services_with_fakes(&sim);
    let item = WorkItem::reconcile(&services.config.tenant_id, &ids[0], ChangeHint::Defender);
    xdrsync::usecase::sync::reconcile(&services, &item).await.unwrap();
    let base = serve_router(xdrsync::functions::router(services.clone())).await;
    let resource = {
        let s = sim_get(&sim, "/_sim/sentinel/incidents").await;
        let mut r = s[0].clone();
        for k in ["comments", "relations", "writes"] {
            r.as_object_mut().unwrap().remove(k);
        }
        r
    };
    let ws = &sim.sim.config.workspace;
    // An analyst edit, so the payload's etag is not the one xdrsync already synced.
    let name = resource["name"].as_str().unwrap().to_string();
    sim_post(&sim, &format!("/_sim/sentinel/incidents/{name}/edit"), json!({"severity": "Low"})).await;
    let mut object = resource.clone();
    object["etag"] = sim_get(&sim, "/_sim/sentinel/incidents").await[0]["etag"].clone();
    let payload = json!({
        "object": object,
        "workspaceInfo": {"SubscriptionId": ws.subscription_id, "ResourceGroupName": ws.resource_group, "WorkspaceName": ws.name},
        "workspaceId": "6b6a3d1c-0000-0000-0000-000000000000"
    });
    let queue_name = services.config.queue_name.clone();
    Fixture { sim, base, queue, payload, queue_name, services, incident_id: ids[0].clone() }
}

async fn post(base: &str, key: Option<&str>, content_type: &str, body: Vec<u8>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .post(format!("{base}/api/sentinel/incidents"))
        .header("content-type", content_type)
        .body(body);
    if let Some(k) = key {
        req = req.header("x-xdrsync-key", k);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn valid_playbook_payload_and_bare_resource_are_accepted_and_enqueued() {
    let f = fixture().await;
    let (status, body) = post(&f.base, Some(KEY), "application/json", f.payload.to_string().into_bytes()).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "accepted");
    let texts = f.queue.texts(&f.queue_name);
    assert_eq!(texts.len(), 1);
    let item = WorkItem::parse(&texts[0]).unwrap();
    assert_eq!(item.hint, ChangeHint::Sentinel);
    let (status, _) =
        post(&f.base, Some(KEY), "application/json; charset=utf-8", f.payload["object"].to_string().into_bytes()).await;
    assert_eq!(status, 202);
    assert_eq!(f.queue.texts(&f.queue_name).len(), 2);
}

#[tokio::test]
async fn an_echo_of_a_version_already_synced_is_acknowledged_without_enqueueing() {
    let f = fixture().await;
    // Sync the analyst's edit: xdrsync now has seen the incident's current etag.
    let item = WorkItem::reconcile(&f.services.config.tenant_id, &f.incident_id, ChangeHint::Sentinel);
    xdrsync::usecase::sync::reconcile(&f.services, &item).await.unwrap();
    let current_etag = sim_get(&f.sim, "/_sim/sentinel/incidents").await[0]["etag"].clone();
    let mut payload = f.payload.clone();
    payload["object"]["etag"] = current_etag;
    let (status, body) = post(&f.base, Some(KEY), "application/json", payload.to_string().into_bytes()).await;
    assert_eq!((status, body["status"].as_str()), (202, Some("unchanged")), "{body}");
    assert!(f.queue.texts(&f.queue_name).is_empty(), "an echo enqueues nothing");
    // A comment added in Sentinel may leave the etag alone: a moved commentsCount is work.
    let count = sim_get(&f.sim, "/_sim/sentinel/incidents").await[0]["properties"]["additionalData"]["commentsCount"]
        .as_u64()
        .expect("the simulator reports commentsCount");
    payload["object"]["properties"]["additionalData"] = json!({"commentsCount": count});
    let (_, body) = post(&f.base, Some(KEY), "application/json", payload.to_string().into_bytes()).await;
    assert_eq!(body["status"], "unchanged", "the same count is still an echo: {body}");
    payload["object"]["properties"]["additionalData"] = json!({"commentsCount": count + 1});
    let (status, body) = post(&f.base, Some(KEY), "application/json", payload.to_string().into_bytes()).await;
    assert_eq!((status, body["status"].as_str()), (202, Some("accepted")), "{body}");
    assert_eq!(f.queue.texts(&f.queue_name).len(), 1);
    // A newer version is work again.
    payload["object"]["etag"] = json!("\"newer\"");
    let (status, body) = post(&f.base, Some(KEY), "application/json", payload.to_string().into_bytes()).await;
    assert_eq!((status, body["status"].as_str()), (202, Some("accepted")));
    assert_eq!(f.queue.texts(&f.queue_name).len(), 2);
}

#[tokio::test]
async fn every_bad_input_gets_its_documented_4xx_and_changes_nothing() {
    let f = fixture().await;
    let ws_other = {
        let mut p = f.payload.clone();
        let id = p["object"]["id"].as_str().unwrap().replace(
            "/subscriptions/00000000-0000-0000-0000-000000000000",
            "/subscriptions/11111111-1111-1111-1111-111111111111",
        );
        p["object"]["id"] = json!(id);
        p.as_object_mut().unwrap().remove("workspaceInfo");
        p
    };
    let unknown = {
        let mut p = f.payload.clone();
        let fresh = uuid::Uuid::new_v4().to_string();
        let name = p["object"]["name"].as_str().unwrap().to_string();
        p["object"]["id"] = json!(p["object"]["id"].as_str().unwrap().replace(&name, &fresh));
        p["object"]["name"] = json!(fresh);
        p
    };
    type Case<'a> = (&'a str, Option<&'a str>, &'a str, Vec<u8>, u16);
    let cases: Vec<Case> = vec![
        ("missing key", None, "application/json", f.payload.to_string().into_bytes(), 401),
        ("wrong key", Some("test-webhook-key-012345678X"), "application/json", f.payload.to_string().into_bytes(), 401),
        ("invalid JSON", Some(KEY), "application/json", b"{not json".to_vec(), 400),
        ("wrong shape", Some(KEY), "application/json", br#"{"hello":"world"}"#.to_vec(), 400),
        ("JSON array", Some(KEY), "application/json", b"[1,2]".to_vec(), 400),
        ("other workspace", Some(KEY), "application/json", ws_other.to_string().into_bytes(), 403),
        ("unknown incident", Some(KEY), "application/json", unknown.to_string().into_bytes(), 404),
        ("5 MB body", Some(KEY), "application/json", vec![b' '; 5 * 1024 * 1024], 413),
        ("wrong content type", Some(KEY), "text/plain", f.payload.to_string().into_bytes(), 415),
    ];
    f.sim.sim.stats.reset();
    for (what, key, ct, body, want) in cases {
        let (status, answer) = post(&f.base, key, ct, body).await;
        assert_eq!(status, want, "{what}: {answer}");
        assert!(answer["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{what} explains itself: {answer}");
    }
    assert!(f.queue.texts(&f.queue_name).is_empty(), "nothing enqueued");
    let stats = f.sim.sim.stats.snapshot();
    assert_eq!(stats.get("arm.incidents.put"), None);
    assert_eq!(stats.get("graph.incidents.patch"), None);
}

#[tokio::test]
async fn the_functions_payload_mode_answers_through_the_http_output_binding() {
    let f = fixture().await;
    let envelope = |key: &str, body: &str| {
        json!({"Data": {"req": {"Url": "https://app.azurewebsites.net/api/sentinel/incidents?code=x", "Method": "POST",
            "Query": {"code": "x"}, "Headers": {"Content-Type": ["application/json"], "x-xdrsync-key": [key]}, "Params": {}, "Body": body}},
            "Metadata": {"sys": {"MethodName": "SentinelWebhook"}}})
    };
    let client = reqwest::Client::new();
    let ok: Value = client
        .post(format!("{}/SentinelWebhook", f.base))
        .json(&envelope(KEY, &f.payload.to_string()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ok["Outputs"]["res"]["statusCode"], 202);
    let denied: Value = client
        .post(format!("{}/SentinelWebhook", f.base))
        .json(&envelope("nope-nope-nope-nope", &f.payload.to_string()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(denied["Outputs"]["res"]["statusCode"], 401);
    assert_eq!(f.queue.texts(&f.queue_name).len(), 1);
}
