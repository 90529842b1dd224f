//! Tests of rule runs: the per-run cap and the summary alert in both shapes, minutes as runs,
//! and the 64 KB limit dropping entities.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::*;
use crate::sim::stream_columns::ALERTS_STREAM;
use crate::sim::{SimConfig, SummaryDetails};

/// A simulator without seeded rules and one per-result rule over the alert table.
fn setup(mode: SummaryDetails) -> Arc<Sim> {
    let mut config = SimConfig::demo();
    config.options.alert_rules = 0;
    config.options.summary_details = mode;
    let sim = Sim::new(config);
    let p = json!({
        "displayName": "rule", "enabled": true, "severity": "Medium",
        "query": "XdrsyncAlerts_CL | project SystemAlertId, DefenderIncidentId, AlertName, EntityHostName",
        "eventGroupingSettings": {"aggregationKind": "AlertPerResult"},
        "alertDetailsOverride": {"alertDisplayNameFormat": "{{AlertName}}"},
        "customDetails": {"DefenderAlertId": "SystemAlertId", "DefenderIncidentId": "DefenderIncidentId"},
        "entityMappings": [{"entityType": "Host", "fieldMappings": [{"identifier": "HostName", "columnName": "EntityHostName"}]}],
    });
    let rules = sim.rules.lock().unwrap().clone();
    let rule = crate::sim::nrt_rule::compile("r1", p.as_object().unwrap(), &|t| rules.table_schema(&sim.config, t))
        .expect("the test rule compiles");
    sim.world().rule.rules.insert("r1".into(), rule);
    sim
}

/// `n` alert rows, alert i in incident `i % 7`, its host name `host` long.
fn rows(n: usize, host: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({"TimeGenerated": "2026-01-01T00:00:00Z", "SystemAlertId": format!("da{i}"),
                   "DefenderIncidentId": (i % 7).to_string(), "AlertName": format!("alert {i}"),
                   "EntityHostName": format!("{i:04}{}", "h".repeat(host))})
        })
        .collect()
}

fn ingest(sim: &Sim, rows: &[Value]) {
    on_ingest(sim, &mut sim.world(), ALERTS_STREAM, rows);
}

fn stat(sim: &Sim, k: &str) -> u64 {
    sim.stats.snapshot().get(k).copied().unwrap_or(0)
}

#[test]
fn up_to_29_results_raise_one_alert_each() {
    let sim = setup(SummaryDetails::AllValues);
    ingest(&sim, &rows(29, 4));
    run_now(&mut sim.world());
    let w = sim.world();
    assert_eq!(w.rule.alerts.len(), 29);
    assert!(w.rule.alerts.iter().all(|a| !a.summary));
    assert_eq!(w.rule.alerts[3].custom_detail_values("DefenderAlertId"), ["da3"]);
    assert_eq!(w.rule.alerts[3].doc["AlertName"], "alert 3", "named from the row");
    assert_eq!(w.rule.alerts[3].entities[0]["properties"]["HostName"], "0003hhhh");
    assert_eq!(stat(&sim, "rule.summary_alerts"), 0);
}

#[test]
fn more_than_29_results_raise_29_single_alerts_and_a_summary_holding_every_value() {
    let sim = setup(SummaryDetails::AllValues);
    ingest(&sim, &rows(45, 4));
    run_now(&mut sim.world());
    let w = sim.world();
    assert_eq!(w.rule.alerts.len(), 30, "29 single alerts and one summary");
    for (i, a) in w.rule.alerts[..29].iter().enumerate() {
        assert_eq!(a.custom_detail_values("DefenderAlertId"), [format!("da{i}")]);
    }
    let summary = &w.rule.alerts[29];
    assert!(summary.summary);
    let all: Vec<String> = (0..45).map(|i| format!("da{i}")).collect();
    assert_eq!(summary.custom_detail_values("DefenderAlertId"), all, "every result's value, in order");
    assert_eq!(summary.doc["AlertName"], "rule", "a summary is named after the rule");
    assert_eq!(summary.entities.len(), 45, "the entities of every result");
    assert_eq!(stat(&sim, "rule.summary_alerts"), 1);
    assert_eq!(stat(&sim, "rule.alerts"), 30);
    assert!(w.rule.alerts[30..].is_empty(), "results 30 to 45 get no alert of their own");
}

