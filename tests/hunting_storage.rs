//! The advanced-hunting storage source for real on Azurite: the Streaming API's hourly append
//! blobs (written by `xdrsync-sim`'s writer with `azure_storage_blobs`), read by byte offset,
//! growing between and during runs, a record caught half-written, a crash after acceptance
//! re-sending at most one chunk. Cursors in Azurite's Table Storage.

mod support;

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use serde_json::{Map, Value};
use support::*;
use time::OffsetDateTime;
use xdrsync::domain::hunting::rows::row_key;
use xdrsync::usecase::hunting_jobs as jobs;
use xdrsync::usecase::Ports;
use xdrsync_sim::sim::hunting_seed::{stream_record, HuntingSeed};
use xdrsync_sim::sim::{RunningSim, SimConfig};
use xdrsync_sim::streaming::StreamingWriter;

struct Fixture {
    sim: RunningSim,
    _azurite: AzuriteProcess,
    vars: HashMap<String, String>,
    writer: StreamingWriter,
}

async fn fixture() -> Fixture {
    let sim = start_sim(SimConfig::demo()).await;
    let azurite = Azurite::start();
    let mut vars = settings(&sim, Some(&azurite.connection_string()));
    vars.insert("XDRSYNC_HUNTING_STORAGE_TABLES".into(), "DeviceProcessEvents,EmailEvents".into());
    vars.insert("XDRSYNC_HUNTING_STORAGE_CONNECTION".into(), azurite.blob_connection_string());
    let writer = StreamingWriter::azurite(azurite.blob_port, &sim.sim.config.tenant_id);
    Fixture { sim, _azurite: azurite, vars, writer }
}

async fn ports(f: &Fixture) -> Ports {
    let s = xdrsync::app::build(config(&f.vars));
    s.store.ensure_tables().await.expect("Azurite tables");
    s
}

fn rows(table: &str, count: usize, start: OffsetDateTime, offset: usize) -> Vec<Map<String, Value>> {
    let mut seed = HuntingSeed::new(table, count, start);
    seed.offset = offset;
    seed.step = time::Duration::seconds(2);
    seed.rows()
}

/// How many times each seeded row arrived.
fn arrivals(sim: &RunningSim, table: &str) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for r in sim.sim.world().logs.get(&format!("Custom-{table}")).cloned().unwrap_or_default() {
        *out.entry(r["XdrsyncRowKey"].as_str().unwrap().to_string()).or_default() += 1;
    }
    out
}

fn assert_once(sim: &RunningSim, table: &str, seeded: &[Map<String, Value>]) {
    let got = arrivals(sim, table);
    for r in seeded {
        assert_eq!(got.get(&row_key(r)).copied().unwrap_or(0), 1, "{table}: each row exactly once");
    }
    assert_eq!(got.len(), seeded.len(), "{table}: nothing else arrived");
}

#[tokio::test]
async fn hourly_blobs_are_read_whole_then_only_their_new_bytes() {
    let f = fixture().await;
    let s = ports(&f).await;
    let procs_table = "DeviceProcessEvents";
    let hour_ago = OffsetDateTime::now_utc() - time::Duration::minutes(90);
    // Two hourly blobs of process events, one of email events.
    let mut procs = rows("DeviceProcessEvents", 2_400, hour_ago, 0);
    let mails = rows("EmailEvents", 400, hour_ago, 0);
    f.writer.append(procs_table, &procs).await.unwrap();
    f.writer.append("EmailEvents", &mails).await.unwrap();
    let line = jobs::hunting_storage(&s).await.expect("storage export runs");
    assert!(line.contains("DeviceProcessEvents 2400 rows"), "{line}");
    assert_once(&f.sim, "DeviceProcessEvents", &procs);
    assert_once(&f.sim, "EmailEvents", &mails);
    assert_eq!(sim_stat(&f.sim, "logs.undeclared_columns").await, 0);

    // The newest blob grows, ending in half a record (the writer is mid-line).
    let later = rows("DeviceProcessEvents", 300, OffsetDateTime::now_utc() - time::Duration::seconds(700), 10_000);
    f.writer.append(procs_table, &later[..299]).await.unwrap();
    let last = &later[299];
    let path = f.writer.path_for(xdrsync::domain::hunting::rows::timestamp(last).unwrap());
    let text = format!("{}\n", stream_record(procs_table, &f.sim.sim.config.tenant_id, last));
    let (head, tail) = text.as_bytes().split_at(text.len() / 2);
    f.writer.append_bytes(procs_table, &path, head).await.unwrap();
    jobs::hunting_storage(&s).await.unwrap();
    procs.extend_from_slice(&later[..299]);
    assert_once(&f.sim, "DeviceProcessEvents", &procs);
    // The rest of the line arrives: the record is read once, whole.
    f.writer.append_bytes(procs_table, &path, tail).await.unwrap();
    jobs::hunting_storage(&s).await.unwrap();
    procs.push(last.clone());
    assert_once(&f.sim, "DeviceProcessEvents", &procs);
}

