//! `xdrsync status`: the one-screen summary an operator reads in five seconds. Built on the
//! health check (`usecase/health.rs`: the same status, reasons, feeds, queue and failure
//! counts), plus what the reconciles did in the last 24 hours (`usecase/activity.rs`) and the
//! last errors. Exit code: 0 healthy or degraded, 1 unhealthy (2 for a configuration error, as
//! every command).

use serde::Serialize;
use time::OffsetDateTime;

use crate::domain::activity::ActivityCounts;
use crate::domain::time_fmt;
use crate::usecase::health::{self, FeedReport};
use crate::usecase::Ports;

/// How many recent errors the summary shows.
const LAST_ERRORS: usize = 5;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// `healthy`, `degraded` or `unhealthy` (as `GET /api/health`).
    pub status: &'static str,
    pub reasons: Vec<String>,
    pub version: &'static str,
    /// `XDRSYNC_TARGET` (`sentinel` or `defender-portal`).
    pub target: &'static str,
    pub tenant_id: String,
    #[serde(with = "time_fmt::rfc3339")]
    pub checked_at: OffsetDateTime,
    pub storage_reachable: bool,
    pub feeds: Vec<FeedReport>,
    /// Approximate message counts (queue metadata); `null` when the queue could not be read.
    pub queue_backlog: Option<usize>,
    pub poison: Option<usize>,
    /// Age of the oldest visible message in the queue (Peek Messages; in-flight ones unseen).
    pub oldest_message_age_seconds: Option<i64>,
    pub failures: usize,
    /// Mirrors created, incidents redirected (merged away in Defender) and conflicts, in the
    /// last 24 hours (whole hours; approximate).
    pub last_24h: Option<ActivityCounts>,
    pub last_errors: Vec<LastError>,
    /// One row per Defender tenant (multi-tenant mode only; as `GET /api/health`'s `tenants`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<crate::usecase::tenant_health::TenantHealth>,
    /// Native alerts' trigger rows per workspace (`XDRSYNC_ATTACH_ALERTS`); `null` when the
    /// outbox could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert_triggers: Option<Vec<crate::usecase::attach_alerts::WorkspaceBacklog>>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    #[serde(with = "time_fmt::rfc3339")]
    pub at: OffsetDateTime,
    /// `Defender poll`, `Sentinel sweep` or `incident <id>`.
    pub source: String,
    pub message: String,
}

impl Status {
    pub fn exit_code(&self) -> u8 {
        u8::from(self.status == "unhealthy")
    }
}

/// Gathers the status of the configured tenant.
pub async fn gather(s: &Ports) -> Status {
    let health = health::check(s, true).await;
    let details = health.details.expect("details were asked for");
    // Activity is counted in each tenant's partition: add the tenants up.
    let mut last_24h = Some(ActivityCounts::default());
    for t in s.each_tenant() {
        match (crate::usecase::activity::last_24h(&t).await, last_24h.as_mut()) {
            (Ok(c), Some(total)) => total.add(&c),
            _ => last_24h = None,
        }
    }
    let mut last_errors: Vec<LastError> = details
        .feeds
        .iter()
        .filter_map(|f| {
            Some(LastError {
                at: f.health.last_error_at?,
                source: feed_title(f),
                message: f.health.last_error.clone()?,
            })
        })
        .chain(details.recent_failures.iter().map(|r| LastError {
            at: r.last_failure,
            source: format!("incident {}", r.incident_id),
            message: r.message.clone(),
        }))
        .collect();
    last_errors.sort_by_key(|e| std::cmp::Reverse(e.at));
    last_errors.truncate(LAST_ERRORS);
    let tenants = health.tenants.clone();
    let alert_triggers = match s.config.alerts.attach {
        true => crate::usecase::attach_alerts::backlogs(s).await.ok(),
        false => None,
    };
    Status {
        alert_triggers,
        tenants,
        status: health.status,
        reasons: health.reasons,
        version: health.version,
        target: health.target,
        tenant_id: s.config.tenant_id.clone(),
        checked_at: s.clock.now(),
        storage_reachable: details.storage_reachable,
        feeds: details.feeds,
        queue_backlog: details.queue_backlog,
        poison: details.poison,
        oldest_message_age_seconds: details.oldest_message_age_seconds,
        failures: details.failures,
        last_24h,
        last_errors,
    }
}

fn feed_name(feed: &str) -> &'static str {
    crate::records::feed_label(feed)
}

/// The feed's name, with its workspace when it runs once per workspace.
fn feed_title(f: &FeedReport) -> String {
    match &f.workspace {
        Some(w) => format!("{} ({w})", feed_name(f.feed)),
        None => feed_name(f.feed).to_string(),
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("?".into(), |v| v.to_string())
}

fn ago(now: OffsetDateTime, t: Option<OffsetDateTime>) -> String {
    match t {
        None => "never".into(),
        Some(t) => format!("{} ago", human((now - t).whole_seconds())),
    }
}

fn human(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} d", s / 86_400),
    }
}

/// The text form: a headline, the reasons, one line per feed, the counts, the last errors.
pub fn render(st: &Status) -> String {
    let mut out = format!(
        "xdrsync {} · tenant {} · target {} · {}\n",
        st.version,
        st.tenant_id,
        st.target,
        st.status.to_uppercase()
    );
    for r in &st.reasons {
        out.push_str(&format!("  ! {r}\n"));
    }
    for f in &st.feeds {
        let failing =
            f.health.failing_since.map_or(String::new(), |t| format!(", failing since {}", time_fmt::format(t)));
        out.push_str(&format!(
            "{:<15} last success {:<10} lag {}{}\n",
            feed_title(f),
            ago(st.checked_at, f.health.last_success),
            f.lag_seconds.map_or("?".into(), human),
            failing
        ));
    }
    for t in &st.tenants {
        let why = t.reasons.first().map_or(String::new(), |r| format!(" · {r}"));
        out.push_str(&format!(
            "tenant {:<24} {:<9} lag {} · failures {}{}\n",
            t.display_name,
            t.status,
            t.lag_seconds.map_or("?".into(), human),
            t.failures,
            why
        ));
    }
    let oldest = st.oldest_message_age_seconds.map_or(String::new(), |a| format!(" · oldest {}", human(a)));
    out.push_str(&format!(
        "queue           backlog {}{oldest} · poison {} · failures {}\n",
        opt(st.queue_backlog),
        opt(st.poison),
        st.failures
    ));
    for b in st.alert_triggers.iter().flatten() {
        out.push_str(&format!(
            "alert triggers  {} · pending {} · in flight {} · oldest {} · resends {} · summaries {} · failed {}\n",
            b.workspace,
            b.backlog.pending,
            b.backlog.in_flight,
            b.backlog.oldest_pending_seconds.map_or("-".into(), human),
            b.backlog.resends,
            b.summaries_seen,
            b.backlog.failed
        ));
    }
    match &st.last_24h {
        Some(a) => out.push_str(&format!(
            "last 24 h       mirrored {} · redirected {} · conflicted {}\n",
            a.mirrored, a.redirected, a.conflicted
        )),
        None => out.push_str("last 24 h       ? (storage unreachable)\n"),
    }
    if st.last_errors.is_empty() {
        out.push_str("last errors     none\n");
    } else {
        out.push_str("last errors\n");
        for e in &st.last_errors {
            let mut msg = e.message.clone();
            if msg.chars().count() > 120 {
                msg = msg.chars().take(117).collect::<String>() + "...";
            }
            out.push_str(&format!("  {} {}: {}\n", time_fmt::format(e.at), e.source, msg));
        }
    }
    out
}
