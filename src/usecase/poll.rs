//! The pollers, both with the cursor rules of ARCHITECTURE.md: “Cursors”: read since the cursor minus the
//! overlap, enqueue one "reconcile D" per new (id, modification time), then save the advanced
//! cursor. The cursor is saved only after every enqueue succeeded, so a crash in between
//! re-enqueues instead of losing. Defender: incidents changed in Graph. Sentinel (the sweep):
//! incidents modified in Sentinel that are mirrors and not our own writes.

use futures::{StreamExt, TryStreamExt};

use crate::domain::cursor::{advance_window, next_window, select_new, Mark, Window};
use crate::domain::listing::{full_pass_due, read_next_page};
use crate::domain::time_fmt;
use crate::domain::work::{ChangeHint, WorkItem};
use crate::error::PortError;
use crate::ports::{ListedIncident, Table};
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
pub(crate) struct Feed {
    name: &'static str,
    key: RowKey,
    stored: Option<Versioned<CursorRecord>>,
    pub(crate) window: Window,
    overlap: time::Duration,
    now: time::OffsetDateTime,
}

impl Feed {
    /// Reads the cursor of `name`; a feed without one starts `first_lookback` ago.
    pub(crate) async fn open(
        s: &Ports,
        name: &'static str,
        first_lookback: std::time::Duration,
    ) -> Result<Self, UseCaseError> {
        let cfg = &s.config;
        let now = s.clock.now();
        let key = RowKey::new(&cfg.tenant_id, name)?;
        let stored: Option<Versioned<CursorRecord>> = load(s.store.as_ref(), Table::Cursors, &key).await?;
        let overlap = time::Duration::try_from(cfg.poll_overlap).unwrap_or(time::Duration::minutes(2));
        let lookback = time::Duration::try_from(first_lookback).unwrap_or(time::Duration::days(1));
        let window = next_window(stored.as_ref().map(|v| &v.value.cursor), now, lookback, overlap);
        Ok(Self { name, key, stored, window, overlap, now })
    }

    pub(crate) fn cursor(&self) -> Option<&crate::domain::cursor::Cursor> {
        self.stored.as_ref().map(|v| &v.value.cursor)
    }

    /// Whether this poll lists its whole window (`domain::listing`).
    pub(crate) fn full_pass_due(&self) -> bool {
        full_pass_due(self.window.until.is_some(), self.stored.as_ref().and_then(|v| v.value.full_pass_at), self.now)
    }

    /// Saves the cursor advanced past `marks` (call only after every message is enqueued).
    pub(crate) async fn commit(
        &self,
        s: &Ports,
        marks: &[Mark],
        listed: usize,
        enqueued: usize,
    ) -> Result<PollReport, UseCaseError> {
        self.commit_pass(s, marks, listed, enqueued, true).await
    }

