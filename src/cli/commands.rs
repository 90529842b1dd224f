//! The operator commands' edge (part of the `xdrsync` binary): load the configuration, run the
//! use case from `xdrsync::ops`, print text or JSON, and choose the exit code.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use xdrsync::app;
use xdrsync::config::Config;
use xdrsync::ops;

fn ports() -> Result<xdrsync::usecase::Ports, ExitCode> {
    Config::from_env().map(app::build).map_err(|e| {
        eprintln!("configuration error: {e}");
        ExitCode::from(2)
    })
}

fn print_json<T: serde::Serialize>(v: &T) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

pub async fn status(json: bool) -> ExitCode {
    let s = match ports() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let st = ops::status::gather(&s).await;
    if json {
        print_json(&st);
    } else {
        print!("{}", ops::status::render(&st));
    }
    ExitCode::from(st.exit_code())
}

pub async fn reconcile(opts: ops::reconcile::Options, json: bool) -> ExitCode {
    let s = match ports() {
        Ok(s) => s,
        Err(code) => return code,
    };
    // Every Defender tenant in turn (one in single-tenant mode): each run is scoped to its tenant.
    let scopes = s.each_tenant();
    let mut reports = Vec::new();
    for t in &scopes {
        match ops::reconcile::run(t, &opts).await {
            Ok(r) => {
                if !json {
                    print!("{}", ops::reconcile::render(&r));
                }
                reports.push(r);
            }
            Err(e) => {
                eprintln!("reconcile of tenant {} failed: {e}", t.config.tenant_id);
                return ExitCode::FAILURE;
            }
        }
    }
    if json {
        match reports.as_slice() {
            [one] => print_json(one),
            many => print_json(&many),
        }
    }
    if reports.iter().all(|r| r.errors.is_empty()) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

pub async fn backfill(opts: ops::backfill::Options, json: bool) -> ExitCode {
    let s = match ports() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    tokio::spawn(async move {
        xdrsync::standalone::shutdown_signal().await;
        eprintln!("stopping after the incidents in flight; the next run resumes");
        flag.store(true, Ordering::Relaxed);
    });
    let bar;
    let lines;
    let progress: &dyn ops::backfill::Progress = if !json && std::io::stdout().is_terminal() {
        bar = ops::backfill::Bar::new();
        &bar
    } else {
        lines = ops::backfill::LogLines::new();
        &lines
    };
    // Every Defender tenant in turn (one in single-tenant mode), each resumable on its own.
    let scopes = s.each_tenant();
    let mut reports = Vec::new();
    for t in &scopes {
        match ops::backfill::run(t, &opts, progress, stop.clone()).await {
            Ok(r) => {
                if !json {
                    print!("{}", ops::backfill::render(&r));
                }
                let interrupted = r.interrupted;
                reports.push(r);
                if interrupted {
                    break;
                }
            }
            Err(e) => {
                eprintln!("backfill of tenant {} failed: {e}; run it again to resume", t.config.tenant_id);
                return ExitCode::FAILURE;
            }
        }
    }
    if json {
        match reports.as_slice() {
            [one] => print_json(one),
            many => print_json(&many),
        }
    }
    if reports.iter().any(|r| r.interrupted) {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    }
}

pub async fn connect(opts: ops::connect::Options, json: bool) -> ExitCode {
    let s = match ports() {
        Ok(s) => s,
        Err(code) => return code,
    };
    let r = ops::connect::run(&s, opts).await;
    if json {
        print_json(&r);
    } else {
        print!("{}", ops::connect::render(&r));
    }
    if r.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
