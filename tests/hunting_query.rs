//! The advanced-hunting query source end to end against the simulator's `runHuntingQuery` and
//! Logs Ingestion: every row and column arrives once, pages cut inside runs of equal
//! timestamps, windows split at the service's row and size limits, a crash re-sends at most one
//! page, a restart resumes at the cursor, rows younger than the delay wait. Volumes are scaled
//! down (the 50,000 + 10,000 rows run is `xdrsync-sim bench hunting`).

mod support;

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use serde_json::{Map, Value};
use support::*;
use time::OffsetDateTime;
use xdrsync::domain::hunting::rows::row_key;
use xdrsync::domain::hunting::schema::TableDef;
use xdrsync::usecase::hunting_jobs as jobs;
use xdrsync::usecase::Ports;
use xdrsync_sim::sim::hunting_seed::HuntingSeed;
use xdrsync_sim::sim::{RunningSim, SimConfig};

fn hunting_settings(sim: &RunningSim, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut m = settings(sim, None);
    m.insert("XDRSYNC_HUNTING_TABLES".into(), "DeviceProcessEvents,EmailEvents".into());
    m.insert("XDRSYNC_HUNTING_LOOKBACK_MINUTES".into(), "180".into());
    m.insert("XDRSYNC_HUNTING_CALLS_PER_MINUTE".into(), "600".into());
    for (k, v) in extra {
        m.insert(k.to_string(), v.to_string());
    }
    m
}

fn ports(settings: &HashMap<String, String>, store: Arc<xdrsync_sim::fakes::MemoryStore>) -> Ports {
    let mut s = xdrsync::app::build(config(settings));
    s.store = store;
    s
}

/// Seeds `count` rows of `table` ending `minutes_ago` minutes before now.
fn seed_rows(sim: &RunningSim, table: &str, count: usize, ties: usize, minutes_ago: i64) -> Vec<Map<String, Value>> {
    let mut seed = HuntingSeed::new(table, count, OffsetDateTime::now_utc());
    seed.ties = ties;
    let span = seed.step * ((count / ties) as i32);
    seed.start = OffsetDateTime::now_utc() - time::Duration::minutes(minutes_ago) - span;
    seed.offset = sim.sim.hunting.lock().unwrap().tables.get(table).map_or(0, Vec::len);
    let rows = seed.rows();
    sim.sim.hunting.lock().unwrap().add(table, rows.clone());
    rows
}

fn exported(sim: &RunningSim, table: &str) -> Vec<Value> {
    sim.sim.world().logs.get(&format!("Custom-{table}")).cloned().unwrap_or_default()
}

/// Every seeded row arrived exactly once (by its key), with every column and value.
fn assert_once_each(sim: &RunningSim, table: &str, seeded: &[Map<String, Value>]) {
    let out = exported(sim, table);
    let mut by_key: HashMap<String, Vec<&Value>> = HashMap::new();
    for r in &out {
        by_key.entry(r["XdrsyncRowKey"].as_str().unwrap().to_string()).or_default().push(r);
    }
    assert_eq!(out.len(), seeded.len(), "{table}: rows exported");
    let def = TableDef::find(table).unwrap();
    for row in seeded {
        let hits = by_key.get(&row_key(row)).unwrap_or_else(|| panic!("{table}: a row was lost"));
        assert_eq!(hits.len(), 1, "{table}: a row arrived twice");
        let got = hits[0];
        for (col, _) in def.columns.iter().filter(|(c, _)| *c != "AdditionalFields") {
            let name = xdrsync::domain::hunting::schema::output_name(col);
            assert_eq!(got.get(&name), row.get(*col), "{table}.{col}");
        }
        assert_eq!(got["TimeGenerated"], row["Timestamp"]);
        // The table's own AdditionalFields keep their keys, and the column this build does not
        // know joins them.
        // Defender documents it as a string of JSON text for most tables: its object is what is kept.
        let mut additional = match row.get("AdditionalFields") {
            Some(Value::String(text)) => serde_json::from_str(text).expect("JSON text"),
            Some(v) => v.clone(),
            None => serde_json::json!({}),
        };
        additional["XdrsyncSimNewColumn"] = row["XdrsyncSimNewColumn"].clone();
        assert_eq!(got["AdditionalFields"], additional, "{table}: AdditionalFields");
    }
}

