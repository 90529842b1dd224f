//! `xdrsync check`: gets a token for each audience, reaches Table and Queue storage, and makes
//! one harmless call per permission xdrsync needs, reporting every problem in plain words with
//! the setting or role to fix (the configuration itself is audited before, in `config/audit.rs`).
//! A 403 names the missing role; an endpoint that does not answer is said to not answer.

pub mod access;
pub mod alerts;
pub mod dcrs;
pub mod hunting;
pub mod line;
mod rbac;

use crate::error::PortError;
use crate::usecase::Ports;
pub(crate) use line::admin_consent;
pub use line::CheckLine;
use line::{advice, logs_line, probe_line};

/// One harmless call per permission xdrsync needs.
async fn permissions(s: &Ports) -> Vec<CheckLine> {
    let cfg = &s.config;
    let now = s.clock.now();
    let window = crate::domain::cursor::Window { since: now - time::Duration::hours(1), until: None };
    let defender = s.defender.list_incident_stamps(window, None).await.map(|_| ());
    let user = s.defender.find_user("xdrsync-check@example.invalid").await.map(|_| ());
    let sentinel = s.sentinel.list_incidents_modified_since(now - time::Duration::minutes(1)).await.map(|_| ());
    let logs = s.logs.probe(&cfg.alerts_stream).await;
    let mut lines = vec![
        probe_line(
            "Defender incidents",
            defender,
            "listed incidents (Graph)",
            "the Graph application permission SecurityIncident.ReadWrite.All, with admin consent",
            "XDRSYNC_GRAPH_ENDPOINT",
        ),
        probe_line(
            "directory users",
            user,
            "looked up a user (owner mapping)",
            "the Graph application permission User.Read.All, with admin consent",
            "XDRSYNC_GRAPH_ENDPOINT",
        ),
        probe_line(
            "Sentinel incidents",
            sentinel,
            "listed incidents of the workspace",
            "the role Microsoft Sentinel Responder on the workspace (assignments take a few minutes to apply)",
            "XDRSYNC_WORKSPACE_RESOURCE_ID, XDRSYNC_ARM_ENDPOINT",
        ),
        logs_line(
            "Logs Ingestion",
            logs,
            &cfg.alerts_stream,
            "the role Monitoring Metrics Publisher on the data collection rule",
            "XDRSYNC_LOGS_INGESTION_ENDPOINT, XDRSYNC_DCR_IMMUTABLE_ID, XDRSYNC_ALERTS_STREAM",
        ),
    ];
    // Trigger rows go to their own stream whenever native alerts are related (or feed the
    // Defender portal's correlation): the DCR must declare it too, or no alert is ever raised.
    if cfg.alerts.attach || cfg.target == crate::domain::portal::SyncTarget::DefenderPortal {
        let triggers = s.logs.probe(&cfg.alerts.triggers_stream).await;
        lines.push(logs_line(
            "Logs Ingestion (alert triggers)",
            triggers,
            &cfg.alerts.triggers_stream,
            "the role Monitoring Metrics Publisher on the data collection rule",
            "XDRSYNC_DCR_IMMUTABLE_ID and XDRSYNC_ALERT_TRIGGERS_STREAM (the DCR declares it from infra/alert-trigger-columns.json)",
        ));
    }
    if s.is_multi_tenant() {
        // The workspace's tenant need not be a Defender tenant: each Defender tenant is probed
        // with its own token (`tenant_probes`); here only its directory (Sentinel owners).
        lines.retain(|l| l.what != "Defender incidents");
    }
    lines
}

/// Runs every check; never panics, never prints secrets.
pub async fn run(services: &Ports) -> Vec<CheckLine> {
    let cfg = &services.config;
    let mut lines = vec![CheckLine { what: "configuration".into(), ok: true, detail: "all settings valid".into() }];
    lines.extend(token_lines(services).await);
    let r = services.store.ensure_tables().await;
    lines.push(CheckLine {
        what: "table storage".into(),
        ok: r.is_ok(),
        detail: match r {
            Ok(()) => format!("tables {}* ready at {}", cfg.table_prefix, cfg.storage.table_endpoint),
            Err(e) => advice(&e, "AzureWebJobsStorage"),
        },
    });
    let r = services.queue.ensure_queue(&cfg.queue_name).await;
    lines.push(CheckLine {
        what: "queue storage".into(),
        ok: r.is_ok(),
        detail: match r {
            Ok(()) => format!("queue {} ready at {}", cfg.queue_name, cfg.storage.queue_endpoint),
            Err(e) => advice(&e, "AzureWebJobsStorage"),
        },
    });
    // Probe permissions only with working tokens: without one, every probe says the same.
    if lines.iter().filter(|l| l.what.starts_with("token")).all(|l| l.ok) {
        lines.extend(permissions(services).await);
        lines.extend(tenant_probes(services).await);
        // What xdrsync's own principal may do, proved without writing.
        lines.extend(access::lines(services).await);
    }
    lines.extend(alerts::lines(services).await);
    lines.extend(hunting::lines(services).await);
    lines
}

