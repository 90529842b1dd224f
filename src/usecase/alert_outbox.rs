//! The per-workspace outbox of trigger rows (docs/native-alerts.md): sync records the rows of
//! alerts new on an incident; the pacer, on the attach tick, sends what the rules can take now
//! (`domain::alert_pacing`), sends again what was not related after a while, and records as a
//! failure what never was. Rows live in `AlertTriggers`, partition = the workspace's attach
//! partition, until their alert is related; nothing leaves the outbox unrelated except as a
//! failure `xdrsync status` and health show.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::alert_pacing::{pace, prune, resend_decision, Resend, Sent, PENDING_DEGRADED_AFTER};
use crate::domain::alert_triggers::{TriggerKey, TriggerRow};
use crate::domain::keys::escape_key;
use crate::error::PortError;
use crate::ports::{Entity, Table};
use crate::state::{decode, load, put, RowKey};
use crate::usecase::Ports;

/// The `Cursors` row (attach partition) holding the pacing history.
pub const PACING_ROW: &str = "alert-pacing";

/// One trigger row waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Trigger {
    pub tenant_id: String,
    pub incident_id: String,
    pub alert_id: String,
    pub part: u16,
    pub shard: u16,
    pub row: Map<String, Value>,
    #[serde(with = "crate::domain::time_fmt::rfc3339")]
    pub queued_at: OffsetDateTime,
    /// The TriggerId of the last send; `None` while pending.
    #[serde(default)]
    pub trigger_id: Option<String>,
    #[serde(default, with = "crate::domain::time_fmt::rfc3339_opt")]
    pub sent_at: Option<OffsetDateTime>,
    #[serde(default)]
    pub attempts: u32,
    /// A summary alert named it, or several alerts claimed its TriggerId: resend at once.
    #[serde(default)]
    pub summarised: bool,
    /// Sent `MAX_ATTEMPTS` times without a relatable alert.
    #[serde(default)]
    pub failed: bool,
}

impl Trigger {
    pub fn key(&self) -> TriggerKey {
        TriggerKey {
            tenant_id: self.tenant_id.clone(),
            incident_id: self.incident_id.clone(),
            alert_id: self.alert_id.clone(),
            part: self.part,
        }
    }
}

/// The escaped outbox row key of a trigger.
pub fn row_key(key: &TriggerKey) -> Result<String, PortError> {
    escape_key(&key.row_key()).map_err(|e| PortError::rejected("state", e))
}

fn entity(pk: &str, t: &Trigger) -> Result<Entity, PortError> {
    crate::state::encode(&RowKey { pk: pk.to_string(), rk: row_key(&t.key())? }, t, &[])
}

/// The escaped partition of the outbox of the workspace of `s`.
pub fn partition(s: &Ports) -> Result<String, PortError> {
    Ok(RowKey::new(&crate::usecase::tenants::alert_scope(s).partition, "x")?.pk)
}

