//! The advanced-hunting Event Hub source and the query source's timer through the Functions
//! custom-handler protocol: `POST /HuntingEventHub` with `{"Data": {"events": [...]}}` (an
//! `eventHubTrigger` with `cardinality: many` and `dataType: string` passes the batch as an array
//! of event bodies, each the Streaming API's `{"records": [...]}`), `POST /HuntingExport` with a
//! timer payload.

mod support;

use std::sync::Arc;

use serde_json::{json, Value};
use support::*;
use time::OffsetDateTime;
use xdrsync::domain::hunting::rows::row_key;
use xdrsync::domain::hunting::schema::TableDef;
use xdrsync_sim::sim::hunting_seed::{stream_record, HuntingSeed};
use xdrsync_sim::sim::SimConfig;

async fn invoke(base: &str, function: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new().post(format!("{base}/{function}")).json(body).send().await.expect("handler answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Event bodies of `per_event` records each.
fn events(table: &str, rows: &[serde_json::Map<String, Value>], per_event: usize, tenant: &str) -> Vec<Value> {
    rows.chunks(per_event)
        .map(|c| {
            Value::String(
                json!({"records": c.iter().map(|r| stream_record(table, tenant, r)).collect::<Vec<_>>()}).to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn event_hub_batches_arrive_with_every_column_filtered_as_configured() {
    let sim = start_sim(SimConfig::demo()).await;
    let mut vars = settings(&sim, None);
    vars.insert("XDRSYNC_HUNTING_FILTER_EMAILEVENTS".into(), "EmailDirection == 'Inbound'".into());
    let mut s = xdrsync::app::build(config(&vars));
    s.store = Arc::new(xdrsync_sim::fakes::MemoryStore::new());
    let tenant = s.config.tenant_id.clone();
    let base = serve_router(xdrsync::functions::router(Arc::new(s))).await;
    let procs = HuntingSeed::new("DeviceProcessEvents", 1_000, OffsetDateTime::now_utc()).rows();
    let mails = HuntingSeed::new("EmailEvents", 300, OffsetDateTime::now_utc()).rows();
    let mut batch = events("DeviceProcessEvents", &procs, 40, &tenant);
    batch.extend(events("EmailEvents", &mails, 25, &tenant));
    // A record of a table xdrsync does not export is skipped, not a failure.
    batch.push(Value::String(
        json!({"records": [{"category": "AdvancedHunting-NotATable", "properties": {}}]}).to_string(),
    ));
    let envelope = json!({
        "Data": {"events": batch},
        "Metadata": {"PartitionContext": {"EventHubName": "defender", "ConsumerGroup": "$Default", "PartitionId": "0"},
            "sys": {"MethodName": "HuntingEventHub", "UtcNow": "2026-11-29T10:00:00Z"}}
    });
    let (status, body) = invoke(&base, "HuntingEventHub", &envelope).await;
    assert_eq!(status, 200, "{body}");
    let (out, emails) = {
        let world = sim.sim.world();
        let emails = world.logs.get("Custom-EmailEvents").map_or(0, Vec::len);
        (world.logs.get("Custom-DeviceProcessEvents").cloned().unwrap_or_default(), emails)
    };
    assert_eq!(out.len(), procs.len());
    let keys: std::collections::HashSet<&str> = out.iter().map(|r| r["XdrsyncRowKey"].as_str().unwrap()).collect();
    for r in &procs {
        assert!(keys.contains(row_key(r).as_str()), "a row was lost");
    }
    let first = out.iter().find(|r| r["XdrsyncRowKey"] == row_key(&procs[0]).as_str()).unwrap();
    for (col, _) in
        TableDef::find("DeviceProcessEvents").unwrap().columns.iter().filter(|(c, _)| *c != "AdditionalFields")
    {
        assert_eq!(first.get(*col), procs[0].get(*col), "{col}");
    }
    assert_eq!(first["AdditionalFields"]["XdrsyncSimNewColumn"], procs[0]["XdrsyncSimNewColumn"]);
    let inbound = mails.iter().filter(|r| r["EmailDirection"] == "Inbound").count();
    assert_eq!(emails, inbound, "the filter applies in xdrsync");
    assert_eq!(sim_stat(&sim, "logs.undeclared_columns").await, 0);
}

#[tokio::test]
async fn a_batch_the_sink_refuses_fails_the_invocation_so_the_retry_policy_runs_it_again() {
    let sim = start_sim(SimConfig::demo()).await;
    let mut s = xdrsync::app::build(config(&settings(&sim, None)));
    s.store = Arc::new(xdrsync_sim::fakes::MemoryStore::new());
    let tenant = s.config.tenant_id.clone();
    let base = serve_router(xdrsync::functions::router(Arc::new(s))).await;
    sim.sim.permissions.lock().unwrap().dcr_roles.clear();
    let rows = HuntingSeed::new("EmailEvents", 10, OffsetDateTime::now_utc()).rows();
    let envelope = json!({"Data": {"events": events("EmailEvents", &rows, 10, &tenant)}, "Metadata": {}});
    let (status, body) = invoke(&base, "HuntingEventHub", &envelope).await;
    assert_eq!(status, 500, "{body}");
    assert!(body["Logs"][0].as_str().unwrap().contains("hunting events failed"), "{body}");
}

#[tokio::test]
async fn the_hunting_timer_runs_the_query_source_through_the_envelope() {
    let sim = start_sim(SimConfig::demo()).await;
    let mut seed =
        HuntingSeed::new("DeviceNetworkEvents", 200, OffsetDateTime::now_utc() - time::Duration::minutes(30));
    seed.ties = 4;
    sim.sim.hunting.lock().unwrap().add("DeviceNetworkEvents", seed.rows());
    let mut vars = settings(&sim, None);
    vars.insert("XDRSYNC_HUNTING_TABLES".into(), "DeviceNetworkEvents".into());
    let mut s = xdrsync::app::build(config(&vars));
    s.store = Arc::new(xdrsync_sim::fakes::MemoryStore::new());
    let base = serve_router(xdrsync::functions::router(Arc::new(s))).await;
    let timer = json!({"Data": {"timer": {"Schedule": {"AdjustForDST": true}, "IsPastDue": false}},
        "Metadata": {"sys": {"MethodName": "HuntingExport"}}});
    let (status, body) = invoke(&base, "HuntingExport", &timer).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["Logs"][0].as_str().unwrap().contains("DeviceNetworkEvents 200 rows"), "{body}");
    assert_eq!(sim.sim.world().logs.get("Custom-DeviceNetworkEvents").map_or(0, Vec::len), 200);
}

#[tokio::test]
async fn each_row_names_the_defender_tenant_of_its_record() {
    let sim = start_sim(SimConfig::demo()).await;
    let mut s = xdrsync::app::build(config(&settings(&sim, None)));
    s.store = Arc::new(xdrsync_sim::fakes::MemoryStore::new());
    let own = s.config.tenant_id.clone();
    let base = serve_router(xdrsync::functions::router(Arc::new(s))).await;
    // One stream carrying two customers' records (the same rows on purpose), one tenant id in
    // capitals as an export may write it.
    let rows = HuntingSeed::new("EmailEvents", 30, OffsetDateTime::now_utc()).rows();
    let (a, b) = ("1f2e3d4c-0000-4000-8000-00000000000a", "9A8B7C6D-0000-4000-8000-00000000000B");
    let mut batch = events("EmailEvents", &rows, 10, a);
    batch.extend(events("EmailEvents", &rows, 10, b));
    let (status, body) = invoke(&base, "HuntingEventHub", &json!({"Data": {"events": batch}, "Metadata": {}})).await;
    assert_eq!(status, 200, "{body}");
    let out = sim.sim.world().logs.get("Custom-EmailEvents").cloned().unwrap_or_default();
    assert_eq!(out.len(), 60);
    for tenant in [a, &b.to_ascii_lowercase()] {
        let keys: std::collections::HashSet<&str> = out
            .iter()
            .filter(|r| r["DefenderTenantId"] == tenant)
            .map(|r| r["XdrsyncRowKey"].as_str().unwrap())
            .collect();
        assert_eq!(keys.len(), 30, "{tenant}: each of its rows once");
    }
    assert!(out.iter().all(|r| r["DefenderTenantId"] != own.as_str()), "the record's tenant, not xdrsync's own");
    assert_eq!(sim_stat(&sim, "logs.undeclared_columns").await, 0);
}
