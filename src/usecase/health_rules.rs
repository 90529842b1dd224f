//! How health is judged, pure: the facts gathered (`health_facts.rs`), each feed's cadence, and
//! the status with its reasons. `health.rs` records feeds and serves the report;
//! `tenant_health.rs` judges each Defender tenant with the same rules.

use time::{Duration, OffsetDateTime};

use crate::domain::failures::{FailureClass, FailureRecord};
use crate::records::{feed_label, FeedHealth};

/// Failures older than this make the status at least `degraded`.
const OLD_FAILURE: Duration = Duration::minutes(15);
/// A visible queue message older than this makes the status at least `degraded`: the workers
/// are not keeping up (or not running), whatever the backlog count says.
pub const OLD_MESSAGE: Duration = Duration::minutes(5);

/// How a feed is judged: how often its schedule fires around now (the gap between
/// consecutive occurrences, `Schedule::interval_around`) and how long one run may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cadence {
    pub interval: Duration,
    pub grace: Duration,
}

impl Cadence {
    /// How long a feed may fail, or go without a success, before it is `unhealthy`: two
    /// intervals plus one run's time. A feed that runs on time succeeds at least once per
    /// interval (plus its run's duration), so it never reaches this.
    pub fn limit(&self) -> Duration {
        self.interval * 2 + self.grace
    }
}

/// What a missing permission is called, for a 401/403 from `service`.
pub fn permission_hint(service: &str, class: FailureClass) -> String {
    let status = if class == FailureClass::Unauthorized { 401 } else { 403 };
    let fix = match service {
        "graph" => "grant the app SecurityIncident.ReadWrite.All (and User.Read.All)",
        "sentinel" => "assign Microsoft Sentinel Responder on the workspace",
        "logs-ingestion" => "assign Monitoring Metrics Publisher on the data collection rule",
        "entra" | "managed-identity" => {
            "check XDRSYNC_CLIENT_ID and the secret, or the managed identity (another Defender tenant: its admin consent)"
        }
        "tables" | "queues" => "grant Storage Table and Queue Data Contributor on the storage account",
        "hunting" => "grant the app ThreatHunting.Read.All (Graph, application)",
        "log-analytics" => "assign Log Analytics Reader on the workspace",
        "blob-storage" => "assign Storage Blob Data Reader on the Streaming API's storage account",
        _ => "check the app's permissions",
    };
    format!("{} {status}: {fix}", service_name(service))
}

fn service_name(service: &str) -> &str {
    match service {
        "graph" => "Graph",
        "sentinel" => "Sentinel (ARM)",
        "logs-ingestion" => "Logs Ingestion",
        "hunting" => "Advanced hunting (Graph)",
        "log-analytics" => "Log Analytics query",
        "blob-storage" => "Blob storage",
        other => other,
    }
}

/// Everything health looks at, gathered (the I/O half: `health_facts.rs`).
#[derive(Debug, Clone)]
pub struct Facts {
    pub storage_reachable: bool,
    pub feeds: Vec<(&'static str, FeedHealth, Option<OffsetDateTime>)>,
    pub queue_backlog: Option<usize>,
    pub poison: Option<usize>,
    /// When the oldest visible message of the queue was inserted (Peek Messages).
    pub oldest_message: Option<OffsetDateTime>,
    pub failures: Vec<FailureRecord>,
    /// The optional jobs' feeds (alert attach, hunting sources), each with its cadence.
    pub jobs: Vec<(&'static str, FeedHealth, Cadence)>,
    /// Jobs that run once per workspace (alert attach with many tenants): the workspace's name,
    /// the feed, its health and its cadence.
    pub workspace_jobs: Vec<(String, &'static str, FeedHealth, Cadence)>,
}

/// The status and its reasons from the facts (the pure half). `poll` is the poll's cadence.
pub fn assess(f: &Facts, now: OffsetDateTime, poll: Cadence) -> (&'static str, Vec<String>) {
    let mut unhealthy = Vec::new();
    let mut degraded = Vec::new();
    if !f.storage_reachable {
        unhealthy.push("storage is unreachable".to_string());
    }
    let feeds = f.feeds.iter().map(|(feed, h, _)| (*feed, h, poll));
    for (feed, h, cadence) in feeds.chain(f.jobs.iter().map(|(feed, h, every)| (*feed, h, *every))) {
        judge_feed(feed_label(feed), h, now, cadence, &mut unhealthy, &mut degraded);
    }
    for (workspace, feed, h, every) in &f.workspace_jobs {
        let name = format!("{} in {workspace}", feed_label(feed));
        judge_feed(&name, h, now, *every, &mut unhealthy, &mut degraded);
    }
    let mut denied_services: Vec<String> = f
        .failures
        .iter()
        .filter(|r| matches!(r.class, FailureClass::Forbidden | FailureClass::Unauthorized))
        .map(|r| permission_hint(r.service.as_deref().unwrap_or(""), r.class))
        .collect();
    denied_services.sort();
    denied_services.dedup();
    for hint in denied_services {
        unhealthy.push(format!("incidents fail to sync: {hint}"));
    }
    let old = f.failures.iter().filter(|r| now - r.first_failure > OLD_FAILURE).count();
    if old > 0 {
        degraded.push(format!("{old} incident(s) failing for more than 15 minutes (xdrsync failures)"));
    }
    if let Some(p) = f.poison.filter(|p| *p > 0) {
        degraded.push(format!("{p} message(s) in the poison queue"));
    }
    if let Some(age) = f.oldest_message.map(|t| now - t).filter(|age| *age > OLD_MESSAGE) {
        degraded.push(format!(
            "the oldest queue message has waited {} s (over {} s): the workers are not keeping up",
            age.whole_seconds(),
            OLD_MESSAGE.whole_seconds()
        ));
    }
    let status = if !unhealthy.is_empty() {
        "unhealthy"
    } else if !degraded.is_empty() {
        "degraded"
    } else {
        "healthy"
    };
    unhealthy.extend(degraded);
    (status, unhealthy)
}

/// One feed's verdict: denied at once; failing, or without a success, for longer than its
/// cadence's limit; failed at its last run.
fn judge_feed(
    name: &str,
    h: &FeedHealth,
    now: OffsetDateTime,
    cadence: Cadence,
    unhealthy: &mut Vec<String>,
    degraded: &mut Vec<String>,
) {
    let denied = matches!(h.last_error_class.as_deref(), Some("forbidden" | "unauthorized"));
    match h.failing_since {
        Some(_) if denied => {
            let class = if h.last_error_class.as_deref() == Some("unauthorized") {
                FailureClass::Unauthorized
            } else {
                FailureClass::Forbidden
            };
            unhealthy.push(format!(
                "{name} fails: {}",
                permission_hint(h.last_error_service.as_deref().unwrap_or(""), class)
            ));
        }
        Some(since) if now - since > cadence.limit() => {
            unhealthy.push(format!("{name} has failed for {} s", (now - since).whole_seconds()))
        }
        Some(_) => degraded.push(format!("{name} failed at its last run")),
        None => {}
    }
    if h.failing_since.is_none() && h.last_success.is_some_and(|t| now - t > cadence.limit()) {
        unhealthy.push(format!("{name} has not run for {} s", (now - h.last_success.unwrap_or(now)).whole_seconds()));
    }
}