#[tokio::test]
async fn blobs_growing_while_read_lose_nothing() {
    let f = Arc::new(fixture().await);
    let s = ports(&f).await;
    let table = "EmailEvents";
    let start = OffsetDateTime::now_utc() - time::Duration::minutes(30);
    let all: Vec<Map<String, Value>> = rows("EmailEvents", 2_000, start, 0);
    let writer = {
        let f = f.clone();
        let all = all.clone();
        tokio::spawn(async move {
            for batch in all.chunks(100) {
                f.writer.append(table, batch).await.unwrap();
            }
        })
    };
    // Runs while the writer appends.
    while !writer.is_finished() {
        jobs::hunting_storage(&s).await.unwrap();
    }
    writer.await.unwrap();
    jobs::hunting_storage(&s).await.unwrap();
    assert_once(&f.sim, "EmailEvents", &all);
}

#[tokio::test]
async fn a_crash_after_acceptance_resends_at_most_one_chunk_and_a_restart_resumes_at_the_offset() {
    let f = fixture().await;
    let table = "DeviceProcessEvents";
    // ~3.5 KB a record: 3,000 records are about 10 MB, three 4 MiB chunks of one blob.
    // From the start of an hour two hours ago: 33 minutes of rows, all in that hour's blob.
    let now = OffsetDateTime::now_utc();
    let hour = now.replace_time(time::Time::from_hms(now.hour(), 0, 0).unwrap()) - time::Duration::hours(2);
    let one_blob = rows("DeviceProcessEvents", 3_000, hour, 0);
    f.writer.append(table, &one_blob).await.unwrap();
    let mut first = ports(&f).await;
    first.hunting_logs = Arc::new(LoseAnswer {
        inner: first.hunting_logs.clone(),
        calls: AtomicUsize::new(0),
        lose_at: 2,
        only_tenant: None,
    });
    assert!(jobs::hunting_storage(&first).await.is_err());
    let second = ports(&f).await;
    jobs::hunting_storage(&second).await.expect("the restart completes");
    let got = arrivals(&f.sim, "DeviceProcessEvents");
    assert_eq!(got.len(), one_blob.len(), "nothing lost");
    let resent: usize = got.values().map(|n| n - 1).sum();
    let per_chunk = (4 * 1024 * 1024) / 3_000 + 1_300;
    assert!(resent > 0 && resent <= per_chunk, "re-sends stay within one chunk: {resent}");
}

#[tokio::test]
async fn rows_of_two_tenants_in_one_storage_account_keep_their_tenant() {
    let f = fixture().await;
    let s = ports(&f).await;
    // A second customer's Streaming API writes to the same account (its own `tenantId=` path);
    // the rows are the same on purpose.
    let other = "9a8b7c6d-0000-4000-8000-00000000000b";
    let other_writer = StreamingWriter::azurite(f._azurite.blob_port, other);
    let start = OffsetDateTime::now_utc() - time::Duration::minutes(40);
    let mails = rows("EmailEvents", 200, start, 0);
    f.writer.append("EmailEvents", &mails).await.unwrap();
    other_writer.append("EmailEvents", &mails).await.unwrap();
    jobs::hunting_storage(&s).await.expect("storage export runs");
    let out = f.sim.sim.world().logs.get("Custom-EmailEvents").cloned().unwrap_or_default();
    assert_eq!(out.len(), 400);
    for tenant in [f.sim.sim.config.tenant_id.as_str(), other] {
        let mine: Vec<&Value> = out.iter().filter(|r| r["DefenderTenantId"] == tenant).collect();
        assert_eq!(mine.len(), 200, "{tenant}");
        let keys: std::collections::HashSet<&str> = mine.iter().map(|r| r["XdrsyncRowKey"].as_str().unwrap()).collect();
        assert_eq!(keys.len(), 200, "{tenant}: each row once");
    }
}