#[tokio::test]
async fn every_row_and_column_arrives_once_across_pages_cut_inside_ties() {
    let sim = start_sim(SimConfig::demo()).await;
    let procs = seed_rows(&sim, "DeviceProcessEvents", 5_000, 3, 30);
    let mails = seed_rows(&sim, "EmailEvents", 1_000, 7, 30);
    let s = ports(&hunting_settings(&sim, &[("XDRSYNC_HUNTING_PAGE_ROWS", "700")]), Default::default());
    let line = jobs::hunting_export(&s).await.expect("export runs");
    assert!(line.contains("DeviceProcessEvents 5000 rows"), "{line}");
    assert_once_each(&sim, "DeviceProcessEvents", &procs);
    assert_once_each(&sim, "EmailEvents", &mails);
    assert_eq!(sim_stat(&sim, "logs.undeclared_columns").await, 0, "every column is declared in its stream");
    // Each page was ≤ 1 MB; 5,000 rows of ~3 KB took several ingestion calls, none refused.
    assert_eq!(sim_stat(&sim, "logs.too_large").await, 0);
    // A second run finds nothing new and sends nothing.
    jobs::hunting_export(&s).await.unwrap();
    assert_eq!(exported(&sim, "DeviceProcessEvents").len(), 5_000);
    let queries = sim.sim.hunting.lock().unwrap().queries.clone();
    assert!(queries.iter().all(|q| q.contains("| order by Timestamp asc\n| take 700") || q.contains("Timestamp ==")));
}

#[tokio::test]
async fn windows_split_at_the_row_limit_the_size_limit_and_one_timestamp_filling_a_page() {
    let sim = start_sim(SimConfig::demo()).await;
    {
        let mut h = sim.sim.hunting.lock().unwrap();
        h.row_limit = 400;
        // About 150 rows' worth: a page of 400 is refused until the product asks for fewer.
        h.max_result_bytes = 600_000;
    }
    // 120 rows share each timestamp: once halved to 100, a page is filled by one timestamp and
    // that timestamp is swept whole.
    let procs = seed_rows(&sim, "DeviceProcessEvents", 2_400, 120, 20);
    let s = ports(
        &hunting_settings(
            &sim,
            &[("XDRSYNC_HUNTING_TABLES", "DeviceProcessEvents"), ("XDRSYNC_HUNTING_PAGE_ROWS", "400")],
        ),
        Default::default(),
    );
    jobs::hunting_export(&s).await.expect("export runs");
    assert_once_each(&sim, "DeviceProcessEvents", &procs);
    assert!(sim_stat(&sim, "hunting.too_large").await >= 1, "the size limit was met");
    let queries = sim.sim.hunting.lock().unwrap().queries.clone();
    assert!(queries.iter().any(|q| q.contains("| take 200")), "the page was halved");
    assert!(queries.iter().any(|q| q.contains("Timestamp == datetime(")), "a timestamp was swept whole");
}

#[tokio::test]
async fn a_crash_resends_at_most_one_page_and_a_restart_resumes_at_the_cursor() {
    let sim = start_sim(SimConfig::demo()).await;
    let procs = seed_rows(&sim, "DeviceProcessEvents", 3_000, 3, 20);
    let store = Arc::new(xdrsync_sim::fakes::MemoryStore::new());
    let vars = hunting_settings(
        &sim,
        &[("XDRSYNC_HUNTING_TABLES", "DeviceProcessEvents"), ("XDRSYNC_HUNTING_PAGE_ROWS", "500")],
    );
    let mut first = ports(&vars, store.clone());
    first.hunting_logs = Arc::new(LoseAnswer {
        inner: first.hunting_logs.clone(),
        calls: AtomicUsize::new(0),
        lose_at: 3,
        only_tenant: None,
    });
    let err = jobs::hunting_export(&first).await.unwrap_err();
    assert!(err.contains("DeviceProcessEvents"), "{err}");
    let before = exported(&sim, "DeviceProcessEvents").len();
    // Three pages of 500 stored (less the boundary rows each next page re-reads and drops), the
    // third one's answer lost.
    assert!((1_400..=1_500).contains(&before), "{before}");
    // A new process on the same state resumes at the cursor: the third page again, then the rest.
    let second = ports(&vars, store);
    jobs::hunting_export(&second).await.expect("the restart completes");
    let out = exported(&sim, "DeviceProcessEvents");
    let mut count: HashMap<&str, usize> = HashMap::new();
    for r in &out {
        *count.entry(r["XdrsyncRowKey"].as_str().unwrap()).or_default() += 1;
    }
    assert_eq!(count.len(), procs.len(), "nothing lost");
    let resent: usize = count.values().map(|n| n - 1).sum();
    assert!(resent > 0 && resent <= 500, "re-sends stay within one page: {resent}");
}

#[tokio::test]
async fn rows_younger_than_the_delay_wait_and_later_rows_arrive_in_the_next_run() {
    let sim = start_sim(SimConfig::demo()).await;
    let old = seed_rows(&sim, "EmailEvents", 300, 2, 20);
    // Inside the last five minutes: not exported yet (events arrive late in advanced hunting).
    let young = seed_rows(&sim, "EmailEvents", 100, 2, 1);
    let store = Arc::new(xdrsync_sim::fakes::MemoryStore::new());
    let s = ports(&hunting_settings(&sim, &[("XDRSYNC_HUNTING_TABLES", "EmailEvents")]), store.clone());
    jobs::hunting_export(&s).await.unwrap();
    assert_once_each(&sim, "EmailEvents", &old);
    // With no delay, the next run sends the young rows, once.
    let s = ports(
        &hunting_settings(&sim, &[("XDRSYNC_HUNTING_TABLES", "EmailEvents"), ("XDRSYNC_HUNTING_DELAY_SECONDS", "0")]),
        store,
    );
    jobs::hunting_export(&s).await.unwrap();
    let all: Vec<Map<String, Value>> = old.into_iter().chain(young).collect();
    assert_once_each(&sim, "EmailEvents", &all);
}

