//! The reconcile's decisions, pure (ARCHITECTURE.md: “Triggers and the reconcile”): from what
//! was read of Defender, Sentinel and the stored state, the writes to make, in order, and the
//! state to store. The executor in the product only reads, calls [`reads_needed`] and [`plan`],
//! performs the writes and fills in the versions its own writes returned.

use std::collections::BTreeSet;

use time::OffsetDateTime;
use uuid::Uuid;

use super::alerts::{combined_digest, digest, row};
use super::comments::{
    copyable_from_defender, defender_comment_key, defender_to_sentinel, fingerprint, sentinel_to_defender,
    NewSentinelComment, FROM_XDRSYNC, SENTINEL_MAX_COMMENTS,
};
use super::defender::{DefenderAlert, DefenderIncident, DefenderIncidentPatch, IncidentStatus};
use super::fields::{defender_patch, from_defender, from_sentinel, Fields};
use super::merge::{as_seen_by_merge, merge, worth_writing, Conflict, ConflictPolicy, Side, Times};
use super::mirror::{desired, differs, AlertSummary, MirrorInput, ResolvedOwner};
use super::names::{sentinel_comment_name, sentinel_incident_name};
use super::sentinel::{SentinelComment, SentinelIncident, SentinelIncidentBody};
use super::sync_state::IncidentState;
use super::time_fmt;

/// What the reconcile read before deciding.
#[derive(Debug, Clone, Copy)]
pub struct Observed<'a> {
    pub tenant_id: &'a str,
    pub incident_id: &'a str,
    pub defender: &'a DefenderIncident,
    pub sentinel: Option<&'a SentinelIncident>,
    pub stored: Option<&'a IncidentState>,
    /// The tenant a mirror shows (multi-tenant mode only).
    pub tenant: Option<&'a super::tenants::TenantBadge>,
}

/// A first look at the two versions, before reading anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Glance {
    /// Both sides still show the versions our last sync left: nothing to do.
    Unchanged,
    /// Defender answered with a version older than one we already synced (a lagging replica):
    /// not an edit, nothing to do.
    StaleDefender,
    /// Something may have changed: read the rest and plan.
    Changed,
}

/// `mirror_sentinel_incidents`: `XDRSYNC_MIRROR_SENTINEL_INCIDENTS` (an incident left unmirrored
/// under the old setting is looked at again once it is on).
pub fn glance(o: &Observed<'_>, mirror_sentinel_incidents: bool) -> Glance {
    let Some(st) = o.stored else { return Glance::Changed };
    if st.not_mirrored
        && !mirror_sentinel_incidents
        && o.sentinel.is_none()
        && st.defender_seen == Some(o.defender.last_update_date_time)
    {
        return Glance::Unchanged;
    }
    if st.defender_seen.is_some_and(|seen| o.defender.last_update_date_time < seen) {
        return Glance::StaleDefender;
    }
    match o.sentinel {
        Some(cur)
            if st.indexed
                && st.defender_seen == Some(o.defender.last_update_date_time)
                && st.sentinel_etag_seen == cur.etag
                && comments_count(cur).is_none_or(|n| Some(n) == st.sentinel_comments_count) =>
        {
            Glance::Unchanged
        }
        _ => Glance::Changed,
    }
}

/// The extra reads a plan needs, decided from the first reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reads {
    /// Resolve this UPN to a directory object (Sentinel's owner needs the objectId).
    pub owner_upn: Option<String>,
    /// List the Sentinel incident's comments.
    pub sentinel_comments: bool,
}

pub fn reads_needed(o: &Observed<'_>, policy: ConflictPolicy) -> Reads {
    let (target, _) = merged(o, policy);
    let owner_upn = target.owner.as_ref().and_then(|x| x.clone());
    let sentinel_comments = match (o.sentinel, o.stored) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(cur), Some(st)) => {
            cur.etag != st.sentinel_etag_seen
                || comments_count(cur).is_some_and(|n| Some(n) != st.sentinel_comments_count)
                || !pending_defender_comments(o.defender, st).is_empty()
        }
    };
    Reads { owner_upn, sentinel_comments }
}

/// Whether an incident came from Microsoft Sentinel itself: every alert's `serviceSource` is
/// `microsoftSentinel`. In workspaces onboarded to the Defender portal, Graph lists the incidents
/// Sentinel's analytics rules created; mirroring one would duplicate it in its own workspace.
pub fn sentinel_sourced(alerts: &[DefenderAlert]) -> bool {
    !alerts.is_empty()
        && alerts
            .iter()
            .all(|a| a.service_source.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("microsoftSentinel")))
}

