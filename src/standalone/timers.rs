//! The standalone timers: each runs its job on its NCRONTAB schedule on the one instance that
//! holds the job's lease (a row in Table Storage), as the Functions host runs a timer once per
//! app. An instance that does not hold it says so once per change and keeps serving the queue
//! and HTTP.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::lease;
use crate::schedule::Schedule;
use crate::usecase::Ports;

/// One timer: its lease row's name, its schedule and the words its log lines use.
pub(super) struct Timer {
    pub lease: &'static str,
    pub schedule: Schedule,
    pub label: &'static str,
}

/// Runs `tick` at every occurrence of the schedule while this instance holds the lease, until
/// `stopped` turns true.
pub(super) async fn run<F, Fut>(s: Arc<Ports>, timer: Timer, me: String, mut stopped: watch::Receiver<bool>, tick: F)
where
    F: Fn(Arc<Ports>) -> Fut,
    Fut: Future<Output = ()>,
{
    // The lease outlives a few ticks so a slow run keeps it, but a dead holder is replaced.
    let ttl = (timer.schedule.wait_from(s.clock.now()) * 3).max(Duration::from_secs(15));
    // Whether this instance held the lease at the last tick: said once per change.
    let mut holding: Option<bool> = None;
    loop {
        let wait = timer.schedule.wait_from(s.clock.now());
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped.wait_for(|v| *v) => return,
        }
        match lease::try_acquire(&s, timer.lease, &me, ttl).await {
            Ok(true) => {
                if holding == Some(false) {
                    tracing::info!(instance.id = %me, timer = timer.label, "took over the {} lease; running", timer.label);
                }
                holding = Some(true);
                tick(s.clone()).await;
            }
            Ok(false) => {
                if holding != Some(false) {
                    tracing::info!(
                        instance.id = %me,
                        timer = timer.label,
                        "on standby: another instance holds the {} lease (queue workers and HTTP still run here)",
                        timer.label
                    );
                }
                holding = Some(false);
            }
            Err(e) => tracing::warn!(timer = timer.label, error.message = %e, "could not check the lease"),
        }
    }
}
