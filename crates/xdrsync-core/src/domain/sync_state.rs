//! The sync state of one incident, as stored between reconciles: the merge base, what each side
//! showed, the versions our own writes produced, and the comment bookkeeping.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use super::defender::Determination;
use super::fields::Fields;
use super::time_fmt::rfc3339_opt;

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
    /// `commentsCount` of the Sentinel incident at the end of the last sync (a comment added in
    /// Sentinel need not change the incident's etag).
    #[serde(default)]
    pub sentinel_comments_count: Option<u64>,
    /// Fingerprints of the Defender comments already copied to Sentinel (by identity, not position).
    #[serde(default)]
    pub defender_comments_copied: Vec<String>,
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
    /// The webhook index row was written for this mirror (else the next reconcile writes it first).
    #[serde(default)]
    pub indexed: bool,
    /// Left unmirrored on purpose (an incident Microsoft Sentinel itself created).
    #[serde(default)]
    pub not_mirrored: bool,
}

impl IncidentState {
    /// The state of a mirror never synced.
    pub fn new(sentinel_name: Uuid) -> Self {
        Self {
            sentinel_name,
            base: None,
            determination: None,
            defender_seen: None,
            sentinel_etag_seen: None,
            sentinel_comments_count: None,
            alerts_digest: None,
            alert_count: 0,
            redirect_target: None,
            last_sync: None,
            defender_comments_copied: Vec::new(),
            sentinel_comments_sent: Vec::new(),
            comment_cap_noted: false,
            defender_view: None,
            sentinel_view: None,
            defender_refuses_in_progress: false,
            indexed: false,
            not_mirrored: false,
        }
    }
}
