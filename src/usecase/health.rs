//! Health: storage reachability, cursor age and the last sync error, with a status code a load
//! balancer understands (200 healthy or degraded, 503 unhealthy).

use serde::Serialize;

use crate::metrics::CallCounts;
use crate::ports::Table;
use crate::records::{CursorRecord, LastError, HEALTH_ROW, INCIDENTS_FEED};
use crate::state::{load, RowKey, Versioned};
use crate::usecase::Ports;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `healthy`, `degraded` (recent sync error) or `unhealthy` (storage down or poller stale).
    pub status: &'static str,
    pub storage_reachable: bool,
    pub cursor_age_seconds: Option<i64>,
    pub last_error: Option<LastError>,
    pub calls: CallCounts,
    /// Incidents created by Microsoft Sentinel itself, left unmirrored since start.
    pub sentinel_incidents_not_mirrored: u64,
    pub version: &'static str,
}

impl Health {
    pub fn http_status(&self) -> u16 {
        if self.status == "unhealthy" {
            503
        } else {
            200
        }
    }
}

/// A poller that has not polled for this long is considered stopped.
const STALE_AFTER_SECONDS: i64 = 600;
/// A sync error this recent makes the status `degraded`.
const RECENT_ERROR_SECONDS: i64 = 900;

pub async fn check(s: &Ports) -> Health {
    let now = s.clock.now();
    let tenant = &s.config.tenant_id;
    let cursor = match RowKey::new(tenant, INCIDENTS_FEED) {
        Ok(k) => load::<CursorRecord>(s.store.as_ref(), Table::Cursors, &k).await,
        Err(e) => Err(e),
    };
    let storage_reachable = cursor.is_ok();
    let cursor_age_seconds =
        cursor.ok().flatten().map(|c: Versioned<CursorRecord>| (now - c.value.polled_at).whole_seconds());
    let last_error = match RowKey::new(tenant, HEALTH_ROW) {
        Ok(k) => load::<LastError>(s.store.as_ref(), Table::Cursors, &k).await.ok().flatten().map(|v| v.value),
        Err(_) => None,
    };
    let status = if !storage_reachable || cursor_age_seconds.is_some_and(|a| a > STALE_AFTER_SECONDS) {
        "unhealthy"
    } else if last_error.as_ref().is_some_and(|e| (now - e.at).whole_seconds() < RECENT_ERROR_SECONDS) {
        "degraded"
    } else {
        "healthy"
    };
    Health {
        status,
        storage_reachable,
        cursor_age_seconds,
        last_error,
        calls: s.counters.snapshot(),
        sentinel_incidents_not_mirrored: s.counters.incidents_not_mirrored.load(std::sync::atomic::Ordering::Relaxed),
        version: env!("CARGO_PKG_VERSION"),
    }
}
