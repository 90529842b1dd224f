//! Sentinel's write rule (DESIGN §6): PUT replaces every property, so each write is
//! GET → change → PUT with the etag just read; a 409 means someone wrote in between, so read
//! again and redo the change on the fresh incident.

use uuid::Uuid;

use crate::domain::sentinel::{SentinelIncident, SentinelIncidentBody, SentinelWritable};
use crate::error::ApiError;
use crate::ports::SentinelApi;

const ATTEMPTS: u32 = 6;

/// The outcome of [`write_incident`].
#[derive(Debug)]
pub enum WriteOutcome {
    /// `change` decided nothing needs writing.
    Unchanged(Option<SentinelIncident>),
    Written(SentinelIncident),
}

/// Applies `change` to the current incident (or `None` when it does not exist yet) and PUTs the
/// result with the etag that was read. `change` returning `None` skips the write.
pub async fn write_incident<F>(api: &dyn SentinelApi, name: &Uuid, mut change: F) -> Result<WriteOutcome, ApiError>
where
    F: FnMut(Option<&SentinelIncident>) -> Option<SentinelWritable>,
{
    let mut last = None;
    for _ in 0..ATTEMPTS {
        let current = api.get_incident(name).await?;
        let Some(properties) = change(current.as_ref()) else {
            return Ok(WriteOutcome::Unchanged(current));
        };
        let body = SentinelIncidentBody { etag: current.as_ref().and_then(|c| c.etag.clone()), properties };
        match api.put_incident(name, &body).await {
            Ok(written) => return Ok(WriteOutcome::Written(written)),
            Err(e) if e.is_conflict() => {
                tracing::debug!(sentinel.incident = %name, "stale etag, rereading");
                last = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| ApiError::decode("sentinel", "write gave up")))
}
