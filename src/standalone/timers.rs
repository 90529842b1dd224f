//! The standalone timers: each runs its job on its NCRONTAB schedule on the one instance that
//! holds the job's lease (a row in Table Storage), as the Functions host runs a timer once per
//! app. The lease is renewed while a tick runs and the tick is dropped if the lease is lost
//! ([`lease::hold_while`]). An instance that does not hold it says so once per change and keeps
//! serving the queue and HTTP. On stop, a running tick gets [`super::STOP_GRACE`] to finish, is
//! then dropped, and the lease is given up so another instance takes the next tick at once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::lease;
use crate::domain::schedule::Schedule;
use crate::usecase::Ports;

/// One timer: its lease row's name, its schedule and the words its log lines use.
pub(super) struct Timer {
    pub lease: &'static str,
    pub schedule: Schedule,
    pub label: &'static str,
}

/// The lease's length for a timer whose next tick is `wait` away: it outlives a few waits, so
/// the holder keeps it from tick to tick, and a dead holder is replaced within three periods.
pub(super) fn lease_ttl(wait: Duration) -> Duration {
    (wait * 3).max(Duration::from_secs(15))
}

/// Resolves `grace` after `stopped` turns true (or its sender is gone).
pub(super) async fn stop_then(stopped: &mut watch::Receiver<bool>, grace: Duration) {
    let _ = stopped.wait_for(|v| *v).await;
    tokio::time::sleep(grace).await;
}

/// Runs `tick` at every occurrence of the schedule while this instance holds the lease, until
/// `stopped` turns true.
pub(super) async fn run<F, Fut>(s: Arc<Ports>, timer: Timer, me: String, mut stopped: watch::Receiver<bool>, tick: F)
where
    F: Fn(Arc<Ports>) -> Fut,
    Fut: Future<Output = ()>,
{
    let ttl = lease_ttl(timer.schedule.wait_from(s.clock.now()));
    // Whether this instance held the lease at the last tick: said once per change.
    let mut holding: Option<bool> = None;
    loop {
        let wait = timer.schedule.wait_from(s.clock.now());
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stopped.wait_for(|v| *v) => break,
        }
        let taken = tokio::time::Instant::now();
        match lease::try_acquire(&s, timer.lease, &me, ttl).await {
            Ok(true) => {
                if holding == Some(false) {
                    tracing::info!(instance.id = %me, timer = timer.label, "took over the {} lease; running", timer.label);
                }
                holding = Some(true);
                let held = lease::hold_while(&s, timer.lease, &me, ttl, taken, tick(s.clone()));
                tokio::select! {
                    r = held => if let Err(lost) = r {
                        tracing::warn!(
                            instance.id = %me,
                            timer = timer.label,
                            lease.lost = ?lost,
                            "lost the {} lease during a tick; stopped the tick (another instance runs the next one)",
                            timer.label
                        );
                        holding = Some(false);
                    },
                    () = stop_then(&mut stopped, super::STOP_GRACE) => {
                        tracing::warn!(timer = timer.label, "stopping: abandoned the running {} tick; the next holder runs it again", timer.label);
                        break;
                    }
                }
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
    if holding == Some(true) {
        match tokio::time::timeout(super::CLEANUP_BOUND, lease::release(&s, timer.lease, &me)).await {
            Ok(Ok(())) => tracing::info!(timer = timer.label, "gave up the {} lease", timer.label),
            Ok(Err(e)) => {
                tracing::warn!(timer = timer.label, error.message = %e, "could not give up the lease; it expires on its own")
            }
            Err(_) => {
                tracing::warn!(timer = timer.label, "storage did not answer in time; the lease expires on its own")
            }
        }
    }
}
