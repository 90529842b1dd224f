//! The error vocabulary of every port, by what the caller does next. Ports speak this, never
//! HTTP: only the adapters turn a status code into one of these (in one place), so in-memory
//! fakes and the use cases signal "someone else wrote first" or "not there" without inventing
//! status codes.

use std::time::Duration;
use thiserror::Error;

/// A failed port call. `service` names the external system ("graph", "sentinel", "tables", …).
#[derive(Debug, Error)]
pub enum PortError {
    /// The service asked us to slow down; try again after `after` (when it said).
    #[error("{service} is throttling{}: {message}", after.map(|a| format!(" (retry after {} s)", a.as_secs())).unwrap_or_default())]
    Throttled { service: &'static str, after: Option<Duration>, message: String },
    /// An outage, a timeout, a reset connection: try again later.
    #[error("{service} is unavailable: {message}")]
    Unavailable { service: &'static str, message: String },
    /// Someone else changed the resource first (stale version): read again and redo.
    #[error("{service} conflict: {message}")]
    Conflict { service: &'static str, message: String },
    /// The resource does not exist.
    #[error("{service}: not found: {message}")]
    NotFound { service: &'static str, message: String },
    /// The credentials were refused (wrong secret, expired consent): fix configuration.
    #[error("{service} refused our credentials: {message}")]
    Unauthorized { service: &'static str, message: String },
    /// The credentials are fine but lack a permission or role: grant it.
    #[error("{service} denied the call (a permission or role is missing): {message}")]
    Forbidden { service: &'static str, message: String },
    /// The request is wrong and will stay wrong (validation, bad filter, a limit).
    #[error("{service} rejected the request{}: {reason}", code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
    Rejected { service: &'static str, code: Option<String>, reason: String },
    /// The request body is over the service's size limit: split it.
    #[error("{service}: request too large: {message}")]
    TooLarge { service: &'static str, message: String },
    /// The service answered with something we cannot read.
    #[error("{service} sent a response we could not read: {message}")]
    Decode { service: &'static str, message: String },
}

/// What a caller does about a [`PortError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaction {
    /// Wait and try the same call again (throttling, outage).
    Retry,
    /// Read the current state again and redo the decision (stale version).
    Redo,
    /// Nothing will work until an operator fixes credentials or permissions; keep retrying slowly.
    FixAccess,
    /// The request cannot succeed as made.
    Reject,
}

impl PortError {
    pub fn unavailable(service: &'static str, err: impl std::fmt::Display) -> Self {
        Self::Unavailable { service, message: err.to_string() }
    }

    pub fn decode(service: &'static str, err: impl std::fmt::Display) -> Self {
        Self::Decode { service, message: err.to_string() }
    }

    pub fn conflict(service: &'static str, what: impl std::fmt::Display) -> Self {
        Self::Conflict { service, message: what.to_string() }
    }

    pub fn not_found(service: &'static str, what: impl std::fmt::Display) -> Self {
        Self::NotFound { service, message: what.to_string() }
    }

    pub fn rejected(service: &'static str, reason: impl std::fmt::Display) -> Self {
        Self::Rejected { service, code: None, reason: reason.to_string() }
    }

    pub fn reaction(&self) -> Reaction {
        match self {
            Self::Throttled { .. } | Self::Unavailable { .. } => Reaction::Retry,
            Self::Conflict { .. } => Reaction::Redo,
            Self::Unauthorized { .. } | Self::Forbidden { .. } => Reaction::FixAccess,
            Self::NotFound { .. } | Self::Rejected { .. } | Self::TooLarge { .. } | Self::Decode { .. } => {
                Reaction::Reject
            }
        }
    }

    pub fn service(&self) -> &'static str {
        match self {
            Self::Throttled { service, .. }
            | Self::Unavailable { service, .. }
            | Self::Conflict { service, .. }
            | Self::NotFound { service, .. }
            | Self::Unauthorized { service, .. }
            | Self::Forbidden { service, .. }
            | Self::Rejected { service, .. }
            | Self::TooLarge { service, .. }
            | Self::Decode { service, .. } => service,
        }
    }

    /// Throttling or an outage: the same call may succeed later.
    pub fn is_retryable(&self) -> bool {
        self.reaction() == Reaction::Retry
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, Self::Conflict { .. })
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }

    /// How long the service asked us to wait, when it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled { after, .. } => *after,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reactions_follow_the_variant() {
        let s = "graph";
        assert_eq!(
            PortError::Throttled { service: s, after: None, message: String::new() }.reaction(),
            Reaction::Retry
        );
        assert_eq!(PortError::unavailable(s, "reset").reaction(), Reaction::Retry);
        assert_eq!(PortError::conflict(s, "etag").reaction(), Reaction::Redo);
        assert_eq!(PortError::Forbidden { service: s, message: String::new() }.reaction(), Reaction::FixAccess);
        assert_eq!(PortError::Unauthorized { service: s, message: String::new() }.reaction(), Reaction::FixAccess);
        assert_eq!(PortError::rejected(s, "bad filter").reaction(), Reaction::Reject);
        assert_eq!(PortError::not_found(s, "incident 7").reaction(), Reaction::Reject);
    }

    #[test]
    fn messages_name_the_service_and_the_wait() {
        let e = PortError::Throttled { service: "graph", after: Some(Duration::from_secs(7)), message: "slow".into() };
        assert_eq!(e.to_string(), "graph is throttling (retry after 7 s): slow");
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        let r = PortError::Rejected { service: "sentinel", code: Some("BadRequest".into()), reason: "no".into() };
        assert_eq!(r.to_string(), "sentinel rejected the request (BadRequest): no");
    }
}
