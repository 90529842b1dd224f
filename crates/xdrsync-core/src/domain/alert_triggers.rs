//! Trigger rows of `XdrsyncAlertTriggers_CL` (docs/native-alerts.md), pure: the small rows the
//! analytics rules turn into SecurityAlerts, one per Defender alert (plus “entities k/n” rows for
//! an alert whose entities do not fit one alert's mappings), with the rule shard each goes to.
//!
//! Documented (Learn, “Create near-real-time rules”, “Customize alert details”, “Map data fields
//! to entities”): an alert is at most 64 KB, entities are added one by one until that size and the
//! rest dropped, so the rule should project only the columns it uses; at most 10 entity mappings
//! per rule with at most 3 identifiers each; at most 20 custom details. Each value here is cut
//! ([`MAX_VALUE_BYTES`], [`MAX_DESCRIPTION_BYTES`]) so a row stays below [`MAX_TRIGGER_ROW_BYTES`]
//! and the SecurityAlert made from it (the row's values, its mapped entities, the custom details)
//! stays well under 64 KB. The full alert stays in `XdrsyncAlerts_CL`, unpaced and uncut.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::alert_links::MAX_ALERTS_PER_INCIDENT;
use super::alerts::cut;
use super::entity_columns::trigger_parts;

/// The most bytes a trigger row takes serialized (without `TriggerId`, `RuleShard`,
/// `TimeGenerated`, added at send time, ~100 bytes). Well under the 64 KB alert limit even with
/// the entities the rule builds from it and SecurityAlert's own columns, and under Table
/// Storage's 64 KiB string property, so the outbox keeps the row as one property.
pub const MAX_TRIGGER_ROW_BYTES: usize = 24_000;
/// Each value except the description (serialized, quotes included).
pub const MAX_VALUE_BYTES: usize = 512;
/// The description's share.
pub const MAX_DESCRIPTION_BYTES: usize = 8_000;
/// An alert link is kept whole up to this (a cut link is useless).
const MAX_LINK_BYTES: usize = 2_048;

/// Columns copied from the alert row (`alerts::row`) into a trigger row.
const COPIED: [&str; 8] = [
    "DefenderTenantId",
    "DefenderIncidentId",
    "AlertName",
    "Description",
    "AlertSeverity",
    "Tactics",
    "AlertLink",
    "ProductComponentName",
];

/// Columns added when a row is sent (`usecase::alert_outbox`).
pub const SEND_COLUMNS: [&str; 3] = ["TimeGenerated", "TriggerId", "RuleShard"];

/// Every column a sent trigger row may carry: what `infra/alert-trigger-columns.json` must
/// declare (Logs Ingestion silently drops an undeclared column).
pub fn sent_columns() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = SEND_COLUMNS.to_vec();
    v.extend(COPIED);
    v.extend(["DefenderAlertId", "TriggerPart"]);
    v.extend(super::entity_columns::trigger_entity_columns());
    v
}

/// Where one trigger row belongs: the Defender alert, the incident it was seen on, and which part
/// of the alert's entities it carries (1-based; parts > 1 are the “entities k/n” rows).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TriggerKey {
    pub tenant_id: String,
    pub incident_id: String,
    pub alert_id: String,
    pub part: u16,
}

impl TriggerKey {
    /// The outbox row key: stable, unique per (tenant, incident, alert, part).
    pub fn row_key(&self) -> String {
        format!("{}:{}:{}:{}", self.tenant_id.to_ascii_lowercase(), self.incident_id, self.alert_id, self.part)
    }

    /// The key a relation link is kept under: the alert's part, whatever incident holds it now.
    pub fn link_key(&self) -> String {
        format!("{}:{}:{}", self.tenant_id.to_ascii_lowercase(), self.alert_id, self.part)
    }
}

/// One trigger row to send (content only; `TriggerId`, `RuleShard`, `TimeGenerated` at send).
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerRow {
    pub key: TriggerKey,
    pub shard: u16,
    pub columns: Map<String, Value>,
}

/// The rule shard of a Defender alert: a stable hash of its id (SHA-256, not the std hasher,
/// whose output may change between Rust versions) modulo the number of rules.
pub fn shard_of(alert_id: &str, rules: u16) -> u16 {
    let h = Sha256::digest(alert_id.trim().as_bytes());
    let n = u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]]);
    (n % u64::from(rules.max(1))) as u16
}

