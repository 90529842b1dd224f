//! `xdrsync backfill --since P90D`: mirrors the history of the window itself, without a worker
//! running. It lists the window's incidents in the poller's one-day windows (`domain/cursor.rs`:
//! `next_window`), then runs each incident through the queue workers' own job
//! (`jobs::sync_message`: same reconcile, retry budget, `Failures` records) a few at a time,
//! within the process's call budgets (Graph calls per minute, ARM writes per second). A separate
//! cursor (`Cursors` row `backfill`) records the next window to do after each window, so an
//! interrupted or crashed backfill resumes there (at most one window is redone, harmlessly).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use futures::StreamExt;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::domain::cursor::{next_window, Window};
use crate::domain::defender::IncidentStamp;
use crate::domain::time_fmt;
use crate::domain::work::{ChangeHint, WorkItem};
use crate::error::PortError;
use crate::metrics::CallCounts;
use crate::ports::Table;
use crate::state::{load, put, RowKey};
use crate::usecase::jobs::{sync_message, QueueVerdict};
use crate::usecase::Ports;

/// The backfill cursor's row key in `Cursors` (partition: tenant).
pub const BACKFILL_ROW: &str = "backfill";

/// The stored progress of a backfill.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BackfillRecord {
    /// Where the history asked for starts.
    #[serde(with = "time_fmt::rfc3339")]
    pub from: OffsetDateTime,
    /// Where the next window starts; `None` once finished.
    #[serde(default, with = "time_fmt::rfc3339_opt")]
    pub next_from: Option<OffsetDateTime>,
    #[serde(default)]
    pub done: u64,
    #[serde(default)]
    pub failed: u64,
    #[serde(with = "time_fmt::rfc3339")]
    pub started_at: OffsetDateTime,
    #[serde(default, with = "time_fmt::rfc3339_opt")]
    pub finished_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub since: time::Duration,
    /// Start over from `since` even if an unfinished backfill is recorded.
    pub restart: bool,
}

/// Told how the backfill goes (a progress bar on a terminal, log lines otherwise).
pub trait Progress: Send + Sync {
    fn listed(&self, total: u64);
    fn advanced(&self, done: u64);
    fn window_done(&self, until: Option<OffsetDateTime>, done: u64, total: u64);
    fn finish(&self);
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub tenant_id: String,
    #[serde(with = "time_fmt::rfc3339")]
    pub from: OffsetDateTime,
    /// Resumed an unfinished backfill (from `resumedAt`).
    #[serde(with = "time_fmt::rfc3339_opt")]
    pub resumed_at: Option<OffsetDateTime>,
    /// Incidents listed in what was left of the window.
    pub total: u64,
    /// Reconciled (mirrored, updated or already in sync).
    pub synced: u64,
    /// Acknowledged without a sync (gone from Defender, or refused for good; see `xdrsync failures`).
    pub dropped: u64,
    /// Failed for now: recorded in `Failures`, retried by the poller (or `xdrsync retry`).
    pub failed: u64,
    /// Given back to the queue (a throttle, or a failure retried on its backoff): the workers
    /// finish them.
    pub deferred: u64,
    pub finished: bool,
    pub interrupted: bool,
    pub elapsed_seconds: f64,
    pub incidents_per_minute: f64,
    pub calls: CallCounts,
    pub graph_calls_per_minute_budget: u32,
}

/// Runs (or resumes) the backfill of the configured tenant; `stop` ends it after the incidents
/// in flight, leaving the cursor at the last whole window.
pub async fn run(
    s: &Ports,
    opts: &Options,
    progress: &dyn Progress,
    stop: Arc<AtomicBool>,
) -> Result<Report, PortError> {
    let tenant = s.config.tenant_id.clone();
    for_tenant(s, &tenant, opts, progress, stop).await
}

