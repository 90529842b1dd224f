//! The pollers. Defender: list incidents changed since the cursor (minus the overlap), enqueue one
//! "reconcile D" per new (id, lastUpdateDateTime), then advance the cursor. The cursor is saved
//! only after every enqueue succeeded, so a crash in between re-enqueues instead of losing.

use crate::app::Services;
use crate::domain::cursor::{advance, poll_since, select_new, Mark};
use crate::domain::work::{ChangeHint, WorkItem};
use crate::ports::Table;
use crate::records::{incident_key, index_key, CursorRecord, IncidentState, IndexEntry, INCIDENTS_FEED, SENTINEL_FEED};
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

/// The Sentinel-side sweep: incidents modified in Sentinel since its own cursor, kept when they
/// are mirrors (index lookup) whose etag differs from the one we last synced, enqueued. The
/// webhook only makes this faster; this alone delivers every Sentinel edit.
pub async fn poll_sentinel(s: &Services) -> Result<PollReport, UseCaseError> {
    let cfg = &s.config;
    let now = s.clock.now();
    let key = RowKey::new(&cfg.tenant_id, SENTINEL_FEED)?;
    let stored: Option<Versioned<CursorRecord>> = load(s.store.as_ref(), Table::Cursors, &key).await?;
    let cursor = stored.as_ref().map(|v| &v.value.cursor);
    let overlap = time::Duration::try_from(cfg.poll_overlap).unwrap_or(time::Duration::minutes(2));
    let lookback = time::Duration::try_from(cfg.initial_lookback).unwrap_or(time::Duration::days(1));
    let since = poll_since(cursor, now, lookback, overlap);

    let incidents = s.sentinel.list_incidents_modified_since(since).await?;
    let marks: Vec<Mark> = incidents
        .iter()
        .filter_map(|i| i.properties.read_only.last_modified_time_utc.map(|at| Mark { id: i.name.clone(), at }))
        .collect();
    let fresh = select_new(cursor, &marks);
    let workspace = cfg.workspace.resource_id();
    let mut enqueued = 0;
    for m in &fresh {
        let Ok(name) = uuid::Uuid::parse_str(&m.id) else { continue };
        let Some(entry) = load::<IndexEntry>(s.store.as_ref(), Table::Index, &index_key(&workspace, &name)?).await?
        else {
            continue; // not a mirror
        };
        let etag = incidents.iter().find(|i| i.name == m.id).and_then(|i| i.etag.clone());
        let state = load::<IncidentState>(
            s.store.as_ref(),
            Table::Incidents,
            &incident_key(&entry.value.tenant_id, &entry.value.incident_id)?,
        )
        .await?;
        if etag.is_some() && state.is_some_and(|st| st.value.sentinel_etag_seen == etag) {
            continue; // our own write, already synced
        }
        let item = WorkItem::reconcile(&entry.value.tenant_id, &entry.value.incident_id, ChangeHint::Sentinel);
        s.queue.send(&cfg.queue_name, &item.to_json()).await?;
        enqueued += 1;
    }
    let next = CursorRecord { cursor: advance(cursor, since, &marks, overlap), polled_at: now };
    let unchanged =
        stored.as_ref().is_some_and(|v| v.value.cursor == next.cursor && now - v.value.polled_at < REFRESH_POLLED_AT);
    if !unchanged {
        match save(s.store.as_ref(), Table::Cursors, &key, &next, &[], stored.as_ref().map(|v| &v.etag)).await {
            Ok(_) => {}
            Err(e) if e.is_conflict() => tracing::warn!(cursor.feed = SENTINEL_FEED, "cursor moved by another poller"),
            Err(e) => return Err(e.into()),
        }
    }
    let report = PollReport {
        listed: incidents.len(),
        enqueued,
        watermark: crate::domain::time_fmt::format(next.cursor.watermark),
    };
    if enqueued > 0 {
        tracing::info!(poll.listed = report.listed, poll.enqueued = enqueued, "swept Sentinel");
    }
    Ok(report)
}
