//! The Event Hubs batch host.json allows (`extensions.eventHubs.maxEventBatchSize`) fits the
//! handler's 16 MiB envelope limit even when every event is as large as Event Hubs allows (1 MB)
//! and as expensive to escape as JSON text gets: an envelope at the bound is processed, a larger
//! one is refused. A refused batch would be retried and then checkpointed past: its rows lost.
//! The bound's arithmetic is in tests/infra_deploy.rs.

mod support;

use std::sync::Arc;

use serde_json::{json, Value};
use support::*;
use xdrsync_sim::sim::SimConfig;

const MAX_EVENT: usize = 1024 * 1024;

/// A Streaming API event of exactly `MAX_EVENT` bytes of JSON text whose string content is all
/// `\"` pairs: each of its bytes is escaped to two in the envelope (the host's JSON string).
fn worst_event() -> String {
    let head = r#"{"records":[{"category":"AdvancedHunting-NotExported","properties":{"Pad":""#;
    let tail = r#""}}]}"#;
    let pad = (MAX_EVENT - head.len() - tail.len()) / 2;
    let event = format!("{head}{}{tail}", "\\\"".repeat(pad));
    assert!(event.len() <= MAX_EVENT && event.len() > MAX_EVENT - 2);
    serde_json::from_str::<Value>(&event).expect("valid JSON text");
    event
}

fn envelope(events: usize) -> String {
    let event = worst_event();
    json!({
        "Data": {"events": vec![event; events]},
        "Metadata": {
            "PartitionContext": {"EventHubName": "defender", "ConsumerGroup": "$Default", "PartitionId": "0"},
            "SequenceNumberArray": (0..events).collect::<Vec<_>>(),
            "PropertiesArray": vec![json!({}); events],
            "sys": {"MethodName": "HuntingEventHub", "UtcNow": "2026-12-07T10:00:00Z"}
        }
    })
    .to_string()
}

#[tokio::test]
async fn an_envelope_at_the_batch_bound_is_processed_and_a_larger_one_would_not_fit() {
    let host: Value =
        serde_json::from_str(&std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/host.json")).unwrap())
            .unwrap();
    let batch = host["extensions"]["eventHubs"]["maxEventBatchSize"].as_u64().expect("bounded in host.json") as usize;
    let sim = start_sim(SimConfig::demo()).await;
    let mut s = xdrsync::app::build(config(&settings(&sim, None)));
    s.store = Arc::new(xdrsync_sim::fakes::MemoryStore::new());
    let base = serve_router(xdrsync::functions::router(Arc::new(s))).await;
    let post = |body: String| {
        let url = format!("{base}/HuntingEventHub");
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("handler answers");
            (r.status().as_u16(), r.text().await.unwrap_or_default())
        }
    };
    let at_bound = envelope(batch);
    assert!(at_bound.len() > (2 * MAX_EVENT - 1024) * batch, "almost every byte escaped to two: {}", at_bound.len());
    let (status, body) = post(at_bound).await;
    assert_eq!(status, 200, "the largest batch host.json allows must be read: {body}");
    // The bound keeps room for the host's metadata; two events more are over the limit itself.
    let over = envelope(batch + 2);
    let (status, _) = post(over).await;
    assert_eq!(status, 413, "over 16 MiB the handler refuses the batch: the bound matters");
}
