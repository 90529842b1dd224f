//! `xdrsync run`: the same function bodies without a Functions host. Timers run on their
//! NCRONTAB schedules behind an ETag-guarded lease renewed while a tick runs (only one instance
//! ticks at a time); queue workers receive with a short visibility timeout renewed while a
//! message is processed, retry by letting messages reappear, and move a message to
//! `<queue>-poison` after 5 failed dequeues, as the host does; HTTP serves only the two public
//! routes, `GET /api/health` and `POST /api/sentinel/incidents` (no Functions invocation routes:
//! nothing reachable here runs a job), on `XDRSYNC_HTTP_BIND`:`XDRSYNC_HTTP_PORT`. SIGTERM/Ctrl-C
//! stops intake at once, gives in-flight work [`STOP_GRACE`], gives back what is still running
//! (messages visible again, leases released) and returns within [`STOP_BOUND`].

mod lease;
#[cfg(test)]
mod lease_tests;
mod timers;
mod worker;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;
use tokio::sync::watch;

use crate::domain::schedule::Schedule;
use crate::http_api;
use crate::usecase::Ports;
use crate::usecase::{hunting_jobs, jobs};
use timers::Timer;

pub use lease::try_acquire;
pub use worker::{MAX_DEQUEUE_COUNT, PROCESSING_LEASE};

/// What a runner has done (for tests and status).
#[derive(Debug, Default)]
pub struct RunnerStats {
    pub polls: AtomicU64,
    pub messages_done: AtomicU64,
    pub messages_failed: AtomicU64,
    pub messages_poisoned: AtomicU64,
    /// Ticks of the hunting query source (`HuntingExport`) started.
    pub hunting_runs: AtomicU64,
}

/// After a stop, how long in-flight work (a tick, a message) may still run before it is
/// abandoned: a message is made visible again, a tick is dropped (the next holder redoes it).
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// How long giving back a message or a lease may take once stopping; past it, they expire on
/// their own.
pub(crate) const CLEANUP_BOUND: Duration = Duration::from_secs(2);
/// The longest [`Runner::shutdown`] takes: containers usually grant 30 s after SIGTERM.
pub const STOP_BOUND: Duration = Duration::from_secs(9);

/// A running standalone instance.
pub struct Runner {
    pub instance_id: String,
    pub stats: Arc<RunnerStats>,
    pub http_addr: std::net::SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Runner {
    /// Stops intake at once and waits for in-flight work to finish or be given back; returns
    /// within [`STOP_BOUND`] whatever is still running (then aborted).
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + STOP_BOUND;
        for mut t in self.tasks {
            if tokio::time::timeout_at(deadline, &mut t).await.is_err() {
                t.abort();
            }
        }
    }

    /// Ends every task at once, giving nothing back: what a `kill -9` does (for tests).
    pub fn kill(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

/// The standalone HTTP surface: the two public routes; every other path and method is a JSON 404.
pub fn router(services: Arc<Ports>) -> Router {
    Router::new()
        .route(http_api::HEALTH_ROUTE, get(http_api::get_health))
        .route(http_api::WEBHOOK_ROUTE, post(http_api::post_webhook))
        .fallback(http_api::not_found)
        .method_not_allowed_fallback(http_api::not_found)
        .with_state(services)
}

/// Starts the poller, the queue workers and the HTTP server on `XDRSYNC_HTTP_BIND` and
/// `http_port` (0 picks a free port).
pub async fn start(services: Arc<Ports>, http_port: u16) -> anyhow::Result<Runner> {
    let cfg = services.config.clone();
    services.store.ensure_tables().await?;
    services.queue.ensure_queue(&cfg.queue_name).await?;
    services.queue.ensure_queue(&format!("{}-poison", cfg.queue_name)).await?;
    crate::usecase::migrate::run_all(&services).await;
    let schedule = Schedule::parse(&cfg.poll_schedule).map_err(anyhow::Error::msg)?;
    let instance_id = uuid::Uuid::new_v4().to_string();
    let stats = Arc::new(RunnerStats::default());
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();

    let addr = std::net::SocketAddr::new(cfg.http_bind, http_port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {addr} (XDRSYNC_HTTP_BIND, XDRSYNC_HTTP_PORT): {e}"))?;
    let http_addr = listener.local_addr()?;
    let mut http_stop = stopped.clone();
    let http_stopped = async move {
        let _ = http_stop.wait_for(|s| *s).await;
    };
    tasks.push(tokio::spawn(http_api::serve(listener, router(services.clone()), http_api::READ_TIMEOUT, http_stopped)));

    let poll_stats = stats.clone();
    let poller = Timer { lease: jobs::POLLER_NAME, schedule, label: "poller" };
    tasks.push(tokio::spawn(timers::run(services.clone(), poller, instance_id.clone(), stopped.clone(), move |s| {
        poll_stats.polls.fetch_add(1, Ordering::Relaxed);
        async move {
            let _ = jobs::poll(&s).await;
        }
    })));
    // Each hunting source is its own singleton job with its own lease, as in Functions mode.
    let hunting_schedule = || Schedule::parse(&cfg.hunting.schedule).map_err(anyhow::Error::msg);
    if !cfg.hunting.tables.is_empty() {
        let hunting =
            Timer { lease: hunting_jobs::HUNTING_EXPORT_NAME, schedule: hunting_schedule()?, label: "hunting export" };
        let hunting_stats = stats.clone();
        tasks.push(tokio::spawn(timers::run(
            services.clone(),
            hunting,
            instance_id.clone(),
            stopped.clone(),
            move |s| {
                hunting_stats.hunting_runs.fetch_add(1, Ordering::Relaxed);
                async move {
                    let _ = hunting_jobs::hunting_export(&s).await;
                }
            },
        )));
    }
    if !cfg.hunting.storage_tables.is_empty() {
        let storage = Timer {
            lease: hunting_jobs::HUNTING_STORAGE_NAME,
            schedule: hunting_schedule()?,
            label: "hunting storage export",
        };
        tasks.push(tokio::spawn(timers::run(
            services.clone(),
            storage,
            instance_id.clone(),
            stopped.clone(),
            |s| async move {
                let _ = hunting_jobs::hunting_storage(&s).await;
            },
        )));
    }
    for n in 0..cfg.workers {
        tasks.push(tokio::spawn(worker::run(services.clone(), n, stats.clone(), stopped.clone())));
    }
    tracing::info!(instance.id = %instance_id, http.addr = %http_addr, workers = cfg.workers, poll.schedule = %cfg.poll_schedule, "standalone xdrsync started");
    Ok(Runner { instance_id, stats, http_addr, stop, tasks })
}

/// Waits for SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
