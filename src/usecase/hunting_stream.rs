//! The advanced-hunting export's stream sources (ARCHITECTURE.md: “Advanced hunting”): records
//! of Defender's Streaming API, from Event Hub events (the `HuntingEventHub` function) or from
//! the storage account's append blobs (`hunting_storage`), unwrapped, filtered and projected in
//! xdrsync by the same per-table settings as the query source, and sent to `Custom-<Table>`.
//! Each row's `DefenderTenantId` is its record's `tenantId`: one stream may carry many tenants.

use serde::Serialize;
use serde_json::Value;

use crate::domain::hunting::rows::filter_and_map;
use crate::domain::hunting::schema::TableDef;
use crate::domain::hunting::streaming::{self, Parsed};
use crate::error::PortError;
use crate::usecase::hunting::sink;
use crate::usecase::Ports;

/// What one batch of records did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StreamReport {
    pub records: usize,
    pub rows_sent: usize,
    /// Dropped by `XDRSYNC_HUNTING_FILTER_<TABLE>`.
    pub rows_filtered: usize,
    pub rows_too_large: usize,
    /// Records of another category, not records, or rows without a time (logged).
    pub skipped: usize,
}

/// The records an Event Hub invocation carries: with `cardinality: many` the binding is an array
/// of event bodies, each a JSON string (or an object, if the host parsed it) holding
/// `{"records": [...]}`; a single body is read the same way.
pub fn event_hub_records(binding: &Value) -> Parsed {
    let mut out = Parsed::default();
    let mut add = |event: &Value| match event {
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(doc) => streaming::add_document(&mut out, &doc),
            // A body that is itself JSON lines.
            Err(_) => {
                let p = streaming::parse_lines(s);
                out.rows.extend(p.rows);
                out.unknown_category += p.unknown_category;
                out.malformed += p.malformed;
            }
        },
        other => streaming::add_document(&mut out, other),
    };
    match binding {
        Value::Array(events) => events.iter().for_each(&mut add),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Array(events)) => events.iter().for_each(&mut add),
            _ => add(binding),
        },
        other => add(other),
    }
    out
}

/// Filters, maps and sends parsed records, table by table (in arrival order within a table).
pub async fn export_records(s: &Ports, parsed: Parsed) -> Result<StreamReport, PortError> {
    let mut report = StreamReport {
        records: parsed.rows.len() + parsed.unknown_category + parsed.malformed,
        skipped: parsed.unknown_category + parsed.malformed,
        ..Default::default()
    };
    if parsed.unknown_category + parsed.malformed > 0 {
        tracing::warn!(
            records.unknown_category = parsed.unknown_category,
            records.malformed = parsed.malformed,
            "skipped Streaming API records that are not advanced-hunting rows of a known table"
        );
    }
    let mut by_table: Vec<(&'static TableDef, Vec<Value>)> = Vec::new();
    for row in parsed.rows {
        let rules = s.config.hunting.rules_for(row.table);
        // The record names its tenant; one without `tenantId` (not documented to happen) is
        // taken as this scope's tenant.
        let tenant = row.tenant.as_deref().unwrap_or(&s.config.tenant_id);
        match filter_and_map(row.table, row.row, tenant, &rules) {
            Ok(Some(v)) => match by_table.iter_mut().find(|(t, _)| t.name == row.table.name) {
                Some((_, rows)) => rows.push(v),
                None => by_table.push((row.table, vec![v])),
            },
            Ok(None) => report.rows_filtered += 1,
            Err(_) => report.skipped += 1,
        }
    }
    for (table, rows) in by_table {
        let (sent, too_large) = sink(s, table, &rows).await?;
        report.rows_sent += sent;
        report.rows_too_large += too_large;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_every_envelope_shape_of_a_batch() {
        let body = json!({"records": [{"time": "2024-05-01T10:00:00Z", "category": "AdvancedHunting-EmailEvents",
            "properties": {"Timestamp": "2024-05-01T10:00:00Z", "Subject": "hi"}}]});
        let as_strings = json!([body.to_string(), body.to_string()]);
        assert_eq!(event_hub_records(&as_strings).rows.len(), 2);
        assert_eq!(event_hub_records(&json!([body.clone()])).rows.len(), 1);
        assert_eq!(event_hub_records(&Value::String(json!([body.clone()]).to_string())).rows.len(), 1);
        assert_eq!(event_hub_records(&body).rows.len(), 1);
        assert_eq!(event_hub_records(&json!(["not json"])).malformed, 1);
    }
}
