//! Every configuration problem at once, for `xdrsync check` (startup stops at the first): each
//! invalid setting (found by parsing again with the faulty one replaced), unknown `XDRSYNC_*`
//! names (likely typos), a client id and secret that look swapped, a poll schedule that never
//! fires, and a missing webhook key. Never prints a setting's value when it could be a secret.

use std::collections::HashMap;

use crate::config::{Config, ConfigError};

/// Every setting xdrsync reads, for the typo check (and the infra test).
pub const KNOWN_SETTINGS: &[&str] = &[
    "XDRSYNC_ALERTS_ATTACH_DELAY_MINUTES",
    "XDRSYNC_ALERTS_STREAM",
    "XDRSYNC_ALERT_RULES",
    "XDRSYNC_ALERT_TRIGGERS_STREAM",
    "XDRSYNC_ARM_ENDPOINT",
    "XDRSYNC_ARM_WRITE_BURST",
    "XDRSYNC_ARM_WRITES_PER_SECOND",
    "XDRSYNC_AUTHORITY_HOST",
    "XDRSYNC_CLIENT_CERTIFICATE_PATH",
    "XDRSYNC_CLIENT_ID",
    "XDRSYNC_CLIENT_SECRET",
    "XDRSYNC_CLOUD",
    "XDRSYNC_ATTACH_ALERTS",
    "XDRSYNC_CONFLICT_POLICY",
    "XDRSYNC_DCR_IMMUTABLE_ID",
    "XDRSYNC_DCR_RESOURCE_ID",
    "XDRSYNC_DEFENDER_PORTAL_ONBOARDED",
    "XDRSYNC_DEFENDER_TENANTS",
    "XDRSYNC_FEDERATED_AUDIENCE",
    "XDRSYNC_GRAPH_CALLS_PER_MINUTE",
    "XDRSYNC_GRAPH_CREDENTIAL",
    "XDRSYNC_GRAPH_ENDPOINT",
    "XDRSYNC_HTTP_BIND",
    "XDRSYNC_HTTP_PORT",
    "XDRSYNC_HTTP_TIMEOUT_SECONDS",
    "XDRSYNC_HUNTING_CALLS_PER_MINUTE",
    "XDRSYNC_HUNTING_DCR_IMMUTABLE_ID",
    "XDRSYNC_HUNTING_DELAY_SECONDS",
    "XDRSYNC_HUNTING_LOOKBACK_MINUTES",
    "XDRSYNC_HUNTING_PAGE_ROWS",
    "XDRSYNC_HUNTING_SCHEDULE",
    "XDRSYNC_HUNTING_STORAGE_CONNECTION",
    "XDRSYNC_HUNTING_EVENTHUB_CONNECTION",
    "XDRSYNC_HUNTING_EVENTHUB_NAME",
    "XDRSYNC_HUNTING_STORAGE_TABLES",
    "XDRSYNC_HUNTING_TABLES",
    "XDRSYNC_INITIAL_LOOKBACK_HOURS",
    "XDRSYNC_LOG_ANALYTICS_ENDPOINT",
    "XDRSYNC_LOG_JSON",
    "XDRSYNC_LOGS_INGESTION_ENDPOINT",
    "XDRSYNC_MANAGED_IDENTITY_CLIENT_ID",
    "XDRSYNC_MAX_BATCH_BYTES",
    "XDRSYNC_MIRROR_SENTINEL_INCIDENTS",
    "XDRSYNC_POLL_OVERLAP_SECONDS",
    "XDRSYNC_POLL_SCHEDULE",
    "XDRSYNC_POLL_TIME_BUDGET_SECONDS",
    "XDRSYNC_QUEUE_NAME",
    "XDRSYNC_QUEUE_VISIBILITY_SECONDS",
    "XDRSYNC_RETRY_SCHEDULE_SECONDS",
    "XDRSYNC_TABLE_PREFIX",
    "XDRSYNC_TARGET",
    "XDRSYNC_TENANT_ID",
    "XDRSYNC_TENANT_WORKSPACES",
    "XDRSYNC_USER_CACHE_HOURS",
    "XDRSYNC_WEBHOOK_KEY",
    "XDRSYNC_WORKERS",
    "XDRSYNC_WORKSPACE_ID",
    "XDRSYNC_WORKSPACE_RESOURCE_ID",
];

/// Settings named by prefix: one per advanced-hunting table (`XDRSYNC_HUNTING_FILTER_<TABLE>`).
/// (`XDRSYNC_HUNTING_EVENTHUB_CONNECTION__…` is the Functions host's identity-based connection.)
pub const KNOWN_PREFIXES: &[&str] = &[
    crate::config::hunting::FILTER_PREFIX,
    crate::config::hunting::COLUMNS_PREFIX,
    "XDRSYNC_HUNTING_EVENTHUB_CONNECTION__",
];