async fn for_tenant(
    s: &Ports,
    tenant: &str,
    opts: &Options,
    progress: &dyn Progress,
    stop: Arc<AtomicBool>,
) -> Result<Report, PortError> {
    let cfg = &s.config;
    s.store.ensure_tables().await?;
    s.queue.ensure_queue(&cfg.queue_name).await?;
    let started = std::time::Instant::now();
    let now = s.clock.now();
    let key = RowKey::new(tenant, BACKFILL_ROW)?;
    let requested = now - opts.since;
    let stored = load::<BackfillRecord>(s.store.as_ref(), Table::Cursors, &key).await?.map(|v| v.value);
    let (mut record, resumed_at) = match stored {
        Some(r) if !opts.restart && r.from <= requested && r.next_from.is_some() => {
            let at = r.next_from;
            tracing::info!(backfill.from = %time_fmt::format(r.from), backfill.resume_at = ?at.map(time_fmt::format), "resuming an unfinished backfill");
            (r, at)
        }
        _ => {
            let r = BackfillRecord {
                from: requested,
                next_from: Some(requested),
                done: 0,
                failed: 0,
                started_at: now,
                finished_at: None,
            };
            put(s.store.as_ref(), Table::Cursors, &key, &r, &[]).await?;
            (r, None)
        }
    };
    let overlap = time::Duration::try_from(cfg.poll_overlap).unwrap_or(time::Duration::minutes(2));

    // List every window first: the total for the progress bar, in the poller's windows.
    let mut windows: Vec<(Window, Vec<IncidentStamp>)> = Vec::new();
    let mut seen = HashSet::new();
    let mut start = record.next_from.unwrap_or(now);
    loop {
        let window = next_window(None, now, now - start, overlap);
        let mut items = Vec::new();
        let mut page = s.defender.list_incident_stamps(window, None).await?;
        loop {
            // An incident updated while we list may show up in a later window too: once is enough.
            items.extend(page.items.drain(..).filter(|i| seen.insert(i.id.clone())));
            match page.next.take() {
                Some(next) => page = s.defender.list_incident_stamps(window, Some(&next)).await?,
                None => break,
            }
        }
        windows.push((window, items));
        match window.until {
            Some(until) => start = until,
            None => break,
        }
    }
    let total: u64 = windows.iter().map(|(_, items)| items.len() as u64).sum();
    progress.listed(total);

    let done = AtomicU64::new(0);
    let (synced, dropped, failed) = (AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0));
    let deferred = AtomicU64::new(0);
    let concurrency = cfg.workers.clamp(1, 8);
    let mut interrupted = false;
    for (window, items) in &windows {
        futures::stream::iter(items)
            .for_each_concurrent(concurrency, |stamp| {
                let stop = stop.clone();
                let (done, synced, dropped, failed, deferred) = (&done, &synced, &dropped, &failed, &deferred);
                async move {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let item = WorkItem::reconcile(tenant, &stamp.id, ChangeHint::Reconcile);
                    match sync_message(s, &item.to_json(), 1, "backfill").await {
                        QueueVerdict::Done(_) => synced.fetch_add(1, Ordering::Relaxed),
                        QueueVerdict::Deferred(_) => deferred.fetch_add(1, Ordering::Relaxed),
                        QueueVerdict::Drop(_) => dropped.fetch_add(1, Ordering::Relaxed),
                        QueueVerdict::Retry(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                    progress.advanced(done.fetch_add(1, Ordering::Relaxed) + 1);
                }
            })
            .await;
        if stop.load(Ordering::Relaxed) {
            interrupted = true;
            break;
        }
        record.next_from = window.until;
        record.done += items.len() as u64;
        record.failed = failed.load(Ordering::Relaxed);
        if window.until.is_none() {
            record.finished_at = Some(s.clock.now());
        }
        put(s.store.as_ref(), Table::Cursors, &key, &record, &[]).await?;
        progress.window_done(window.until, done.load(Ordering::Relaxed), total);
    }
    progress.finish();
    let elapsed = started.elapsed().as_secs_f64();
    let n = done.load(Ordering::Relaxed);
    if interrupted {
        tracing::warn!(
            backfill.done = n,
            backfill.total = total,
            "backfill interrupted; run it again to resume at the last whole window"
        );
    }
    Ok(Report {
        tenant_id: tenant.to_string(),
        from: record.from,
        resumed_at,
        total,
        synced: synced.load(Ordering::Relaxed),
        dropped: dropped.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        deferred: deferred.load(Ordering::Relaxed),
        finished: !interrupted,
        interrupted,
        elapsed_seconds: (elapsed * 10.0).round() / 10.0,
        incidents_per_minute: if elapsed > 0.0 { ((n as f64) * 60.0 / elapsed).round() } else { 0.0 },
        calls: s.counters.snapshot(),
        graph_calls_per_minute_budget: cfg.graph_calls_per_minute,
    })
}

/// A progress bar (incidents done / total, rate, ETA), for a terminal.
pub struct Bar(indicatif::ProgressBar);

impl Bar {
    pub fn new() -> Self {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} incidents · {per_sec} · ETA {eta} · {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message("listing");
        Self(bar)
    }
}

impl Default for Bar {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for Bar {
    fn listed(&self, total: u64) {
        self.0.set_length(total);
        self.0.set_message("mirroring");
        self.0.reset_eta();
    }
    fn advanced(&self, done: u64) {
        self.0.set_position(done);
    }
    fn window_done(&self, until: Option<OffsetDateTime>, _done: u64, _total: u64) {
        self.0.set_message(until.map_or("up to now".into(), |u| format!("up to {}", time_fmt::format(u))));
    }
    fn finish(&self) {
        self.0.finish();
    }
}

/// Log lines instead of a bar (stdout is not a terminal): after a window that did something, at
/// most one every [`LOG_EVERY`] (and the last), with rate and ETA.
pub struct LogLines {
    started: std::time::Instant,
    last: std::sync::Mutex<Option<(std::time::Instant, u64)>>,
}

/// The least time between two progress lines.
pub const LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(10);

impl LogLines {
    pub fn new() -> Self {
        Self { started: std::time::Instant::now(), last: std::sync::Mutex::new(None) }
    }
}

impl Default for LogLines {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for LogLines {
    fn listed(&self, total: u64) {
        tracing::info!(backfill.total = total, "backfill listed the incidents of the window");
    }
    fn advanced(&self, _done: u64) {}
    fn window_done(&self, until: Option<OffsetDateTime>, done: u64, total: u64) {
        {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            let quiet = match *last {
                Some((at, n)) => n == done || at.elapsed() < LOG_EVERY,
                None => done == 0,
            };
            if quiet && until.is_some() {
                return;
            }
            *last = Some((std::time::Instant::now(), done));
        }
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = done as f64 / secs;
        let eta = if rate > 0.0 { ((total.saturating_sub(done)) as f64 / rate).round() as u64 } else { 0 };
        tracing::info!(
            backfill.done = done,
            backfill.total = total,
            backfill.per_minute = (rate * 60.0).round() as u64,
            backfill.eta_s = eta,
            backfill.until = %until.map_or("now".into(), time_fmt::format),
            "backfill progress"
        );
    }
    fn finish(&self) {}
}

/// The text summary.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    if let Some(at) = r.resumed_at {
        out.push_str(&format!("resumed at {}\n", time_fmt::format(at)));
    }
    out.push_str(&format!(
        "backfill from {}: {} of {} incident(s) in {:.1} s ({} per minute): {} synced, {} dropped, {} failed, {} deferred\n",
        time_fmt::format(r.from),
        r.synced + r.dropped + r.failed + r.deferred,
        r.total,
        r.elapsed_seconds,
        r.incidents_per_minute,
        r.synced,
        r.dropped,
        r.failed,
        r.deferred
    ));
    out.push_str(&format!(
        "calls: Graph {} (budget {} per minute), ARM {}, Logs Ingestion {}\n",
        r.calls.graph, r.graph_calls_per_minute_budget, r.calls.arm, r.calls.logs
    ));
    if r.deferred > 0 {
        out.push_str(
            "deferred incidents are back in the queue (the workers finish them; failures show in `xdrsync failures`)\n",
        );
    }
    if r.failed > 0 {
        out.push_str(
            "failed incidents are in `xdrsync failures`; the poller retries them (or `xdrsync retry --all`)\n",
        );
    }
    if r.interrupted {
        out.push_str("interrupted: run the same command again to resume\n");
    } else {
        out.push_str("finished\n");
    }
    out
}
