//! The analytics rules (`infra/alert-rule.json`, deployed by `infra/alert-rule.bicep` and created
//! or repaired by `xdrsync connect`) and the trigger table match the code (docs/native-alerts.md):
//! every column the trigger rows carry is declared for the DCR stream and the table (Logs
//! Ingestion drops undeclared columns silently); the rules map exactly the trigger rows' entity
//! columns, project only what they use, and carry the custom details the attach query reads,
//! within the documented limits (10 mappings of 3 identifiers, 20 custom details, 50 NRT rules
//! per workspace of which xdrsync takes at most 40, 10 streams per DCR).

use std::collections::BTreeSet;

use serde_json::Value;
use xdrsync::domain::alert_claims::DETAILS;
use xdrsync::domain::alert_triggers::sent_columns;
use xdrsync::domain::entity_columns::TRIGGER_MAPPINGS;

fn read(name: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("infra").join(name)).unwrap()
}

fn definition() -> Value {
    serde_json::from_str(&read("alert-rule.json")).expect("infra/alert-rule.json is JSON")
}

fn trigger_columns() -> Vec<(String, String)> {
    let v: Value = serde_json::from_str(&read("alert-trigger-columns.json")).expect("JSON");
    v.as_array()
        .expect("an array of columns")
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["type"].as_str().unwrap().to_string()))
        .collect()
}

