//! Native alerts on mirrors (ARCHITECTURE.md: “Native alerts”), pure: the SecurityAlerts the
//! analytics rule made from alert rows, read from a Log Analytics query answer; which of them
//! belong on which mirror; and the relations to add or remove so each mirror's Alerts and
//! Entities tabs show its Defender incident's alerts.
//!
//! Documented (Learn, “Relate alerts to incidents”, “Create incidents manually”): an incident
//! created through the API holds no alerts or entities; relating an alert
//! (`…/incidents/{id}/relations/{name}`, `relatedResourceId` = `…/entities/{SystemAlertId}`)
//! shows it and its entities; reusing a relation name for another alert is refused (409); an
//! incident shows at most 150 alerts. Documented (Sentinel blog, “Alert enrichment”): custom
//! details are stored in SecurityAlert's `ExtendedProperties` under `Custom Details`, as JSON.
//! Assumed: each custom detail's value is an array of strings (the query reads the first element,
//! or the value itself when it is a plain string).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use super::names::NAMESPACE;
use super::time_fmt;
use super::workspace::Workspace;

/// Alerts one Sentinel incident shows (documented service limit); the rest are counted.
pub const MAX_ALERTS_PER_INCIDENT: usize = 150;

/// The custom details the rule (`infra/alert-rule.bicep`) attaches to each alert.
pub const DETAIL_TENANT: &str = "DefenderTenantId";
pub const DETAIL_INCIDENT: &str = "DefenderIncidentId";
pub const DETAIL_ALERT: &str = "DefenderAlertId";

/// One answer table of the Log Analytics query API (`tables[0]`): column names and rows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryTable {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// A SecurityAlert the xdrsync rule made from one alert row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleAlert {
    pub system_alert_id: String,
    pub tenant_id: String,
    pub incident_id: String,
    /// The Defender alert the row described.
    pub alert_id: String,
    pub time_generated: OffsetDateTime,
    /// `ingestion_time()`: when the workspace stored it (the cursor follows this).
    pub ingested: Option<OffsetDateTime>,
}

impl RuleAlert {
    /// The Defender incident it names, tenant lower-cased (Entra GUIDs arrive in either case).
    pub fn incident_key(&self) -> IncidentKey {
        (self.tenant_id.to_ascii_lowercase(), self.incident_id.clone())
    }
}

/// `(tenant, Defender incident id)`.
pub type IncidentKey = (String, String);

/// The columns [`rule_alerts_query`] projects, in order.
pub const COLUMNS: [&str; 6] =
    ["SystemAlertId", "TimeGenerated", "IngestedAt", "DefenderTenantId", "DefenderIncidentId", "DefenderAlertId"];

