//! A stand-in for the Azure Functions host's side of the custom-handler protocol, so tests and
//! benchmarks drive `xdrsync serve`'s router (or the real binary) exactly as Azure does.
//!
//! - [`FunctionsHost::run_queue_trigger`]: the queue trigger loop with host.json's `queues`
//!   semantics: receive up to `batchSize` messages (each invisible while processed), invoke
//!   `POST /{function}` per message, delete on 2xx, make visible again after `visibilityTimeout`
//!   on a non-2xx or a handler that does not answer, and move the message to `<queue>-poison`
//!   (then delete it) when a failed delivery's dequeue count reached `maxDequeueCount`; a message
//!   received with a count already over it (the handler died mid-way) is poisoned unprocessed.
//! - [`FunctionsHost::invoke_timer`] / [`FunctionsHost::run_timer`]: a timer trigger invocation
//!   with the host's timer envelope; a failed timer is not retried (the next occurrence runs).
//! - [`queue_envelope`], [`timer_envelope`]: the envelopes, as the host serialises them. Queue
//!   data is a JSON string of the message text: `Data.msg`'s content is the text JSON-quoted once
//!   more. Metadata: `DequeueCount` (a number), `Id`, `PopReceipt` (JSON-quoted strings),
//!   `InsertionTime`, `NextVisibleTime`, `ExpirationTime`, `sys`.
//! - [`host_decode`]: the host's `messageEncoding: base64` rule for a raw queue body: text that is
//!   not base64 goes to the poison queue at once (Storage extension 5.x, azure-sdk-for-net PR
//!   18326). Through the [`WorkQueue`] port the base64 layer is the adapter's (it encodes on send
//!   and decodes on receive), so [`MessageEncoding::Decoded`] is the usual setting.
//!
//! Documented host facts: non-2xx = failed invocation; the poison queue is `<queue>-poison`;
//! timers are not retried. Assumed (host source, not documentation): the envelope's exact shapes
//! above, copied from what hosts 4.x send.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::sync::watch;

use xdrsync_core::error::PortError;
use xdrsync_core::ports::{QueueMessage, WorkQueue};

/// How the queue's message texts reach the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageEncoding {
    /// The [`WorkQueue`] already decoded base64 (the real adapter, the in-memory fake).
    Decoded,
    /// Texts are the raw wire bodies: decoded here as the host does ([`host_decode`]).
    Base64,
}

/// host.json `extensions.queues`, plus the lease the host holds on a message while it runs.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The queue the trigger reads (`xdrsync-incidents`).
    pub queue: String,
    /// The queue trigger's function name (`IncidentSync`).
    pub function: String,
    pub batch_size: u8,
    pub max_dequeue_count: u32,
    /// How long a failed message stays invisible before its next delivery.
    pub visibility_timeout: Duration,
    /// Longest idle wait between receives.
    pub max_polling_interval: Duration,
    /// Invisibility while an invocation runs (the host renews a 10-minute lease).
    pub processing_lease: Duration,
    pub encoding: MessageEncoding,
}

impl HostConfig {
    /// The repository's host.json: batch 16, 5 dequeues, 10 s visibility, 2 s polling.
    pub fn from_repo_host_json(queue: &str, function: &str) -> Self {
        Self {
            queue: queue.to_string(),
            function: function.to_string(),
            batch_size: 16,
            max_dequeue_count: 5,
            visibility_timeout: Duration::from_secs(10),
            max_polling_interval: Duration::from_secs(2),
            processing_lease: Duration::from_secs(600),
            encoding: MessageEncoding::Decoded,
        }
    }
}

/// What the host did, counted.
#[derive(Debug, Default)]
pub struct HostStats {
    pub queue_invocations: AtomicU64,
    /// Answered 2xx: deleted.
    pub queue_succeeded: AtomicU64,
    /// Non-2xx or no answer: made visible again, or poisoned.
    pub queue_failed: AtomicU64,
    /// Moved to `<queue>-poison` by the host.
    pub poisoned: AtomicU64,
    pub timer_invocations: AtomicU64,
    pub timer_failed: AtomicU64,
}

