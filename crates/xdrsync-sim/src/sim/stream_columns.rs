//! The columns each DCR input stream declares, read from the committed infra files (the DCR's own
//! declarations, never the product's code), and the table each stream lands in.
//!
//! Logs Ingestion keeps only the declared columns of a row and drops the rest without an error
//! (the service's documented behaviour for columns a stream declaration lacks; the simulator
//! counts them as `logs.undeclared_columns`). `Custom-XdrsyncAlerts` declares
//! `infra/alert-columns.json`; `Custom-XdrsyncAlertTriggers` declares
//! `infra/alert-trigger-columns.json` when the repository has that file (embedded by build.rs;
//! without it the stream is not declared and a call to it is refused like any undeclared
//! stream); the hunting streams declare `infra/hunting-tables.json`.

use std::sync::OnceLock;

use serde_json::Value;

/// The stream of every alert version (`XdrsyncAlerts_CL`).
pub const ALERTS_STREAM: &str = "Custom-XdrsyncAlerts";
/// The stream of trigger rows the rules read (`XdrsyncAlertTriggers_CL`).
pub const TRIGGERS_STREAM: &str = "Custom-XdrsyncAlertTriggers";

const ALERT_COLUMNS: &str = include_str!("../../../../infra/alert-columns.json");
const TRIGGER_COLUMNS: &str = include_str!(concat!(env!("OUT_DIR"), "/alert-trigger-columns.json"));

/// `(name, type)` pairs of a Bicep column array; `None` when the text is not one.
fn parse(text: &str) -> Option<Vec<(String, String)>> {
    let v: Value = serde_json::from_str(text).ok()?;
    v.as_array()?
        .iter()
        .map(|c| Some((c.get("name")?.as_str()?.to_string(), c.get("type")?.as_str()?.to_string())))
        .collect()
}

fn alert_columns() -> &'static Option<Vec<(String, String)>> {
    static C: OnceLock<Option<Vec<(String, String)>>> = OnceLock::new();
    C.get_or_init(|| parse(ALERT_COLUMNS))
}

fn trigger_columns() -> &'static Option<Vec<(String, String)>> {
    static C: OnceLock<Option<Vec<(String, String)>>> = OnceLock::new();
    C.get_or_init(|| parse(TRIGGER_COLUMNS))
}

/// The declared `(column, type)` pairs of `stream`, or `None` when the simulator does not know
/// the stream's declaration.
pub fn declared(stream: &str) -> Option<Vec<(String, String)>> {
    match stream {
        ALERTS_STREAM => alert_columns().clone(),
        TRIGGERS_STREAM => trigger_columns().clone(),
        _ => super::hunting_schema::stream_columns_typed(stream),
    }
}

/// Whether the repository declares the trigger stream yet.
pub fn triggers_declared() -> bool {
    trigger_columns().is_some()
}

/// The table a stream's rows land in: `Custom-<Name>` → `<Name>_CL` (infra/ingestion.bicep and
/// hunting.bicep route every stream so).
pub fn table_of(stream: &str) -> String {
    format!("{}_CL", stream.strip_prefix("Custom-").unwrap_or(stream))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alert_stream_declares_the_committed_columns_and_streams_land_in_their_tables() {
        let cols = declared(ALERTS_STREAM).expect("infra/alert-columns.json is a column array");
        assert!(cols.iter().any(|(c, t)| c == "TimeGenerated" && t == "datetime"));
        assert!(cols.iter().any(|(c, _)| c == "DefenderIncidentId"));
        assert_eq!(table_of(ALERTS_STREAM), "XdrsyncAlerts_CL");
        assert_eq!(table_of(TRIGGERS_STREAM), "XdrsyncAlertTriggers_CL");
        assert_eq!(declared(TRIGGERS_STREAM).is_some(), triggers_declared());
        assert!(declared("Custom-Nothing").is_none());
    }
}
