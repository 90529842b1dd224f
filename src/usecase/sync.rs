//! The reconcile of one incident (ARCHITECTURE.md: “Triggers and the reconcile”, “The three-way merge”): read Defender D, Sentinel S and the stored
//! base B; merge (pure); write only the side(s) that differ from the merged values; ship alerts
//! whose digest changed; save the state row with its ETag. A stale Sentinel etag or a state-row
//! conflict means someone else wrote in between: read everything again and redo.

use std::collections::HashMap;

use uuid::Uuid;

use crate::domain::alerts::{combined_digest, digest, row, with_time_generated};
use crate::domain::comments::{defender_to_sentinel, sentinel_to_defender, FROM_XDRSYNC};
use crate::domain::defender::{DefenderAlert, DefenderIncident, IncidentStatus};
use crate::domain::fields::{defender_patch, from_defender, from_sentinel};
use crate::domain::keys::escape_key;
use crate::domain::merge::{as_seen_by_merge, merge, worth_writing, Conflict, Side, Times};
use crate::domain::mirror::{desired, differs, AlertSummary, MirrorInput};
use crate::domain::names::{sentinel_comment_name, sentinel_incident_name};
use crate::domain::sentinel::SentinelIncidentBody;
use crate::domain::work::{ChangeHint, WorkItem};
use crate::ports::{Entity, Table};
use crate::records::{incident_key, index_key, IncidentState, IndexEntry, LastError, HEALTH_ROW};
use crate::state::{load, put, save, RowKey, Versioned};
use crate::usecase::Ports;

use super::{owner, UseCaseError};

const ATTEMPTS: usize = 4;

/// What a reconcile did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SyncReport {
    pub created: bool,
    pub sentinel_written: bool,
    pub defender_patched: bool,
    pub alerts_sent: usize,
    pub conflicts: usize,
    pub comments_copied: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum SyncOutcome {
    /// Neither side changed since the last sync: nothing read beyond the two incidents.
    Unchanged,
    Synced(SyncReport),
    /// Defender no longer has the incident.
    DefenderGone,
}

enum Step {
    Done(SyncOutcome),
    Redo,
}

/// Reconciles one incident. Safe to run any number of times, concurrently, in any order.
pub async fn reconcile(s: &Ports, item: &WorkItem) -> Result<SyncOutcome, UseCaseError> {
    if !item.tenant_id.eq_ignore_ascii_case(&s.config.tenant_id) {
        return Err(UseCaseError::Permanent(format!("tenant {} is not the configured tenant", item.tenant_id)));
    }
    let _serialized = s.locks.lock(&item.incident_id).await;
    for _ in 0..ATTEMPTS {
        if let Step::Done(outcome) = reconcile_once(s, &item.incident_id).await? {
            return Ok(outcome);
        }
    }
    Err(UseCaseError::Retry(crate::error::ApiError::Conflict {
        service: "xdrsync",
        status: 409,
        message: format!("incident {} kept changing during sync", item.incident_id),
    }))
}

