//! Counts of what the reconciles did, per hour, for `xdrsync status` (pure rules in
//! `domain/activity.rs`). Written where a reconcile's outcome is handled (`jobs.rs`), only for
//! the rare events (a mirror created, an incident redirected, a conflict), so a quiet reconcile
//! adds no storage call. Counting is best effort: a failed write is logged at debug and the sync
//! is not affected, so the figures are approximate by design.

use crate::domain::activity::{hour_key, recent_hour_keys, ActivityCounts};
use crate::error::PortError;
use crate::ports::Table;
use crate::state::{load, modify, RowKey};
use crate::usecase::sync::SyncReport;
use crate::usecase::Ports;

/// The events of one reconcile worth counting.
pub fn of(report: &SyncReport) -> ActivityCounts {
    ActivityCounts {
        mirrored: u64::from(report.created),
        redirected: u64::from(report.redirected),
        conflicted: u64::from(report.conflicts > 0),
    }
}

/// Adds `counts` to the current hour's row of the configured tenant.
pub async fn record(s: &Ports, counts: ActivityCounts) {
    if counts.is_empty() {
        return;
    }
    let Ok(key) = RowKey::new(&s.config.tenant_id, &hour_key(s.clock.now())) else { return };
    let added = modify(s.store.as_ref(), Table::Cursors, &key, |current: Option<&ActivityCounts>| {
        let mut next = current.copied().unwrap_or_default();
        next.add(&counts);
        Some(next)
    })
    .await;
    if let Err(e) = added {
        tracing::debug!(error.message = %e, "could not count the reconcile's activity");
    }
}

/// The counts of the last 24 hours (whole hours: up to 25 hours back).
pub async fn last_24h(s: &Ports) -> Result<ActivityCounts, PortError> {
    let mut total = ActivityCounts::default();
    for hour in recent_hour_keys(s.clock.now(), 24) {
        let key = RowKey::new(&s.config.tenant_id, &hour)?;
        if let Some(v) = load::<ActivityCounts>(s.store.as_ref(), Table::Cursors, &key).await? {
            total.add(&v.value);
        }
    }
    Ok(total)
}
