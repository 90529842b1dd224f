//! The workspace's NRT analytics rules at run time, and what Sentinel shows of their alerts.
//!
//! Rules come only from ARM (`PUT …/alertRules/{name}` of kind `NRT`, compiled in
//! [`super::nrt_rule`]) or from the seeding helper (`SimOptions::alert_rules`). Documented
//! (Learn, *near-real-time-rules*): an NRT rule runs once a minute over the rows ingested in the
//! preceding minute. Here a "minute" is `SimOptions::alert_rule_delay_ms` of wall-clock time
//! (0: every read of alerts is a run over what was ingested since the previous one), and
//! [`run_now`] runs every pending minute at once for tests. Each rule's own query
//! ([`super::rule_kql`]) picks its results from the rows of its table.
//!
//! Documented (Learn, *create-nrt-rules*): with one alert per result, "single-event alerts will
//! be generated for the first 29 events, and a 30th alert will summarize all the events in the
//! result set". Learn sets the threshold at "more than 30 events"; the simulator summarises from
//! 30 results on (one stricter), so a product that works here works whichever reading holds.
//! Alerts are built in [`super::rule_alert`] (64 KB limit, entities dropped one by one). Counted
//! in the simulator's stats: `rule.runs`, `rule.alerts`, `rule.summary_alerts` (the demo's
//! `ruleSummaryAlerts`), `rule.entities_dropped`.
//!
//! Relations (`PUT …/relations/{name}`) to `…/entities/{SystemAlertId}` are checked against these
//! alerts: an alert not stored yet is a 404, a name reused for another alert a 409, a 151st alert
//! a 400. `POST …/alerts` and `POST …/entities` list what an analyst sees.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::faults::{arm_error, Stats};
use super::model::SentinelRecord;
use super::nrt_rule::NrtRule;
use super::rule_alert::build;
use super::world::World;
use super::{Sim, SummaryDetails};

/// Alerts one incident shows (documented).
pub const MAX_ALERTS: usize = 150;
/// Single-result alerts of one run before the summary alert (documented: 29 + 1).
pub const MAX_SINGLE_ALERTS: usize = 29;

/// One SecurityAlert a rule made.
#[derive(Debug, Clone)]
pub struct SecurityAlertRecord {
    pub system_alert_id: String,
    pub time_generated: OffsetDateTime,
    pub ingested: OffsetDateTime,
    /// The SecurityAlert columns.
    pub doc: Map<String, Value>,
    /// Entities as the Entities tab lists them (`kind`, `properties`).
    pub entities: Vec<Value>,
    /// The rule that raised it (the simulator's own bookkeeping, never served).
    pub rule: String,
    /// Whether it is a run's summary alert (bookkeeping, never served: Sentinel does not mark it).
    pub summary: bool,
}

impl SecurityAlertRecord {
    /// A custom detail's values, read back from `ExtendedProperties` as a query would.
    pub fn custom_detail_values(&self, key: &str) -> Vec<String> {
        let details = || -> Option<Value> {
            let ext: Value = serde_json::from_str(self.doc.get("ExtendedProperties")?.as_str()?).ok()?;
            serde_json::from_str(ext.get("Custom Details")?.as_str()?).ok()
        };
        details()
            .and_then(|d| d.get(key).and_then(Value::as_array).cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    }

    /// A custom detail's first value.
    pub fn custom_detail(&self, key: &str) -> Option<String> {
        self.custom_detail_values(key).into_iter().next()
    }
}

/// A row waiting for its rules' run.
#[derive(Debug)]
struct Pending {
    at: Instant,
    table: String,
    row: Map<String, Value>,
}

/// The rule engine's state: rules, rows waiting for their run, and the alerts made.
#[derive(Default)]
pub struct RuleState {
    /// The stored NRT rules by name.
    pub rules: BTreeMap<String, NrtRule>,
    pending: VecDeque<Pending>,
    /// When the first row arrived: minutes are counted from it.
    epoch: Option<Instant>,
    minute: Duration,
    summary_details: Option<SummaryDetails>,
    /// The correlation engine when the rows arrived: `(groups all, workspace tenant)`; `None`
    /// when the workspace is not onboarded to the Defender portal.
    pub engine: Option<(bool, String)>,
    /// The engine's incidents: source `tenant/incident` → incident id, and the latest one.
    pub engine_links: BTreeMap<String, String>,
    pub engine_last: Option<String>,
    pub alerts: Vec<SecurityAlertRecord>,
    /// The simulator's counters (shared with `Sim::stats`).
    pub stats: Arc<Stats>,
}

impl RuleState {
    /// The minute a row that arrived `at` belongs to.
    fn minute_of(&self, at: Instant) -> u128 {
        match self.epoch {
            Some(e) if !self.minute.is_zero() => at.saturating_duration_since(e).as_nanos() / self.minute.as_nanos(),
            _ => 0,
        }
    }

