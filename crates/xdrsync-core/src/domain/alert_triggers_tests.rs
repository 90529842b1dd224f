use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::*;
use crate::domain::entity_columns::trigger_entity_columns;

fn alert_row(id: &str, description: &str, entities: &[Value]) -> Map<String, Value> {
    let v = json!({
        "SystemAlertId": id, "DefenderTenantId": "T-1", "DefenderIncidentId": "29", "AlertName": "Suspicious thing",
        "Description": description, "AlertSeverity": "High", "Tactics": "Execution",
        "AlertLink": "https://security.microsoft.com/alerts/x", "ProductComponentName": "antivirus",
        "Entities": serde_json::to_string(entities).unwrap(), "ExtendedProperties": "{\"big\": \"ignored\"}",
    });
    v.as_object().unwrap().clone()
}

/// A SecurityAlert's size as the rule would make it from a trigger row: the row's values, the
/// entities built from the mapped columns (each identifier with its key and entity type), the
/// custom details in ExtendedProperties, and SecurityAlert's own columns (generous 4 KB).
fn security_alert_bytes(row: &Map<String, Value>) -> usize {
    let row_bytes = serde_json::to_string(row).unwrap().len();
    let entity_bytes: usize =
        trigger_entity_columns().filter_map(|c| row.get(c)).map(|v| v.to_string().len() + 64).sum();
    row_bytes + 2 * entity_bytes + 4_096
}

#[test]
fn a_trigger_row_carries_only_what_the_rule_uses() {
    let entities = vec![json!({"Type": "host", "HostName": "wks-1"})];
    let (rows, left_out) = incident_triggers(&[&alert_row("da1", "d", &entities)], 10);
    assert_eq!(left_out, 0);
    let r = &rows[0];
    assert_eq!(
        r.key,
        TriggerKey { tenant_id: "t-1".into(), incident_id: "29".into(), alert_id: "da1".into(), part: 1 }
    );
    assert_eq!(r.shard, shard_of("da1", 10));
    assert_eq!(r.columns["TriggerPart"], "1/1");
    assert_eq!(r.columns["DefenderAlertId"], "da1");
    assert_eq!(r.columns["EntityHostName"], "wks-1");
    for gone in ["Entities", "ExtendedProperties", "SystemAlertId"] {
        assert!(!r.columns.contains_key(gone), "{gone} is not projected into the trigger table");
    }
}

#[test]
fn the_shard_is_stable_and_spread() {
    assert_eq!(shard_of("da637551227677560813_-961444813", 10), shard_of("da637551227677560813_-961444813", 10));
    let mut counts = [0usize; 10];
    for i in 0..10_000 {
        counts[usize::from(shard_of(&format!("da{i}"), 10))] += 1;
    }
    assert!(counts.iter().all(|c| (800..1200).contains(c)), "{counts:?}");
    assert_eq!(shard_of("x", 0), 0, "no rules configured: one shard");
}

#[test]
fn an_incident_never_gets_more_than_150_trigger_rows_and_first_parts_come_first() {
    let many: Vec<Value> = (0..8).map(|i| json!({"Type": "account", "Name": format!("u{i}")})).collect();
    let rows: Vec<Map<String, Value>> = (0..149).map(|i| alert_row(&format!("da{i}"), "d", &many)).collect();
    let refs: Vec<&Map<String, Value>> = rows.iter().collect();
    let (out, left_out) = incident_triggers(&refs, 10);
    assert_eq!(out.len(), 150, "Sentinel's limit");
    assert_eq!(left_out, 149 * 4 - 150);
    assert!(out[..149].iter().all(|r| r.key.part == 1), "every alert first");
    assert_eq!(out[149].key.part, 2);
    assert_eq!(out[149].columns["AlertName"], "Suspicious thing (entities 2/4)");
    let (few, none_left) = incident_triggers(&refs[..3], 10);
    assert_eq!((few.len(), none_left), (12, 0), "below the limit every entity has its row");
}

proptest! {
    #[test]
    fn every_trigger_row_and_its_alert_stay_well_under_64_kb(
        description in ".{0,3000}",
        big in proptest::collection::vec(any::<char>(), 0..40_000),
        names in proptest::collection::vec(".{0,2000}", 0..12),
    ) {
        let big: String = big.into_iter().collect();
        let mut entities: Vec<Value> = names.iter().map(|n| json!({"Type": "account", "Name": n, "UPNSuffix": big})).collect();
        entities.push(json!({"Type": "host", "HostName": big, "FQDN": format!("h.{big}")}));
        entities.push(json!({"Type": "process", "ProcessId": 1, "CommandLine": big, "CreationTimeUtc": "2026-01-01T00:00:00Z"}));
        entities.push(json!({"Type": "url", "Url": big}));
        let mut row = alert_row("da1", &format!("{description}{big}"), &entities);
        row.insert("AlertName".into(), Value::String(big.clone()));
        row.insert("AlertLink".into(), Value::String(big.clone()));
        let (rows, _) = incident_triggers(&[&row], 10);
        prop_assert!(!rows.is_empty());
        for r in &rows {
            let n = serde_json::to_string(&r.columns).unwrap().len();
            prop_assert!(n <= MAX_TRIGGER_ROW_BYTES, "row of {n} bytes");
            prop_assert!(security_alert_bytes(&r.columns) < 60_000, "alert of {} bytes", security_alert_bytes(&r.columns));
        }
    }
}
