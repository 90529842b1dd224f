//! The pollers, both with the cursor rules of ARCHITECTURE.md: “Cursors”: read since the cursor minus the
//! overlap, enqueue one "reconcile D" per new (id, modification time), then save the advanced
//! cursor. The cursor is saved only after every enqueue succeeded, so a crash in between
//! re-enqueues instead of losing. Defender: incidents changed in Graph. Sentinel (the sweep):
//! incidents modified in Sentinel that are mirrors and not our own writes.

use crate::domain::cursor::{advance, poll_since, select_new, Mark};
use crate::domain::time_fmt;
use crate::domain::work::{ChangeHint, WorkItem};
use crate::ports::Table;
use crate::records::{incident_key, index_key, CursorRecord, IncidentState, IndexEntry, INCIDENTS_FEED, SENTINEL_FEED};
use crate::state::{load, save, RowKey, Versioned};
use crate::usecase::Ports;

use super::UseCaseError;

/// A quiet poll rewrites an unchanged cursor only this often (to keep health's cursor age).
const REFRESH_POLLED_AT: time::Duration = time::Duration::seconds(60);

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PollReport {
    pub listed: usize,
    pub enqueued: usize,
    pub watermark: String,
}

/// One feed's cursor as read at the start of a poll.
struct Feed {
    name: &'static str,
    key: RowKey,
    stored: Option<Versioned<CursorRecord>>,
    since: time::OffsetDateTime,
    overlap: time::Duration,
    now: time::OffsetDateTime,
}

impl Feed {
    /// Reads the cursor of `name`; a feed without one starts `first_lookback` ago.
    async fn open(s: &Ports, name: &'static str, first_lookback: std::time::Duration) -> Result<Self, UseCaseError> {
        let cfg = &s.config;
        let now = s.clock.now();
        let key = RowKey::new(&cfg.tenant_id, name)?;
        let stored: Option<Versioned<CursorRecord>> = load(s.store.as_ref(), Table::Cursors, &key).await?;
        let overlap = time::Duration::try_from(cfg.poll_overlap).unwrap_or(time::Duration::minutes(2));
        let lookback = time::Duration::try_from(first_lookback).unwrap_or(time::Duration::days(1));
        let since = poll_since(stored.as_ref().map(|v| &v.value.cursor), now, lookback, overlap);
        Ok(Self { name, key, stored, since, overlap, now })
    }

    fn cursor(&self) -> Option<&crate::domain::cursor::Cursor> {
        self.stored.as_ref().map(|v| &v.value.cursor)
    }

    /// Saves the cursor advanced past `marks` (call only after every message is enqueued).
    async fn commit(
        &self,
        s: &Ports,
        marks: &[Mark],
        listed: usize,
        enqueued: usize,
    ) -> Result<PollReport, UseCaseError> {
        let next =
            CursorRecord { cursor: advance(self.cursor(), self.since, marks, self.overlap), polled_at: self.now };
        let report = PollReport { listed, enqueued, watermark: time_fmt::format(next.cursor.watermark) };
        let unchanged = self
            .stored
            .as_ref()
            .is_some_and(|v| v.value.cursor == next.cursor && self.now - v.value.polled_at < REFRESH_POLLED_AT);
        if unchanged {
            return Ok(report);
        }
        match save(s.store.as_ref(), Table::Cursors, &self.key, &next, &[], self.stored.as_ref().map(|v| &v.etag)).await
        {
            Ok(_) => Ok(report),
            // Another poller advanced the cursor meanwhile; its messages cover the same window.
            Err(e) if e.is_conflict() => {
                tracing::warn!(cursor.feed = self.name, "cursor moved by another poller");
                Ok(report)
            }
            Err(e) => Err(e.into()),
        }
    }
}

pub async fn poll_defender(s: &Ports) -> Result<PollReport, UseCaseError> {
    let cfg = &s.config;
    let feed = Feed::open(s, INCIDENTS_FEED, cfg.initial_lookback).await?;
    let incidents = s.defender.list_incidents_since(feed.since).await?;
    let marks: Vec<Mark> = incidents.iter().map(|i| Mark { id: i.id.clone(), at: i.last_update_date_time }).collect();
    let fresh = select_new(feed.cursor(), &marks);
    for m in &fresh {
        let item = WorkItem::reconcile(&cfg.tenant_id, &m.id, ChangeHint::Defender);
        s.queue.send(&cfg.queue_name, &item.to_json()).await?;
    }
    let report = feed.commit(s, &marks, incidents.len(), fresh.len()).await?;
    if report.enqueued > 0 {
        tracing::info!(poll.listed = report.listed, poll.enqueued = report.enqueued, cursor.watermark = %report.watermark, "polled Defender");
    }
    Ok(report)
}

/// The Sentinel-side sweep: incidents modified in Sentinel since its own cursor, kept when they
/// are mirrors (index lookup) whose etag differs from the one we last synced, enqueued. The
/// webhook only makes this faster; this alone delivers every Sentinel edit.
pub async fn poll_sentinel(s: &Ports) -> Result<PollReport, UseCaseError> {
    let cfg = &s.config;
    // Mirrors exist only from our first sync on, so Sentinel edits before it do not matter:
    // the sweep's first run looks back just the overlap, not the Defender backfill window.
    let feed = Feed::open(s, SENTINEL_FEED, cfg.poll_overlap).await?;
    let incidents = s.sentinel.list_incidents_modified_since(feed.since).await?;
    let marks: Vec<Mark> = incidents
        .iter()
        .filter_map(|i| i.properties.read_only.last_modified_time_utc.map(|at| Mark { id: i.name.clone(), at }))
        .collect();
    let fresh = select_new(feed.cursor(), &marks);
    let workspace = cfg.workspace.resource_id();
    let mut enqueued = 0;
    for m in &fresh {
        let Ok(name) = uuid::Uuid::parse_str(&m.id) else { continue };
        let Some(entry) = load::<IndexEntry>(s.store.as_ref(), Table::Index, &index_key(&workspace, &name)?).await?
        else {
            continue; // not a mirror
        };
        let etag = incidents.iter().find(|i| i.name == m.id).and_then(|i| i.etag.clone());
        let key = incident_key(&entry.value.tenant_id, &entry.value.incident_id)?;
        let state = load::<IncidentState>(s.store.as_ref(), Table::Incidents, &key).await?;
        if etag.is_some() && state.is_some_and(|st| st.value.sentinel_etag_seen == etag) {
            continue; // our own write, already synced
        }
        let item = WorkItem::reconcile(&entry.value.tenant_id, &entry.value.incident_id, ChangeHint::Sentinel);
        s.queue.send(&cfg.queue_name, &item.to_json()).await?;
        enqueued += 1;
    }
    let report = feed.commit(s, &marks, incidents.len(), enqueued).await?;
    if enqueued > 0 {
        tracing::info!(poll.listed = report.listed, poll.enqueued = enqueued, "swept Sentinel");
    }
    Ok(report)
}
