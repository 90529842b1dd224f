//! Relates the analytics rules' alerts to their mirrors (docs/native-alerts.md), on the
//! poller's tick when `XDRSYNC_ATTACH_ALERTS` is on, then runs the trigger pacer
//! (`alert_outbox`). One Log Analytics query per run reads the rules' SecurityAlerts stored since
//! the cursor (minus `XDRSYNC_ALERTS_ATTACH_DELAY_MINUTES`, for alerts stored late); each
//! unambiguous claim (`domain::alert_claims`) costs one relation PUT, plus one DELETE of the
//! relation on the mirror it left when the alert moved (known from its link row, never from
//! listing a mirror's relations). Relation names are deterministic, so a rerun repeats nothing.
//!
//! One run per workspace ([`scope`]): it relates the alerts of every tenant whose mirrors live in
//! that workspace, each to the mirror named after its own tenant; the run's cursor, links,
//! outbox and feed health live in the workspace's partition (the tenant's with one tenant).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::domain::alert_claims::{claims_query, read_claims, Claim};
use crate::domain::alert_links::{alert_resource_id, relation_name, AttachScope};
use crate::domain::names::sentinel_incident_name;
use crate::error::PortError;
use crate::ports::Table;
use crate::state::{load, put, RowKey};
use crate::usecase::alert_outbox::{self, Backlog, Trigger};
use crate::usecase::{Ports, UseCaseError};

/// The `Cursors` row of this feed (partition: [`AttachScope::partition`]).
pub const CURSOR_ROW: &str = "alerts";
/// The health feed name.
pub const FEED: &str = crate::records::ALERTS_FEED;
/// Where a first run starts.
const FIRST_LOOKBACK: Duration = Duration::hours(24);
/// An alert that could not be related yet (the service documents no delay; a Microsoft playbook
/// waits 3 minutes) holds the cursor back for at most this long; after that its trigger row is
/// sent again (`alert_pacing::RESEND_AFTER`) or recorded as a failure.
const HOLD_BACK: Duration = Duration::hours(1);

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AlertCursor {
    #[serde(default, with = "crate::domain::time_fmt::rfc3339_opt")]
    watermark: Option<OffsetDateTime>,
    /// SecurityAlerts inside the overlap already settled, with their ingestion time: the overlap
    /// re-reads them, but they are not related again.
    #[serde(default)]
    done: Vec<(String, String)>,
    /// Summary alerts seen so far (never related; `xdrsync status`).
    #[serde(default)]
    summaries_seen: u64,
    /// Summary alerts inside the overlap already counted, with their ingestion time (kept apart
    /// from `done`, which a burst fills: summaries are few).
    #[serde(default)]
    summaries_recent: Vec<(String, String)>,
}

/// The most `done` entries kept (the row stays far below Table Storage's limit); beyond it the
/// oldest are related again, which the link rows make a no-op.
const MAX_DONE: usize = 300;

/// Which mirror holds a Defender alert's part now: the link row (`AlertTriggers`, partition
/// `<attach partition>:links`, row = tenant:alert:part).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Link {
    incident_id: String,
    system_alert_id: String,
}

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AttachReport {
    /// The rules' SecurityAlerts read since the cursor (settled ones excluded).
    pub found: usize,
    pub related: usize,
    /// Relations removed from a mirror its alert left (merge, move).
    pub unrelated: usize,
    /// Alerts the service would not relate yet (retried by the next run).
    pub pending: usize,
    /// Alerts left on a mirror they left because the role may not delete relations.
    pub unrelate_forbidden: usize,
    /// Alerts whose part is related already (a second alert of one trigger row, a stale move).
    pub already: usize,
    /// Summary alerts seen (never related) and alerts of a TriggerId several alerts claimed.
    pub summaries: usize,
    pub ambiguous: usize,
    /// Alerts without xdrsync's custom details.
    pub unreadable: usize,
    /// Alerts of a configured tenant whose mirrors live in another workspace.
    pub elsewhere: usize,
    /// Trigger rows sent by this run's pacer, of them sent again, and given up.
    pub sent: usize,
    pub resent: usize,
    pub failed: usize,
    /// The outbox after the run.
    pub backlog: Backlog,
}

impl std::fmt::Display for AttachReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "alerts: {} found, {} related, {} unrelated, {} pending, {} already related, {} summaries, {} ambiguous, {} not removable (role), {} of tenants routed elsewhere; triggers: {} sent ({} again), {} failed, {} waiting",
            self.found,
            self.related,
            self.unrelated,
            self.pending,
            self.already,
            self.summaries,
            self.ambiguous,
            self.unrelate_forbidden,
            self.elsewhere,
            self.sent,
            self.resent,
            self.failed,
            self.backlog.pending + self.backlog.in_flight
        )
    }
}

