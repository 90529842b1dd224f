//! The simulated tenant's advanced-hunting tables and the simulated DCR's hunting streams, read
//! from the repository's `infra/hunting-tables.json` (the DCR's own stream declarations), never
//! from the product's code. Defender's columns of a table are the stream's columns before
//! `TimeGenerated` (the ones after it are added by the export); `Title_` is Defender's `Title`.

use std::sync::OnceLock;

use serde_json::Value;

const DCR_STREAMS: &str = include_str!("../../../../infra/hunting-tables.json");

/// One advanced-hunting table: its name and Defender's columns (name, DCR type name).
#[derive(Debug, Clone)]
pub struct SimTable {
    pub name: String,
    pub columns: Vec<(String, String)>,
}

fn json() -> &'static Value {
    static V: OnceLock<Value> = OnceLock::new();
    V.get_or_init(|| serde_json::from_str(DCR_STREAMS).expect("infra/hunting-tables.json is JSON"))
}

fn columns_of(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|c| (c["name"].as_str().unwrap_or("").to_string(), c["type"].as_str().unwrap_or("").to_string()))
        .collect()
}

/// Every table Defender's advanced hunting has here.
pub fn tables() -> &'static [SimTable] {
    static T: OnceLock<Vec<SimTable>> = OnceLock::new();
    T.get_or_init(|| {
        json()["tables"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, cols)| SimTable {
                name: name.clone(),
                columns: columns_of(cols)
                    .into_iter()
                    .take_while(|(c, _)| c != "TimeGenerated")
                    .map(|(c, t)| (if c == "Title_" { "Title".to_string() } else { c }, t))
                    .collect(),
            })
            .collect()
    })
}

/// A table by its exact name.
pub fn table(name: &str) -> Option<&'static SimTable> {
    tables().iter().find(|t| t.name == name)
}

/// The declared streams of the hunting DCR and their columns.
pub fn stream_columns(stream: &str) -> Option<Vec<String>> {
    json()["streams"].get(stream).map(|s| columns_of(&s["columns"]).into_iter().map(|(c, _)| c).collect())
}

/// The declared streams of the hunting DCR and their `(column, type)` pairs.
pub fn stream_columns_typed(stream: &str) -> Option<Vec<(String, String)>> {
    json()["streams"].get(stream).map(|s| columns_of(&s["columns"]))
}

/// Every declared hunting stream.
pub fn streams() -> Vec<String> {
    json()["streams"].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}