    /// Whether the run after minute `k` has come.
    fn due(&self, k: u128, now: Instant) -> bool {
        match self.epoch {
            Some(e) if !self.minute.is_zero() => {
                let end = self.minute.as_nanos().saturating_mul(k + 1);
                now.saturating_duration_since(e).as_nanos() >= end
            }
            _ => true,
        }
    }
}

/// Called by Logs Ingestion with the rows it kept of `stream`: rows of a table an enabled rule
/// reads wait for the next run.
pub fn on_ingest(sim: &Sim, world: &mut World, stream: &str, rows: &[Value]) {
    let options = sim.options();
    let table = super::stream_columns::table_of(stream);
    let state = &mut world.rule;
    if !options.alert_rule || !state.rules.values().any(|r| r.enabled && r.query.table == table) {
        return;
    }
    let now = Instant::now();
    state.minute = Duration::from_millis(options.alert_rule_delay_ms);
    state.summary_details = Some(options.summary_details);
    state.engine = options.correlation_engine.then(|| (options.engine_groups_all, sim.config.tenant_id.clone()));
    state.epoch.get_or_insert(now);
    state.pending.extend(rows.iter().filter_map(Value::as_object).map(|r| Pending {
        at: now,
        table: table.clone(),
        row: r.clone(),
    }));
}

/// Runs every pending minute now, as if each run had come: tests step the rules with this
/// instead of waiting out wall-clock minutes.
pub fn run_now(world: &mut World) {
    run_due(world, true);
}

/// Runs the rules over every minute whose run has come (lazily, before anything reads alerts).
pub fn run(world: &mut World) {
    run_due(world, false);
}

fn run_due(world: &mut World, all: bool) {
    let now = Instant::now();
    while let Some(first) = world.rule.pending.front() {
        let k = world.rule.minute_of(first.at);
        if !all && !world.rule.due(k, now) {
            break;
        }
        let n = world.rule.pending.iter().take_while(|p| world.rule.minute_of(p.at) == k).count();
        let batch: Vec<Pending> = world.rule.pending.drain(..n).collect();
        run_minute(world, &batch);
    }
}

/// One run of every enabled rule over the rows of one minute.
fn run_minute(world: &mut World, batch: &[Pending]) {
    let t = world.now();
    let state = &world.rule;
    let mode = state.summary_details.unwrap_or(SummaryDetails::AllValues);
    let mut raised = Vec::new();
    for rule in state.rules.values().filter(|r| r.enabled) {
        let rows = batch.iter().filter(|p| p.table == rule.query.table).map(|p| &p.row);
        let results = rule.query.eval(rows);
        state.stats.bump("rule.runs");
        if results.is_empty() {
            continue;
        }
        let refs: Vec<&Map<String, Value>> = results.iter().collect();
        if !rule.alert_per_result {
            // One alert per run over every result (not a summary in the per-result sense).
            raised.push((build(rule, &refs, true, mode, t), false));
            continue;
        }
        let singles = refs.len().min(MAX_SINGLE_ALERTS);
        raised.extend(refs[..singles].iter().map(|r| (build(rule, &[*r], false, mode, t), false)));
        if refs.len() > MAX_SINGLE_ALERTS {
            raised.push((build(rule, &refs, true, mode, t), true));
        }
    }
    for (b, summary) in raised {
        let stats = world.rule.stats.clone();
        stats.bump("rule.alerts");
        if summary {
            stats.bump("rule.summary_alerts");
        }
        for _ in 0..b.dropped_entities {
            stats.bump("rule.entities_dropped");
        }
        if let Some((group_all, tenant)) = world.rule.engine.clone() {
            super::engine::correlate(world, &b.alert, group_all, &tenant);
        }
        world.rule.alerts.push(b.alert);
    }
}

/// The SystemAlertId a relation's `relatedResourceId` names, if it names an alert.
fn alert_id_of(related: &str) -> Option<&str> {
    let at = related.to_ascii_lowercase().rfind("/entities/")?;
    Some(&related[at + "/entities/".len()..])
}

/// `PUT …/incidents/{name}/relations/{relation}` with the incident already found.
pub fn put_relation(sim: &Sim, w: &mut World, name: &Uuid, rel: &str, related: &str, base: &str) -> Response {
    run(w);
    let mut kind = "";
    if let Some(alert) = alert_id_of(related) {
        if !w.rule.alerts.iter().any(|a| a.system_alert_id.eq_ignore_ascii_case(alert)) {
            sim.stats.bump("arm.relations.alert_not_found");
            return arm_error(StatusCode::NOT_FOUND, "NotFound", format!("Entity '{alert}' was not found"));
        }
        kind = "SecurityAlert";
    }
    let Some(r) = w.sentinel.get_mut(name) else {
        return arm_error(StatusCode::NOT_FOUND, "NotFound", "Incident not found");
    };
    if let Some(old) = r.relations.get(rel) {
        if old.pointer("/properties/relatedResourceId").and_then(Value::as_str) != Some(related) {
            return arm_error(
                StatusCode::CONFLICT,
                "Conflict",
                format!("Relation '{rel}' already relates another resource"),
            );
        }
    }
    let alerts_held = r
        .relations
        .iter()
        .filter(|(n, v)| {
            n.as_str() != rel
                && v.pointer("/properties/relatedResourceKind").and_then(Value::as_str) == Some("SecurityAlert")
        })
        .count();
    if kind == "SecurityAlert" && alerts_held >= MAX_ALERTS {
        return arm_error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("An incident holds at most {MAX_ALERTS} alerts"),
        );
    }
    let value = json!({
        "id": format!("{}/relations/{rel}", SentinelRecord::arm_id(base, name)),
        "name": rel, "etag": World::new_etag(), "type": "Microsoft.SecurityInsights/Incidents/relations",
        "properties": {"relatedResourceId": related, "relatedResourceName": related.rsplit('/').next().unwrap_or(""),
                       "relatedResourceType": if kind.is_empty() { "" } else { "Microsoft.SecurityInsights/entities" },
                       "relatedResourceKind": kind}
    });
    let created = r.relations.insert(rel.to_string(), value.clone()).is_none();
    sim.stats.bump(if created { "arm.relations.created" } else { "arm.relations.rewritten" });
    (if created { StatusCode::CREATED } else { StatusCode::OK }, Json(value)).into_response()
}

