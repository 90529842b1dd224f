//! `xdrsync-sim bench hunting`: an advanced-hunting source measured on the real binary against
//! the simulator and Azurite, 50,000 DeviceProcessEvents and 10,000 EmailEvents rows (defaults)
//! into Logs Ingestion (1 MB calls, gzip). `--source query` (`xdrsync run`): the rows are already
//! in advanced hunting and are read through `runHuntingQuery` under the documented quota (the
//! simulated tenant answers 429 past 45 calls a minute; xdrsync spends 40). `--source storage`
//! (`xdrsync run`): the rows are written as the Streaming API writes them, to hourly append blobs
//! in Azurite, while xdrsync reads them. `--source event-hub` (`xdrsync serve`, the custom
//! handler): the rows arrive as `eventHubTrigger` invocations of 100 events of 10 records each,
//! two partitions at a time, as the Functions host delivers them. Reports rows/s and MB/s
//! (uncompressed JSON as sent) from the start to the last row's arrival, ingestion calls per
//! 10,000 rows, queries and 429s (query source), peak resident memory, and whether every row
//! arrived exactly once.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde::Serialize;
use time::OffsetDateTime;

use crate::demo::{Budgets, ChildMode, Stack, AZURITE_BLOBS};
use crate::sim::hunting_seed::{stream_record, HuntingSeed};
use crate::streaming::StreamingWriter;

/// Where the rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HuntingSource {
    Query,
    Storage,
    EventHub,
}

impl HuntingSource {
    fn label(self) -> &'static str {
        match self {
            HuntingSource::Query => "query source",
            HuntingSource::Storage => "Streaming API to storage",
            HuntingSource::EventHub => "Streaming API to Event Hub",
        }
    }
}

/// Event Hub batches: events per invocation (the host's default `maxEventBatchSize`), records
/// per event, invocations in flight (partitions).
const EVENTS_PER_BATCH: usize = 100;
const RECORDS_PER_EVENT: usize = 10;
const PARTITIONS: usize = 2;

