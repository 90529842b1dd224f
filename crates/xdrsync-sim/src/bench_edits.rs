//! `xdrsync-sim bench edits`: the cost of two-way sync under the default budgets (docs/figures.md).
//! N Sentinel edits at once (each assigns an owner and raises the severity), delivered by the
//! simulated automation rule to xdrsync's webhook; reports the latency from the edit to the
//! Defender PATCH (p50/p95, the simulator's clock at both ends), and the Graph and ARM calls the
//! edits cost, per edit and per kind, with the budgets enforced on both sides.
//!
//! Calls are counted by the simulator from the edits until every edit reached Defender and the
//! pollers ran twice more (so the echo of our own PATCH is counted too). List pages of the poll
//! and the sweep are shared by every incident and would be made without the edits; they are
//! reported apart from the per-incident calls.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use crate::demo::{percentile, Budgets, Stack, DEMO_WEBHOOK_KEY};
use crate::sim::seed::SeedSpec;
use crate::sim::Automation;
use xdrsync_core::domain::names::sentinel_incident_name;

#[derive(Debug, Clone)]
pub struct EditsBenchOptions {
    pub edits: usize,
    pub poll_seconds: u32,
    pub budgets: Budgets,
    pub repo_root: std::path::PathBuf,
    pub xdrsync_bin: std::path::PathBuf,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EditsBenchReport {
    pub edits: usize,
    pub poll_seconds: u32,
    /// Edits that reached Defender.
    pub delivered: usize,
    pub latency_ms_p50: Option<i64>,
    pub latency_ms_p95: Option<i64>,
    pub latency_ms_max: Option<i64>,
    /// Graph reads of one incident (`GET incidents/{id}`, its alerts, users), per edit.
    pub graph_reads_per_edit: f64,
    /// Graph `PATCH incidents/{id}` per edit.
    pub graph_patches_per_edit: f64,
    /// ARM calls about one incident (not the sweep's list pages), per edit.
    pub arm_calls_per_edit: f64,
    /// Every simulated call counted in the window, per edit, by kind (list pages included).
    pub calls_per_edit: BTreeMap<String, f64>,
    pub webhook_deliveries_per_edit: f64,
    pub graph_throttled: u64,
    pub arm_throttled: u64,
    pub budgets: Budgets,
}

/// Each edit assigns the incident to this analyst in Sentinel.
const OWNER: &str = "carol@contoso.com";

/// Kinds counted per incident: list pages (`*.incidents.list`) are the poll's and the sweep's.
const GRAPH_READS: [&str; 5] =
    ["graph.incidents.get", "graph.alerts.list", "graph.alerts.get", "graph.users.get", "graph.users.list"];
const ARM_PER_INCIDENT: [&str; 10] = [
    "arm.incidents.get",
    "arm.incidents.notfound",
    "arm.incidents.put",
    "arm.comments.get",
    "arm.comments.list",
    "arm.comments.put",
    "arm.relations.list",
    "arm.relations.put",
    "arm.relations.delete",
    "arm.incidents.alerts",
];

fn delta(after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after.iter().map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0))).filter(|(_, v)| *v > 0).collect()
}

