//! The near-real-time analytics rule of `infra/alert-rule.bicep`, simulated, and what Sentinel
//! shows of its alerts: each row ingested into the alert stream becomes one SecurityAlert after
//! `SimOptions::alert_rule_delay_ms` (the rule's run plus ingestion), named and described from the
//! row, its entities from the flattened entity columns (the rule's mappings, written here again
//! from the rule, not from xdrsync's code), and the custom details in `ExtendedProperties` as
//! Sentinel stores them (`"Custom Details"`: JSON text of `{"Key": ["value"]}`).
//!
//! Relations (`PUT …/relations/{name}`) to `…/entities/{SystemAlertId}` are checked against these
//! alerts: an alert not stored yet is a 404, a name reused for another alert a 409, a 151st alert
//! a 400. `POST …/alerts` and `POST …/entities` list what an analyst sees.

use std::collections::VecDeque;
use std::time::Instant;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::faults::arm_error;
use super::model::SentinelRecord;
use super::world::World;
use super::Sim;

/// The stream the rule reads (the DCR's output table `XdrsyncAlerts_CL`).
pub const STREAM: &str = "Custom-XdrsyncAlerts";
/// Alerts one incident shows (documented).
pub const MAX_ALERTS: usize = 150;

/// The rule's entity mappings: `(entity kind, [(column, identifier)])`, as the Bicep declares.
pub const ENTITY_MAPPINGS: [(&str, &[(&str, &str)]); 10] = [
    ("Host", &[("EntityHostName", "HostName"), ("EntityHostDnsDomain", "DnsDomain"), ("EntityHostAzureId", "AzureID")]),
    (
        "Account",
        &[
            ("EntityAccountName", "Name"),
            ("EntityAccountUPNSuffix", "UPNSuffix"),
            ("EntityAccountAadUserId", "AadUserId"),
        ],
    ),
    (
        "Account",
        &[
            ("EntityAccount2Name", "Name"),
            ("EntityAccount2UPNSuffix", "UPNSuffix"),
            ("EntityAccount2AadUserId", "AadUserId"),
        ],
    ),
    ("IP", &[("EntityIp", "Address")]),
    ("IP", &[("EntityIp2", "Address")]),
    ("FileHash", &[("EntityFileHashAlgorithm", "Algorithm"), ("EntityFileHashValue", "Value")]),
    ("URL", &[("EntityUrl", "Url")]),
    ("Mailbox", &[("EntityMailbox", "MailboxPrimaryAddress")]),
    ("Process", &[("EntityProcessId", "ProcessId"), ("EntityProcessCommandLine", "CommandLine")]),
    ("CloudApplication", &[("EntityCloudAppId", "AppId"), ("EntityCloudAppName", "Name")]),
];

/// The rule's custom details: key → column.
pub const CUSTOM_DETAILS: [(&str, &str); 3] = [
    ("DefenderTenantId", "DefenderTenantId"),
    ("DefenderIncidentId", "DefenderIncidentId"),
    ("DefenderAlertId", "SystemAlertId"),
];

/// One SecurityAlert the rule made.
#[derive(Debug, Clone)]
pub struct SecurityAlertRecord {
    pub system_alert_id: String,
    pub time_generated: OffsetDateTime,
    pub ingested: OffsetDateTime,
    /// The SecurityAlert columns.
    pub doc: Map<String, Value>,
    /// Entities as the Entities tab lists them (`kind`, `properties`).
    pub entities: Vec<Value>,
}

impl SecurityAlertRecord {
    /// A custom detail's first value, read back from `ExtendedProperties` as a query would.
    pub fn custom_detail(&self, key: &str) -> Option<String> {
        let ext: Value = serde_json::from_str(self.doc.get("ExtendedProperties")?.as_str()?).ok()?;
        let details: Value = serde_json::from_str(ext.get("Custom Details")?.as_str()?).ok()?;
        details.get(key)?.get(0)?.as_str().map(str::to_string)
    }
}

/// The rule's state: rows waiting for its run, and the alerts it made.
#[derive(Debug, Default)]
pub struct RuleState {
    pending: VecDeque<(Instant, Value)>,
    /// The correlation engine when the rows arrived: `(groups all, workspace tenant)`; `None`
    /// when the workspace is not onboarded to the Defender portal.
    pub engine: Option<(bool, String)>,
    /// The engine's incidents: source `tenant/incident` → incident id, and the latest one.
    pub engine_links: std::collections::BTreeMap<String, String>,
    pub engine_last: Option<String>,
    pub alerts: Vec<SecurityAlertRecord>,
}

