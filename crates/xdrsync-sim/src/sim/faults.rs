//! Fault injection and request counting for the simulator. Faults apply to the simulated APIs,
//! never to `/_sim`; counts are per API operation (`graph.incidents.list`, `arm.incidents.put`…).
//!
//! Besides failing before the service acts (`Status`) and answering late (`Slow`), a rule can
//! let a write commit and then lose the answer (`CommitThenFail`): the change is stored, the client
//! sees a 5xx and must cope with a write that happened although it was told otherwise (the
//! "response lost" case every real network has). It applies to writes only: Graph PATCH/POST,
//! ARM PUT/DELETE, Logs Ingestion POST.
//!
//! Budgets: Graph's per-tenant minute (`SimOptions::graph_calls_per_minute`) and ARM's token
//! buckets per subscription, principal and kind of operation (`SimOptions::arm_limits`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::Sim;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum FaultKind {
    /// Answer with this status (429 and 503 carry `Retry-After`).
    Status { status: u16 },
    /// Delay the real answer.
    Slow { millis: u64 },
    /// Let the write go through (stored), then answer `status` instead of the real answer.
    /// Writes only; a write the service refused keeps its real answer.
    CommitThenFail { status: u16 },
}

/// One rule: with probability `rate`, requests to `api` (`graph`, `arm`, `logs`, `entra`, or
/// `all`) get `kind`; `remaining` bounds how many times it fires.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    #[serde(default = "all")]
    pub api: String,
    pub rate: f64,
    pub kind: FaultKind,
    #[serde(default)]
    pub retry_after_secs: Option<u64>,
    #[serde(default)]
    pub remaining: Option<u64>,
}

fn all() -> String {
    "all".into()
}

/// An ARM bucket's key: subscription, principal and kind of operation.
type ArmBucketKey = (String, String, &'static str);

pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
    /// ARM's buckets: tokens and when last refilled.
    arm_buckets: Mutex<BTreeMap<ArmBucketKey, (f64, std::time::Instant)>>,
    /// The draws that decide whether a rule with a `rate` fires: seeded, so a run's sequence of
    /// faults is the same every time ([`DEFAULT_FAULT_SEED`], or [`Faults::reseed`]).
    draws: Mutex<rand::rngs::StdRng>,
}

/// The seed of every simulator's fault draws unless a test reseeds them.
pub const DEFAULT_FAULT_SEED: u64 = 17;

impl Default for Faults {
    fn default() -> Self {
        use rand::SeedableRng;
        Self {
            rules: Mutex::default(),
            arm_buckets: Mutex::default(),
            draws: Mutex::new(rand::rngs::StdRng::seed_from_u64(DEFAULT_FAULT_SEED)),
        }
    }
}

/// ARM's regional limits (Learn, *Azure Resource Manager request limits and throttling*, "Regional
/// throttling and token bucket algorithm", since 2024): per subscription, per service principal and
/// per operation type, a bucket of (size, refill per second). Also documented, not modelled: the
/// tenant-level buckets (same sizes) and a subscription-wide limit of 15 times these for all
/// principals together. Assumed: POST (list alerts, entities) counts as a write.
pub const ARM_BUCKETS: [(&str, f64, f64); 3] =
    [("reads", 250.0, 25.0), ("writes", 200.0, 10.0), ("deletes", 200.0, 10.0)];

/// Which ARM bucket a request spends from.
fn arm_kind(method: &Method) -> (&'static str, f64, f64) {
    let kind = match *method {
        Method::GET | Method::HEAD => "reads",
        Method::DELETE => "deletes",
        _ => "writes",
    };
    ARM_BUCKETS.into_iter().find(|(k, ..)| *k == kind).expect("every kind has a bucket")
}

/// Spends one token of ARM's bucket for this subscription, principal and kind; the 429 ARM answers
/// when it is empty (`Retry-After` in seconds until a token is back). Off unless
/// `SimOptions::arm_limits`. The error body's code is the one ARM is reported to send
/// (`SubscriptionRequestsThrottled`); its message is ours.
pub fn arm_throttle(sim: &Sim, path: &str, principal: &str, method: &Method) -> Option<Response> {
    if !sim.options().arm_limits {
        return None;
    }
    let subscription = path.split('/').nth(2).unwrap_or_default().to_ascii_lowercase();
    let (kind, size, refill) = arm_kind(method);
    let now = std::time::Instant::now();
    let mut buckets = sim.faults.arm_buckets.lock().unwrap_or_else(|p| p.into_inner());
    let (tokens, at) = buckets.entry((subscription.clone(), principal.to_string(), kind)).or_insert((size, now));
    *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * refill).min(size);
    *at = now;
    if *tokens >= 1.0 {
        *tokens -= 1.0;
        return None;
    }
    let wait = ((1.0 - *tokens) / refill).ceil().max(1.0) as u64;
    drop(buckets);
    sim.stats.bump("arm.throttled");
    sim.stats.bump(&format!("arm.throttled.{kind}"));
    let message = format!(
        "Number of '{kind}' requests for subscription '{subscription}' actor '{principal}' exceeded. \
         Please try again after '{wait}' seconds after additional tokens are available."
    );
    let mut resp = arm_error(StatusCode::TOO_MANY_REQUESTS, "SubscriptionRequestsThrottled", message);
    resp.headers_mut().insert("retry-after", wait.to_string().parse().expect("digits are a valid header"));
    Some(resp)
}

impl Faults {
    /// Restarts the fault draws from `seed` (a test that wants another sequence).
    pub fn reseed(&self, seed: u64) {
        use rand::SeedableRng;
        *self.draws.lock().unwrap_or_else(|p| p.into_inner()) = rand::rngs::StdRng::seed_from_u64(seed);
    }

