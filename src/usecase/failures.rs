//! The `Failures` table over the store port (ARCHITECTURE.md: “Failure rules”): every incident
//! whose reconcile did not complete is recorded where the failure is handled, retried on the
//! schedule by the poller's tick, cleared by a later success, listed by `xdrsync failures` and
//! re-enqueued by `xdrsync retry`. Messages the queue gave up on (`<queue>-poison`) are read back
//! into it, so an incident is never left to wait for Defender to change it again.

use std::time::Duration;

pub use crate::domain::failures::FailureClass;
use crate::domain::failures::{due, held_for_message, record_failure, retry_enqueued, FailureRecord};
use crate::domain::redelivery::{redelivery, Redelivery};
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

/// One failure to record.
#[derive(Debug, Clone, Copy)]
pub struct Failure<'a> {
    pub class: FailureClass,
    pub service: Option<&'a str>,
    pub message: &'a str,
    /// The service's own wait (`Retry-After`), when it gave one.
    pub retry_after: Option<Duration>,
    /// A queue message carries the incident, given back to the queue when the decision says so.
    pub from_message: bool,
}

/// Records one more failure of an incident and decides what its queue message does next
/// (`domain/redelivery.rs`); when a message carries it back to the queue, the record's own retry
/// waits until after that message returns. An error means nothing was recorded: the caller keeps the message.
pub async fn record(s: &Ports, incident_id: &str, f: Failure<'_>) -> Result<(FailureRecord, Redelivery), PortError> {
    let tenant = &s.config.tenant_id;
    let key = RowKey::new(tenant, incident_id)?;
    let previous = load::<FailureRecord>(s.store.as_ref(), Table::Failures, &key).await?.map(|v| v.value);
    let now = s.clock.now();
    let mut next = record_failure(previous.as_ref(), tenant, incident_id, f.class, f.message, now, &schedule(s));
    next.service = f.service.map(str::to_string);
    if next.sentinel_name.is_none() {
        next.sentinel_name = Some(crate::domain::names::sentinel_incident_name(tenant, incident_id).to_string());
    }
    let decision = redelivery(f.class, next.attempts, f.retry_after, rand::random());
    if let (true, Redelivery::Requeue(delay)) = (f.from_message, decision) {
        next = held_for_message(next, now + time::Duration::try_from(delay).unwrap_or(time::Duration::MAX));
    }
    put(s.store.as_ref(), Table::Failures, &key, &next, &[]).await?;
    Ok((next, decision))
}

