//! The soak's report: what it counts and how a person reads it.

use serde::Serialize;

use super::{Scenario, SoakMode};
use crate::demo::{percentile, Budgets};

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Latency {
    pub changes: usize,
    pub ms_p50: Option<i64>,
    pub ms_p95: Option<i64>,
    pub ms_max: Option<i64>,
}

impl Latency {
    pub(super) fn of(mut ms: Vec<i64>) -> Self {
        ms.sort();
        Self {
            changes: ms.len(),
            ms_p50: percentile(&ms, 0.5),
            ms_p95: percentile(&ms, 0.95),
            ms_max: ms.last().copied(),
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KillRecord {
    pub at_seconds: f64,
    pub instance: usize,
    /// Changes made but not yet synced when the instance died.
    pub pending_at_kill: usize,
    pub restart_ms: u64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeRef {
    pub kind: &'static str,
    pub incident: String,
    pub expected: String,
    /// Copies the other side holds at the end.
    pub copies: usize,
}

#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutageReport {
    pub paused_seconds: f64,
    pub probes: usize,
    /// Probes answered within 2 s (the bound; 0.5 s is allowed for measuring).
    pub answered_within_2s: usize,
    pub unhealthy: usize,
    /// Probes after the first 10 s of the pause (a cached assessment may be that old) that did
    /// not say `unhealthy` within 2 s.
    pub wrong_after_grace: usize,
    pub slowest_answer_ms: Option<u64>,
    pub processes_stayed_up: bool,
    /// From resuming storage until every change was synced.
    pub converged_seconds_after_resume: Option<f64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SoakReport {
    pub mode: SoakMode,
    pub scenario: Scenario,
    pub instances: usize,
    pub duration_seconds: f64,
    pub poll_seconds: u32,
    pub budgets: Budgets,
    pub new_incidents: usize,
    pub defender_updates: usize,
    pub sentinel_edits: usize,
    pub kills: usize,
    pub kill_log: Vec<KillRecord>,
    /// Instances that exited without being killed.
    pub unexpected_exits: Vec<String>,
    pub extra_mirrors: usize,
    pub comments_copied_twice: usize,
    /// The comments copied more than once.
    pub duplicated: Vec<ChangeRef>,
    pub lost: Vec<ChangeRef>,
    pub latency: Latency,
    /// Changes pending at a kill or made within 10 s after one.
    pub latency_around_restarts: Latency,
    pub outage: Option<OutageReport>,
    pub graph_calls: u64,
    pub graph_throttled: u64,
    pub arm_calls: u64,
    pub calls_per_change: f64,
    pub ok: bool,
}

pub fn print(r: &SoakReport) {
    let ms = |v: Option<i64>| v.map(|v| format!("{:.2} s", v as f64 / 1000.0)).unwrap_or_else(|| "n/a".into());
    let lat = |l: &Latency| {
        format!("p50 {}, p95 {}, max {} ({} changes)", ms(l.ms_p50), ms(l.ms_p95), ms(l.ms_max), l.changes)
    };
    println!(
        "xdrsync soak: {:?}, {} instances on one storage account, {:?}, {:.0} s (poll every {} s)",
        r.mode, r.instances, r.scenario, r.duration_seconds, r.poll_seconds
    );
    println!(
        "  changes                {} new incidents, {} Defender updates, {} Sentinel edits",
        r.new_incidents, r.defender_updates, r.sentinel_edits
    );
    println!("  kills (SIGKILL)        {}; unexpected exits {}", r.kills, r.unexpected_exits.len());
    println!(
        "  duplicates             {} extra mirrors, {} comments copied twice",
        r.extra_mirrors, r.comments_copied_twice
    );
    for d in &r.duplicated {
        println!("    {} on incident {}: {} ({} copies)", d.kind, d.incident, d.expected, d.copies);
    }
    println!("  lost changes           {}", r.lost.len());
    for l in r.lost.iter().take(20) {
        println!("    {} on incident {}: {}", l.kind, l.incident, l.expected);
    }
    println!("  change → sync          {}", lat(&r.latency));
    println!("  around restarts        {}", lat(&r.latency_around_restarts));
    if let Some(o) = &r.outage {
        println!(
            "  storage outage         paused {:.0} s; {} health probes, {} answered within 2 s, {} unhealthy, {} wrong after the first 10 s (slowest {} ms); processes stayed up: {}; converged {} after resume",
            o.paused_seconds,
            o.probes,
            o.answered_within_2s,
            o.unhealthy,
            o.wrong_after_grace,
            o.slowest_answer_ms.unwrap_or(0),
            o.processes_stayed_up,
            o.converged_seconds_after_resume.map_or("never".into(), |s| format!("{s:.1} s"))
        );
    }
    println!(
        "  calls                  Graph {} ({} answered 429), ARM {}; {:.2} per change; xdrsync {}/min Graph and {}/s ARM writes per instance, tenant {}",
        r.graph_calls,
        r.graph_throttled,
        r.arm_calls,
        r.calls_per_change,
        r.budgets.graph_calls_per_minute,
        r.budgets.arm_writes_per_second,
        r.budgets.sim_graph_calls_per_minute.map_or("unthrottled".to_string(), |b| format!("{b} Graph calls/min"))
    );
    println!("  result                 {}", if r.ok { "OK: nothing duplicated, nothing lost" } else { "FAILED" });
}
