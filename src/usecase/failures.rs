//! The `Failures` table over the store port (ARCHITECTURE.md: “Failure rules”): every incident
//! whose reconcile did not complete is recorded where the failure is handled, retried on the
//! schedule by the poller's tick, cleared by a later success, listed by `xdrsync failures` and
//! re-enqueued by `xdrsync retry`. Messages the queue gave up on (`<queue>-poison`) are read back
//! into it, so an incident is never left to wait for Defender to change it again.

use std::time::Duration;

pub use crate::domain::failures::FailureClass;
use crate::domain::failures::{due, record_failure, retry_enqueued, FailureRecord};
use crate::domain::work::{ChangeHint, WorkItem};
use crate::error::{PortError, Reaction};
use crate::ports::Table;
use crate::state::{decode, load, put, RowKey};
use crate::usecase::{Ports, UseCaseError};

/// The class of a failed reconcile.
pub fn class_of(e: &UseCaseError) -> FailureClass {
    match e {
        UseCaseError::Permanent(_) => FailureClass::Rejected,
        UseCaseError::Retry(p) => match p {
            PortError::Throttled { .. } => FailureClass::Throttled,
            PortError::Conflict { .. } => FailureClass::Conflict,
            PortError::Unauthorized { .. } => FailureClass::Unauthorized,
            PortError::Forbidden { .. } => FailureClass::Forbidden,
            other if other.reaction() == Reaction::Reject => FailureClass::Rejected,
            _ => FailureClass::Unavailable,
        },
    }
}

fn schedule(s: &Ports) -> Vec<time::Duration> {
    s.config.retry_schedule.iter().map(|d| time::Duration::try_from(*d).unwrap_or(time::Duration::hours(3))).collect()
}

/// Records one more failure of an incident. Best effort: if storage itself is down, the message
/// stays in the queue (or the poison queue) and is recorded when storage answers again.
pub async fn note(s: &Ports, incident_id: &str, class: FailureClass, service: Option<&str>, message: &str) {
    let tenant = &s.config.tenant_id;
    let result = async {
        let key = RowKey::new(tenant, incident_id)?;
        let previous = load::<FailureRecord>(s.store.as_ref(), Table::Failures, &key).await?.map(|v| v.value);
        let mut next =
            record_failure(previous.as_ref(), tenant, incident_id, class, message, s.clock.now(), &schedule(s));
        next.service = service.map(str::to_string);
        if next.sentinel_name.is_none() {
            next.sentinel_name = Some(crate::domain::names::sentinel_incident_name(tenant, incident_id).to_string());
        }
        put(s.store.as_ref(), Table::Failures, &key, &next, &[]).await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(incident.id = %incident_id, error.message = %e, "could not record the failure");
    }
}

/// Clears an incident's failure record after a successful reconcile.
pub async fn clear(s: &Ports, incident_id: &str) {
    let Ok(key) = RowKey::new(&s.config.tenant_id, incident_id) else { return };
    if let Err(e) = s.store.delete(Table::Failures, &key.pk, &key.rk).await {
        tracing::debug!(incident.id = %incident_id, error.message = %e, "could not clear a failure record");
    }
}

/// Every failure record of the tenant.
pub async fn list(s: &Ports) -> Result<Vec<FailureRecord>, PortError> {
    let pk = RowKey::new(&s.config.tenant_id, "")?.pk;
    s.store.query_partition(Table::Failures, &pk).await?.iter().map(decode).collect()
}

/// Enqueues the failed incidents whose retry is due; returns how many.
pub async fn retry_due(s: &Ports) -> Result<usize, PortError> {
    let now = s.clock.now();
    let records = list(s).await?;
    let mut n = 0;
    for r in due(&records, now) {
        enqueue(s, &r.incident_id).await?;
        let key = RowKey::new(&r.tenant_id, &r.incident_id)?;
        put(s.store.as_ref(), Table::Failures, &key, &retry_enqueued(r, now, &schedule(s)), &[]).await?;
        n += 1;
    }
    if n > 0 {
        tracing::info!(failures.retried = n, "re-enqueued failed incidents");
    }
    Ok(n)
}

/// Every failure record of every configured tenant (the one tenant's in single-tenant mode).
pub async fn list_all(s: &Ports) -> Result<Vec<FailureRecord>, PortError> {
    let mut out = Vec::new();
    for t in s.each_tenant() {
        out.extend(list(&t).await?);
    }
    Ok(out)
}

/// `xdrsync retry`: enqueues the named incidents, or every recorded one. With many tenants, the
/// named ids are those recorded in any tenant (each enqueued in its own tenant, `tenant:id`).
pub async fn retry(s: &Ports, ids: Option<&[String]>) -> Result<Vec<String>, PortError> {
    if s.is_multi_tenant() {
        let mut done = Vec::new();
        for t in s.each_tenant() {
            for r in list(&t).await? {
                if ids.is_none_or(|ids| ids.contains(&r.incident_id)) {
                    enqueue(&t, &r.incident_id).await?;
                    done.push(format!("{}:{}", t.config.tenant_id, r.incident_id));
                }
            }
        }
        return Ok(done);
    }
    let targets: Vec<String> = match ids {
        Some(ids) => ids.to_vec(),
        None => list(s).await?.into_iter().map(|r| r.incident_id).collect(),
    };
    for id in &targets {
        enqueue(s, id).await?;
    }
    Ok(targets)
}

async fn enqueue(s: &Ports, incident_id: &str) -> Result<(), PortError> {
    let item = WorkItem::reconcile(&s.config.tenant_id, incident_id, ChangeHint::Reconcile);
    s.queue.send(&s.config.queue_name, &item.to_json()).await
}

/// Reads back what the queue gave up on: each poisoned message becomes a failure record (and so
/// is retried on the schedule), then leaves the poison queue. Returns how many were read.
pub async fn drain_poison(s: &Ports) -> Result<usize, PortError> {
    let poison = format!("{}-poison", s.config.queue_name);
    let mut n = 0;
    loop {
        let messages = match s.queue.receive(&poison, 32, Duration::from_secs(60)).await {
            Ok(m) => m,
            Err(e) if e.is_not_found() => return Ok(n),
            Err(e) => return Err(e),
        };
        if messages.is_empty() {
            return Ok(n);
        }
        for m in messages {
            match WorkItem::parse(&m.text) {
                Ok(item) => {
                    tracing::error!(incident.id = %item.incident_id, queue.message.id = %m.id, "the queue gave up on this incident's message; recorded for retry");
                    let scoped = s.partition_of(&item.tenant_id);
                    note(
                        &scoped,
                        &item.incident_id,
                        FailureClass::Poisoned,
                        None,
                        "the queue gave up after its deliveries",
                    )
                    .await;
                }
                Err(e) => {
                    tracing::error!(queue.message.id = %m.id, error.message = %e, "a poison message that is not a work item was removed")
                }
            }
            s.queue.delete(&poison, &m).await?;
            n += 1;
        }
    }
}