async fn reconcile_once(s: &Ports, incident_id: &str) -> Result<Step, UseCaseError> {
    let cfg = &s.config;
    let key = incident_key(&cfg.tenant_id, incident_id)?;
    let stored: Option<Versioned<IncidentState>> = load(s.store.as_ref(), Table::Incidents, &key).await?;
    let state = stored.as_ref().map(|v| &v.value);
    let Some(d) = s.defender.get_incident(incident_id).await? else {
        tracing::warn!(incident.id = %incident_id, "Defender has no such incident; nothing to sync");
        return Ok(Step::Done(SyncOutcome::DefenderGone));
    };
    let name = state.map(|st| st.sentinel_name).unwrap_or_else(|| sentinel_incident_name(&cfg.tenant_id, incident_id));
    let current = s.sentinel.get_incident(&name).await?;

    if let (Some(st), Some(cur)) = (state, &current) {
        if st.defender_seen == Some(d.last_update_date_time) && st.sentinel_etag_seen == cur.etag {
            return Ok(Step::Done(SyncOutcome::Unchanged));
        }
    }

    let alerts = s.defender.list_alerts(incident_id).await?;
    let summary = AlertSummary::of(&alerts);
    let d_fields = from_defender(&d);
    let redirected = d.status == IncidentStatus::Redirected;
    let (target, conflicts) = match &current {
        Some(cur) if !redirected => {
            let times = Times {
                defender: d.last_update_date_time,
                sentinel: cur.properties.read_only.last_modified_time_utc.unwrap_or(d.last_update_date_time),
            };
            let base = state.and_then(|st| st.base.as_ref());
            let d_seen = as_seen_by_merge(&d_fields, state.and_then(|st| st.defender_view.as_ref()), base);
            let s_seen = as_seen_by_merge(&from_sentinel(cur), state.and_then(|st| st.sentinel_view.as_ref()), base);
            let m = merge(base, &d_seen, &s_seen, cfg.conflict_policy, times);
            (m.target, m.conflicts)
        }
        // First sync, a deleted mirror, or a merged-away incident: Defender's values.
        _ => (d_fields.clone(), Vec::new()),
    };

    let resolved_owner = match target.owner.as_ref().and_then(|o| o.as_deref()) {
        Some(upn) => Some(owner::resolve(s, upn).await?),
        None => None,
    };
    let want = desired(&MirrorInput {
        incident: &d,
        alerts: &summary,
        target: &target,
        owner: resolved_owner.as_ref(),
        current: current.as_ref().map(|c| &c.properties.writable),
    });
    let reason = want.classification_reason.clone();

    let mut report = SyncReport { conflicts: conflicts.len(), ..Default::default() };
    let mut sentinel_etag = current.as_ref().and_then(|c| c.etag.clone());
    let mut sentinel_view = current.as_ref().map(from_sentinel);
    if current.as_ref().is_none_or(|c| differs(&want, &c.properties.writable)) {
        let body = SentinelIncidentBody { etag: sentinel_etag.clone(), properties: want };
        match s.sentinel.put_incident(&name, &body).await {
            Ok(written) => {
                sentinel_view = Some(from_sentinel(&written));
                sentinel_etag = written.etag;
                report.created = current.is_none();
                report.sentinel_written = true;
            }
            Err(e) if e.is_conflict() => {
                tracing::debug!(incident.id = %incident_id, sentinel.incident = %name, "stale Sentinel etag; redoing");
                return Ok(Step::Redo);
            }
            Err(e) => return Err(e.into()),
        }
    }
    if !conflicts.is_empty() {
        sentinel_etag = record_conflicts(s, &name, &d, sentinel_etag.as_deref(), &conflicts).await?.or(sentinel_etag);
    }

    let mut defender_seen = d.last_update_date_time;
    let mut determination = d.determination.clone();
    let mut defender_view = d_fields.clone();
    let mut refuses_in_progress = state.is_some_and(|st| st.defender_refuses_in_progress);
    if !redirected {
        let base = state.and_then(|st| st.base.as_ref());
        let worth = worth_writing(&target, &d_fields, state.and_then(|st| st.defender_view.as_ref()), base);
        let mut patch = defender_patch(&target, &worth, d.determination.as_ref(), reason.as_ref());
        if refuses_in_progress && patch.status == Some(IncidentStatus::InProgress) {
            patch.status = in_progress_fallback(&d.status);
        }
        if !patch.is_empty() {
            let updated = match s.defender.patch_incident(incident_id, &patch).await {
                Err(e) if e.status() == Some(400) && patch.status == Some(IncidentStatus::InProgress) => {
                    tracing::warn!(incident.id = %incident_id, error.message = %e, "Defender refused status inProgress; using active");
                    refuses_in_progress = true;
                    patch.status = in_progress_fallback(&d.status);
                    if patch.is_empty() {
                        None
                    } else {
                        Some(s.defender.patch_incident(incident_id, &patch).await?)
                    }
                }
                other => Some(other?),
            };
            if let Some(updated) = updated {
                defender_seen = updated.last_update_date_time;
                determination = updated.determination.clone().or(patch.determination);
                defender_view = from_defender(&updated);
                report.defender_patched = true;
            }
        }
    }

    // A mirror created just now has no Sentinel comments yet: nothing to read there.
    let sentinel_side = match &current {
        None => SentinelComments::NewIncident,
        Some(c) if state.is_none_or(|st| c.etag != st.sentinel_etag_seen) => SentinelComments::MayHaveChanged,
        Some(_) => SentinelComments::Unchanged,
    };
    let newly_redirected = d
        .redirect_incident_id
        .as_deref()
        .filter(|t| redirected && state.and_then(|st| st.redirect_target.as_deref()) != Some(*t));
    if let Some(survivor) = newly_redirected {
        let survivor_name = sentinel_incident_name(&cfg.tenant_id, survivor);
        let note = format!(
            "{FROM_XDRSYNC}Defender merged this incident into incident {survivor}; follow it in Sentinel incident {survivor_name}. This one is closed; comments added here are copied to incident {survivor} in Defender."
        );
        s.sentinel.put_comment(&name, &sentinel_comment_name(&name, &format!("redirect:{survivor}")), &note).await?;
        sentinel_etag = s.sentinel.get_incident(&name).await?.and_then(|i| i.etag).or(sentinel_etag);
    }
    // Comments added on a merged-away mirror belong to the incident that survived the merge.
    let defender_target =
        if redirected { d.redirect_incident_id.as_deref().unwrap_or(incident_id) } else { incident_id };
    let comments = sync_comments(s, defender_target, &name, &d, state, sentinel_side).await?;
    report.comments_copied = comments.copied;
    if comments.wrote_sentinel {
        // Our comments changed the incident's etag; remember the new one so they are not read as an edit.
        sentinel_etag = s.sentinel.get_incident(&name).await?.and_then(|i| i.etag).or(sentinel_etag);
    }
    if comments.wrote_defender {
        if let Some(after) = s.defender.get_incident(incident_id).await? {
            defender_seen = after.last_update_date_time;
        }
    }

    let (alerts_sent, alerts_digest) = ship_alerts(s, state, incident_id, &name, &alerts).await?;
    report.alerts_sent = alerts_sent;

    if let Some(survivor) = newly_redirected {
        // The survivor now holds the loser's alerts: reconcile it too.
        let item = WorkItem::reconcile(&cfg.tenant_id, survivor, ChangeHint::Reconcile);
        s.queue.send(&cfg.queue_name, &item.to_json()).await?;
    }

    let next = IncidentState {
        sentinel_name: name,
        base: Some(target),
        determination,
        defender_seen: Some(defender_seen),
        sentinel_etag_seen: sentinel_etag,
        alerts_digest: Some(alerts_digest),
        alert_count: alerts.len(),
        redirect_target: d.redirect_incident_id.clone(),
        last_sync: Some(s.clock.now()),
        defender_comments_seen: comments.defender_seen,
        sentinel_comments_sent: comments.sentinel_sent,
        comment_cap_noted: comments.cap_noted,
        defender_view: Some(defender_view),
        sentinel_view,
        defender_refuses_in_progress: refuses_in_progress,
    };
    let columns = [("SentinelName", name.to_string()), ("DefenderStatus", d.status.to_string())];
    match save(s.store.as_ref(), Table::Incidents, &key, &next, &columns, stored.as_ref().map(|v| &v.etag)).await {
        Ok(_) => {}
        Err(e) if e.is_conflict() => return Ok(Step::Redo),
        Err(e) => return Err(e.into()),
    }
    if state.is_none() {
        let entry = IndexEntry { tenant_id: cfg.tenant_id.clone(), incident_id: incident_id.to_string() };
        put(s.store.as_ref(), Table::Index, &index_key(&cfg.workspace.resource_id(), &name)?, &entry, &[]).await?;
    }
    tracing::info!(
        incident.id = %incident_id, sentinel.incident = %name, sync.created = report.created,
        sync.sentinel_written = report.sentinel_written, sync.defender_patched = report.defender_patched,
        sync.alerts_sent = report.alerts_sent,
        sync.comments_copied = report.comments_copied, sync.conflicts = report.conflicts, "reconciled"
    );
    Ok(Step::Done(SyncOutcome::Synced(report)))
}