fn is_known(name: &str) -> bool {
    KNOWN_SETTINGS.contains(&name) || KNOWN_PREFIXES.iter().any(|p| name.to_ascii_uppercase().starts_with(p))
}

/// One finding: `error` stops xdrsync from starting; otherwise it is a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub setting: String,
    pub error: bool,
    pub message: String,
}

/// A valid stand-in for a required setting, so the parse can go on to the next problem.
fn stand_in(var: &str) -> Option<&'static str> {
    Some(match var {
        "AzureWebJobsStorage" => "UseDevelopmentStorage=true",
        "XDRSYNC_TENANT_ID" | "XDRSYNC_CLIENT_ID" | "XDRSYNC_WORKSPACE_ID" => "00000000-0000-0000-0000-000000000000",
        "XDRSYNC_CLIENT_SECRET" => "stand-in",
        "XDRSYNC_WORKSPACE_RESOURCE_ID" => {
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/ws"
        }
        "XDRSYNC_LOGS_INGESTION_ENDPOINT" => "https://dce.invalid",
        "XDRSYNC_DCR_IMMUTABLE_ID" => "dcr-00000000000000000000000000000000",
        "IDENTITY_HEADER" => "stand-in",
        _ => return None,
    })
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn is_guid(s: &str) -> bool {
    uuid::Uuid::parse_str(s.trim()).is_ok()
}

