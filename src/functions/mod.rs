//! The Azure Functions edge: the custom handler's HTTP server. The host calls
//! `POST /{FunctionName}` with the invocation envelope; nothing outside this module knows the
//! envelope. Queue rule (ARCHITECTURE.md: “The Functions edge”): a message is acknowledged (2xx)
//! once synced, recorded in `Failures`, given back to the queue as a fresh copy, or, not being a
//! work item, moved to the poison queue; only when nothing could be recorded (storage down) does
//! it answer non-2xx, so the host redelivers and finally poison-queues.
//! The handler listens on 127.0.0.1 only: the host is its one client.

pub mod envelope;
pub mod host_timers;

use std::net::Ipv4Addr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use crate::http_api::{self, LimitedBody};
use crate::usecase::hunting_jobs;
use crate::usecase::jobs::{self, QueueVerdict};
use crate::usecase::webhook::WebhookCall;
use crate::usecase::Ports;
use envelope::{http_output, queue_text, InvokeRequest, InvokeResponse};

/// Function names, as folder names under `functions/`.
pub const INCIDENT_POLLER: &str = jobs::POLLER_NAME;
pub const INCIDENT_SYNC: &str = "IncidentSync";
pub const HEALTH: &str = "Health";
pub const SENTINEL_WEBHOOK: &str = "SentinelWebhook";
pub const HUNTING_EXPORT: &str = hunting_jobs::HUNTING_EXPORT_NAME;
pub const HUNTING_EVENT_HUB: &str = hunting_jobs::HUNTING_EVENT_HUB_NAME;
pub const HUNTING_STORAGE: &str = hunting_jobs::HUNTING_STORAGE_NAME;
/// Public route of the webhook (`/api/` + function.json `route`).
pub const WEBHOOK_ROUTE: &str = http_api::WEBHOOK_ROUTE;
/// Largest invocation envelope read: it wraps a webhook body, so it has room for one over the
/// webhook's own limit to reach the webhook's 413 answer.
const MAX_ENVELOPE_BYTES: usize = 16 * 1024 * 1024;

type Envelope = LimitedBody<MAX_ENVELOPE_BYTES>;

/// Listens for the host on 127.0.0.1:`port` (0 picks a free port).
pub async fn listen(port: u16) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await
}

pub fn router(services: Arc<Ports>) -> Router {
    Router::new()
        // The host polls GET / until any answer arrives.
        .route("/", get(|| async { "xdrsync" }))
        .route(&format!("/{INCIDENT_POLLER}"), post(incident_poller))
        .route(&format!("/{INCIDENT_SYNC}"), post(incident_sync))
        .route(&format!("/{HEALTH}"), post(health_payload))
        .route(&format!("/{HUNTING_EXPORT}"), post(hunting_export))
        .route(&format!("/{HUNTING_EVENT_HUB}"), post(hunting_event_hub))
        .route(&format!("/{HUNTING_STORAGE}"), post(hunting_storage))
        // Forwarded-HTTP mode calls the routes themselves.
        .route(&format!("/{SENTINEL_WEBHOOK}"), post(webhook_payload))
        .route(http_api::HEALTH_ROUTE, get(http_api::get_health))
        .route(WEBHOOK_ROUTE, post(http_api::post_webhook))
        .fallback(http_api::not_found)
        .with_state(services)
}

fn reply(status: StatusCode, body: InvokeResponse) -> Response {
    (status, Json(body)).into_response()
}

fn parse_envelope(bytes: &[u8]) -> Result<InvokeRequest, String> {
    serde_json::from_slice(bytes).map_err(|e| format!("invalid invocation envelope: {e}"))
}

fn bad_envelope(reason: String) -> Response {
    reply(StatusCode::BAD_REQUEST, InvokeResponse::log(reason))
}

async fn incident_poller(State(s): State<Arc<Ports>>, LimitedBody(body): Envelope) -> Response {
    if let Err(reason) = parse_envelope(&body) {
        return bad_envelope(reason);
    }
    match jobs::poll(&s).await {
        Ok(line) => reply(StatusCode::OK, InvokeResponse::log(line)),
        // A timer is not retried by the host; the failure is recorded and the next tick re-polls.
        Err(line) => reply(StatusCode::INTERNAL_SERVER_ERROR, InvokeResponse::log(line)),
    }
}

