//! `xdrsync check`: gets a token for each audience, reaches Table and Queue storage, and makes
//! one harmless call per permission xdrsync needs, reporting every problem in plain words with
//! the setting or role to fix (the configuration itself is audited before, in `config_audit`).
//! A 403 names the missing role; an endpoint that does not answer is said to not answer.

use crate::error::{PortError, Reaction};
use crate::usecase::Ports;

/// One line of the report.
#[derive(Debug)]
pub struct CheckLine {
    pub what: String,
    pub ok: bool,
    pub detail: String,
}

fn advice(e: &PortError, settings: &str) -> String {
    match e.reaction() {
        Reaction::FixAccess => format!("{e}. Check {settings}."),
        Reaction::Retry => {
            format!("{e}. The endpoint did not answer; check the URL and network ({settings}).")
        }
        _ => format!("{e}. Check {settings}."),
    }
}

/// The line for one permission probe: ok, or what the 403 means.
pub(crate) fn probe_line(what: &str, result: Result<(), PortError>, ok: &str, role: &str, settings: &str) -> CheckLine {
    let detail = match &result {
        Ok(()) => ok.to_string(),
        Err(e @ PortError::Forbidden { .. }) => format!("{e}. Missing: {role}."),
        Err(e) => advice(e, settings),
    };
    CheckLine { what: what.into(), ok: result.is_ok(), detail }
}

/// The line of a Logs Ingestion probe of `stream` (an empty batch: it adds no row). A 400 is a
/// failure that names the stream (an undeclared stream or a wrong DCR refuses every row later, so
/// it must show here); whether the service accepts an empty batch is not documented: the
/// simulator does.
pub(crate) fn logs_line(
    what: &str,
    result: Result<(), PortError>,
    stream: &str,
    role: &str,
    settings: &str,
) -> CheckLine {
    match result {
        Err(e @ PortError::Rejected { .. }) => CheckLine {
            what: what.into(),
            ok: false,
            detail: format!(
                "{e}. The data collection rule refused stream {stream}: check that it declares {stream} and that {settings} name it."
            ),
        },
        r => probe_line(what, r, &format!("the data collection rule accepts {stream} with our token"), role, settings),
    }
}

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
        lines.extend(crate::check_access::lines(services).await);
    }
    lines.extend(crate::check_alerts::lines(services).await);
    lines.extend(crate::check_hunting::lines(services).await);
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

/// Where a customer's administrator consents to the app in `tenant` (multi-tenant mode).
pub(crate) fn admin_consent(s: &Ports, tenant: &str) -> String {
    let client_id = s.config.app_client_id().unwrap_or_default();
    format!(
        "admin consent in tenant {tenant}: {}/{tenant}/adminconsent?client_id={client_id}",
        s.config.authority_host.as_str().trim_end_matches('/')
    )
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
