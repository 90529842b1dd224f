//! `xdrsync-sim bench`: the two-way figures (docs/figures.md), measured on the real binary against the
//! simulator and Azurite. Sentinel edit → Defender PATCH latency, p50/p95, once with Sentinel
//! automation calling the webhook and once with the sweep alone; writes per edit; webhook
//! deliveries per edit. Each edit assigns an owner in Sentinel. Latency uses the simulator's clock at both ends: the Sentinel
//! incident's `lastModifiedTimeUtc` after the edit and the Defender `lastUpdateDateTime` our
//! PATCH produced.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;

use crate::demo::{percentile, Stack, DEMO_WEBHOOK_KEY};
use crate::sim::seed::SeedSpec;
use crate::sim::Automation;
use xdrsync_core::domain::names::sentinel_incident_name;

#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub edits: usize,
    pub poll_seconds: u32,
    pub repo_root: std::path::PathBuf,
    pub xdrsync_bin: std::path::PathBuf,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseReport {
    pub path: &'static str,
    pub edits: usize,
    pub delivered: usize,
    pub latency_ms_p50: Option<i64>,
    pub latency_ms_p95: Option<i64>,
    pub latency_ms_max: Option<i64>,
    pub writes_per_edit: f64,
    pub webhook_deliveries_per_edit: f64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BenchReport {
    pub poll_seconds: u32,
    pub webhook: PhaseReport,
    pub sweep_only: PhaseReport,
}

/// Each edit assigns the incident to this analyst in Sentinel.
const OWNER: &str = "carol@contoso.com";

const WRITES: [&str; 4] =
    ["arm.incidents.put", "arm.comments.put", "graph.incidents.patch", "graph.incidents.comments.post"];

fn total(stack: &Stack, keys: &[&str]) -> u64 {
    let s = stack.sim.sim.stats.snapshot();
    keys.iter().map(|k| s.get(*k).copied().unwrap_or(0)).sum()
}

async fn phase(stack: &Stack, ids: &[String], path: &'static str, settle: Duration) -> anyhow::Result<PhaseReport> {
    let tenant = stack.sim.sim.config.tenant_id.clone();
    let writes_before = total(stack, &WRITES);
    let deliveries_before = total(stack, &["automation.deliveries"]);
    let mut edited_at = Vec::new();
    for id in ids {
        let name = sentinel_incident_name(&tenant, id);
        let r = stack
            .http
            .post(format!("{}/_sim/sentinel/incidents/{name}/edit", stack.sim.base_url()))
            .json(&json!({"ownerUpn": OWNER}))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "edit of {name} failed: {}", r.status());
        let at = stack.sim.sim.world().sentinel[&name].read_only.last_modified_time_utc;
        edited_at.push(at);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
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
    tokio::time::sleep(settle).await;
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
    Ok(PhaseReport {
        path,
        edits: ids.len(),
        delivered: latencies.len(),
        latency_ms_p50: percentile(&latencies, 0.5),
        latency_ms_p95: percentile(&latencies, 0.95),
        latency_ms_max: latencies.last().copied(),
        writes_per_edit: (total(stack, &WRITES) - writes_before) as f64 / n,
        webhook_deliveries_per_edit: (total(stack, &["automation.deliveries"]) - deliveries_before) as f64 / n,
    })
}

pub async fn run(opts: BenchOptions) -> anyhow::Result<BenchReport> {
    let stack = Stack::start(
        crate::demo::ChildMode::Run,
        &opts.repo_root,
        &opts.xdrsync_bin,
        opts.poll_seconds,
        true,
        &crate::demo::Budgets::default(),
        &[],
        None,
    )
    .await?;
    let spec = SeedSpec { count: opts.edits * 2, seed: 9, max_alerts: 2, ..Default::default() };
    let ids = stack.seed_and_mirror(spec, Duration::from_secs(120)).await?;
    // Let the first syncs settle so only the edits are measured.
    tokio::time::sleep(Duration::from_secs(u64::from(opts.poll_seconds) * 2)).await;
    let settle = Duration::from_secs(u64::from(opts.poll_seconds) * 2 + 1);

    *stack.sim.sim.automation.lock().unwrap_or_else(|p| p.into_inner()) =
        Some(Automation { url: stack.webhook_url(), key: DEMO_WEBHOOK_KEY.into(), delay_ms: 200 });
    let webhook = phase(&stack, &ids[..opts.edits], "webhook", settle).await?;
    *stack.sim.sim.automation.lock().unwrap_or_else(|p| p.into_inner()) = None;
    let sweep_only = phase(&stack, &ids[opts.edits..], "sweep only", settle).await?;
    Ok(BenchReport { poll_seconds: opts.poll_seconds, webhook, sweep_only })
}

pub fn print(r: &BenchReport) {
    let ms = |v: Option<i64>| v.map(|v| format!("{:.2} s", v as f64 / 1000.0)).unwrap_or_else(|| "n/a".into());
    println!("xdrsync two-way benchmark (Sentinel edit → Defender PATCH; poll every {} s)", r.poll_seconds);
    for p in [&r.webhook, &r.sweep_only] {
        println!(
            "  {:<11} delivered {}/{}  p50 {}  p95 {}  max {}  writes/edit {:.2}  webhook deliveries/edit {:.2}",
            p.path,
            p.delivered,
            p.edits,
            ms(p.latency_ms_p50),
            ms(p.latency_ms_p95),
            ms(p.latency_ms_max),
            p.writes_per_edit,
            p.webhook_deliveries_per_edit
        );
    }
}
