//! An NRT analytics rule as the simulator stores and runs it: compiled from the ARM body of
//! `PUT …/alertRules/{name}` (kind `NRT`) and refused the way Sentinel refuses it, and the seeding
//! helper that expands the committed template `infra/alert-rule.json` for tests and the demo that
//! do not run `xdrsync connect`.
//!
//! Documented (Learn) and enforced at PUT:
//! - *map-data-fields-to-entities*: "You can define up to three identifiers for a given entity";
//!   each identifier's value is a column of the query's results. At most 10 entity mappings per
//!   rule (the and the portal's limit; the page found does not state the 10: assumed).
//! - *surface-custom-details* (and the feature's announcement): at most 20 custom details, each
//!   from a column the query returns.
//! - A query over a table that does not exist yet is refused ("Failed to run the analytics rule
//!   query. One of the tables does not exist.", as reported in the field).
//! - A query the simulator cannot evaluate (outside [`super::rule_kql`]) is refused too: Sentinel
//!   would accept it, but the simulator would then only guess its results.
//!
//! The rule's display name, description, severity and tactics are the defaults of its alerts;
//! `alertDetailsOverride` takes them from result columns (*customize-alert-details*: an empty or
//! invalid value reverts to the default).

use serde_json::{Map, Value};

use super::rule_kql::{self, Query};

/// Documented caps.
pub const MAX_CUSTOM_DETAILS: usize = 20;
pub const MAX_ENTITY_MAPPINGS: usize = 10;
pub const MAX_IDENTIFIERS: usize = 3;

/// The committed rule template.
pub const TEMPLATE: &str = include_str!("../../../../infra/alert-rule.json");
/// The table the template's shard rules read (`{table}`), per the product's contract.
pub const TRIGGERS_TABLE: &str = "XdrsyncAlertTriggers_CL";
/// The table of a template without `shardNames` (the single rule over every alert version).
pub const ALERTS_TABLE: &str = "XdrsyncAlerts_CL";

/// A table's `(column, type)` pairs when the workspace has the table, `None` when it does not.
pub type Schema<'a> = dyn Fn(&str) -> Option<Vec<(String, String)>> + 'a;

/// One entity mapping: entity type and `(identifier, column)` pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapping {
    pub entity_type: String,
    pub fields: Vec<(String, String)>,
}

/// A stored, runnable NRT rule.
#[derive(Debug, Clone)]
pub struct NrtRule {
    pub name: String,
    pub enabled: bool,
    pub display_name: String,
    pub description: String,
    pub severity: String,
    pub tactics: Vec<String>,
    pub query: Query,
    /// `AlertPerResult` (one alert per result, capped) or one alert per run.
    pub alert_per_result: bool,
    /// Custom detail key → column.
    pub custom_details: Vec<(String, String)>,
    pub mappings: Vec<Mapping>,
    /// `alertDetailsOverride` as given.
    pub overrides: Map<String, Value>,
}

/// Why a PUT is refused.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    TableMissing(String),
    Invalid(String),
}