/// One token per audience, each from the identity that makes those calls, naming that principal:
/// Graph's credential for Graph, the managed identity for everything Azure.
async fn token_lines(s: &Ports) -> Vec<CheckLine> {
    let cfg = &s.config;
    let azure = crate::adapters::auth::azure_principal(cfg);
    let graph = crate::adapters::auth::graph_principal(cfg);
    let azure_settings = "IDENTITY_ENDPOINT, XDRSYNC_MANAGED_IDENTITY_CLIENT_ID (or outside Azure XDRSYNC_CLIENT_ID with XDRSYNC_CLIENT_SECRET or XDRSYNC_CLIENT_CERTIFICATE_PATH)";
    let graph_settings = "XDRSYNC_GRAPH_CREDENTIAL, XDRSYNC_CLIENT_ID, XDRSYNC_CLIENT_SECRET, XDRSYNC_CLIENT_CERTIFICATE_PATH, XDRSYNC_FEDERATED_AUDIENCE, XDRSYNC_AUTHORITY_HOST";
    let mut lines = Vec::new();
    for (audience, scope, tokens, principal, settings) in [
        ("Graph", &cfg.graph_scope, &s.graph_tokens, &graph, graph_settings),
        ("ARM (Sentinel)", &cfg.arm_scope, &s.tokens, &azure, azure_settings),
        ("Monitor (Logs Ingestion)", &cfg.monitor_scope, &s.tokens, &azure, azure_settings),
    ] {
        let r = tokens.token(scope).await;
        lines.push(CheckLine {
            what: format!("token for {audience}"),
            ok: r.is_ok(),
            detail: match r {
                Ok(_) => format!("got a token for {scope} as {principal}"),
                Err(e @ PortError::Unavailable { .. }) => {
                    format!("{e}. Entra did not answer as {principal}: check the network and XDRSYNC_AUTHORITY_HOST")
                }
                Err(e) => format!("{e}. Refused for {principal}: check {settings}."),
            },
        });
    }
    lines
}

/// With many tenants: one Graph probe per Defender tenant (its own token and consent) and one
/// Sentinel probe per routed workspace.
async fn tenant_probes(s: &Ports) -> Vec<CheckLine> {
    let mut lines = Vec::new();
    if !s.is_multi_tenant() {
        return lines;
    }
    let now = s.clock.now();
    let window = crate::domain::cursor::Window { since: now - time::Duration::hours(1), until: None };
    for t in s.each_tenant() {
        let defender = t.defender.list_incident_stamps(window, None).await.map(|_| ());
        let consent = format!(
            "{}, which grants SecurityIncident.ReadWrite.All and User.Read.All",
            admin_consent(s, &t.config.tenant_id)
        );
        lines.push(probe_line(
            &format!("Defender incidents of {}", t.tenant_name()),
            defender,
            "listed incidents (Graph, the tenant's own token)",
            &consent,
            "XDRSYNC_DEFENDER_TENANTS",
        ));
    }
    for w in s.each_workspace().iter().filter(|w| !w.config.workspace.same_as(&s.config.workspace)) {
        let sentinel = w.sentinel.list_incidents_modified_since(now - time::Duration::minutes(1)).await.map(|_| ());
        lines.push(probe_line(
            &format!("Sentinel incidents of {}", w.config.workspace.name),
            sentinel,
            "listed incidents of the routed workspace",
            "the role Microsoft Sentinel Responder on that workspace",
            "XDRSYNC_TENANT_WORKSPACES",
        ));
    }
    // Each routed data collection rule (and its endpoint) once.
    let mut probed = vec![(s.config.logs_ingestion_endpoint.clone(), s.config.dcr_immutable_id.clone())];
    for t in s.each_tenant() {
        let target = (t.config.logs_ingestion_endpoint.clone(), t.config.dcr_immutable_id.clone());
        if probed.contains(&target) {
            continue;
        }
        let logs = t.logs.probe(&s.config.alerts_stream).await;
        lines.push(logs_line(
            &format!("Logs Ingestion of {}", t.config.workspace.name),
            logs,
            &s.config.alerts_stream,
            "the role Monitoring Metrics Publisher on that data collection rule",
            "XDRSYNC_TENANT_WORKSPACES (its DCR immutable id and endpoint)",
        ));
        probed.push(target);
    }
    lines
}
