//! Each advanced-hunting source end to end on the real binary (the benchmark's code path at a
//! small volume): the query source and the storage source under `xdrsync run`, the Event Hub
//! source through `xdrsync serve` invoked as the Functions host invokes it. Every row must arrive
//! exactly once; the figures of README come from the same code at 60,000 rows.

use std::time::Duration;

use xdrsync_sim::bench_hunting::{run, HuntingBenchOptions, HuntingSource};

async fn bench(source: HuntingSource) {
    let opts = HuntingBenchOptions {
        source,
        process_rows: 2_000,
        email_rows: 500,
        page_rows: 700,
        timeout: Duration::from_secs(120),
        repo_root: std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")),
        xdrsync_bin: std::path::PathBuf::from(env!("CARGO_BIN_EXE_xdrsync")),
    };
    let r = run(opts).await.expect("the benchmark runs");
    assert_eq!(r.rows_seeded, 2_500);
    assert_eq!((r.rows_arrived, r.distinct_rows_arrived), (2_500, 2_500), "{source:?}: every row exactly once");
    assert!(r.ok);
    assert!(r.ingestion_calls >= 2, "both tables were sent");
    if source == HuntingSource::Query {
        assert!(r.hunting_queries >= 4, "700-row pages: at least three queries for 2,000 rows, one for 500");
    }
}

#[tokio::test]
async fn the_query_source_exports_every_row_once_from_the_binary() {
    bench(HuntingSource::Query).await;
}

#[tokio::test]
async fn the_storage_source_exports_growing_blobs_once_from_the_binary() {
    bench(HuntingSource::Storage).await;
}

#[tokio::test]
async fn the_event_hub_source_exports_every_invocation_once_through_the_custom_handler() {
    bench(HuntingSource::EventHub).await;
}
