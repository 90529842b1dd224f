//! The simulated tenant's advanced-hunting tables and the simulated DCR's hunting streams, from
//! two sources that must not be confused. Defender's tables come from
//! `defender_hunting_tables.json`, a transcription of Microsoft's advanced-hunting schema
//! reference pages (one per table, named in the file), never from the product's schema module,
//! so a column the product names or types wrongly shows up against it. The DCR's stream
//! declarations come from the repository's `infra/hunting-tables.json`: the DCR is
//! infrastructure, deployed from that file, so the simulated one declares what it declares.

use std::sync::OnceLock;

use serde_json::Value;

const DEFENDER_TABLES: &str = include_str!("defender_hunting_tables.json");
const DCR_STREAMS: &str = include_str!("../../../../infra/hunting-tables.json");

/// One advanced-hunting table: its name and Defender's columns (name, DCR type name; the
/// reference pages' `bool` is `boolean` here, as Log Analytics and the simulator's callers
/// name it).
#[derive(Debug, Clone)]
pub struct SimTable {
    pub name: String,
    pub columns: Vec<(String, String)>,
}

/// Where a table's columns were transcribed from: the reference page's title and the source
/// file at a commit of Microsoft's documentation repository.
#[derive(Debug, Clone)]
pub struct TableSource {
    pub page: String,
    pub source: String,
}

fn parse(text: &str, what: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{what} is not JSON: {e}"))
}

fn defender() -> &'static Value {
    static V: OnceLock<Value> = OnceLock::new();
    V.get_or_init(|| parse(DEFENDER_TABLES, "defender_hunting_tables.json"))
}

fn dcr() -> &'static Value {
    static V: OnceLock<Value> = OnceLock::new();
    V.get_or_init(|| parse(DCR_STREAMS, "infra/hunting-tables.json"))
}

fn columns_of(v: &Value) -> Vec<(String, String)> {
    v.as_array()
        .into_iter()
        .flatten()
        .map(|c| (c["name"].as_str().unwrap_or("").to_string(), c["type"].as_str().unwrap_or("").to_string()))
        .collect()
}

fn dcr_type_name(documented: String) -> String {
    if documented == "bool" {
        "boolean".into()
    } else {
        documented
    }
}

/// Every table Defender's advanced hunting has here, as its reference page lists it.
pub fn tables() -> &'static [SimTable] {
    static T: OnceLock<Vec<SimTable>> = OnceLock::new();
    T.get_or_init(|| {
        defender()["tables"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(name, t)| SimTable {
                name: name.clone(),
                columns: columns_of(&t["columns"]).into_iter().map(|(c, ty)| (c, dcr_type_name(ty))).collect(),
            })
            .collect()
    })
}

/// A table by its exact name.
pub fn table(name: &str) -> Option<&'static SimTable> {
    tables().iter().find(|t| t.name == name)
}

/// The documented columns of a table with the type names exactly as its reference page writes
/// them (`bool` and `boolean` both occur).
pub fn documented_columns(name: &str) -> Option<Vec<(String, String)>> {
    defender()["tables"].get(name).map(|t| columns_of(&t["columns"]))
}

/// The reference page a table was transcribed from.
pub fn table_source(name: &str) -> Option<TableSource> {
    let t = defender()["tables"].get(name)?;
    Some(TableSource { page: t["page"].as_str()?.to_string(), source: t["source"].as_str()?.to_string() })
}

/// The declared streams of the hunting DCR and their columns.
pub fn stream_columns(stream: &str) -> Option<Vec<String>> {
    dcr()["streams"].get(stream).map(|s| columns_of(&s["columns"]).into_iter().map(|(c, _)| c).collect())
}

/// The declared streams of the hunting DCR and their `(column, type)` pairs.
pub fn stream_columns_typed(stream: &str) -> Option<Vec<(String, String)>> {
    dcr()["streams"].get(stream).map(|s| columns_of(&s["columns"]))
}

/// Every declared hunting stream.
pub fn streams() -> Vec<String> {
    dcr()["streams"].as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}
