//! Work items: what a queue message says. Every trigger only says "incident D may have
//! changed"; the reconcile decides what to do (ARCHITECTURE.md: “Triggers and the reconcile”). Messages are JSON objects, never bare
//! strings, because the Functions host base64-decodes output strings that look like base64.

use serde::{Deserialize, Serialize};

use super::defender::DefenderIncident;
use super::snapshot::MAX_MESSAGE_TEXT_BYTES;

/// Which side hinted at the change (diagnostics only; the reconcile reads both sides anyway).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ChangeHint {
    Defender,
    Sentinel,
    Reconcile,
}

/// JSON string layers [`WorkItem::parse`] unwraps; deeper nesting is not a work item.
pub const MAX_QUOTE_LAYERS: usize = 4;

/// "Reconcile tenant T incident D", optionally with D as the poller listed it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkItem {
    pub kind: WorkKind,
    pub tenant_id: String,
    pub incident_id: String,
    pub hint: ChangeHint,
    /// The incident and its alerts from the poller's list page (`$expand=alerts`), so the
    /// reconcile need not read it (`snapshot::usable` decides). Absent when it would not fit a
    /// queue message, or when the trigger had none (webhook, sweep, retries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Box<DefenderIncident>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WorkKind {
    Reconcile,
}

impl WorkItem {
    pub fn reconcile(tenant_id: &str, incident_id: &str, hint: ChangeHint) -> Self {
        Self {
            kind: WorkKind::Reconcile,
            tenant_id: tenant_id.to_string(),
            incident_id: incident_id.to_string(),
            hint,
            snapshot: None,
        }
    }

    /// "Reconcile" carrying the listed incident when its message text stays within
    /// [`MAX_MESSAGE_TEXT_BYTES`] and its alerts are complete; otherwise without it (the
    /// reconcile then reads the incident). Returns the item and its text.
    pub fn reconcile_listed(tenant_id: &str, listed: DefenderIncident, hint: ChangeHint) -> (Self, String) {
        let mut item = Self::reconcile(tenant_id, &listed.id, hint);
        if listed.complete_alerts().is_some() {
            item.snapshot = Some(Box::new(listed));
            let text = item.to_json();
            if text.len() <= MAX_MESSAGE_TEXT_BYTES {
                return (item, text);
            }
            item.snapshot = None;
        }
        let text = item.to_json();
        (item, text)
    }

    /// The same work without the snapshot (for retries and records, which must re-read).
    pub fn without_snapshot(&self) -> Self {
        Self { snapshot: None, ..self.clone() }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("WorkItem serializes")
    }

    /// Parses a message body: the object itself, or the object inside up to
    /// [`MAX_QUOTE_LAYERS`] JSON string layers. The Functions host passes queue text as a JSON
    /// string literal, and older versions re-enqueued that quoted form, quoting once more
    /// at each throttle; such messages left in a queue still parse, so queues heal.
    pub fn parse(text: &str) -> Result<Self, WorkItemError> {
        let mut current = text.trim().to_string();
        for _ in 0..MAX_QUOTE_LAYERS {
            if !current.starts_with('"') {
                break;
            }
            let inner: String = serde_json::from_str(&current).map_err(WorkItemError::Json)?;
            current = inner.trim().to_string();
        }
        Self::parse_object(&current)
    }

