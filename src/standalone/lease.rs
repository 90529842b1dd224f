//! The standalone timer lease: one row per timer in the `Leases` table, taken or renewed with an
//! ETag-guarded write, so of several instances exactly one runs the timer. A tick runs only
//! inside [`hold_while`], which renews the lease while the tick runs and drops the tick (its
//! writes stop) as soon as the lease is taken by another instance or could not be renewed before
//! it would expire, so two instances never tick at once, however long a tick takes.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::PortError;
use crate::ports::Table;
use crate::records::Lease;
use crate::state::{modify, RowKey};
use crate::usecase::Ports;

/// Takes or renews `timer`'s lease for `me`; `Ok(true)` when `me` holds it afterwards.
pub async fn try_acquire(s: &Ports, timer: &str, me: &str, ttl: Duration) -> Result<bool, PortError> {
    let now = s.clock.now();
    let expires = now + time::Duration::try_from(ttl).unwrap_or(time::Duration::seconds(30));
    let key = RowKey::new("leases", timer)?;
    let held = modify::<Lease, _>(s.store.as_ref(), Table::Leases, &key, |current| match current {
        Some(l) if l.owner != me && l.expires > now => None,
        _ => Some(Lease { owner: me.to_string(), expires }),
    })
    .await?;
    Ok(held.is_some_and(|l| l.owner == me))
}

/// Gives `timer`'s lease up if `me` holds it (it expires now), so another instance takes the
/// next tick at once instead of waiting for it to run out (a stopping instance).
pub async fn release(s: &Ports, timer: &str, me: &str) -> Result<(), PortError> {
    let now = s.clock.now();
    let key = RowKey::new("leases", timer)?;
    modify::<Lease, _>(s.store.as_ref(), Table::Leases, &key, |current| match current {
        Some(l) if l.owner == me && l.expires > now => Some(Lease { owner: me.to_string(), expires: now }),
        _ => None,
    })
    .await?;
    Ok(())
}

/// Why a tick was dropped part-way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lost {
    /// Another instance holds the lease now.
    Taken,
    /// No renewal succeeded before the lease would expire (storage unreachable, say).
    NotRenewed,
}

/// When a renewal is due and when, without one, the tick must stop: a lease written at `sent`
/// for `ttl` is renewed after a third of it and given up a sixth before it expires, so a holder
/// that cannot reach storage stops before any other instance may take the lease.
pub fn renewal_plan(sent: Instant, ttl: Duration) -> (Instant, Instant) {
    (sent + ttl / 3, sent + ttl - ttl / 6)
}

/// Runs `work` while holding `timer`'s lease, taken at `taken` for `ttl`: renews it on
/// [`renewal_plan`]; `Err` (and `work` dropped) when the lease is lost.
pub async fn hold_while<F: Future>(
    s: &Ports,
    timer: &str,
    me: &str,
    ttl: Duration,
    taken: Instant,
    work: F,
) -> Result<F::Output, Lost> {
    let renew = async {
        let (mut due, mut deadline) = renewal_plan(taken, ttl);
        loop {
            tokio::time::sleep_until(due.min(deadline)).await;
            if Instant::now() >= deadline {
                return Lost::NotRenewed;
            }
            let sent = Instant::now();
            match tokio::time::timeout_at(deadline, try_acquire(s, timer, me, ttl)).await {
                Ok(Ok(true)) => (due, deadline) = renewal_plan(sent, ttl),
                Ok(Ok(false)) => return Lost::Taken,
                Ok(Err(e)) => {
                    tracing::warn!(lease = timer, error.message = %e, "could not renew the lease; trying again");
                    due = Instant::now() + ttl / 12;
                }
                Err(_) => return Lost::NotRenewed,
            }
        }
    };
    tokio::select! {
        out = work => Ok(out),
        lost = renew => Err(lost),
    }
}