fn days_since(since: OffsetDateTime, now: OffsetDateTime) -> i64 {
    // The query API's `timespan` bounds TimeGenerated, which comes before ingestion: a day of margin.
    (now - since).whole_days().max(0) + 2
}

use crate::usecase::tenants::alert_scope;

/// The cursor a workspace's first run starts from, given the single run's (`legacy`): its
/// watermark, but at least [`FIRST_LOOKBACK`] back, and what it had settled.
fn carried_over(legacy: Option<AlertCursor>, now: OffsetDateTime) -> AlertCursor {
    legacy
        .map(|c| AlertCursor {
            watermark: c.watermark.map(|w| w.min(now - FIRST_LOOKBACK)),
            done: c.done,
            summaries_seen: c.summaries_seen,
            summaries_recent: c.summaries_recent,
        })
        .unwrap_or_default()
}

fn link_key(scope: &AttachScope, c: &Claim) -> Result<RowKey, PortError> {
    RowKey::new(&format!("{}:links", scope.partition), &c.key.link_key())
}

async fn load_cursor(s: &Ports, key: &RowKey, now: OffsetDateTime) -> Result<AlertCursor, PortError> {
    Ok(match load::<AlertCursor>(s.store.as_ref(), Table::Cursors, key).await? {
        Some(v) => v.value,
        // Before one run per workspace, many tenants kept the run's cursor in the partition of
        // the workspace's first tenant (this scope's): go on from it, a day back at least.
        None if s.is_multi_tenant() => {
            let legacy = RowKey::new(&s.config.tenant_id, CURSOR_ROW)?;
            carried_over(load::<AlertCursor>(s.store.as_ref(), Table::Cursors, &legacy).await?.map(|v| v.value), now)
        }
        None => AlertCursor::default(),
    })
}

/// How one claim ended.
enum Outcome {
    Related { moved: bool, forbidden: bool },
    Already,
    Pending,
}

/// Relates one claim: PUT on its mirror, then the relation on the mirror it left (if any) is
/// removed, then the link is written. A claim for an incident the alert has left since (its
/// link names another incident and no trigger row waits for this one) changes nothing.
async fn relate(s: &Ports, scope: &AttachScope, base: &str, c: &Claim, waiting: bool) -> Result<Outcome, PortError> {
    let lk = link_key(scope, c)?;
    let link = load::<Link>(s.store.as_ref(), Table::AlertTriggers, &lk).await?.map(|v| v.value);
    let (tenant, incident) = (&c.key.tenant_id, &c.key.incident_id);
    match &link {
        Some(l) if &l.incident_id == incident => return Ok(Outcome::Already),
        Some(_) if !waiting => return Ok(Outcome::Already),
        _ => {}
    }
    let mirror = sentinel_incident_name(tenant, incident);
    let relation = relation_name(tenant, incident, &c.system_alert_id);
    match s.sentinel.put_relation(&mirror, &relation, &alert_resource_id(base, &c.system_alert_id)).await {
        Ok(()) => {}
        // Not relatable yet (the alert is new), no mirror yet, or refused: the next run retries.
        Err(e @ (PortError::NotFound { .. } | PortError::Rejected { .. } | PortError::Conflict { .. })) => {
            tracing::info!(incident.id = %incident, alert.system_id = %c.system_alert_id, error.message = %e, "alert not related yet; the next run retries");
            return Ok(Outcome::Pending);
        }
        Err(e) => return Err(e),
    }
    let mut forbidden = false;
    if let Some(old) = &link {
        let old_mirror = sentinel_incident_name(tenant, &old.incident_id);
        let old_relation = relation_name(tenant, &old.incident_id, &old.system_alert_id).to_string();
        match s.sentinel.delete_relation(&old_mirror, &old_relation).await {
            Ok(()) => {}
            // Microsoft Sentinel Responder may not delete relations (Contributor may): the
            // alert stays on the old mirror as well as on the new one.
            Err(e @ PortError::Forbidden { .. }) => {
                tracing::warn!(incident.id = %old.incident_id, error.message = %e, "cannot remove an alert from a mirror it left; grant Microsoft Sentinel Contributor to move alerts");
                forbidden = true;
            }
            Err(e) => return Err(e),
        }
    }
    let now_link = Link { incident_id: incident.clone(), system_alert_id: c.system_alert_id.clone() };
    put(s.store.as_ref(), Table::AlertTriggers, &lk, &now_link, &[]).await?;
    Ok(Outcome::Related { moved: link.is_some(), forbidden })
}