/// `(entity type, [(column, identifier)])` in file order, read from the rule's definition.
fn rule_mappings(rule: &Value) -> Vec<(String, Vec<(String, String)>)> {
    let s = |v: &Value| v.as_str().expect("a string").to_string();
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

/// The columns the template's query projects.
fn projected(rule: &Value) -> BTreeSet<String> {
    let q = rule["properties"]["query"].as_str().unwrap();
    let (_, list) = q.split_once("| project ").expect("the query projects its columns");
    list.split(',').map(|c| c.trim().to_string()).collect()
}

#[test]
fn the_trigger_stream_declares_exactly_the_columns_the_code_sends() {
    let declared: BTreeSet<String> = trigger_columns().into_iter().map(|(n, _)| n).collect();
    let sent: BTreeSet<String> = sent_columns().into_iter().map(str::to_string).collect();
    assert_eq!(declared, sent, "infra/alert-trigger-columns.json == what alert_triggers.rs sends");
    let types: std::collections::BTreeMap<String, String> = trigger_columns().into_iter().collect();
    assert_eq!(types["TimeGenerated"], "datetime");
    assert_eq!(types["RuleShard"], "int", "the rules compare it to a number");
    let main = read("main.bicep");
    assert!(main.contains("var triggerColumns = loadJsonContent('alert-trigger-columns.json')"), "one file");
    assert!(main.contains("var triggerStreamName = 'Custom-XdrsyncAlertTriggers'"));
    let ingestion = read("ingestion.bicep");
    assert!(ingestion.contains("'${triggerStreamName}': { columns: triggerColumns }"), "declared in the DCR");
    assert!(ingestion.contains("outputStream: 'Custom-${triggerTableName}'"), "and routed to its table");
    let table = read("trigger-table.bicep");
    assert!(table.contains("columns: columns") && main.contains("columns: triggerColumns"), "same columns");
}

#[test]
fn a_dcr_declares_at_most_10_streams() {
    let ingestion = read("ingestion.bicep");
    let start = ingestion.find("streamDeclarations: {").expect("declarations");
    let end = start + ingestion[start..].find("\n    }").expect("end of declarations");
    let streams = ingestion[start..end].lines().filter(|l| l.contains("{ columns:")).count();
    assert!((2..=10).contains(&streams), "{streams} streams (documented: at most 10 per DCR)");
}

#[test]
fn the_rules_map_the_trigger_rows_entity_columns_within_the_limits_and_project_only_what_they_use() {
    let rule = definition();
    let mappings = rule_mappings(&rule);
    let code: Vec<(String, Vec<(String, String)>)> = TRIGGER_MAPPINGS
        .iter()
        .map(|(t, ids)| (t.to_string(), ids.iter().map(|(c, i)| (c.to_string(), i.to_string())).collect()))
        .collect();
    assert_eq!(mappings, code, "infra/alert-rule.json maps what entity_columns.rs writes");
    assert!(mappings.len() <= 10, "at most 10 entity mappings");
    assert!(mappings.iter().all(|(_, ids)| (1..=3).contains(&ids.len())), "1 to 3 identifiers per mapping");
    let process = mappings.iter().find(|(t, _)| t == "Process").expect("Process mapped");
    let ids: Vec<&str> = process.1.iter().map(|(_, i)| i.as_str()).collect();
    assert!(ids.contains(&"ProcessId") && ids.contains(&"CreationTimeUtc"), "strong with the alert's Host");
    assert!(mappings.iter().any(|(t, _)| t == "Host"));
    assert!(!mappings.iter().flat_map(|(_, ids)| ids).any(|(_, i)| i == "AppId"), "AppId is deprecated");
    let projected = projected(&rule);
    let declared: BTreeSet<String> = trigger_columns().into_iter().map(|(n, _)| n).collect();
    for (_, ids) in &mappings {
        for (column, _) in ids {
            assert!(projected.contains(column) && declared.contains(column), "{column} projected and declared");
        }
    }
    assert!(projected.is_subset(&declared), "the query names only the table's columns");
    for unused in ["Entities", "ExtendedProperties", "TimeGenerated", "RuleShard"] {
        assert!(!projected.contains(unused), "{unused} is not projected (64 KB alert limit)");
    }
}

#[test]
fn the_rules_carry_the_custom_details_the_attacher_reads_and_create_no_incident() {
    let rule = definition();
    let p = &rule["properties"];
    assert_eq!(rule["kind"], "NRT");
    let details = p["customDetails"].as_object().unwrap();
    assert!(details.len() <= 20, "at most 20 custom details");
    let projected = projected(&rule);
    for (key, column) in details {
        assert!(projected.contains(column.as_str().unwrap()), "custom detail {key} from a projected column");
    }
    for key in DETAILS {
        assert_eq!(details[key], key, "the rules set {key}, which the claim reads");
    }
    assert_eq!(p["eventGroupingSettings"]["aggregationKind"], "AlertPerResult", "one alert per row");
    assert_eq!(p["incidentConfiguration"]["createIncident"], false, "alerts only: xdrsync's mirror is the incident");
    for (field, column) in [("alertDisplayNameFormat", "{{AlertName}}"), ("alertDescriptionFormat", "{{Description}}")]
    {
        assert_eq!(p["alertDetailsOverride"][field], column);
    }
    for field in ["alertSeverityColumnName", "alertTacticsColumnName"] {
        assert!(projected.contains(p["alertDetailsOverride"][field].as_str().unwrap()), "{field} projected");
    }
}

#[test]
fn the_bicep_and_connect_deploy_at_most_40_rules_from_the_one_template_after_their_table() {
    let rule = definition();
    let names: Vec<&str> = rule["shardNames"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    assert_eq!(names.len(), 40, "at most 40 of the workspace's 50 NRT rules");
    assert!(names.iter().all(|n| uuid::Uuid::parse_str(n).is_ok()));
    assert_eq!(names.iter().collect::<BTreeSet<_>>().len(), 40);
    assert_eq!(names[0], "dd1cfada-d0bb-46aa-9d5c-7a23f86e5a53", "the earlier single rule becomes shard 0");
    let bicep = read("alert-rule.bicep");
    assert!(bicep.contains("loadJsonContent('alert-rule.json')"), "the Bicep reads the shared template");
    assert!(bicep.contains("[for shard in range(0, ruleCount): {"), "one rule per shard");
    assert!(bicep.contains("name: definition.shardNames[shard]"), "by its fixed name, the one connect looks up");
    assert!(bicep.contains("@maxValue(40)\nparam ruleCount int = 10"), "never more than 40");
    assert!(bicep.contains(&format!("kind: '{}'", rule["kind"].as_str().unwrap())));
    assert!(bicep.contains(
        "query: replace(replace(definition.properties.query, '{table}', tableName), '{shard}', string(shard))"
    ));
    let code: String = bicep.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    for key in ["entityMappings", "customDetails", "alertDetailsOverride", "columnName"] {
        assert!(!code.contains(key), "{key} is declared once, in alert-rule.json, not again in the Bicep");
    }
    let main = read("main.bicep");
    assert!(
        main.contains("tableName: triggerTableName\n    ruleCount: alertRules"),
        "the rules read the trigger table"
    );
    assert!(main.contains("dependsOn: [table, triggerTable]"), "created after their table");
    assert!(main.contains("XDRSYNC_ALERT_RULES: string(alertRules)"), "the app shards over as many rules");
    assert_eq!(xdrsync::ops::connect_rule::DEFINITION, read("alert-rule.json"), "connect embeds the same file");
    assert_eq!(xdrsync::ops::connect_rule::shard_names(), names);
    let q = rule["properties"]["query"].as_str().unwrap();
    assert!(q.starts_with("{table} | where RuleShard == {shard} | project "), "{q}");
}