    fn parse_object(text: &str) -> Result<Self, WorkItemError> {
        let item: WorkItem = serde_json::from_str(text).map_err(WorkItemError::Json)?;
        if item.tenant_id.trim().is_empty() || item.incident_id.trim().is_empty() {
            return Err(WorkItemError::Empty);
        }
        Ok(item)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WorkItemError {
    #[error("message is not a work item: {0}")]
    Json(serde_json::Error),
    #[error("message has an empty tenantId or incidentId")]
    Empty,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_accepts_json_quoted_text() {
        let w = WorkItem::reconcile("t1", "29", ChangeHint::Defender);
        let json = w.to_json();
        assert!(json.starts_with('{'));
        assert_eq!(WorkItem::parse(&json).unwrap(), w);
        let quoted = serde_json::to_string(&json).unwrap();
        assert_eq!(WorkItem::parse(&quoted).unwrap(), w);
    }

    #[test]
    fn heals_messages_quoted_several_times_by_older_versions_up_to_a_bound() {
        let w = WorkItem::reconcile("t1", "29", ChangeHint::Defender);
        let mut text = w.to_json();
        for layer in 1..=MAX_QUOTE_LAYERS {
            text = serde_json::to_string(&text).unwrap();
            assert_eq!(WorkItem::parse(&text).unwrap(), w, "{layer} layer(s)");
        }
        text = serde_json::to_string(&text).unwrap();
        assert!(WorkItem::parse(&text).is_err(), "deeper than the bound");
        assert!(WorkItem::parse("\"\\\"abc\"").is_err());
    }

    fn listed(alerts: usize, text_bytes: usize, paged: bool) -> DefenderIncident {
        let alert = |n: usize| serde_json::json!({"id": format!("da{n}"), "incidentId": "29", "severity": "low", "title": "x".repeat(text_bytes)});
        let mut v = serde_json::json!({"id": "29", "status": "active", "lastUpdateDateTime": "2026-12-01T10:00:00Z",
            "alerts": (0..alerts).map(alert).collect::<Vec<_>>()});
        if paged {
            v["alerts@odata.nextLink"] = serde_json::json!("https://graph.microsoft.com/v1.0/next");
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_listed_incident_rides_along_up_to_the_message_bound_and_round_trips() {
        let (item, text) = WorkItem::reconcile_listed("t1", listed(3, 100, false), ChangeHint::Defender);
        assert!(item.snapshot.is_some());
        assert_eq!(WorkItem::parse(&text).unwrap(), item, "round trip, alerts included");
        // Find the largest alert text that still fits, then one byte more.
        let fits = |bytes| WorkItem::reconcile_listed("t1", listed(4, bytes, false), ChangeHint::Defender);
        let mut lo = 0;
        let mut hi = MAX_MESSAGE_TEXT_BYTES;
        while lo + 1 < hi {
            let mid = (lo + hi) / 2;
            if fits(mid).0.snapshot.is_some() {
                lo = mid
            } else {
                hi = mid
            }
        }
        let (at_bound, text) = fits(lo);
        assert!(at_bound.snapshot.is_some() && text.len() <= MAX_MESSAGE_TEXT_BYTES);
        assert!(text.len() > MAX_MESSAGE_TEXT_BYTES - 4, "within a few bytes of the bound: {}", text.len());
        let (over, text) = fits(lo + 1);
        assert!(over.snapshot.is_none(), "one byte over: no snapshot, the reconcile reads");
        assert!(text.len() < 200);
        // Host-quoted (twice, as a re-enqueue of old versions did), it still parses whole.
        let quoted = serde_json::to_string(&serde_json::to_string(&fits(lo).1).unwrap()).unwrap();
        assert_eq!(WorkItem::parse(&quoted).unwrap(), at_bound);
    }

    #[test]
    fn paged_alerts_are_never_carried() {
        let (item, _) = WorkItem::reconcile_listed("t1", listed(3, 10, true), ChangeHint::Defender);
        assert!(item.snapshot.is_none());
        assert_eq!(item.without_snapshot(), WorkItem::reconcile("t1", "29", ChangeHint::Defender));
    }

    #[test]
    fn rejects_garbage_and_empty_ids() {
        assert!(WorkItem::parse("abcd").is_err());
        assert!(WorkItem::parse(r#"{"kind":"reconcile","tenantId":"","incidentId":"1","hint":"defender"}"#).is_err());
        assert!(WorkItem::parse(r#"{"kind":"explode","tenantId":"t","incidentId":"1","hint":"defender"}"#).is_err());
    }
}
