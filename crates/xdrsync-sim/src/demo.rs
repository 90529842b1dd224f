//! `xdrsync-sim demo`: the whole product on one machine. Starts Azurite and the simulator, runs
//! xdrsync standalone as a child process (the real binary, real storage), seeds incidents,
//! shows progress, then reports: incidents mirrored / expected, alerts shipped, alerts attached
//! to their mirrors by the analytics rule's SecurityAlerts (and how long after the mirror), Defender →
//! Sentinel latency p50/p95, Graph / ARM / Table calls per incident, and writes during a quiet
//! window. Exit 0 only if every incident is mirrored exactly once with all its alerts.
//! The same command is the benchmark: `--json` prints the report as JSON.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The stream the alert rows go to (the data, one row per alert version).
const ALERTS_STREAM: &str = "Custom-XdrsyncAlerts";

use serde::Serialize;
use serde_json::Value;

use crate::azurite::{azurite_bin, Azurite};
use crate::sim::seed::SeedSpec;
use crate::sim::SimConfig;
use xdrsync_core::domain::names::sentinel_incident_name;

#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub incidents: usize,
    pub poll_seconds: u32,
    pub timeout: Duration,
    pub repo_root: PathBuf,
    /// The xdrsync binary to run as the product under test.
    pub xdrsync_bin: PathBuf,
    pub json: bool,
    /// Seed the incidents evenly over this many seconds (0 = all at once).
    pub spread_seconds: u64,
    pub budgets: Budgets,
    /// Give the incidents a history: `lastUpdateDateTime` spread over this many past days (a
    /// backfill; the first poll then reaches back that far).
    pub history_days: u32,
    /// xdrsync's `XDRSYNC_POLL_TIME_BUDGET_SECONDS` (the invocation limit a poll must stay within).
    pub poll_time_budget: Option<u64>,
}

/// The call budgets of a run: what xdrsync spends, and what the simulator enforces (429 beyond).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Budgets {
    /// xdrsync's `XDRSYNC_GRAPH_CALLS_PER_MINUTE`.
    pub graph_calls_per_minute: u32,
    /// xdrsync's `XDRSYNC_ARM_WRITES_PER_SECOND` (the refill of its ARM write budget).
    pub arm_writes_per_second: u32,
    /// xdrsync's `XDRSYNC_ARM_WRITE_BURST`.
    pub arm_write_burst: u32,
    /// The simulated tenant's Graph budget (`None` = unthrottled).
    pub sim_graph_calls_per_minute: Option<u32>,
    /// The simulated ARM's documented buckets per principal (writes 200 at 10/s, reads 250 at 25/s).
    pub sim_arm_limits: bool,
}

impl Default for Budgets {
    /// xdrsync's defaults, against a tenant that allows 150 Graph calls a minute and ARM's limits.
    fn default() -> Self {
        Self {
            graph_calls_per_minute: 120,
            arm_writes_per_second: 8,
            arm_write_burst: 150,
            sim_graph_calls_per_minute: Some(150),
            sim_arm_limits: true,
        }
    }
}

