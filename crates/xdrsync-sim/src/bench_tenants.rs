//! `xdrsync-sim bench tenants`: how the poller scales in Defender tenants (docs/tenants.md).
//! For each tenant count, the real `xdrsync run` polls that many simulated tenants
//! (behind one simulator address, each with its own Graph budget) of `incidents` incidents each
//! into one workspace, with Azurite storage. Reported: the first tick (lists and enqueues every
//! incident of every tenant), the time until every incident is mirrored, quiet ticks afterwards
//! (p50 and max), and the process's peak resident memory. Tick durations come from xdrsync's
//! own health details (`poller`), measured around the whole tick.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::azurite::{azurite_bin, Azurite};
use crate::demo::{percentile, ChildGuard, DEMO_WEBHOOK_KEY};
use crate::sim::seed::SeedSpec;
use crate::sim::tenants::{spawn_tenants, tenant_configs};
use crate::sim::SimConfig;
use xdrsync_core::domain::names::sentinel_incident_name;

#[derive(Debug, Clone)]
pub struct TenantBenchOptions {
    pub tenants: Vec<usize>,
    pub incidents: usize,
    pub poll_seconds: u32,
    /// xdrsync's `XDRSYNC_GRAPH_CALLS_PER_MINUTE` (per tenant).
    pub graph_calls_per_minute: u32,
    /// Each simulated tenant's own Graph budget (429 beyond it).
    pub tenant_graph_calls_per_minute: u32,
    /// xdrsync's `XDRSYNC_ARM_WRITES_PER_SECOND` (one budget for the workspace).
    pub arm_writes_per_second: u32,
    pub workers: usize,
    pub quiet_ticks: usize,
    pub repo_root: PathBuf,
    pub xdrsync_bin: PathBuf,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantRun {
    pub tenants: usize,
    pub incidents: usize,
    pub first_tick_ms: Option<u64>,
    pub all_mirrored_s: f64,
    pub quiet_tick_ms_p50: Option<i64>,
    pub quiet_tick_ms_max: Option<i64>,
    pub peak_memory_mib: Option<f64>,
    pub graph_calls: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantBenchReport {
    pub incidents_per_tenant: usize,
    pub poll_seconds: u32,
    pub graph_calls_per_minute_per_tenant: u32,
    pub tenant_graph_calls_per_minute: u32,
    pub arm_writes_per_second: u32,
    pub workers: usize,
    pub runs: Vec<TenantRun>,
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

async fn poller(http: &reqwest::Client, url: &str) -> Option<(u64, u64, u64)> {
    let v: Value = http.get(url).header("x-xdrsync-key", DEMO_WEBHOOK_KEY).send().await.ok()?.json().await.ok()?;
    let p = &v["details"]["poller"];
    Some((p["ticks"].as_u64()?, p["lastTickMs"].as_u64()?, v["details"]["calls"]["graph"].as_u64().unwrap_or(0)))
}

fn peak_memory_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib / 1024.0)
}

async fn run_one(opts: &TenantBenchOptions, n: usize) -> anyhow::Result<TenantRun> {
    let azurite = Azurite::start(&azurite_bin(&opts.repo_root))?;
    let mut primary = SimConfig::demo();
    primary.options.graph_calls_per_minute = Some(opts.tenant_graph_calls_per_minute).filter(|b| *b > 0);
    let tenants = tenant_configs(&primary, n);
    let ids: Vec<String> = tenants.iter().map(|t| t.tenant_id.clone()).collect();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sims = spawn_tenants(listener, primary.clone(), tenants, Vec::new()).await?;
    let mut incident_ids = Vec::new();
    for t in &ids {
        let sim = sims.sims.tenant(t).ok_or_else(|| anyhow::anyhow!("no tenant {t}"))?;
        let spec = SeedSpec { count: opts.incidents, max_alerts: 2, ..Default::default() };
        incident_ids.push(crate::sim::seed::seed(&mut sim.world(), t, &spec));
    }
    let http_port = free_port()?;
    let list: Vec<String> = ids.iter().enumerate().map(|(i, t)| format!("{t}=Tenant {}", i + 1)).collect();
    let mut cmd = Command::new(&opts.xdrsync_bin);
    cmd.arg("run")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into()))
        .env("AzureWebJobsStorage", azurite.connection_string())
        .env("XDRSYNC_HTTP_PORT", http_port.to_string())
        .env("XDRSYNC_POLL_SCHEDULE", format!("*/{} * * * * *", opts.poll_seconds))
        .env("XDRSYNC_WEBHOOK_KEY", DEMO_WEBHOOK_KEY)
        .env("XDRSYNC_GRAPH_CALLS_PER_MINUTE", opts.graph_calls_per_minute.to_string())
        .env("XDRSYNC_ARM_WRITES_PER_SECOND", opts.arm_writes_per_second.to_string())
        .env("XDRSYNC_WORKERS", opts.workers.to_string())
        .env("XDRSYNC_DEFENDER_TENANTS", list.join(","))
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    for (k, v) in primary.settings_for(sims.addr) {
        cmd.env(k, v);
    }
    let child = ChildGuard::new(cmd.spawn()?, None);
    let pid = child.id();
    let http = reqwest::Client::new();
    let health = format!("http://127.0.0.1:{http_port}/api/health");
    let started = Instant::now();
    while http.get(&health).send().await.is_err() {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(60), "xdrsync did not start within 60 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // First tick: every tenant's incidents listed and enqueued.
    let t0 = Instant::now();
    let first_tick_ms = loop {
        if let Some((ticks, last, _)) = poller(&http, &health).await {
            if ticks >= 1 {
                break Some(last);
            }
        }
        anyhow::ensure!(t0.elapsed() < Duration::from_secs(1800), "no poller tick within 1800 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let names: Vec<uuid::Uuid> = ids
        .iter()
        .zip(&incident_ids)
        .flat_map(|(t, list)| list.iter().map(move |id| sentinel_incident_name(t, id)))
        .collect();
    let timeout = Duration::from_secs(1800);
    while !names.iter().all(|n| sims.sims.primary.world().sentinel.contains_key(n)) {
        anyhow::ensure!(t0.elapsed() < timeout, "incidents were not all mirrored within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let all_mirrored_s = t0.elapsed().as_secs_f64();
    // Quiet ticks: nothing changed, every tenant listed once per tick.
    let mut quiet = Vec::new();
    let mut seen = poller(&http, &health).await.map(|p| p.0).unwrap_or(0);
    let q0 = Instant::now();
    while quiet.len() < opts.quiet_ticks {
        anyhow::ensure!(q0.elapsed() < Duration::from_secs(600), "quiet ticks did not come");
        if let Some((ticks, last, _)) = poller(&http, &health).await {
            if ticks > seen {
                seen = ticks;
                quiet.push(last as i64);
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    quiet.sort_unstable();
    let graph_calls = poller(&http, &health).await.map(|p| p.2).unwrap_or(0);
    let peak_memory_mib = peak_memory_mib(pid);
    drop(child);
    drop(azurite);
    sims.task.abort();
    Ok(TenantRun {
        tenants: n,
        incidents: n * opts.incidents,
        first_tick_ms,
        all_mirrored_s,
        quiet_tick_ms_p50: percentile(&quiet, 0.5),
        quiet_tick_ms_max: quiet.last().copied(),
        peak_memory_mib,
        graph_calls,
    })
}

pub async fn run(opts: TenantBenchOptions) -> anyhow::Result<TenantBenchReport> {
    let mut runs = Vec::new();
    for &n in &opts.tenants {
        eprintln!("bench tenants: {n} tenant(s) × {} incidents…", opts.incidents);
        let run = run_one(&opts, n).await?;
        // Each figure as soon as it is measured, so a later failure loses nothing.
        eprintln!("bench tenants: {}", serde_json::to_string(&run).unwrap_or_default());
        runs.push(run);
    }
    Ok(TenantBenchReport {
        incidents_per_tenant: opts.incidents,
        poll_seconds: opts.poll_seconds,
        graph_calls_per_minute_per_tenant: opts.graph_calls_per_minute,
        tenant_graph_calls_per_minute: opts.tenant_graph_calls_per_minute,
        arm_writes_per_second: opts.arm_writes_per_second,
        workers: opts.workers,
        runs,
    })
}

pub fn print(r: &TenantBenchReport) {
    println!(
        "{} incidents per tenant; poll every {} s; Graph budget {}/min per tenant (simulated tenants allow {}/min each); ARM writes {}/s; {} workers",
        r.incidents_per_tenant,
        r.poll_seconds,
        r.graph_calls_per_minute_per_tenant,
        r.tenant_graph_calls_per_minute,
        r.arm_writes_per_second,
        r.workers
    );
    println!("| tenants | incidents | first tick | all mirrored | quiet tick p50 / max | peak memory | Graph calls |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    let ms = |v: Option<i64>| v.map_or("-".to_string(), |v| format!("{v} ms"));
    for run in &r.runs {
        println!(
            "| {} | {} | {} | {:.1} s | {} / {} | {} | {} |",
            run.tenants,
            run.incidents,
            ms(run.first_tick_ms.map(|v| v as i64)),
            run.all_mirrored_s,
            ms(run.quiet_tick_ms_p50),
            ms(run.quiet_tick_ms_max),
            run.peak_memory_mib.map_or("-".into(), |m| format!("{m:.0} MiB")),
            run.graph_calls
        );
    }
}
