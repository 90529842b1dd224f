//! The Streaming API's record format, shared by its storage and Event Hub outputs: each record
//! is `{"time", "tenantId", "operationName", "category": "AdvancedHunting-<Table>",
//! "properties": {<the table's columns>}}`; Event Hub events carry `{"records": [...]}`, storage
//! blobs carry records one JSON document per line (documented: the category naming and
//! `properties`; assumed: that a storage blob line may also hold a `{"records": [...]}` batch,
//! which is read the same way). `properties` is the advanced-hunting row; a row without
//! `Timestamp` takes the record's `time`. The record's `tenantId` (documented: "the Id of the
//! tenant that the event belongs to") is the row's `DefenderTenantId`.

use serde_json::{Map, Value};

use super::schema::{TableDef, TIMESTAMP};

/// One record's table and row.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRow {
    pub table: &'static TableDef,
    pub row: Map<String, Value>,
    /// The record's `tenantId`; `None` when the record has none (the caller then falls back to
    /// its own tenant).
    pub tenant: Option<String>,
}

/// What one chunk of records held.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Parsed {
    pub rows: Vec<StreamRow>,
    /// Records of a category that is not an advanced-hunting table xdrsync knows.
    pub unknown_category: usize,
    /// Lines or records that are not records at all.
    pub malformed: usize,
}

/// `AdvancedHunting-DeviceProcessEvents` → DeviceProcessEvents.
pub fn table_of_category(category: &str) -> Option<&'static TableDef> {
    let name = category.strip_prefix("AdvancedHunting-").or_else(|| category.strip_prefix("advancedhunting-"))?;
    TableDef::find(name)
}

/// The storage container of a table's records (`insights-logs-advancedhunting-<table lower>`).
pub fn container_of(table: &TableDef) -> String {
    format!("insights-logs-advancedhunting-{}", table.name.to_ascii_lowercase())
}

fn add_record(out: &mut Parsed, record: &Value) {
    let Some(obj) = record.as_object() else {
        out.malformed += 1;
        return;
    };
    let category = obj.get("category").and_then(Value::as_str).unwrap_or_default();
    let Some(table) = table_of_category(category) else {
        out.unknown_category += 1;
        return;
    };
    let Some(mut row) = obj.get("properties").and_then(Value::as_object).cloned() else {
        out.malformed += 1;
        return;
    };
    if !row.contains_key(TIMESTAMP) {
        if let Some(t) = obj.get("time") {
            row.insert(TIMESTAMP.into(), t.clone());
        }
    }
    let tenant = obj.get("tenantId").and_then(Value::as_str).map(str::trim).filter(|t| !t.is_empty());
    out.rows.push(StreamRow { table, row, tenant: tenant.map(str::to_ascii_lowercase) });
}

/// Adds a document: a record, or `{"records": [...]}`.
pub fn add_document(out: &mut Parsed, doc: &Value) {
    match doc.get("records") {
        Some(Value::Array(records)) => records.iter().for_each(|r| add_record(out, r)),
        Some(_) => out.malformed += 1,
        None => add_record(out, doc),
    }
}

/// Parses JSON lines (a storage blob's bytes, whole lines only).
pub fn parse_lines(text: &str) -> Parsed {
    let mut out = Parsed::default();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match serde_json::from_str::<Value>(line) {
            Ok(doc) => add_document(&mut out, &doc),
            Err(_) => out.malformed += 1,
        }
    }
    out
}

/// How many bytes of `bytes` are whole lines (up to and including the last `\n`): a blob being
/// appended to may end inside a record, which is read once it is complete.
pub fn complete_prefix(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_event_hub_batches_and_json_lines() {
        let rec = |cat: &str| {
            json!({"time": "2024-05-01T10:00:00Z", "tenantId": "t", "operationName": "Publish",
            "category": cat, "properties": {"DeviceName": "pc1"}})
        };
        let mut p = Parsed::default();
        add_document(
            &mut p,
            &json!({"records": [rec("AdvancedHunting-DeviceProcessEvents"), rec("AdvancedHunting-Nope")]}),
        );
        assert_eq!(p.rows.len(), 1);
        assert_eq!(p.rows[0].table.name, "DeviceProcessEvents");
        assert_eq!(p.rows[0].row["Timestamp"], "2024-05-01T10:00:00Z", "time stands in for a missing Timestamp");
        assert_eq!(p.unknown_category, 1);
        assert_eq!(p.rows[0].tenant.as_deref(), Some("t"), "the record's tenantId");
        let mut untagged = rec("AdvancedHunting-EmailEvents");
        untagged.as_object_mut().unwrap().remove("tenantId");
        let mut p = Parsed::default();
        add_document(&mut p, &untagged);
        assert_eq!(p.rows[0].tenant, None);
        let text =
            format!("{}\n\nnot json\n{}\n", rec("AdvancedHunting-EmailEvents"), rec("AdvancedHunting-EmailEvents"));
        let p = parse_lines(&text);
        assert_eq!((p.rows.len(), p.malformed), (2, 1));
    }

    #[test]
    fn only_whole_lines_are_read() {
        assert_eq!(complete_prefix(b"{\"a\":1}\n{\"b\""), 8);
        assert_eq!(complete_prefix(b"{\"b\""), 0);
        assert_eq!(
            container_of(TableDef::find("DeviceProcessEvents").unwrap()),
            "insights-logs-advancedhunting-deviceprocessevents"
        );
    }
}