/// Leave the incident unmirrored: it came from Sentinel, no mirror exists, and mirroring such
/// incidents is off (`XDRSYNC_MIRROR_SENTINEL_INCIDENTS`).
pub fn leave_unmirrored(o: &Observed<'_>, alerts: &[DefenderAlert], mirror_sentinel_incidents: bool) -> bool {
    !mirror_sentinel_incidents && o.sentinel.is_none() && sentinel_sourced(alerts)
}

/// The state stored for an incident left unmirrored, so it is noted once, not on every trigger.
pub fn unmirrored_state(o: &Observed<'_>) -> IncidentState {
    let name = o.stored.map(|s| s.sentinel_name).unwrap_or_else(|| sentinel_incident_name(o.tenant_id, o.incident_id));
    IncidentState {
        defender_seen: Some(o.defender.last_update_date_time),
        not_mirrored: true,
        ..IncidentState::new(name)
    }
}

/// What [`reads_needed`] asked for, once read.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras<'a> {
    pub alerts: &'a [DefenderAlert],
    /// `None` when not read (nothing can be new there).
    pub sentinel_comments: Option<&'a [SentinelComment]>,
    pub owner: Option<&'a ResolvedOwner>,
}

/// Alert rows whose content may have changed since they were last sent.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRows {
    /// `(alert id, row, digest)`; the executor sends those whose digest it has not stored.
    pub rows: Vec<(String, serde_json::Map<String, serde_json::Value>, String)>,
}

/// See [`Plan::copy_sources`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CopySources {
    pub to_sentinel: Vec<(Uuid, String)>,
    pub to_defender: Vec<String>,
}

/// The writes of one reconcile, in the order they are made, and the state to store after them.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub sentinel_name: Uuid,
    /// Write the webhook index row first (missing, or never confirmed written).
    pub write_index: bool,
    /// Create or update the mirror (carries the etag read, so a concurrent edit answers 409).
    pub put_sentinel: Option<SentinelIncidentBody>,
    /// Best effort: a failure is logged, never blocks field sync.
    pub conflict_note: Option<NewSentinelComment>,
    pub defender_patch: Option<DefenderIncidentPatch>,
    /// The same patch with `active` instead of `inProgress`, for when Defender refuses the latter.
    pub in_progress_fallback: Option<DefenderIncidentPatch>,
    /// Best effort, like the conflict note.
    pub redirect_note: Option<NewSentinelComment>,
    pub comments_to_sentinel: Vec<NewSentinelComment>,
    /// Defender incident the Sentinel comments go to (the survivor of a merge) and their texts.
    pub comments_to_defender: (String, Vec<String>),
    /// Where each copy comes from, so a copy the service refuses is not marked as done: the
    /// fingerprint of the Defender comment behind each of `comments_to_sentinel` (by name), and
    /// the Sentinel comment name behind each text of `comments_to_defender` (same order).
    pub copy_sources: CopySources,
    pub alerts: Option<AlertRows>,
    /// Reconcile this incident next (the survivor of a merge now holds the loser's alerts).
    pub enqueue_reconcile: Option<String>,
    pub conflicts: Vec<Conflict>,
    /// Alerts dropped because they name another incident.
    pub foreign_alerts: usize,
    /// Defender's status as read, for operators browsing the state table.
    pub defender_status: String,
    /// The state to store; the executor replaces the versions with those its writes returned.
    pub next: IncidentState,
}

/// The merge target and conflicts: Defender's values on first sync, for a deleted mirror, or for a
/// merged-away incident.
pub(crate) fn merged(o: &Observed<'_>, policy: ConflictPolicy) -> (Fields, Vec<Conflict>) {
    let d_fields = from_defender(o.defender);
    match o.sentinel {
        Some(cur) if o.defender.status != IncidentStatus::Redirected => {
            let times = Times {
                defender: o.defender.last_update_date_time,
                sentinel: cur.properties.read_only.last_modified_time_utc.unwrap_or(o.defender.last_update_date_time),
            };
            let st = o.stored;
            let base = st.and_then(|s| s.base.as_ref());
            let d_seen = as_seen_by_merge(&d_fields, st.and_then(|s| s.defender_view.as_ref()), base);
            let s_seen = as_seen_by_merge(&from_sentinel(cur), st.and_then(|s| s.sentinel_view.as_ref()), base);
            let m = merge(base, &d_seen, &s_seen, policy, times);
            (m.target, m.conflicts)
        }
        _ => (d_fields, Vec::new()),
    }
}

/// `properties.additionalData.commentsCount` (read-only in the Sentinel REST spec).
pub fn comments_count(i: &SentinelIncident) -> Option<u64> {
    i.properties.read_only.additional_data.as_ref()?.get("commentsCount")?.as_u64()
}

