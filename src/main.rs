//! The `xdrsync` command line: parses arguments, loads configuration, and hands off to the
//! library. Startup is the only place that may stop the process on a bad configuration.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use xdrsync::app::Services;
use xdrsync::config::Config;
use xdrsync::sim::seed::SeedSpec;
use xdrsync::sim::SimConfig;

#[derive(Parser)]
#[command(
    name = "xdrsync",
    version,
    about = "Keeps Microsoft Defender XDR and Microsoft Sentinel incidents in one state, both ways."
)]
struct Cli {
    /// Log as JSON lines (default: human-readable).
    #[arg(long, global = true, env = "XDRSYNC_LOG_JSON")]
    log_json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the local simulator of Entra ID, Defender (Graph), Sentinel (ARM) and Logs Ingestion.
    ///
    /// One loopback port serves every API at its real path, plus a control API under /_sim
    /// (seed incidents, analyst edits, merges, faults, request counts). It prints the
    /// XDRSYNC_* settings that point xdrsync at it.
    Sim {
        /// Port to listen on (0 = any free port).
        #[arg(long, default_value_t = 7400)]
        port: u16,
        /// Incidents to seed at startup.
        #[arg(long, default_value_t = 0)]
        seed_incidents: usize,
        /// Lifetime of issued access tokens, in seconds.
        #[arg(long, default_value_t = 3599)]
        token_lifetime: u64,
    },
    /// Validate the configuration, get a token for each API, and reach storage.
    ///
    /// Reads the same app settings as the Function App (environment variables) and reports
    /// each problem in plain words, naming the setting to fix. Exits non-zero on any problem.
    Check,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    xdrsync::telemetry::init(cli.log_json);
    match cli.command {
        Command::Sim {
            port,
            seed_incidents,
            token_lifetime,
        } => run_sim(port, seed_incidents, token_lifetime).await,
        Command::Check => run_check().await,
    }
}

fn load_config() -> Result<Config, ExitCode> {
    Config::from_env().map_err(|e| {
        eprintln!("configuration error: {e}");
        ExitCode::from(2)
    })
}

async fn run_check() -> ExitCode {
    let cfg = match load_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let services = Services::from_config(cfg);
    let lines = xdrsync::check::run(&services).await;
    let mut ok = true;
    for l in &lines {
        ok &= l.ok;
        println!(
            "{} {:<28} {}",
            if l.ok { "ok  " } else { "FAIL" },
            l.what,
            l.detail
        );
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn run_sim(port: u16, seed_incidents: usize, token_lifetime: u64) -> ExitCode {
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let config = SimConfig {
        token_lifetime_secs: token_lifetime,
        ..SimConfig::demo()
    };
    let running = match xdrsync::sim::spawn(listener, config.clone()).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("simulator failed to start: {e}");
            return ExitCode::FAILURE;
        }
    };
    if seed_incidents > 0 {
        let spec = SeedSpec {
            count: seed_incidents,
            ..Default::default()
        };
        xdrsync::sim::seed::seed(&mut running.sim.world(), &config.tenant_id, &spec);
    }
    println!("xdrsync simulator listening on {}", running.base_url());
    println!("# settings for xdrsync:");
    for (k, v) in config.settings_for(running.addr) {
        println!("export {k}='{v}'");
    }
    let _ = tokio::signal::ctrl_c().await;
    ExitCode::SUCCESS
}
