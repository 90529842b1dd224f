//! `xdrsync-sim bench soak`: crash and outage proof on the real binary. Three instances of one
//! deployment share one Azurite storage account (standalone `xdrsync run`, or `xdrsync serve`
//! behind the Functions host emulator), while new incidents, Defender updates and Sentinel edits
//! flow through the simulator:
//!
//! - `--scenario kills`: a random instance is killed with SIGKILL and started again, N times
//!   over the run;
//! - `--scenario storage-outage`: Azurite is paused (SIGSTOP) and resumed (SIGCONT); meanwhile
//!   every instance must stay up and its health answer `unhealthy` within 2 s.
//!
//! Then the changes settle and the report counts duplicates (two mirrors of one incident, a
//! comment copied twice), lost changes (not reflected on the other side at the end), latency
//! from change to sync (all, and around restarts), and the simulator's call counts.

mod fleet;
mod host_queue;
mod report;
mod workload;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::demo::{Budgets, ChildMode, Stack};
use crate::sim::seed::SeedSpec;
pub use fleet::SoakMode;
use fleet::{Fleet, Probe};
pub use report::{print, ChangeRef, KillRecord, Latency, OutageReport, SoakReport};
use workload::{copies, extra_mirrors, is_lost, Expect, Workload};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Scenario {
    /// SIGKILL a random instance and start it again, `--kills` times.
    Kills,
    /// Pause Azurite for `--outage-seconds`.
    StorageOutage,
}

#[derive(Debug, Clone)]
pub struct SoakOptions {
    pub mode: SoakMode,
    pub scenario: Scenario,
    pub instances: usize,
    pub kills: usize,
    pub duration: Duration,
    pub outage: Duration,
    pub changes_per_minute: u32,
    pub initial_incidents: usize,
    pub poll_seconds: u32,
    /// How long changes may take to show after the run before they count as lost.
    pub settle: Duration,
    pub seed: u64,
    pub budgets: Budgets,
    pub repo_root: PathBuf,
    pub xdrsync_bin: PathBuf,
    /// Print progress to standard error.
    pub progress: bool,
    /// Let the instances log to standard error (`RUST_LOG`) instead of a file removed at the end.
    pub show_logs: bool,
}

impl SoakOptions {
    /// The full-size run of the proof (20 SIGKILLs in 5 minutes, or a 45 s pause, three
    /// instances, a change a second), quiet; tests scale it down.
    pub fn full(mode: SoakMode, scenario: Scenario, repo_root: PathBuf, xdrsync_bin: PathBuf) -> Self {
        Self {
            mode,
            scenario,
            instances: 3,
            kills: 20,
            duration: Duration::from_secs(300),
            outage: Duration::from_secs(45),
            changes_per_minute: 60,
            initial_incidents: 10,
            poll_seconds: 2,
            settle: Duration::from_secs(180),
            seed: 17,
            budgets: Budgets::default(),
            repo_root,
            xdrsync_bin,
            progress: false,
            show_logs: false,
        }
    }
}

/// Changes made this long after a kill count as "around the restart".
const RESTART_WINDOW: Duration = Duration::from_secs(10);
const HEALTH_BOUND: Duration = Duration::from_millis(2_500);
const HEALTH_GRACE: Duration = Duration::from_secs(10);

/// Sends `signal` (`STOP`, `CONT`) to a process.
fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status()?;
    anyhow::ensure!(status.success(), "kill -{signal} {pid} failed");
    Ok(())
}

/// Azurite paused while this lives (resumed on drop, also on an error).
struct Paused(u32);

impl Drop for Paused {
    fn drop(&mut self) {
        let _ = signal(self.0, "CONT");
    }
}

/// When the kills happen: evenly over the run, each moved by up to a quarter of the gap.
fn kill_times(rng: &mut StdRng, kills: usize, duration: Duration) -> Vec<Duration> {
    let gap = duration.as_secs_f64() / kills.max(1) as f64;
    (0..kills).map(|k| Duration::from_secs_f64(gap * (k as f64 + 0.5 + rng.gen_range(-0.25..0.25)))).collect()
}

