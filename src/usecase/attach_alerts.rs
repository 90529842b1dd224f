//! Relates the analytics rule's alerts to their mirrors (ARCHITECTURE.md: “Native alerts”), on
//! the poller's tick when `XDRSYNC_ATTACH_ALERTS` is on. Reads what the workspace stored since
//! the cursor (minus `XDRSYNC_ALERTS_ATTACH_DELAY_MINUTES`, for alerts stored late), then the
//! rule's other alerts of the same Defender incidents and alerts (so an alert that moved, or a
//! merge's loser, is planned too), lists each touched mirror's relations and writes the plan
//! (`domain::alert_links`). Every write is named deterministically, so a rerun repeats nothing.
//!
//! One run per workspace ([`scope`]): it relates the alerts of every tenant whose mirrors live in
//! that workspace, each to the mirror named after its own tenant; the run's cursor and feed
//! health live in the workspace's partition (the tenant's with one tenant).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::domain::alert_links::{
    alert_resource_id, desired_by_incident, next_watermark, parse_rule_alerts, plan_relations, rule_alerts_query,
    AlertFilter, AttachScope, RuleAlert,
};
use crate::domain::names::sentinel_incident_name;
use crate::error::PortError;
use crate::ports::Table;
use crate::state::{load, put, RowKey};
use crate::usecase::{Ports, UseCaseError};

/// The `Cursors` row of this feed (partition: [`AttachScope::partition`]).
pub const CURSOR_ROW: &str = "alerts";
/// The health feed name.
pub const FEED: &str = crate::records::ALERTS_FEED;
/// How far back the rule's earlier alerts of a touched incident are looked for. SecurityAlert is
/// kept 90 days in a Sentinel workspace by default (documented); older ones are not seen.
pub const HISTORY_DAYS: u32 = 90;
/// Where a first run starts.
const FIRST_LOOKBACK: Duration = Duration::hours(24);
/// An alert that could not be related yet (the service documents no delay; a Microsoft playbook
/// waits 3 minutes) holds the cursor back for at most this long, then is left to the overlap.
const HOLD_BACK: Duration = Duration::hours(1);

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AlertCursor {
    #[serde(default, with = "crate::domain::time_fmt::rfc3339_opt")]
    watermark: Option<OffsetDateTime>,
    /// SecurityAlerts inside the overlap already related (or planned without a write), with
    /// their ingestion time: the overlap re-reads them, but their mirrors are not listed again.
    #[serde(default)]
    done: Vec<(String, String)>,
}

/// The most `done` entries kept (the row stays far below Table Storage's limit); beyond it the
/// oldest are planned again, which writes nothing.
const MAX_DONE: usize = 300;

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct AttachReport {
    /// Rule alerts stored since the cursor.
    pub found: usize,
    /// Mirrors planned (touched incidents).
    pub incidents: usize,
    pub related: usize,
    pub unrelated: usize,
    /// Alerts left out at the 150-alert limit (the mirror carries the `150+` label already).
    pub over_limit: usize,
    /// Alerts the service would not relate yet (retried by the next run).
    pub pending: usize,
    /// Alerts left on a mirror they left because the role may not delete relations.
    pub unrelate_forbidden: usize,
    /// Touched incidents without a mirror.
    pub no_mirror: usize,
    /// Query rows without the custom details.
    pub unreadable: usize,
    /// Alerts of a configured tenant whose mirrors live in another workspace: its alert rows
    /// reached this workspace's rule (a route without its own DCR), and a relation cannot cross
    /// workspaces.
    pub elsewhere: usize,
}

impl std::fmt::Display for AttachReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "alerts: {} found, {} incidents, {} related, {} unrelated, {} over the limit, {} pending, {} without a mirror, {} not removable (role), {} of tenants routed elsewhere",
            self.found,
            self.incidents,
            self.related,
            self.unrelated,
            self.over_limit,
            self.pending,
            self.no_mirror,
            self.unrelate_forbidden,
            self.elsewhere
        )
    }
}

fn days_since(since: OffsetDateTime, now: OffsetDateTime) -> i64 {
    // The query API's `timespan` bounds TimeGenerated, which comes before ingestion: a day of margin.
    (now - since).whole_days().max(0) + 2
}

async fn query(s: &Ports, filter: &AlertFilter, days: i64) -> Result<(Vec<RuleAlert>, usize), PortError> {
    crate::metrics::bump(&s.counters.log_query);
    let table = s.log_query.query(&rule_alerts_query(filter), &format!("P{days}D")).await?;
    Ok(parse_rule_alerts(&table))
}

