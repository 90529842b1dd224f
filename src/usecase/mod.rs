//! Orchestration over the ports: each use case reads, asks the pure core what to do, and writes.
//! Triggers (Functions or standalone) call these and nothing else.

pub mod health;
pub mod locks;
pub mod owner;
pub mod poll;
pub mod sync;
pub mod webhook;

use crate::error::{ApiError, ErrorClass};

/// Why a use case failed, grouped by what the trigger does next.
#[derive(Debug, thiserror::Error)]
pub enum UseCaseError {
    /// Try again later (throttling, outage, contention, credentials being fixed).
    #[error(transparent)]
    Retry(ApiError),
    /// Can never succeed as asked; acknowledge and record.
    #[error("{0}")]
    Permanent(String),
}

impl From<ApiError> for UseCaseError {
    fn from(e: ApiError) -> Self {
        match e.class() {
            ErrorClass::Retry | ErrorClass::Conflict | ErrorClass::Auth => UseCaseError::Retry(e),
            ErrorClass::Reject => UseCaseError::Permanent(e.to_string()),
        }
    }
}

impl UseCaseError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, UseCaseError::Retry(_))
    }
}
