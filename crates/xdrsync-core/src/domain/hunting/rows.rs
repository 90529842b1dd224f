//! One Defender row → one `<Table>_CL` row: the table's columns under their own names (a name
//! Log Analytics reserves gets a trailing `_`), `TimeGenerated` = `Timestamp`, every column this
//! build does not know kept in `AdditionalFields` (merged into the table's own
//! `AdditionalFields` object where it has one, never dropped), `XdrsyncRowKey`, a digest of
//! the row as Defender sent it, and `DefenderTenantId`, the tenant it came from (lower-cased;
//! kept by every projection, like the key). `ReportId` alone is not unique (Microsoft: unique
//! only together with the device and `Timestamp`), so the key is a digest for every table; a
//! re-sent row has the same key, so `summarize arg_max(TimeGenerated, *) by DefenderTenantId,
//! XdrsyncRowKey` removes re-sends (the key digests the row alone: two tenants could send equal
//! rows).

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::filter::Expr;
use super::schema::{output_name, TableDef, ADDITIONAL_FIELDS, ROW_KEY, TENANT_COLUMN, TIMESTAMP, TIME_GENERATED};
use crate::domain::time_fmt;

/// A row that cannot be exported: no readable `Timestamp`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("row has no valid Timestamp")]
pub struct NoTimestamp;

