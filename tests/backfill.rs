//! A backfill that finishes: a first run over a month of history walks day windows, stops at its
//! time budget with the cursor saved, and the next ticks resume there, every incident enqueued
//! exactly once. (The full-size run, 30,000 incidents under a tenant budget, is the benchmark:
//! `./scripts/sim.sh demo --incidents 30000 --history-days 30 --poll-time-budget 45 …`.)

mod support;

use std::collections::HashSet;
use std::sync::Arc;

use support::*;
use xdrsync::app;
use xdrsync::domain::work::WorkItem;
use xdrsync::usecase::poll::poll_defender;
use xdrsync_sim::sim::seed::SeedSpec;
use xdrsync_sim::sim::{FaultKind, FaultRule, SimConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_of_history_is_enqueued_exactly_once_across_polls_that_stop_at_their_budget() {
    let sim = start_sim(SimConfig::demo()).await;
    let ids = seed(&sim, SeedSpec { count: 300, history_days: 30, min_alerts: 1, max_alerts: 1, ..Default::default() });
    let mut vars = settings(&sim, None);
    vars.insert("XDRSYNC_INITIAL_LOOKBACK_HOURS".into(), (24 * 31).to_string());
    vars.insert("XDRSYNC_POLL_TIME_BUDGET_SECONDS".into(), "5".into());
    let mut s = app::build(config(&vars));
    let queue = Arc::new(xdrsync_sim::fakes::MemoryQueue::new());
    s.store = Arc::new(xdrsync_sim::fakes::MemoryStore::new());
    s.queue = queue.clone();
    // Graph is slow: a whole month does not fit in one poll's budget.
    sim.sim.faults.set(vec![FaultRule {
        api: "graph".into(),
        rate: 1.0,
        kind: FaultKind::Slow { millis: 400 },
        retry_after_secs: None,
        remaining: None,
    }]);
    let first = poll_defender(&s).await.unwrap();
    assert!(first.enqueued < ids.len(), "the first poll stopped at its budget ({} enqueued)", first.enqueued);
    let mut polls = 1;
    while queue.texts(&s.config.queue_name).len() < ids.len() {
        poll_defender(&s).await.unwrap();
        polls += 1;
        assert!(polls < 20, "the backfill never finished");
    }
    // Caught up: later polls list the present only and enqueue nothing.
    poll_defender(&s).await.unwrap();
    let texts = queue.texts(&s.config.queue_name);
    let enqueued: Vec<String> = texts.iter().map(|t| WorkItem::parse(t).unwrap().incident_id).collect();
    let unique: HashSet<&String> = enqueued.iter().collect();
    assert_eq!(unique.len(), ids.len(), "every incident");
    assert_eq!(enqueued.len(), ids.len(), "exactly once");
}
