//! The poller tick with many Defender tenants (ARCHITECTURE.md: “Tenants”): every tenant's
//! Defender poll runs concurrently in its own partition (cursor, feed health) and within its own
//! Graph budget, so one tenant that is throttled or lost its consent neither stops nor slows the
//! others; each workspace is swept once; then failures are retried tenant by tenant.

use crate::records::{INCIDENTS_FEED, SENTINEL_FEED};
use crate::usecase::failures;
use crate::usecase::health::record_feed;
use crate::usecase::poll::{poll_defender, poll_sentinel};
use crate::usecase::tenants::{remember_tenants, removed_tenants};
use crate::usecase::Ports;

/// One tick over every tenant: `Ok` when every tenant's poll and every sweep worked, otherwise
/// `Err` naming the tenants that failed (the others were polled all the same).
pub async fn poll_tenants(s: &Ports) -> Result<String, String> {
    if let Err(e) = remember_tenants(s).await {
        tracing::warn!(error.message = %e, "could not record the configured tenants");
    }
    let tenants = s.each_tenant();
    let polls = futures::future::join_all(tenants.iter().map(|t| async move {
        let span = tracing::info_span!("tenant", tenant.id = %t.config.tenant_id);
        let outcome = tracing::Instrument::instrument(poll_defender(t), span).await;
        record_feed(t, INCIDENTS_FEED, outcome.as_ref().map(|_| ())).await;
        if let Err(e) = &outcome {
            tracing::error!(tenant.id = %t.config.tenant_id, error.message = %e, "Defender poll failed for this tenant; the others go on");
        }
        (t, outcome)
    }))
    .await;
    let sweeps = futures::future::join_all(s.each_workspace().into_iter().map(|w| async move {
        let outcome = poll_sentinel(&w).await;
        record_feed(&w, SENTINEL_FEED, outcome.as_ref().map(|_| ())).await;
        if let Err(e) = &outcome {
            tracing::error!(workspace = %w.config.workspace.name, error.message = %e, "Sentinel sweep failed");
        }
        (w, outcome)
    }))
    .await;
    // Native alerts on mirrors, one run per workspace (each relates the alerts of the tenants
    // whose mirrors live there). Mode 2 makes no mirrors: nothing to relate alerts to.
    if s.config.alerts.attach && s.config.target == crate::domain::portal::SyncTarget::Sentinel {
        crate::usecase::attach_alerts::attach_workspaces(s).await;
    }
    // Mode 2: the target incidents in the workspace's tenant, after every source was polled.
    let portal = crate::usecase::portal::tick(s).await;
    if let Err(e) = failures::drain_poison(s).await {
        tracing::warn!(error.message = %e, "could not read the poison queue; will try at the next tick");
    }
    for t in &tenants {
        if let Err(e) = failures::retry_due(t).await {
            tracing::warn!(tenant.id = %t.config.tenant_id, error.message = %e, "could not re-enqueue failed incidents; will try at the next tick");
        }
    }
    if let Ok(removed) = removed_tenants(s).await {
        for r in removed {
            tracing::debug!(tenant.id = %r.tenant_id, "tenant no longer configured: its mirrors stay and no longer sync");
        }
    }
    let (mut listed, mut enqueued, mut failed) = (0, 0, Vec::new());
    for (t, outcome) in &polls {
        match outcome {
            Ok(r) => {
                listed += r.listed;
                enqueued += r.enqueued;
            }
            Err(e) => failed.push(format!("Defender {}: {e}", t.tenant_name())),
        }
    }
    let (mut swept, mut swept_enqueued) = (0, 0);
    for (w, outcome) in &sweeps {
        match outcome {
            Ok(r) => {
                swept += r.listed;
                swept_enqueued += r.enqueued;
            }
            Err(e) => failed.push(format!("Sentinel {}: {e}", w.config.workspace.name)),
        }
    }
    let summary = format!(
        "polled {} tenant(s): Defender {listed} listed, {enqueued} enqueued; Sentinel {swept} listed, {swept_enqueued} enqueued{portal}",
        tenants.len()
    );
    if failed.is_empty() {
        Ok(summary)
    } else {
        Err(format!("{summary}; failed: {}", failed.join("; ")))
    }
}
