//! The typed rows of ARCHITECTURE.md: “State”: incident sync state (with the merge base), the webhook index,
//! poll cursors, the standalone lease, the owner cache and the health row.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::cursor::Cursor;
use crate::domain::defender::Determination;
use crate::domain::fields::Fields;
use crate::domain::time_fmt::{rfc3339, rfc3339_opt};
use crate::error::ApiError;
use crate::state::RowKey;

/// Sync state of one Defender incident (`Incidents` table, PK tenant, RK Defender id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncidentState {
    pub sentinel_name: Uuid,
    /// B: the synced values both sides last agreed on.
    #[serde(default)]
    pub base: Option<Fields>,
    /// Defender's determination, kept so a round trip through Sentinel does not erase it.
    #[serde(default)]
    pub determination: Option<Determination>,
    /// Defender `lastUpdateDateTime` at the end of the last sync.
    #[serde(default, with = "rfc3339_opt")]
    pub defender_seen: Option<OffsetDateTime>,
    /// Sentinel etag at the end of the last sync.
    #[serde(default)]
    pub sentinel_etag_seen: Option<String>,
    #[serde(default)]
    pub alerts_digest: Option<String>,
    #[serde(default)]
    pub alert_count: usize,
    #[serde(default)]
    pub redirect_target: Option<String>,
    #[serde(default, with = "rfc3339_opt")]
    pub last_sync: Option<OffsetDateTime>,
    /// How many of Defender's comments have been copied to Sentinel (Defender only appends).
    #[serde(default)]
    pub defender_comments_seen: usize,
    /// Names of the Sentinel comments already copied to Defender.
    #[serde(default)]
    pub sentinel_comments_sent: Vec<String>,
    /// Sentinel's 100-comment cap was reached and the overflow note written.
    #[serde(default)]
    pub comment_cap_noted: bool,
    /// What each side showed after the last sync (a side may not hold every agreed value).
    #[serde(default)]
    pub defender_view: Option<Fields>,
    #[serde(default)]
    pub sentinel_view: Option<Fields>,
    /// Defender's API refused status `inProgress` once; reopen with `active` instead.
    #[serde(default)]
    pub defender_refuses_in_progress: bool,
}

pub fn incident_key(tenant: &str, incident_id: &str) -> Result<RowKey, ApiError> {
    RowKey::new(tenant, incident_id)
}

/// Webhook lookup: Sentinel name → Defender incident (`Index` table, PK workspace).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    pub tenant_id: String,
    pub incident_id: String,
}

pub fn index_key(workspace_resource_id: &str, sentinel_name: &Uuid) -> Result<RowKey, ApiError> {
    RowKey::new(&workspace_resource_id.to_ascii_lowercase(), &sentinel_name.to_string())
}

/// A poll cursor plus when it last polled (`Cursors` table, PK tenant, RK feed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CursorRecord {
    pub cursor: Cursor,
    #[serde(with = "rfc3339")]
    pub polled_at: OffsetDateTime,
}

pub const INCIDENTS_FEED: &str = "incidents";
pub const SENTINEL_FEED: &str = "sentinel";

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

/// The last sync failure, for health (`Cursors` table, RK `health`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    pub incident_id: String,
    pub message: String,
    #[serde(with = "rfc3339")]
    pub at: OffsetDateTime,
}

pub const HEALTH_ROW: &str = "health";
