//! The `xdrsync` command line: parses arguments, loads configuration, and hands off to the
//! library. Startup is the only place that may stop the process on a bad configuration.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use xdrsync::app;
use xdrsync::config::Config;

#[path = "cli/commands.rs"]
mod commands;

#[derive(Parser)]
#[command(
    name = "xdrsync",
    version,
    about = "Keeps Microsoft Defender XDR and Microsoft Sentinel incidents in one state, both ways.",
    after_help = "With no command and FUNCTIONS_CUSTOMHANDLER_PORT set (inside an Azure Functions host), runs `serve`."
)]
struct Cli {
    /// Log as JSON lines (default: human-readable).
    #[arg(long, global = true, env = "XDRSYNC_LOG_JSON")]
    log_json: bool,
    /// A Functions `local.settings.json` whose `Values` are read as settings (default: the one in
    /// the current directory, if any). The environment takes precedence.
    #[arg(long, global = true, value_name = "FILE")]
    settings: Option<std::path::PathBuf>,
    /// A file of KEY=VALUE lines read as settings (`#` comments; over local.settings.json,
    /// under the environment).
    #[arg(long, global = true, value_name = "FILE")]
    env_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Validate the configuration, get a token for each API, and reach storage.
    ///
    /// Reads the same app settings as the Function App (environment variables) and reports
    /// each problem in plain words, naming the setting to fix. Exits non-zero on any problem.
    Check,
    /// Serve the Azure Functions custom handler on FUNCTIONS_CUSTOMHANDLER_PORT (127.0.0.1).
    ///
    /// The Functions host starts this (host.json `customHandler`) and calls POST /{FunctionName}
    /// with the invocation envelope. It is also the default when FUNCTIONS_CUSTOMHANDLER_PORT is set.
    Serve {
        /// Port to listen on (default: FUNCTIONS_CUSTOMHANDLER_PORT).
        #[arg(long, env = "FUNCTIONS_CUSTOMHANDLER_PORT")]
        port: u16,
    },
    /// Run standalone, without a Functions host: the poller on XDRSYNC_POLL_SCHEDULE (one instance
    /// at a time, by a lease in Table Storage), queue workers with poison handling, and HTTP on
    /// XDRSYNC_HTTP_BIND:XDRSYNC_HTTP_PORT serving only GET /api/health and
    /// POST /api/sentinel/incidents. Stops gracefully on SIGTERM or Ctrl-C.
    Run,
    /// List the incidents whose sync did not complete (the `Failures` table): since when, how
    /// often, why, and when they are tried again.
    Failures {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-enqueue failed incidents now: the Defender incident ids given, or every recorded one
    /// with --all.
    Retry {
        /// Every incident in the `Failures` table.
        #[arg(long, conflicts_with = "ids")]
        all: bool,
        /// Defender incident ids.
        #[arg(required_unless_present = "all")]
        ids: Vec<String>,
    },
    /// One screen of health: per feed lag and last success, queue backlog, poison and failure
    /// counts, mirrors created / redirected / conflicted in the last 24 hours, last errors.
    /// Exits 1 when unhealthy.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Compare every mirrored pair with its stored base and print the drift table; without
    /// --dry-run, enqueue a reconcile for each drifted incident. Also reports Defender incidents
    /// without a mirror and mirrors deleted in Sentinel (recreated by the reconcile).
    Reconcile {
        /// How far back, as an ISO-8601 duration (P7D, PT12H): Defender incidents updated, or
        /// pairs synced, within it.
        #[arg(long, default_value = "P7D", value_parser = parse_duration)]
        since: time::Duration,
        /// Only these Defender incident ids (repeatable; --since is then ignored).
        #[arg(long = "incident", value_name = "ID")]
        incidents: Vec<String>,
        /// Report only; enqueue nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Mirror the history of a window (e.g. P90D) now, in this process, within the call budgets:
    /// a progress bar on a terminal, log lines otherwise. Resumable: Ctrl-C or a crash leaves a
    /// cursor, and the same command resumes at the last whole day.
    Backfill {
        /// How far back, as an ISO-8601 duration (P90D).
        #[arg(long, value_parser = parse_duration)]
        since: time::Duration,
        /// Start over instead of resuming an unfinished backfill.
        #[arg(long)]
        restart: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Connect a workspace: run every check, create tables and queues, list (and with
    /// --disable-duplicate-rules disable) the Microsoft incident-creation rules that would
    /// duplicate Defender XDR incidents, warn when the Defender XDR connector creates incidents,
    /// and run one poll.
    Connect {
        /// Disable the Microsoft incident-creation rules of Defender XDR products.
        #[arg(long)]
        disable_duplicate_rules: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Advanced-hunting export: a table's columns, or what exporting tables would cost.
    Hunting {
        #[command(subcommand)]
        command: HuntingCommand,
    },
    /// Assemble a deployable Functions app: host.json and one folder per function at its root,
    /// plus an xdrsync binary, ready for `func azure functionapp publish`.
    ///
    /// For Azure, use `./scripts/package.sh DIR`: it builds a binary linked against glibc <= 2.28,
    /// which every Linux Functions host image can start (a plain `cargo build` on a newer machine
    /// needs glibc 2.34+), then runs this command. A binary needing a newer glibc is refused
    /// (exit 2) unless --allow-newer-glibc; so is a non-empty output folder unless --force.
    Package {
        /// Output folder (created if missing; must be empty, see --force).
        #[arg(long)]
        out: std::path::PathBuf,
        /// Binary to ship (default: this executable); refused unless it is an xdrsync binary.
        #[arg(long)]
        binary: Option<std::path::PathBuf>,
        /// Also ship HuntingEventHub (the advanced-hunting Event Hub trigger; needs
        /// XDRSYNC_HUNTING_EVENTHUB_NAME and XDRSYNC_HUNTING_EVENTHUB_CONNECTION).
        #[arg(long)]
        event_hub: bool,
        /// Empty a non-empty output folder first (stale function folders would be published).
        #[arg(long)]
        force: bool,
        /// Ship a binary needing a glibc newer than 2.28 anyway, with a warning (only for hosts
        /// known to have that glibc).
        #[arg(long)]
        allow_newer_glibc: bool,
    },
}

#[derive(Subcommand)]
enum HuntingCommand {
    /// Print a table's columns in its workspace copy `<Table>_CL` (name and KQL type).
    Schema {
        /// An advanced-hunting table (e.g. DeviceProcessEvents).
        #[arg(required_unless_present = "all")]
        table: Option<String>,
        /// Every table (with --json: the content of infra/hunting-tables.json).
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Estimate rows and MB per day for each table from a sample window (two queries a table).
    Estimate {
        /// Tables (default: XDRSYNC_HUNTING_TABLES), comma-separated.
        #[arg(long, value_delimiter = ',')]
        tables: Vec<String>,
        /// The sample window before now − XDRSYNC_HUNTING_DELAY_SECONDS (ISO 8601: PT1H, P1D).
        #[arg(long, default_value = "PT1H")]
        sample: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What `xdrsync package --binary` looks for (`package::MARKER_PARTS` + the version): proof that
/// a file is this program. `main` touches it so no linker drops it.
static BINARY_MARKER: &str =
    concat!("xdrsync-binary-marker:", "functions-custom-handler ", env!("CARGO_PKG_VERSION"), "\0");

fn parse_duration(raw: &str) -> Result<time::Duration, String> {
    xdrsync::domain::iso_duration::parse_iso_duration(raw).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let _ = std::hint::black_box(BINARY_MARKER);
    let cli = Cli::parse();
    // Settings files, before any thread starts (setting the environment is not thread-safe).
    // `serve` runs under the Functions host, which provides the settings; `package` needs none.
    let reads_settings = !matches!(cli.command, None | Some(Command::Serve { .. }) | Some(Command::Package { .. }));
    if reads_settings {
        let sources =
            xdrsync::ops::settings_file::Sources { settings: cli.settings.clone(), env_file: cli.env_file.clone() };
        if let Err(e) = xdrsync::ops::settings_file::apply(&sources) {
            eprintln!("settings file error: {e}");
            return ExitCode::from(2);
        }
    }
    // Parsed again so settings from the files (XDRSYNC_LOG_JSON) count.
    let cli = if reads_settings { Cli::parse() } else { cli };
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt.block_on(run(cli)),
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> ExitCode {
    xdrsync::telemetry::init(cli.log_json);
    let command = match cli.command {
        Some(c) => c,
        None => match std::env::var("FUNCTIONS_CUSTOMHANDLER_PORT").ok().and_then(|p| p.parse().ok()) {
            Some(port) => Command::Serve { port },
            None => {
                use clap::CommandFactory;
                let _ = Cli::command().print_help();
                return ExitCode::from(2);
            }
        },
    };
    match command {
        Command::Check => run_check().await,
        Command::Serve { port } => serve(port).await,
        Command::Run => run_standalone().await,
        Command::Package { out, binary, event_hub, force, allow_newer_glibc } => {
            package(&out, binary, xdrsync::cli::package::Options { event_hub, force, allow_newer_glibc })
        }
        Command::Failures { json } => failures(json).await,
        Command::Retry { all, ids } => retry(all, ids).await,
        Command::Status { json } => commands::status(json).await,
        Command::Reconcile { since, incidents, dry_run, json } => {
            commands::reconcile(xdrsync::ops::reconcile::Options { since, incidents, dry_run }, json).await
        }
        Command::Backfill { since, restart, json } => {
            commands::backfill(xdrsync::ops::backfill::Options { since, restart }, json).await
        }
        Command::Connect { disable_duplicate_rules, json } => {
            commands::connect(xdrsync::ops::connect::Options { disable_duplicate_rules }, json).await
        }
        Command::Hunting { command } => hunting(command).await,
    }
}

async fn serve(port: u16) -> ExitCode {
    let cfg = match load_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let services = std::sync::Arc::new(app::build(cfg));
    // Features on whose timer the host does not run: said at start and in health.
    let given = xdrsync::functions::host_timers::given_functions(&xdrsync::functions::host_timers::script_root());
    let gaps =
        xdrsync::functions::host_timers::gaps(&services.config, |k| std::env::var_os(k).is_some(), given.as_deref());
    for gap in &gaps {
        tracing::error!(function = gap.function, setting = gap.setting, "{gap}");
    }
    services.health_cache.set_notes(gaps.iter().map(ToString::to_string).collect());
    // Create what the functions write to before answering the host; a storage outage must not
    // keep the handler from starting (health reports it), so this is bounded.
    let warm = async {
        services.store.ensure_tables().await?;
        services.queue.ensure_queue(&services.config.queue_name).await?;
        xdrsync::usecase::migrate::run_all(&services).await;
        Ok::<(), xdrsync::error::PortError>(())
    };
    match tokio::time::timeout(std::time::Duration::from_secs(20), warm).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error.message = %e, "cannot prepare tables and queue"),
        Err(_) => tracing::error!("storage did not answer within 20 s"),
    }
    let listener = match xdrsync::functions::listen(port).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(port, "custom handler listening");
    let app = xdrsync::functions::router(services);
    let stop = xdrsync::standalone::shutdown_signal();
    xdrsync::http_api::serve(listener, app, xdrsync::http_api::READ_TIMEOUT, stop).await;
    ExitCode::SUCCESS
}

async fn run_standalone() -> ExitCode {
    let cfg = match load_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let port = cfg.http_port;
    let services = std::sync::Arc::new(app::build(cfg));
    let runner = match xdrsync::standalone::start(services, port).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    xdrsync::standalone::shutdown_signal().await;
    tracing::info!("shutting down");
    runner.shutdown().await;
    ExitCode::SUCCESS
}

fn package(
    out: &std::path::Path,
    binary: Option<std::path::PathBuf>,
    opts: xdrsync::cli::package::Options,
) -> ExitCode {
    let binary = match binary.map(Ok).unwrap_or_else(std::env::current_exe) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("cannot find the binary to ship: {e}");
            return ExitCode::FAILURE;
        }
    };
    match xdrsync::cli::package::package(out, &binary, opts) {
        Ok(p) => {
            let glibc = p.glibc.map_or("no glibc (statically linked)".to_string(), |v| format!("glibc {v}"));
            println!("packaged xdrsync {} from {} (needs {glibc})", p.version, binary.display());
            for f in p.files {
                println!("{}", f.display());
            }
            println!("publish with: cd {} && func azure functionapp publish <app-name> --custom", out.display());
            if let Some(w) = p.warning {
                eprintln!("WARNING: {w}");
            }
            ExitCode::SUCCESS
        }
        Err(e @ xdrsync::cli::package::PackageError::Refused(_)) => {
            eprintln!("package refused: {e}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("package failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn load_config() -> Result<Config, ExitCode> {
    Config::from_env().map_err(|e| {
        eprintln!("configuration error: {e}");
        ExitCode::from(2)
    })
}

async fn run_check() -> ExitCode {
    // Every configuration problem at once, then (if the configuration is usable) every service.
    let vars: std::collections::HashMap<String, String> = std::env::vars().collect();
    let findings = xdrsync::config::audit::audit(&vars);
    for f in &findings {
        println!("{} {:<28} {}", if f.error { "FAIL" } else { "warn" }, f.setting, f.message);
    }
    if findings.iter().any(|f| f.error) {
        println!("configuration error: fix the settings above, then run check again");
        return ExitCode::from(2);
    }
    let cfg = match load_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let services = app::build(cfg);
    let lines = xdrsync::check::run(&services).await;
    let mut ok = true;
    for l in &lines {
        ok &= l.ok;
        println!("{} {:<28} {}", if l.ok { "ok  " } else { "FAIL" }, l.what, l.detail);
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn failures(json: bool) -> ExitCode {
    let cfg = match load_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let ports = app::build(cfg);
    match xdrsync::usecase::failures::list_all(&ports).await {
        Ok(records) if json => {
            println!("{}", serde_json::to_string_pretty(&records).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(records) => {
            if records.is_empty() {
                println!("no failed incidents");
            }
            for r in &records {
                let next = r.next_retry.map_or("waits for `xdrsync retry`".to_string(), |t| format!("retry at {t}"));
                println!(
                    "incident {:<12} {:>3} attempt(s) since {}  {:?}  {}\n    {}",
                    r.incident_id, r.attempts, r.first_failure, r.class, next, r.message
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot read the Failures table: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn hunting(command: HuntingCommand) -> ExitCode {
    let result = match command {
        HuntingCommand::Schema { table, all, json } => xdrsync::cli::hunting::schema(table.as_deref(), all, json),
        HuntingCommand::Estimate { tables, sample, json } => {
            let cfg = match load_config() {
                Ok(c) => c,
                Err(code) => return code,
            };
            xdrsync::cli::hunting::estimate_command(&app::build(cfg), &tables, &sample, json).await
        }
    };
    match result {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}

async fn retry(all: bool, ids: Vec<String>) -> ExitCode {
    let cfg = match load_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let ports = app::build(cfg);
    let which = if all { None } else { Some(ids.as_slice()) };
    match xdrsync::usecase::failures::retry(&ports, which).await {
        Ok(report) => {
            println!("enqueued {} incident(s): {}", report.enqueued.len(), report.enqueued.join(", "));
            for (id, why) in &report.not_enqueued {
                eprintln!("not enqueued: {id}: {why}");
            }
            if report.not_enqueued.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("cannot enqueue: {e}");
            ExitCode::FAILURE
        }
    }
}
