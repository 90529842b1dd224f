//! Health that tells the truth (ARCHITECTURE.md: “Failure rules”): per feed (Defender poll,
//! Sentinel sweep) the last success, the last error and the lag; queue backlog, poison and
//! failure counts; and a status with its reasons. Anyone may read the status and the reasons;
//! details (incident ids, error texts) need the webhook key. `unhealthy` answers 503.

use serde::Serialize;
use time::OffsetDateTime;

use crate::domain::failures::FailureRecord;
use crate::error::PortError;
use crate::metrics::CallCounts;
use crate::ports::Table;
use crate::records::{feed_health_key, FeedHealth};
use crate::state::{load, put};
use crate::usecase::health_facts::{self, Probe};
pub use crate::usecase::health_rules::{assess, permission_hint, Cadence, Facts, OLD_MESSAGE};
use crate::usecase::Ports;

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