/// Every problem of `vars`, errors first.
pub fn audit(vars: &HashMap<String, String>) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut probe = vars.clone();
    // Each round finds the first remaining error; replace or drop that setting and parse again.
    for _ in 0..64 {
        match Config::from_vars(&probe) {
            Ok(_) => break,
            Err(ConfigError { var, problem }) => {
                findings.push(Finding { setting: var.to_string(), error: true, message: problem });
                match stand_in(&var) {
                    Some(v) => probe.insert(var.to_string(), v.to_string()),
                    None if probe.contains_key(var.as_ref()) => probe.remove(var.as_ref()),
                    None => break,
                };
            }
        }
    }
    let get = |k: &str| vars.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    if let (Some(id), Some(secret)) = (get("XDRSYNC_CLIENT_ID"), get("XDRSYNC_CLIENT_SECRET")) {
        if is_guid(secret) && !is_guid(id) {
            findings.push(Finding {
                setting: "XDRSYNC_CLIENT_ID".into(),
                error: true,
                message:
                    "XDRSYNC_CLIENT_ID and XDRSYNC_CLIENT_SECRET look swapped (the secret is a GUID, the id is not)"
                        .into(),
            });
        }
    }
    for name in vars.keys().filter(|k| k.starts_with("XDRSYNC_") && !is_known(k)) {
        let closest =
            KNOWN_SETTINGS.iter().min_by_key(|k| edit_distance(name, k)).filter(|k| edit_distance(name, k) <= 4);
        findings.push(Finding {
            setting: name.clone(),
            error: false,
            message: match closest {
                Some(k) => format!("unknown setting (a typo of {k}?); it is ignored"),
                None => "unknown setting; it is ignored".into(),
            },
        });
    }
    if get("XDRSYNC_WEBHOOK_KEY").is_none() {
        findings.push(Finding {
            setting: "XDRSYNC_WEBHOOK_KEY".into(),
            error: false,
            message: "not set: the webhook answers 401 to every call, so Sentinel edits arrive only through the poller's sweep".into(),
        });
    }
    // A schedule that never fires is refused by the settings' one validator (`schedule.rs`);
    // here, the timers the Functions host would disable for want of their setting.
    if let Ok(cfg) = Config::from_vars(&probe) {
        for gap in crate::functions::host_timers::gaps(&cfg, |k| get(k).is_some(), None) {
            findings.push(Finding { setting: gap.setting.into(), error: false, message: gap.to_string() });
        }
    }
    findings.sort_by_key(|f| !f.error);
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_reported_in_one_run_without_a_secret() {
        let mut vars = crate::config::tests::base_vars();
        vars.insert("XDRSYNC_TENANT_ID".into(), "not-a-guid".into());
        vars.insert("XDRSYNC_DCR_IMMUTABLE_ID".into(), "dcr-1".into());
        vars.insert("XDRSYNC_HTTP_PORT".into(), "99999".into());
        vars.insert("XDRSYNC_POLL_SCHEDUL".into(), "*/5 * * * * *".into());
        vars.remove("XDRSYNC_WEBHOOK_KEY");
        let findings = audit(&vars);
        let errors: Vec<&str> = findings.iter().filter(|f| f.error).map(|f| f.setting.as_str()).collect();
        assert_eq!(errors, ["XDRSYNC_TENANT_ID", "XDRSYNC_DCR_IMMUTABLE_ID", "XDRSYNC_HTTP_PORT"]);
        let typo = findings.iter().find(|f| f.setting == "XDRSYNC_POLL_SCHEDUL").unwrap();
        assert!(typo.message.contains("XDRSYNC_POLL_SCHEDULE"), "{typo:?}");
        assert!(findings.iter().any(|f| f.setting == "XDRSYNC_WEBHOOK_KEY" && !f.error));
        let text = format!("{findings:?}");
        assert!(!text.contains("super-secret-value-123"), "{text}");
    }

    #[test]
    fn swapped_id_and_secret_and_a_schedule_that_never_fires_are_named() {
        let mut vars = crate::config::tests::base_vars();
        vars.insert("XDRSYNC_CLIENT_ID".into(), "Ab3~secretish.value".into());
        vars.insert("XDRSYNC_CLIENT_SECRET".into(), "11111111-2222-3333-4444-555555555555".into());
        vars.insert("XDRSYNC_POLL_SCHEDULE".into(), "0 0 0 30 2 *".into());
        let findings = audit(&vars);
        assert!(findings.iter().any(|f| f.message.contains("look swapped")), "{findings:?}");
        assert!(
            findings.iter().any(|f| f.setting == "XDRSYNC_POLL_SCHEDULE" && f.message.contains("never fires")),
            "{findings:?}"
        );
        assert!(!format!("{findings:?}").contains("Ab3~secretish"), "the swapped secret is not printed");
    }

    #[test]
    fn a_timer_the_functions_host_would_disable_is_named_with_its_setting() {
        let mut vars = crate::config::tests::base_vars();
        vars.insert("XDRSYNC_POLL_SCHEDULE".into(), "*/30 * * * * *".into());
        vars.insert("XDRSYNC_HUNTING_TABLES".into(), "DeviceProcessEvents".into());
        let findings = audit(&vars);
        let gap = findings.iter().find(|f| f.setting == "XDRSYNC_HUNTING_SCHEDULE").expect("named");
        assert!(!gap.error && gap.message.contains("HuntingExport"), "{gap:?}");
        vars.insert("XDRSYNC_HUNTING_SCHEDULE".into(), "0 0 0 * * 7".into());
        let findings = audit(&vars);
        let bad = findings.iter().find(|f| f.setting == "XDRSYNC_HUNTING_SCHEDULE").expect("named");
        assert!(bad.error && bad.message.contains("out of range"), "{bad:?}");
        vars.insert("XDRSYNC_HUNTING_SCHEDULE".into(), "0 0 0 31 Apr *".into());
        let findings = audit(&vars);
        assert!(findings
            .iter()
            .any(|f| f.error && f.setting == "XDRSYNC_HUNTING_SCHEDULE" && f.message.contains("never fires")));
    }

    #[test]
    fn per_table_hunting_settings_are_known_by_prefix_and_a_bad_filter_is_named() {
        let mut vars = crate::config::tests::base_vars();
        for (k, v) in [
            ("XDRSYNC_HUNTING_TABLES", "DeviceProcessEvents"),
            ("XDRSYNC_HUNTING_FILTER_DEVICEPROCESSEVENTS", "FileName == 'a'"),
            ("XDRSYNC_HUNTING_COLUMNS_DeviceProcessEvents", "FileName"),
            ("XDRSYNC_HUNTING_EVENTHUB_NAME", "defender"),
            ("XDRSYNC_HUNTING_EVENTHUB_CONNECTION__fullyQualifiedNamespace", "ns.servicebus.windows.net"),
            ("XDRSYNC_POLL_SCHEDULE", "*/30 * * * * *"),
            ("XDRSYNC_HUNTING_SCHEDULE", "0 */5 * * * *"),
        ] {
            vars.insert(k.into(), v.into());
        }
        assert!(audit(&vars).is_empty());
        vars.insert("XDRSYNC_HUNTING_FILTER_DEVICEPROCESSEVENTS".into(), "FileName == 'a' | take 1".into());
        vars.insert("XDRSYNC_HUNTING_TABLS".into(), "EmailEvents".into());
        let findings = audit(&vars);
        assert!(
            findings.iter().any(|f| f.error && f.setting == "XDRSYNC_HUNTING_FILTER_DEVICEPROCESSEVENTS"),
            "{findings:?}"
        );
        assert!(findings.iter().any(|f| !f.error && f.message.contains("XDRSYNC_HUNTING_TABLES")), "{findings:?}");
    }

    #[test]
    fn a_clean_configuration_has_no_finding() {
        let mut vars = crate::config::tests::base_vars();
        // Set, as the infra sets it: the Functions host has no default for a timer's setting.
        vars.insert("XDRSYNC_POLL_SCHEDULE".into(), "*/30 * * * * *".into());
        assert!(audit(&vars).is_empty());
    }
}