/// Records trigger rows as pending (one batch per 100, one partition). A row already in the
/// outbox is reset to pending: that only happens when a reconcile is redone before its digests
/// were saved, and a second alert for one trigger is never related twice (links).
pub async fn enqueue(s: &Ports, rows: Vec<TriggerRow>) -> Result<usize, PortError> {
    if rows.is_empty() {
        return Ok(0);
    }
    let pk = partition(s)?;
    let now = s.clock.now();
    let entities = rows
        .into_iter()
        .map(|r| {
            entity(
                &pk,
                &Trigger {
                    tenant_id: r.key.tenant_id,
                    incident_id: r.key.incident_id,
                    alert_id: r.key.alert_id,
                    part: r.key.part,
                    shard: r.shard,
                    row: r.columns,
                    queued_at: now,
                    trigger_id: None,
                    sent_at: None,
                    attempts: 0,
                    summarised: false,
                    failed: false,
                },
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    s.store.upsert_many(Table::AlertTriggers, &entities).await?;
    Ok(entities.len())
}

/// Every trigger in the outbox of the workspace of `s` (rows that cannot be read are logged and
/// left, never dropped).
pub async fn load_all(s: &Ports) -> Result<Vec<Trigger>, PortError> {
    let pk = partition(s)?;
    let mut out = Vec::new();
    for e in s.store.query_partition(Table::AlertTriggers, &pk).await? {
        match decode::<Trigger>(&e) {
            Ok(t) => out.push(t),
            Err(err) => tracing::warn!(error.message = %err, "an outbox row could not be read; left as it is"),
        }
    }
    Ok(out)
}

/// Writes changed triggers back (batched).
pub async fn save_all(s: &Ports, triggers: &[&Trigger]) -> Result<(), PortError> {
    let pk = partition(s)?;
    let entities = triggers.iter().map(|t| entity(&pk, t)).collect::<Result<Vec<_>, _>>()?;
    s.store.upsert_many(Table::AlertTriggers, &entities).await
}

/// Removes a trigger whose alert is related.
pub async fn remove(s: &Ports, key: &TriggerKey) -> Result<(), PortError> {
    s.store.delete(Table::AlertTriggers, &partition(s)?, &row_key(key)?).await
}

/// What the outbox holds, for `status` and health.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backlog {
    /// Not sent yet.
    pub pending: usize,
    /// Sent, alert not related yet.
    pub in_flight: usize,
    /// Sent `MAX_ATTEMPTS` times without a relatable alert.
    pub failed: usize,
    /// Sends beyond the first (summarised, dropped or late alerts).
    pub resends: usize,
    /// Age in seconds of the oldest trigger not related yet (failures excluded).
    pub oldest_pending_seconds: Option<i64>,
}

impl Backlog {
    pub fn of(triggers: &[Trigger], now: OffsetDateTime) -> Self {
        let live = || triggers.iter().filter(|t| !t.failed);
        Backlog {
            pending: live().filter(|t| t.trigger_id.is_none()).count(),
            in_flight: live().filter(|t| t.trigger_id.is_some()).count(),
            failed: triggers.iter().filter(|t| t.failed).count(),
            resends: triggers.iter().map(|t| t.attempts.saturating_sub(1) as usize).sum(),
            oldest_pending_seconds: live().map(|t| (now - t.queued_at).whole_seconds()).max(),
        }
    }

    /// Health's bound: the oldest trigger waited longer than `PENDING_DEGRADED_AFTER`, or some failed.
    pub fn degraded(&self) -> Option<String> {
        if self.failed > 0 {
            return Some(format!("{} alert trigger rows were sent 5 times without an alert to relate", self.failed));
        }
        self.oldest_pending_seconds.filter(|s| *s > PENDING_DEGRADED_AFTER.whole_seconds()).map(|s| {
            format!("the oldest of {} alert trigger rows has waited {} minutes", self.pending + self.in_flight, s / 60)
        })
    }
}

/// What one pacer run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PacerReport {
    pub sent: usize,
    pub resent: usize,
    pub failed: usize,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct History {
    #[serde(default)]
    sent: Vec<Sent>,
}

/// One pacer run over `triggers` (the outbox, minus what this run related): resend decisions,
/// then the sends the pacing allows, oldest first. The pacing history is saved before the rows
/// are sent, so a crash in between over-counts (sends less), never more.
pub async fn pace_and_send(
    s: &Ports,
    triggers: &mut [Trigger],
    summarised: &BTreeSet<String>,
) -> Result<PacerReport, PortError> {
    let now = s.clock.now();
    let mut report = PacerReport::default();
    let mut changed: BTreeSet<usize> = BTreeSet::new();
    // Due: pending, or sent and due again.
    let mut due: Vec<usize> = Vec::new();
    for (i, t) in triggers.iter_mut().enumerate() {
        if t.failed {
            continue;
        }
        let Some(sent_at) = t.sent_at else {
            due.push(i);
            continue;
        };
        let named = t.summarised || t.trigger_id.as_ref().is_some_and(|id| summarised.contains(id));
        match resend_decision(sent_at, t.attempts, named, now) {
            Resend::Wait => {
                if named && !t.summarised {
                    t.summarised = true;
                    changed.insert(i);
                }
            }
            Resend::Resend => due.push(i),
            Resend::GiveUp => {
                t.failed = true;
                report.failed += 1;
                changed.insert(i);
                tracing::warn!(alert.id = %t.alert_id, incident.id = %t.incident_id, attempts = t.attempts, "alert trigger row sent repeatedly without an alert to relate; recorded as a failure");
            }
        }
    }
    due.sort_by_key(|i| (triggers[*i].queued_at, triggers[*i].alert_id.clone(), triggers[*i].part));
    let scope = crate::usecase::tenants::alert_scope(s);
    let key = RowKey::new(&scope.partition, PACING_ROW)?;
    let mut history =
        load::<History>(s.store.as_ref(), Table::Cursors, &key).await?.map(|v| v.value).unwrap_or_default();
    history.sent = prune(&history.sent, now);
    let shards: Vec<u16> = due.iter().map(|i| triggers[*i].shard).collect();
    let go: Vec<usize> = pace(&history.sent, &shards, now).into_iter().map(|j| due[j]).collect();
    if !go.is_empty() {
        let mut by_shard: std::collections::BTreeMap<u16, u32> = Default::default();
        for i in &go {
            *by_shard.entry(triggers[*i].shard).or_default() += 1;
        }
        history.sent.extend(by_shard.into_iter().map(|(shard, rows)| Sent { shard, at: now.unix_timestamp(), rows }));
        put(s.store.as_ref(), Table::Cursors, &key, &history, &[]).await?;
        let mut rows = Vec::with_capacity(go.len());
        for i in &go {
            let t = &mut triggers[*i];
            if t.trigger_id.is_some() {
                report.resent += 1;
            }
            t.trigger_id = Some(Uuid::new_v4().to_string());
            t.sent_at = Some(now);
            t.attempts += 1;
            t.summarised = false;
            rows.push(send_row(t, now));
            changed.insert(*i);
        }
        let sent = s.logs.upload(&s.config.alerts.triggers_stream, &rows).await;
        // Record what was attempted either way: a row the service refused is found by its
        // missing alert and sent again, like any other.
        let all: Vec<&Trigger> = changed.iter().map(|i| &triggers[*i]).collect();
        save_all(s, &all).await?;
        report.sent = sent?.rows_sent;
        return Ok(report);
    }
    let all: Vec<&Trigger> = changed.iter().map(|i| &triggers[*i]).collect();
    save_all(s, &all).await?;
    Ok(report)
}

/// The row as sent: content plus `TriggerId`, `RuleShard`, `TimeGenerated`.
pub fn send_row(t: &Trigger, now: OffsetDateTime) -> Value {
    sendable(t.row.clone(), t.trigger_id.as_deref().unwrap_or_default(), t.shard, now)
}

/// Trigger row content with the columns added at send time.
pub fn sendable(mut row: Map<String, Value>, trigger_id: &str, shard: u16, now: OffsetDateTime) -> Value {
    row.insert("TriggerId".into(), Value::String(trigger_id.to_string()));
    row.insert("RuleShard".into(), Value::from(shard));
    crate::domain::alerts::with_time_generated(row, now)
}

/// The backlog of the workspace of `s`.
pub async fn backlog(s: &Ports) -> Result<Backlog, PortError> {
    Ok(Backlog::of(&load_all(s).await?, s.clock.now()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn trigger(i: u32, sent: bool, failed: bool, attempts: u32, queued: OffsetDateTime) -> Trigger {
        Trigger {
            tenant_id: "t".into(),
            incident_id: "1".into(),
            alert_id: format!("a{i}"),
            part: 1,
            shard: 0,
            row: Map::new(),
            queued_at: queued,
            trigger_id: sent.then(|| format!("g{i}")),
            sent_at: sent.then_some(queued),
            attempts,
            summarised: false,
            failed,
        }
    }

    #[test]
    fn the_backlog_counts_pending_in_flight_failures_and_resends_and_degrades_past_the_bound() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let b = Backlog::of(
            &[
                trigger(1, false, false, 0, now - Duration::minutes(2)),
                trigger(2, true, false, 3, now - Duration::minutes(90)),
                trigger(3, true, true, 5, now - Duration::days(2)),
            ],
            now,
        );
        assert_eq!((b.pending, b.in_flight, b.failed, b.resends), (1, 1, 1, 2 + 4));
        assert_eq!(b.oldest_pending_seconds, Some(90 * 60), "a failure is not pending");
        assert!(b.degraded().is_some_and(|m| m.contains("5 times")), "a failure is never silent");
        let young = Backlog::of(&[trigger(1, false, false, 0, now - Duration::minutes(59))], now);
        assert_eq!(young.degraded(), None);
        let old = Backlog::of(&[trigger(1, false, false, 0, now - Duration::minutes(61))], now);
        assert!(old.degraded().is_some_and(|m| m.contains("61 minutes")));
    }

    #[test]
    fn a_sent_row_carries_its_trigger_id_and_shard() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let mut t = trigger(1, true, false, 1, now);
        t.shard = 7;
        let row = send_row(&t, now);
        assert_eq!(row["TriggerId"], "g1");
        assert_eq!(row["RuleShard"], 7);
        assert!(row.get("TimeGenerated").is_some());
    }
}