/// Adds one comment per conflicting reconcile saying what collided and who won. The comment id
/// is derived from both versions, so a redo writes the same comment, not a second one. Returns
/// the incident's etag after the comment (so our own comment does not look like an edit).
async fn record_conflicts(
    s: &Ports,
    name: &Uuid,
    d: &DefenderIncident,
    etag: Option<&str>,
    conflicts: &[Conflict],
) -> Result<Option<String>, UseCaseError> {
    let lines: Vec<String> = conflicts
        .iter()
        .map(|c| {
            let winner = match c.winner {
                Side::Defender => "Defender",
                Side::Sentinel => "Sentinel",
            };
            format!("{}: Defender had {}, Sentinel had {}; {winner} won", c.field, c.defender, c.sentinel)
        })
        .collect();
    let message = format!(
        "[xdrsync] Both portals changed this incident since the last sync (policy {:?}).\n{}",
        s.config.conflict_policy,
        lines.join("\n")
    );
    let key = format!("conflict:{}:{}", crate::domain::time_fmt::format(d.last_update_date_time), etag.unwrap_or(""));
    s.sentinel.put_comment(name, &sentinel_comment_name(name, &key), &message).await?;
    Ok(s.sentinel.get_incident(name).await?.and_then(|i| i.etag))
}

