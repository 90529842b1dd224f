//! `xdrsync hunting schema` and `xdrsync hunting estimate`, run as a user runs them.

mod support;

use std::collections::HashMap;
use std::process::Command;

use support::*;
use time::OffsetDateTime;
use xdrsync_sim::sim::hunting_seed::HuntingSeed;
use xdrsync_sim::sim::SimConfig;

fn xdrsync(vars: &HashMap<String, String>, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xdrsync")).env_clear().envs(vars.iter()).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn schema_prints_a_tables_columns_and_names_the_tables_on_a_typo() {
    let (code, text) = xdrsync(&HashMap::new(), &["hunting", "schema", "deviceprocessevents", "--json"]);
    assert_eq!(code, 0, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["workspaceTable"], "DeviceProcessEvents_CL");
    assert_eq!(v["stream"], "Custom-DeviceProcessEvents");
    let cols = v["columns"].as_array().unwrap();
    assert!(cols.iter().any(|c| c["name"] == "ProcessCommandLine" && c["type"] == "string"));
    assert!(cols.iter().any(|c| c["name"] == "TimeGenerated" && c["type"] == "datetime"));
    let (code, text) = xdrsync(&HashMap::new(), &["hunting", "schema", "EmailEvents"]);
    assert_eq!(code, 0);
    assert!(text.contains("SenderFromAddress") && text.contains("XdrsyncRowKey"), "{text}");
    let (code, text) = xdrsync(&HashMap::new(), &["hunting", "schema", "DeviceProces"]);
    assert_eq!(code, 2, "an unknown table is bad input");
    assert!(text.contains("DeviceProcessEvents"), "names the tables: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn estimate_reports_rows_and_megabytes_per_day_from_the_sample() {
    let sim = start_sim(SimConfig::demo()).await;
    // A row every 5 s from 62 to 2 minutes ago; the sample is the hour before now − 5 minutes,
    // so it holds the rows of 57 minutes: 684, a third of them Inbound.
    let mut seed = HuntingSeed::new("EmailEvents", 720, OffsetDateTime::now_utc() - time::Duration::minutes(62));
    seed.step = time::Duration::seconds(5);
    seed.ties = 1;
    sim.sim.hunting.lock().unwrap().add("EmailEvents", seed.rows());
    let mut vars = settings(&sim, None);
    vars.insert("XDRSYNC_HUNTING_FILTER_EMAILEVENTS".into(), "EmailDirection == 'Inbound'".into());
    let (code, text) = tokio::task::spawn_blocking(move || {
        xdrsync(&vars, &["hunting", "estimate", "--tables", "EmailEvents", "--sample", "PT1H", "--json"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{text}");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let e = &v[0];
    assert_eq!(e["table"], "EmailEvents");
    // The window's edges move with the clock by a row or two.
    let rows = e["sampleRows"].as_u64().unwrap();
    assert!((220..=235).contains(&rows), "{e}");
    assert_eq!(e["rowsPerDay"].as_u64().unwrap(), rows * 24);
    assert!(e["averageRowBytes"].as_u64().unwrap() > 500, "{e}");
    assert!(e["mbPerDay"].as_f64().unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_probes_the_hunting_query_source_and_names_the_missing_permission() {
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let mut vars = settings(&sim, Some(&az.connection_string()));
    vars.insert("XDRSYNC_HUNTING_TABLES".into(), "EmailEvents".into());
    let run = |vars: HashMap<String, String>| tokio::task::spawn_blocking(move || xdrsync(&vars, &["check"]));
    let (code, text) = run(vars.clone()).await.unwrap();
    assert_eq!(code, 0, "{text}");
    assert!(text.lines().any(|l| l.starts_with("ok") && l.contains("advanced hunting (query source)")), "{text}");
    assert!(text.lines().any(|l| l.starts_with("ok") && l.contains("hunting Logs Ingestion")), "{text}");
    let r = sim_post(&sim, "/_sim/permissions/withhold", serde_json::json!({"role": "ThreatHunting.Read.All"})).await;
    assert!(r.status().is_success());
    let (code, text) = run(vars).await.unwrap();
    assert_eq!(code, 1, "{text}");
    let line = text.lines().find(|l| l.contains("advanced hunting (query source)")).unwrap_or_default();
    assert!(line.starts_with("FAIL") && line.contains("ThreatHunting.Read.All"), "{text}");
}
