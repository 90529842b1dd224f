//! The reconcile of one incident (ARCHITECTURE.md: “Triggers and the reconcile”): read Defender,
//! Sentinel and the stored state; let the core's `plan` decide every write; carry the plan out in
//! its order; save the state row with its ETag. A stale Sentinel etag or a state-row conflict
//! means someone else wrote in between: read everything again and redo.

use tracing::Instrument;
use uuid::Uuid;

use crate::domain::comments::NewSentinelComment;
use crate::domain::defender::{DefenderIncident, IncidentStatus};
use crate::domain::fields::{from_defender, from_sentinel};
use crate::domain::names::sentinel_incident_name;
use crate::domain::plan::{
    comments_count, glance, leave_unmirrored, plan, reads_needed, unmirrored_state, Extras, Glance, Observed, Plan,
};
use crate::domain::snapshot::usable;
use crate::domain::work::{ChangeHint, WorkItem};
use crate::error::PortError;
use crate::ports::{ETag, Table};
use crate::records::{incident_key, index_key, IncidentState, IndexEntry};
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
    /// Defender merged this incident away since the last sync (its mirror closed as Redirected).
    pub redirected: bool,
    pub comments_copied: usize,
    /// Copies the service refused (not marked as done: retried through the `Failures` table).
    pub comments_refused: usize,
    /// The service's words for the last refusal.
    pub refusal: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum SyncOutcome {
    /// Neither side changed since the last sync: nothing read beyond the two incidents.
    Unchanged,
    Synced(SyncReport),
    /// Defender no longer has the incident.
    DefenderGone,
    /// Left unmirrored on purpose (created by Microsoft Sentinel itself).
    NotMirrored,
}

enum Step {
    Done(SyncOutcome),
    Redo,
}

/// Reconciles one incident. Safe to run any number of times, concurrently, in any order.
pub async fn reconcile(s: &Ports, item: &WorkItem) -> Result<SyncOutcome, UseCaseError> {
    // Everything below runs in the item's tenant: its Graph, workspace and partition.
    let Some(scoped) = s.for_tenant(&item.tenant_id) else {
        return Err(UseCaseError::Permanent(super::tenants::not_configured(&item.tenant_id)));
    };
    let s = &scoped;
    let span = tracing::info_span!(
        "reconcile",
        tenant.id = %item.tenant_id,
        incident.id = %item.incident_id,
        sentinel.incident = tracing::field::Empty
    );
    async {
        let _serialized = s.locks.lock(&format!("{}:{}", s.config.tenant_id, item.incident_id)).await;
        // The listed snapshot serves the first attempt only: a redo means someone wrote in
        // between, so it reads again.
        let mut snapshot = item.snapshot.as_deref();
        for _ in 0..ATTEMPTS {
            if let Step::Done(outcome) = reconcile_once(s, &item.incident_id, snapshot.take()).await? {
                if s.config.target == crate::domain::portal::SyncTarget::DefenderPortal {
                    super::portal::sync_linked_targets(s, &item.tenant_id, &item.incident_id).await?;
                }
                return Ok(outcome);
            }
        }
        Err(UseCaseError::Retry(PortError::conflict(
            "xdrsync",
            format!("incident {} kept changing during sync", item.incident_id),
        )))
    }
    .instrument(span)
    .await
}

