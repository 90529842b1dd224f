//! The typed rows of ARCHITECTURE.md: “State”: incident sync state (with the merge base), the webhook index,
//! poll cursors, the standalone lease, the owner cache and the health row.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::cursor::Cursor;
pub use crate::domain::sync_state::IncidentState;
use crate::domain::time_fmt::rfc3339;
use crate::error::PortError;
use crate::state::RowKey;

pub fn incident_key(tenant: &str, incident_id: &str) -> Result<RowKey, PortError> {
    RowKey::new(tenant, incident_id)
}

/// Webhook lookup: Sentinel name → Defender incident (`Index` table, PK workspace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    pub tenant_id: String,
    pub incident_id: String,
}

pub fn index_key(workspace_resource_id: &str, sentinel_name: &Uuid) -> Result<RowKey, PortError> {
    RowKey::new(&workspace_resource_id.to_ascii_lowercase(), &sentinel_name.to_string())
}

/// A poll cursor plus when it last polled (`Cursors` table, PK tenant, RK feed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CursorRecord {
    pub cursor: Cursor,
    #[serde(with = "rfc3339")]
    pub polled_at: OffsetDateTime,
    /// When a poll last listed its whole window (`domain::listing`); absent in older rows.
    #[serde(default, with = "crate::domain::time_fmt::rfc3339_opt", skip_serializing_if = "Option::is_none")]
    pub full_pass_at: Option<OffsetDateTime>,
}

pub const INCIDENTS_FEED: &str = "incidents";
pub const SENTINEL_FEED: &str = "sentinel";
/// The attach of native alerts (on the poll's tick).
pub const ALERTS_FEED: &str = "alerts";
/// The target-incident listing of `XDRSYNC_TARGET=defender-portal` (usecase/portal.rs).
pub const PORTAL_FEED: &str = "portal";
/// The advanced-hunting query source (`HuntingExport`).
pub const HUNTING_FEED: &str = "hunting";
/// The advanced-hunting storage source (`HuntingStorageExport`).
pub const HUNTING_STORAGE_FEED: &str = "hunting-storage";

/// The words health and `status` use for a feed.
pub fn feed_label(feed: &str) -> &'static str {
    match feed {
        INCIDENTS_FEED => "Defender poll",
        SENTINEL_FEED => "Sentinel sweep",
        ALERTS_FEED => "Alert attach",
        HUNTING_FEED => "Hunting export",
        HUNTING_STORAGE_FEED => "Hunting storage export",
        PORTAL_FEED => "Target queue",
        _ => "feed",
    }
}

/// The standalone-mode singleton lease of a timer (`Leases` table, PK `leases`, RK timer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Lease {
    pub owner: String,
    #[serde(with = "rfc3339")]
    pub expires: OffsetDateTime,
}

/// UPN → objectId cache (`Users` table, PK tenant, RK UPN). `object_id: None` = not in Entra.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachedUser {
    pub object_id: Option<String>,
    #[serde(with = "rfc3339")]
    pub checked_at: OffsetDateTime,
}

/// How one feed (Defender poll, Sentinel sweep) fared (`Cursors` table, RK `health:<feed>`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeedHealth {
    #[serde(default, with = "crate::domain::time_fmt::rfc3339_opt")]
    pub last_success: Option<OffsetDateTime>,
    #[serde(default, with = "crate::domain::time_fmt::rfc3339_opt")]
    pub last_error_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub last_error: Option<String>,
    /// The service and the kind of the last error (`forbidden`, `unauthorized`, …).
    #[serde(default)]
    pub last_error_service: Option<String>,
    #[serde(default)]
    pub last_error_class: Option<String>,
    /// Set while the feed fails: when it started failing.
    #[serde(default, with = "crate::domain::time_fmt::rfc3339_opt")]
    pub failing_since: Option<OffsetDateTime>,
}

pub fn feed_health_key(tenant: &str, feed: &str) -> Result<RowKey, PortError> {
    RowKey::new(tenant, &format!("health:{feed}"))
}