/// Defender's status for "in progress" when its API refuses `inProgress`: reopen a closed
/// incident as `active`; an open one stays as it is.
fn in_progress_fallback(current: &IncidentStatus) -> Option<IncidentStatus> {
    matches!(current, IncidentStatus::Resolved | IncidentStatus::Redirected).then_some(IncidentStatus::Active)
}

/// What may have happened to the Sentinel incident's comments since the last sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SentinelComments {
    NewIncident,
    MayHaveChanged,
    Unchanged,
}

/// What [`sync_comments`] did and the comment bookkeeping to store.
struct CommentSync {
    copied: usize,
    wrote_sentinel: bool,
    wrote_defender: bool,
    defender_seen: usize,
    sentinel_sent: Vec<String>,
    cap_noted: bool,
}

/// Copies new Defender comments to Sentinel and new Sentinel comments to Defender, each once.
/// Sentinel's comments are read only when something may be new on either side.
async fn sync_comments(
    s: &Ports,
    incident_id: &str,
    name: &Uuid,
    d: &DefenderIncident,
    state: Option<&IncidentState>,
    sentinel_side: SentinelComments,
) -> Result<CommentSync, UseCaseError> {
    let from = state.map_or(0, |st| st.defender_comments_seen);
    // Defender only appends; a shorter list means another incident history (start over:
    // deterministic ids keep the copies single).
    let from = if from > d.comments.len() { 0 } else { from };
    let mut out = CommentSync {
        copied: 0,
        wrote_sentinel: false,
        wrote_defender: false,
        defender_seen: d.comments.len(),
        sentinel_sent: state.map(|st| st.sentinel_comments_sent.clone()).unwrap_or_default(),
        cap_noted: state.is_some_and(|st| st.comment_cap_noted),
    };
    if d.comments.len() == from && sentinel_side != SentinelComments::MayHaveChanged {
        return Ok(out);
    }
    let existing = match sentinel_side {
        SentinelComments::NewIncident => Vec::new(),
        _ => s.sentinel.list_comments(name).await?,
    };
    let link = d.incident_web_url.as_deref().unwrap_or("Defender portal");
    let (to_sentinel, noted) = defender_to_sentinel(name, &d.comments, from, existing.len(), out.cap_noted, link);
    for c in to_sentinel {
        if existing.iter().any(|e| Uuid::parse_str(&e.name).ok() == Some(c.name)) {
            continue;
        }
        s.sentinel.put_comment(name, &c.name, &c.message).await?;
        out.wrote_sentinel = true;
        out.copied += 1;
    }
    out.cap_noted = noted;
    for (comment_name, text) in sentinel_to_defender(&existing, &out.sentinel_sent) {
        // A retry after a partial failure finds its earlier post in Defender's list.
        let already = d.comments.iter().any(|c| c.comment.as_deref() == Some(text.as_str()));
        if !already {
            s.defender.add_comment(incident_id, &text).await?;
            out.wrote_defender = true;
            out.copied += 1;
        }
        out.sentinel_sent.push(comment_name.to_string());
    }
    Ok(out)
}