#[test]
fn a_first_row_summary_looks_like_the_first_results_alert() {
    let sim = setup(SummaryDetails::FirstRow);
    ingest(&sim, &rows(31, 4));
    run_now(&mut sim.world());
    let w = sim.world();
    assert_eq!(w.rule.alerts.len(), 30);
    let (first, summary) = (&w.rule.alerts[0], &w.rule.alerts[29]);
    assert_eq!(summary.custom_detail_values("DefenderAlertId"), ["da0"]);
    assert_eq!(summary.custom_detail_values("DefenderIncidentId"), first.custom_detail_values("DefenderIncidentId"));
    assert_eq!(summary.doc["AlertName"], first.doc["AlertName"]);
    assert_eq!(summary.entities, first.entities);
    assert_ne!(summary.system_alert_id, first.system_alert_id);
    assert_eq!(stat(&sim, "rule.summary_alerts"), 1);
}

#[test]
fn each_minute_is_its_own_run_and_a_minute_runs_only_once_it_is_over() {
    let sim = setup(SummaryDetails::AllValues);
    sim.options.lock().unwrap().alert_rule_delay_ms = 60_000;
    ingest(&sim, &rows(20, 4));
    ingest(&sim, &rows(20, 4));
    run(&mut sim.world());
    assert!(sim.world().rule.alerts.is_empty(), "the minute is not over");
    {
        // The first 20 rows arrived two minutes ago, the next 20 a minute later.
        let mut w = sim.world();
        let epoch = Instant::now() - Duration::from_secs(150);
        w.rule.epoch = Some(epoch);
        for (i, p) in w.rule.pending.iter_mut().enumerate() {
            p.at = epoch + Duration::from_secs(if i < 20 { 1 } else { 61 });
        }
    }
    run(&mut sim.world());
    let w = sim.world();
    assert_eq!(w.rule.alerts.len(), 40, "two runs of 20: neither passes the cap");
    assert_eq!(stat(&sim, "rule.summary_alerts"), 0);
    assert_eq!(stat(&sim, "rule.runs"), 2);
}

#[test]
fn a_disabled_rule_or_another_table_raises_nothing() {
    let sim = setup(SummaryDetails::AllValues);
    on_ingest(&sim, &mut sim.world(), "Custom-DeviceEvents", &rows(3, 4));
    run_now(&mut sim.world());
    assert!(sim.world().rule.alerts.is_empty());
    sim.world().rule.rules.get_mut("r1").unwrap().enabled = false;
    ingest(&sim, &rows(3, 4));
    run_now(&mut sim.world());
    assert!(sim.world().rule.alerts.is_empty());
}

#[test]
fn entities_are_added_one_by_one_until_the_alert_would_pass_64_kb() {
    let sim = setup(SummaryDetails::AllValues);
    // 40 results of a 3,000-byte host name: the summary cannot hold all 40 entities.
    ingest(&sim, &rows(40, 3_000));
    run_now(&mut sim.world());
    let w = sim.world();
    let summary = w.rule.alerts.iter().find(|a| a.summary).unwrap();
    let size = Value::Object(summary.doc.clone()).to_string().len();
    assert!(size <= 64 * 1024, "{size}");
    let kept = summary.entities.len();
    assert!((15..40).contains(&kept), "{kept}");
    // In result order: the first ones were added, the rest dropped.
    assert_eq!(summary.entities[kept - 1]["properties"]["HostName"].as_str().unwrap()[..4], format!("{:04}", kept - 1));
    let stored: Vec<Value> = serde_json::from_str(summary.doc["Entities"].as_str().unwrap()).unwrap();
    assert_eq!(stored.len(), kept);
    // The room left is less than one more entity takes (its host name alone is 3,004 bytes).
    assert!(64 * 1024 - size < 3_100, "{size} bytes with {kept} entities");
    assert_eq!(stat(&sim, "rule.entities_dropped"), (40 - kept) as u64);
    assert!(w.rule.alerts.iter().filter(|a| !a.summary).all(|a| a.entities.len() == 1), "single alerts fit");
}
