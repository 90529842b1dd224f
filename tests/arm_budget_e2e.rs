//! The ARM write budget as wired by `app::build`, against the simulator's ARM (its per-principal
//! buckets on): a burst of mirror creations is not delayed behind alert-relation PUTs that were
//! already waiting for the budget, and every relation still lands.

mod support;

use std::time::{Duration, Instant};

use support::*;
use uuid::Uuid;
use xdrsync::app;
use xdrsync::domain::sentinel::*;
use xdrsync_sim::sim::SimConfig;

fn writable(title: &str) -> SentinelWritable {
    SentinelWritable {
        title: title.into(),
        description: None,
        severity: SentinelSeverity::Medium,
        status: SentinelStatus::New,
        classification: None,
        classification_reason: None,
        classification_comment: None,
        owner: None,
        labels: vec![],
        first_activity_time_utc: None,
        last_activity_time_utc: None,
    }
}

#[tokio::test]
async fn mirror_creations_go_before_relation_puts_waiting_for_the_write_budget() {
    let mut sim_config = SimConfig::demo();
    sim_config.options.arm_limits = true;
    let sim = start_sim(sim_config).await;
    let mut vars = settings(&sim, None);
    // A small budget so the test is short: 30 writes at once, 10 a second, 10 kept for mirrors.
    vars.insert("XDRSYNC_ARM_WRITE_BURST".into(), "30".into());
    vars.insert("XDRSYNC_ARM_WRITES_PER_SECOND".into(), "10".into());
    let s = app::build(config(&vars));

    let target = Uuid::new_v4();
    s.sentinel.put_incident(&target, &SentinelIncidentBody { etag: None, properties: writable("t") }).await.unwrap();
    let related = format!("{}/bookmarks/", sim.sim.sentinel_base());
    let relations: Vec<_> = (0..60)
        .map(|_| {
            let (sentinel, related) = (s.sentinel.clone(), format!("{related}{}", Uuid::new_v4()));
            tokio::spawn(async move {
                sentinel.put_relation(&target, &Uuid::new_v4(), &related).await.unwrap();
                Instant::now()
            })
        })
        .collect();
    // The relations spend the budget down to its reserve, then wait for it.
    eventually(10, "20 relation PUTs sent", || {
        sim.sim.stats.snapshot().get("arm.relations.put").copied().unwrap_or(0) >= 20
    })
    .await;

    let start = Instant::now();
    let mirrors: Vec<_> = (0..20)
        .map(|i| {
            let sentinel = s.sentinel.clone();
            tokio::spawn(async move {
                let body = SentinelIncidentBody { etag: None, properties: writable(&format!("mirror {i}")) };
                sentinel.put_incident(&Uuid::new_v4(), &body).await.unwrap();
                Instant::now()
            })
        })
        .collect();
    let mut mirrors_done = start;
    for m in mirrors {
        mirrors_done = mirrors_done.max(m.await.unwrap());
    }
    // 10 from the reserve at once, 10 at the refill: about 1 s. Queued behind the 40 waiting
    // relations they would need 5 s.
    assert!(mirrors_done - start < Duration::from_millis(2500), "mirrors took {:?}", mirrors_done - start);

    let mut relations_done = start;
    for r in relations {
        relations_done = relations_done.max(r.await.unwrap());
    }
    assert!(relations_done > mirrors_done, "the relations waited for the mirrors");
    assert_eq!(sim.sim.world().sentinel[&target].relations.len(), 60, "every relation landed");
    assert_eq!(sim_stat(&sim, "arm.throttled").await, 0, "within ARM's bucket: no 429");
}
