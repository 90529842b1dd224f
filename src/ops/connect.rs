//! `xdrsync connect`: the "one-click connect" of Microsoft's own connector, for xdrsync. Runs
//! every `check`, creates the tables and queues, lists the Microsoft incident-creation rules
//! that would duplicate Defender XDR incidents in Sentinel (and with `--disable-duplicate-rules`
//! disables them: PUT with `enabled: false` and the etag read), warns when the Microsoft
//! Defender XDR connector's own incident creation is on, and runs one poll. With many tenants it
//! does so in every workspace xdrsync writes to (the default one and each of
//! `XDRSYNC_TENANT_WORKSPACES`), through that workspace's own Sentinel port, and says which
//! workspace each finding belongs to. What a rule or a connector looks like is decided in the core
//! (`domain/workspace_rules.rs`).

use serde::Serialize;

use crate::domain::workspace_rules::AlertRule;
use crate::error::PortError;
use crate::usecase::Ports;

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    pub disable_duplicate_rules: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckRow {
    pub what: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleRow {
    pub name: String,
    pub display_name: String,
    pub product: String,
    /// Enabled after `connect` ran.
    pub enabled: bool,
    /// `disabled`, `left enabled`, `already disabled`, `not a Defender XDR product`, or why the
    /// change failed.
    pub action: String,
}

/// What `connect` found in one workspace.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkspaceFindings {
    /// The workspace's name.
    pub workspace: String,
    pub resource_id: String,
    /// Microsoft incident-creation rules, those for Defender XDR products first.
    pub incident_creation_rules: Vec<RuleRow>,
    pub rules_error: Option<String>,
    /// The Microsoft Defender XDR connector creates incidents itself (`None`: could not read).
    pub xdr_connector_creates_incidents: Option<bool>,
    pub warnings: Vec<String>,
    /// Duplicating rules `--disable-duplicate-rules` was asked to disable and could not (each
    /// with why): the command then fails, since every incident still appears twice.
    pub not_disabled: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub checks: Vec<CheckRow>,
    /// Why the tables and queues could not be created (`null`: they exist).
    pub storage_error: Option<String>,
    /// The first workspace's rules, error and connector (the default one): what a deployment
    /// with one workspace reads.
    pub incident_creation_rules: Vec<RuleRow>,
    pub rules_error: Option<String>,
    pub xdr_connector_creates_incidents: Option<bool>,
    /// Every workspace's warnings (each names its workspace).
    pub warnings: Vec<String>,
    /// One entry per workspace xdrsync writes to, the default one first.
    pub workspaces: Vec<WorkspaceFindings>,
    /// What the poll did, or why it failed.
    pub poll: Option<String>,
    pub poll_error: Option<String>,
    pub ok: bool,
}

/// Connects every workspace xdrsync writes to (one with one tenant).
pub async fn run(s: &Ports, opts: Options) -> Report {
    let checks: Vec<CheckRow> =
        crate::check::run(s).await.into_iter().map(|l| CheckRow { what: l.what, ok: l.ok, detail: l.detail }).collect();
    let storage = prepare_storage(s).await.map_err(|e| e.to_string());
    let mut workspaces = Vec::new();
    for w in s.each_workspace() {
        workspaces.push(inspect(&w, opts).await);
    }
    let warnings: Vec<String> = workspaces.iter().flat_map(|w| w.warnings.iter().cloned()).collect();
    let first = workspaces.first();
    let poll =
        if storage.is_ok() { crate::usecase::jobs::poll(s).await } else { Err("not run: storage is not ready".into()) };
    let disabled_all = workspaces.iter().all(|w| w.not_disabled.is_empty());
    let ok = checks.iter().all(|c| c.ok) && storage.is_ok() && poll.is_ok() && disabled_all;
    let (poll, poll_error) = match poll {
        Ok(p) => (Some(p), None),
        Err(e) => (None, Some(e)),
    };
    Report {
        checks,
        storage_error: storage.err(),
        incident_creation_rules: first.map(|w| w.incident_creation_rules.clone()).unwrap_or_default(),
        rules_error: first.and_then(|w| w.rules_error.clone()),
        xdr_connector_creates_incidents: first.and_then(|w| w.xdr_connector_creates_incidents),
        warnings,
        workspaces,
        poll,
        poll_error,
        ok,
    }
}

