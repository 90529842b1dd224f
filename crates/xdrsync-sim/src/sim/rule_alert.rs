//! One SecurityAlert of an NRT rule, built from result rows as Sentinel builds it: named,
//! described and rated from the rule or its `alertDetailsOverride` columns, entities from the
//! rule's mappings, custom details in `ExtendedProperties` (`"Custom Details"`: JSON text of
//! `{"Key": ["value", …]}`), and the documented 64 KB size limit.
//!
//! Documented (Learn, *detect-threats-custom*): "The size limit for an entire alert is 64 KB";
//! entities are added to the alert one by one until the next would pass it, and the remaining
//! entities are dropped. Assumed: the size is the serialized SecurityAlert row, KB = 1,024
//! bytes, and an alert whose other fields alone pass the limit is still raised (with no
//! entities). Learn is silent on a summary alert's content: [`SummaryDetails`] picks one of two
//! shapes (see `SimOptions::summary_details`).

use serde_json::{json, Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::alert_rule::SecurityAlertRecord;
use super::nrt_rule::NrtRule;
use super::SummaryDetails;

/// The size limit of an alert, in bytes.
pub const MAX_ALERT_BYTES: usize = 64 * 1024;

/// An alert and how many entities did not fit in it.
pub struct Built {
    pub alert: SecurityAlertRecord,
    pub dropped_entities: usize,
}

/// A column's value as alert text; empty and missing values are none.
fn value_text(row: &Map<String, Value>, column: &str) -> Option<String> {
    match row.get(column)? {
        Value::Null => None,
        Value::String(s) if s.is_empty() => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// `{{Column}}` placeholders filled from `row`; `None` when one has no value (the default then
/// applies, as Learn documents).
fn format(template: &str, row: &Map<String, Value>) -> Option<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(at) = rest.find("{{") {
        out.push_str(&rest[..at]);
        let end = rest[at..].find("}}")? + at;
        out.push_str(&value_text(row, rest[at + 2..end].trim())?);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    Some(out)
}

/// The entities the rule's mappings make of `row`: `{"kind", "properties"}`, one per mapping
/// with at least one identifier value.
fn entities(rule: &NrtRule, row: &Map<String, Value>) -> Vec<Value> {
    rule.mappings
        .iter()
        .filter_map(|m| {
            let props: Map<String, Value> = m
                .fields
                .iter()
                .filter_map(|(id, c)| value_text(row, c).map(|v| (id.clone(), Value::String(v))))
                .collect();
            (!props.is_empty()).then(|| json!({"kind": m.entity_type, "properties": props}))
        })
        .collect()
}

/// The length `s` takes inside a JSON string.
fn escaped_len(s: &str) -> usize {
    serde_json::to_string(s).map_or(s.len(), |q| q.len() - 2)
}

/// The alert of `rule` over `rows` (one row for a single alert; every result for a summary or a
/// rule that groups all results into one alert).
pub fn build(
    rule: &NrtRule,
    rows: &[&Map<String, Value>],
    summary: bool,
    mode: SummaryDetails,
    t: OffsetDateTime,
) -> Built {
    let empty = Map::new();
    let first = rows.first().copied().unwrap_or(&empty);
    // A summary in `AllValues` shape carries every result; otherwise the alert is the first row's.
    let all = summary && mode == SummaryDetails::AllValues;
    let detail_rows: &[&Map<String, Value>] = if all { rows } else { &rows[..rows.len().min(1)] };

    let mut details = Map::new();
    for (key, column) in &rule.custom_details {
        let values: Vec<Value> = detail_rows.iter().filter_map(|r| value_text(r, column)).map(Value::String).collect();
        if !values.is_empty() {
            details.insert(key.clone(), Value::Array(values));
        }
    }
    let mut found: Vec<Value> = Vec::new();
    for r in detail_rows {
        for e in entities(rule, r) {
            if !found.contains(&e) {
                found.push(e);
            }
        }
    }

    let o = &rule.overrides;
    let over = |k: &str| if all { None } else { o.get(k).and_then(Value::as_str) };
    let name =
        over("alertDisplayNameFormat").and_then(|f| format(f, first)).unwrap_or_else(|| rule.display_name.clone());
    let description =
        over("alertDescriptionFormat").and_then(|f| format(f, first)).unwrap_or_else(|| rule.description.clone());
    let severity = over("alertSeverityColumnName")
        .and_then(|c| value_text(first, c))
        .filter(|s| ["High", "Medium", "Low", "Informational"].contains(&s.as_str()))
        .unwrap_or_else(|| rule.severity.clone());
    let tactics =
        over("alertTacticsColumnName").and_then(|c| value_text(first, c)).unwrap_or_else(|| rule.tactics.join(","));
    let id = Uuid::new_v4().to_string();
    let ext = json!({"Custom Details": Value::Object(details).to_string(), "Analytic Rule Name": rule.display_name});
    let mut doc = json!({
        "SystemAlertId": id, "TimeGenerated": super::timefmt::format(t),
        "AlertName": name, "DisplayName": name, "Description": description,
        "AlertSeverity": severity, "Tactics": tactics,
        "ProviderName": "ASI Scheduled Alerts", "ProductName": "Azure Sentinel", "Status": "New",
        "AlertLink": "", "Entities": "[]", "ExtendedProperties": ext.to_string(),
    });
    if !all {
        for d in o.get("alertDynamicProperties").and_then(Value::as_array).into_iter().flatten() {
            if let (Some(prop), Some(v)) =
                (d["alertProperty"].as_str(), d["value"].as_str().and_then(|c| value_text(first, c)))
            {
                doc[prop] = Value::String(v);
            }
        }
    }

    // Entities one by one while the alert stays within the limit; the rest are dropped.
    let mut size = doc.to_string().len();
    let mut kept: Vec<Value> = Vec::new();
    let mut stored: Vec<Value> = Vec::new();
    for e in &found {
        let mut m = e["properties"].as_object().cloned().unwrap_or_default();
        m.insert("$id".into(), json!((kept.len() + 1).to_string()));
        m.insert("Type".into(), json!(e["kind"].as_str().unwrap_or("").to_ascii_lowercase()));
        let add = escaped_len(&Value::Object(m.clone()).to_string()) + usize::from(!kept.is_empty());
        if size + add > MAX_ALERT_BYTES {
            break;
        }
        size += add;
        kept.push(Value::Object(m));
        stored.push(e.clone());
    }
    let dropped_entities = found.len() - stored.len();
    doc["Entities"] = Value::String(Value::Array(kept).to_string());
    Built {
        alert: SecurityAlertRecord {
            system_alert_id: id,
            time_generated: t,
            ingested: t,
            doc: doc.as_object().cloned().unwrap_or_default(),
            entities: stored,
            rule: rule.name.clone(),
            summary,
        },
        dropped_entities,
    }
}
