//! Health that tells the truth (ARCHITECTURE.md: “Failure rules”): per feed (Defender poll,
//! Sentinel sweep) the last success, the last error and the lag; queue backlog, poison and
//! failure counts; and a status with its reasons. Anyone may read the status and the reasons;
//! details (incident ids, error texts) need the webhook key. `unhealthy` answers 503.

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::domain::failures::{FailureClass, FailureRecord};
use crate::error::PortError;
use crate::metrics::CallCounts;
use crate::ports::Table;
use crate::records::{feed_health_key, feed_label, FeedHealth};
use crate::state::{load, put};
use crate::usecase::health_facts::{self, Probe};
use crate::usecase::Ports;

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

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `healthy`, `degraded` or `unhealthy`.
    pub status: &'static str,
    pub reasons: Vec<String>,
    pub version: &'static str,
    /// `XDRSYNC_TARGET`: `sentinel` or `defender-portal` (docs/unified-portal.md).
    pub target: &'static str,
    /// Only for callers with the webhook key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Details>,
    /// Set while storage does not answer: when the facts behind this answer were gathered.
    #[serde(skip_serializing_if = "Option::is_none", with = "crate::domain::time_fmt::rfc3339_opt")]
    pub facts_from: Option<OffsetDateTime>,
    /// One entry per Defender tenant (multi-tenant mode only; ARCHITECTURE.md: “Tenants”).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<super::tenant_health::TenantHealth>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Details {
    pub storage_reachable: bool,
    pub feeds: Vec<FeedReport>,
    pub queue_backlog: Option<usize>,
    pub poison: Option<usize>,
    /// Age of the oldest visible message in the queue (messages in flight are not seen).
    pub oldest_message_age_seconds: Option<i64>,
    pub failures: usize,
    pub recent_failures: Vec<FailureRecord>,
    pub sentinel_incidents_not_mirrored: u64,
    pub calls: CallCounts,
    /// This process's poller ticks (count, last and longest duration).
    pub poller: crate::metrics::PollerCounts,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedReport {
    pub feed: &'static str,
    #[serde(flatten)]
    pub health: FeedHealth,
    /// Now minus the cursor's watermark (how far behind the service the feed is).
    pub lag_seconds: Option<i64>,
    /// The workspace of a feed that runs once per workspace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workspace: Option<String>,
}

impl Health {
    pub fn http_status(&self) -> u16 {
        if self.status == "unhealthy" {
            503
        } else {
            200
        }
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

fn class_name(e: &PortError) -> &'static str {
    match e {
        PortError::Unauthorized { .. } => "unauthorized",
        PortError::Forbidden { .. } => "forbidden",
        PortError::Throttled { .. } => "throttled",
        PortError::Unavailable { .. } => "unavailable",
        _ => "rejected",
    }
}

/// Records how a feed's poll went; logs once when a failing feed works again.
pub async fn record_feed(s: &Ports, feed: &'static str, outcome: Result<(), &crate::usecase::UseCaseError>) {
    record_feed_at(s, &s.config.tenant_id, feed, outcome).await
}

/// [`record_feed`] in the partition `partition` (a feed per workspace: “Native alerts”).
pub async fn record_feed_at(
    s: &Ports,
    partition: &str,
    feed: &'static str,
    outcome: Result<(), &crate::usecase::UseCaseError>,
) {
    let now = s.clock.now();
    let Ok(key) = feed_health_key(partition, feed) else { return };
    let mut h = match load::<FeedHealth>(s.store.as_ref(), Table::Cursors, &key).await {
        Ok(v) => v.map(|v| v.value).unwrap_or_default(),
        Err(_) => return, // storage is down: health reports that by itself
    };
    match outcome {
        Ok(()) => {
            if let Some(since) = h.failing_since.take() {
                tracing::info!(feed, failing_s = (now - since).whole_seconds(), "feed works again");
            }
            h.last_success = Some(now);
        }
        Err(e) => {
            h.failing_since.get_or_insert(now);
            h.last_error_at = Some(now);
            h.last_error = Some(e.to_string());
            if let crate::usecase::UseCaseError::Retry(p) = e {
                h.last_error_service = Some(p.service().to_string());
                h.last_error_class = Some(class_name(p).to_string());
            } else {
                h.last_error_service = None;
                h.last_error_class = Some("rejected".into());
            }
        }
    }
    if let Err(e) = put(s.store.as_ref(), Table::Cursors, &key, &h, &[]).await {
        tracing::debug!(feed, error.message = %e, "could not record the feed's health");
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

/// The health report, assessed now; `with_details` for callers that presented the webhook
/// key. Each storage call is bounded (`health_facts::Probe`). Served health goes through the
/// cache instead (`health_cache::current`).
pub async fn check(s: &Ports, with_details: bool) -> Health {
    assess_now(s, with_details).await.0
}

/// [`check`], with the facts it was made from.
pub(crate) async fn assess_now(s: &Ports, with_details: bool) -> (Health, Facts) {
    let now = s.clock.now();
    let probe = Probe::new();
    let facts = health_facts::gather(s, &probe).await;
    let poll = health_facts::cadence(s, &s.config.poll_schedule, now);
    let (status, reasons) = assess(&facts, now, poll);
    let (status, reasons, tenants) = if s.is_multi_tenant() {
        super::tenant_health::combine(s, &probe, status, reasons, now, poll).await
    } else {
        (status, reasons, Vec::new())
    };
    let health = report(s, &facts, now, status, reasons, tenants, with_details);
    (health, facts)
}

/// The report from assessed facts.
pub(crate) fn report(
    s: &Ports,
    facts: &Facts,
    now: OffsetDateTime,
    status: &'static str,
    reasons: Vec<String>,
    tenants: Vec<super::tenant_health::TenantHealth>,
    with_details: bool,
) -> Health {
    let details = with_details.then(|| {
        let mut recent = facts.failures.clone();
        recent.sort_by_key(|r| std::cmp::Reverse(r.last_failure));
        recent.truncate(20);
        Details {
            storage_reachable: facts.storage_reachable,
            feeds: facts
                .feeds
                .iter()
                .map(|(feed, h, watermark)| FeedReport {
                    feed,
                    health: h.clone(),
                    lag_seconds: watermark.map(|w| (now - w).whole_seconds()),
                    workspace: None,
                })
                .chain(facts.jobs.iter().map(|(feed, h, _)| FeedReport {
                    feed,
                    health: h.clone(),
                    lag_seconds: None,
                    workspace: None,
                }))
                .chain(facts.workspace_jobs.iter().map(|(ws, feed, h, _)| FeedReport {
                    feed,
                    health: h.clone(),
                    lag_seconds: None,
                    workspace: Some(ws.clone()),
                }))
                .collect(),
            queue_backlog: facts.queue_backlog,
            poison: facts.poison,
            oldest_message_age_seconds: facts.oldest_message.map(|t| (now - t).whole_seconds()),
            failures: facts.failures.len(),
            recent_failures: recent,
            sentinel_incidents_not_mirrored: s
                .counters
                .incidents_not_mirrored
                .load(std::sync::atomic::Ordering::Relaxed),
            calls: s.counters.snapshot(),
            poller: s.counters.poller(),
        }
    });
    Health {
        status,
        reasons,
        version: env!("CARGO_PKG_VERSION"),
        target: s.config.target.name(),
        details,
        facts_from: None,
        tenants,
    }
}

#[cfg(test)]
#[path = "health_tests.rs"]
mod tests;