pub async fn run(opts: EditsBenchOptions) -> anyhow::Result<EditsBenchReport> {
    let stack = Stack::start(
        crate::demo::ChildMode::Run,
        &opts.repo_root,
        &opts.xdrsync_bin,
        opts.poll_seconds,
        true,
        &opts.budgets,
        &[],
        None,
    )
    .await?;
    let spec = SeedSpec { count: opts.edits, seed: 11, max_alerts: 2, ..Default::default() };
    let ids = stack.seed_and_mirror(spec, Duration::from_secs(180)).await?;
    // Let the first syncs (and their echoes) settle so only the edits are measured.
    tokio::time::sleep(Duration::from_secs(u64::from(opts.poll_seconds) * 3 + 1)).await;
    *stack.sim.sim.automation.lock().unwrap_or_else(|p| p.into_inner()) =
        Some(Automation { url: stack.webhook_url(), key: DEMO_WEBHOOK_KEY.into(), delay_ms: 200 });

    let tenant = stack.sim.sim.config.tenant_id.clone();
    let before = stack.sim.sim.stats.snapshot();
    let edits = ids.iter().map(|id| {
        let name = sentinel_incident_name(&tenant, id);
        let url = format!("{}/_sim/sentinel/incidents/{name}/edit", stack.sim.base_url());
        let http = stack.http.clone();
        async move {
            let r = http.post(url).json(&json!({"ownerUpn": OWNER, "severity": "High"})).send().await?;
            anyhow::ensure!(r.status().is_success(), "edit of {name} failed: {}", r.status());
            Ok(name)
        }
    });
    let names = futures::future::try_join_all(edits).await?;
    let edited_at: Vec<_> = {
        let w = stack.sim.sim.world();
        names.iter().map(|n| w.sentinel[n].read_only.last_modified_time_utc).collect()
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let done = {
            let w = stack.sim.sim.world();
            ids.iter().filter(|id| w.incident(id).is_some_and(|d| d.assigned_to.as_deref() == Some(OWNER))).count()
        };
        if done == ids.len() || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Two more polls and sweeps: whatever the edits still cause (our PATCH's echo) is counted.
    tokio::time::sleep(Duration::from_secs(u64::from(opts.poll_seconds) * 2 + 1)).await;
    let calls = delta(&stack.sim.sim.stats.snapshot(), &before);

    let mut latencies: Vec<i64> = {
        let w = stack.sim.sim.world();
        ids.iter()
            .zip(&edited_at)
            .filter_map(|(id, at)| {
                let d = w.incident(id)?;
                (d.assigned_to.as_deref() == Some(OWNER))
                    .then(|| (d.last_update_date_time - *at).whole_milliseconds() as i64)
            })
            .collect()
    };
    latencies.sort();
    let n = ids.len().max(1) as f64;
    let sum = |keys: &[&str]| keys.iter().map(|k| calls.get(*k).copied().unwrap_or(0)).sum::<u64>() as f64 / n;
    Ok(EditsBenchReport {
        edits: ids.len(),
        poll_seconds: opts.poll_seconds,
        delivered: latencies.len(),
        latency_ms_p50: percentile(&latencies, 0.5),
        latency_ms_p95: percentile(&latencies, 0.95),
        latency_ms_max: latencies.last().copied(),
        graph_reads_per_edit: sum(&GRAPH_READS),
        graph_patches_per_edit: sum(&["graph.incidents.patch"]),
        arm_calls_per_edit: sum(&ARM_PER_INCIDENT),
        calls_per_edit: calls.iter().map(|(k, v)| (k.clone(), *v as f64 / n)).collect(),
        webhook_deliveries_per_edit: sum(&["automation.deliveries"]),
        graph_throttled: calls.get("graph.throttled").copied().unwrap_or(0),
        arm_throttled: calls.get("arm.throttled").copied().unwrap_or(0),
        budgets: opts.budgets,
    })
}

pub fn print(r: &EditsBenchReport) {
    let ms = |v: Option<i64>| v.map(|v| format!("{:.2} s", v as f64 / 1000.0)).unwrap_or_else(|| "n/a".into());
    println!("xdrsync two-way cost: {} Sentinel edits at once, webhook on, poll every {} s", r.edits, r.poll_seconds);
    println!("  budgets enforced     {}", r.budgets.describe());
    println!(
        "  edit → Defender      delivered {}/{}  p50 {}  p95 {}  max {}",
        r.delivered,
        r.edits,
        ms(r.latency_ms_p50),
        ms(r.latency_ms_p95),
        ms(r.latency_ms_max)
    );
    println!(
        "  per edit             Graph reads {:.2}, Graph PATCH {:.2}, ARM (this incident) {:.2}, webhook deliveries {:.2}",
        r.graph_reads_per_edit, r.graph_patches_per_edit, r.arm_calls_per_edit, r.webhook_deliveries_per_edit
    );
    println!("  429s received        Graph {}, ARM {}", r.graph_throttled, r.arm_throttled);
    println!("  every call per edit  {}", crate::call_kinds::per_kind(&r.calls_per_edit));
}
