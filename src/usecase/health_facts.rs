//! The I/O half of health (`health.rs` holds the pure rules): reads each feed's health row and
//! cursor, the queue's counts and oldest message, and the failures. Every storage call is
//! bounded ([`Probe`]): health must answer within 2 s while storage does not answer, so a call
//! that runs out of time counts as storage unreachable and the calls after it are not made.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};

use time::{Duration, OffsetDateTime};
use tokio::time::Instant;

use crate::error::PortError;
use crate::ports::Table;
use crate::records::{
    feed_health_key, CursorRecord, FeedHealth, ALERTS_FEED, HUNTING_FEED, HUNTING_STORAGE_FEED, INCIDENTS_FEED,
    SENTINEL_FEED,
};
use crate::state::{load, RowKey};
use crate::usecase::health_rules::{Cadence, Facts};
use crate::usecase::Ports;

/// The most one storage call of the assessment may take.
pub const CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(1000);
/// The most the whole assessment's storage calls may take (leaves room in the 2 s answer).
pub const ASSESSMENT_BUDGET: std::time::Duration = std::time::Duration::from_millis(1500);

/// Bounds the storage calls of one assessment: each by [`CALL_TIMEOUT`], all by a deadline.
/// After one call ran out of time the rest fail at once (storage is not answering).
pub struct Probe {
    deadline: Instant,
    timed_out: AtomicBool,
}

impl Probe {
    pub fn new() -> Self {
        Self { deadline: Instant::now() + ASSESSMENT_BUDGET, timed_out: AtomicBool::new(false) }
    }

    /// Whether a call ran out of time.
    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Relaxed)
    }

    /// Runs one storage call within its bound.
    pub async fn call<T>(&self, fut: impl Future<Output = Result<T, PortError>>) -> Result<T, PortError> {
        let gave_up = || PortError::unavailable("storage", "did not answer in time");
        if self.timed_out() {
            return Err(gave_up());
        }
        let limit = (Instant::now() + CALL_TIMEOUT).min(self.deadline);
        match tokio::time::timeout_at(limit, fut).await {
            Ok(r) => r,
            Err(_) => {
                self.timed_out.store(true, Ordering::Relaxed);
                Err(gave_up())
            }
        }
    }
}

impl Default for Probe {
    fn default() -> Self {
        Self::new()
    }
}