fn text(p: &Map<String, Value>, k: &str) -> String {
    p.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

/// Compiles rule `name` from its ARM `properties`; `schema(table)` gives the `(column, type)`
/// pairs of a table that exists, `None` for one that does not.
pub fn compile(name: &str, p: &Map<String, Value>, schema: &Schema<'_>) -> Result<NrtRule, Refusal> {
    let query = rule_kql::parse(&text(p, "query")).map_err(Refusal::Invalid)?;
    let table = schema(&query.table).ok_or_else(|| Refusal::TableMissing(query.table.clone()))?;
    let returned = query.output_columns(&table).map_err(|e| Refusal::Invalid(format!("Semantic error: {e}")))?;
    let not_returned = |what: String, column: &str| {
        (!returned.iter().any(|c| c == column))
            .then(|| Refusal::Invalid(format!("{what} uses column '{column}', which the query does not return")))
    };

    let details = p.get("customDetails").and_then(Value::as_object).cloned().unwrap_or_default();
    if details.len() > MAX_CUSTOM_DETAILS {
        return Err(Refusal::Invalid(format!(
            "A rule has at most {MAX_CUSTOM_DETAILS} custom details ({} given)",
            details.len()
        )));
    }
    let mut custom_details = Vec::new();
    for (key, column) in &details {
        let column =
            column.as_str().ok_or_else(|| Refusal::Invalid(format!("Custom detail '{key}' is not a column name")))?;
        if let Some(r) = not_returned(format!("Custom detail '{key}'"), column) {
            return Err(r);
        }
        custom_details.push((key.clone(), column.to_string()));
    }

    let raw = p.get("entityMappings").and_then(Value::as_array).cloned().unwrap_or_default();
    if raw.len() > MAX_ENTITY_MAPPINGS {
        return Err(Refusal::Invalid(format!(
            "A rule has at most {MAX_ENTITY_MAPPINGS} entity mappings ({} given)",
            raw.len()
        )));
    }
    let mut mappings = Vec::new();
    for m in &raw {
        let entity_type = m.get("entityType").and_then(Value::as_str).unwrap_or("").to_string();
        let fields = m.get("fieldMappings").and_then(Value::as_array).cloned().unwrap_or_default();
        if fields.is_empty() || fields.len() > MAX_IDENTIFIERS {
            return Err(Refusal::Invalid(format!(
                "Entity mapping '{entity_type}' has {} identifiers; 1 to {MAX_IDENTIFIERS} are allowed",
                fields.len()
            )));
        }
        let mut pairs = Vec::new();
        for f in &fields {
            let id = f.get("identifier").and_then(Value::as_str).unwrap_or("").to_string();
            let col = f.get("columnName").and_then(Value::as_str).unwrap_or("");
            if let Some(r) = not_returned(format!("Entity mapping '{entity_type}.{id}'"), col) {
                return Err(r);
            }
            pairs.push((id, col.to_string()));
        }
        mappings.push(Mapping { entity_type, fields: pairs });
    }
    let grouping = p.get("eventGroupingSettings").and_then(|g| g.get("aggregationKind")).and_then(Value::as_str);
    Ok(NrtRule {
        name: name.to_string(),
        enabled: p.get("enabled").and_then(Value::as_bool).unwrap_or(false),
        display_name: text(p, "displayName"),
        description: text(p, "description"),
        severity: text(p, "severity"),
        tactics: p
            .get("tactics")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).map(str::to_string).collect())
            .unwrap_or_default(),
        query,
        alert_per_result: grouping == Some("AlertPerResult"),
        custom_details,
        mappings,
        overrides: p.get("alertDetailsOverride").and_then(Value::as_object).cloned().unwrap_or_default(),
    })
}

/// The rules `template` (the shape of `infra/alert-rule.json`) expands to for `shards` shards:
/// `(name, ARM body {kind, properties})`. Rule i is named `shardNames[i]`, with `{table}` →
/// [`TRIGGERS_TABLE`] and `{shard}` → i in `properties.query` and `properties.displayName`.
/// A template without `shardNames` (the single rule over every alert version) expands to that one
/// rule, `{table}` → [`ALERTS_TABLE`], whatever `shards` > 0 asks.
pub fn expand(template: &Value, shards: usize) -> Result<Vec<(String, Value)>, String> {
    let body = |table: &str, shard: usize| {
        let mut p = template.get("properties").cloned().ok_or("the template has no properties")?;
        for k in ["query", "displayName"] {
            if let Some(s) = p.get(k).and_then(Value::as_str) {
                p[k] = Value::String(s.replace("{table}", table).replace("{shard}", &shard.to_string()));
            }
        }
        Ok::<Value, String>(
            serde_json::json!({"kind": template.get("kind").cloned().unwrap_or(Value::Null), "properties": p}),
        )
    };
    if shards == 0 {
        return Ok(vec![]);
    }
    match template.get("shardNames").and_then(Value::as_array) {
        Some(names) => {
            if shards > names.len() {
                return Err(format!("{shards} rules asked, the template names {}", names.len()));
            }
            names[..shards]
                .iter()
                .enumerate()
                .map(|(i, n)| {
                    Ok((n.as_str().ok_or("a shard name is not a string")?.to_string(), body(TRIGGERS_TABLE, i)?))
                })
                .collect()
        }
        None => {
            let name = template.get("name").and_then(Value::as_str).ok_or("the template has no name")?;
            Ok(vec![(name.to_string(), body(ALERTS_TABLE, 0)?)])
        }
    }
}

/// The committed template's rules for `shards` shards, compiled against `schema` (the seeding
/// helper: `SimOptions::alert_rules`).
pub fn seed(shards: usize, schema: &Schema<'_>) -> Result<Vec<NrtRule>, String> {
    let template: Value = serde_json::from_str(TEMPLATE).map_err(|e| format!("infra/alert-rule.json: {e}"))?;
    expand(&template, shards)?
        .into_iter()
        .map(|(name, body)| {
            let p = body["properties"].as_object().cloned().unwrap_or_default();
            compile(&name, &p, schema).map_err(|r| format!("rule {name}: {r:?}"))
        })
        .collect()
}

#[cfg(test)]
#[path = "nrt_rule_tests.rs"]
mod tests;