#[derive(Debug, Clone)]
pub struct HuntingBenchOptions {
    pub source: HuntingSource,
    pub process_rows: usize,
    pub email_rows: usize,
    pub page_rows: usize,
    pub timeout: Duration,
    pub repo_root: std::path::PathBuf,
    pub xdrsync_bin: std::path::PathBuf,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HuntingBenchReport {
    pub source: HuntingSource,
    pub rows_seeded: usize,
    pub rows_arrived: usize,
    pub distinct_rows_arrived: usize,
    pub seconds: f64,
    pub rows_per_second: f64,
    pub megabytes: f64,
    pub megabytes_per_second: f64,
    pub ingestion_calls: u64,
    pub ingestion_calls_per_10k_rows: f64,
    /// 429s the simulated DCR answered (2 GB or 12,000 calls a minute).
    pub ingestion_429s: u64,
    pub hunting_queries: u64,
    pub hunting_429s: u64,
    pub tenant_hunting_calls_per_minute: usize,
    pub xdrsync_hunting_calls_per_minute: u32,
    pub page_rows: usize,
    pub peak_memory_mib: Option<f64>,
    pub ok: bool,
}

pub async fn run(opts: HuntingBenchOptions) -> anyhow::Result<HuntingBenchReport> {
    let xdrsync_budget = 40;
    let tables = "DeviceProcessEvents,EmailEvents".to_string();
    let mut env = vec![
        ("XDRSYNC_HUNTING_SCHEDULE", "* * * * * *".to_string()),
        ("XDRSYNC_HUNTING_CALLS_PER_MINUTE", xdrsync_budget.to_string()),
        ("XDRSYNC_HUNTING_PAGE_ROWS", opts.page_rows.to_string()),
        ("XDRSYNC_HUNTING_LOOKBACK_MINUTES", "240".to_string()),
        ("XDRSYNC_POLL_TIME_BUDGET_SECONDS", "3600".to_string()),
    ];
    let budgets = Budgets { sim_graph_calls_per_minute: None, sim_arm_limits: false, ..Budgets::default() };
    let stack = match opts.source {
        HuntingSource::Query => {
            env.push(("XDRSYNC_HUNTING_TABLES", tables));
            Stack::start(ChildMode::Run, &opts.repo_root, &opts.xdrsync_bin, 30, true, &budgets, &env, None).await?
        }
        HuntingSource::Storage => {
            env.push(("XDRSYNC_HUNTING_STORAGE_TABLES", tables));
            env.push(("XDRSYNC_HUNTING_STORAGE_CONNECTION", AZURITE_BLOBS.to_string()));
            Stack::start(ChildMode::Run, &opts.repo_root, &opts.xdrsync_bin, 30, true, &budgets, &env, None).await?
        }
        HuntingSource::EventHub => {
            Stack::start(ChildMode::Serve, &opts.repo_root, &opts.xdrsync_bin, 30, true, &budgets, &env, None).await?
        }
    };
    let tenant_quota = stack.sim.sim.hunting.lock().unwrap_or_else(|p| p.into_inner()).calls_per_minute;
    let tenant = stack.sim.sim.config.tenant_id.clone();
    // Rows from ~3 hours ago up to 10 minutes ago, three to a timestamp.
    let now = OffsetDateTime::now_utc();
    let mut seeded = Vec::new();
    let mut batches: Vec<(&str, Vec<serde_json::Map<String, serde_json::Value>>)> = Vec::new();
    for (table, count) in [("DeviceProcessEvents", opts.process_rows), ("EmailEvents", opts.email_rows)] {
        let mut seed = HuntingSeed::new(table, count, now);
        seed.step = time::Duration::milliseconds(500);
        seed.start = now - time::Duration::minutes(10) - seed.step * ((count / seed.ties) as i32);
        let rows = seed.rows();
        seeded.extend(rows.iter().map(xdrsync_core::domain::hunting::rows::row_key));
        batches.push((table, rows));
    }
    let started = Instant::now();
    match opts.source {
        HuntingSource::Query => {
            for (table, rows) in batches {
                stack.sim.sim.hunting.lock().unwrap_or_else(|p| p.into_inner()).add(table, rows);
            }
        }
        HuntingSource::Storage => {
            let writer = StreamingWriter::azurite(stack.blob_port(), &tenant);
            // Appended a thousand rows at a time: xdrsync reads blobs that are still growing.
            for (table, rows) in &batches {
                for chunk in rows.chunks(1_000) {
                    writer.append(table, chunk).await?;
                }
            }
        }
        HuntingSource::EventHub => deliver_events(&stack, &tenant, &batches).await?,
    }
    let total = seeded.len();
    let arrived = |stack: &Stack| {
        let w = stack.sim.sim.world();
        ["Custom-DeviceProcessEvents", "Custom-EmailEvents"]
            .iter()
            .map(|s| w.logs.get(*s).map_or(0, Vec::len))
            .sum::<usize>()
    };
    let mut peak = None;
    while arrived(&stack) < total && started.elapsed() < opts.timeout {
        peak = stack.peak_memory_mib().or(peak);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    peak = stack.peak_memory_mib().or(peak);
    let (rows_arrived, distinct, bytes) = {
        let w = stack.sim.sim.world();
        let rows: Vec<&serde_json::Value> = ["Custom-DeviceProcessEvents", "Custom-EmailEvents"]
            .iter()
            .flat_map(|s| w.logs.get(*s).into_iter().flatten())
            .collect();
        let keys: HashSet<&str> = rows.iter().filter_map(|r| r["XdrsyncRowKey"].as_str()).collect();
        let bytes: usize = rows.iter().map(|r| r.to_string().len() + 1).sum();
        let all_seeded = seeded.iter().all(|k| keys.contains(k.as_str()));
        (rows.len(), if all_seeded { keys.len() } else { 0 }, bytes)
    };
    let stats = stack.sim.sim.stats.snapshot();
    let stat = |k: &str| stats.get(k).copied().unwrap_or(0);
    let calls = stat("logs.post");
    let megabytes = bytes as f64 / 1e6;
    Ok(HuntingBenchReport {
        source: opts.source,
        rows_seeded: total,
        rows_arrived,
        distinct_rows_arrived: distinct,
        seconds,
        rows_per_second: rows_arrived as f64 / seconds,
        megabytes,
        megabytes_per_second: megabytes / seconds,
        ingestion_calls: calls,
        ingestion_calls_per_10k_rows: calls as f64 * 10_000.0 / rows_arrived.max(1) as f64,
        ingestion_429s: stat("logs.throttled"),
        hunting_queries: stat("hunting.queries"),
        hunting_429s: stat("hunting.throttled"),
        tenant_hunting_calls_per_minute: tenant_quota,
        xdrsync_hunting_calls_per_minute: xdrsync_budget,
        page_rows: opts.page_rows,
        peak_memory_mib: peak,
        ok: rows_arrived == total && distinct == total,
    })
}

pub fn print(r: &HuntingBenchReport) {
    println!();
    println!("xdrsync hunting export benchmark ({})", r.source.label());
    println!(
        "  rows seeded / arrived / distinct   {} / {} / {}",
        r.rows_seeded, r.rows_arrived, r.distinct_rows_arrived
    );
    println!("  time                               {:.1} s", r.seconds);
    println!(
        "  throughput                         {:.0} rows/s, {:.2} MB/s ({:.1} MB of JSON rows)",
        r.rows_per_second, r.megabytes_per_second, r.megabytes
    );
    println!(
        "  ingestion calls / 429s             {} ({:.1} per 10,000 rows) / {} (DCR: 2 GB, 12,000 calls a minute)",
        r.ingestion_calls, r.ingestion_calls_per_10k_rows, r.ingestion_429s
    );
    match r.source {
        HuntingSource::Query => {
            println!("  runHuntingQuery calls / 429s       {} / {}", r.hunting_queries, r.hunting_429s);
            println!(
                "  budgets                            tenant {} calls/min, xdrsync {} calls/min, {} rows a page",
                r.tenant_hunting_calls_per_minute, r.xdrsync_hunting_calls_per_minute, r.page_rows
            );
        }
        HuntingSource::Storage => println!("  blobs                              appended 1,000 rows at a time while read"),
        HuntingSource::EventHub => println!(
            "  invocations                        {EVENTS_PER_BATCH} events of {RECORDS_PER_EVENT} records each, {PARTITIONS} partitions at a time"
        ),
    }
    println!(
        "  peak memory (xdrsync)              {}",
        r.peak_memory_mib.map_or("n/a".into(), |m| format!("{m:.0} MiB"))
    );
    println!("  every row exactly once             {}", if r.ok { "yes" } else { "NO" });
}

/// Sends the rows to the custom handler as the Functions host delivers Event Hub batches
/// (`cardinality: many`, `dataType: string`: `Data.events` is an array of event bodies), a few
/// partitions at a time; a failed invocation is an error (the host would retry it).
async fn deliver_events(
    stack: &Stack,
    tenant: &str,
    tables: &[(&str, Vec<serde_json::Map<String, serde_json::Value>>)],
) -> anyhow::Result<()> {
    let mut envelopes = Vec::new();
    for (table, rows) in tables {
        let events: Vec<serde_json::Value> = rows
            .chunks(RECORDS_PER_EVENT)
            .map(|c| {
                let records: Vec<serde_json::Value> = c.iter().map(|r| stream_record(table, tenant, r)).collect();
                serde_json::Value::String(serde_json::json!({ "records": records }).to_string())
            })
            .collect();
        for (n, batch) in events.chunks(EVENTS_PER_BATCH).enumerate() {
            envelopes.push(serde_json::json!({
                "Data": {"events": batch},
                "Metadata": {
                    "PartitionContext": {"EventHubName": "defender", "ConsumerGroup": "$Default",
                        "PartitionId": (n % PARTITIONS).to_string()},
                    "sys": {"MethodName": "HuntingEventHub", "UtcNow": crate::sim::timefmt::format(OffsetDateTime::now_utc())}
                }
            }));
        }
    }
    let url = format!("{}/HuntingEventHub", stack.handler_url());
    for wave in envelopes.chunks(PARTITIONS) {
        let sends = wave.iter().map(|e| stack.http.post(&url).json(e).send());
        for r in futures::future::join_all(sends).await {
            let r = r?;
            if !r.status().is_success() {
                anyhow::bail!("HuntingEventHub answered {}: {}", r.status(), r.text().await.unwrap_or_default());
            }
        }
    }
    Ok(())
}
