//! The shared HTTP layer of the Graph, ARM and Logs Ingestion adapters: bearer token per scope,
//! timeouts, the one retry policy, and the one status classification. A 401 drops the cached
//! token and tries once more; request and response bodies are never logged.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;

use crate::adapters::budget::SharedBudget;
use crate::adapters::status::{from_status, network, parse_retry_after};
use crate::error::PortError;
use crate::metrics::bump;
use crate::ports::TokenSource;
use crate::retry::{MessageBudget, RetryPolicy};

/// A request to send: method, URL, optional body and extra headers. Cloneable so retries can
/// rebuild it.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    pub url: String,
    pub body: Option<CallBody>,
    pub headers: Vec<(&'static str, String)>,
    /// Whether sending it twice does no more than sending it once. A call that is not (a Graph
    /// comment POST) is retried only when the service refused it before acting (throttled): a
    /// 5xx or a timeout may hide a write that happened, and a blind retry would repeat it.
    pub idempotent: bool,
    /// Its place in the call budget (relation PUTs go after mirrors and field sync).
    pub priority: crate::domain::budget::Priority,
}

#[derive(Debug, Clone)]
pub enum CallBody {
    Json(serde_json::Value),
    Bytes { content_type: &'static str, encoding: Option<&'static str>, bytes: bytes::Bytes },
}

impl Call {
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            body: None,
            headers: Vec::new(),
            idempotent: true,
            priority: crate::domain::budget::Priority::Normal,
        }
    }
    /// Lets calls users wait for go first in the call budget (see [`Call::priority`]).
    pub fn low_priority(mut self) -> Self {
        self.priority = crate::domain::budget::Priority::Low;
        self
    }
    /// Marks the call as not safe to repeat (see [`Call::idempotent`]).
    pub fn not_idempotent(mut self) -> Self {
        self.idempotent = false;
        self
    }
    pub fn json(mut self, body: &impl serde::Serialize) -> Self {
        self.body = Some(CallBody::Json(serde_json::to_value(body).unwrap_or(serde_json::Value::Null)));
        self
    }
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// A successful answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: bytes::Bytes,
}

impl Answer {
    pub fn json<T: DeserializeOwned>(&self, service: &'static str) -> Result<T, PortError> {
        serde_json::from_slice(&self.body).map_err(|e| PortError::decode(service, e))
    }

    /// Like [`Answer::json`], but `None` for an empty success body (a 204 where a service
    /// revision returns nothing), so the caller can read the resource instead.
    pub fn json_opt<T: DeserializeOwned>(&self, service: &'static str) -> Result<Option<T>, PortError> {
        if self.body.is_empty() {
            return Ok(None);
        }
        self.json(service).map(Some)
    }
}

/// The resource read back after a write whose answer had no body.
pub fn read_back<T>(service: &'static str, read: Option<T>) -> Result<T, PortError> {
    read.ok_or_else(|| PortError::decode(service, "the write succeeded but the resource cannot be read"))
}

/// An authenticated client for one service and token scope.
#[derive(Clone)]
pub struct ServiceClient {
    pub service: &'static str,
    http: reqwest::Client,
    tokens: Arc<dyn TokenSource>,
    scope: String,
    retry: RetryPolicy,
    counter: Arc<CounterRef>,
    budget: Option<Arc<SharedBudget>>,
    forbidden_refresh: Arc<crate::adapters::token_refresh::ForbiddenRefresh>,
}

/// Which counter of [`crate::metrics::CallCounters`] this client bumps.
pub struct CounterRef {
    counters: Arc<crate::metrics::CallCounters>,
    pick: fn(&crate::metrics::CallCounters) -> &AtomicU64,
}

impl CounterRef {
    pub fn new(
        counters: Arc<crate::metrics::CallCounters>,
        pick: fn(&crate::metrics::CallCounters) -> &AtomicU64,
    ) -> Arc<Self> {
        Arc::new(Self { counters, pick })
    }
    fn bump(&self) {
        bump((self.pick)(&self.counters));
    }
}

