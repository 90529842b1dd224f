//! Incident snapshots from list pages (docs/sync.md, “Reconcile from the list page”): the poller
//! lists incidents with `$expand=alerts`, and a work item carries the incident and its alerts as
//! listed, so the reconcile needs no Graph read. Pure rules: when a snapshot may be carried (it
//! fits a queue message), when it may be applied (complete, not older than what was synced), and
//! when a tenant's listing leaves the expansion off for a while (it failed there).

use time::{Duration, OffsetDateTime};

use super::defender::DefenderIncident;

/// Largest message text xdrsync sends. Azure Storage queue messages hold up to 64 KiB
/// (documented); the text travels base64-encoded (the Functions host's default
/// `messageEncoding`), which makes 48 KiB of text exactly 64 KiB on the wire.
pub const MAX_MESSAGE_TEXT_BYTES: usize = 48 * 1024;

/// Whether a reconcile may act on `snapshot` instead of reading the incident: its alerts are
/// complete (not paged), and it is not older than the Defender version the stored state already
/// synced (`defender_seen`). An older one is read again, never applied: the reconcile must act
/// on a state at least as new as the one that triggered it and as the one already mirrored.
pub fn usable(snapshot: &DefenderIncident, defender_seen: Option<OffsetDateTime>) -> bool {
    snapshot.complete_alerts().is_some() && defender_seen.is_none_or(|seen| snapshot.last_update_date_time >= seen)
}

/// What one listing with `$expand=alerts` came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpandOutcome {
    /// The page came back expanded.
    Served,
    /// 400: the service refuses the option (a documented one, so assumed to be a policy).
    Refused,
    /// 5xx after the HTTP retries (reported on very large tenants with `$filter`).
    Failed,
}

/// A refused expansion is not tried again for this long.
pub const REFUSED_FOR: Duration = Duration::hours(1);
/// A failed page leaves the expansion off for this long, then it is tried again.
pub const FAILED_FOR: Duration = Duration::minutes(15);

/// One tenant's memory of its listing's expansion: off until a time after a failure.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpandMemory {
    off_until: Option<OffsetDateTime>,
}

impl ExpandMemory {
    /// Whether the next listing asks for `$expand=alerts`.
    pub fn expand(&self, now: OffsetDateTime) -> bool {
        self.off_until.is_none_or(|until| now >= until)
    }

    /// Records how a listing with the expansion went.
    pub fn record(&mut self, outcome: ExpandOutcome, now: OffsetDateTime) {
        self.off_until = match outcome {
            ExpandOutcome::Served => None,
            ExpandOutcome::Refused => Some(now + REFUSED_FOR),
            ExpandOutcome::Failed => Some(now + FAILED_FOR),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn incident(at: OffsetDateTime, alerts: bool, paged: bool) -> DefenderIncident {
        let mut v = serde_json::json!({"id": "7", "status": "active",
            "lastUpdateDateTime": at.format(&time::format_description::well_known::Rfc3339).unwrap()});
        if alerts {
            v["alerts"] = serde_json::json!([]);
        }
        if paged {
            v["alerts@odata.nextLink"] = serde_json::json!("https://graph/next");
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_snapshot_is_applied_only_complete_and_not_older_than_the_synced_version() {
        let t = datetime!(2026-12-01 10:00 UTC);
        assert!(usable(&incident(t, true, false), None));
        assert!(usable(&incident(t, true, false), Some(t)), "the version synced: glance decides");
        assert!(usable(&incident(t, true, false), Some(t - Duration::seconds(1))));
        assert!(!usable(&incident(t, true, false), Some(t + Duration::milliseconds(1))), "older: re-read");
        assert!(!usable(&incident(t, false, false), None), "no alerts expanded");
        assert!(!usable(&incident(t, true, true), None), "alerts paged");
    }

    #[test]
    fn a_failed_expansion_is_left_off_for_a_while_then_tried_again() {
        let t = datetime!(2026-12-01 10:00 UTC);
        let mut m = ExpandMemory::default();
        assert!(m.expand(t));
        m.record(ExpandOutcome::Failed, t);
        assert!(!m.expand(t + FAILED_FOR - Duration::seconds(1)));
        assert!(m.expand(t + FAILED_FOR));
        m.record(ExpandOutcome::Refused, t);
        assert!(!m.expand(t + FAILED_FOR));
        assert!(!m.expand(t + REFUSED_FOR - Duration::seconds(1)));
        assert!(m.expand(t + REFUSED_FOR));
        m.record(ExpandOutcome::Served, t);
        assert!(m.expand(t));
    }
}
