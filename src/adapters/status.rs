//! The one place an HTTP answer becomes a [`PortError`]: every adapter (Graph, ARM, Logs
//! Ingestion, Entra, Storage) maps failed responses here, so the use cases never see a status code.

use std::time::Duration;

use crate::error::PortError;

/// Maps a non-success HTTP answer to the port vocabulary. `body` is the service's error text; only
/// its `error.code`/`error.message` (or `error_description`) are kept, never request data.
pub fn from_status(service: &'static str, status: u16, retry_after: Option<Duration>, body: &str) -> PortError {
    let (code, message) = error_code_and_message(body);
    match status {
        401 => PortError::Unauthorized { service, message },
        403 => PortError::Forbidden { service, message },
        404 | 410 => PortError::NotFound { service, message },
        409 | 412 => PortError::Conflict { service, message },
        413 => PortError::TooLarge { service, message },
        429 => PortError::Throttled { service, after: retry_after, message },
        // A 503 that says when to come back is throttling in all but name (ARM, Logs Ingestion).
        503 if retry_after.is_some() => PortError::Throttled { service, after: retry_after, message },
        408 | 500..=599 => PortError::Unavailable { service, message: format!("status {status}: {message}") },
        _ => PortError::Rejected { service, code, reason: format!("status {status}: {message}") },
    }
}

/// A network-level failure (connect, timeout, reset).
pub fn network(service: &'static str, err: impl std::fmt::Display) -> PortError {
    PortError::unavailable(service, err)
}

/// Extracts `(code, message)` from the error bodies Graph/ARM (`{"error":{"code","message"}}`),
/// Entra (`{"error","error_description"}`) and Storage use; falls back to a short prefix.
fn error_code_and_message(body: &str) -> (Option<String>, String) {
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        if let Some(e) = v.get("error") {
            if let Some(obj) = e.as_object() {
                let code = obj.get("code").and_then(|c| c.as_str()).filter(|c| !c.is_empty()).map(str::to_string);
                let msg = obj.get("message").and_then(|m| m.as_str()).unwrap_or_default().to_string();
                return (code, msg);
            }
            if let Some(code) = e.as_str() {
                let desc = v.get("error_description").and_then(|d| d.as_str()).unwrap_or_default();
                return (Some(code.to_string()), desc.to_string());
            }
        }
        if let Some(m) = v.get("message").and_then(|m| m.as_str()) {
            return (None, m.to_string());
        }
    }
    (None, body.chars().take(200).collect())
}

/// Parses `Retry-After` given in seconds (the form Graph, ARM and Logs Ingestion send).
pub fn parse_retry_after(value: Option<&str>) -> Option<Duration> {
    let v = value?.trim();
    v.parse::<f64>().ok().filter(|s| s.is_finite() && *s >= 0.0).map(Duration::from_secs_f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Reaction;

    #[test]
    fn statuses_map_to_reactions() {
        for s in [429, 500, 502, 503, 504, 408] {
            assert_eq!(from_status("graph", s, None, "").reaction(), Reaction::Retry, "{s}");
        }
        for s in [409, 412] {
            assert_eq!(from_status("graph", s, None, "").reaction(), Reaction::Redo, "{s}");
        }
        assert!(matches!(from_status("graph", 401, None, ""), PortError::Unauthorized { .. }));
        assert!(matches!(from_status("graph", 403, None, ""), PortError::Forbidden { .. }));
        assert!(matches!(from_status("graph", 404, None, ""), PortError::NotFound { .. }));
        assert!(matches!(from_status("logs", 413, None, ""), PortError::TooLarge { .. }));
        for s in [400, 405, 415, 422] {
            assert!(matches!(from_status("graph", s, None, ""), PortError::Rejected { .. }), "{s}");
        }
        let busy = from_status("sentinel", 503, Some(Duration::from_secs(4)), "");
        assert_eq!(busy.retry_after(), Some(Duration::from_secs(4)));
    }

    #[test]
    fn keeps_graph_error_message_and_retry_after() {
        let body =
            r#"{"error":{"code":"","message":"The limit of '50' for Top query has been exceeded.","details":[]}}"#;
        let e = from_status("graph", 400, None, body);
        assert!(e.to_string().contains("limit of '50'"));
        assert_eq!(e.reaction(), Reaction::Reject);
        let t = from_status("graph", 429, parse_retry_after(Some("7")), "");
        assert_eq!(t.retry_after(), Some(Duration::from_secs(7)));
        assert!(t.is_retryable());
    }

    #[test]
    fn reads_entra_error_bodies() {
        let body = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#;
        let e = from_status("entra", 401, None, body);
        assert!(e.to_string().contains("AADSTS7000215"));
        assert_eq!(e.reaction(), Reaction::FixAccess);
    }

    #[test]
    fn retry_after_parsing() {
        assert_eq!(parse_retry_after(Some(" 3 ")), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(parse_retry_after(None), None);
    }
}