/// Reads, plans (pure, in the core), then carries the plan out. Defender is read only when the
/// work item's listed snapshot cannot be applied (`snapshot::usable`: absent, paged alerts, or
/// older than the version already synced).
async fn reconcile_once(s: &Ports, incident_id: &str, listed: Option<&DefenderIncident>) -> Result<Step, UseCaseError> {
    let cfg = &s.config;
    let key = incident_key(&cfg.tenant_id, incident_id)?;
    let stored: Option<Versioned<IncidentState>> = load(s.store.as_ref(), Table::Incidents, &key).await?;
    let state = stored.as_ref().map(|v| &v.value);
    let listed = listed.filter(|d| d.id == incident_id && usable(d, state.and_then(|st| st.defender_seen)));
    let read;
    let d = match listed {
        Some(d) => d,
        None => match s.defender.get_incident(incident_id).await? {
            Some(fresh) => {
                read = fresh;
                &read
            }
            None => {
                tracing::warn!("Defender has no such incident; nothing to sync");
                return Ok(Step::Done(SyncOutcome::DefenderGone));
            }
        },
    };
    let name = state.map(|st| st.sentinel_name).unwrap_or_else(|| sentinel_incident_name(&cfg.tenant_id, incident_id));
    tracing::Span::current().record("sentinel.incident", tracing::field::display(name));
    let current = s.sentinel.get_incident(&name).await?;
    let badge = s.tenant_badge();
    let observed = Observed {
        tenant_id: &cfg.tenant_id,
        incident_id,
        defender: d,
        sentinel: current.as_ref(),
        stored: state,
        tenant: badge.as_ref(),
    };
    match glance(&observed, cfg.mirror_sentinel_incidents) {
        Glance::Unchanged => return Ok(Step::Done(SyncOutcome::Unchanged)),
        Glance::StaleDefender => {
            tracing::debug!(defender.last_update = %d.last_update_date_time, "Defender answered with an older version than we synced; not an edit");
            return Ok(Step::Done(SyncOutcome::Unchanged));
        }
        Glance::Changed => {}
    }
    let alerts = match d.complete_alerts() {
        Some(expanded) => expanded.to_vec(),
        None => s.defender.list_alerts(incident_id).await?,
    };
    if leave_unmirrored(&observed, &alerts, cfg.mirror_sentinel_incidents) {
        if state.is_none_or(|st| !st.not_mirrored) {
            tracing::info!(
                "incident created by Microsoft Sentinel itself; not mirrored (XDRSYNC_MIRROR_SENTINEL_INCIDENTS=false)"
            );
            s.counters.incidents_not_mirrored.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let next = unmirrored_state(&observed);
        return match save(s.store.as_ref(), Table::Incidents, &key, &next, &[], stored.as_ref().map(|v| &v.etag)).await
        {
            Ok(_) => Ok(Step::Done(SyncOutcome::NotMirrored)),
            Err(e) if e.is_conflict() => Ok(Step::Redo),
            Err(e) => Err(e.into()),
        };
    }
    let reads = reads_needed(&observed, cfg.conflict_policy);
    let owner = match &reads.owner_upn {
        Some(upn) => Some(owner::resolve(s, upn).await?),
        None => None,
    };
    let comments = if reads.sentinel_comments { Some(s.sentinel.list_comments(&name).await?) } else { None };
    let extras = Extras { alerts: &alerts, sentinel_comments: comments.as_deref(), owner: owner.as_ref() };
    let mut plan = plan(&observed, &extras, cfg.conflict_policy, s.clock.now());
    if cfg.target == crate::domain::portal::SyncTarget::DefenderPortal {
        // Mode 2: rows for the rule only; the target incident's sync (usecase/portal.rs) does the rest.
        plan = crate::domain::portal::rows_only(plan);
    }
    execute(s, incident_id, &key, stored.as_ref().map(|v| &v.etag), current.is_none(), plan).await
}

/// Carries out a plan in its order. Versions in the stored state come only from our own writes'
/// answers, never from a later read (an analyst edit landing in between must stay an edit).
async fn execute(
    s: &Ports,
    incident_id: &str,
    key: &RowKey,
    stored_etag: Option<&ETag>,
    creating: bool,
    plan: Plan,
) -> Result<Step, UseCaseError> {
    let cfg = &s.config;
    let name = plan.sentinel_name;
    let mut next = plan.next;
    let mut defender_status = plan.defender_status;
    let mut report =
        SyncReport { conflicts: plan.conflicts.len(), redirected: plan.redirect_note.is_some(), ..Default::default() };
    if plan.foreign_alerts > 0 {
        tracing::warn!(alerts.foreign = plan.foreign_alerts, "Graph returned alerts of another incident; left out");
    }
    if plan.write_index {
        let entry = IndexEntry { tenant_id: cfg.tenant_id.clone(), incident_id: incident_id.to_string() };
        put(s.store.as_ref(), Table::Index, &index_key(&cfg.workspace.resource_id(), &name)?, &entry, &[]).await?;
    }
    if let Some(body) = &plan.put_sentinel {
        match s.sentinel.put_incident(&name, body).await {
            Ok(written) => {
                next.sentinel_view = Some(from_sentinel(&written));
                // A mirror just created has no comments, whether or not the answer says so.
                next.sentinel_comments_count =
                    comments_count(&written).or(next.sentinel_comments_count).or(creating.then_some(0));
                next.sentinel_etag_seen = written.etag;
                report.created = creating;
                report.sentinel_written = true;
            }
            Err(e) if e.is_conflict() => {
                tracing::debug!("stale Sentinel etag; redoing");
                return Ok(Step::Redo);
            }
            Err(e) => return Err(e.into()),
        }
    }
    // Comments we add move Sentinel's commentsCount (and maybe its etag); count them instead of
    // reading the incident again, so an analyst's edit in between is never taken for ours.
    let mut comments_added = 0;
    if let Some(note) = &plan.conflict_note {
        comments_added += best_effort_note(s, &name, note, "conflict note").await?;
    }
    let (defender_patch, in_progress_fallback) = if s.is_multi_tenant() {
        super::cross_owner::check(s, incident_id, plan.defender_patch, plan.in_progress_fallback).await?
    } else {
        (plan.defender_patch, plan.in_progress_fallback)
    };
    if let Some(patch) = &defender_patch {
        let updated = match s.defender.patch_incident(incident_id, patch).await {
            Err(PortError::Rejected { reason, .. }) if patch.status == Some(IncidentStatus::InProgress) => {
                tracing::warn!(error.message = %reason, "Defender refused status inProgress; using active");
                next.defender_refuses_in_progress = true;
                match &in_progress_fallback {
                    Some(fallback) => Some((s.defender.patch_incident(incident_id, fallback).await?, fallback)),
                    None => None,
                }
            }
            other => Some((other?, patch)),
        };
        if let Some((updated, sent)) = updated {
            next.defender_seen = Some(updated.last_update_date_time);
            defender_status = updated.status.to_string();
            next.determination = updated.determination.clone().or_else(|| sent.determination.clone());
            next.defender_view = Some(from_defender(&updated));
            report.defender_patched = true;
        }
    }
    if let Some(note) = &plan.redirect_note {
        comments_added += best_effort_note(s, &name, note, "redirect note").await?;
    }
    for c in &plan.comments_to_sentinel {
        match s.sentinel.put_comment(&name, &c.name, &c.message).await {
            Ok(()) => {
                report.comments_copied += 1;
                comments_added += 1;
            }
            Err(e @ PortError::Rejected { .. }) => {
                tracing::warn!(error.message = %e, "Sentinel refused a copied comment; field sync goes on");
                // Not done: the comment stays pending and the incident is recorded for a retry.
                if let Some((_, f)) = plan.copy_sources.to_sentinel.iter().find(|(n, _)| *n == c.name) {
                    next.defender_comments_copied.retain(|x| x != f);
                }
                report.comments_refused += 1;
                report.refusal = Some(e.to_string());
            }
            Err(e) => return Err(e.into()),
        }
    }
    let (defender_target, texts) = &plan.comments_to_defender;
    // Only one instance posts into an incident at a time, and only what Defender still lacks
    // after the claim (`comment_claim`): the POST is not idempotent.
    let claim = if texts.is_empty() { None } else { Some(super::comment_claim::acquire(s, defender_target).await?) };
    let present = match &claim {
        Some(_) => s.defender.get_incident(defender_target).await?.map(|d| d.comments).unwrap_or_default(),
        None => Vec::new(),
    };
    let missing = super::comment_claim::still_missing(texts, &present);
    let posted =
        post_copies(s, defender_target, &missing, &plan.copy_sources.to_defender, &mut next, &mut report).await;
    if let Some(claim) = claim {
        super::comment_claim::release(s, claim).await;
    }
    posted?;
    next.sentinel_comments_count = next.sentinel_comments_count.map(|n| n + comments_added);
    if report.comments_refused > 0 {
        // Forget the count, so the next reconcile does not take the mirror as unchanged and
        // tries the refused copies again.
        next.sentinel_comments_count = None;
    }
    if let Some(rows) = plan.alerts {
        report.alerts_sent = super::ship_alerts::ship_alerts(s, incident_id, rows).await?;
    }
    if let Some(survivor) = &plan.enqueue_reconcile {
        // The survivor now holds the loser's alerts: reconcile it too.
        let item = WorkItem::reconcile(&cfg.tenant_id, survivor, ChangeHint::Reconcile);
        s.queue.send(&cfg.queue_name, &item.to_json()).await?;
    }
    let columns = [("SentinelName", name.to_string()), ("DefenderStatus", defender_status)];
    match save(s.store.as_ref(), Table::Incidents, key, &next, &columns, stored_etag).await {
        Ok(_) => {}
        Err(e) if e.is_conflict() => return Ok(Step::Redo),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(
        sync.created = report.created,
        sync.sentinel_written = report.sentinel_written,
        sync.defender_patched = report.defender_patched,
        sync.alerts_sent = report.alerts_sent,
        sync.comments_copied = report.comments_copied,
        sync.conflicts = report.conflicts,
        "reconciled"
    );
    Ok(Step::Done(SyncOutcome::Synced(report)))
}

/// Adds one of our own notes. Notes are best effort: a refusal (a full incident: Sentinel holds at
/// most 100 comments) is logged and sync goes on; only retryable failures stop the reconcile.
/// Returns how many comments it added (0 or 1).
/// Posts the copies Defender still lacks; a refused copy stays pending (its source is not
/// marked sent) and the incident is recorded for a retry, while field sync goes on.
async fn post_copies(
    s: &Ports,
    defender_target: &str,
    missing: &[(usize, &String)],
    sources: &[String],
    next: &mut IncidentState,
    report: &mut SyncReport,
) -> Result<(), UseCaseError> {
    for (i, text) in missing {
        match s.defender.add_comment(defender_target, text).await {
            Ok(_) => report.comments_copied += 1,
            Err(e @ PortError::Rejected { .. }) => {
                tracing::warn!(error.message = %e, "Defender refused a copied comment; field sync goes on");
                if let Some(source) = sources.get(*i) {
                    next.sentinel_comments_sent.retain(|x| x != source);
                }
                report.comments_refused += 1;
                report.refusal = Some(e.to_string());
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

async fn best_effort_note(s: &Ports, name: &Uuid, note: &NewSentinelComment, what: &str) -> Result<u64, UseCaseError> {
    match s.sentinel.put_comment(name, &note.name, &note.message).await {
        Ok(()) => Ok(1),
        Err(e) if e.is_retryable() => Err(e.into()),
        Err(e) => {
            tracing::warn!(error.message = %e, "could not add the {what}; field sync goes on");
            Ok(0)
        }
    }
}
