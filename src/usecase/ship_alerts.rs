//! Ships an incident's alert rows after a reconcile (ARCHITECTURE.md: “Logs Ingestion”): every
//! changed version to `XdrsyncAlerts_CL`, and, for an alert new on the incident (first seen, or
//! moved there by a merge), its trigger rows for the analytics rules (docs/native-alerts.md):
//! into the workspace's outbox, which the pacer drains below the rules' caps.

use std::collections::HashMap;

use crate::domain::alert_triggers::incident_triggers;
use crate::domain::alerts::with_time_generated;
use crate::domain::keys::escape_key;
use crate::domain::plan::AlertRows;
use crate::domain::portal::SyncTarget;
use crate::error::PortError;
use crate::ports::{Entity, Table};
use crate::state::RowKey;
use crate::usecase::{Ports, UseCaseError};

/// Sends the alert rows whose digest differs from the one stored for that alert; returns how many
/// were sent (ARCHITECTURE.md: “Logs Ingestion”).
///
/// Logs Ingestion does not deduplicate, and a row is uploaded before its digest is saved, so a
/// failure between the service storing a row and our saving its digest sends that row again. The
/// bound: **each failed attempt adds at most one extra copy of a row, and only of the rows of
/// the one call that failed**; rows of calls already accepted are never sent again. Enforced by:
/// - saving the digests of each accepted call right after it is accepted, before the next call
///   (`AcceptedRows`), so a failure part-way re-sends only the rows not yet recorded;
/// - the failed attempts that can duplicate: an HTTP attempt the service stored but whose answer
///   was lost (retried with the same body inside the adapter, at most 4 attempts per call and 8
///   retries per queue message, `retry.rs`); a digest save that fails, or a crash, right after an
///   accepted call (the next reconcile sends that call's rows once more). Whether a failed
///   attempt was stored cannot be told from outside, so each counts as one possible copy; one
///   the service refused outright (413, 400, 401/403) adds none.
///
/// Two processes reconciling one incident at once may each send a changed row once before the
/// state row's ETag makes one of them redo (and the redo sends nothing: the digests are saved).
/// `XdrsyncIncidentAlerts()` returns one row per alert, so copies never reach its users.
///
/// A row too large for one call is not sent: it is logged with its alert id and its digest is
/// stored as `TooLargeDigest` (with the limit it failed, `TooLargeLimit`), never as `Digest`, so
/// it is not reported as sent. That version is not tried again while the limit is the same (it
/// would fail again, and be logged at every reconcile); the next time the incident's alerts are
/// shipped, a new version of that alert, or the same one under a larger
/// `XDRSYNC_MAX_BATCH_BYTES`, is tried. Rows built by `alerts::row` stay within 900,000 bytes,
/// so only a lowered `XDRSYNC_MAX_BATCH_BYTES` can get here.
pub async fn ship_alerts(s: &Ports, incident_id: &str, alerts: AlertRows) -> Result<usize, UseCaseError> {
    /// Saves the digests of the rows of each accepted call, before the next call is made.
    struct SaveDigests<'a> {
        store: &'a dyn crate::ports::StateStore,
        entities: &'a [Entity],
    }
    #[async_trait::async_trait]
    impl crate::ports::AcceptedRows for SaveDigests<'_> {
        async fn accepted(&self, rows: &[usize]) -> Result<(), PortError> {
            let accepted: Vec<Entity> = rows.iter().filter_map(|i| self.entities.get(*i).cloned()).collect();
            self.store.upsert_many(Table::AlertDigests, &accepted).await
        }
    }

    let cfg = &s.config;
    let pk = RowKey::new(&format!("{}_{incident_id}", cfg.tenant_id), "")?.pk;
    let stored: HashMap<String, Entity> =
        s.store.query_partition(Table::AlertDigests, &pk).await?.into_iter().map(|e| (e.row_key.clone(), e)).collect();
    let now = s.clock.now();
    // Alerts new on this incident (no digest in its partition): first seen, or moved here.
    let new_here: Vec<&str> = alerts
        .rows
        .iter()
        .filter(|(id, _, _)| escape_key(id).is_ok_and(|rk| !stored.contains_key(&rk)))
        .map(|(id, _, _)| id.as_str())
        .collect();
    if !new_here.is_empty() {
        // Before the alert rows: a failure here leaves the digests unsaved, so the next
        // reconcile finds these alerts new again.
        ship_triggers(s, incident_id, &alerts, &new_here).await?;
    }
    let mut changed_rows = Vec::new();
    let mut changed: Vec<(String, Entity)> = Vec::new();
    for (id, r, dg) in alerts.rows {
        let rk = escape_key(&id).map_err(|e| UseCaseError::Permanent(e.to_string()))?;
        let prior = stored.get(&rk);
        let sent = prior.and_then(|e| e.str("Digest")) == Some(dg.as_str());
        let known_too_large = prior.is_some_and(|e| {
            e.str("TooLargeDigest") == Some(dg.as_str())
                && e.props.get("TooLargeLimit").and_then(serde_json::Value::as_u64) >= Some(cfg.max_batch_bytes as u64)
        });
        if !sent && !known_too_large {
            let row = crate::domain::alerts::with_row_digest(r, &dg);
            changed_rows.push(with_time_generated(row, now));
            changed.push((id, Entity::new(pk.clone(), rk).with("Digest", dg)));
        }
    }
    if changed_rows.is_empty() {
        return Ok(0);
    }
    let entities: Vec<Entity> = changed.iter().map(|(_, e)| e.clone()).collect();
    let sink = SaveDigests { store: s.store.as_ref(), entities: &entities };
    let report = s.logs.upload_reporting(&cfg.alerts_stream, &changed_rows, &sink).await?;
    let mut marked = Vec::new();
    for &i in &report.too_large {
        let Some((id, sent_entity)) = changed.get(i) else { continue };
        tracing::warn!(
            alert.id = %id,
            alert.row_bytes = changed_rows[i].to_string().len(),
            logs.max_batch_bytes = cfg.max_batch_bytes,
            "alert row larger than one ingestion call; not sent"
        );
        let mut e = Entity::new(pk.clone(), sent_entity.row_key.clone())
            .with("TooLargeDigest", sent_entity.str("Digest").unwrap_or_default())
            .with("TooLargeLimit", cfg.max_batch_bytes as u64);
        if let Some(previous) = stored.get(&sent_entity.row_key).and_then(|p| p.str("Digest")) {
            // The version the table holds stays recorded as sent.
            e = e.with("Digest", previous);
        }
        marked.push(e);
    }
    if !marked.is_empty() {
        s.store.upsert_many(Table::AlertDigests, &marked).await?;
    }
    Ok(report.rows_sent)
}

