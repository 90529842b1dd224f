use serde_json::{json, Value};

use super::*;

fn row(sys: &str, details: Value) -> Vec<Value> {
    vec![json!(sys), json!("2026-01-01T00:00:00Z"), json!("2026-01-01T00:01:00Z"), Value::String(details.to_string())]
}

fn single(trigger: &str, alert: &str) -> Value {
    json!({"DefenderTenantId": ["T"], "DefenderIncidentId": ["29"], "DefenderAlertId": [alert], "TriggerId": [trigger], "TriggerPart": ["1/1"]})
}

fn table(rows: Vec<Vec<Value>>) -> QueryTable {
    QueryTable { columns: COLUMNS.iter().map(|c| c.to_string()).collect(), rows }
}

#[test]
fn a_single_alert_is_read_with_its_trigger_key() {
    let c = read_claims(&table(vec![row("s1", single("g1", "da1"))]));
    assert_eq!(c.relatable.len(), 1);
    let claim = &c.relatable[0];
    assert_eq!(
        claim.key,
        TriggerKey { tenant_id: "t".into(), incident_id: "29".into(), alert_id: "da1".into(), part: 1 }
    );
    assert_eq!(claim.trigger_id, "g1");
    assert!(c.summarised.is_empty());
    assert_eq!(c.newest, time_fmt::parse("2026-01-01T00:01:00Z").ok());
}

#[test]
fn a_summary_with_every_value_is_never_related_and_its_rows_without_alerts_are_resent() {
    let summary = json!({"DefenderTenantId": ["T", "T"], "DefenderIncidentId": ["29", "30"], "DefenderAlertId": ["da1", "da2"],
                         "TriggerId": ["g1", "g2"], "TriggerPart": ["1/1", "1/1"]});
    let c = read_claims(&table(vec![row("s1", single("g1", "da1")), row("sum", summary)]));
    assert_eq!(c.summaries.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), ["sum"]);
    assert_eq!(c.relatable.iter().map(|c| c.system_alert_id.as_str()).collect::<Vec<_>>(), ["s1"], "not the summary");
    assert_eq!(c.summarised, BTreeSet::from(["g2".to_string()]), "g1 has its own alert; g2 has none");
}

#[test]
fn a_summary_with_the_first_rows_values_relates_neither_claimant() {
    let c = read_claims(&table(vec![row("s1", single("g1", "da1")), row("sum", single("g1", "da1"))]));
    assert!(c.relatable.is_empty(), "which one is the summary cannot be told");
    assert_eq!(c.ambiguous, 2);
    assert_eq!(c.summarised, BTreeSet::from(["g1".to_string()]), "resent under a new TriggerId");
    assert_eq!(c.summaries.len(), 1, "counted as one summary");
}

#[test]
fn the_same_alert_twice_in_the_overlap_is_one_claim() {
    let c = read_claims(&table(vec![row("s1", single("g1", "da1")), row("s1", single("g1", "da1"))]));
    assert_eq!(c.relatable.len(), 1);
}

#[test]
fn details_as_plain_values_or_objects_are_read_and_foreign_alerts_are_not() {
    let plain = json!({"DefenderTenantId": "T", "DefenderIncidentId": 29, "DefenderAlertId": "da1", "TriggerId": "g1", "TriggerPart": "2/3"});
    match read_details("s1", None, &plain) {
        Read::Single(c) => assert_eq!((c.key.incident_id.as_str(), c.key.part), ("29", 2)),
        other => panic!("{other:?}"),
    }
    assert_eq!(read_details("s2", None, &json!({"Other": ["x"]})), Read::Unreadable);
    assert_eq!(read_details("s3", None, &json!("not json")), Read::Unreadable);
    let c = read_claims(&table(vec![vec![json!("s4"), json!("t"), json!("2026-01-01T00:00:00Z"), json!("{}")]]));
    assert_eq!(c.unreadable, 1);
}

#[test]
fn the_query_reads_the_rules_alerts_since_the_watermark() {
    let q = claims_query(time_fmt::parse("2026-01-01T00:00:00Z").unwrap());
    assert!(q.starts_with("SecurityAlert\n| where ingestion_time() > datetime(2026-01-01T00:00:00"));
    assert!(q.contains("\"Custom Details\"") && q.ends_with("XdrsyncDetails"));
}