    fn draw(&self) -> f64 {
        use rand::Rng;
        self.draws.lock().unwrap_or_else(|p| p.into_inner()).gen::<f64>()
    }

    pub fn set(&self, rules: Vec<FaultRule>) {
        *self.rules.lock().unwrap_or_else(|p| p.into_inner()) = rules;
    }

    fn pick(&self, api: &str, write: bool) -> Option<FaultRule> {
        let mut rules = self.rules.lock().unwrap_or_else(|p| p.into_inner());
        for rule in rules.iter_mut() {
            let applies = (rule.api == "all" || rule.api == api)
                && (write || !matches!(rule.kind, FaultKind::CommitThenFail { .. }));
            if applies && rule.remaining != Some(0) && self.draw() < rule.rate {
                if let Some(n) = rule.remaining.as_mut() {
                    *n -= 1;
                }
                return Some(rule.clone());
            }
        }
        None
    }
}

#[derive(Default)]
pub struct Stats {
    counts: Mutex<BTreeMap<String, u64>>,
}

impl Stats {
    pub fn bump(&self, op: &str) {
        *self.counts.lock().unwrap_or_else(|p| p.into_inner()).entry(op.to_string()).or_default() += 1;
    }
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    pub fn reset(&self) {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// Which simulated API a path belongs to.
pub fn api_of(path: &str) -> Option<&'static str> {
    if path.starts_with("/_sim") {
        None
    } else if path.starts_with("/v1.0/") || path.starts_with("/beta/") {
        Some("graph")
    } else if path.to_ascii_lowercase().starts_with("/subscriptions/") {
        Some("arm")
    } else if path.starts_with("/dataCollectionRules/") {
        Some("logs")
    } else if path.contains("/oauth2/") || path.starts_with("/msi/") {
        Some("entra")
    } else {
        None
    }
}

/// Whether a request to `api` changes state (the requests `CommitThenFail` applies to).
pub fn is_write(api: &str, method: &Method) -> bool {
    match api {
        "graph" | "logs" => matches!(*method, Method::PATCH | Method::POST | Method::PUT | Method::DELETE),
        "arm" => matches!(*method, Method::PATCH | Method::PUT | Method::DELETE),
        _ => false,
    }
}

/// Spends one call of the tenant's Graph budget (a sliding minute); `Some(seconds to wait)`
/// when it is spent.
fn over_budget(sim: &Sim) -> Option<u64> {
    let limit = sim.options().graph_calls_per_minute? as usize;
    let now = std::time::Instant::now();
    let minute = Duration::from_secs(60);
    let mut window = sim.graph_window.lock().unwrap_or_else(|p| p.into_inner());
    while window.front().is_some_and(|t| now.duration_since(*t) >= minute) {
        window.pop_front();
    }
    if window.len() >= limit {
        let oldest = *window.front()?;
        return Some((minute - now.duration_since(oldest)).as_secs().max(1));
    }
    window.push_back(now);
    None
}

/// The injected answer, in the error shape of the API it stands in for.
fn fault_response(api: &str, status: u16, retry_after_secs: Option<u64>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let error_code = match status {
        429 => "TooManyRequests",
        500 => "InternalServerError",
        502 => "BadGateway",
        503 => "ServiceUnavailable",
        504 => "GatewayTimeout",
        _ => "SimulatedFault",
    };
    let message = format!("simulated {status}");
    let mut resp =
        if api == "graph" { graph_error(code, error_code, message) } else { arm_error(code, error_code, message) };
    if matches!(status, 429 | 503) {
        let secs = retry_after_secs.unwrap_or(1).to_string();
        resp.headers_mut().insert("retry-after", secs.parse().expect("digits are a valid header"));
    }
    resp
}

pub async fn apply(State(sim): State<Arc<Sim>>, req: Request, next: Next) -> Response {
    let Some(api) = api_of(req.uri().path()) else {
        return next.run(req).await;
    };
    sim.stats.bump(&format!("{api}.requests"));
    if api == "graph" {
        if let Some(wait) = over_budget(&sim) {
            sim.stats.bump("graph.throttled");
            return fault_response(api, 429, Some(wait));
        }
    }
    let write = is_write(api, req.method());
    match sim.faults.pick(api, write) {
        Some(FaultRule { kind: FaultKind::Status { status }, retry_after_secs, .. }) => {
            sim.stats.bump(&format!("{api}.faults"));
            fault_response(api, status, retry_after_secs)
        }
        Some(FaultRule { kind: FaultKind::Slow { millis }, .. }) => {
            sim.stats.bump(&format!("{api}.faults"));
            tokio::time::sleep(Duration::from_millis(millis)).await;
            next.run(req).await
        }
        Some(FaultRule { kind: FaultKind::CommitThenFail { status }, retry_after_secs, .. }) => {
            let real = next.run(req).await;
            if !real.status().is_success() {
                return real;
            }
            sim.stats.bump(&format!("{api}.faults"));
            sim.stats.bump(&format!("{api}.commit_then_fail"));
            fault_response(api, status, retry_after_secs)
        }
        None => next.run(req).await,
    }
}

/// A Graph-shaped error response (`error.code`, `message`, `innerError` with date and ids).
pub fn graph_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    let now = time::OffsetDateTime::now_utc();
    let date = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let id = uuid::Uuid::new_v4().to_string();
    let body = serde_json::json!({"error": {"code": code, "message": message.into(),
        "innerError": {"date": date, "request-id": id, "client-request-id": id}}});
    (status, axum::Json(body)).into_response()
}

/// An ARM `CloudError` response.
pub fn arm_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, axum::Json(serde_json::json!({"error": {"code": code, "message": message.into()}}))).into_response()
}

pub fn empty(status: StatusCode) -> Response {
    Response::builder().status(status).body(Body::empty()).expect("static response")
}