/// The rule alerts an incident is related to, in relation order.
pub fn related_alerts<'a>(w: &'a World, name: &Uuid) -> Vec<&'a SecurityAlertRecord> {
    let Some(r) = w.sentinel.get(name) else { return vec![] };
    r.relations
        .values()
        .filter_map(|v| v.pointer("/properties/relatedResourceId").and_then(Value::as_str))
        .filter_map(alert_id_of)
        .filter_map(|id| w.rule.alerts.iter().find(|a| a.system_alert_id.eq_ignore_ascii_case(id)))
        .collect()
}

/// `POST …/incidents/{id}/alerts`: the incident's alerts (`SecurityAlert` resources).
pub fn list_alerts(sim: &Sim, w: &World, name: &Uuid, base: &str) -> Response {
    sim.stats.bump("arm.incidents.alerts");
    let value: Vec<Value> = related_alerts(w, name)
        .into_iter()
        .map(|a| {
            json!({
                "id": format!("{base}/entities/{}", a.system_alert_id), "name": a.system_alert_id,
                "type": "Microsoft.SecurityInsights/Entities", "kind": "SecurityAlert",
                "properties": {"systemAlertId": a.system_alert_id, "alertDisplayName": a.doc["DisplayName"],
                               "description": a.doc["Description"], "severity": a.doc["AlertSeverity"],
                               "status": "New", "productName": a.doc["ProductName"],
                               "tactics": a.doc["Tactics"].as_str().filter(|s| !s.is_empty()).map(|s| s.split(',').collect::<Vec<_>>()).unwrap_or_default(),
                               "timeGenerated": a.doc["TimeGenerated"], "friendlyName": a.doc["DisplayName"]}
            })
        })
        .collect();
    Json(json!({"value": value})).into_response()
}

/// `POST …/incidents/{id}/entities`: the entities of its alerts, each once, and counts per kind.
pub fn list_entities(sim: &Sim, w: &World, name: &Uuid, base: &str) -> Response {
    sim.stats.bump("arm.incidents.entities");
    let mut entities: Vec<Value> = Vec::new();
    for a in related_alerts(w, name) {
        for e in &a.entities {
            if !entities.iter().any(|x| x["kind"] == e["kind"] && x["properties"] == e["properties"]) {
                let id = Uuid::new_v5(&Uuid::NAMESPACE_OID, e.to_string().as_bytes());
                entities.push(json!({"id": format!("{base}/entities/{id}"), "name": id.to_string(),
                    "type": "Microsoft.SecurityInsights/Entities", "kind": e["kind"], "properties": e["properties"]}));
            }
        }
    }
    let mut meta: Vec<Value> = Vec::new();
    for e in &entities {
        match meta.iter_mut().find(|m| m["entityKind"] == e["kind"]) {
            Some(m) => m["count"] = json!(m["count"].as_u64().unwrap_or(0) + 1),
            None => meta.push(json!({"entityKind": e["kind"], "count": 1})),
        }
    }
    Json(json!({"entities": entities, "metaData": meta})).into_response()
}

#[cfg(test)]
#[path = "alert_rule_tests.rs"]
mod tests;
