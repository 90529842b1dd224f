//! Health per Defender tenant (ARCHITECTURE.md: “Tenants”): each tenant's Defender feed, its
//! advanced-hunting query source (when on) and failures are assessed on their own, so one tenant whose consent was revoked shows
//! `unhealthy` with the missing permission while the others stay `healthy`. The service as a
//! whole is then `degraded` (it still syncs the others), and `unhealthy` only when every tenant
//! is, or for what all share (storage, a workspace's sweep). Removed tenants are listed.

use serde::Serialize;
use time::OffsetDateTime;

use crate::records::{HUNTING_FEED, INCIDENTS_FEED};
use crate::usecase::health_facts::{feed_facts, job_feeds, Probe};
use crate::usecase::health_rules::{assess, Cadence, Facts};
use crate::usecase::tenants::removed_tenants;
use crate::usecase::Ports;

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantHealth {
    pub tenant_id: String,
    pub display_name: String,
    /// `healthy`, `degraded`, `unhealthy`, or `removed` (no longer configured; mirrors stay).
    pub status: &'static str,
    pub reasons: Vec<String>,
    /// Incidents of this tenant recorded in `Failures`.
    pub failures: usize,
    /// Now minus the tenant's Defender cursor watermark.
    pub lag_seconds: Option<i64>,
}

/// One tenant's health (its storage calls bounded by `probe`).
async fn tenant(t: Ports, probe: &Probe, now: OffsetDateTime, poll: Cadence) -> TenantHealth {
    let (reachable, feed) = feed_facts(&t, probe, INCIDENTS_FEED).await;
    let lag_seconds = feed.2.map(|w| (now - w).whole_seconds());
    let failures = probe.call(crate::usecase::failures::list(&t)).await;
    let mut reachable = reachable && failures.is_ok();
    // The query source runs in each tenant's scope, judged on its own schedule.
    let mut jobs = Vec::new();
    for (job, every) in job_feeds(&t).into_iter().filter(|(f, _)| *f == HUNTING_FEED) {
        let (ok, (job, health, _)) = feed_facts(&t, probe, job).await;
        reachable &= ok;
        jobs.push((job, health, every));
    }
    let facts = Facts {
        storage_reachable: reachable,
        feeds: vec![feed],
        queue_backlog: None,
        poison: None,
        oldest_message: None,
        failures: failures.unwrap_or_default(),
        jobs,
        workspace_jobs: Vec::new(),
    };
    let (status, reasons) = assess(&facts, now, poll);
    TenantHealth {
        tenant_id: t.config.tenant_id.clone(),
        display_name: t.tenant_name(),
        status,
        reasons,
        failures: facts.failures.len(),
        lag_seconds,
    }
}

/// The overall status and reasons with every tenant's health folded in. Tenants are read side
/// by side: the assessment's storage calls share one time budget.
pub async fn combine(
    s: &Ports,
    probe: &Probe,
    status: &'static str,
    mut reasons: Vec<String>,
    now: OffsetDateTime,
    poll: Cadence,
) -> (&'static str, Vec<String>, Vec<TenantHealth>) {
    let mut tenants = futures::future::join_all(s.each_tenant().into_iter().map(|t| tenant(t, probe, now, poll))).await;
    for r in probe.call(removed_tenants(s)).await.unwrap_or_default() {
        // Work still queued for a removed tenant is recorded in its partition: keep it counted.
        let failures = probe.call(crate::usecase::failures::list(&s.partition_of(&r.tenant_id))).await;
        tenants.push(TenantHealth {
            tenant_id: r.tenant_id,
            display_name: r.display_name,
            status: "removed",
            reasons: vec!["no longer in XDRSYNC_DEFENDER_TENANTS: its mirrors stay and no longer sync".into()],
            failures: failures.map(|f| f.len()).unwrap_or_default(),
            lag_seconds: None,
        });
    }
    let status = fold(status, &tenants);
    for t in tenants.iter().filter(|t| matches!(t.status, "unhealthy" | "degraded")) {
        reasons.extend(t.reasons.iter().map(|r| format!("tenant {}: {r}", t.display_name)));
    }
    (status, reasons, tenants)
}

/// Pure: the overall status from the shared one and the configured tenants' ones.
pub fn fold(shared: &'static str, tenants: &[TenantHealth]) -> &'static str {
    let configured: Vec<&TenantHealth> = tenants.iter().filter(|t| t.status != "removed").collect();
    let all_down = !configured.is_empty() && configured.iter().all(|t| t.status == "unhealthy");
    let some_trouble = configured.iter().any(|t| t.status != "healthy");
    match shared {
        "unhealthy" => "unhealthy",
        _ if all_down => "unhealthy",
        "degraded" => "degraded",
        _ if some_trouble => "degraded",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(status: &'static str) -> TenantHealth {
        TenantHealth {
            tenant_id: "t".into(),
            display_name: "T".into(),
            status,
            reasons: vec![],
            failures: 0,
            lag_seconds: None,
        }
    }

    #[test]
    fn one_tenant_down_degrades_all_down_is_unhealthy_removed_ones_do_not_count() {
        assert_eq!(fold("healthy", &[t("healthy"), t("healthy")]), "healthy");
        assert_eq!(fold("healthy", &[t("unhealthy"), t("healthy")]), "degraded");
        assert_eq!(fold("healthy", &[t("unhealthy"), t("unhealthy")]), "unhealthy");
        assert_eq!(fold("healthy", &[t("healthy"), t("removed")]), "healthy");
        assert_eq!(fold("unhealthy", &[t("healthy")]), "unhealthy", "storage or a sweep down: everyone");
        assert_eq!(fold("degraded", &[t("healthy")]), "degraded");
    }
}