fn kql_string(s: &str) -> String {
    // KQL string literal: backslash and double quote escaped.
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Which SecurityAlerts a query asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertFilter {
    /// Stored by the workspace after this instant (`ingestion_time()`).
    IngestedAfter(OffsetDateTime),
    /// Of these Defender incidents or these Defender alerts, generated within `days`.
    Of { incidents: Vec<String>, alerts: Vec<String>, days: u32 },
}

/// The KQL that finds the rule's SecurityAlerts. The custom details are read from
/// `ExtendedProperties["Custom Details"]` whether it holds JSON text or an object, and whether
/// each value is an array (first element) or a string.
pub fn rule_alerts_query(filter: &AlertFilter) -> String {
    let detail = |k: &str| format!("{k} = coalesce(tostring(XdrsyncDetails.{k}[0]), tostring(XdrsyncDetails.{k}))");
    let mut q = String::from("SecurityAlert");
    match filter {
        AlertFilter::IngestedAfter(t) => {
            q.push_str(&format!("\n| where ingestion_time() > datetime({})", time_fmt::format(*t)));
        }
        AlertFilter::Of { days, .. } => q.push_str(&format!("\n| where TimeGenerated > ago({days}d)")),
    }
    q.push_str(&format!("\n| where ExtendedProperties has {}", kql_string(DETAIL_INCIDENT)));
    q.push_str("\n| extend XdrsyncDetails = parse_json(tostring(parse_json(ExtendedProperties)[\"Custom Details\"]))");
    q.push_str(&format!("\n| extend {}, {}, {}", detail(DETAIL_TENANT), detail(DETAIL_INCIDENT), detail(DETAIL_ALERT)));
    if let AlertFilter::Of { incidents, alerts, .. } = filter {
        let list = |v: &[String]| v.iter().map(|s| kql_string(s)).collect::<Vec<_>>().join(", ");
        q.push_str(&format!(
            "\n| where {DETAIL_INCIDENT} in ({}) or {DETAIL_ALERT} in ({})",
            list(incidents),
            list(alerts)
        ));
    }
    q.push_str("\n| where isnotempty(DefenderIncidentId) and isnotempty(DefenderAlertId)");
    q.push_str(&format!("\n| project {}", COLUMNS.join(", ").replace("IngestedAt", "IngestedAt = ingestion_time()")));
    q
}

/// The rule alerts in a query answer, and how many rows could not be read (logged by the caller).
/// Columns are found by name, so their order does not matter.
pub fn parse_rule_alerts(table: &QueryTable) -> (Vec<RuleAlert>, usize) {
    let at = |name: &str| table.columns.iter().position(|c| c.eq_ignore_ascii_case(name));
    let idx: Vec<Option<usize>> = COLUMNS.iter().map(|c| at(c)).collect();
    let mut bad = 0;
    let mut out = Vec::new();
    for row in &table.rows {
        let text =
            |i: usize| idx[i].and_then(|j| row.get(j)).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        let time = |i: usize| text(i).and_then(|s| time_fmt::parse(s).ok());
        match (text(0), time(1), text(3), text(4), text(5)) {
            (Some(sys), Some(generated), Some(tenant), Some(incident), Some(alert)) => out.push(RuleAlert {
                system_alert_id: sys.to_string(),
                tenant_id: tenant.to_string(),
                incident_id: incident.to_string(),
                alert_id: alert.to_string(),
                time_generated: generated,
                ingested: time(2),
            }),
            _ => bad += 1,
        }
    }
    (out, bad)
}

/// The name of the relation between a mirror and one SecurityAlert: UUIDv5 of tenant, Defender
/// incident and SystemAlertId, so a retry writes the same relation and a different alert or
/// incident never reuses a name (which the service refuses).
pub fn relation_name(tenant_id: &str, incident_id: &str, system_alert_id: &str) -> Uuid {
    let key = format!("relation:{}:{}:{}", tenant_id.to_ascii_lowercase(), incident_id.trim(), system_alert_id);
    Uuid::new_v5(&NAMESPACE, key.as_bytes())
}

/// The `relatedResourceId` of a SecurityAlert, below `…/providers/Microsoft.SecurityInsights`.
pub fn alert_resource_id(security_insights_base: &str, system_alert_id: &str) -> String {
    format!("{security_insights_base}/entities/{system_alert_id}")
}

/// A relation a mirror holds (the list answer, reduced).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingRelation {
    pub name: String,
    pub related_resource_id: String,
}

impl ExistingRelation {
    /// The SystemAlertId it points at, when it points at an alert (`…/entities/{id}`).
    pub fn system_alert_id(&self) -> Option<&str> {
        let id = &self.related_resource_id;
        let lower = id.to_ascii_lowercase();
        let at = lower.rfind("/entities/")?;
        Some(&id[at + "/entities/".len()..]).filter(|s| !s.is_empty() && !s.contains('/'))
    }
}

/// For every Defender alert, its newest SecurityAlert: the one whose incident it belongs to now
/// (a row re-sent after a merge or a move names the new incident). Ties on time go to the
/// greater SystemAlertId, so every run picks the same one.
pub fn newest_per_alert(alerts: &[RuleAlert]) -> BTreeMap<(String, String), &RuleAlert> {
    let mut out: BTreeMap<(String, String), &RuleAlert> = BTreeMap::new();
    for a in alerts {
        let key = (a.tenant_id.to_ascii_lowercase(), a.alert_id.clone());
        match out.get(&key) {
            Some(b) if (b.time_generated, &b.system_alert_id) >= (a.time_generated, &a.system_alert_id) => {}
            _ => {
                out.insert(key, a);
            }
        }
    }
    out
}

/// What one mirror should show: each Defender alert's newest SecurityAlert, for every incident
/// any of `alerts` names (so the incident an alert left is planned too), oldest first.
pub fn desired_by_incident(alerts: &[RuleAlert]) -> BTreeMap<IncidentKey, Vec<&RuleAlert>> {
    let mut out: BTreeMap<IncidentKey, Vec<&RuleAlert>> = BTreeMap::new();
    for a in alerts {
        out.entry(a.incident_key()).or_default();
    }
    for a in newest_per_alert(alerts).into_values() {
        out.entry(a.incident_key()).or_default().push(a);
    }
    for v in out.values_mut() {
        v.sort_by(|a, b| (a.time_generated, &a.system_alert_id).cmp(&(b.time_generated, &b.system_alert_id)));
    }
    out
}