/// One invocation, for assertions.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub function: String,
    /// The handler's HTTP status; `None` when it did not answer.
    pub status: Option<u16>,
    /// The reply envelope (`Null` when there was none or it was not JSON).
    pub reply: Value,
    /// A queue invocation's message text, as the queue held it (decoded).
    pub message: Option<String>,
}

impl Invocation {
    pub fn succeeded(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    /// The reply's `Logs` lines.
    pub fn logs(&self) -> Vec<String> {
        self.reply["Logs"]
            .as_array()
            .map(|l| l.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    }
}

/// The host: one handler address, one queue, its settings.
pub struct FunctionsHost {
    base: String,
    queue: Arc<dyn WorkQueue>,
    config: HostConfig,
    client: reqwest::Client,
    pub stats: HostStats,
    history: Mutex<Vec<Invocation>>,
}

/// The host's `messageEncoding: base64` for a raw body: the decoded text, or `None` when the
/// body is not base64 of UTF-8 text (the host moves such a message to the poison queue at once).
pub fn host_decode(raw: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(raw.trim()).ok()?;
    String::from_utf8(bytes).ok()
}

fn rfc3339(t: OffsetDateTime) -> String {
    crate::sim::timefmt::format(t)
}

/// The queue trigger's request body for message `m` whose (decoded) text is `text`.
pub fn queue_envelope(function: &str, m: &QueueMessage, text: &str, visibility: Duration) -> Value {
    let now = OffsetDateTime::now_utc();
    let quoted = |s: &str| Value::String(serde_json::to_string(s).expect("string serialises"));
    json!({
        "Data": {"msg": quoted(text)},
        "Metadata": {
            "DequeueCount": m.dequeue_count,
            "Id": quoted(&m.id),
            "PopReceipt": quoted(&m.pop_receipt),
            "InsertionTime": rfc3339(now),
            "NextVisibleTime": rfc3339(now + visibility),
            "ExpirationTime": rfc3339(now + time::Duration::days(7)),
            "sys": sys(function, now),
        }
    })
}

/// A timer trigger's request body.
pub fn timer_envelope(function: &str, past_due: bool) -> Value {
    let now = OffsetDateTime::now_utc();
    json!({
        "Data": {"timer": {
            "Schedule": {"AdjustForDST": true},
            "ScheduleStatus": {"Last": rfc3339(now), "Next": rfc3339(now + time::Duration::minutes(1)), "LastUpdated": rfc3339(now)},
            "IsPastDue": past_due,
        }},
        "Metadata": {"sys": sys(function, now)}
    })
}

fn sys(function: &str, now: OffsetDateTime) -> Value {
    json!({"MethodName": function, "UtcNow": rfc3339(now), "RandGuid": uuid::Uuid::new_v4().to_string()})
}

impl FunctionsHost {
    /// A host calling the handler at `base` (`http://127.0.0.1:<port>`), reading `queue`.
    pub fn new(base: impl Into<String>, queue: Arc<dyn WorkQueue>, config: HostConfig) -> Arc<Self> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(600)).build().expect("http client");
        Arc::new(Self {
            base: base.into().trim_end_matches('/').to_string(),
            queue,
            config,
            client,
            stats: HostStats::default(),
            history: Mutex::new(Vec::new()),
        })
    }

    pub fn config(&self) -> &HostConfig {
        &self.config
    }

