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
use crate::records::{
    feed_health_key, feed_label, CursorRecord, FeedHealth, ALERTS_FEED, HUNTING_FEED, HUNTING_STORAGE_FEED,
    INCIDENTS_FEED, SENTINEL_FEED,
};
use crate::state::{load, put, RowKey};
use crate::usecase::Ports;

/// Failures older than this make the status at least `degraded`.
const OLD_FAILURE: Duration = Duration::minutes(15);

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

/// Everything health looks at, gathered (the I/O half).
pub struct Facts {
    pub storage_reachable: bool,
    pub feeds: Vec<(&'static str, FeedHealth, Option<OffsetDateTime>)>,
    pub queue_backlog: Option<usize>,
    pub poison: Option<usize>,
    pub failures: Vec<FailureRecord>,
    /// The optional jobs' feeds (alert attach, hunting sources), each with how often it runs.
    pub jobs: Vec<(&'static str, FeedHealth, Duration)>,
    /// Jobs that run once per workspace (alert attach with many tenants): the workspace's name,
    /// the feed, its health and how often it runs.
    pub workspace_jobs: Vec<(String, &'static str, FeedHealth, Duration)>,
}

/// The status and its reasons from the facts (the pure half). `interval` is the poll interval.
pub fn assess(f: &Facts, now: OffsetDateTime, interval: Duration) -> (&'static str, Vec<String>) {
    let mut unhealthy = Vec::new();
    let mut degraded = Vec::new();
    if !f.storage_reachable {
        unhealthy.push("storage is unreachable".to_string());
    }
    let feeds = f.feeds.iter().map(|(feed, h, _)| (*feed, h, interval));
    for (feed, h, interval) in feeds.chain(f.jobs.iter().map(|(feed, h, every)| (*feed, h, *every))) {
        judge_feed(feed_label(feed), h, now, interval, &mut unhealthy, &mut degraded);
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

/// One feed's verdict: denied at once, failing for two intervals, or silent for too long.
fn judge_feed(
    name: &str,
    h: &FeedHealth,
    now: OffsetDateTime,
    interval: Duration,
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
        Some(since) if now - since > interval * 2 => {
            unhealthy.push(format!("{name} has failed for {} s", (now - since).whole_seconds()))
        }
        Some(_) => degraded.push(format!("{name} failed at its last run")),
        None => {}
    }
    if h.failing_since.is_none() && h.last_success.is_some_and(|t| now - t > interval * 2 + Duration::minutes(1)) {
        unhealthy.push(format!("{name} has not run for {} s", (now - h.last_success.unwrap_or(now)).whole_seconds()));
    }
}

/// One feed's health row and cursor watermark in `s`'s tenant partition; `false` when storage
/// did not answer.
pub(crate) async fn feed_facts(
    s: &Ports,
    feed: &'static str,
) -> (bool, (&'static str, FeedHealth, Option<OffsetDateTime>)) {
    feed_facts_at(s, &s.config.tenant_id, feed).await
}

/// [`feed_facts`] in the partition `tenant` (a tenant, or a workspace's key).
async fn feed_facts_at(
    s: &Ports,
    tenant: &str,
    feed: &'static str,
) -> (bool, (&'static str, FeedHealth, Option<OffsetDateTime>)) {
    let health = match feed_health_key(tenant, feed) {
        Ok(k) => load::<FeedHealth>(s.store.as_ref(), Table::Cursors, &k).await,
        Err(e) => Err(e),
    };
    let cursor = match RowKey::new(tenant, feed) {
        Ok(k) => load::<CursorRecord>(s.store.as_ref(), Table::Cursors, &k).await,
        Err(e) => Err(e),
    };
    let reachable = health.is_ok() && cursor.is_ok();
    let watermark = cursor.ok().flatten().map(|c| c.value.cursor.watermark);
    (reachable, (feed, health.ok().flatten().map(|v| v.value).unwrap_or_default(), watermark))
}

async fn gather(s: &Ports) -> Facts {
    let mut storage_reachable = true;
    let mut feeds = Vec::new();
    if s.is_multi_tenant() {
        // Tenants' own feeds and failures are assessed per tenant; here the sweeps only.
        for w in s.each_workspace() {
            let (ok, f) = feed_facts(&w, SENTINEL_FEED).await;
            storage_reachable &= ok;
            feeds.push(f);
        }
    } else {
        for feed in [INCIDENTS_FEED, SENTINEL_FEED] {
            let (ok, f) = feed_facts(s, feed).await;
            storage_reachable &= ok;
            feeds.push(f);
        }
    }
    if s.config.target == crate::domain::portal::SyncTarget::DefenderPortal {
        let (ok, f) = feed_facts(s, crate::usecase::portal::FEED).await;
        storage_reachable &= ok;
        feeds.push(f);
    }
    let queue = &s.config.queue_name;
    let queue_backlog = s.queue.approximate_len(queue).await.ok();
    let poison = s.queue.approximate_len(&format!("{queue}-poison")).await.ok();
    let failures =
        if s.is_multi_tenant() { Vec::new() } else { crate::usecase::failures::list(s).await.unwrap_or_default() };
    let mut jobs = Vec::new();
    let mut workspace_jobs = Vec::new();
    // With many tenants the query source runs per tenant: its feed is judged per tenant.
    let per_tenant = |feed: &str| s.is_multi_tenant() && feed == HUNTING_FEED;
    for (feed, every) in job_feeds(s).into_iter().filter(|(f, _)| !per_tenant(f)) {
        if feed == ALERTS_FEED && s.is_multi_tenant() {
            // One attach run per workspace, each with its own feed row (“Native alerts”).
            for w in s.each_workspace() {
                let partition = crate::usecase::attach_alerts::scope(&w).partition;
                let (ok, (feed, health, _)) = feed_facts_at(&w, &partition, feed).await;
                storage_reachable &= ok;
                workspace_jobs.push((w.config.workspace.name.clone(), feed, health, every));
            }
            continue;
        }
        let (ok, (feed, health, _)) = feed_facts(s, feed).await;
        storage_reachable &= ok;
        jobs.push((feed, health, every));
    }
    Facts { storage_reachable, feeds, queue_backlog, poison, failures, jobs, workspace_jobs }
}

/// The optional jobs that are on, each with the interval of its schedule.
pub(crate) fn job_feeds(s: &Ports) -> Vec<(&'static str, Duration)> {
    let now = s.clock.now();
    let every = |expr: &str| {
        crate::schedule::Schedule::parse(expr)
            .ok()
            .and_then(|sch| Duration::try_from(sch.wait_from(now)).ok())
            .unwrap_or(Duration::minutes(5))
            .max(Duration::seconds(1))
    };
    let mut jobs = Vec::new();
    if s.config.alerts.attach {
        jobs.push((ALERTS_FEED, every(&s.config.poll_schedule)));
    }
    if !s.config.hunting.tables.is_empty() {
        jobs.push((HUNTING_FEED, every(&s.config.hunting.schedule)));
    }
    if !s.config.hunting.storage_tables.is_empty() {
        jobs.push((HUNTING_STORAGE_FEED, every(&s.config.hunting.schedule)));
    }
    jobs
}

/// The health report; `with_details` for callers that presented the webhook key.
pub async fn check(s: &Ports, with_details: bool) -> Health {
    let now = s.clock.now();
    let facts = gather(s).await;
    let interval = crate::schedule::Schedule::parse(&s.config.poll_schedule)
        .ok()
        .and_then(|sch| Duration::try_from(sch.wait_from(now)).ok())
        .unwrap_or(Duration::seconds(30))
        .max(Duration::seconds(1));
    let (status, reasons) = assess(&facts, now, interval);
    let (status, reasons, tenants) = if s.is_multi_tenant() {
        super::tenant_health::combine(s, status, reasons, now, interval).await
    } else {
        (status, reasons, Vec::new())
    };
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
    Health { status, reasons, version: env!("CARGO_PKG_VERSION"), target: s.config.target.name(), details, tenants }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-11-29 12:00 UTC);

    fn facts() -> Facts {
        let ok = FeedHealth { last_success: Some(NOW - Duration::seconds(20)), ..Default::default() };
        Facts {
            storage_reachable: true,
            feeds: vec![(INCIDENTS_FEED, ok.clone(), None), (SENTINEL_FEED, ok, None)],
            queue_backlog: Some(0),
            poison: Some(0),
            failures: vec![],
            jobs: vec![],
            workspace_jobs: vec![],
        }
    }

    fn failure(class: FailureClass, message: &str, age: Duration) -> FailureRecord {
        crate::domain::failures::record_failure(None, "t", "29", class, message, NOW - age, &[Duration::minutes(1)])
    }

    #[test]
    fn a_job_feed_is_judged_on_its_own_schedule_and_named() {
        let mut f = facts();
        let five_min = Duration::minutes(5);
        // Ran 8 minutes ago on a 5-minute schedule: fine, though the poll runs every 30 s.
        let ran = FeedHealth { last_success: Some(NOW - Duration::minutes(8)), ..Default::default() };
        f.jobs.push((HUNTING_FEED, ran, five_min));
        assert_eq!(assess(&f, NOW, Duration::seconds(30)), ("healthy", vec![]));
        // Silent for 12 minutes on that schedule: unhealthy, by its own name.
        f.jobs[0].1.last_success = Some(NOW - Duration::minutes(12));
        let (status, reasons) = assess(&f, NOW, Duration::seconds(30));
        assert_eq!(status, "unhealthy");
        assert!(reasons[0].starts_with("Hunting export has not run"), "{reasons:?}");
        // Denied: names the permission to grant.
        f.jobs[0].1 = FeedHealth {
            failing_since: Some(NOW - Duration::seconds(5)),
            last_error_class: Some("forbidden".into()),
            last_error_service: Some("hunting".into()),
            ..Default::default()
        };
        let (status, reasons) = assess(&f, NOW, Duration::seconds(30));
        assert_eq!(status, "unhealthy");
        assert!(
            reasons[0].contains("Hunting export fails") && reasons[0].contains("ThreatHunting.Read.All"),
            "{reasons:?}"
        );
    }

    #[test]
    fn an_attach_run_per_workspace_is_judged_and_named_on_its_own() {
        let mut f = facts();
        let ok = FeedHealth { last_success: Some(NOW - Duration::seconds(20)), ..Default::default() };
        let denied = FeedHealth {
            failing_since: Some(NOW - Duration::seconds(5)),
            last_error_class: Some("forbidden".into()),
            last_error_service: Some("log-analytics".into()),
            ..Default::default()
        };
        let every = Duration::seconds(30);
        f.workspace_jobs.push(("soc".into(), ALERTS_FEED, ok, every));
        f.workspace_jobs.push(("soc-emea".into(), ALERTS_FEED, denied, every));
        let (status, reasons) = assess(&f, NOW, every);
        assert_eq!(status, "unhealthy");
        assert_eq!(reasons.len(), 1, "{reasons:?}");
        assert!(
            reasons[0].starts_with("Alert attach in soc-emea fails") && reasons[0].contains("Log Analytics Reader")
        );
        f.workspace_jobs.pop();
        assert_eq!(assess(&f, NOW, every), ("healthy", vec![]));
    }

    #[test]
    fn quiet_and_working_is_healthy() {
        assert_eq!(assess(&facts(), NOW, Duration::seconds(30)), ("healthy", vec![]));
    }

    #[test]
    fn a_feed_denied_names_the_missing_permission_at_once() {
        let mut f = facts();
        f.feeds[0].1 = FeedHealth {
            failing_since: Some(NOW - Duration::seconds(5)),
            last_error_service: Some("graph".into()),
            last_error_class: Some("forbidden".into()),
            ..f.feeds[0].1.clone()
        };
        let (status, reasons) = assess(&f, NOW, Duration::seconds(30));
        assert_eq!(status, "unhealthy");
        assert!(reasons[0].contains("Graph 403: grant the app SecurityIncident.ReadWrite.All"), "{reasons:?}");
    }

    #[test]
    fn a_feed_failing_for_two_intervals_is_unhealthy_one_failure_degraded() {
        let mut f = facts();
        f.feeds[1].1.failing_since = Some(NOW - Duration::seconds(10));
        assert_eq!(assess(&f, NOW, Duration::seconds(30)).0, "degraded");
        f.feeds[1].1.failing_since = Some(NOW - Duration::seconds(61));
        assert_eq!(assess(&f, NOW, Duration::seconds(30)).0, "unhealthy");
    }

    #[test]
    fn old_failures_and_poison_degrade_and_denied_incidents_are_unhealthy() {
        let mut f = facts();
        f.failures = vec![failure(FailureClass::Unavailable, "sentinel is unavailable", Duration::minutes(16))];
        assert_eq!(assess(&f, NOW, Duration::seconds(30)).0, "degraded");
        f.failures = vec![failure(FailureClass::Unavailable, "sentinel is unavailable", Duration::minutes(1))];
        f.poison = Some(2);
        assert_eq!(assess(&f, NOW, Duration::seconds(30)).0, "degraded");
        let mut denied = failure(FailureClass::Forbidden, "sentinel denied the call", Duration::minutes(1));
        denied.service = Some("sentinel".into());
        f.failures.push(denied);
        let (status, reasons) = assess(&f, NOW, Duration::seconds(30));
        assert_eq!(status, "unhealthy");
        assert!(reasons.iter().any(|r| r.contains("Microsoft Sentinel Responder")), "{reasons:?}");
    }

    #[test]
    fn a_silent_poller_is_unhealthy() {
        let mut f = facts();
        f.feeds[0].1.last_success = Some(NOW - Duration::minutes(5));
        assert_eq!(assess(&f, NOW, Duration::seconds(30)).0, "unhealthy");
    }

    #[test]
    fn no_storage_is_unhealthy() {
        let mut f = facts();
        f.storage_reachable = false;
        assert_eq!(assess(&f, NOW, Duration::seconds(30)), ("unhealthy", vec!["storage is unreachable".to_string()]));
    }
}