/// `fresh` in parts of at most 100 incidents and 400 alerts, an incident never split.
fn chunks(fresh: &[RuleAlert]) -> Vec<Vec<RuleAlert>> {
    let mut by_incident: BTreeMap<&str, Vec<RuleAlert>> = BTreeMap::new();
    for a in fresh {
        by_incident.entry(a.incident_id.as_str()).or_default().push(a.clone());
    }
    let mut out: Vec<Vec<RuleAlert>> = Vec::new();
    let mut incidents = 0;
    for group in by_incident.into_values() {
        let fits = out.last().is_some_and(|c| incidents < 100 && c.len() + group.len() <= 400);
        if !fits {
            out.push(Vec::new());
            incidents = 0;
        }
        incidents += 1;
        if let Some(last) = out.last_mut() {
            last.extend(group);
        }
    }
    out
}

/// The run of `s`'s workspace: with one tenant, that tenant; with many, every configured tenant
/// whose mirrors live in the workspace of `s` (a scope of [`Ports::each_workspace`]).
pub fn scope(s: &Ports) -> AttachScope {
    if !s.is_multi_tenant() {
        return AttachScope::single(&s.config.tenant_id);
    }
    AttachScope::of_workspace(
        &s.config.workspace,
        s.tenants.tenants.iter().map(|t| (t.tenant.id.as_str(), &t.config.workspace)),
    )
}

/// The cursor a workspace's first run starts from, given the single run's (`legacy`): its
/// watermark, but at least [`FIRST_LOOKBACK`] back, and what it had settled.
fn carried_over(legacy: Option<AlertCursor>, now: OffsetDateTime) -> AlertCursor {
    legacy
        .map(|c| AlertCursor { watermark: c.watermark.map(|w| w.min(now - FIRST_LOOKBACK)), done: c.done })
        .unwrap_or_default()
}

