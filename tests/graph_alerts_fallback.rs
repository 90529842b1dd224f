//! One incident's alerts when `$expand=alerts` is not enough: `alerts_v2?$filter=incidentId eq …`
//! is not in Graph's documented filter list, so against a service that refuses it (the
//! simulator's `strictAlertFilter`) xdrsync falls back to documented calls and finds the same
//! alerts; against one that accepts it, the filter is used.

mod support;

use support::*;
use xdrsync::app;
use xdrsync_sim::sim::seed::SeedSpec;
use xdrsync_sim::sim::SimConfig;

async fn strict(sim: &xdrsync_sim::sim::RunningSim) {
    let r = reqwest::Client::new()
        .patch(format!("{}/_sim/options", sim.base_url()))
        .json(&serde_json::json!({"strictAlertFilter": true}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn the_incident_filter_is_used_where_the_service_accepts_it() {
    let sim = start_sim(SimConfig::demo()).await;
    let s = app::build(config(&settings(&sim, None)));
    let ids = seed(&sim, SeedSpec { count: 1, big_incidents: 1, big_alerts: 120, ..Default::default() });
    seed(&sim, SeedSpec { count: 3, ..Default::default() });
    let alerts = s.defender.list_alerts(&ids[0]).await.unwrap();
    assert_eq!(alerts.len(), 120);
    assert!(alerts.iter().all(|a| a.incident_id.as_deref() == Some(ids[0].as_str())));
    assert_eq!(sim_stat(&sim, "graph.alerts.list").await, 2, "120 alerts at 100 a page, filtered by the service");
}

#[tokio::test]
async fn a_refused_incident_filter_falls_back_to_documented_calls_with_the_same_alerts() {
    let sim = start_sim(SimConfig::demo()).await;
    let s = app::build(config(&settings(&sim, None)));
    let ids = seed(&sim, SeedSpec { count: 1, big_incidents: 1, big_alerts: 120, ..Default::default() });
    let others = seed(&sim, SeedSpec { count: 3, ..Default::default() });
    strict(&sim).await;

    let before = sim_stat(&sim, "graph.alerts.list").await;
    let alerts = s.defender.list_alerts(&ids[0]).await.expect("the fallback answers, not the 400");
    let first = sim_stat(&sim, "graph.alerts.list").await - before;
    assert_eq!(alerts.len(), 120);
    assert!(
        alerts.iter().all(|a| a.incident_id.as_deref() == Some(ids[0].as_str())),
        "other incidents' alerts left out"
    );
    let other = s.defender.list_alerts(&others[0]).await.unwrap();
    assert!(!other.is_empty() && other.iter().all(|a| a.incident_id.as_deref() == Some(others[0].as_str())));

    // The refusal is remembered: the next call goes straight to the documented listing.
    let before = sim_stat(&sim, "graph.alerts.list").await;
    let again = s.defender.list_alerts(&ids[0]).await.unwrap();
    assert_eq!(again.len(), 120);
    let second = sim_stat(&sim, "graph.alerts.list").await - before;
    assert_eq!(second, first - 1, "no second try of the refused filter ({first} calls first, {second} now)");

    // An unknown incident has no alerts (and the call still reads the list, proving the permission).
    let before = sim_stat(&sim, "graph.alerts.list").await;
    assert!(s.defender.list_alerts("999999").await.unwrap().is_empty());
    assert_eq!(sim_stat(&sim, "graph.alerts.list").await - before, 1);
}