/// Records one more failure of an incident, best effort: if storage itself is down, the message
/// stays in the queue (or the poison queue) and is recorded when storage answers again.
pub async fn note(s: &Ports, incident_id: &str, class: FailureClass, service: Option<&str>, message: &str) {
    let f = Failure { class, service, message, retry_after: None, from_message: false };
    if let Err(e) = record(s, incident_id, f).await {
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

/// Every failure record of every configured tenant (the one tenant's in single-tenant mode),
/// then those of tenants no longer configured: their records stay visible until removed.
pub async fn list_all(s: &Ports) -> Result<Vec<FailureRecord>, PortError> {
    let mut out = Vec::new();
    for t in s.each_tenant() {
        out.extend(list(&t).await?);
    }
    for removed in crate::usecase::tenants::removed_tenants(s).await? {
        out.extend(list(&s.partition_of(&removed.tenant_id)).await?);
    }
    Ok(out)
}

/// What `xdrsync retry` did: each incident enqueued or not, and why not.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetryReport {
    pub enqueued: Vec<String>,
    /// `(incident, why)`.
    pub not_enqueued: Vec<(String, String)>,
}

/// `xdrsync retry`: enqueues the named incidents, or every recorded one. With many tenants, the
/// named ids are those recorded in any tenant (each enqueued in its own tenant, `tenant:id`); a
/// removed tenant's records are reported, not enqueued (its Defender is no longer configured).
/// One failed enqueue does not stop the others.
pub async fn retry(s: &Ports, ids: Option<&[String]>) -> Result<RetryReport, PortError> {
    let mut report = RetryReport::default();
    let wanted = |id: &str| ids.is_none_or(|ids| ids.iter().any(|i| i == id));
    if s.is_multi_tenant() {
        let mut found: Vec<String> = Vec::new();
        for t in s.each_tenant() {
            for r in list(&t).await?.into_iter().filter(|r| wanted(&r.incident_id)) {
                found.push(r.incident_id.clone());
                let name = format!("{}:{}", t.config.tenant_id, r.incident_id);
                match enqueue(&t, &r.incident_id).await {
                    Ok(()) => report.enqueued.push(name),
                    Err(e) => report.not_enqueued.push((name, e.to_string())),
                }
            }
        }
        for removed in crate::usecase::tenants::removed_tenants(s).await? {
            for r in list(&s.partition_of(&removed.tenant_id)).await?.into_iter().filter(|r| wanted(&r.incident_id)) {
                found.push(r.incident_id.clone());
                let name = format!("{}:{}", removed.tenant_id, r.incident_id);
                report.not_enqueued.push((name, crate::usecase::tenants::not_configured(&removed.tenant_id)));
            }
        }
        for id in ids.unwrap_or_default().iter().filter(|id| !found.contains(id)) {
            report.not_enqueued.push((id.clone(), "no failure recorded for it in any tenant".into()));
        }
        return Ok(report);
    }
    let targets: Vec<String> = match ids {
        Some(ids) => ids.to_vec(),
        None => list(s).await?.into_iter().map(|r| r.incident_id).collect(),
    };
    for id in targets {
        match enqueue(s, &id).await {
            Ok(()) => report.enqueued.push(id),
            Err(e) => report.not_enqueued.push((id, e.to_string())),
        }
    }
    Ok(report)
}

async fn enqueue(s: &Ports, incident_id: &str) -> Result<(), PortError> {
    let item = WorkItem::reconcile(&s.config.tenant_id, incident_id, ChangeHint::Reconcile);
    s.queue.send(&s.config.queue_name, &item.to_json()).await
}

/// How long a poison message that is not a work item stays invisible between two reads: it waits
/// for a person (health counts it), and is not read again at every tick.
const NOT_WORK_HIDDEN: Duration = Duration::from_secs(3600);

/// Reads back what the queue gave up on: each poisoned work item becomes a failure record (and so
/// is retried on the schedule), then leaves the poison queue; a message that is not a work item
/// stays there for a person. Returns how many were read back.
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
                    let f = Failure {
                        class: FailureClass::Poisoned,
                        service: None,
                        message: "the queue gave up after its deliveries",
                        retry_after: None,
                        from_message: false,
                    };
                    // Deleted only once recorded: otherwise read again at the next tick.
                    record(&scoped, &item.incident_id, f).await?;
                    s.queue.delete(&poison, &m).await?;
                    n += 1;
                }
                Err(e) => {
                    tracing::error!(queue.message.id = %m.id, error.message = %e, "a poison message that is not a work item is left for a person");
                    s.queue.release(&poison, &m, NOT_WORK_HIDDEN).await?;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::usecase::tenants::remember_tenants;
    use xdrsync_sim::fakes::{MemoryQueue, MemoryStore};

    const A: &str = "1f2e3d4c-0000-4000-8000-00000000000a";
    const B: &str = "9a8b7c6d-0000-4000-8000-00000000000b";

    fn build(tenants: &str, store: &Arc<MemoryStore>, queue: &Arc<MemoryQueue>) -> Ports {
        let mut vars = crate::config::tests::base_vars();
        vars.insert("XDRSYNC_DEFENDER_TENANTS".into(), tenants.into());
        let mut s = crate::app::build(crate::config::Config::from_vars(&vars).unwrap());
        s.store = store.clone();
        s.queue = queue.clone();
        s
    }

    #[tokio::test]
    async fn a_removed_tenants_failures_stay_listed_and_retry_says_what_it_did_not_enqueue() {
        let (store, queue) = (Arc::new(MemoryStore::new()), Arc::new(MemoryQueue::new()));
        let both = build(&format!("{A}=A,{B}=B"), &store, &queue);
        remember_tenants(&both).await.unwrap();
        note(&both.partition_of(A), "1", FailureClass::Unavailable, None, "503").await;
        note(&both.partition_of(B), "2", FailureClass::Forbidden, None, "403").await;

        // B is removed from the settings: its record is still listed.
        let one = build(&format!("{A}=A"), &store, &queue);
        let listed: Vec<(String, String)> =
            list_all(&one).await.unwrap().into_iter().map(|r| (r.tenant_id, r.incident_id)).collect();
        assert_eq!(listed, [(A.to_string(), "1".to_string()), (B.to_string(), "2".to_string())]);

        let report = retry(&one, None).await.unwrap();
        assert_eq!(report.enqueued, [format!("{A}:1")]);
        assert_eq!(report.not_enqueued.len(), 1, "{report:?}");
        assert_eq!(report.not_enqueued[0].0, format!("{B}:2"));
        assert!(report.not_enqueued[0].1.contains("XDRSYNC_DEFENDER_TENANTS"), "{report:?}");
        assert_eq!(queue.texts(&one.config.queue_name).len(), 1, "only the configured tenant's work");

        let named = retry(&one, Some(&["1".to_string(), "9".to_string()])).await.unwrap();
        assert_eq!(named.enqueued, [format!("{A}:1")]);
        assert_eq!(named.not_enqueued, [("9".to_string(), "no failure recorded for it in any tenant".to_string())]);
    }
}