#[tokio::test]
async fn the_filter_and_projection_shape_what_is_sent() {
    let sim = start_sim(SimConfig::demo()).await;
    let rows = seed_rows(&sim, "DeviceProcessEvents", 400, 2, 20);
    let s = ports(
        &hunting_settings(
            &sim,
            &[
                ("XDRSYNC_HUNTING_TABLES", "DeviceProcessEvents"),
                ("XDRSYNC_HUNTING_FILTER_DEVICEPROCESSEVENTS", "FileName in~ ('POWERSHELL.EXE', 'cmd.exe')"),
                ("XDRSYNC_HUNTING_COLUMNS_DEVICEPROCESSEVENTS", "DeviceName, FileName, ProcessCommandLine"),
            ],
        ),
        Default::default(),
    );
    jobs::hunting_export(&s).await.unwrap();
    let out = exported(&sim, "DeviceProcessEvents");
    let expected = rows.iter().filter(|r| matches!(r["FileName"].as_str(), Some("powershell.exe" | "cmd.exe"))).count();
    assert_eq!(out.len(), expected);
    let mut cols: Vec<&str> = out[0].as_object().unwrap().keys().map(String::as_str).collect();
    cols.sort();
    assert_eq!(
        cols,
        [
            "DefenderTenantId",
            "DeviceName",
            "FileName",
            "ProcessCommandLine",
            "TimeGenerated",
            "Timestamp",
            "XdrsyncRowKey"
        ]
    );
    // One tenant: every row is XDRSYNC_TENANT_ID's.
    assert!(out.iter().all(|r| r["DefenderTenantId"] == s.config.tenant_id.as_str()));
}

#[tokio::test]
async fn the_per_tenant_quota_429_surfaces_and_loses_nothing() {
    let sim = start_sim(SimConfig::demo()).await;
    let rows = seed_rows(&sim, "EmailEvents", 600, 2, 20);
    sim.sim.hunting.lock().unwrap().calls_per_minute = 2;
    let store = Arc::new(xdrsync_sim::fakes::MemoryStore::new());
    let vars =
        hunting_settings(&sim, &[("XDRSYNC_HUNTING_TABLES", "EmailEvents"), ("XDRSYNC_HUNTING_PAGE_ROWS", "100")]);
    let err = jobs::hunting_export(&ports(&vars, store.clone())).await.unwrap_err();
    assert!(err.contains("45") || err.contains("calls per minute"), "the 429 names the quota: {err}");
    assert!(sim_stat(&sim, "hunting.throttled").await >= 1);
    sim.sim.hunting.lock().unwrap().calls_per_minute = 45;
    jobs::hunting_export(&ports(&vars, store)).await.expect("the next run resumes");
    assert_once_each(&sim, "EmailEvents", &rows);
}

#[tokio::test]
async fn a_denied_query_source_shows_in_health_and_recovers() {
    let sim = start_sim(SimConfig::demo()).await;
    let rows = seed_rows(&sim, "EmailEvents", 200, 2, 20);
    let store = Arc::new(xdrsync_sim::fakes::MemoryStore::new());
    let vars = hunting_settings(&sim, &[("XDRSYNC_HUNTING_TABLES", "EmailEvents")]);
    let r = sim_post(&sim, "/_sim/permissions/withhold", serde_json::json!({"role": "ThreatHunting.Read.All"})).await;
    assert!(r.status().is_success(), "{}", r.status());
    jobs::hunting_export(&ports(&vars, store.clone())).await.expect_err("the query source is denied");
    let health = xdrsync::usecase::health::check(&ports(&vars, store.clone()), true).await;
    assert_eq!(health.status, "unhealthy", "{:?}", health.reasons);
    assert!(
        health.reasons.iter().any(|r| r.contains("Hunting export fails") && r.contains("ThreatHunting.Read.All")),
        "{:?}",
        health.reasons
    );
    let details = health.details.expect("details with the key");
    assert!(details.feeds.iter().any(|f| f.feed == "hunting" && f.health.failing_since.is_some()));
    let r = sim_post(&sim, "/_sim/permissions/grant", serde_json::json!({"role": "ThreatHunting.Read.All"})).await;
    assert!(r.status().is_success(), "{}", r.status());
    jobs::hunting_export(&ports(&vars, store.clone())).await.expect("granted again");
    let health = xdrsync::usecase::health::check(&ports(&vars, store), true).await;
    assert!(!health.reasons.iter().any(|r| r.contains("Hunting")), "{:?}", health.reasons);
    assert_once_each(&sim, "EmailEvents", &rows);
}