/// The writes that make one mirror's relations match what it should show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RelationPlan {
    /// `(relation name, SystemAlertId)` to create.
    pub relate: Vec<(Uuid, String)>,
    /// Names of relations to remove: to alerts of the rule this incident no longer holds.
    pub unrelate: Vec<String>,
    /// Alerts left out because the incident is at the 150-alert limit.
    pub over_limit: usize,
}

impl RelationPlan {
    pub fn is_empty(&self) -> bool {
        self.relate.is_empty() && self.unrelate.is_empty()
    }
}

/// Plans one mirror. `desired` is what it should show (oldest first); `existing` what it holds;
/// `rule_alerts` every SecurityAlert id of the rule known to this run. Relations to anything
/// else (alerts an analyst related, bookmarks) are never removed and count toward the limit.
pub fn plan_relations(
    key: &IncidentKey,
    desired: &[&RuleAlert],
    existing: &[ExistingRelation],
    rule_alerts: &BTreeSet<&str>,
) -> RelationPlan {
    let wanted: BTreeSet<&str> = desired.iter().map(|a| a.system_alert_id.as_str()).collect();
    let mut plan = RelationPlan::default();
    let mut held: BTreeSet<&str> = BTreeSet::new();
    let mut other_alerts = 0usize;
    for r in existing {
        match r.system_alert_id() {
            Some(id) if wanted.contains(id) => {
                held.insert(id);
            }
            Some(id) if rule_alerts.contains(id) => plan.unrelate.push(r.name.clone()),
            Some(_) => other_alerts += 1,
            None => {}
        }
    }
    let mut room = MAX_ALERTS_PER_INCIDENT.saturating_sub(other_alerts + held.len());
    for a in desired {
        if held.contains(a.system_alert_id.as_str()) {
            continue;
        }
        if room == 0 {
            plan.over_limit += 1;
            continue;
        }
        room -= 1;
        plan.relate.push((relation_name(&key.0, &key.1, &a.system_alert_id), a.system_alert_id.clone()));
    }
    plan
}

/// Where the next run starts: the newest `ingestion_time()` seen, never moving back.
pub fn next_watermark(previous: Option<OffsetDateTime>, alerts: &[RuleAlert]) -> Option<OffsetDateTime> {
    alerts.iter().filter_map(|a| a.ingested).chain(previous).max()
}

/// Whose rule alerts one attach run relates, and where its cursor and feed health live. There is
/// one run per workspace: a workspace's SecurityAlert table holds the alerts of the tenants whose
/// rows went to its data collection rule, and a relation can only name an alert of the
/// incident's own workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachScope {
    /// The `Cursors` partition of the run's rows (`alerts`, `health:alerts`).
    pub partition: String,
    /// The tenants whose mirrors live in the workspace, lower-cased.
    pub tenants: BTreeSet<String>,
}

impl AttachScope {
    /// One tenant (no `XDRSYNC_DEFENDER_TENANTS`): its own partition, as before there were many.
    pub fn single(tenant_id: &str) -> Self {
        let t = tenant_id.to_ascii_lowercase();
        Self { partition: t.clone(), tenants: BTreeSet::from([t]) }
    }

    /// Many tenants: those of `tenants` (each with the workspace its mirrors live in) that live
    /// in `workspace`. The partition is the workspace's key, so it does not change when tenants
    /// are added, removed or listed in another order.
    pub fn of_workspace<'a>(
        workspace: &Workspace,
        tenants: impl IntoIterator<Item = (&'a str, &'a Workspace)>,
    ) -> Self {
        let tenants =
            tenants.into_iter().filter(|(_, w)| w.same_as(workspace)).map(|(t, _)| t.to_ascii_lowercase()).collect();
        Self { partition: workspace.key(), tenants }
    }

    /// Whether an alert naming `tenant_id` belongs to this run (alerts of other tenants, e.g.
    /// left in a workspace a tenant was routed away from, are not related).
    pub fn holds(&self, tenant_id: &str) -> bool {
        self.tenants.contains(&tenant_id.to_ascii_lowercase())
    }
}

#[cfg(test)]
#[path = "alert_links_tests.rs"]
mod tests;