/// Builds the reqwest client every adapter shares (timeouts, no body logging).
pub fn build_http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(10))
        .user_agent(concat!("xdrsync/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("the TLS backend initializes")
}

impl ServiceClient {
    pub fn new(
        service: &'static str,
        http: reqwest::Client,
        tokens: Arc<dyn TokenSource>,
        scope: impl Into<String>,
        retry: RetryPolicy,
        counter: Arc<CounterRef>,
    ) -> Self {
        Self {
            service,
            http,
            tokens,
            scope: scope.into(),
            retry,
            counter,
            budget: None,
            forbidden_refresh: Default::default(),
        }
    }

    /// Spends from `budget` before every call (or every write, for a writes-only budget).
    pub fn with_budget(mut self, budget: Arc<SharedBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Sends with retries; any non-2xx becomes a classified [`PortError`].
    pub async fn send(&self, call: &Call) -> Result<Answer, PortError> {
        let mut refreshed = false;
        loop {
            let result = if call.idempotent {
                self.retry.run(|| self.attempt(call)).await
            } else {
                // Retry only throttling (the service did not act); anything else surfaces, and the
                // caller rereads before trying again.
                self.retry
                    .run(|| async {
                        match self.attempt(call).await {
                            Err(e @ PortError::Throttled { .. }) => Err(e),
                            other => Ok(other),
                        }
                    })
                    .await
                    .and_then(|inner| inner)
            };
            match result {
                Err(PortError::Unauthorized { .. }) if !refreshed => {
                    refreshed = true;
                    self.tokens.invalidate(&self.scope).await;
                }
                // A token issued before a grant keeps being refused: try a fresh one, rarely
                // (`token_refresh`).
                Err(PortError::Forbidden { .. })
                    if !refreshed && self.forbidden_refresh.claim(std::time::Instant::now()) =>
                {
                    refreshed = true;
                    tracing::info!(service = self.service, "refused (403): retrying once with a fresh token");
                    self.tokens.invalidate(&self.scope).await;
                }
                other => return other,
            }
        }
    }

    /// Like [`send`](Self::send) but maps 404 to `Ok(None)`.
    pub async fn send_optional(&self, call: &Call) -> Result<Option<Answer>, PortError> {
        match self.send(call).await {
            Ok(a) => Ok(Some(a)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn attempt(&self, call: &Call) -> Result<Answer, PortError> {
        let budget = self.budget.as_deref().filter(|b| !b.writes_only || call.method != Method::GET);
        if let Some(b) = budget {
            // Inside a queue message, wait no longer than a retry would; the poller may wait more.
            let max_wait =
                if MessageBudget::in_message() { self.retry.max_retry_after } else { Duration::from_secs(60) };
            b.acquire(call.priority, max_wait).await?;
        }
        let token = self.tokens.token(&self.scope).await?;
        let mut req = self.http.request(call.method.clone(), &call.url).bearer_auth(token.expose_secret());
        for (name, value) in &call.headers {
            req = req.header(*name, value);
        }
        req = match &call.body {
            Some(CallBody::Json(v)) => req.json(v),
            Some(CallBody::Bytes { content_type, encoding, bytes }) => {
                let r = req.header("content-type", *content_type).body(bytes.clone());
                match encoding {
                    Some(enc) => r.header("content-encoding", *enc),
                    None => r,
                }
            }
            None => req,
        };
        self.counter.bump();
        let resp = req.send().await.map_err(|e| network(self.service, redact_url(&e)))?;
        let status = resp.status();
        let retry_after = parse_retry_after(resp.headers().get("retry-after").and_then(|v| v.to_str().ok()));
        let body = resp.bytes().await.map_err(|e| network(self.service, redact_url(&e)))?;
        if status.is_success() {
            return Ok(Answer { status, body });
        }
        let error = from_status(self.service, status.as_u16(), retry_after, &String::from_utf8_lossy(&body));
        if let (Some(b), PortError::Throttled { after: Some(after), .. }) = (budget, &error) {
            b.pause(*after);
        }
        Err(error)
    }
}

/// reqwest errors print the URL; ours carry no secrets in URLs, but query strings can hold
/// customer data (filters), so keep only the error kind.
fn redact_url(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "response body failed"
    } else {
        "request failed"
    };
    let host = e.url().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
    format!("{kind} ({host})")
}
