//! `xdrsync-sim`: the development companion of xdrsync. `serve` runs the simulator of Entra ID,
//! Defender, Sentinel and Logs Ingestion; `demo` runs the whole product (Azurite + simulator +
//! the real `xdrsync` binary) and reports; `bench` measures two-way sync latency.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use xdrsync_sim::sim::seed::SeedSpec;
use xdrsync_sim::sim::SimConfig;

#[derive(Parser)]
#[command(name = "xdrsync-sim", version, about = "Simulator, demo and benchmarks for xdrsync (development only).")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the simulator of Entra ID, Defender (Graph), Sentinel (ARM) and Logs Ingestion.
    ///
    /// One loopback port serves every API at its real path, plus a control API under /_sim
    /// (seed incidents, analyst edits, merges, faults, request counts). It prints the
    /// XDRSYNC_* settings that point xdrsync at it.
    Serve {
        /// Port to listen on (0 = any free port).
        #[arg(long, default_value_t = 7400)]
        port: u16,
        /// Incidents to seed at startup.
        #[arg(long, default_value_t = 0)]
        seed_incidents: usize,
        /// Lifetime of issued access tokens, in seconds.
        #[arg(long, default_value_t = 3599)]
        token_lifetime: u64,
        /// The AzureWebJobsStorage value to print (Azurite on its default ports by default).
        #[arg(long, default_value = "UseDevelopmentStorage=true")]
        storage: String,
        /// Also write the settings to this file, for `xdrsync check --env-file FILE`.
        #[arg(long, value_name = "FILE")]
        env_file: Option<PathBuf>,
        /// Extra Defender tenants to serve (MSSP mode; prints XDRSYNC_DEFENDER_TENANTS).
        #[arg(long, default_value_t = 0)]
        tenants: usize,
    },
    /// Run the demo: Azurite + simulator + xdrsync standalone, seed incidents, report latency,
    /// calls per incident and exactly-once mirroring. Exits non-zero if anything is missing or
    /// duplicated. Also the benchmark (`--json`).
    Demo {
        /// Incidents to seed.
        #[arg(long, default_value_t = 200)]
        incidents: usize,
        /// Poll interval of the Defender poller, in seconds (1-59).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=59))]
        poll_seconds: u32,
        /// Give up after this many seconds (every alert reaches its mirror through the paced
        /// rules: about 140 alerts a minute with the default 10 rules).
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        /// Create the incidents evenly over this many seconds instead of all at once (steady state).
        #[arg(long, default_value_t = 0)]
        spread_seconds: u64,
        /// Give the incidents a history over this many past days: a backfill (the first poll
        /// reaches back that far).
        #[arg(long, default_value_t = 0)]
        history_days: u32,
        /// xdrsync's XDRSYNC_POLL_TIME_BUDGET_SECONDS (an invocation limit for each poll).
        #[arg(long)]
        poll_time_budget: Option<u64>,
        #[command(flatten)]
        budgets: BudgetArgs,
        #[command(flatten)]
        stack: StackArgs,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure two-way sync: Sentinel edit → Defender PATCH latency p50/p95 through the webhook
    /// and through the sweep alone, writes per edit and webhook deliveries per edit.
    Bench {
        /// `edits`, `hunting`, `tenants` or `soak`: another benchmark instead.
        #[command(subcommand)]
        what: Option<BenchWhat>,
        /// Sentinel edits per path.
        #[arg(long, default_value_t = 30)]
        edits: usize,
        /// Poll interval of the pollers, in seconds (1-59).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=59))]
        poll_seconds: u32,
        #[command(flatten)]
        stack: StackArgs,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum BenchWhat {
    /// Two-way cost: N Sentinel edits at once through the webhook under the default budgets;
    /// latency edit → Defender PATCH p50/p95, Graph and ARM calls per edit, per kind.
    Edits {
        /// Sentinel edits made at once.
        #[arg(long, default_value_t = 30)]
        edits: usize,
        /// Poll interval of the pollers, in seconds (1-59).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=59))]
        poll_seconds: u32,
        #[command(flatten)]
        budgets: BudgetArgs,
        #[command(flatten)]
        stack: StackArgs,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// An advanced-hunting source: rows/s, MB/s, ingestion calls per 10,000 rows, peak memory
    /// (the query source under the documented 45 calls a minute).
    Hunting {
        /// query (runHuntingQuery), storage (the Streaming API's append blobs in Azurite) or
        /// event-hub (eventHubTrigger invocations of the custom handler).
        #[arg(long, value_enum, default_value = "query")]
        source: xdrsync_sim::bench_hunting::HuntingSource,
        /// DeviceProcessEvents rows in advanced hunting.
        #[arg(long, default_value_t = 50_000)]
        process_rows: usize,
        /// EmailEvents rows in advanced hunting.
        #[arg(long, default_value_t = 10_000)]
        email_rows: usize,
        /// XDRSYNC_HUNTING_PAGE_ROWS.
        #[arg(long, default_value_t = 10_000)]
        page_rows: usize,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
        #[command(flatten)]
        stack: StackArgs,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Poller scaling in Defender tenants: time per tick and peak memory for each tenant count.
    Tenants {
        /// Tenant counts to measure, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [1usize, 10, 50])]
        tenants: Vec<usize>,
        /// Incidents per tenant.
        #[arg(long, default_value_t = 200)]
        incidents: usize,
        /// Poll interval, in seconds (1-59).
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=59))]
        poll_seconds: u32,
        /// xdrsync's XDRSYNC_GRAPH_CALLS_PER_MINUTE (each tenant's own budget).
        #[arg(long, default_value_t = 600)]
        graph_calls_per_minute: u32,
        /// Each simulated tenant's Graph budget per minute (429 beyond it); 0 = unthrottled.
        #[arg(long, default_value_t = 900)]
        tenant_graph_calls_per_minute: u32,
        /// xdrsync's XDRSYNC_ARM_WRITES_PER_SECOND (one budget for the workspace).
        #[arg(long, default_value_t = 200)]
        arm_writes_per_second: u32,
        /// xdrsync's XDRSYNC_WORKERS.
        #[arg(long, default_value_t = 32)]
        workers: usize,
        /// Quiet ticks measured after everything is mirrored.
        #[arg(long, default_value_t = 5)]
        quiet_ticks: usize,
        #[command(flatten)]
        stack: StackArgs,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Crash and outage proof: instances of one deployment on one storage account while new
    /// incidents, Defender updates and Sentinel edits flow; SIGKILLs (or a storage pause).
    /// Reports changes, kills, duplicates, lost changes, latency; exits 1 on a duplicate or loss.
    Soak {
        /// standalone (`xdrsync run`) or functions (`xdrsync serve` behind the Functions host emulator).
        #[arg(long, value_enum, default_value = "standalone")]
        mode: xdrsync_sim::bench_soak::SoakMode,
        /// kills (SIGKILL a random instance, restart it) or storage-outage (pause Azurite).
        #[arg(long, value_enum, default_value = "kills")]
        scenario: xdrsync_sim::bench_soak::Scenario,
        /// Instances sharing the storage account.
        #[arg(long, default_value_t = 3)]
        instances: usize,
        /// SIGKILLs over the run (scenario kills).
        #[arg(long, default_value_t = 20)]
        kills: usize,
        /// Length of the run, in seconds, while changes flow.
        #[arg(long, default_value_t = 300)]
        duration: u64,
        /// How long storage is paused (scenario storage-outage), in seconds.
        #[arg(long, default_value_t = 45)]
        outage_seconds: u64,
        /// Changes made a minute (new incidents, Defender updates, Sentinel edits in turn at random).
        #[arg(long, default_value_t = 60)]
        changes_per_minute: u32,
        /// Incidents mirrored before the run (the ones edited first).
        #[arg(long, default_value_t = 10)]
        initial_incidents: usize,
        /// Poll interval of the pollers, in seconds (1-59).
        #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=59))]
        poll_seconds: u32,
        /// After the run, how long changes may take to show before they count as lost, in seconds.
        #[arg(long, default_value_t = 180)]
        settle: u64,
        /// Seed of the random choices (which instance dies, which change comes next).
        #[arg(long, default_value_t = 17)]
        seed: u64,
        /// Show the instances' logs (`RUST_LOG`) on standard error.
        #[arg(long)]
        logs: bool,
        #[command(flatten)]
        budgets: BudgetArgs,
        #[command(flatten)]
        stack: StackArgs,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Call budgets: what xdrsync spends and what the simulated tenant allows.
#[derive(clap::Args)]
struct BudgetArgs {
    /// xdrsync's XDRSYNC_GRAPH_CALLS_PER_MINUTE.
    #[arg(long, default_value_t = 120)]
    graph_calls_per_minute: u32,
    /// xdrsync's XDRSYNC_ARM_WRITES_PER_SECOND (the refill of its ARM write budget).
    #[arg(long, default_value_t = 8)]
    arm_writes_per_second: u32,
    /// xdrsync's XDRSYNC_ARM_WRITE_BURST.
    #[arg(long, default_value_t = 150)]
    arm_write_burst: u32,
    /// The simulated tenant's Graph budget per minute (429 beyond it); 0 = unthrottled.
    #[arg(long, default_value_t = 150)]
    tenant_graph_calls_per_minute: u32,
    /// Whether the simulated ARM enforces its documented buckets per principal (429 beyond them).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    tenant_arm_limits: bool,
}

impl BudgetArgs {
    fn budgets(&self) -> xdrsync_sim::demo::Budgets {
        xdrsync_sim::demo::Budgets {
            graph_calls_per_minute: self.graph_calls_per_minute,
            arm_writes_per_second: self.arm_writes_per_second,
            arm_write_burst: self.arm_write_burst,
            sim_graph_calls_per_minute: Some(self.tenant_graph_calls_per_minute).filter(|b| *b > 0),
            sim_arm_limits: self.tenant_arm_limits,
        }
    }
}

/// Where the demo finds Azurite and the xdrsync binary it runs.
#[derive(clap::Args)]
struct StackArgs {
    /// Repository root holding node_modules/.bin/azurite.
    #[arg(long, default_value = ".")]
    repo: PathBuf,
    /// The xdrsync binary to run (default: `xdrsync` beside this executable).
    #[arg(long, env = "XDRSYNC_BIN")]
    xdrsync: Option<PathBuf>,
}

impl StackArgs {
    fn xdrsync_binary(&self) -> anyhow::Result<PathBuf> {
        match &self.xdrsync {
            Some(p) => Ok(p.clone()),
            None => xdrsync_sim::demo::sibling_binary("xdrsync"),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    xdrsync_sim::init_logging();
    let result = interruptible(async move {
        match cli.command {
            Command::Serve { port, seed_incidents, token_lifetime, storage, env_file, tenants: 0 } => {
                serve(port, seed_incidents, token_lifetime, &storage, env_file).await
            }
            Command::Serve { port, seed_incidents, token_lifetime, tenants, storage, .. } => {
                serve_tenants(port, seed_incidents, token_lifetime, tenants, &storage).await
            }
            Command::Demo {
                incidents,
                poll_seconds,
                timeout,
                spread_seconds,
                history_days,
                poll_time_budget,
                budgets,
                stack,
                json,
            } => {
                let opts = xdrsync_sim::demo::DemoOptions {
                    incidents,
                    poll_seconds,
                    timeout: std::time::Duration::from_secs(timeout),
                    xdrsync_bin: match stack.xdrsync_binary() {
                        Ok(b) => b,
                        Err(e) => return Err(e),
                    },
                    repo_root: stack.repo,
                    json,
                    spread_seconds,
                    budgets: budgets.budgets(),
                    history_days,
                    poll_time_budget,
                };
                demo(opts, json).await
            }
            Command::Bench {
                what: Some(BenchWhat::Hunting { source, process_rows, email_rows, page_rows, timeout, stack, json }),
                ..
            } => bench_hunting(source, process_rows, email_rows, page_rows, timeout, stack, json).await,
            Command::Bench { what: Some(mode @ BenchWhat::Tenants { .. }), .. } => bench_tenants(mode).await,
            Command::Bench { what: Some(soak @ BenchWhat::Soak { .. }), .. } => bench_soak(soak).await,
            Command::Bench { what: Some(BenchWhat::Edits { edits, poll_seconds, budgets, stack, json }), .. } => {
                let opts = xdrsync_sim::bench_edits::EditsBenchOptions {
                    edits,
                    poll_seconds,
                    budgets: budgets.budgets(),
                    xdrsync_bin: stack.xdrsync_binary()?,
                    repo_root: stack.repo,
                };
                let report = xdrsync_sim::bench_edits::run(opts).await?;
                emit(json, &report, xdrsync_sim::bench_edits::print)?;
                Ok(report.delivered == edits)
            }
            Command::Bench { what: None, edits, poll_seconds, stack, json } => {
                bench(edits, poll_seconds, stack, json).await
            }
        }
    })
    .await;
    let result = match result {
        Interruptible::Done(r) => r,
        Interruptible::Stopped(signal) => {
            eprintln!(
                "xdrsync-sim: stopped by {signal}; any Azurite and xdrsync processes it started are stopped with it"
            );
            return ExitCode::from(130);
        }
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("xdrsync-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A command's result, or the signal that stopped it.
enum Interruptible<T> {
    Done(T),
    Stopped(&'static str),
}

/// Runs `work` until it ends or SIGINT/SIGTERM arrives; on a signal the work is dropped, which
/// kills the child processes it started (their guards kill them on drop).
async fn interruptible<T>(work: impl std::future::Future<Output = T>) -> Interruptible<T> {
    // The handlers are registered here, before `work` first runs: a signal sent as soon as the
    // work prints (a script or test reading our output) must not meet the default action.
    #[cfg(unix)]
    let signal = {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => tokio::select! {
                    _ = int.recv() => "SIGINT",
                    _ = term.recv() => "SIGTERM",
                },
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                    "SIGINT"
                }
            }
        }
    };
    #[cfg(not(unix))]
    let signal = async {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    };
    tokio::select! {
        r = work => Interruptible::Done(r),
        s = signal => Interruptible::Stopped(s),
    }
}

async fn demo(opts: xdrsync_sim::demo::DemoOptions, json: bool) -> anyhow::Result<bool> {
    let report = xdrsync_sim::demo::run(opts).await?;
    emit(json, &report, xdrsync_sim::demo::print)?;
    Ok(report.ok)
}

/// Prints a report as JSON (`--json`) or as text for a person.
fn emit<R: serde::Serialize>(json: bool, report: &R, print: fn(&R)) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print(report);
    }
    Ok(())
}

async fn bench(edits: usize, poll_seconds: u32, stack: StackArgs, json: bool) -> anyhow::Result<bool> {
    let opts = xdrsync_sim::bench::BenchOptions {
        edits,
        poll_seconds,
        xdrsync_bin: stack.xdrsync_binary()?,
        repo_root: stack.repo,
    };
    let report = xdrsync_sim::bench::run(opts).await?;
    emit(json, &report, xdrsync_sim::bench::print)?;
    Ok(report.webhook.delivered == edits && report.sweep_only.delivered == edits)
}

async fn bench_hunting(
    source: xdrsync_sim::bench_hunting::HuntingSource,
    process_rows: usize,
    email_rows: usize,
    page_rows: usize,
    timeout: u64,
    stack: StackArgs,
    json: bool,
) -> anyhow::Result<bool> {
    let opts = xdrsync_sim::bench_hunting::HuntingBenchOptions {
        source,
        process_rows,
        email_rows,
        page_rows,
        timeout: std::time::Duration::from_secs(timeout),
        xdrsync_bin: stack.xdrsync_binary()?,
        repo_root: stack.repo,
    };
    let report = xdrsync_sim::bench_hunting::run(opts).await?;
    emit(json, &report, xdrsync_sim::bench_hunting::print)?;
    Ok(report.ok)
}

async fn bench_tenants(mode: BenchWhat) -> anyhow::Result<bool> {
    let BenchWhat::Tenants {
        tenants,
        incidents,
        poll_seconds,
        graph_calls_per_minute,
        tenant_graph_calls_per_minute,
        arm_writes_per_second,
        workers,
        quiet_ticks,
        stack,
        json,
    } = mode
    else {
        anyhow::bail!("bench_tenants runs the tenants benchmark only");
    };
    let opts = xdrsync_sim::bench_tenants::TenantBenchOptions {
        tenants,
        incidents,
        poll_seconds,
        graph_calls_per_minute,
        tenant_graph_calls_per_minute,
        arm_writes_per_second,
        workers,
        quiet_ticks,
        xdrsync_bin: stack.xdrsync_binary()?,
        repo_root: stack.repo,
    };
    let report = xdrsync_sim::bench_tenants::run(opts).await?;
    emit(json, &report, xdrsync_sim::bench_tenants::print)?;
    Ok(true)
}

async fn bench_soak(what: BenchWhat) -> anyhow::Result<bool> {
    let BenchWhat::Soak {
        mode,
        scenario,
        instances,
        kills,
        duration,
        outage_seconds,
        changes_per_minute,
        initial_incidents,
        poll_seconds,
        settle,
        seed,
        logs,
        budgets,
        stack,
        json,
    } = what
    else {
        anyhow::bail!("bench_soak runs the soak only");
    };
    let opts = xdrsync_sim::bench_soak::SoakOptions {
        mode,
        scenario,
        instances,
        kills,
        duration: std::time::Duration::from_secs(duration),
        outage: std::time::Duration::from_secs(outage_seconds),
        changes_per_minute,
        initial_incidents,
        poll_seconds,
        settle: std::time::Duration::from_secs(settle),
        seed,
        budgets: budgets.budgets(),
        xdrsync_bin: stack.xdrsync_binary()?,
        repo_root: stack.repo,
        progress: !json,
        show_logs: logs,
    };
    let report = xdrsync_sim::bench_soak::run(opts).await?;
    emit(json, &report, xdrsync_sim::bench_soak::print)?;
    Ok(report.ok)
}

/// `serve --tenants N`: the workspace tenant plus N Defender tenants behind one address.
async fn serve_tenants(
    port: u16,
    seed_incidents: usize,
    token_lifetime: u64,
    tenants: usize,
    storage: &str,
) -> anyhow::Result<bool> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let config = SimConfig { token_lifetime_secs: token_lifetime, ..SimConfig::demo() };
    let extra = xdrsync_sim::sim::tenants::tenant_configs(&config, tenants);
    let ids: Vec<String> = extra.iter().map(|c| c.tenant_id.clone()).collect();
    let running = xdrsync_sim::sim::tenants::spawn_tenants(listener, config.clone(), extra, Vec::new()).await?;
    if seed_incidents > 0 {
        for t in &ids {
            if let Some(sim) = running.sims.tenant(t) {
                let spec = SeedSpec { count: seed_incidents, ..Default::default() };
                xdrsync_sim::sim::seed::seed(&mut sim.world(), t, &spec);
            }
        }
    }
    let mut settings = xdrsync_sim::sim::serve_settings(&config, running.addr, storage);
    let list: Vec<String> = ids.iter().enumerate().map(|(i, t)| format!("{t}=Tenant {}", i + 1)).collect();
    settings.push(("XDRSYNC_DEFENDER_TENANTS".to_string(), list.join(",")));
    println!("xdrsync simulator ({tenants} Defender tenants) listening on {}", running.base_url());
    print!("{}", xdrsync_sim::sim::env_file_text(&settings));
    let _ = tokio::signal::ctrl_c().await;
    Ok(true)
}

async fn serve(
    port: u16,
    seed_incidents: usize,
    token_lifetime: u64,
    storage: &str,
    env_file: Option<PathBuf>,
) -> anyhow::Result<bool> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let config = SimConfig { token_lifetime_secs: token_lifetime, ..SimConfig::demo() };
    let running = xdrsync_sim::sim::spawn(listener, config.clone()).await?;
    if seed_incidents > 0 {
        let spec = SeedSpec { count: seed_incidents, ..Default::default() };
        xdrsync_sim::sim::seed::seed(&mut running.sim.world(), &config.tenant_id, &spec);
    }
    let settings = xdrsync_sim::sim::serve_settings(&config, running.addr, storage);
    let text = xdrsync_sim::sim::env_file_text(&settings);
    println!("xdrsync simulator listening on {}", running.base_url());
    print!("{text}");
    if let Some(path) = &env_file {
        std::fs::write(path, &text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
        println!("# written to {}: run `xdrsync check --env-file {}`", path.display(), path.display());
    }
    println!("# storage: start Azurite first (npx azurite --silent --location .azurite --tableHost 127.0.0.1 --queueHost 127.0.0.1 --blobHost 127.0.0.1)");
    let _ = tokio::signal::ctrl_c().await;
    Ok(true)
}
