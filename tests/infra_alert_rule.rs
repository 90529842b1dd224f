//! The analytics rule (`infra/alert-rule.json`, deployed by `infra/alert-rule.bicep` and created or
//! repaired by `xdrsync connect`) matches the code (ARCHITECTURE.md: “Native
//! alerts”): its entity mappings are exactly the flattened columns the rows carry, within
//! the documented limits; each mapped column is declared for the DCR stream
//! and the table; the custom details are the ones the attach query reads; no incidents are created.

use std::collections::BTreeSet;

use serde_json::Value;

use xdrsync::domain::entity_columns::MAPPINGS;

fn read(name: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("infra").join(name)).unwrap()
}

fn definition() -> serde_json::Value {
    serde_json::from_str(&read("alert-rule.json")).expect("infra/alert-rule.json is JSON")
}

/// `(entity type, [(column, identifier)])` in file order, read from the rule's definition.
fn rule_mappings(rule: &serde_json::Value) -> Vec<(String, Vec<(String, String)>)> {
    let s = |v: &serde_json::Value| v.as_str().expect("a string").to_string();
    rule["properties"]["entityMappings"]
        .as_array()
        .expect("entityMappings")
        .iter()
        .map(|m| {
            let fields = m["fieldMappings"].as_array().expect("fieldMappings");
            (s(&m["entityType"]), fields.iter().map(|f| (s(&f["columnName"]), s(&f["identifier"]))).collect())
        })
        .collect()
}

fn as_owned(m: &[(&str, &[(&str, &str)])]) -> Vec<(String, Vec<(String, String)>)> {
    m.iter()
        .map(|(t, ids)| (t.to_string(), ids.iter().map(|(c, i)| (c.to_string(), i.to_string())).collect()))
        .collect()
}

fn declared_columns(bicep: &str) -> BTreeSet<String> {
    bicep
        .lines()
        .filter_map(|l| l.trim().strip_prefix("{ name: '"))
        .filter_map(|rest| rest.split('\'').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_rules_entity_mappings_are_the_rows_flattened_columns_within_the_limits() {
    let mappings = rule_mappings(&definition());
    assert_eq!(mappings, as_owned(&MAPPINGS), "infra/alert-rule.json maps what entity_columns.rs writes");
    assert!(mappings.len() <= 10, "at most 10 entity mappings");
    assert!(mappings.iter().all(|(_, ids)| (1..=3).contains(&ids.len())), "1 to 3 identifiers per mapping");
    let dcr: BTreeSet<String> = serde_json::from_str::<Vec<Value>>(&read("alert-columns.json"))
        .expect("infra/alert-columns.json is JSON")
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect();
    let table = declared_columns(&read("workspace.bicep"));
    for (_, ids) in &mappings {
        for (column, _) in ids {
            assert!(
                dcr.contains(column) && table.contains(column),
                "{column} is declared for the stream and the table"
            );
        }
    }
}

#[test]
fn the_rule_attaches_the_custom_details_the_attacher_reads_and_creates_no_incident() {
    let rule = definition();
    let p = &rule["properties"];
    assert_eq!(rule["kind"], "NRT");
    for key in [
        xdrsync::domain::alert_links::DETAIL_TENANT,
        xdrsync::domain::alert_links::DETAIL_INCIDENT,
        xdrsync::domain::alert_links::DETAIL_ALERT,
    ] {
        assert!(p["customDetails"][key].is_string(), "the rule sets {key}, which the query reads");
    }
    assert_eq!(p["incidentConfiguration"]["createIncident"], false, "alerts only: xdrsync's mirror is the incident");
    for field in
        ["alertDisplayNameFormat", "alertDescriptionFormat", "alertSeverityColumnName", "alertTacticsColumnName"]
    {
        assert!(p["alertDetailsOverride"][field].is_string(), "alertDetailsOverride.{field}");
    }
    assert!(read("main.bicep").contains("module alertRule 'alert-rule.bicep'"), "main.bicep deploys the rule");
}

#[test]
fn the_bicep_and_connect_deploy_the_one_definition_in_alert_rule_json() {
    let rule = definition();
    let bicep = read("alert-rule.bicep");
    assert!(bicep.contains("loadJsonContent('alert-rule.json')"), "the Bicep reads the shared definition");
    assert!(bicep.contains("name: definition.name"), "by its fixed name, the one connect looks up");
    assert!(bicep.contains(&format!("kind: '{}'", rule["kind"].as_str().unwrap())), "the definition's kind");
    assert!(bicep.contains("properties: union(definition.properties, {"), "every property from the definition");
    assert!(
        bicep.contains("query: replace(definition.properties.query, '{table}', tableName)"),
        "the query over the table parameter"
    );
    let code: String = bicep.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    for key in ["entityMappings", "customDetails", "alertDetailsOverride", "columnName", "displayName"] {
        assert!(!code.contains(key), "{key} is declared once, in alert-rule.json, not again in the Bicep");
    }
    assert_eq!(xdrsync::ops::connect_rule::DEFINITION, read("alert-rule.json"), "connect embeds the same file");
    let wanted = xdrsync::ops::connect_rule::wanted("XdrsyncAlerts_CL");
    assert_eq!(wanted.name, rule["name"].as_str().unwrap());
    assert_eq!(wanted.properties["query"], "XdrsyncAlerts_CL");
    assert_eq!(rule["properties"]["query"], "{table}");
}