    /// Every invocation so far, in order.
    pub fn history(&self) -> Vec<Invocation> {
        self.history.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn invoke(&self, function: &str, body: &Value, message: Option<String>) -> Invocation {
        let sent = self
            .client
            .post(format!("{}/{function}", self.base))
            .header("X-Azure-Functions-InvocationId", uuid::Uuid::new_v4().to_string())
            .json(body)
            .send()
            .await;
        let inv = match sent {
            Ok(r) => {
                let status = r.status().as_u16();
                let reply = r.json::<Value>().await.unwrap_or(Value::Null);
                Invocation { function: function.to_string(), status: Some(status), reply, message }
            }
            Err(_) => Invocation { function: function.to_string(), status: None, reply: Value::Null, message },
        };
        self.history.lock().unwrap_or_else(|p| p.into_inner()).push(inv.clone());
        inv
    }

    /// One timer invocation of `function`.
    pub async fn invoke_timer(&self, function: &str) -> Invocation {
        self.stats.timer_invocations.fetch_add(1, Ordering::Relaxed);
        let inv = self.invoke(function, &timer_envelope(function, false), None).await;
        if !inv.succeeded() {
            self.stats.timer_failed.fetch_add(1, Ordering::Relaxed);
        }
        inv
    }

    /// Invokes `function` every `every` (the first at once) until `stop` turns true.
    pub async fn run_timer(&self, function: &str, every: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            self.invoke_timer(function).await;
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.wait_for(|v| *v) => return,
            }
        }
    }

    /// One receive of up to `batchSize` messages, each invoked (concurrently) and settled.
    /// Returns how many were received.
    pub async fn process_batch(&self) -> Result<usize, PortError> {
        let cfg = &self.config;
        let messages = self.queue.receive(&cfg.queue, cfg.batch_size, cfg.processing_lease).await?;
        let n = messages.len();
        futures::future::join_all(messages.into_iter().map(|m| self.process(m))).await;
        Ok(n)
    }

    async fn process(&self, m: QueueMessage) {
        let cfg = &self.config;
        if m.dequeue_count > cfg.max_dequeue_count {
            // Received more often than allowed (an invocation died mid-way): poisoned unprocessed.
            return self.poison(&m).await;
        }
        let text = match cfg.encoding {
            MessageEncoding::Decoded => m.text.clone(),
            MessageEncoding::Base64 => match host_decode(&m.text) {
                Some(t) => t,
                None => return self.poison(&m).await,
            },
        };
        self.stats.queue_invocations.fetch_add(1, Ordering::Relaxed);
        let envelope = queue_envelope(&cfg.function, &m, &text, cfg.visibility_timeout);
        let inv = self.invoke(&cfg.function, &envelope, Some(text)).await;
        let settled = if inv.succeeded() {
            self.stats.queue_succeeded.fetch_add(1, Ordering::Relaxed);
            self.queue.delete(&cfg.queue, &m).await
        } else {
            self.stats.queue_failed.fetch_add(1, Ordering::Relaxed);
            if m.dequeue_count >= cfg.max_dequeue_count {
                return self.poison(&m).await;
            }
            self.queue.release(&cfg.queue, &m, cfg.visibility_timeout).await
        };
        if let Err(e) = settled {
            tracing::warn!(queue.message.id = %m.id, error.message = %e, "host: could not settle a message");
        }
    }

    async fn poison(&self, m: &QueueMessage) {
        let cfg = &self.config;
        let poison = format!("{}-poison", cfg.queue);
        self.stats.poisoned.fetch_add(1, Ordering::Relaxed);
        let moved = match self.queue.send(&poison, &m.text).await {
            Ok(()) => self.queue.delete(&cfg.queue, m).await,
            Err(e) => Err(e),
        };
        if let Err(e) = moved {
            tracing::warn!(queue.message.id = %m.id, error.message = %e, "host: could not poison a message");
        }
    }

    /// The queue trigger: receives and invokes until `stop` turns true, polling an empty queue
    /// with a backoff up to `maxPollingInterval`.
    pub async fn run_queue_trigger(&self, mut stop: watch::Receiver<bool>) {
        let mut idle = Duration::from_millis(100);
        loop {
            if *stop.borrow() {
                return;
            }
            let wait = match self.process_batch().await {
                Ok(n) if n > 0 => {
                    idle = Duration::from_millis(100);
                    continue;
                }
                Ok(_) => {
                    let w = idle;
                    idle = (idle * 2).min(self.config.max_polling_interval);
                    w
                }
                Err(_) => self.config.max_polling_interval,
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.wait_for(|v| *v) => return,
            }
        }
    }

    /// Runs the queue trigger and, when `timer` is given, a timer function every interval, as
    /// tasks; they stop when the returned handle is stopped or dropped.
    pub fn start(self: &Arc<Self>, timer: Option<(&str, Duration)>) -> HostHandle {
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let host = self.clone();
        let rx = stop_rx.clone();
        tasks.push(tokio::spawn(async move { host.run_queue_trigger(rx).await }));
        if let Some((function, every)) = timer {
            let host = self.clone();
            let function = function.to_string();
            tasks.push(tokio::spawn(async move { host.run_timer(&function, every, stop_rx).await }));
        }
        HostHandle { stop: stop_tx, tasks }
    }
}

