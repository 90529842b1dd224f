//! The `xdrsync check` lines of native alerts and the unified portal (docs/unified-portal.md):
//! a harmless SecurityAlert query in every workspace xdrsync writes to when `XDRSYNC_ATTACH_ALERTS`
//! is on (token, Workspace ID or resource id, Log Analytics Reader), and what onboarding to the Defender portal means for this setup.
//!
//! Whether a workspace is onboarded to the Defender portal is not readable through a documented
//! API (Sentinel's `onboardingStates` says whether Sentinel is enabled, not which portal), so the
//! operator says so with `XDRSYNC_DEFENDER_PORTAL_ONBOARDED`.

use super::line::{probe_line, CheckLine};
use crate::domain::alert_claims::claims_query;
use crate::error::PortError;
use crate::usecase::Ports;

/// Whether every Defender tenant read is the workspace's own tenant (`XDRSYNC_TENANT_ID`): one
/// tenant, or `XDRSYNC_DEFENDER_TENANTS` naming only it.
fn single_tenant(s: &Ports) -> bool {
    let cfg = &s.config;
    cfg.defender_tenants.iter().all(|t| t.id.eq_ignore_ascii_case(&cfg.tenant_id))
}

/// A harmless SecurityAlert query in the workspace of `w`.
async fn query_line(s: &Ports, w: &Ports) -> CheckLine {
    let cfg = &s.config;
    let routed = !w.config.workspace.same_as(&cfg.workspace);
    let probe = match s.tokens.token(&cfg.alerts.scope).await {
        Err(e) => Err(e),
        Ok(_) => {
            let q = claims_query(s.clock.now());
            w.log_query.query(&q, "P1D").await.map(|_| ())
        }
    };
    let address = if routed {
        format!("the workspace resource id of {} in XDRSYNC_TENANT_WORKSPACES", w.config.workspace.name)
    } else {
        "XDRSYNC_WORKSPACE_ID: the workspace's Workspace ID (properties.customerId), a GUID".to_string()
    };
    let detail = match &probe {
        Ok(()) => "queried SecurityAlert in the workspace (alerts are related to their mirrors on every poll)".into(),
        Err(e @ PortError::Forbidden { .. }) => {
            format!("{e}. Missing: the role Log Analytics Reader on the workspace (infra/alert-rule.bicep assigns it).")
        }
        Err(e @ PortError::NotFound { .. }) => format!("{e}. Check {address}."),
        Err(e) => format!("{e}. Check XDRSYNC_LOG_ANALYTICS_ENDPOINT and {address}."),
    };
    let what = if routed {
        format!("Log Analytics query (native alerts) of {}", w.config.workspace.name)
    } else {
        "Log Analytics query (native alerts)".to_string()
    };
    CheckLine { what, ok: probe.is_ok(), detail }
}

/// The lines, in order; empty when neither feature is in use.
pub async fn lines(s: &Ports) -> Vec<CheckLine> {
    let cfg = &s.config;
    let mut out = Vec::new();
    if cfg.alerts.attach {
        // Every workspace an attach run queries: the default one by its GUID, a routed one
        // (`XDRSYNC_TENANT_WORKSPACES`) by its resource id.
        for w in s.each_workspace() {
            out.push(query_line(s, &w).await);
        }
        // A tenant routed to another workspace sends its alert rows to the default DCR unless
        // its route names one: the default workspace's rule makes its alerts, which cannot be
        // related to mirrors in another workspace.
        for r in
            cfg.tenant_routes.iter().filter(|r| r.dcr_immutable_id.is_none() && !r.workspace.same_as(&cfg.workspace))
        {
            out.push(CheckLine {
                what: format!("native alerts of tenant {}", r.tenant_id),
                ok: false,
                detail: format!(
                    "routed to {} without its own data collection rule: its alert rows reach the default workspace's \
                     rule, and alerts cannot be related to mirrors in another workspace. Add |dcr-… (and its endpoint \
                     when in another region) to its XDRSYNC_TENANT_WORKSPACES entry.",
                    r.workspace.name
                ),
            });
        }
    }
    if cfg.defender_portal_onboarded {
        let same = single_tenant(s);
        let detail = if same {
            "source and target tenant are the same and the workspace is onboarded to the Defender portal: \
             single-tenant setups need no defender-portal mode, their Defender incidents are already native there. \
             Mirrors created through the API are not shown in the Defender portal; do not deploy xdrsync's analytics \
             rule there (its alerts would become duplicate Defender incidents). See docs/unified-portal.md."
                .to_string()
        } else {
            "the workspace is onboarded to the Defender portal, where incidents created through the API are not shown: \
             use the defender-portal mode (docs/unified-portal.md)."
                .to_string()
        };
        out.push(CheckLine { what: "Defender portal".into(), ok: true, detail });
    }
    if cfg.target == crate::domain::portal::SyncTarget::DefenderPortal {
        let ok = !single_tenant(s);
        let detail = if ok {
            "XDRSYNC_TARGET=defender-portal: no Sentinel incidents; target incidents of the workspace's tenant are \
             synced with their source incidents through Graph (docs/unified-portal.md, Mode 2)."
                .to_string()
        } else {
            "XDRSYNC_TARGET=defender-portal needs source tenants other than the workspace's in \
             XDRSYNC_DEFENDER_TENANTS: with one tenant, its Defender incidents are already native in the Defender portal."
                .to_string()
        };
        out.push(CheckLine { what: "Target".into(), ok, detail });
        if ok {
            out.extend(target_probes(s).await);
        }
    }
    out
}

/// Mode 2 reads and writes the target incidents and reads their alerts through Graph on the
/// workspace's tenant: one harmless call for each permission (users are probed with the
/// directory line of `check`).
async fn target_probes(s: &Ports) -> Vec<CheckLine> {
    let graph = crate::usecase::portal::target_graph(s);
    let now = s.clock.now();
    let window = crate::domain::cursor::Window { since: now - time::Duration::hours(1), until: None };
    let incidents = graph.list_incident_stamps(window, None).await.map(|_| ());
    // An incident id that cannot exist: the answer is an empty list when alerts may be read.
    let alerts = graph.list_alerts("0").await.map(|_| ());
    let consent = "in the workspace's tenant (XDRSYNC_TENANT_ID), with admin consent";
    vec![
        probe_line(
            "Target incidents",
            incidents,
            "listed the target tenant's incidents (Graph)",
            &format!("the Graph application permission SecurityIncident.ReadWrite.All {consent}"),
            "XDRSYNC_TENANT_ID, XDRSYNC_GRAPH_ENDPOINT",
        ),
        probe_line(
            "Target alerts",
            alerts,
            "read the target tenant's alerts (Graph)",
            &format!("the Graph application permission SecurityAlert.Read.All {consent}"),
            "XDRSYNC_TENANT_ID, XDRSYNC_GRAPH_ENDPOINT",
        ),
    ]
}