impl Budgets {
    /// The budgets in one line, for reports.
    pub fn describe(&self) -> String {
        format!(
            "xdrsync: Graph {}/min, ARM writes {} at once + {}/s; tenant: Graph {}, ARM {}",
            self.graph_calls_per_minute,
            self.arm_write_burst,
            self.arm_writes_per_second,
            self.sim_graph_calls_per_minute.map_or("unthrottled".to_string(), |b| format!("{b}/min")),
            if self.sim_arm_limits { "200 writes + 10/s, 250 reads + 25/s per principal" } else { "unthrottled" }
        )
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DemoReport {
    pub incidents_expected: usize,
    pub incidents_mirrored: usize,
    pub duplicates: usize,
    pub missing: usize,
    pub alerts_expected: usize,
    pub alerts_shipped: usize,
    /// Alerts shown on their mirror (related SecurityAlerts of the rule), of `alerts_attachable`.
    pub alerts_attached: usize,
    /// Every alert, at most 150 per incident (Sentinel's limit).
    pub alerts_attachable: usize,
    /// From a mirror's creation until all its alerts are related (sampled every 200 ms).
    pub alerts_attached_ms_p50: Option<i64>,
    pub alerts_attached_ms_p95: Option<i64>,
    /// The simulated rule's delay from ingestion to SecurityAlert.
    pub alert_rule_delay_ms: u64,
    /// Calls attaching alerts made, per incident: Log Analytics queries and relation list/put/delete.
    pub attach_calls_per_incident: f64,
    /// Summary alerts the simulated rules raised (a run over more than 29 rows); their rows are
    /// sent again by xdrsync (sim stat `rule.summary_alerts`).
    pub rule_summary_alerts: u64,
    pub latency_ms_p50: Option<i64>,
    pub latency_ms_p95: Option<i64>,
    pub latency_ms_max: Option<i64>,
    pub poll_seconds: u32,
    pub spread_seconds: u64,
    /// Graph requests per incident, 429s included.
    pub graph_calls_per_incident: f64,
    /// Graph requests the simulated tenant answered 429 (its budget spent).
    pub graph_throttled: u64,
    /// `GET /security/incidents/{id}` per incident (how often each incident was read).
    pub incident_reads_per_incident: f64,
    /// Graph calls by kind, per incident: incident list pages (the poller), `alerts_v2` lists,
    /// user lookups.
    pub graph_list_calls_per_incident: f64,
    pub graph_alert_lists_per_incident: f64,
    pub graph_user_lookups_per_incident: f64,
    pub budgets: Budgets,
    pub history_days: u32,
    pub arm_calls_per_incident: f64,
    /// ARM calls that are not writes, per incident, by kind (`arm.incidents.get`, …; target ≤ 0.5 in all).
    pub arm_reads_per_incident: BTreeMap<String, f64>,
    /// ARM requests the simulated ARM answered 429 (a principal's bucket empty).
    pub arm_throttled: u64,
    pub table_calls_per_incident: f64,
    pub sentinel_writes_per_incident: f64,
    pub quiet_window_writes: u64,
    pub converged_in_seconds: f64,
    /// From seeding (a backfill: xdrsync's start) until every incident had its mirror (sampled
    /// every 200 ms); `None` if some never did.
    pub all_mirrored_in_seconds: Option<f64>,
    /// Incidents mirrored per second, from seeding to convergence.
    pub incidents_per_second: f64,
    /// Peak resident memory of the xdrsync process (Linux `VmHWM`), in MiB.
    pub peak_memory_mib: Option<f64>,
    pub ok: bool,
}

/// xdrsync's public webhook route in standalone mode (docs/webhook.md).
pub const WEBHOOK_ROUTE: &str = "/api/sentinel/incidents";

/// xdrsync's call counters as its health endpoint reports them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct CallCounts {
    pub graph: u64,
    pub arm: u64,
    pub logs: u64,
    pub entra: u64,
    pub table: u64,
    pub queue: u64,
}

/// A binary that cargo builds beside the running executable (`target/<profile>/<name>`).
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let dir = me.parent().ok_or_else(|| anyhow::anyhow!("{} has no folder", me.display()))?;
    // Test executables live one level deeper, in target/<profile>/deps.
    let candidates = [dir.join(name), dir.parent().map(|p| p.join(name)).unwrap_or_default()];
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        anyhow::anyhow!("no {name} binary beside {}: build it first (cargo build -p {name})", dir.display())
    })
}

/// Kills the child xdrsync on drop (also when `xdrsync-sim` is interrupted: its `main` drops the
/// running demo on SIGINT/SIGTERM). `log` is where its standard error goes when not shown.
pub struct ChildGuard {
    child: std::sync::Mutex<Child>,
    log: Option<std::path::PathBuf>,
}

impl ChildGuard {
    /// Guards `child`; `log` is where its standard error goes when not shown.
    pub fn new(child: Child, log: Option<std::path::PathBuf>) -> Self {
        Self { child: std::sync::Mutex::new(child), log }
    }