/// The trigger rows of the alerts of `alerts` named in `new_here`, computed over the whole
/// incident so its 150-alert limit holds (`incident_triggers`). Mirrors in Sentinel: into the
/// outbox (paced, related, resent). Defender portal target (no mirrors to relate to): sent at
/// once, as the rule's input for the correlation engine.
async fn ship_triggers(
    s: &Ports,
    incident_id: &str,
    alerts: &AlertRows,
    new_here: &[&str],
) -> Result<(), UseCaseError> {
    let cfg = &s.config;
    // Mirrors in Sentinel need the rules only to relate alerts (`XDRSYNC_ATTACH_ALERTS`); the
    // Defender portal target has no other way to its incidents.
    if cfg.target == SyncTarget::Sentinel && !cfg.alerts.attach {
        return Ok(());
    }
    let rows: Vec<&serde_json::Map<String, serde_json::Value>> = alerts.rows.iter().map(|(_, r, _)| r).collect();
    let (triggers, left_out) = incident_triggers(&rows, cfg.alerts.rules);
    if left_out > 0 {
        tracing::info!(incident.id = %incident_id, alert.parts_left_out = left_out, "incident past Sentinel's 150 alerts; the rest of its entities stay in XdrsyncAlerts_CL");
    }
    let triggers: Vec<_> = triggers.into_iter().filter(|t| new_here.contains(&t.key.alert_id.as_str())).collect();
    match cfg.target {
        SyncTarget::Sentinel => {
            crate::usecase::alert_outbox::enqueue(s, triggers).await?;
        }
        SyncTarget::DefenderPortal => {
            let now = s.clock.now();
            let sent: Vec<serde_json::Value> = triggers
                .into_iter()
                .map(|t| {
                    crate::usecase::alert_outbox::sendable(t.columns, &uuid::Uuid::new_v4().to_string(), t.shard, now)
                })
                .collect();
            s.logs.upload(&cfg.alerts.triggers_stream, &sent).await?;
        }
    }
    Ok(())
}