fn pending_defender_comments<'a>(
    d: &'a DefenderIncident,
    st: &IncidentState,
) -> Vec<&'a super::defender::AlertComment> {
    // Past Sentinel's comment limit nothing more can be copied (the note says so once), and the
    // fingerprints stop growing: the state row stays bounded by Sentinel's 100 comments.
    if st.comment_cap_noted {
        return Vec::new();
    }
    let copied: BTreeSet<&str> = st.defender_comments_copied.iter().map(String::as_str).collect();
    d.comments
        .iter()
        .filter(|c| copyable_from_defender(c) && !copied.contains(fingerprint(&defender_comment_key(c)).as_str()))
        .collect()
}

fn conflict_note(name: &Uuid, o: &Observed<'_>, conflicts: &[Conflict], policy: ConflictPolicy) -> NewSentinelComment {
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
    let etag = o.sentinel.and_then(|s| s.etag.as_deref()).unwrap_or("");
    let key = format!("conflict:{}:{etag}", time_fmt::format(o.defender.last_update_date_time));
    NewSentinelComment {
        name: sentinel_comment_name(name, &key),
        message: format!(
            "{FROM_XDRSYNC}Both portals changed this incident since the last sync (conflict policy {}).\n{}",
            policy.name(),
            lines.join("\n")
        ),
    }
}

/// Defender's status for "in progress" when its API refuses `inProgress`: reopen a closed
/// incident as `active`; an open one stays as it is.
fn in_progress_fallback(current: &IncidentStatus) -> Option<IncidentStatus> {
    matches!(current, IncidentStatus::Resolved | IncidentStatus::Redirected).then_some(IncidentStatus::Active)
}