async fn hunting_export(State(s): State<Arc<Ports>>, LimitedBody(body): Envelope) -> Response {
    if let Err(reason) = parse_envelope(&body) {
        return bad_envelope(reason);
    }
    match hunting_jobs::hunting_export(&s).await {
        Ok(line) => reply(StatusCode::OK, InvokeResponse::log(line)),
        // Not retried by the host; the next tick resumes at each table's cursor.
        Err(line) => reply(StatusCode::INTERNAL_SERVER_ERROR, InvokeResponse::log(line)),
    }
}

async fn hunting_storage(State(s): State<Arc<Ports>>, LimitedBody(body): Envelope) -> Response {
    if let Err(reason) = parse_envelope(&body) {
        return bad_envelope(reason);
    }
    match hunting_jobs::hunting_storage(&s).await {
        Ok(line) => reply(StatusCode::OK, InvokeResponse::log(line)),
        Err(line) => reply(StatusCode::INTERNAL_SERVER_ERROR, InvokeResponse::log(line)),
    }
}

async fn hunting_event_hub(State(s): State<Arc<Ports>>, LimitedBody(body): Envelope) -> Response {
    let req = match parse_envelope(&body) {
        Ok(r) => r,
        Err(reason) => return bad_envelope(reason),
    };
    let Some(events) = req.binding("events") else {
        return reply(StatusCode::OK, InvokeResponse::log("no events in the invocation"));
    };
    match hunting_jobs::hunting_event_hub(&s, events).await {
        Ok(line) => reply(StatusCode::OK, InvokeResponse::log(line)),
        Err(line) => reply(StatusCode::INTERNAL_SERVER_ERROR, InvokeResponse::log(line)),
    }
}

async fn incident_sync(State(s): State<Arc<Ports>>, LimitedBody(body): Envelope) -> Response {
    let req = match parse_envelope(&body) {
        Ok(r) => r,
        Err(reason) => return bad_envelope(reason),
    };
    let Some(value) = req.binding("msg") else {
        return reply(StatusCode::OK, InvokeResponse::log("dropped: the invocation carries no queue message"));
    };
    let id = req.metadata_str("Id").unwrap_or_default();
    match jobs::sync_message(&s, &queue_text(value), req.dequeue_count().unwrap_or(1), &id).await {
        QueueVerdict::Done(line) | QueueVerdict::Deferred(line) | QueueVerdict::Drop(line) => {
            reply(StatusCode::OK, InvokeResponse::log(line))
        }
        QueueVerdict::Retry(line) => reply(StatusCode::INTERNAL_SERVER_ERROR, InvokeResponse::log(line)),
    }
}

async fn health_payload(State(s): State<Arc<Ports>>, LimitedBody(body): Envelope) -> Response {
    let req = match parse_envelope(&body) {
        Ok(r) => r,
        Err(reason) => return bad_envelope(reason),
    };
    let http = req.binding("req").map(envelope::HttpTriggerRequest::from_value).unwrap_or_default();
    let keyed = http.header("x-xdrsync-key").is_some_and(|k| s.config.webhook_key_matches(k));
    let h = crate::usecase::health_cache::current(&s, keyed).await;
    let mut out = InvokeResponse::default();
    out.outputs.insert("res".into(), http_output(h.http_status(), &serde_json::to_value(&h).unwrap_or_default()));
    reply(StatusCode::OK, out)
}

async fn webhook_payload(State(s): State<Arc<Ports>>, LimitedBody(body): Envelope) -> Response {
    let req = match parse_envelope(&body) {
        Ok(r) => r,
        Err(reason) => return bad_envelope(reason),
    };
    let http = req.binding("req").map(envelope::HttpTriggerRequest::from_value).unwrap_or_default();
    let call = WebhookCall {
        key: http.header("x-xdrsync-key"),
        content_type: http.header("content-type"),
        body: http.body.as_deref().unwrap_or("").as_bytes(),
    };
    let answer = crate::usecase::webhook::handle(&s, call).await;
    let mut out = InvokeResponse::default();
    out.outputs.insert("res".into(), http_output(answer.status, &answer.body));
    reply(StatusCode::OK, out)
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn the_handler_listens_on_loopback_only() {
        let listener = super::listen(0).await.unwrap();
        let addr = listener.local_addr().unwrap();
        assert!(addr.ip().is_loopback(), "{addr}");
        assert_eq!(addr.ip(), std::net::Ipv4Addr::LOCALHOST);
    }
}