/// The row's digest: SHA-256 of its canonical JSON (keys sorted), 32 hex digits.
pub fn row_key(row: &Map<String, Value>) -> String {
    // serde_json's Map is ordered by key (no `preserve_order`), so this text is canonical.
    let text = serde_json::to_string(row).unwrap_or_default();
    let d = Sha256::digest(text.as_bytes());
    d[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The row's `Timestamp`.
pub fn timestamp(row: &Map<String, Value>) -> Result<OffsetDateTime, NoTimestamp> {
    row.get(TIMESTAMP).and_then(Value::as_str).and_then(|s| time_fmt::parse(s).ok()).ok_or(NoTimestamp)
}

/// What is kept of each row: a filter (stream sources; the query source filters in KQL) and a
/// projection.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RowRules {
    pub filter: Option<Expr>,
    /// Canonical column names; `None` keeps every column (and unknown ones in `AdditionalFields`).
    pub columns: Option<Vec<String>>,
}

/// Maps one row of Defender tenant `tenant`; `key` is [`row_key`] of the row as received.
pub fn map_row(
    table: &TableDef,
    row: Map<String, Value>,
    key: &str,
    tenant: &str,
    rules: &RowRules,
) -> Result<Value, NoTimestamp> {
    let ts = timestamp(&row)?;
    let mut out = Map::new();
    let mut unknown = Map::new();
    let mut own_additional: Option<Value> = None;
    for (name, value) in row {
        match table.column(&name) {
            Some((canon, _)) if canon == ADDITIONAL_FIELDS => own_additional = Some(value),
            Some((canon, _)) => {
                let keep = rules.columns.as_ref().is_none_or(|c| canon == TIMESTAMP || c.iter().any(|k| k == canon));
                if keep {
                    out.insert(output_name(canon), value);
                }
            }
            None => {
                unknown.insert(name, value);
            }
        }
    }
    let projected = rules.columns.is_some();
    let keep_additional = rules.columns.as_ref().is_none_or(|c| c.iter().any(|k| k == ADDITIONAL_FIELDS));
    // With a projection, only the columns asked for are kept (unknown ones included: a user
    // who projects chose what to pay for).
    let additional = match (own_additional, projected) {
        (own, false) => merge_additional(own, unknown),
        (own, true) if keep_additional => merge_additional(own, Map::new()),
        _ => None,
    };
    if let Some(a) = additional {
        out.insert(ADDITIONAL_FIELDS.into(), a);
    }
    out.insert(TIME_GENERATED.into(), Value::String(time_fmt::format(ts)));
    out.insert(ROW_KEY.into(), Value::String(key.to_string()));
    out.insert(TENANT_COLUMN.into(), Value::String(tenant.to_ascii_lowercase()));
    Ok(Value::Object(out))
}

/// The table's own `AdditionalFields` (an object, or a JSON object in a string, as Defender
/// sends it) with the unknown columns added beside its keys; a non-object value is kept under
/// `AdditionalFields` inside the object.
fn merge_additional(own: Option<Value>, unknown: Map<String, Value>) -> Option<Value> {
    let own = match own {
        Some(Value::String(s)) => {
            serde_json::from_str::<Value>(&s).ok().filter(Value::is_object).or(Some(Value::String(s)))
        }
        other => other,
    };
    if unknown.is_empty() {
        return own.filter(|v| !v.is_null());
    }
    let mut merged = match own {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(other) => Map::from_iter([(ADDITIONAL_FIELDS.to_string(), other)]),
    };
    for (k, v) in unknown {
        merged.entry(k).or_insert(v);
    }
    Some(Value::Object(merged))
}

/// Applies the stream sources' filter, then maps: `Ok(None)` when the filter drops the row.
pub fn filter_and_map(
    table: &TableDef,
    row: Map<String, Value>,
    tenant: &str,
    rules: &RowRules,
) -> Result<Option<Value>, NoTimestamp> {
    if let Some(f) = &rules.filter {
        if !f.matches(&row) {
            return Ok(None);
        }
    }
    let key = row_key(&row);
    map_row(table, row, &key, tenant, rules).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn keeps_columns_adds_time_generated_key_and_unknowns() {
        let t = TableDef::find("DeviceProcessEvents").unwrap();
        let row = obj(json!({"Timestamp": "2024-05-01T10:00:00.1234567Z", "FileName": "cmd.exe",
            "AdditionalFields": "{\"a\":1}", "BrandNewColumn": 7}));
        let key = row_key(&row);
        let out = map_row(t, row.clone(), &key, "1F2E3D4C-0000-4000-8000-000000000001", &RowRules::default()).unwrap();
        assert_eq!(out["FileName"], "cmd.exe");
        assert_eq!(out["DefenderTenantId"], "1f2e3d4c-0000-4000-8000-000000000001", "the tenant, lower-cased");
        assert_eq!(out["Timestamp"], "2024-05-01T10:00:00.1234567Z");
        assert_eq!(out["TimeGenerated"], "2024-05-01T10:00:00.1234567Z");
        assert_eq!(out["AdditionalFields"], json!({"a": 1, "BrandNewColumn": 7}));
        assert_eq!(out["XdrsyncRowKey"].as_str().unwrap().len(), 32);
        assert_eq!(row_key(&row), key, "the key is stable");
    }

    #[test]
    fn reserved_names_are_renamed_and_projection_keeps_only_what_was_asked() {
        let t = TableDef::find("AlertInfo").unwrap();
        let row = obj(json!({"Timestamp": "2024-05-01T10:00:00Z", "Title": "x", "Severity": "High", "Extra": 1}));
        let out = map_row(t, row.clone(), "k", "t1", &RowRules::default()).unwrap();
        assert_eq!(out["Title_"], "x");
        assert!(out.get("Title").is_none());
        assert_eq!(out["AdditionalFields"], json!({"Extra": 1}));
        let rules = RowRules { columns: Some(vec!["Severity".into()]), ..Default::default() };
        let out = map_row(t, row, "k", "t1", &rules).unwrap();
        let keys: Vec<&str> = out.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, ["DefenderTenantId", "Severity", "TimeGenerated", "Timestamp", "XdrsyncRowKey"]);
        assert_eq!(out["DefenderTenantId"], "t1", "a projection never drops the tenant");
    }

    #[test]
    fn a_row_without_timestamp_is_refused_and_filters_drop_rows() {
        let t = TableDef::find("EmailEvents").unwrap();
        assert_eq!(map_row(t, obj(json!({"Subject": "x"})), "k", "t1", &RowRules::default()), Err(NoTimestamp));
        let rules =
            RowRules { filter: super::super::filter::parse("EmailDirection == 'Inbound'").unwrap(), columns: None };
        let row = obj(json!({"Timestamp": "2024-05-01T10:00:00Z", "EmailDirection": "Outbound"}));
        assert_eq!(filter_and_map(t, row, "t1", &rules), Ok(None));
        let inbound = obj(json!({"Timestamp": "2024-05-01T10:00:00Z", "EmailDirection": "Inbound"}));
        let kept = filter_and_map(t, inbound, "t2", &rules).unwrap().expect("passes the filter");
        assert_eq!(kept["DefenderTenantId"], "t2");
    }
}
