//! The function bodies both modes run: the Functions handlers and the standalone scheduler
//! call these, so there is one implementation of each job. Failures are logged here, once.

use crate::domain::redelivery::Redelivery;
use crate::domain::work::WorkItem;
use crate::retry::{MessageBudget, RETRIES_PER_MESSAGE};
use crate::usecase::failures;
use crate::usecase::poll::{poll_defender, poll_sentinel};
use crate::usecase::sync::{reconcile, SyncOutcome};
use crate::usecase::Ports;
use crate::usecase::UseCaseError;

/// Longer waits than this are not spent holding a worker: the message goes back to the queue.
pub const LONGEST_INLINE_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The poller's name: the Functions timer function (a folder under `functions/`) and, in
/// standalone mode, the row of its lease.
pub const POLLER_NAME: &str = "IncidentPoller";

/// What a queue trigger should do with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueVerdict {
    /// Processed: acknowledge.
    Done(String),
    /// Not done yet, and a fresh copy waits in the queue (a throttle, or a failure recorded in
    /// `Failures` and retried on the backoff of `domain/redelivery.rs`): acknowledge this one.
    Deferred(String),
    /// Settled without a sync: the incident is gone from Defender, the failure is recorded in
    /// `Failures` (retried on its schedule), or the message, not a work item, was moved to the
    /// poison queue. Acknowledge (logged).
    Drop(String),
    /// Nothing could be recorded (storage down): leave it for redelivery.
    Retry(String),
}

/// One poller tick: Defender, then the Sentinel-side sweep (each runs even if the other fails),
/// then what failed before: poisoned messages read back, due retries enqueued. With many tenants
/// (ARCHITECTURE.md: “Tenants”) every tenant is polled at once, each in its own partition and
/// within its own Graph budget, and each workspace is swept once.
pub async fn poll(s: &Ports) -> Result<String, String> {
    let started = std::time::Instant::now();
    let outcome = poll_once(s).await;
    s.counters.tick(started.elapsed());
    outcome
}

async fn poll_once(s: &Ports) -> Result<String, String> {
    if s.is_multi_tenant() {
        return crate::usecase::tenant_poll::poll_tenants(s).await;
    }
    let defender = poll_defender(s).await;
    crate::usecase::health::record_feed(s, crate::records::INCIDENTS_FEED, defender.as_ref().map(|_| ())).await;
    let sentinel = poll_sentinel(s).await;
    crate::usecase::health::record_feed(s, crate::records::SENTINEL_FEED, sentinel.as_ref().map(|_| ())).await;
    // Native alerts on mirrors (“Native alerts”): a failure is its own feed, never the poll's.
    let attached = // Mode 2 makes no mirrors: nothing to relate alerts to (the rule still runs).
    if s.config.alerts.attach && s.config.target == crate::domain::portal::SyncTarget::Sentinel {
        let r = crate::usecase::attach_alerts::attach(s).await;
        crate::usecase::health::record_feed(s, crate::usecase::attach_alerts::FEED, r.as_ref().map(|_| ())).await;
        match &r {
            Ok(report) => format!("; {report}"),
            Err(e) => {
                tracing::error!(error.message = %e, "relating rule alerts to mirrors failed; the next tick retries");
                format!("; alerts not related: {e}")
            }
        }
    } else {
        String::new()
    };
    let attached = attached + &crate::usecase::portal::tick(s).await;
    if let Err(e) = failures::drain_poison(s).await {
        tracing::warn!(error.message = %e, "could not read the poison queue; will try at the next tick");
    }
    if let Err(e) = failures::retry_due(s).await {
        tracing::warn!(error.message = %e, "could not re-enqueue failed incidents; will try at the next tick");
    }
    if let Err(e) = &defender {
        tracing::error!(error.message = %e, "Defender poll failed");
    }
    if let Err(e) = &sentinel {
        tracing::error!(error.message = %e, "Sentinel sweep failed");
    }
    match (defender, sentinel) {
        (Ok(d), Ok(s)) => Ok(format!(
            "polled: Defender {} listed, {} enqueued; Sentinel {} listed, {} enqueued{attached}",
            d.listed, d.enqueued, s.listed, s.enqueued
        )),
        (d, s) => Err(format!(
            "poll failed: Defender {}; Sentinel {}",
            d.err().map_or("ok".into(), |e| e.to_string()),
            s.err().map_or("ok".into(), |e| e.to_string())
        )),
    }
}

