//! Errors from every external service, grouped by what the caller does next.
//!
//! [`classify`] is the one place an HTTP status becomes a decision: retry (429, 5xx, 408,
//! network), conflict (409, 412: reread and redo), auth (401, 403), reject (every other 4xx:
//! the request itself is wrong and will stay wrong).

use std::time::Duration;
use thiserror::Error;

/// What the caller should do about a failed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    Retry,
    Conflict,
    Auth,
    Reject,
}

/// Maps an HTTP status to the caller's next step.
pub fn classify(status: u16) -> ErrorClass {
    match status {
        401 | 403 => ErrorClass::Auth,
        409 | 412 => ErrorClass::Conflict,
        408 | 429 => ErrorClass::Retry,
        500..=599 => ErrorClass::Retry,
        _ => ErrorClass::Reject,
    }
}

/// A failed call to Graph, ARM, Logs Ingestion, Entra or Storage.
#[derive(Debug, Error)]
pub enum ApiError {
    /// Throttled or transient; worth retrying after `retry_after` (when the service said).
    #[error("{service} is unavailable or throttling (status {status:?}): {message}")]
    Retryable { service: &'static str, status: Option<u16>, retry_after: Option<Duration>, message: String },
    /// Someone else changed the resource first (stale etag): reread and redo.
    #[error("{service} conflict (status {status}): {message}")]
    Conflict { service: &'static str, status: u16, message: String },
    /// Credentials or permissions are wrong; retrying will not help until config changes.
    #[error("{service} refused our credentials (status {status:?}): {message}")]
    Auth { service: &'static str, status: Option<u16>, message: String },
    /// The request is wrong (bad filter, validation, not found); it will fail again.
    #[error("{service} rejected the request (status {status}{}): {message}", code.as_deref().map(|c| format!(", code {c}")).unwrap_or_default())]
    Rejected { service: &'static str, status: u16, code: Option<String>, message: String },
    /// The service answered with something we cannot read.
    #[error("{service} sent a response we could not read: {message}")]
    Decode { service: &'static str, message: String },
}

impl ApiError {
    /// Builds the error for a non-success HTTP answer. `body` is the service's error text; only
    /// its `error.code`/`error.message` (or `error_description`) are kept, never request data.
    pub fn from_status(service: &'static str, status: u16, retry_after: Option<Duration>, body: &str) -> Self {
        let (code, message) = error_code_and_message(body);
        match classify(status) {
            ErrorClass::Retry => Self::Retryable { service, status: Some(status), retry_after, message },
            ErrorClass::Conflict => Self::Conflict { service, status, message },
            ErrorClass::Auth => Self::Auth { service, status: Some(status), message },
            ErrorClass::Reject => Self::Rejected { service, status, code, message },
        }
    }

    /// A network-level failure (connect, timeout, reset): always retryable.
    pub fn network(service: &'static str, err: impl std::fmt::Display) -> Self {
        Self::Retryable { service, status: None, retry_after: None, message: err.to_string() }
    }

    pub fn decode(service: &'static str, err: impl std::fmt::Display) -> Self {
        Self::Decode { service, message: err.to_string() }
    }

    pub fn class(&self) -> ErrorClass {
        match self {
            Self::Retryable { .. } => ErrorClass::Retry,
            Self::Conflict { .. } => ErrorClass::Conflict,
            Self::Auth { .. } => ErrorClass::Auth,
            Self::Rejected { .. } | Self::Decode { .. } => ErrorClass::Reject,
        }
    }

    pub fn is_retryable(&self) -> bool {
        self.class() == ErrorClass::Retry
    }

    pub fn is_conflict(&self) -> bool {
        self.class() == ErrorClass::Conflict
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Retryable { status, .. } | Self::Auth { status, .. } => *status,
            Self::Conflict { status, .. } | Self::Rejected { status, .. } => Some(*status),
            Self::Decode { .. } => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Retryable { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
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

    #[test]
    fn status_classes() {
        for s in [429, 500, 502, 503, 504, 408] {
            assert_eq!(classify(s), ErrorClass::Retry, "{s}");
        }
        for s in [409, 412] {
            assert_eq!(classify(s), ErrorClass::Conflict, "{s}");
        }
        for s in [401, 403] {
            assert_eq!(classify(s), ErrorClass::Auth, "{s}");
        }
        for s in [400, 404, 405, 413, 415] {
            assert_eq!(classify(s), ErrorClass::Reject, "{s}");
        }
    }

    #[test]
    fn keeps_graph_error_message_and_retry_after() {
        let body =
            r#"{"error":{"code":"","message":"The limit of '50' for Top query has been exceeded.","details":[]}}"#;
        let e = ApiError::from_status("graph", 400, None, body);
        assert!(e.to_string().contains("limit of '50'"));
        assert_eq!(e.class(), ErrorClass::Reject);
        let t = ApiError::from_status("graph", 429, parse_retry_after(Some("7")), "");
        assert_eq!(t.retry_after(), Some(Duration::from_secs(7)));
        assert!(t.is_retryable());
    }

    #[test]
    fn reads_entra_error_bodies() {
        let body = r#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#;
        let e = ApiError::from_status("entra", 401, None, body);
        assert!(e.to_string().contains("AADSTS7000215"));
        assert_eq!(e.class(), ErrorClass::Auth);
    }

    #[test]
    fn retry_after_parsing() {
        assert_eq!(parse_retry_after(Some(" 3 ")), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after(Some("Wed, 21 Oct 2015 07:28:00 GMT")), None);
        assert_eq!(parse_retry_after(None), None);
    }
}
