//! The function bodies both modes run: the Functions handlers and the standalone scheduler
//! call these, so there is one implementation of each job. Failures are logged here, once.

use crate::domain::work::WorkItem;
use crate::retry::{MessageBudget, RETRIES_PER_MESSAGE};
use crate::usecase::poll::{poll_defender, poll_sentinel};
use crate::usecase::sync::{reconcile, record_failure, SyncOutcome};
use crate::usecase::Ports;
use crate::usecase::UseCaseError;

/// The poller's name: the Functions timer function (a folder under `functions/`) and, in
/// standalone mode, the row of its lease.
pub const POLLER_NAME: &str = "IncidentPoller";

/// What a queue trigger should do with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueVerdict {
    /// Processed: acknowledge.
    Done(String),
    /// Can never succeed: acknowledge (logged).
    Drop(String),
    /// Failed for now: leave it for redelivery.
    Retry(String),
}

/// One poller tick: Defender, then the Sentinel-side sweep (each runs even if the other fails).
pub async fn poll(s: &Ports) -> Result<String, String> {
    let defender = poll_defender(s).await;
    let sentinel = poll_sentinel(s).await;
    if let Err(e) = &defender {
        tracing::error!(error.message = %e, "Defender poll failed");
    }
    if let Err(e) = &sentinel {
        tracing::error!(error.message = %e, "Sentinel sweep failed");
    }
    match (defender, sentinel) {
        (Ok(d), Ok(s)) => Ok(format!(
            "polled: Defender {} listed, {} enqueued; Sentinel {} listed, {} enqueued",
            d.listed, d.enqueued, s.listed, s.enqueued
        )),
        (d, s) => Err(format!(
            "poll failed: Defender {}; Sentinel {}",
            d.err().map_or("ok".into(), |e| e.to_string()),
            s.err().map_or("ok".into(), |e| e.to_string())
        )),
    }
}

/// One queue message of `xdrsync-incidents`.
pub async fn sync_message(s: &Ports, text: &str, dequeue_count: u64, message_id: &str) -> QueueVerdict {
    let item = match WorkItem::parse(text) {
        Ok(i) => i,
        Err(e) => {
            tracing::warn!(queue.message.id = %message_id, error.message = %e, "dropping a message that is not a work item");
            return QueueVerdict::Drop(format!("dropped: {e}"));
        }
    };
    // One retry budget for every call this delivery makes (ARCHITECTURE.md: “Failure rules”).
    match MessageBudget::scope(RETRIES_PER_MESSAGE, reconcile(s, &item)).await {
        Ok(SyncOutcome::Synced(r)) => QueueVerdict::Done(format!(
            "incident {}: sentinel written {}, defender patched {}, alerts sent {}, conflicts {}",
            item.incident_id, r.sentinel_written, r.defender_patched, r.alerts_sent, r.conflicts
        )),
        Ok(SyncOutcome::Unchanged) => QueueVerdict::Done(format!("incident {}: unchanged", item.incident_id)),
        Ok(SyncOutcome::NotMirrored) => {
            QueueVerdict::Done(format!("incident {}: created by Sentinel, not mirrored", item.incident_id))
        }
        Ok(SyncOutcome::DefenderGone) => QueueVerdict::Drop(format!("incident {}: not in Defender", item.incident_id)),
        Err(UseCaseError::Permanent(msg)) => {
            tracing::error!(incident.id = %item.incident_id, error.message = %msg, "sync failed permanently; message acknowledged");
            record_failure(s, &item.incident_id, &msg).await;
            QueueVerdict::Drop(format!("incident {}: {msg}", item.incident_id))
        }
        Err(e @ UseCaseError::Retry(_)) => {
            tracing::warn!(incident.id = %item.incident_id, queue.dequeue_count = dequeue_count, error.message = %e, "sync failed; will be retried");
            record_failure(s, &item.incident_id, &e.to_string()).await;
            QueueVerdict::Retry(format!("incident {}: {e}", item.incident_id))
        }
    }
}