/// One queue message of `xdrsync-incidents`, its text as the queue holds it. A message is
/// acknowledged only once its incident is synced, gone from Defender, recorded in `Failures`, or
/// back in the queue as a fresh copy; one that is not a work item goes to `<queue>-poison` at once
/// (ARCHITECTURE.md: “Failure rules”).
pub async fn sync_message(s: &Ports, text: &str, dequeue_count: u64, message_id: &str) -> QueueVerdict {
    let item = match WorkItem::parse(text) {
        Ok(i) => i,
        Err(e) => return poison_now(s, text, message_id, &e.to_string()).await,
    };
    // Ids no table key can hold can be neither synced nor recorded: not a work item either.
    if let Err(e) = crate::state::RowKey::new(&item.tenant_id, &item.incident_id) {
        return poison_now(s, text, message_id, &e.to_string()).await;
    }
    // The item's tenant partition: failures are recorded there, even for a removed tenant.
    let scoped = s.partition_of(&item.tenant_id);
    let s = &scoped;
    // One retry budget for every call this delivery makes (ARCHITECTURE.md: “Failure rules”).
    let outcome = MessageBudget::scope(RETRIES_PER_MESSAGE, reconcile(s, &item)).await;
    if let Ok(SyncOutcome::Synced(r)) = &outcome {
        crate::usecase::activity::record(s, crate::usecase::activity::of(r)).await;
    }
    match &outcome {
        // Fields synced, but a comment copy was refused: keep it visible and retried.
        Ok(SyncOutcome::Synced(r)) if r.comments_refused > 0 => {
            let why = r.refusal.clone().unwrap_or_default();
            failures::note(
                s,
                &item.incident_id,
                failures::FailureClass::Rejected,
                None,
                &format!("a copied comment was refused: {why}"),
            )
            .await;
        }
        Ok(_) => failures::clear(s, &item.incident_id).await,
        Err(_) => {}
    }
    let id = &item.incident_id;
    match outcome {
        Ok(SyncOutcome::Synced(r)) => QueueVerdict::Done(format!(
            "incident {id}: sentinel written {}, defender patched {}, alerts sent {}, conflicts {}",
            r.sentinel_written, r.defender_patched, r.alerts_sent, r.conflicts
        )),
        Ok(SyncOutcome::Unchanged) => QueueVerdict::Done(format!("incident {id}: unchanged")),
        Ok(SyncOutcome::NotMirrored) => QueueVerdict::Done(format!("incident {id}: created by Sentinel, not mirrored")),
        Ok(SyncOutcome::DefenderGone) => QueueVerdict::Drop(format!("incident {id}: not in Defender")),
        Err(UseCaseError::Retry(e)) if e.retry_after().is_some_and(|after| after > LONGEST_INLINE_WAIT) => {
            // A long throttle: give the message back as a fresh one that appears after the wait,
            // so waiting never counts toward the poison queue and never holds a worker. Waiting
            // is not a failure: nothing is recorded.
            let after = e.retry_after().unwrap_or(LONGEST_INLINE_WAIT);
            match requeue(s, &item, after).await {
                Ok(()) => {
                    tracing::info!(incident.id = %id, wait_s = after.as_secs(), error.message = %e, "throttled; the message comes back after the wait");
                    QueueVerdict::Deferred(format!("incident {id}: throttled, back in {} s", after.as_secs()))
                }
                Err(send) => {
                    tracing::warn!(incident.id = %id, error.message = %send, "could not defer a throttled message; it will be retried");
                    QueueVerdict::Retry(format!("incident {id}: {e}"))
                }
            }
        }
        Err(e) => settle_failure(s, &item, &e, dequeue_count).await,
    }
}

/// Gives the canonical work item back to the queue, visible after `delay`: never the text as
/// delivered, which the host may have JSON-quoted.
async fn requeue(s: &Ports, item: &WorkItem, delay: std::time::Duration) -> Result<(), crate::error::PortError> {
    s.queue.send_later(&s.config.queue_name, &item.to_json(), delay).await
}

/// A failed reconcile: recorded in `Failures`, then given back to the queue on the backoff, or
/// left to the schedule (`domain/redelivery.rs`). Unrecorded (storage down), the message stays
/// with the queue: redelivered, finally poisoned, and read back from there.
async fn settle_failure(s: &Ports, item: &WorkItem, e: &UseCaseError, dequeue_count: u64) -> QueueVerdict {
    let id = &item.incident_id;
    let (service, retry_after) = match e {
        UseCaseError::Retry(p) => (Some(p.service()), p.retry_after()),
        UseCaseError::Permanent(_) => (None, None),
    };
    let message = e.to_string();
    let f =
        failures::Failure { class: failures::class_of(e), service, message: &message, retry_after, from_message: true };
    match failures::record(s, id, f).await {
        Ok((r, Redelivery::Schedule)) => {
            tracing::error!(incident.id = %id, failure.attempts = r.attempts, error.message = %e, "sync failed; recorded for a later retry, message acknowledged");
            QueueVerdict::Drop(format!("incident {id}: {e} (recorded; retried on the schedule)"))
        }
        Ok((r, Redelivery::Requeue(delay))) => match requeue(s, item, delay).await {
            Ok(()) => {
                tracing::warn!(incident.id = %id, failure.attempts = r.attempts, wait_s = delay.as_secs(), error.message = %e, "sync failed; recorded, the message comes back after the wait");
                QueueVerdict::Deferred(format!(
                    "incident {id}: {e} (attempt {}, back in {} s)",
                    r.attempts,
                    delay.as_secs()
                ))
            }
            Err(send) => {
                tracing::warn!(incident.id = %id, error.message = %send, "could not give the message back; it will be redelivered");
                QueueVerdict::Retry(format!("incident {id}: {e}"))
            }
        },
        Err(store) => {
            tracing::warn!(incident.id = %id, queue.dequeue_count = dequeue_count, error.message = %e, store.error = %store, "sync failed and could not be recorded; will be redelivered");
            QueueVerdict::Retry(format!("incident {id}: {e}"))
        }
    }
}