/// One run over the workspace of `s`: relate every new rule alert to its mirror, move what moved.
pub async fn attach(s: &Ports) -> Result<AttachReport, UseCaseError> {
    let cfg = &s.config;
    let scope = scope(s);
    let key = RowKey::new(&scope.partition, CURSOR_ROW)?;
    let now = s.clock.now();
    let cursor = match load::<AlertCursor>(s.store.as_ref(), Table::Cursors, &key).await? {
        Some(v) => v.value,
        // Before one run per workspace, many tenants kept the run's cursor in the partition of
        // the workspace's first tenant (this scope's) and related only that tenant's alerts:
        // go on from it, a day back at least, so the other tenants' recent alerts are related.
        None if s.is_multi_tenant() => {
            let legacy = RowKey::new(&cfg.tenant_id, CURSOR_ROW)?;
            carried_over(load::<AlertCursor>(s.store.as_ref(), Table::Cursors, &legacy).await?.map(|v| v.value), now)
        }
        None => AlertCursor::default(),
    };
    let since = cursor.watermark.unwrap_or(now - FIRST_LOOKBACK) - cfg.alerts.overlap;
    let (fresh, bad) = query(s, &AlertFilter::IngestedAfter(since), days_since(since, now)).await?;
    let mut report = AttachReport { found: fresh.len(), unreadable: bad, ..Default::default() };
    if bad > 0 {
        tracing::warn!(rows = bad, "SecurityAlert rows without xdrsync's custom details were skipped");
    }
    let done: BTreeSet<&str> = cursor.done.iter().map(|(id, _)| id.as_str()).collect();
    // Alerts of a tenant whose mirrors live elsewhere (routed away, or removed) are not ours.
    let configured_elsewhere =
        |t: &str| !scope.holds(t) && s.tenants.tenants.iter().any(|c| c.tenant.id.eq_ignore_ascii_case(t));
    report.elsewhere = fresh.iter().filter(|a| configured_elsewhere(&a.tenant_id)).count();
    if report.elsewhere > 0 {
        tracing::warn!(
            workspace = %cfg.workspace.name,
            alerts = report.elsewhere,
            "rule alerts of tenants whose mirrors are in another workspace cannot be related: give their route its own DCR (XDRSYNC_TENANT_WORKSPACES tenant=workspace|dcr-…)"
        );
    }
    let fresh: Vec<RuleAlert> =
        fresh.into_iter().filter(|a| scope.holds(&a.tenant_id) && !done.contains(a.system_alert_id.as_str())).collect();
    report.found = fresh.len();
    if fresh.is_empty() {
        return Ok(report);
    }
    let base = format!("{}/providers/Microsoft.SecurityInsights", cfg.workspace.resource_id());
    let mut held_back: Option<OffsetDateTime> = None;
    let mut pending: BTreeSet<String> = BTreeSet::new();
    // Related by this run: kept even when a later call fails, so the retry does not redo them.
    let mut related: BTreeSet<String> = BTreeSet::new();
    let mut failure: Option<PortError> = None;
    // The history query names its incidents and alerts: a backfill's thousands go in parts.
    'run: for chunk in chunks(&fresh) {
        let incidents: BTreeSet<String> = chunk.iter().map(|a| a.incident_id.clone()).collect();
        let alerts: BTreeSet<String> = chunk.iter().map(|a| a.alert_id.clone()).collect();
        let filter = AlertFilter::Of {
            incidents: incidents.into_iter().collect(),
            alerts: alerts.into_iter().collect(),
            days: HISTORY_DAYS,
        };
        let history = match query(s, &filter, i64::from(HISTORY_DAYS)).await {
            Ok((history, _)) => history,
            Err(e) => {
                failure = Some(e);
                break 'run;
            }
        };
        // Fresh and history overlap; one record per SecurityAlert.
        let mut all: BTreeMap<String, RuleAlert> = BTreeMap::new();
        for a in history.into_iter().chain(chunk.iter().cloned()) {
            if scope.holds(&a.tenant_id) {
                all.insert(a.system_alert_id.clone(), a);
            }
        }
        let all: Vec<RuleAlert> = all.into_values().collect();
        let known: BTreeSet<&str> = all.iter().map(|a| a.system_alert_id.as_str()).collect();
        for (incident, desired) in desired_by_incident(&all) {
            report.incidents += 1;
            let name = sentinel_incident_name(&incident.0, &incident.1);
            let existing = match s.sentinel.list_relations(&name).await {
                Ok(r) => r,
                Err(e) if e.is_not_found() => {
                    tracing::info!(incident.id = %incident.1, sentinel.incident = %name, "rule alerts name an incident without a mirror; not related");
                    report.no_mirror += 1;
                    continue;
                }
                Err(e) => {
                    failure = Some(e);
                    break 'run;
                }
            };
            let plan = plan_relations(&incident, &desired, &existing, &known);
            report.over_limit += plan.over_limit;
            for relation in &plan.unrelate {
                match s.sentinel.delete_relation(&name, relation).await {
                    Ok(()) => report.unrelated += 1,
                    // Microsoft Sentinel Responder may not delete relations (Contributor may): the
                    // alert stays on the old incident as well as on the new one.
                    Err(e @ PortError::Forbidden { .. }) => {
                        tracing::warn!(incident.id = %incident.1, error.message = %e, "cannot remove an alert from a mirror it left; grant Microsoft Sentinel Contributor to move alerts");
                        report.unrelate_forbidden += 1;
                    }
                    Err(e) => {
                        failure = Some(e);
                        break 'run;
                    }
                }
            }
            for (relation, system_alert_id) in &plan.relate {
                match s.sentinel.put_relation(&name, relation, &alert_resource_id(&base, system_alert_id)).await {
                    Ok(()) => {
                        report.related += 1;
                        related.insert(system_alert_id.clone());
                    }
                    // Not relatable yet (the alert is new), or refused: the next run tries again.
                    Err(e @ (PortError::NotFound { .. } | PortError::Rejected { .. } | PortError::Conflict { .. })) => {
                        tracing::info!(incident.id = %incident.1, alert.system_id = %system_alert_id, error.message = %e, "alert not related yet; the next run retries");
                        report.pending += 1;
                        pending.insert(system_alert_id.clone());
                        let ingested =
                            all.iter().find(|a| &a.system_alert_id == system_alert_id).and_then(|a| a.ingested);
                        if let Some(t) = ingested.filter(|t| *t > now - HOLD_BACK) {
                            held_back = Some(held_back.map_or(t, |h| h.min(t)));
                        }
                    }
                    Err(e) => {
                        failure = Some(e);
                        break 'run;
                    }
                }
            }
            if plan.over_limit > 0 {
                tracing::info!(incident.id = %incident.1, over_limit = plan.over_limit, "mirror at Sentinel's 150-alert limit; the rest stay in XdrsyncAlerts_CL");
            }
        }
    }
    if let Some(e) = failure {
        // Keep what was related; the cursor stays where it was, so the rest is found again.
        let mut done = cursor.done.clone();
        done.extend(
            fresh
                .iter()
                .filter(|a| related.contains(&a.system_alert_id))
                .filter_map(|a| a.ingested.map(|t| (a.system_alert_id.clone(), crate::domain::time_fmt::format(t)))),
        );
        done.sort_by(|a, b| b.1.cmp(&a.1));
        done.dedup();
        done.truncate(MAX_DONE);
        let kept = AlertCursor { watermark: cursor.watermark, done };
        if let Err(save) = put(s.store.as_ref(), Table::Cursors, &key, &kept, &[]).await {
            tracing::warn!(error.message = %save, "could not record the alerts related before the failure");
        }
        tracing::info!(related = report.related, error.message = %e, "attaching stopped part-way; the next run goes on");
        return Err(e.into());
    }
    let mut watermark = next_watermark(cursor.watermark, &fresh);
    if let (Some(w), Some(h)) = (watermark, held_back) {
        // Keep a pending alert inside the next run's window.
        watermark = Some(w.min(h - Duration::nanoseconds(100) + cfg.alerts.overlap).max(cursor.watermark.unwrap_or(h)));
    }
    // Remember what this run settled, inside the next run's window.
    let next_since = watermark.map(|w| w - cfg.alerts.overlap);
    let done: BTreeMap<String, String> = cursor
        .done
        .iter()
        .cloned()
        .chain(
            fresh
                .iter()
                .filter(|a| !pending.contains(&a.system_alert_id))
                .filter_map(|a| a.ingested.map(|t| (a.system_alert_id.clone(), crate::domain::time_fmt::format(t)))),
        )
        .filter(|(_, t)| {
            let t = crate::domain::time_fmt::parse(t).ok();
            next_since.is_none_or(|since| t.is_some_and(|t| t > since))
        })
        .collect();
    let mut done: Vec<(String, String)> = done.into_iter().collect();
    done.sort_by(|a, b| b.1.cmp(&a.1));
    done.truncate(MAX_DONE);
    put(s.store.as_ref(), Table::Cursors, &key, &AlertCursor { watermark, done }, &[]).await?;
    Ok(report)
}