/// The rules and the connector of the workspace of `w` (a scope of `Ports::each_workspace`).
async fn inspect(w: &Ports, opts: Options) -> WorkspaceFindings {
    let name = w.config.workspace.name.clone();
    let mut warnings = Vec::new();
    let mut not_disabled = Vec::new();
    let (incident_creation_rules, rules_error) = match rules(w, opts, &mut warnings, &mut not_disabled).await {
        Ok(rows) => (rows, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let xdr = match w.sentinel.list_data_connectors().await {
        Ok(connectors) => {
            let on: Vec<String> =
                connectors.iter().filter(|c| c.xdr_incidents_enabled()).map(|c| c.name.clone()).collect();
            if !on.is_empty() {
                warnings.push(format!(
                    "the Microsoft Defender XDR data connector ({}) creates incidents in workspace {name}: each incident would appear twice. Turn off its incident integration (Microsoft Sentinel > Data connectors > Microsoft Defender XDR) or disconnect it",
                    on.join(", ")
                ));
            }
            Some(!on.is_empty())
        }
        Err(e) => {
            warnings.push(format!("could not read the data connectors of workspace {name}: {e}"));
            None
        }
    };
    WorkspaceFindings {
        resource_id: w.config.workspace.resource_id(),
        workspace: name,
        incident_creation_rules,
        rules_error,
        xdr_connector_creates_incidents: xdr,
        warnings,
        not_disabled,
    }
}

async fn prepare_storage(s: &Ports) -> Result<(), PortError> {
    let queue = &s.config.queue_name;
    s.store.ensure_tables().await?;
    s.queue.ensure_queue(queue).await?;
    s.queue.ensure_queue(&format!("{queue}-poison")).await
}

/// Lists the Microsoft incident-creation rules; disables those for Defender XDR products when asked.
/// A rule that could not be disabled stays in the duplicates warning and in `not_disabled`.
async fn rules(
    s: &Ports,
    opts: Options,
    warnings: &mut Vec<String>,
    not_disabled: &mut Vec<String>,
) -> Result<Vec<RuleRow>, PortError> {
    let listed = s.sentinel.list_alert_rules().await?;
    let mut rows = Vec::new();
    let mut left_enabled = Vec::new();
    for rule in listed.iter().filter(|r| r.creates_incidents_from_microsoft_alerts()) {
        let row = |enabled: bool, action: &str| RuleRow {
            name: rule.name.clone(),
            display_name: rule.display_name().to_string(),
            product: rule.product().unwrap_or("").to_string(),
            enabled,
            action: action.to_string(),
        };
        if !rule.covers_defender_xdr() {
            rows.push(row(rule.enabled(), "not a Defender XDR product"));
        } else if !rule.enabled() {
            rows.push(row(false, "already disabled"));
        } else if opts.disable_duplicate_rules {
            let done = disable(s, rule).await;
            if done.enabled {
                left_enabled.push(rule.display_name().to_string());
                not_disabled
                    .push(format!("{} in workspace {}: {}", done.display_name, s.config.workspace.name, done.action));
            }
            rows.push(done);
        } else {
            left_enabled.push(rule.display_name().to_string());
            rows.push(row(true, "left enabled (duplicates incidents)"));
        }
    }
    if !left_enabled.is_empty() {
        let next = if opts.disable_duplicate_rules {
            "Disabling was refused (see the rules above): fix that, then run connect --disable-duplicate-rules again"
        } else {
            "Run again with --disable-duplicate-rules"
        };
        warnings.push(format!(
            "{} Microsoft incident-creation rule(s) for Defender XDR products are enabled in workspace {}: each incident would appear twice ({}). {next}",
            left_enabled.len(),
            s.config.workspace.name,
            left_enabled.join("; ")
        ));
    }
    rows.sort_by_key(|r| (r.action == "not a Defender XDR product", r.display_name.clone()));
    Ok(rows)
}

async fn disable(s: &Ports, rule: &AlertRule) -> RuleRow {
    let mut row = RuleRow {
        name: rule.name.clone(),
        display_name: rule.display_name().to_string(),
        product: rule.product().unwrap_or("").to_string(),
        enabled: true,
        action: String::new(),
    };
    match s.sentinel.put_alert_rule(&rule.disabled()).await {
        Ok(written) => {
            row.enabled = written.enabled();
            row.action = "disabled".into();
            tracing::info!(rule.name = %rule.name, rule.product = %row.product, "disabled a duplicating incident-creation rule");
        }
        Err(e) if e.is_conflict() => {
            row.action = "not changed: someone edited the rule meanwhile (409); run connect again".into();
        }
        Err(e @ PortError::Forbidden { .. }) => {
            row.action = format!("not changed: {e} (disabling rules needs Microsoft Sentinel Contributor)");
        }
        Err(e) => row.action = format!("not changed: {e}"),
    }
    row
}

/// One workspace's rules and connector, each line under its workspace's name.
fn render_workspace(out: &mut String, w: &WorkspaceFindings) {
    out.push_str(&format!("Microsoft incident-creation rules in workspace {}\n", w.workspace));
    if let Some(e) = &w.rules_error {
        out.push_str(&format!("  could not list: {e}\n"));
    } else if w.incident_creation_rules.is_empty() {
        out.push_str("  none\n");
    }
    let wn = w.incident_creation_rules.iter().map(|x| x.display_name.chars().count()).max().unwrap_or(0);
    let wp = w.incident_creation_rules.iter().map(|x| x.product.chars().count()).max().unwrap_or(0);
    for rule in &w.incident_creation_rules {
        out.push_str(&format!("  {:<wn$}  {:<wp$}  {}\n", rule.display_name, rule.product, rule.action));
    }
    let connector = match w.xdr_connector_creates_incidents {
        Some(true) => "creates incidents (see warning)",
        Some(false) => "no incident creation",
        None => "unknown",
    };
    out.push_str(&format!("Defender XDR connector in workspace {}: {connector}\n", w.workspace));
}

/// The text form.
pub fn render(r: &Report) -> String {
    let mut out = String::from("checks\n");
    for c in &r.checks {
        out.push_str(&format!("  {} {:<28} {}\n", if c.ok { "ok  " } else { "FAIL" }, c.what, c.detail));
    }
    match &r.storage_error {
        None => out.push_str("  ok   tables and queues            created or present\n"),
        Some(e) => out.push_str(&format!("  FAIL tables and queues            {e}\n")),
    }
    for w in &r.workspaces {
        render_workspace(&mut out, w);
    }
    for w in &r.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    if let Some(p) = &r.poll {
        out.push_str(&format!("poll: {p} (the queue workers of `xdrsync run` or the Function App sync them)\n"));
    }
    if let Some(e) = &r.poll_error {
        out.push_str(&format!("poll: FAILED {e}\n"));
    }
    let not_disabled: Vec<&String> = r.workspaces.iter().flat_map(|w| &w.not_disabled).collect();
    for n in &not_disabled {
        out.push_str(&format!("not disabled: {n}\n"));
    }
    out.push_str(if r.ok {
        "connected\n"
    } else {
        "not connected: fix the lines marked FAIL or not disabled, then run connect again\n"
    });
    out
}
