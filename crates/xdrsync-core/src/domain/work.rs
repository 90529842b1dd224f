//! Work items: what a queue message says. Every trigger only says "incident D may have
//! changed"; the reconcile decides what to do (ARCHITECTURE.md: “Triggers and the reconcile”). Messages are JSON objects, never bare
//! strings, because the Functions host base64-decodes output strings that look like base64.

use serde::{Deserialize, Serialize};

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

/// "Reconcile tenant T incident D."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkItem {
    pub kind: WorkKind,
    pub tenant_id: String,
    pub incident_id: String,
    pub hint: ChangeHint,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum WorkKind {
    Reconcile,
}

impl WorkItem {
    pub fn reconcile(tenant_id: &str, incident_id: &str, hint: ChangeHint) -> Self {
        Self { kind: WorkKind::Reconcile, tenant_id: tenant_id.to_string(), incident_id: incident_id.to_string(), hint }
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

    #[test]
    fn rejects_garbage_and_empty_ids() {
        assert!(WorkItem::parse("abcd").is_err());
        assert!(WorkItem::parse(r#"{"kind":"reconcile","tenantId":"","incidentId":"1","hint":"defender"}"#).is_err());
        assert!(WorkItem::parse(r#"{"kind":"explode","tenantId":"t","incidentId":"1","hint":"defender"}"#).is_err());
    }
}