    pub fn id(&self) -> u32 {
        self.child.lock().unwrap_or_else(|p| p.into_inner()).id()
    }

    /// Why the child is gone, if it is: its exit status and the end of its log.
    pub fn exited(&self) -> Option<String> {
        let status = self.child.lock().unwrap_or_else(|p| p.into_inner()).try_wait().ok().flatten()?;
        let tail = self
            .log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|text| {
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(15)..].join("\n")
            })
            .filter(|t| !t.is_empty())
            .map_or(" (its log is above)".to_string(), |t| format!("; the end of its log:\n{t}"));
        Some(format!("xdrsync exited with {status}{tail}"))
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|p| p.into_inner());
        let _ = child.kill();
        let _ = child.wait();
        if let Some(p) = &self.log {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// The `p`-quantile (0..=1) of sorted values, nearest rank.
pub fn percentile(sorted: &[i64], p: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(idx).copied()
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// An `extra_env` value [`Stack::start`] replaces with a connection string for its Azurite's
/// blob service (whose port is chosen when Azurite starts).
pub const AZURITE_BLOBS: &str = "<the stack's Azurite blob service>";

/// How the xdrsync child runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildMode {
    /// `xdrsync run`: standalone, its own timers and queue workers (`XDRSYNC_HTTP_PORT`).
    Run,
    /// `xdrsync serve`: the Functions custom handler (`FUNCTIONS_CUSTOMHANDLER_PORT`); nothing
    /// runs until an invocation arrives, as under the Functions host.
    Serve,
}

/// Azurite + simulator + xdrsync (the real binary as a child process, standalone or as the custom handler).
pub struct Stack {
    azurite: Azurite,
    pub sim: crate::sim::RunningSim,
    child: ChildGuard,
    pub http_port: u16,
    pub http: reqwest::Client,
    /// How the first child was started: [`Stack::spawn_instance`] starts more of it.
    spec: ChildSpec,
}

/// How the xdrsync children of a stack are started (every instance alike).
#[derive(Clone)]
struct ChildSpec {
    mode: ChildMode,
    xdrsync_bin: PathBuf,
    poll_seconds: u32,
    quiet: bool,
    budgets: Budgets,
    extra_env: Vec<(String, String)>,
}

impl ChildSpec {
    /// Starts one xdrsync child listening on `port`, on the stack's storage and simulator.
    fn spawn(&self, azurite: &Azurite, sim: &crate::sim::RunningSim, port: u16) -> anyhow::Result<ChildGuard> {
        if !self.xdrsync_bin.exists() {
            anyhow::bail!(
                "no xdrsync binary at {}: build it first (cargo build --release -p xdrsync)",
                self.xdrsync_bin.display()
            );
        }
        let (command, port_setting) = match self.mode {
            ChildMode::Run => ("run", "XDRSYNC_HTTP_PORT"),
            ChildMode::Serve => ("serve", "FUNCTIONS_CUSTOMHANDLER_PORT"),
        };
        let mut cmd = Command::new(&self.xdrsync_bin);
        cmd.arg(command)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
            .env("AzureWebJobsStorage", azurite.connection_string())
            .env(port_setting, port.to_string())
            .env("XDRSYNC_POLL_SCHEDULE", format!("*/{} * * * * *", self.poll_seconds))
            .env("XDRSYNC_WEBHOOK_KEY", DEMO_WEBHOOK_KEY)
            .env("XDRSYNC_GRAPH_CALLS_PER_MINUTE", self.budgets.graph_calls_per_minute.to_string())
            .env("XDRSYNC_ARM_WRITES_PER_SECOND", self.budgets.arm_writes_per_second.to_string())
            .env("XDRSYNC_ARM_WRITE_BURST", self.budgets.arm_write_burst.to_string())
            .envs(self.extra_env.iter().map(|(k, v)| match v.as_str() {
                AZURITE_BLOBS => (k.as_str(), azurite.blob_connection_string()),
                _ => (k.as_str(), v.clone()),
            }))
            .stdout(Stdio::null());
        // Quiet: the log goes to a file, so a failure can still say why.
        let log =
            self.quiet.then(|| std::env::temp_dir().join(format!("xdrsync-demo-{}-{port}.log", std::process::id())));
        match &log {
            Some(path) => cmd.stderr(std::fs::File::create(path)?),
            None => cmd.stderr(Stdio::inherit()),
        };
        for (k, v) in sim.sim.config.settings_for(sim.addr) {
            cmd.env(k, v);
        }
        Ok(ChildGuard { child: std::sync::Mutex::new(cmd.spawn()?), log })
    }
}

impl Stack {
    /// Starts Azurite and the simulator, then the xdrsync child in `mode`, and waits until it answers.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        mode: ChildMode,
        repo_root: &Path,
        xdrsync_bin: &Path,
        poll_seconds: u32,
        quiet: bool,
        budgets: &Budgets,
        extra_env: &[(&str, String)],
        history: Option<&SeedSpec>,
    ) -> anyhow::Result<Self> {
        let azurite = Azurite::start(&azurite_bin(repo_root))?;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let mut sim_config = SimConfig::demo();
        sim_config.options.graph_calls_per_minute = budgets.sim_graph_calls_per_minute;
        sim_config.options.arm_limits = budgets.sim_arm_limits;
        let sim = crate::sim::spawn(listener, sim_config).await?;
        // A tenant's history exists before xdrsync's first poll (a backfill), as in real life.
        if let Some(spec) = history {
            let tenant = sim.sim.config.tenant_id.clone();
            crate::sim::seed::seed(&mut sim.sim.world(), &tenant, spec);
        }
        let http_port = free_port()?;
        let spec = ChildSpec {
            mode,
            xdrsync_bin: xdrsync_bin.to_path_buf(),
            poll_seconds,
            quiet,
            budgets: budgets.clone(),
            extra_env: extra_env.iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
        };
        let child = spec.spawn(&azurite, &sim, http_port)?;
        let stack = Self { azurite, sim, child, http_port, http: reqwest::Client::new(), spec };
        stack.wait_answering(&stack.child, http_port).await?;
        Ok(stack)
    }

    /// Starts one more xdrsync child like the first but in `mode`, on the same storage and
    /// simulator (several instances of one deployment), on a free port; returns it with its port
    /// without waiting.
    pub fn spawn_instance(&self, mode: ChildMode) -> anyhow::Result<(ChildGuard, u16)> {
        let port = free_port()?;
        Ok((ChildSpec { mode, ..self.spec.clone() }.spawn(&self.azurite, &self.sim, port)?, port))
    }

    /// Waits until the child listening on `port` answers `GET /api/health` (at most 60 s).
    pub async fn wait_answering(&self, child: &ChildGuard, port: u16) -> anyhow::Result<()> {
        let started = Instant::now();
        let url = format!("http://127.0.0.1:{port}/api/health");
        while self.http.get(&url).send().await.is_err() {
            if let Some(why) = child.exited() {
                anyhow::bail!("xdrsync did not start: {why}");
            }
            if started.elapsed() > Duration::from_secs(60) {
                anyhow::bail!("xdrsync did not start within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    /// The Azurite process (to pause it: a storage outage).
    pub fn azurite_pid(&self) -> u32 {
        self.azurite.pid()
    }

    /// Azurite's queue port.
    pub fn queue_port(&self) -> u16 {
        self.azurite.queue_port
    }

    /// Peak resident memory of the xdrsync child so far (Linux only), in MiB.
    pub fn peak_memory_mib(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let kib: f64 =
            status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
        Some(kib / 1024.0)
    }

    /// A connection string for Azurite's blob service (the Streaming API's storage account).
    pub fn blob_connection_string(&self) -> String {
        self.azurite.blob_connection_string()
    }

    /// Azurite's blob port.
    pub fn blob_port(&self) -> u16 {
        self.azurite.blob_port
    }

    /// The custom handler's address in [`ChildMode::Serve`] (the child's only port).
    pub fn handler_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    pub fn health_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/health", self.http_port)
    }

    pub fn webhook_url(&self) -> String {
        format!("http://127.0.0.1:{}{}", self.http_port, WEBHOOK_ROUTE)
    }

    /// xdrsync's own call counters (from its health endpoint).
    pub async fn calls(&self) -> CallCounts {
        // Details (the call counters among them) need the key.
        match self.http.get(self.health_url()).header("x-xdrsync-key", DEMO_WEBHOOK_KEY).send().await {
            Ok(r) => r
                .json::<Value>()
                .await
                .ok()
                .and_then(|v| serde_json::from_value(v["details"]["calls"].clone()).ok())
                .unwrap_or_default(),
            Err(_) => CallCounts::default(),
        }
    }

    /// Seeds incidents and waits until every one is mirrored; returns their ids.
    pub async fn seed_and_mirror(&self, spec: SeedSpec, timeout: Duration) -> anyhow::Result<Vec<String>> {
        let tenant = self.sim.sim.config.tenant_id.clone();
        let ids = crate::sim::seed::seed(&mut self.sim.sim.world(), &tenant, &spec);
        let names: Vec<uuid::Uuid> = ids.iter().map(|id| sentinel_incident_name(&tenant, id)).collect();
        let started = Instant::now();
        while !names.iter().all(|n| self.sim.sim.world().sentinel.contains_key(n)) {
            if let Some(why) = self.child.exited() {
                anyhow::bail!("incidents were not mirrored: {why}");
            }
            if started.elapsed() > timeout {
                anyhow::bail!("incidents were not mirrored within {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(ids)
    }
}

pub const DEMO_WEBHOOK_KEY: &str = "demo-webhook-key-not-secret";

/// How long the simulated analytics rule takes from a row's ingestion to its SecurityAlert in the
/// demo (minutes in Azure; the attach latency the demo reports is this plus the poll interval).
pub const ALERT_RULE_DELAY_MS: u64 = 2_000;

/// Alerts related to each incident's mirror, and how many each should show (≤ 150).
fn attach_progress(w: &crate::sim::World, tenant: &str) -> BTreeMap<uuid::Uuid, (usize, usize)> {
    w.incidents
        .values()
        .map(|i| {
            let name = sentinel_incident_name(tenant, &i.id);
            let shown = crate::sim::alert_rule::related_alerts(w, &name).len();
            (name, (shown, w.alerts_of(&i.id).len().min(150)))
        })
        .collect()
}

pub async fn run(opts: DemoOptions) -> anyhow::Result<DemoReport> {
    let say = |s: &str| {
        if !opts.json {
            eprintln!("{s}");
        }
    };
    say("starting Azurite, the simulator and xdrsync standalone…");
    let mut extra = vec![("XDRSYNC_ATTACH_ALERTS", "true".to_string())];
    if opts.history_days > 0 {
        extra.push(("XDRSYNC_INITIAL_LOOKBACK_HOURS", (24 * (opts.history_days + 1)).to_string()));
    }
    if let Some(b) = opts.poll_time_budget {
        extra.push(("XDRSYNC_POLL_TIME_BUDGET_SECONDS", b.to_string()));
    }
    let history_days = opts.history_days;
    let spec = move |count: usize, big: usize, seed: u64| SeedSpec {
        count,
        seed,
        min_alerts: 1,
        max_alerts: 6,
        big_incidents: big,
        big_alerts: 180,
        history_days,
        ..Default::default()
    };
    let big = usize::from(opts.incidents >= 50);
    let history = (opts.history_days > 0).then(|| spec(opts.incidents, big, 42));
    let seed_time = Instant::now();
    let stack = Stack::start(
        ChildMode::Run,
        &opts.repo_root,
        &opts.xdrsync_bin,
        opts.poll_seconds,
        opts.json,
        &opts.budgets,
        &extra,
        history.as_ref(),
    )
    .await?;
    let sim = &stack.sim;
    sim.sim.options.lock().unwrap_or_else(|p| p.into_inner()).alert_rule_delay_ms = ALERT_RULE_DELAY_MS;
    say(&format!("xdrsync standalone up (poll every {} s); seeding {} incidents…", opts.poll_seconds, opts.incidents));

    let tenant = sim.sim.config.tenant_id.clone();
    let seeding = if history.is_some() {
        None
    } else if opts.spread_seconds == 0 {
        crate::sim::seed::seed(&mut sim.sim.world(), &tenant, &spec(opts.incidents, big, 42));
        None
    } else {
        // Steady state: incidents arrive one by one, evenly over the spread.
        let (world_sim, tenant, n) = (sim.sim.clone(), tenant.clone(), opts.incidents);
        let gap = Duration::from_secs_f64(opts.spread_seconds as f64 / n.max(1) as f64);
        Some(tokio::spawn(async move {
            for k in 0..n {
                crate::sim::seed::seed(
                    &mut world_sim.world(),
                    &tenant,
                    &spec(1, usize::from(k == 0 && big == 1), 42 + k as u64),
                );
                tokio::time::sleep(gap).await;
            }
        }))
    };
    // A backfill's clock starts with xdrsync; otherwise with the seeding.
    let seed_time = if history.is_some() { seed_time } else { Instant::now() };

    let bar = indicatif::ProgressBar::new(opts.incidents as u64);
    if opts.json {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} mirrored, {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut converged = false;
    let mut all_mirrored_in: Option<f64> = None;
    // When each mirror first showed all its alerts.
    let mut attached_at: BTreeMap<uuid::Uuid, time::OffsetDateTime> = BTreeMap::new();
    while seed_time.elapsed() < opts.timeout + Duration::from_secs(opts.spread_seconds) {
        let seeded_all = seeding.as_ref().is_none_or(|t| t.is_finished());
        let (mirrored, rows, alerts_expected, attach_done) = {
            let mut w = sim.sim.world();
            crate::sim::alert_rule::run(&mut w);
            let now = time::OffsetDateTime::now_utc();
            let progress = attach_progress(&w, &tenant);
            for (name, (shown, want)) in &progress {
                if shown >= want && w.sentinel.contains_key(name) {
                    attached_at.entry(*name).or_insert(now);
                }
            }
            let attach_done = progress.values().all(|(shown, want)| shown >= want);
            let mirrored = w
                .incidents
                .keys()
                .filter(|id| w.sentinel.contains_key(&sentinel_incident_name(&tenant, &id.to_string())))
                .count();
            (mirrored, w.logs.get(ALERTS_STREAM).map_or(0, Vec::len), w.alerts.len(), attach_done)
        };
        if seeded_all && mirrored >= opts.incidents && all_mirrored_in.is_none() {
            all_mirrored_in = Some(seed_time.elapsed().as_secs_f64());
        }
        bar.set_position(mirrored as u64);
        bar.set_message(format!("{rows}/{alerts_expected} alerts shipped"));
        if seeded_all && mirrored >= opts.incidents && rows >= alerts_expected && attach_done {
            converged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bar.finish();
    let (seeded_at, alerts_expected): (BTreeMap<uuid::Uuid, time::OffsetDateTime>, usize) = {
        let w = sim.sim.world();
        let at =
            w.incidents.values().map(|i| (sentinel_incident_name(&tenant, &i.id), i.last_update_date_time)).collect();
        (at, w.alerts.len())
    };
    let converged_in = seed_time.elapsed().as_secs_f64();

    // Quiet window: nothing changes, so xdrsync must write nothing.
    let puts_before = sim.sim.stats.snapshot().get("arm.incidents.put").copied().unwrap_or(0)
        + sim.sim.stats.snapshot().get("graph.incidents.patch").copied().unwrap_or(0);
    if converged {
        tokio::time::sleep(Duration::from_secs(u64::from(opts.poll_seconds) * 3 + 1)).await;
    }
    let stats = sim.sim.stats.snapshot();
    let puts_after =
        stats.get("arm.incidents.put").copied().unwrap_or(0) + stats.get("graph.incidents.patch").copied().unwrap_or(0);
    let calls = stack.calls().await;

    let w = sim.sim.world();
    let progress = attach_progress(&w, &tenant);
    let alerts_attached: usize = progress.values().map(|(shown, _)| *shown).sum();
    let alerts_attachable: usize = progress.values().map(|(_, want)| *want).sum();
    let mut attach_latencies: Vec<i64> = attached_at
        .iter()
        .filter_map(|(name, t)| {
            w.sentinel.get(name).map(|r| (*t - r.read_only.created_time_utc).whole_milliseconds() as i64)
        })
        .collect();
    attach_latencies.sort();
    let mut latencies: Vec<i64> = Vec::new();
    let mut writes = 0u64;
    for (name, rec) in &w.sentinel {
        if let Some(t0) = seeded_at.get(name) {
            let t1 = rec.read_only.created_time_utc;
            latencies.push((t1 - *t0).whole_milliseconds() as i64);
            writes += rec.writes;
        }
    }
    latencies.sort();
    let mirrored_names: HashSet<_> = w.sentinel.keys().collect();
    let missing = seeded_at.keys().filter(|n| !mirrored_names.contains(n)).count();
    let extra = w.sentinel.keys().filter(|n| !seeded_at.contains_key(n)).count();
    // The alerts stream's rows (the trigger stream's rows are the rule's, counted by attach).
    let alert_rows = w.logs.get(ALERTS_STREAM).map(Vec::as_slice).unwrap_or_default();
    let alerts_shipped = alert_rows.len();
    let shipped_ids: HashSet<&str> = alert_rows.iter().filter_map(|r| r["SystemAlertId"].as_str()).collect();
    let n = opts.incidents.max(1) as f64;
    let report = DemoReport {
        incidents_expected: opts.incidents,
        incidents_mirrored: seeded_at.len() - missing,
        duplicates: extra,
        missing,
        alerts_expected,
        alerts_shipped,
        alerts_attached,
        alerts_attachable,
        alerts_attached_ms_p50: percentile(&attach_latencies, 0.50),
        alerts_attached_ms_p95: percentile(&attach_latencies, 0.95),
        alert_rule_delay_ms: ALERT_RULE_DELAY_MS,
        attach_calls_per_incident: ["logquery.post", "arm.relations.list", "arm.relations.put", "arm.relations.delete"]
            .iter()
            .map(|k| stats.get(*k).copied().unwrap_or(0))
            .sum::<u64>() as f64
            / n,
        rule_summary_alerts: stats.get("rule.summary_alerts").copied().unwrap_or(0),
        latency_ms_p50: percentile(&latencies, 0.50),
        latency_ms_p95: percentile(&latencies, 0.95),
        latency_ms_max: latencies.last().copied(),
        poll_seconds: opts.poll_seconds,
        spread_seconds: opts.spread_seconds,
        graph_calls_per_incident: stats.get("graph.requests").copied().unwrap_or(0) as f64 / n,
        graph_throttled: stats.get("graph.throttled").copied().unwrap_or(0),
        incident_reads_per_incident: stats.get("graph.incidents.get").copied().unwrap_or(0) as f64 / n,
        graph_list_calls_per_incident: stats.get("graph.incidents.list").copied().unwrap_or(0) as f64 / n,
        graph_alert_lists_per_incident: stats.get("graph.alerts.list").copied().unwrap_or(0) as f64 / n,
        graph_user_lookups_per_incident: ["graph.users.get", "graph.users.list"]
            .iter()
            .map(|k| stats.get(*k).copied().unwrap_or(0))
            .sum::<u64>() as f64
            / n,
        budgets: opts.budgets.clone(),
        history_days: opts.history_days,
        arm_calls_per_incident: stats.get("arm.requests").copied().unwrap_or(0) as f64 / n,
        arm_reads_per_incident: crate::call_kinds::arm_reads(&stats, n),
        arm_throttled: stats.get("arm.throttled").copied().unwrap_or(0),
        table_calls_per_incident: calls.table as f64 / n,
        sentinel_writes_per_incident: writes as f64 / n,
        quiet_window_writes: puts_after - puts_before,
        converged_in_seconds: converged_in,
        all_mirrored_in_seconds: all_mirrored_in,
        incidents_per_second: opts.incidents as f64 / converged_in.max(0.001),
        peak_memory_mib: stack.peak_memory_mib(),
        ok: converged
            && missing == 0
            && extra == 0
            && alerts_shipped == alerts_expected
            && shipped_ids.len() == alerts_expected
            && alerts_attached == alerts_attachable
            && puts_after == puts_before,
    };
    Ok(report)
}

pub fn print(report: &DemoReport) {
    let ms = |v: Option<i64>| v.map(|v| format!("{:.2} s", v as f64 / 1000.0)).unwrap_or_else(|| "n/a".into());
    println!();
    println!("xdrsync demo report");
    println!(
        "  incidents mirrored       {}/{} (duplicates {}, missing {})",
        report.incidents_mirrored, report.incidents_expected, report.duplicates, report.missing
    );
    println!("  alerts shipped           {}/{}", report.alerts_shipped, report.alerts_expected);
    println!(
        "  alerts attached          {}/{} (≤ 150 per incident); after the mirror: p50 {}, p95 {} (rule delay {:.1} s); {:.2} calls/incident; {} summary alerts",
        report.alerts_attached,
        report.alerts_attachable,
        ms(report.alerts_attached_ms_p50),
        ms(report.alerts_attached_ms_p95),
        report.alert_rule_delay_ms as f64 / 1000.0,
        report.attach_calls_per_incident,
        report.rule_summary_alerts
    );
    println!(
        "  Defender → Sentinel      p50 {}, p95 {}, max {} (poll every {} s; {})",
        ms(report.latency_ms_p50),
        ms(report.latency_ms_p95),
        ms(report.latency_ms_max),
        report.poll_seconds,
        if report.spread_seconds == 0 {
            "all incidents at once".to_string()
        } else {
            format!("incidents arriving over {} s", report.spread_seconds)
        }
    );
    println!(
        "  calls per incident       Graph {:.2}, ARM {:.2}, Table {:.2}",
        report.graph_calls_per_incident, report.arm_calls_per_incident, report.table_calls_per_incident
    );
    println!(
        "  Graph budget             xdrsync {}/min; tenant {}; 429s received {}; incident reads/incident {:.2}",
        report.budgets.graph_calls_per_minute,
        report.budgets.sim_graph_calls_per_minute.map_or("unthrottled".to_string(), |b| format!("{b}/min")),
        report.graph_throttled,
        report.incident_reads_per_incident
    );
    println!(
        "  ARM non-write calls      {:.2}/incident ({}); ARM 429s received {}",
        report.arm_reads_per_incident.values().sum::<f64>(),
        crate::call_kinds::per_kind(&report.arm_reads_per_incident),
        report.arm_throttled
    );
    println!("  budgets enforced         {}", report.budgets.describe());
    println!(
        "  Graph calls by kind      per incident: list pages {:.3}, incident reads {:.3}, alert lists {:.3}, user lookups {:.3}",
        report.graph_list_calls_per_incident,
        report.incident_reads_per_incident,
        report.graph_alert_lists_per_incident,
        report.graph_user_lookups_per_incident
    );
    println!("  Sentinel writes/incident {:.2}", report.sentinel_writes_per_incident);
    println!("  quiet-window writes      {}", report.quiet_window_writes);
    if let Some(t) = report.all_mirrored_in_seconds {
        println!("  all mirrored in          {t:.1} s");
    }
    println!(
        "  converged in             {:.1} s ({:.1} incidents/s)",
        report.converged_in_seconds, report.incidents_per_second
    );
    if let Some(mib) = report.peak_memory_mib {
        println!("  xdrsync peak memory      {mib:.1} MiB");
    }
    println!(
        "  result                   {}",
        if report.ok { "OK: every incident mirrored exactly once" } else { "FAILED" }
    );
}
