//! Tests of rule compilation (the PUT refusals) and of the template expansion.

use serde_json::{json, Value};

use super::*;

fn cols(names: &[(&str, &str)]) -> Vec<(String, String)> {
    names.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

/// A trigger table as the contract names its columns, plus two entity columns.
fn schema(table: &str) -> Option<Vec<(String, String)>> {
    (table == TRIGGERS_TABLE || table == ALERTS_TABLE).then(|| {
        cols(&[
            ("TimeGenerated", "datetime"),
            ("TriggerId", "string"),
            ("RuleShard", "int"),
            ("DefenderTenantId", "string"),
            ("DefenderIncidentId", "string"),
            ("DefenderAlertId", "string"),
            ("SystemAlertId", "string"),
            ("AlertName", "string"),
            ("EntityHostName", "string"),
            ("EntityIp", "string"),
        ])
    })
}

fn props(query: &str) -> Value {
    json!({
        "displayName": "r", "enabled": true, "severity": "Medium", "query": query,
        "eventGroupingSettings": {"aggregationKind": "AlertPerResult"},
        "customDetails": {"DefenderAlertId": "DefenderAlertId", "TriggerId": "TriggerId"},
        "entityMappings": [{"entityType": "Host", "fieldMappings": [{"identifier": "HostName", "columnName": "EntityHostName"}]}],
    })
}

fn compile_json(p: &Value) -> Result<NrtRule, Refusal> {
    compile("r1", p.as_object().unwrap(), &schema)
}

const GOOD: &str =
    "XdrsyncAlertTriggers_CL | where RuleShard == 3 | project TriggerId, DefenderAlertId, EntityHostName";

#[test]
fn a_rule_within_the_limits_compiles_with_its_details_and_mappings() {
    let r = compile_json(&props(GOOD)).unwrap();
    assert!(r.enabled && r.alert_per_result);
    assert_eq!(r.query.table, TRIGGERS_TABLE);
    assert_eq!(r.custom_details.len(), 2);
    assert_eq!(r.mappings[0].fields, vec![("HostName".to_string(), "EntityHostName".to_string())]);
}

fn invalid(p: &Value) -> String {
    match compile_json(p) {
        Err(Refusal::Invalid(e)) => e,
        other => panic!("not refused as invalid: {other:?}"),
    }
}

#[test]
fn a_custom_detail_or_mapping_on_a_column_the_query_does_not_return_is_refused() {
    let mut p = props("XdrsyncAlertTriggers_CL | project TriggerId, EntityHostName");
    let e = invalid(&p);
    assert!(e.contains("'DefenderAlertId'") && e.contains("does not return"), "{e}");
    p["query"] = json!("XdrsyncAlertTriggers_CL | project-away EntityHostName");
    let e = invalid(&p);
    assert!(e.contains("Host.HostName") && e.contains("'EntityHostName'"), "{e}");
}

#[test]
fn more_than_20_custom_details_10_mappings_or_3_identifiers_are_refused() {
    let mut p = props("XdrsyncAlertTriggers_CL");
    p["customDetails"] = Value::Object((0..21).map(|i| (format!("K{i}"), json!("TriggerId"))).collect());
    assert!(invalid(&p).contains("at most 20 custom details"));
    p["customDetails"] = Value::Object((0..20).map(|i| (format!("K{i}"), json!("TriggerId"))).collect());
    assert!(compile_json(&p).is_ok(), "20 are allowed");

    let host =
        json!({"entityType": "Host", "fieldMappings": [{"identifier": "HostName", "columnName": "EntityHostName"}]});
    p["entityMappings"] = json!(vec![host.clone(); 11]);
    assert!(invalid(&p).contains("at most 10 entity mappings"));
    p["entityMappings"] = json!(vec![host; 10]);
    assert!(compile_json(&p).is_ok(), "10 are allowed");

    let id = |i: &str| json!({"identifier": i, "columnName": "EntityHostName"});
    p["entityMappings"] = json!([{"entityType": "Host", "fieldMappings": [id("HostName"), id("DnsDomain"), id("AzureID"), id("OMSAgentID")]}]);
    assert!(invalid(&p).contains("1 to 3"));
}

#[test]
fn a_missing_table_and_kql_outside_the_subset_are_refused() {
    let p = props("XdrsyncAlertTriggersX_CL | project TriggerId");
    assert_eq!(compile_json(&p).unwrap_err(), Refusal::TableMissing("XdrsyncAlertTriggersX_CL".into()));
    let e = invalid(&props("XdrsyncAlertTriggers_CL | extend X = 1"));
    assert!(e.contains("`extend`"), "{e}");
    let e = invalid(&props("XdrsyncAlertTriggers_CL | where RuleShard == '3'"));
    assert!(e.contains("Semantic error"), "{e}");
}

/// The template's shape (contract): placeholders and 40 fixed names.
fn sharded_template() -> Value {
    let mut t: Value = serde_json::from_str(TEMPLATE).unwrap();
    t["properties"]["query"] =
        json!("{table} | where RuleShard == {shard} | project TriggerId, DefenderAlertId, EntityHostName");
    t["properties"]["displayName"] = json!("xdrsync: Defender XDR alerts ({shard})");
    t["properties"]["customDetails"] = json!({"DefenderAlertId": "DefenderAlertId", "TriggerId": "TriggerId"});
    t["properties"]["entityMappings"] = props(GOOD)["entityMappings"].clone();
    t["shardNames"] = json!((0..40).map(|i| format!("00000000-0000-4000-8000-{i:012}")).collect::<Vec<_>>());
    t
}

#[test]
fn the_template_expands_to_one_rule_per_shard_named_and_filtered_by_its_shard() {
    let t = sharded_template();
    let rules = expand(&t, 3).unwrap();
    assert_eq!(rules.len(), 3);
    assert_eq!(rules[2].0, "00000000-0000-4000-8000-000000000002");
    assert_eq!(
        rules[2].1["properties"]["query"],
        "XdrsyncAlertTriggers_CL | where RuleShard == 2 | project TriggerId, DefenderAlertId, EntityHostName"
    );
    assert_eq!(rules[2].1["properties"]["displayName"], "xdrsync: Defender XDR alerts (2)");
    assert_eq!(rules[2].1["kind"], "NRT");
    assert!(rules[2].1.get("shardNames").is_none() && rules[2].1["properties"].get("shardNames").is_none());
    let compiled = compile("x", rules[2].1["properties"].as_object().unwrap(), &schema).unwrap();
    assert_eq!(compiled.query.table, TRIGGERS_TABLE);
    assert!(expand(&t, 0).unwrap().is_empty());
    assert!(expand(&t, 41).is_err(), "at most the 40 names");
    assert_eq!(expand(&t, 40).unwrap().len(), 40);
}

#[test]
fn the_committed_template_seeds_rules_that_compile() {
    let t: Value = serde_json::from_str(TEMPLATE).unwrap();
    // The committed declarations: the template's columns must be the stream's.
    let (config, workspace) = (crate::sim::SimConfig::demo(), crate::sim::arm_rules::WorkspaceRules::default());
    let real = |table: &str| workspace.table_schema(&config, table);
    let seeded = seed(10, &real).unwrap();
    // Until the template names its shards it is the single rule over every alert version.
    let want = if t.get("shardNames").is_some() { 10 } else { 1 };
    assert_eq!(seeded.len(), want);
    assert!(seeded.iter().all(|r| r.enabled && r.custom_details.len() <= MAX_CUSTOM_DETAILS));
    assert!(seed(0, &real).unwrap().is_empty());
}

#[test]
fn a_simulator_starts_with_the_seeded_rules_unless_told_none() {
    let t: Value = serde_json::from_str(TEMPLATE).unwrap();
    let want = if t.get("shardNames").is_some() { 10 } else { 1 };
    let sim = crate::sim::Sim::new(crate::sim::SimConfig::demo());
    assert_eq!(sim.world().rule.rules.len(), want);
    assert!(sim.rules.lock().unwrap().alert_rules.values().all(|r| r.kind != "NRT"), "ARM lists only rules PUT to it");
    let mut config = crate::sim::SimConfig::demo();
    config.options.alert_rules = 0;
    assert!(crate::sim::Sim::new(config).world().rule.rules.is_empty());
}