    /// As [`Feed::commit`], recording whether the poll listed its whole window.
    pub(crate) async fn commit_pass(
        &self,
        s: &Ports,
        marks: &[Mark],
        listed: usize,
        enqueued: usize,
        full_pass: bool,
    ) -> Result<PollReport, UseCaseError> {
        let previous_full = self.stored.as_ref().and_then(|v| v.value.full_pass_at);
        let next = CursorRecord {
            cursor: advance_window(self.cursor(), self.window, marks, self.overlap),
            polled_at: self.now,
            full_pass_at: if full_pass { Some(self.now) } else { previous_full },
        };
        let report = PollReport { listed, enqueued, watermark: time_fmt::format(next.cursor.watermark) };
        let unchanged = self
            .stored
            .as_ref()
            .is_some_and(|v| v.value.cursor == next.cursor && self.now - v.value.polled_at < REFRESH_POLLED_AT)
            && !full_pass;
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

/// Messages sent at once while enqueueing one page.
const ENQUEUE_CONCURRENCY: usize = 16;

/// The Defender poll: lists the incidents changed in the cursor's window page by page, enqueues
/// each page's new versions (concurrently), and saves the cursor after each window. A backfill
/// walks its windows until the time budget (`XDRSYNC_POLL_TIME_BUDGET_SECONDS`) is spent, then
/// stops; the next tick resumes at the saved window. Memory holds one page and the window's marks.
/// Pages come with each incident's alerts where Graph expands them, and each message carries its
/// incident as listed (docs/sync.md: the reconcile then needs no Graph read).
pub async fn poll_defender(s: &Ports) -> Result<PollReport, UseCaseError> {
    let cfg = &s.config;
    let started = tokio::time::Instant::now();
    let mut total = PollReport::default();
    loop {
        let feed = Feed::open(s, INCIDENTS_FEED, cfg.initial_lookback).await?;
        let mut marks: Vec<Mark> = Vec::new();
        let mut sent: std::collections::HashSet<Mark> = std::collections::HashSet::new();
        let mut enqueued = 0;
        // A continuation that fails while expanded turns the expansion off (the adapter
        // remembers it); the window is then listed once more from its start, without it.
        let mut relisted = false;
        // Newest first: between full passes, paging stops at a page with nothing new.
        let full_pass = feed.full_pass_due();
        let mut page = s.defender.list_incident_page(feed.window, None).await?;
        loop {
            let page_marks: Vec<Mark> =
                page.items.iter().map(|i| Mark { id: i.stamp.id.clone(), at: i.stamp.last_update_date_time }).collect();
            // New: not marked in the cursor, and not already sent from an earlier page of this
            // window (paging can repeat an item when newer ones push pages down).
            let mut fresh: std::collections::HashSet<Mark> = select_new(feed.cursor(), &page_marks)
                .into_iter()
                .filter(|m| sent.insert((*m).clone()))
                .cloned()
                .collect();
            let items: Vec<ListedIncident> = std::mem::take(&mut page.items)
                .into_iter()
                .filter(|i| fresh.remove(&Mark { id: i.stamp.id.clone(), at: i.stamp.last_update_date_time }))
                .collect();
            marks.extend(page_marks);
            enqueued += items.len();
            let page_had_new = !items.is_empty();
            enqueue_all(s, items).await?;
            if !read_next_page(full_pass, page_had_new) {
                break;
            }
            match page.next.take() {
                Some(next) => match s.defender.list_incident_page(feed.window, Some(&next)).await {
                    Ok(p) => page = p,
                    Err(e @ (PortError::Unavailable { .. } | PortError::Rejected { .. })) if !relisted => {
                        tracing::info!(error.message = %e, "listing the window again from its start");
                        relisted = true;
                        page = s.defender.list_incident_page(feed.window, None).await?;
                    }
                    Err(e) => return Err(e.into()),
                },
                None => break,
            }
        }
        let report = feed.commit_pass(s, &marks, marks.len(), enqueued, full_pass).await?;
        total.listed += report.listed;
        total.enqueued += report.enqueued;
        total.watermark = report.watermark;
        let caught_up = feed.window.until.is_none();
        if caught_up || started.elapsed() >= cfg.poll_time_budget {
            if !caught_up {
                tracing::info!(cursor.window_until = ?feed.window.until, poll.enqueued = total.enqueued, "backfill paused at the poll's time budget; the next tick resumes here");
            }
            break;
        }
    }
    if total.enqueued > 0 {
        tracing::info!(poll.listed = total.listed, poll.enqueued = total.enqueued, cursor.watermark = %total.watermark, "polled Defender");
    } else {
        // Shows the poller alive when nothing changes (RUST_LOG=debug).
        tracing::debug!(poll.listed = total.listed, cursor.watermark = %total.watermark, "polled Defender: nothing new");
    }
    Ok(total)
}

/// Sends one "reconcile" per listed incident, a few at a time, each carrying the incident as
/// listed when it fits a message; every send must succeed before the cursor moves.
async fn enqueue_all(s: &Ports, items: Vec<ListedIncident>) -> Result<(), UseCaseError> {
    let cfg = &s.config;
    let texts: Vec<String> = items
        .into_iter()
        .map(|i| match i.full {
            Some(full) => {
                let (item, text) = WorkItem::reconcile_listed(&cfg.tenant_id, full, ChangeHint::Defender);
                if item.snapshot.is_none() {
                    tracing::debug!(incident.id = %item.incident_id, "listed incident not carried (paged alerts or over the message bound); its reconcile reads it");
                }
                text
            }
            None => WorkItem::reconcile(&cfg.tenant_id, &i.stamp.id, ChangeHint::Defender).to_json(),
        })
        .collect();
    for chunk in texts.chunks(ENQUEUE_CONCURRENCY) {
        futures::future::try_join_all(chunk.iter().map(|t| s.queue.send(&cfg.queue_name, t))).await?;
    }
    Ok(())
}

/// The Sentinel-side sweep: incidents modified in Sentinel since its own cursor, kept when they
/// are mirrors (index lookup) whose etag differs from the one we last synced, enqueued. The
/// webhook only makes this faster; this alone delivers every Sentinel edit.
pub async fn poll_sentinel(s: &Ports) -> Result<PollReport, UseCaseError> {
    let cfg = &s.config;
    // Mirrors exist only from our first sync on, so Sentinel edits before it do not matter:
    // the sweep's first run looks back just the overlap, not the Defender backfill window.
    let feed = Feed::open(s, SENTINEL_FEED, cfg.poll_overlap).await?;
    let incidents = s.sentinel.list_incidents_modified_since(feed.window.since).await?;
    let marks: Vec<Mark> = incidents
        .iter()
        .filter_map(|i| i.properties.read_only.last_modified_time_utc.map(|at| Mark { id: i.name.clone(), at }))
        .collect();
    let fresh = select_new(feed.cursor(), &marks);
    let workspace = cfg.workspace.resource_id();
    let etags: std::collections::HashMap<&str, Option<&String>> =
        incidents.iter().map(|i| (i.name.as_str(), i.etag.as_ref())).collect();
    let candidates: Vec<(String, Option<String>)> =
        fresh.iter().map(|m| (m.id.clone(), etags.get(m.id.as_str()).copied().flatten().cloned())).collect();
    // A few lookups at once: with many tenants a sweep can see thousands of new mirrors.
    let sent: Vec<bool> =
        futures::stream::iter(candidates.into_iter().map(|(id, etag)| sweep_candidate(s, &workspace, id, etag)))
            .buffer_unordered(ENQUEUE_CONCURRENCY)
            .try_collect()
            .await?;
    let enqueued = sent.iter().filter(|b| **b).count();
    let report = feed.commit(s, &marks, incidents.len(), enqueued).await?;
    if enqueued > 0 {
        tracing::info!(poll.listed = report.listed, poll.enqueued = enqueued, "swept Sentinel");
    } else {
        tracing::debug!(poll.listed = report.listed, "swept Sentinel: nothing new");
    }
    Ok(report)
}

/// One incident the sweep saw modified: enqueued when it is a mirror whose etag is not the one
/// we last synced. Returns whether it was enqueued.
async fn sweep_candidate(s: &Ports, workspace: &str, id: String, etag: Option<String>) -> Result<bool, UseCaseError> {
    let Ok(name) = uuid::Uuid::parse_str(&id) else { return Ok(false) };
    let Some(entry) = load::<IndexEntry>(s.store.as_ref(), Table::Index, &index_key(workspace, &name)?).await? else {
        return Ok(false); // not a mirror
    };
    let key = incident_key(&entry.value.tenant_id, &entry.value.incident_id)?;
    let state = load::<IncidentState>(s.store.as_ref(), Table::Incidents, &key).await?;
    if etag.is_some() && state.is_some_and(|st| st.value.sentinel_etag_seen == etag) {
        return Ok(false); // our own write, already synced
    }
    let item = WorkItem::reconcile(&entry.value.tenant_id, &entry.value.incident_id, ChangeHint::Sentinel);
    s.queue.send(&s.config.queue_name, &item.to_json()).await?;
    Ok(true)
}
