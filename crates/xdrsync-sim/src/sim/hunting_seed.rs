//! Seeded advanced-hunting rows: every column of a table with a
//! value of its type, timestamps in runs of equal values (ties are what cursors get wrong), and
//! optionally a column the schema does not know (Defender adding one). Also the Streaming API's
//! record wrapping of a row. Columns come from the simulator's own table list (`hunting_schema`).

use super::hunting_schema::{self, SimTable};
use serde_json::{json, Map, Value};
use time::{Duration, OffsetDateTime};

use super::timefmt;

/// What to seed.
#[derive(Debug, Clone)]
pub struct HuntingSeed {
    pub table: &'static SimTable,
    pub count: usize,
    /// First `Timestamp`.
    pub start: OffsetDateTime,
    /// Time between consecutive distinct timestamps.
    pub step: Duration,
    /// Rows sharing each timestamp.
    pub ties: usize,
    /// Add `XdrsyncSimNewColumn` (a column Defender added after this build).
    pub unknown_column: bool,
    /// Distinguishes rows of different seedings of one table.
    pub offset: usize,
}

impl HuntingSeed {
    pub fn new(table: &str, count: usize, start: OffsetDateTime) -> Self {
        Self {
            table: hunting_schema::table(table).expect("a known table"),
            count,
            start,
            step: Duration::milliseconds(250),
            ties: 3,
            unknown_column: true,
            offset: 0,
        }
    }

    /// The rows.
    pub fn rows(&self) -> Vec<Map<String, Value>> {
        (0..self.count).map(|i| self.row(i)).collect()
    }

    fn row(&self, i: usize) -> Map<String, Value> {
        let n = i + self.offset;
        let ts = self.start + self.step * ((i / self.ties.max(1)) as i32);
        let mut row = Map::new();
        for (col, ty) in &self.table.columns {
            let v = match (col.as_str(), ty.as_str()) {
                ("Timestamp", _) => json!(timefmt::format(ts)),
                ("DeviceName", _) => json!(format!("pc-{:03}.contoso.com", n % 200)),
                ("FileName", _) => json!(["powershell.exe", "cmd.exe", "excel.exe", "svchost.exe"][n % 4]),
                ("ActionType", _) => json!(["ProcessCreated", "OpenProcessApiCall"][n % 2]),
                ("EmailDirection", _) => json!(["Inbound", "Outbound", "Intra-org"][n % 3]),
                // Documented as `string` holding JSON text: Defender sends the text.
                ("AdditionalFields", "string") => json!(json!({"Source": "sim", "Index": n}).to_string()),
                (
                    "LoggedOnUsers" | "ConnectedNetworks" | "DnsAddresses" | "DefaultGateways" | "IPAddresses",
                    "string",
                ) => {
                    json!(json!([{"Source": "sim", "Index": n}]).to_string())
                }
                ("ReportId", "long") => json!(n as i64 % 10_000),
                ("ReportId", _) => json!(format!("{}", n % 10_000)),
                (_, "int") => json!((n % 65_000) as i64),
                (_, "long") => json!(n as i64 * 7919),
                (_, "real") => json!(n as f64 / 8.0),
                (_, "boolean") => json!(n % 2 == 0),
                (_, "datetime") => json!(timefmt::format(ts - Duration::seconds((n % 60) as i64))),
                (_, "dynamic") => json!({"Source": "sim", "Index": n}),
                _ => json!(format!("{col} value {n} with some typical length")),
            };
            row.insert(col.to_string(), v);
        }
        if self.unknown_column {
            row.insert("XdrsyncSimNewColumn".into(), json!(format!("new {n}")));
        }
        row
    }
}

/// A row as the Streaming API writes it (storage blob line or an element of an Event Hub
/// event's `records`).
pub fn stream_record(table: &str, tenant_id: &str, row: &Map<String, Value>) -> Value {
    json!({
        "time": row.get("Timestamp").cloned().unwrap_or(Value::Null),
        "tenantId": tenant_id,
        "operationName": "Publish",
        "category": format!("AdvancedHunting-{table}"),
        "properties": row,
    })
}
