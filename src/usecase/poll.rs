//! The Defender poller: list incidents changed since the cursor (minus the overlap), enqueue one
//! "reconcile D" per new (id, lastUpdateDateTime), then advance the cursor. The cursor is saved
//! only after every enqueue succeeded, so a crash in between re-enqueues instead of losing.

use crate::app::Services;
use crate::domain::cursor::{advance, poll_since, select_new, Mark};
use crate::domain::work::{ChangeHint, WorkItem};
use crate::ports::Table;
use crate::records::{CursorRecord, INCIDENTS_FEED};
use crate::state::{load, save, RowKey, Versioned};

use super::UseCaseError;

/// A quiet poll rewrites an unchanged cursor only this often (to keep health's cursor age).
const REFRESH_POLLED_AT: time::Duration = time::Duration::seconds(60);

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PollReport {
    pub listed: usize,
    pub enqueued: usize,
    pub watermark: String,
}

pub async fn poll_defender(s: &Services) -> Result<PollReport, UseCaseError> {
    let cfg = &s.config;
    let now = s.clock.now();
    let key = RowKey::new(&cfg.tenant_id, INCIDENTS_FEED)?;
    let stored: Option<Versioned<CursorRecord>> = load(s.store.as_ref(), Table::Cursors, &key).await?;
    let cursor = stored.as_ref().map(|v| &v.value.cursor);
    let overlap = time::Duration::try_from(cfg.poll_overlap).unwrap_or(time::Duration::minutes(2));
    let lookback = time::Duration::try_from(cfg.initial_lookback).unwrap_or(time::Duration::days(1));
    let since = poll_since(cursor, now, lookback, overlap);

    let incidents = s.defender.list_incidents_since(since).await?;
    let marks: Vec<Mark> = incidents.iter().map(|i| Mark { id: i.id.clone(), at: i.last_update_date_time }).collect();
    let fresh = select_new(cursor, &marks);
    for m in &fresh {
        let item = WorkItem::reconcile(&cfg.tenant_id, &m.id, ChangeHint::Defender);
        s.queue.send(&cfg.queue_name, &item.to_json()).await?;
    }
    let next = CursorRecord { cursor: advance(cursor, since, &marks, overlap), polled_at: now };
    let unchanged =
        stored.as_ref().is_some_and(|v| v.value.cursor == next.cursor && now - v.value.polled_at < REFRESH_POLLED_AT);
    if unchanged {
        let watermark = crate::domain::time_fmt::format(next.cursor.watermark);
        return Ok(PollReport { listed: incidents.len(), enqueued: 0, watermark });
    }
    match save(s.store.as_ref(), Table::Cursors, &key, &next, &[], stored.as_ref().map(|v| &v.etag)).await {
        Ok(_) => {}
        // Another poller advanced the cursor meanwhile; its messages cover the same window.
        Err(e) if e.is_conflict() => tracing::warn!(cursor.feed = INCIDENTS_FEED, "cursor moved by another poller"),
        Err(e) => return Err(e.into()),
    }
    let report = PollReport {
        listed: incidents.len(),
        enqueued: fresh.len(),
        watermark: crate::domain::time_fmt::format(next.cursor.watermark),
    };
    tracing::info!(poll.listed = report.listed, poll.enqueued = report.enqueued, cursor.watermark = %report.watermark, "polled Defender");
    Ok(report)
}