/// The running trigger loops of [`FunctionsHost::start`].
pub struct HostHandle {
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl HostHandle {
    /// Stops the loops after their current invocations and waits for them.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
    }
}

impl Drop for HostHandle {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::MemoryQueue;

    #[test]
    fn queue_data_is_the_message_text_json_quoted_once_more() {
        let m = QueueMessage { id: "m1".into(), pop_receipt: "r1".into(), dequeue_count: 2, text: "{\"a\":1}".into() };
        let v = queue_envelope("IncidentSync", &m, &m.text, Duration::from_secs(10));
        assert_eq!(v["Data"]["msg"], Value::String("\"{\\\"a\\\":1}\"".into()));
        assert_eq!(v["Metadata"]["DequeueCount"], 2);
        assert_eq!(v["Metadata"]["Id"], "\"m1\"");
        assert_eq!(v["Metadata"]["PopReceipt"], "\"r1\"");
        for k in ["InsertionTime", "NextVisibleTime", "ExpirationTime"] {
            assert!(v["Metadata"][k].is_string(), "{k}");
        }
        assert_eq!(v["Metadata"]["sys"]["MethodName"], "IncidentSync");
        assert_eq!(timer_envelope("IncidentPoller", false)["Data"]["timer"]["IsPastDue"], false);
    }

    #[test]
    fn host_decodes_base64_and_refuses_anything_else() {
        assert_eq!(host_decode("eyJhIjoxfQ==").as_deref(), Some("{\"a\":1}"));
        assert_eq!(host_decode("{\"a\":1}"), None);
        assert_eq!(host_decode("//79"), None, "not UTF-8");
    }

    async fn handler(status: u16) -> String {
        use axum::routing::post;
        let app = axum::Router::new().route(
            "/IncidentSync",
            post(move || async move {
                (axum::http::StatusCode::from_u16(status).unwrap(), axum::Json(json!({"Logs": []})))
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        format!("http://{addr}")
    }

    fn config() -> HostConfig {
        HostConfig { visibility_timeout: Duration::ZERO, ..HostConfig::from_repo_host_json("q", "IncidentSync") }
    }

    #[tokio::test]
    async fn a_failing_message_is_redelivered_then_poisoned_after_max_dequeue_count() {
        let queue = Arc::new(MemoryQueue::new());
        queue.send("q", "{}").await.unwrap();
        let host = FunctionsHost::new(handler(500).await, queue.clone(), config());
        for _ in 0..5 {
            assert_eq!(host.process_batch().await.unwrap(), 1);
        }
        assert_eq!(host.stats.queue_invocations.load(Ordering::Relaxed), 5);
        assert!(queue.texts("q").is_empty());
        assert_eq!(queue.texts("q-poison"), vec!["{}".to_string()]);
    }

    #[tokio::test]
    async fn a_succeeding_message_is_deleted_and_an_undecodable_one_poisoned_unprocessed() {
        let queue = Arc::new(MemoryQueue::new());
        queue.send("q", "eyJhIjoxfQ==").await.unwrap();
        queue.send("q", "not base64!").await.unwrap();
        let cfg = HostConfig { encoding: MessageEncoding::Base64, ..config() };
        let host = FunctionsHost::new(handler(200).await, queue.clone(), cfg);
        assert_eq!(host.process_batch().await.unwrap(), 2);
        assert!(queue.texts("q").is_empty());
        assert_eq!(queue.texts("q-poison"), vec!["not base64!".to_string()]);
        assert_eq!(host.stats.queue_succeeded.load(Ordering::Relaxed), 1);
        let h = host.history();
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].status, Some(200));
    }
}