/// Sends the alerts whose content changed since they were last sent; returns how many, and
/// the digest over all of them (stored, so an unchanged set costs no Table read next time).
async fn ship_alerts(
    s: &Ports,
    state: Option<&IncidentState>,
    incident_id: &str,
    name: &Uuid,
    alerts: &[DefenderAlert],
) -> Result<(usize, String), UseCaseError> {
    let cfg = &s.config;
    let rows: Vec<(String, serde_json::Map<String, serde_json::Value>, String)> = alerts
        .iter()
        .map(|a| {
            let r = row(a, &cfg.tenant_id, incident_id, name);
            let dg = digest(&r);
            (a.id.clone(), r, dg)
        })
        .collect();
    let combined = combined_digest(rows.iter().map(|(id, _, d)| (id.as_str(), d.as_str())));
    if state.and_then(|st| st.alerts_digest.as_deref()) == Some(combined.as_str()) {
        return Ok((0, combined));
    }
    let pk = RowKey::new(&format!("{}_{incident_id}", cfg.tenant_id), "")?.pk;
    let sent: HashMap<String, String> = s
        .store
        .query_partition(Table::AlertDigests, &pk)
        .await?
        .into_iter()
        .filter_map(|e| e.str("Digest").map(|d| (e.row_key.clone(), d.to_string())))
        .collect();
    let now = s.clock.now();
    let mut changed_rows = Vec::new();
    let mut changed_entities = Vec::new();
    for (id, r, dg) in rows {
        let rk = escape_key(&id).map_err(|e| UseCaseError::Permanent(e.to_string()))?;
        if sent.get(&rk) != Some(&dg) {
            changed_rows.push(with_time_generated(r, now));
            changed_entities.push(Entity::new(pk.clone(), rk).with("Digest", dg));
        }
    }
    if changed_rows.is_empty() {
        return Ok((0, combined));
    }
    let report = s.logs.upload(&cfg.alerts_stream, &changed_rows).await?;
    if report.rows_too_large > 0 {
        tracing::warn!(incident.id = %incident_id, alerts.too_large = report.rows_too_large, "alerts larger than one ingestion call were not sent");
    }
    s.store.upsert_many(Table::AlertDigests, &changed_entities).await?;
    Ok((report.rows_sent, combined))
}

/// Records a failed reconcile for health (best effort: a failure here is only logged).
pub async fn record_failure(s: &Ports, incident_id: &str, message: &str) {
    let Ok(key) = RowKey::new(&s.config.tenant_id, HEALTH_ROW) else {
        return;
    };
    let row = LastError { incident_id: incident_id.to_string(), message: message.to_string(), at: s.clock.now() };
    if let Err(e) = put(s.store.as_ref(), Table::Cursors, &key, &row, &[]).await {
        tracing::debug!(error.message = %e, "could not record the failure for health");
    }
}
