//! Native alerts on the simulator's own rule engine (docs/native-alerts.md): Defender incidents
//! → sync → the outbox → the pacer's trigger rows through the simulated Logs Ingestion (undeclared
//! columns dropped) → the NRT rules seeded from `infra/alert-rule.json` (29 single alerts and a
//! summary beyond, in both summary shapes) → attach's one query, evaluated by the simulated query
//! API operator by operator → relation PUTs on the simulated ARM. Every call goes to the simulator.

mod support;

use std::sync::{Arc, Mutex};

use support::*;
use time::{Duration, OffsetDateTime};
use xdrsync::app;
use xdrsync::domain::names::sentinel_incident_name;
use xdrsync::domain::work::{ChangeHint, WorkItem};
use xdrsync::ports::Clock;
use xdrsync::usecase::alert_outbox;
use xdrsync::usecase::attach_alerts::attach;
use xdrsync::usecase::sync::reconcile;
use xdrsync_sim::sim::alert_rule;
use xdrsync_sim::sim::seed::SeedSpec;
use xdrsync_sim::sim::{RunningSim, SimConfig, SummaryDetails};

/// The product's clock, a simulated minute per attach tick.
struct Minutes(Mutex<OffsetDateTime>);

impl Clock for Minutes {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap()
    }
}

/// Syncs `count` incidents of `alerts` alerts each, then ticks: attach (relate, pace), the rules'
/// run every `run_every` ticks (more than one: the rows of several ticks meet in one run, as after
/// an ingestion stall), a minute later. Returns the sim, the incident ids and the rows queued.
async fn run(shape: SummaryDetails, run_every: usize, count: usize, alerts: usize) -> (RunningSim, Vec<String>, usize) {
    let mut cfg = SimConfig::demo();
    cfg.options.alert_rules = 2;
    cfg.options.summary_details = shape;
    // Rules run only when the test says (`run_now`), not at every read of the alerts.
    cfg.options.alert_rule_delay_ms = 3_600_000;
    let sim = start_sim(cfg).await;
    let mut vars = settings(&sim, None);
    vars.insert("XDRSYNC_ATTACH_ALERTS".into(), "true".into());
    vars.insert("XDRSYNC_ALERT_RULES".into(), "2".into());
    vars.insert("XDRSYNC_ALERTS_ATTACH_DELAY_MINUTES".into(), "5".into());
    let ids = seed(&sim, SeedSpec { count, min_alerts: alerts, max_alerts: alerts, ..Default::default() });
    let clock = Arc::new(Minutes(Mutex::new(OffsetDateTime::now_utc())));
    let mut s = app::build(config(&vars));
    s.store = Arc::new(xdrsync_sim::fakes::MemoryStore::new());
    s.queue = Arc::new(xdrsync_sim::fakes::MemoryQueue::new());
    s.clock = clock.clone();
    for id in &ids {
        reconcile(&s, &WorkItem::reconcile(&s.config.tenant_id, id, ChangeHint::Reconcile)).await.expect("synced");
    }
    let queued = alert_outbox::load_all(&s).await.unwrap().len();
    for tick in 0..300 {
        let r = attach(&s).await.expect("an attach run");
        if r.backlog.pending + r.backlog.in_flight + r.backlog.failed == 0 {
            break;
        }
        if tick % run_every == run_every - 1 {
            alert_rule::run_now(&mut sim.sim.world());
        }
        *clock.0.lock().unwrap() += Duration::minutes(1);
    }
    let backlog = alert_outbox::backlog(&s).await.unwrap();
    assert_eq!((backlog.pending, backlog.in_flight, backlog.failed), (0, 0, 0), "outbox drained: {backlog:?}");
    for id in &ids {
        let name = sentinel_incident_name(&s.config.tenant_id, id);
        let w = sim.sim.world();
        let related = alert_rule::related_alerts(&w, &name);
        assert!(related.iter().all(|a| !a.summary), "incident {id}: a summary alert is never related");
        assert!(
            related.iter().all(|a| a.custom_detail("DefenderIncidentId").as_deref() == Some(id.as_str())),
            "incident {id}: only its own alerts"
        );
        assert_eq!(related.len(), alerts, "incident {id}: every alert (one trigger row each here) is related once");
    }
    (sim, ids, queued)
}

fn stat(sim: &RunningSim, key: &str) -> u64 {
    sim.sim.stats.snapshot().get(key).copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_simulated_rules_a_burst_is_paced_below_the_summary_and_every_alert_is_related() {
    let (sim, ids, queued) = run(SummaryDetails::FirstRow, 1, 20, 10).await;
    assert_eq!(queued, 200, "one trigger row per alert");
    assert_eq!(stat(&sim, "rule.summary_alerts"), 0, "at most 28 rows per rule per run");
    assert_eq!(stat(&sim, "arm.relations.put"), 200, "one PUT per alert");
    assert_eq!(stat(&sim, "arm.relations.list"), 0, "no relation listing");
    let _ = ids;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_simulated_rules_summarised_rows_are_resent_and_related_under_both_summary_shapes() {
    for shape in [SummaryDetails::AllValues, SummaryDetails::FirstRow] {
        let (sim, _ids, queued) = run(shape, 3, 12, 10).await;
        assert!(stat(&sim, "rule.summary_alerts") > 0, "{shape:?}: three ticks in one run summarise");
        assert!(stat(&sim, "arm.relations.put") as usize >= queued, "{shape:?}");
    }
}
