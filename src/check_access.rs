//! The `xdrsync check` lines that prove xdrsync's own principal may do what it does, without
//! writing: ARM's permissions API on each workspace (incident, comment and relation writes) and on
//! every data collection rule (`check_dcrs`), and the Graph token's `roles` claim in each
//! Defender tenant against what the enabled features need. The evaluation is `domain::permissions` (pure); this module fetches.

use crate::adapters::http::{build_http_client, Call, CounterRef, ServiceClient};
use crate::check::CheckLine;
use crate::domain::permissions::{
    missing, missing_graph_roles, token_roles, GraphNeed, PermissionPage, WORKSPACE_ACTIONS,
};
use crate::error::PortError;
use crate::ports::TokenSource;
use crate::usecase::Ports;
use secrecy::ExposeSecret;

/// Documented api-version of `Microsoft.Authorization/permissions` (azure-rest-api-specs,
/// `Permissions_ListForResource`).
const API_VERSION: &str = "2022-04-01";

const INCIDENTS: GraphNeed = GraphNeed { feature: "incident sync", any_of: &["SecurityIncident.ReadWrite.All"] };
const USERS: GraphNeed = GraphNeed {
    feature: "owner mapping",
    any_of: &["User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"],
};
const HUNTING: GraphNeed = GraphNeed { feature: "advanced-hunting export", any_of: &["ThreatHunting.Read.All"] };
const TARGET_ALERTS: GraphNeed = GraphNeed {
    feature: "Defender-portal target alerts",
    any_of: &[
        "SecurityAlert.Read.All",
        "SecurityAlert.ReadWrite.All",
        "SecurityIncident.Read.All",
        "SecurityIncident.ReadWrite.All",
    ],
};

/// Every permission line, in order.
pub async fn lines(s: &Ports) -> Vec<CheckLine> {
    let cfg = &s.config;
    let principal = crate::adapters::auth::azure_principal(cfg);
    let arm = ServiceClient::new(
        "arm",
        build_http_client(cfg.http_timeout),
        s.tokens.clone(),
        cfg.arm_scope.clone(),
        crate::retry::RetryPolicy::default(),
        CounterRef::new(s.counters.clone(), |c| &c.arm),
    );
    let mut out = Vec::new();
    for w in s.each_workspace() {
        let ws = &w.config.workspace;
        let r = caller_permissions(&arm, cfg.arm_endpoint.as_str(), &ws.resource_id()).await;
        out.push(azure_line(
            &format!("permissions on workspace {}", ws.name),
            r.map(|p| missing(&p, WORKSPACE_ACTIONS, &[])),
            &principal,
            "the role Microsoft Sentinel Responder on the workspace",
        ));
    }
    out.extend(crate::check_dcrs::lines(s, &arm, &principal).await);
    out.extend(graph_lines(s).await);
    out
}

/// The caller's permissions at `scope`, every page.
pub(crate) async fn caller_permissions(
    arm: &ServiceClient,
    endpoint: &str,
    scope: &str,
) -> Result<Vec<crate::domain::permissions::Permission>, PortError> {
    let mut url = Some(format!(
        "{}{scope}/providers/Microsoft.Authorization/permissions?api-version={API_VERSION}",
        endpoint.trim_end_matches('/')
    ));
    let mut all = Vec::new();
    // A few pages at most (one entry per role held); the bound guards against a nextLink loop.
    for _ in 0..20 {
        let Some(u) = url.take() else { break };
        let page: PermissionPage = arm.send(&Call::new(reqwest::Method::GET, u)).await?.json("arm")?;
        all.extend(page.value);
        url = page.next_link;
    }
    Ok(all)
}

pub(crate) fn azure_line(what: &str, r: Result<Vec<String>, PortError>, principal: &str, role: &str) -> CheckLine {
    match r {
        Ok(m) if m.is_empty() => CheckLine {
            what: what.into(),
            ok: true,
            detail: format!("{principal} may do everything xdrsync does there"),
        },
        Ok(m) => CheckLine {
            what: what.into(),
            ok: false,
            detail: format!("{principal} may not {}. Missing: {role} (for {principal}).", m.join(", ")),
        },
        Err(e) => CheckLine {
            what: what.into(),
            ok: false,
            detail: format!("{e}. Could not read the permissions of {principal}."),
        },
    }
}

/// Graph: the token's `roles` claim in each Defender tenant (and the workspace's tenant for owner
/// mapping and the Defender-portal target) against the features in use.
async fn graph_lines(s: &Ports) -> Vec<CheckLine> {
    let cfg = &s.config;
    let principal = crate::adapters::auth::graph_principal(cfg);
    let hunting = !cfg.hunting.tables.is_empty();
    let mut out = Vec::new();
    let check = |tenant: String, tokens: std::sync::Arc<dyn TokenSource>, needs: Vec<GraphNeed>| {
        let principal = principal.clone();
        async move {
            let what = format!("Graph permissions in tenant {tenant}");
            let token = match tokens.token(&cfg.graph_scope).await {
                Ok(t) => t,
                Err(e) => return CheckLine { what, ok: false, detail: format!("{e}. No token for {principal}.") },
            };
            let Some(held) = token_roles(token.expose_secret()) else {
                return CheckLine {
                    what,
                    ok: true,
                    detail: "the token is not readable; the probes above are the proof".into(),
                };
            };
            let missing = missing_graph_roles(&held, &needs);
            if missing.is_empty() {
                return CheckLine { what, ok: true, detail: format!("{principal} holds {}", held.join(", ")) };
            }
            let grant: Vec<String> = missing.iter().map(|n| format!("{} ({})", n.any_of[0], n.feature)).collect();
            let consent = cfg
                .app_client_id()
                .map(|id| {
                    format!(
                        " then admin consent: {}/{tenant}/adminconsent?client_id={id}",
                        cfg.authority_host.as_str().trim_end_matches('/')
                    )
                })
                .unwrap_or_default();
            CheckLine {
                what,
                ok: false,
                detail: format!(
                    "the token of {principal} lacks {}. Grant the application permission{consent} (a token issued before the grant keeps lacking it; xdrsync fetches a new one after a 403).",
                    grant.join(", ")
                ),
            }
        }
    };
    // The workspace's tenant: owner mapping, the Defender-portal target, and its own incidents
    // when it is a Defender tenant too.
    let ws_is_defender =
        !s.is_multi_tenant() || cfg.defender_tenants.iter().any(|t| t.id.eq_ignore_ascii_case(&cfg.tenant_id));
    let mut workspace_needs = Vec::new();
    if ws_is_defender {
        workspace_needs.push(INCIDENTS);
    }
    workspace_needs.push(USERS);
    if ws_is_defender && hunting {
        workspace_needs.push(HUNTING);
    }
    if cfg.target == crate::domain::portal::SyncTarget::DefenderPortal {
        workspace_needs.extend([INCIDENTS, TARGET_ALERTS]);
        workspace_needs.dedup();
    }
    out.push(check(cfg.tenant_id.clone(), s.graph_tokens.clone(), workspace_needs).await);
    let http = build_http_client(cfg.http_timeout);
    for t in cfg.defender_tenants.iter().filter(|t| !t.id.eq_ignore_ascii_case(&cfg.tenant_id)) {
        let tokens = crate::adapters::auth::graph_token_source(cfg, &t.id, http.clone(), s.counters.clone(), &s.tokens);
        let mut needs = vec![INCIDENTS];
        if hunting {
            needs.push(HUNTING);
        }
        out.push(check(t.id.clone(), tokens, needs).await);
    }
    out
}