/// One feed's health row and cursor watermark in `s`'s tenant partition; `false` when storage
/// did not answer.
pub(crate) async fn feed_facts(
    s: &Ports,
    probe: &Probe,
    feed: &'static str,
) -> (bool, (&'static str, FeedHealth, Option<OffsetDateTime>)) {
    feed_facts_at(s, probe, &s.config.tenant_id, feed).await
}

/// [`feed_facts`] in the partition `tenant` (a tenant, or a workspace's key).
async fn feed_facts_at(
    s: &Ports,
    probe: &Probe,
    tenant: &str,
    feed: &'static str,
) -> (bool, (&'static str, FeedHealth, Option<OffsetDateTime>)) {
    let health = match feed_health_key(tenant, feed) {
        Ok(k) => probe.call(load::<FeedHealth>(s.store.as_ref(), Table::Cursors, &k)).await,
        Err(e) => Err(e),
    };
    let cursor = match RowKey::new(tenant, feed) {
        Ok(k) => probe.call(load::<CursorRecord>(s.store.as_ref(), Table::Cursors, &k)).await,
        Err(e) => Err(e),
    };
    let reachable = health.is_ok() && cursor.is_ok();
    let watermark = cursor.ok().flatten().map(|c| c.value.cursor.watermark);
    (reachable, (feed, health.ok().flatten().map(|v| v.value).unwrap_or_default(), watermark))
}

/// Everything health looks at in the shared (not per-tenant) scope.
pub(crate) async fn gather(s: &Ports, probe: &Probe) -> Facts {
    let mut storage_reachable = true;
    let mut feeds = Vec::new();
    if s.is_multi_tenant() {
        // Tenants' own feeds and failures are assessed per tenant; here the sweeps only.
        for w in s.each_workspace() {
            let (ok, f) = feed_facts(&w, probe, SENTINEL_FEED).await;
            storage_reachable &= ok;
            feeds.push(f);
        }
    } else {
        for feed in [INCIDENTS_FEED, SENTINEL_FEED] {
            let (ok, f) = feed_facts(s, probe, feed).await;
            storage_reachable &= ok;
            feeds.push(f);
        }
    }
    if s.config.target == crate::domain::portal::SyncTarget::DefenderPortal {
        let (ok, f) = feed_facts(s, probe, crate::records::PORTAL_FEED).await;
        storage_reachable &= ok;
        feeds.push(f);
    }
    let queue = &s.config.queue_name;
    let queue_backlog = probe.call(s.queue.approximate_len(queue)).await.ok();
    let poison = probe.call(s.queue.approximate_len(&format!("{queue}-poison"))).await.ok();
    // A queue that cannot be read shows as unknown counts (`null`); only a call that runs out
    // of time (below) says storage as a whole is not answering.
    let oldest_message = probe.call(s.queue.peek_oldest_inserted(queue)).await.ok().flatten();
    let failures = if s.is_multi_tenant() {
        Vec::new()
    } else {
        let r = probe.call(crate::usecase::failures::list(s)).await;
        storage_reachable &= r.is_ok();
        r.unwrap_or_default()
    };
    let mut jobs = Vec::new();
    let mut workspace_jobs = Vec::new();
    // With many tenants the query source runs per tenant: its feed is judged per tenant.
    let per_tenant = |feed: &str| s.is_multi_tenant() && feed == HUNTING_FEED;
    for (feed, every) in job_feeds(s).into_iter().filter(|(f, _)| !per_tenant(f)) {
        if feed == ALERTS_FEED && s.is_multi_tenant() {
            // One attach run per workspace, each with its own feed row (“Native alerts”).
            for w in s.each_workspace() {
                let partition = crate::usecase::tenants::alert_scope(&w).partition;
                let (ok, (feed, health, _)) = feed_facts_at(&w, probe, &partition, feed).await;
                storage_reachable &= ok;
                workspace_jobs.push((w.config.workspace.name.clone(), feed, health, every));
            }
            continue;
        }
        let (ok, (feed, health, _)) = feed_facts(s, probe, feed).await;
        storage_reachable &= ok;
        jobs.push((feed, health, every));
    }
    storage_reachable &= !probe.timed_out();
    Facts { storage_reachable, feeds, queue_backlog, poison, oldest_message, failures, jobs, workspace_jobs }
}

/// How a feed on `expr` is judged around `now`: its schedule's interval and the run's time
/// budget as grace (a run may take that long: `XDRSYNC_POLL_TIME_BUDGET_SECONDS`, at least a
/// minute).
pub fn cadence(s: &Ports, expr: &str, now: OffsetDateTime) -> Cadence {
    let interval = crate::domain::schedule::Schedule::parse(expr)
        .ok()
        .and_then(|sch| sch.interval_around(now))
        .unwrap_or(Duration::minutes(5))
        .max(Duration::seconds(1));
    let budget = Duration::try_from(s.config.poll_time_budget).unwrap_or(Duration::minutes(4));
    Cadence { interval, grace: budget.max(Duration::minutes(1)) }
}

/// The optional jobs that are on, each with the cadence of its schedule.
pub(crate) fn job_feeds(s: &Ports) -> Vec<(&'static str, Cadence)> {
    let now = s.clock.now();
    let mut jobs = Vec::new();
    if s.config.alerts.attach {
        jobs.push((ALERTS_FEED, cadence(s, &s.config.poll_schedule, now)));
    }
    if !s.config.hunting.tables.is_empty() {
        jobs.push((HUNTING_FEED, cadence(s, &s.config.hunting.schedule, now)));
    }
    if !s.config.hunting.storage_tables.is_empty() {
        jobs.push((HUNTING_STORAGE_FEED, cadence(s, &s.config.hunting.schedule, now)));
    }
    jobs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_call_that_does_not_answer_is_cut_off_and_the_rest_are_not_made() {
        let probe = Probe::new();
        let began = Instant::now();
        let r: Result<(), PortError> = probe.call(futures::future::pending()).await;
        assert!(r.is_err() && probe.timed_out());
        assert_eq!(began.elapsed(), CALL_TIMEOUT);
        let r = probe.call(async { Ok::<_, PortError>(1) }).await;
        assert!(r.is_err(), "after a timeout, storage is taken as unreachable");
        assert_eq!(began.elapsed(), CALL_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn all_calls_together_stay_within_the_budget() {
        let probe = Probe::new();
        let began = Instant::now();
        for _ in 0..5 {
            let slow = async {
                tokio::time::sleep(std::time::Duration::from_millis(400)).await;
                Ok::<_, PortError>(())
            };
            let _ = probe.call(slow).await;
        }
        assert!(began.elapsed() <= ASSESSMENT_BUDGET, "{:?}", began.elapsed());
        assert!(probe.timed_out());
    }
}