/// Decides every write of one reconcile.
pub fn plan(o: &Observed<'_>, x: &Extras<'_>, policy: ConflictPolicy, now: OffsetDateTime) -> Plan {
    let d = o.defender;
    let st = o.stored;
    let name = st.map(|s| s.sentinel_name).unwrap_or_else(|| sentinel_incident_name(o.tenant_id, o.incident_id));
    let redirected = d.status == IncidentStatus::Redirected;
    let d_fields = from_defender(d);
    let (target, conflicts) = merged(o, policy);

    let alerts: Vec<&DefenderAlert> =
        x.alerts.iter().filter(|a| a.incident_id.as_deref().is_none_or(|i| i == o.incident_id)).collect();
    let foreign_alerts = x.alerts.len() - alerts.len();
    let owned_alerts: Vec<DefenderAlert> = alerts.iter().map(|a| (*a).clone()).collect();
    let summary = AlertSummary::of(&owned_alerts);

    let current = o.sentinel;
    let want = desired(&MirrorInput {
        incident: d,
        alerts: &summary,
        target: &target,
        owner: x.owner,
        current: current.map(|c| &c.properties.writable),
        tenant: o.tenant,
    });
    let reason = want.classification_reason.clone();
    let put_sentinel = current
        .is_none_or(|c| differs(&want, &c.properties.writable))
        .then(|| SentinelIncidentBody { etag: current.and_then(|c| c.etag.clone()), properties: want });

    let refuses_in_progress = st.is_some_and(|s| s.defender_refuses_in_progress);
    let (mut patch, mut fallback) = (None, None);
    if !redirected {
        let base = st.and_then(|s| s.base.as_ref());
        let worth = worth_writing(&target, &d_fields, st.and_then(|s| s.defender_view.as_ref()), base);
        let mut p = defender_patch(&target, &worth, d.determination.as_ref(), reason.as_ref());
        if refuses_in_progress && p.status == Some(IncidentStatus::InProgress) {
            p.status = in_progress_fallback(&d.status);
        }
        if p.status == Some(IncidentStatus::InProgress) {
            let mut f = p.clone();
            f.status = in_progress_fallback(&d.status);
            fallback = Some(f).filter(|f| !f.is_empty());
        }
        patch = Some(p).filter(|p| !p.is_empty());
    }

    let newly_redirected = d
        .redirect_incident_id
        .as_deref()
        .filter(|t| redirected && st.and_then(|s| s.redirect_target.as_deref()) != Some(*t));
    let redirect_note = newly_redirected.map(|survivor| {
        let survivor_name = sentinel_incident_name(o.tenant_id, survivor);
        NewSentinelComment {
            name: sentinel_comment_name(&name, &format!("redirect:{survivor}")),
            message: format!(
                "{FROM_XDRSYNC}Defender merged this incident into incident {survivor}; follow it in Sentinel incident {survivor_name}. This one is closed; comments added here are copied to incident {survivor} in Defender."
            ),
        }
    });

    // Comments, matched by identity both ways.
    let empty_state = IncidentState::new(name);
    let pending = pending_defender_comments(d, st.unwrap_or(&empty_state));
    let listed = x.sentinel_comments.unwrap_or(&[]);
    let link = d.incident_web_url.as_deref().unwrap_or("Defender portal");
    let cap_noted = st.is_some_and(|s| s.comment_cap_noted);
    let (to_sentinel, cap_noted) = defender_to_sentinel(&name, &pending, listed.len(), cap_noted, link);
    let comments_to_sentinel: Vec<NewSentinelComment> = to_sentinel
        .into_iter()
        .filter(|c| !listed.iter().any(|e| Uuid::parse_str(&e.name).ok() == Some(c.name)))
        .collect();
    let to_sentinel_sources: Vec<(Uuid, String)> = pending
        .iter()
        .map(|c| {
            let key = defender_comment_key(c);
            (sentinel_comment_name(&name, &key), fingerprint(&key))
        })
        .filter(|(n, _)| comments_to_sentinel.iter().any(|c| c.name == *n))
        .collect();
    let mut defender_comments_copied = st.map(|s| s.defender_comments_copied.clone()).unwrap_or_default();
    // Every pending comment that fits is handled now (copied or already there); past the cap the
    // note stands for the rest, and no fingerprint is kept for them (the row stays small).
    let room = (SENTINEL_MAX_COMMENTS - 1).saturating_sub(listed.len());
    let handled = if cap_noted { pending.len().min(room) } else { pending.len() };
    defender_comments_copied.extend(pending[..handled].iter().map(|c| fingerprint(&defender_comment_key(c))));
    let mut sentinel_comments_sent = st.map(|s| s.sentinel_comments_sent.clone()).unwrap_or_default();
    let mut to_defender = Vec::new();
    let mut to_defender_sources = Vec::new();
    for (comment_name, text) in sentinel_to_defender(listed, &sentinel_comments_sent) {
        // A retry after a partial failure finds its earlier post in Defender's list.
        if !d.comments.iter().any(|c| c.comment.as_deref() == Some(text.as_str())) {
            to_defender.push(text);
            to_defender_sources.push(comment_name.to_string());
        }
        sentinel_comments_sent.push(comment_name.to_string());
    }
    // Comments added on a merged-away mirror belong to the incident that survived the merge.
    let defender_target = match (redirected, d.redirect_incident_id.as_deref()) {
        (true, Some(survivor)) => survivor.to_string(),
        _ => o.incident_id.to_string(),
    };

    let rows: Vec<(String, serde_json::Map<String, serde_json::Value>, String)> = alerts
        .iter()
        .map(|a| {
            let r = row(a, o.tenant_id, o.incident_id, &name);
            let dg = digest(&r);
            (a.id.clone(), r, dg)
        })
        .collect();
    let alerts_digest = combined_digest(rows.iter().map(|(id, _, dg)| (id.as_str(), dg.as_str())));
    let alert_rows =
        (st.and_then(|s| s.alerts_digest.as_deref()) != Some(alerts_digest.as_str())).then_some(AlertRows { rows });

    let conflict_note = (!conflicts.is_empty()).then(|| conflict_note(&name, o, &conflicts, policy));
    let next = IncidentState {
        sentinel_name: name,
        base: Some(target),
        determination: d.determination.clone(),
        defender_seen: Some(d.last_update_date_time),
        sentinel_etag_seen: current.and_then(|c| c.etag.clone()),
        sentinel_comments_count: current.and_then(comments_count),
        alerts_digest: Some(alerts_digest),
        alert_count: alerts.len(),
        redirect_target: d.redirect_incident_id.clone(),
        last_sync: Some(now),
        defender_comments_copied,
        sentinel_comments_sent,
        comment_cap_noted: cap_noted,
        defender_view: Some(d_fields),
        sentinel_view: current.map(from_sentinel),
        defender_refuses_in_progress: refuses_in_progress,
        indexed: true,
        not_mirrored: false,
    };
    Plan {
        sentinel_name: name,
        write_index: st.is_none_or(|s| !s.indexed),
        put_sentinel,
        conflict_note,
        defender_patch: patch,
        in_progress_fallback: fallback,
        redirect_note,
        comments_to_sentinel,
        comments_to_defender: (defender_target, to_defender),
        copy_sources: CopySources { to_sentinel: to_sentinel_sources, to_defender: to_defender_sources },
        alerts: alert_rows,
        enqueue_reconcile: newly_redirected.map(str::to_string),
        conflicts,
        foreign_alerts,
        defender_status: d.status.to_string(),
        next,
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
