//! The standalone timer lease: one row per timer in the `Leases` table, taken or renewed with an
//! ETag-guarded write, so of several instances exactly one runs the timer; a holder that stops
//! renewing loses it when it expires.

use std::time::Duration;

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