fn keep_done(done: impl IntoIterator<Item = (String, String)>, since: Option<OffsetDateTime>) -> Vec<(String, String)> {
    let done: BTreeMap<String, String> = done
        .into_iter()
        .filter(|(_, t)| {
            let t = crate::domain::time_fmt::parse(t).ok();
            // Inclusive: an entry at the bound itself may be read again (times in the answer and
            // in the query may differ below their 100 ns precision).
            since.is_none_or(|since| t.is_some_and(|t| t >= since))
        })
        .collect();
    let mut done: Vec<(String, String)> = done.into_iter().collect();
    done.sort_by(|a, b| b.1.cmp(&a.1));
    done.truncate(MAX_DONE);
    done
}

/// One run over the workspace of `s`: relate every new rule alert to its mirror, move what
/// moved, then pace the outbox. Health is degraded (an error after the work is saved) when the
/// backlog passes its bound (`Backlog::degraded`).
pub async fn attach(s: &Ports) -> Result<AttachReport, UseCaseError> {
    let cfg = &s.config;
    let scope = alert_scope(s);
    let key = RowKey::new(&scope.partition, CURSOR_ROW)?;
    let now = s.clock.now();
    let mut cursor = load_cursor(s, &key, now).await?;
    let since = cursor.watermark.unwrap_or(now - FIRST_LOOKBACK) - cfg.alerts.overlap;
    crate::metrics::bump(&s.counters.log_query);
    let table = s.log_query.query(&claims_query(since), &format!("P{}D", days_since(since, now))).await?;
    let claims = read_claims(&table);
    let done: BTreeSet<&str> = cursor.done.iter().map(|(id, _)| id.as_str()).collect();
    // A summary re-read in the overlap is counted once.
    let counted: BTreeSet<&str> = cursor.summaries_recent.iter().map(|(id, _)| id.as_str()).collect();
    let new_summaries: Vec<(String, String)> = claims
        .summaries
        .iter()
        .filter(|(id, _)| !counted.contains(id.as_str()))
        .map(|(id, t)| (id.clone(), t.map(crate::domain::time_fmt::format).unwrap_or_default()))
        .collect();
    let mut report = AttachReport {
        summaries: new_summaries.len(),
        ambiguous: claims.ambiguous,
        unreadable: claims.unreadable,
        ..Default::default()
    };
    if claims.unreadable > 0 {
        tracing::warn!(rows = claims.unreadable, "SecurityAlert rows without xdrsync's custom details were skipped");
    }
    let configured_elsewhere =
        |t: &str| !scope.holds(t) && s.tenants.tenants.iter().any(|c| c.tenant.id.eq_ignore_ascii_case(t));
    report.elsewhere = claims.relatable.iter().filter(|c| configured_elsewhere(&c.key.tenant_id)).count();
    if report.elsewhere > 0 {
        tracing::warn!(
            workspace = %cfg.workspace.name,
            alerts = report.elsewhere,
            "rule alerts of tenants whose mirrors are in another workspace cannot be related: give their route its own DCR (XDRSYNC_TENANT_WORKSPACES tenant=workspace|dcr-…)"
        );
    }
    let fresh: Vec<&Claim> = claims
        .relatable
        .iter()
        .filter(|c| scope.holds(&c.key.tenant_id) && !done.contains(c.system_alert_id.as_str()))
        .collect();
    report.found = fresh.len();
    let mut outbox: BTreeMap<String, Trigger> = BTreeMap::new();
    for t in alert_outbox::load_all(s).await? {
        outbox.insert(t.key().row_key(), t);
    }
    let base = format!("{}/providers/Microsoft.SecurityInsights", cfg.workspace.resource_id());
    let mut held_back: Option<OffsetDateTime> = None;
    let mut settled: Vec<(String, String)> = Vec::new();
    let mut failure: Option<PortError> = None;
    for c in &fresh {
        let waiting = outbox.contains_key(&c.key.row_key());
        match relate(s, &scope, &base, c, waiting).await {
            Ok(Outcome::Pending) => {
                report.pending += 1;
                if let Some(t) = c.ingested.filter(|t| *t > now - HOLD_BACK) {
                    held_back = Some(held_back.map_or(t, |h| h.min(t)));
                }
                continue;
            }
            Ok(Outcome::Already) => report.already += 1,
            Ok(Outcome::Related { moved, forbidden }) => {
                report.related += 1;
                report.unrelated += usize::from(moved && !forbidden);
                report.unrelate_forbidden += usize::from(forbidden);
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
        if outbox.remove(&c.key.row_key()).is_some() {
            if let Err(e) = alert_outbox::remove(s, &c.key).await {
                failure = Some(e);
                break;
            }
        }
        if let Some(t) = c.ingested {
            settled.push((c.system_alert_id.clone(), crate::domain::time_fmt::format(t)));
        }
    }
    cursor.summaries_seen += report.summaries as u64;
    let recent = std::mem::take(&mut cursor.summaries_recent);
    cursor.summaries_recent = keep_done(recent.into_iter().chain(new_summaries), None);
    if let Some(e) = failure {
        // Keep what was settled; the cursor stays where it was, so the rest is found again.
        cursor.done = keep_done(cursor.done.iter().cloned().chain(settled), None);
        if let Err(save) = put(s.store.as_ref(), Table::Cursors, &key, &cursor, &[]).await {
            tracing::warn!(error.message = %save, "could not record the alerts related before the failure");
        }
        tracing::info!(related = report.related, error.message = %e, "attaching stopped part-way; the next run goes on");
        return Err(e.into());
    }
    let mut watermark = cursor.watermark.max(claims.newest);
    if let (Some(w), Some(h)) = (watermark, held_back) {
        // Keep a pending alert inside the next run's window.
        watermark = Some(w.min(h - Duration::nanoseconds(100) + cfg.alerts.overlap).max(cursor.watermark.unwrap_or(h)));
    }
    let next_since = watermark.map(|w| w - cfg.alerts.overlap);
    cursor.done = keep_done(cursor.done.iter().cloned().chain(settled), next_since);
    cursor.summaries_recent = keep_done(std::mem::take(&mut cursor.summaries_recent), next_since);
    cursor.watermark = watermark;
    put(s.store.as_ref(), Table::Cursors, &key, &cursor, &[]).await?;
    let mut rest: Vec<Trigger> = outbox.into_values().collect();
    let paced = alert_outbox::pace_and_send(s, &mut rest, &claims.summarised).await?;
    report.sent = paced.sent;
    report.resent = paced.resent;
    report.failed = paced.failed;
    report.backlog = Backlog::of(&rest, now);
    if let Some(why) = report.backlog.degraded() {
        tracing::warn!(workspace = %cfg.workspace.name, "{why}");
        return Err(UseCaseError::Permanent(format!("native alerts backlog: {why}")));
    }
    Ok(report)
}

/// Every workspace's run (many tenants), concurrently: a failure in one workspace is logged and
/// recorded in that workspace's feed health, and never stops another.
pub async fn attach_workspaces(s: &Ports) -> Vec<(String, Result<AttachReport, UseCaseError>)> {
    futures::future::join_all(s.each_workspace().into_iter().map(|w| async move {
        let r = attach(&w).await;
        crate::usecase::health::record_feed_at(&w, &alert_scope(&w).partition, FEED, r.as_ref().map(|_| ())).await;
        if let Err(e) = &r {
            tracing::error!(workspace = %w.config.workspace.name, error.message = %e, "relating rule alerts to mirrors failed in this workspace; the others go on, the next tick retries");
        }
        (w.config.workspace.name.clone(), r)
    }))
    .await
}

/// One workspace's native-alerts backlog, for `xdrsync status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceBacklog {
    pub workspace: String,
    #[serde(flatten)]
    pub backlog: Backlog,
    /// Summary alerts the rules raised so far (never related; their rows were sent again).
    pub summaries_seen: u64,
}

/// The backlog of every workspace xdrsync relates alerts in.
pub async fn backlogs(s: &Ports) -> Result<Vec<WorkspaceBacklog>, PortError> {
    let mut out = Vec::new();
    for w in s.each_workspace() {
        let key = RowKey::new(&alert_scope(&w).partition, CURSOR_ROW)?;
        let cursor = load::<AlertCursor>(w.store.as_ref(), Table::Cursors, &key).await?.map(|v| v.value);
        out.push(WorkspaceBacklog {
            workspace: w.config.workspace.name.clone(),
            backlog: alert_outbox::backlog(&w).await?,
            summaries_seen: cursor.map_or(0, |c| c.summaries_seen),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workspace_run_goes_on_from_the_single_runs_cursor_a_day_back_at_least() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(100);
        let recent = AlertCursor {
            watermark: Some(now - Duration::minutes(5)),
            done: vec![("s1".into(), "t".into())],
            summaries_seen: 3,
            summaries_recent: vec![],
        };
        let c = carried_over(Some(recent), now);
        assert_eq!(c.watermark, Some(now - FIRST_LOOKBACK), "the other tenants' last day is read too");
        assert_eq!(c.done, vec![("s1".to_string(), "t".to_string())], "what it settled stays settled");
        let old = AlertCursor { watermark: Some(now - Duration::days(3)), ..Default::default() };
        assert_eq!(carried_over(Some(old), now).watermark, Some(now - Duration::days(3)), "no gap after an outage");
        assert_eq!(carried_over(None, now).watermark, None, "nothing before: the first run's look-back");
    }
}