/// A message that is not a work item can never succeed: it goes to the poison queue at once,
/// where health counts it and a person sees it, and is acknowledged. Kept if that write fails.
async fn poison_now(s: &Ports, text: &str, message_id: &str, why: &str) -> QueueVerdict {
    let poison = format!("{}-poison", s.config.queue_name);
    match s.queue.send(&poison, text).await {
        Ok(()) => {
            tracing::error!(queue.message.id = %message_id, error.message = %why, "a message that is not a work item was moved to the poison queue");
            QueueVerdict::Drop(format!("moved to {poison}: {why}"))
        }
        Err(e) => {
            tracing::warn!(queue.message.id = %message_id, error.message = %e, "could not move a message that is not a work item to the poison queue; it will be redelivered");
            QueueVerdict::Retry(format!("not a work item ({why}); poison queue unreachable: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use async_trait::async_trait;

    use super::*;
    use crate::domain::defender::{AlertComment, DefenderAlert, DefenderIncident, DefenderIncidentPatch};
    use crate::error::PortError;
    use crate::ports::{DefenderApi, DirectoryUser};

    /// A Defender that is throttled for two minutes.
    struct Throttled;

    #[async_trait]
    impl DefenderApi for Throttled {
        async fn list_incidents_since(&self, _: time::OffsetDateTime) -> Result<Vec<DefenderIncident>, PortError> {
            Err(busy())
        }
        async fn list_incident_stamps(
            &self,
            _: crate::domain::cursor::Window,
            _: Option<&str>,
        ) -> Result<crate::ports::StampPage, PortError> {
            Err(busy())
        }
        async fn get_incident(&self, _: &str) -> Result<Option<DefenderIncident>, PortError> {
            Err(busy())
        }
        async fn list_alerts(&self, _: &str) -> Result<Vec<DefenderAlert>, PortError> {
            Err(busy())
        }
        async fn patch_incident(&self, _: &str, _: &DefenderIncidentPatch) -> Result<DefenderIncident, PortError> {
            Err(busy())
        }
        async fn add_comment(&self, _: &str, _: &str) -> Result<Vec<AlertComment>, PortError> {
            Err(busy())
        }
        async fn find_user(&self, _: &str) -> Result<Option<DirectoryUser>, PortError> {
            Err(busy())
        }
    }

    fn busy() -> PortError {
        PortError::Throttled { service: "graph", after: Some(Duration::from_secs(120)), message: "slow down".into() }
    }

    #[tokio::test]
    async fn a_long_throttle_gives_the_message_back_as_a_fresh_delayed_one() {
        let mut s = crate::usecase::test_ports();
        let queue = Arc::new(xdrsync_sim::fakes::MemoryQueue::new());
        s.queue = queue.clone();
        s.store = Arc::new(xdrsync_sim::fakes::MemoryStore::new());
        s.defender = Arc::new(Throttled);
        let item = WorkItem::reconcile(&s.config.tenant_id, "29", crate::domain::work::ChangeHint::Defender);
        // Quoted twice, as older versions left a throttled message in the queue: it heals.
        let quoted = serde_json::to_string(&serde_json::to_string(&item.to_json()).unwrap()).unwrap();
        let verdict = sync_message(&s, &quoted, 4, "m-1").await;
        assert!(matches!(verdict, QueueVerdict::Deferred(_)), "acknowledged, not retried: {verdict:?}");
        assert_eq!(
            queue.texts(&s.config.queue_name),
            vec![item.to_json()],
            "a fresh canonical copy waits in the queue"
        );
        let visible_now = s.queue.receive(&s.config.queue_name, 1, Duration::from_secs(30)).await.unwrap();
        assert!(visible_now.is_empty(), "invisible until the throttle ends");
    }
}