/// Called by Logs Ingestion for accepted rows: the rule sees them after the delay.
pub fn on_ingest(sim: &Sim, world: &mut World, stream: &str, rows: &[Value]) {
    let options = sim.options();
    if stream != STREAM || !options.alert_rule {
        return;
    }
    let due = Instant::now() + std::time::Duration::from_millis(options.alert_rule_delay_ms);
    world.rule.engine = options.correlation_engine.then(|| (options.engine_groups_all, sim.config.tenant_id.clone()));
    world.rule.pending.extend(rows.iter().map(|r| (due, r.clone())));
}

/// Makes every row ingested so far due now, as if the rule's run had come: tests step the rule
/// with this instead of waiting out a wall-clock delay.
pub fn run_now(world: &mut World) {
    let now = Instant::now();
    for (due, _) in world.rule.pending.iter_mut() {
        *due = (*due).min(now);
    }
    run(world);
}

/// Runs the rule over every row that is due (lazily, before anything reads its alerts).
pub fn run(world: &mut World) {
    let now = Instant::now();
    while world.rule.pending.front().is_some_and(|(due, _)| *due <= now) {
        let Some((_, row)) = world.rule.pending.pop_front() else { break };
        let t = world.now();
        let alert = make_alert(&row, t);
        if let Some((group_all, tenant)) = world.rule.engine.clone() {
            super::engine::correlate(world, &alert, group_all, &tenant);
        }
        world.rule.alerts.push(alert);
    }
}

fn col<'a>(row: &'a Value, c: &str) -> Option<&'a str> {
    row.get(c).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn make_alert(row: &Value, t: OffsetDateTime) -> SecurityAlertRecord {
    let id = Uuid::new_v4().to_string();
    let mut entities = Vec::new();
    for (kind, ids) in ENTITY_MAPPINGS {
        let props: Map<String, Value> = ids
            .iter()
            .filter_map(|(c, ident)| col(row, c).map(|v| ((*ident).to_string(), Value::String(v.to_string()))))
            .collect();
        if !props.is_empty() {
            entities.push(json!({"kind": kind, "properties": props}));
        }
    }
    let details: Map<String, Value> =
        CUSTOM_DETAILS.iter().filter_map(|(k, c)| col(row, c).map(|v| ((*k).to_string(), json!([v])))).collect();
    let ext = json!({"Custom Details": Value::Object(details).to_string(), "Analytic Rule Name": "xdrsync: Defender XDR alerts"});
    // Severity and tactics from their columns; a value the rule cannot use falls back to the rule's.
    let severity = col(row, "AlertSeverity")
        .filter(|s| ["High", "Medium", "Low", "Informational"].contains(s))
        .unwrap_or("Medium");
    let sentinel_entities: Vec<Value> = entities
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut m = e["properties"].as_object().cloned().unwrap_or_default();
            m.insert("$id".into(), json!((i + 1).to_string()));
            m.insert("Type".into(), json!(e["kind"].as_str().unwrap_or("").to_ascii_lowercase()));
            Value::Object(m)
        })
        .collect();
    let doc = json!({
        "SystemAlertId": id, "TimeGenerated": super::timefmt::format(t),
        "AlertName": col(row, "AlertName").unwrap_or("xdrsync: Defender XDR alerts"),
        "DisplayName": col(row, "AlertName").unwrap_or("xdrsync: Defender XDR alerts"),
        "Description": col(row, "Description").unwrap_or(""),
        "AlertSeverity": severity, "Tactics": col(row, "Tactics").unwrap_or(""),
        "Techniques": col(row, "Techniques").unwrap_or(""),
        "ProviderName": "ASI Scheduled Alerts", "ProductName": "Azure Sentinel", "Status": "New",
        "AlertLink": col(row, "AlertLink").unwrap_or(""),
        "Entities": Value::Array(sentinel_entities).to_string(), "ExtendedProperties": ext.to_string(),
    });
    SecurityAlertRecord {
        system_alert_id: id,
        time_generated: t,
        ingested: t,
        doc: doc.as_object().cloned().unwrap_or_default(),
        entities,
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