pub async fn run(opts: SoakOptions) -> anyhow::Result<SoakReport> {
    let say = |s: String| {
        if opts.progress {
            eprintln!("{s}");
        }
    };
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let stack = Stack::start(
        ChildMode::Serve,
        &opts.repo_root,
        &opts.xdrsync_bin,
        opts.poll_seconds,
        !opts.show_logs,
        &opts.budgets,
        &[],
        None,
    )
    .await?;
    let poll = Duration::from_secs(u64::from(opts.poll_seconds));
    let mut fleet = Fleet::start(&stack, opts.mode, opts.instances, poll).await?;
    say(format!("{} {:?} instances up; mirroring {} incidents…", fleet.count(), opts.mode, opts.initial_incidents));
    let tenant = stack.sim.sim.config.tenant_id.clone();
    let spec = SeedSpec { count: opts.initial_incidents, seed: opts.seed, max_alerts: 2, ..Default::default() };
    let ids = stack.seed_and_mirror(spec, Duration::from_secs(180)).await?;
    let mut work = Workload::new(tenant.clone(), StdRng::seed_from_u64(opts.seed ^ 0x5eed));
    work.adopt(&ids);
    let adopted = work.changes.len();
    let stats_before = stack.sim.sim.stats.snapshot();

    let duration = match opts.scenario {
        Scenario::Kills => opts.duration,
        Scenario::StorageOutage => opts.duration.max(opts.outage + Duration::from_secs(20)),
    };
    let mut kills_due = match opts.scenario {
        Scenario::Kills => kill_times(&mut rng, opts.kills, duration),
        Scenario::StorageOutage => Vec::new(),
    };
    kills_due.reverse();
    let gap = Duration::from_secs_f64(60.0 / f64::from(opts.changes_per_minute.max(1)));
    let outage_at = Duration::from_secs(5);
    let mut outage = (opts.scenario == Scenario::StorageOutage).then(OutageReport::default);
    let mut paused: Option<(Paused, Instant)> = None;
    let mut resumed_at: Option<Instant> = None;
    let mut kill_log = Vec::new();
    let mut kill_instants = Vec::new();
    let started = Instant::now();
    let mut next_change = started;
    let mut next_probe = started;
    while started.elapsed() < duration {
        let now = Instant::now();
        if now >= next_change {
            work.step(&stack).await?;
            next_change += gap;
        }
        if kills_due.last().is_some_and(|t| started.elapsed() >= *t) {
            kills_due.pop();
            let i = rng.gen_range(0..fleet.count());
            let pending_at_kill = work.pending();
            kill_instants.push(Instant::now());
            let restart = fleet.kill_and_restart(&stack, i).await?;
            say(format!("kill -9 #{} (instance {i}, {pending_at_kill} changes pending)", kill_log.len() + 1));
            kill_log.push(KillRecord {
                at_seconds: started.elapsed().as_secs_f64(),
                instance: i,
                pending_at_kill,
                restart_ms: restart.as_millis() as u64,
            });
        }
        if let Some(report) = outage.as_mut() {
            if paused.is_none() && resumed_at.is_none() && started.elapsed() >= outage_at {
                signal(stack.azurite_pid(), "STOP")?;
                paused = Some((Paused(stack.azurite_pid()), Instant::now()));
                say(format!("storage paused for {} s", opts.outage.as_secs()));
            }
            if let Some((_, since)) = &paused {
                let since = *since;
                if since.elapsed() >= opts.outage {
                    paused = None;
                    resumed_at = Some(Instant::now());
                    report.paused_seconds = since.elapsed().as_secs_f64();
                    say("storage resumed".into());
                } else if Instant::now() >= next_probe {
                    next_probe = Instant::now() + Duration::from_secs(2);
                    probe_all(&fleet, &stack.http, since.elapsed(), report).await;
                }
            }
        }
        work.observe(&stack.sim.sim.world());
        fleet.restart_crashed(&stack).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(paused);
    if let Some(report) = outage.as_mut() {
        report.processes_stayed_up = fleet.unexpected_exits.is_empty() && fleet.all_running();
        resumed_at.get_or_insert_with(Instant::now);
    }
    say(format!("changes stop; waiting up to {} s for {} pending…", opts.settle.as_secs(), work.pending()));
    let settle_from = Instant::now();
    while work.pending() > 0 && settle_from.elapsed() < opts.settle {
        tokio::time::sleep(Duration::from_millis(250)).await;
        work.observe(&stack.sim.sim.world());
        fleet.restart_crashed(&stack).await?;
    }
    if let (Some(report), Some(at)) = (outage.as_mut(), resumed_at) {
        report.converged_seconds_after_resume = (work.pending() == 0).then(|| at.elapsed().as_secs_f64());
    }
    // Quiet polls: a late duplicate (a message redelivered after a crash) would show now.
    tokio::time::sleep(poll * 3).await;

    let w = stack.sim.sim.world();
    let made = &work.changes[adopted..];
    let (mut duplicated, mut lost) = (Vec::new(), Vec::new());
    for (i, c) in work.changes.iter().enumerate() {
        let copies = copies(&w, &tenant, &c.incident, &c.expect);
        let r = || ChangeRef {
            kind: c.expect.kind(),
            incident: c.incident.clone(),
            expected: format!("{:?}", c.expect),
            copies,
        };
        if copies > 1 && matches!(c.expect, Expect::SentinelComment(_) | Expect::DefenderComment(_)) {
            duplicated.push(r());
        }
        if is_lost(&w, &tenant, &work.changes, i) {
            lost.push(r());
        }
    }
    let comments_copied_twice = duplicated.len();
    let extra = extra_mirrors(&w, &tenant);
    drop(w);
    let ms = |c: &workload::Change| c.synced_at.map(|s| (s - c.at).as_millis() as i64);
    let around = |c: &workload::Change| {
        kill_instants
            .iter()
            .any(|k| (c.at <= *k && c.synced_at.is_none_or(|s| s > *k)) || (c.at >= *k && c.at < *k + RESTART_WINDOW))
    };
    let count = |kind: &str| made.iter().filter(|c| c.expect.kind() == kind).count();
    let stats = stack.sim.sim.stats.snapshot();
    let delta = |k: &str| stats.get(k).copied().unwrap_or(0) - stats_before.get(k).copied().unwrap_or(0);
    let (graph_calls, arm_calls) = (delta("graph.requests"), delta("arm.requests"));
    let outage_ok = outage.as_ref().is_none_or(|o| o.processes_stayed_up && o.wrong_after_grace == 0 && o.probes > 0);
    let ok =
        lost.is_empty() && extra == 0 && comments_copied_twice == 0 && fleet.unexpected_exits.is_empty() && outage_ok;
    Ok(SoakReport {
        mode: opts.mode,
        scenario: opts.scenario,
        instances: fleet.count(),
        duration_seconds: duration.as_secs_f64(),
        poll_seconds: opts.poll_seconds,
        budgets: opts.budgets.clone(),
        new_incidents: count("new incident"),
        defender_updates: count("Defender update"),
        sentinel_edits: count("Sentinel edit"),
        kills: kill_log.len(),
        kill_log,
        unexpected_exits: fleet.unexpected_exits.clone(),
        extra_mirrors: extra,
        comments_copied_twice,
        duplicated,
        lost,
        latency: Latency::of(made.iter().filter_map(ms).collect()),
        latency_around_restarts: Latency::of(made.iter().filter(|c| around(c)).filter_map(ms).collect()),
        outage,
        graph_calls,
        graph_throttled: delta("graph.throttled"),
        arm_calls,
        calls_per_change: (graph_calls + arm_calls) as f64 / made.len().max(1) as f64,
        ok,
    })
}

/// Probes every instance's health at once and scores the answers against the outage's rule.
async fn probe_all(fleet: &Fleet, http: &reqwest::Client, into_pause: Duration, report: &mut OutageReport) {
    let probes = (0..fleet.count()).map(|i| async move {
        let t = Instant::now();
        let p = fleet.probe(http, i, Duration::from_secs(3)).await;
        (p, t.elapsed())
    });
    for (p, took) in futures::future::join_all(probes).await {
        report.probes += 1;
        let in_time = took <= HEALTH_BOUND && p != Probe::NoAnswer;
        report.answered_within_2s += usize::from(in_time);
        report.slowest_answer_ms = report.slowest_answer_ms.max(Some(took.as_millis() as u64));
        let unhealthy = matches!(&p, Probe::Answered { status: 503, health } if health == "unhealthy");
        report.unhealthy += usize::from(unhealthy);
        if into_pause >= HEALTH_GRACE && !(in_time && unhealthy) {
            report.wrong_after_grace += 1;
        }
    }
}