fn row_len(m: &Map<String, Value>) -> usize {
    serde_json::to_string(m).map_or(usize::MAX, |s| s.len())
}

/// Every value of `m` cut to its share, then the description halved while the row is too big.
fn bound(m: &mut Map<String, Value>) {
    for (k, v) in m.iter_mut() {
        if let Value::String(s) = v {
            let max = match k.as_str() {
                "Description" => MAX_DESCRIPTION_BYTES,
                "AlertLink" => MAX_LINK_BYTES,
                _ => MAX_VALUE_BYTES,
            };
            *s = cut(s, max).into_owned();
        }
    }
    let mut max = MAX_DESCRIPTION_BYTES;
    while row_len(m) > MAX_TRIGGER_ROW_BYTES && max > 128 {
        max /= 2;
        if let Some(Value::String(s)) = m.get_mut("Description") {
            *s = cut(s, max).into_owned();
        }
    }
}

/// The trigger rows of one alert row (`alerts::row`): part 1 carries the alert's first entity of
/// each mapped kind, parts 2..n the rest, so no mapped entity is lost. `None` if the row lacks
/// its ids.
fn alert_parts(alert_row: &Map<String, Value>, rules: u16) -> Option<Vec<TriggerRow>> {
    let text = |k: &str| alert_row.get(k).and_then(Value::as_str).map(str::to_string).filter(|s| !s.is_empty());
    let (tenant, incident, alert) = (text("DefenderTenantId")?, text("DefenderIncidentId")?, text("SystemAlertId")?);
    let entities: Vec<Value> = text("Entities").and_then(|e| serde_json::from_str(&e).ok()).unwrap_or_default();
    let parts = trigger_parts(&entities);
    let n = parts.len();
    let shard = shard_of(&alert, rules);
    Some(
        parts
            .into_iter()
            .enumerate()
            .map(|(i, entity_cols)| {
                let mut m = Map::new();
                for c in COPIED {
                    if let Some(v) = alert_row.get(c).filter(|v| !v.is_null()) {
                        m.insert(c.to_string(), v.clone());
                    }
                }
                m.insert("DefenderAlertId".into(), Value::String(alert.clone()));
                m.insert("TriggerPart".into(), Value::String(format!("{}/{n}", i + 1)));
                if i > 0 {
                    let name = text("AlertName").unwrap_or_default();
                    m.insert("AlertName".into(), Value::String(format!("{name} (entities {}/{n})", i + 1)));
                }
                m.extend(entity_cols);
                bound(&mut m);
                let key = TriggerKey {
                    tenant_id: tenant.to_ascii_lowercase(),
                    incident_id: incident.clone(),
                    alert_id: alert.clone(),
                    part: (i + 1) as u16,
                };
                TriggerRow { key, shard, columns: m }
            })
            .collect(),
    )
}

/// Every trigger row of one incident's alert rows (oldest first), within Sentinel's 150 alerts
/// per incident: each alert's first part first (the 150 oldest alerts), then the extra entity
/// parts while room is left. Returns the rows and how many parts were left out at the limit
/// (their entities stay in `XdrsyncAlerts_CL`).
pub fn incident_triggers(alert_rows: &[&Map<String, Value>], rules: u16) -> (Vec<TriggerRow>, usize) {
    let per_alert: Vec<Vec<TriggerRow>> = alert_rows.iter().filter_map(|r| alert_parts(r, rules)).collect();
    let total: usize = per_alert.iter().map(Vec::len).sum();
    let mut out: Vec<TriggerRow> = Vec::new();
    let deepest = per_alert.iter().map(Vec::len).max().unwrap_or(0);
    // Breadth first: part 1 of every alert, then part 2 of every alert, ….
    'fill: for depth in 0..deepest {
        for parts in &per_alert {
            if let Some(p) = parts.get(depth) {
                if out.len() == MAX_ALERTS_PER_INCIDENT {
                    break 'fill;
                }
                out.push(p.clone());
            }
        }
    }
    let left_out = total - out.len();
    (out, left_out)
}

#[cfg(test)]
#[path = "alert_triggers_tests.rs"]
mod tests;