/// Every workspace's run (many tenants), concurrently: a failure in one workspace is logged and
/// recorded in that workspace's feed health, and never stops another.
pub async fn attach_workspaces(s: &Ports) -> Vec<(String, Result<AttachReport, UseCaseError>)> {
    futures::future::join_all(s.each_workspace().into_iter().map(|w| async move {
        let r = attach(&w).await;
        crate::usecase::health::record_feed_at(&w, &scope(&w).partition, FEED, r.as_ref().map(|_| ())).await;
        if let Err(e) = &r {
            tracing::error!(workspace = %w.config.workspace.name, error.message = %e, "relating rule alerts to mirrors failed in this workspace; the others go on, the next tick retries");
        }
        (w.config.workspace.name.clone(), r)
    }))
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(incident: usize, i: usize) -> RuleAlert {
        RuleAlert {
            system_alert_id: format!("s{incident}-{i}"),
            tenant_id: "t".into(),
            incident_id: incident.to_string(),
            alert_id: format!("a{incident}-{i}"),
            time_generated: OffsetDateTime::UNIX_EPOCH,
            ingested: None,
        }
    }

    #[test]
    fn a_workspace_run_goes_on_from_the_single_runs_cursor_a_day_back_at_least() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(100);
        let recent = AlertCursor { watermark: Some(now - Duration::minutes(5)), done: vec![("s1".into(), "t".into())] };
        let c = carried_over(Some(recent), now);
        assert_eq!(c.watermark, Some(now - FIRST_LOOKBACK), "the other tenants' last day is read too");
        assert_eq!(c.done, vec![("s1".to_string(), "t".to_string())], "what it settled stays settled");
        let old = AlertCursor { watermark: Some(now - Duration::days(3)), done: vec![] };
        assert_eq!(carried_over(Some(old), now).watermark, Some(now - Duration::days(3)), "no gap after an outage");
        assert_eq!(carried_over(None, now).watermark, None, "nothing before: the first run's look-back");
    }

    #[test]
    fn a_backfill_is_planned_in_parts_that_never_split_an_incident() {
        let fresh: Vec<RuleAlert> = (0..250).flat_map(|inc| (0..(inc % 7 + 1)).map(move |i| alert(inc, i))).collect();
        let parts = chunks(&fresh);
        assert_eq!(parts.iter().map(Vec::len).sum::<usize>(), fresh.len(), "nothing lost");
        let mut seen = BTreeSet::new();
        for p in &parts {
            let incidents: BTreeSet<&str> = p.iter().map(|a| a.incident_id.as_str()).collect();
            assert!(incidents.len() <= 100 && p.len() <= 400, "{} incidents, {} alerts", incidents.len(), p.len());
            for i in incidents {
                assert!(seen.insert(i.to_string()), "incident {i} in two parts");
            }
        }
        assert!(chunks(&[]).is_empty());
    }
}
