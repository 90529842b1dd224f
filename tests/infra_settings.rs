//! The app settings of `infra/main.bicep` against what the binary reads, both ways: every setting
//! xdrsync knows (`config::audit::KNOWN_SETTINGS`, so a new setting fails here until the template
//! sets it) is set by the template or listed below as deliberately left out, with the reason; and
//! every setting the template sets is read by the binary or is a named host setting. Also: secrets
//! are Key Vault references, storage is reached by identity (no account key anywhere), and every
//! `%SETTING%` a function.json binds to gets a non-empty value.

use std::collections::BTreeMap;
use std::path::Path;

use xdrsync::config::audit::KNOWN_SETTINGS;

/// Settings the binary reads that the template leaves unset on purpose.
const NOT_SET_BY_TEMPLATE: &[(&str, &str)] = &[
    ("XDRSYNC_AUTHORITY_HOST", "derived from XDRSYNC_CLOUD, which the template sets; overrides are for the simulator"),
    ("XDRSYNC_GRAPH_ENDPOINT", "derived from XDRSYNC_CLOUD"),
    ("XDRSYNC_ARM_ENDPOINT", "derived from XDRSYNC_CLOUD"),
    ("XDRSYNC_HTTP_PORT", "standalone mode (xdrsync run) only; the Functions host owns HTTP"),
    ("XDRSYNC_HTTP_BIND", "standalone mode only"),
    ("XDRSYNC_WORKERS", "standalone mode only; the host's queue batchSize (host.json) sets concurrency"),
    ("XDRSYNC_QUEUE_VISIBILITY_SECONDS", "standalone mode only; host.json's visibilityTimeout applies"),
    (
        "XDRSYNC_QUEUE_NAME",
        "the IncidentSync queue binding (function.json) names the queue; changing only the setting would split them",
    ),
    ("XDRSYNC_LOG_JSON", "host.json starts `xdrsync serve --log-json`"),
    ("XDRSYNC_LOG_ANALYTICS_ENDPOINT", "derived from XDRSYNC_CLOUD; overrides are for the simulator"),
    ("XDRSYNC_FEDERATED_AUDIENCE", "derived from XDRSYNC_CLOUD; an override only for a federated credential with another audience"),
    // Until the template (issue 18, Deploy) passes them: remove these two lines when it does.
    ("XDRSYNC_GRAPH_CREDENTIAL", "inferred from the other credential settings until the template sets it"),
    ("XDRSYNC_ALERTS_ATTACH_DELAY_MINUTES", "the default (10) covers the rule's and ingestion's minutes"),
    (
        "XDRSYNC_DEFENDER_PORTAL_ONBOARDED",
        "an operator's statement about the workspace (not readable through an API), set after onboarding",
    ),
    ("AzureWebJobsStorage", "a connection string carries the account key; the template uses identity (__accountName)"),
    ("AzureWebJobsStorage__tableServiceUri", "derived from __accountName and the cloud"),
    ("AzureWebJobsStorage__queueServiceUri", "derived from __accountName and the cloud"),
    (
        "XDRSYNC_HUNTING_EVENTHUB_CONNECTION",
        "read by the Functions host for HuntingEventHub, shipped only with `package --event-hub`; with identity it is XDRSYNC_HUNTING_EVENTHUB_CONNECTION__fullyQualifiedNamespace, set with the Event Hub",
    ),
];

/// Settings the template sets for the Functions host or the platform, not for xdrsync.
const HOST_SETTINGS: &[(&str, &str)] = &[
    ("FUNCTIONS_WORKER_RUNTIME", "Linux Consumption: the custom handler runtime (Flex: functionAppConfig.runtime)"),
    ("FUNCTIONS_EXTENSION_VERSION", "Linux Consumption: Functions host 4.x"),
    ("WEBSITE_RUN_FROM_PACKAGE", "Linux Consumption: the package blob the host fetches with the app's identity"),
    (
        "APPLICATIONINSIGHTS_CONNECTION_STRING",
        "the host sends its telemetry and xdrsync's log lines to Application Insights",
    ),
    ("AzureWebJobsStorage__accountName", "also read by xdrsync (config.rs), for its tables and queue"),
    (
        "AzureWebJobsStorage__credential",
        "the host reaches its storage with the user-assigned identity (managedidentity)",
    ),
    ("AzureWebJobsStorage__clientId", "that identity's client id, for the host"),
    (
        "WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID",
        "Linux Consumption: the identity the host fetches the package blob with",
    ),
    ("RUST_LOG", "read by tracing_subscriber's EnvFilter (telemetry.rs), not by name in config.rs"),
];

/// Settings that hold secrets: the template must give them as Key Vault references.
const SECRETS: &[&str] = &["XDRSYNC_WEBHOOK_KEY", "XDRSYNC_CLIENT_SECRET"];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// `KEY: value` lines of each top-level `var <name> = {` object in a Bicep file, by var name.
fn object_vars(bicep: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut vars = BTreeMap::new();
    let mut current: Option<(String, BTreeMap<String, String>)> = None;
    for line in bicep.lines() {
        if let Some((name, map)) = current.as_mut() {
            if line.starts_with('}') {
                vars.insert(name.clone(), std::mem::take(map));
                current = None;
            } else if let Some((k, v)) = line.trim().split_once(':') {
                if line.starts_with("  ") && !line.starts_with("   ") && !k.trim().starts_with("//") {
                    map.insert(k.trim().trim_matches('\'').to_string(), v.trim().to_string());
                }
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("var ") {
            if let Some((name, value)) = rest.split_once('=') {
                if value.trim() == "{" {
                    current = Some((name.trim().to_string(), BTreeMap::new()));
                }
            }
        }
    }
    vars
}

/// Defaults of `param <name> <type> = <default>` declarations.
fn param_defaults(bicep: &str) -> BTreeMap<String, Option<String>> {
    bicep
        .lines()
        .filter_map(|l| l.strip_prefix("param "))
        .map(|rest| {
            let code = rest.split(" //").next().unwrap_or(rest);
            let name = code.split_whitespace().next().unwrap_or_default().to_string();
            (name, code.split_once('=').map(|(_, d)| d.trim().to_string()))
        })
        .collect()
}

struct Template {
    settings: BTreeMap<String, String>,
    params: BTreeMap<String, Option<String>>,
    text: String,
}

fn template() -> Template {
    let text = std::fs::read_to_string(repo().join("infra/main.bicep")).unwrap();
    let vars = object_vars(&text);
    let mut settings = BTreeMap::new();
    for name in ["appSettings", "consumptionSettings"] {
        settings.extend(vars.get(name).unwrap_or_else(|| panic!("main.bicep has no `var {name} = {{`")).clone());
    }
    Template { settings, params: param_defaults(&text), text }
}

/// Every name the binary reads: KNOWN_SETTINGS plus the storage settings config.rs reads.
fn read_by_binary() -> Vec<String> {
    let config = std::fs::read_to_string(repo().join("src/config/mod.rs")).unwrap();
    let mut names: Vec<String> = KNOWN_SETTINGS.iter().map(|s| s.to_string()).collect();
    for name in ["AzureWebJobsStorage", "AzureWebJobsStorage__accountName", "AzureWebJobsStorage__tableServiceUri"] {
        assert!(config.contains(&format!("\"{name}\"")), "config.rs no longer reads {name}: update this test");
        names.push(name.to_string());
    }
    names.push("AzureWebJobsStorage__queueServiceUri".into());
    names
}

#[test]
fn every_setting_the_binary_reads_is_set_by_the_template_or_left_out_with_a_reason() {
    let t = template();
    let mut missing = Vec::new();
    for name in read_by_binary() {
        let left_out = NOT_SET_BY_TEMPLATE.iter().any(|(n, _)| *n == name);
        match (t.settings.contains_key(&name), left_out) {
            (true, true) => missing.push(format!("{name} is set by the template but listed as left out")),
            (false, false) => missing.push(format!(
                "{name}: add it to appSettings in infra/main.bicep (a param defaulting to '' when optional), or to NOT_SET_BY_TEMPLATE with the reason"
            )),
            _ => {}
        }
    }
    assert!(missing.is_empty(), "{}", missing.join("\n"));
}

#[test]
fn every_setting_the_template_sets_is_read_by_the_binary_or_is_a_host_setting() {
    let t = template();
    let read = read_by_binary();
    let stray: Vec<&String> =
        t.settings.keys().filter(|k| !read.contains(k) && !HOST_SETTINGS.iter().any(|(n, _)| n == k)).collect();
    assert!(stray.is_empty(), "set by infra/main.bicep but read by nothing: {stray:?}");
    // Each value named by an identifier comes from a declared param (an operator can set it) or var.
    for (k, v) in &t.settings {
        let ident = v.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if ident && k.starts_with("XDRSYNC_") {
            let declared = t.params.contains_key(v) || t.text.contains(&format!("\nvar {v} = "));
            assert!(declared, "{k}: {v} is neither a param nor a var of main.bicep");
        }
    }
}

#[test]
fn secrets_are_key_vault_references_and_storage_uses_no_key() {
    let t = template();
    for secret in SECRETS {
        let v = &t.settings[*secret];
        assert!(v.contains("@Microsoft.KeyVault(SecretUri="), "{secret} must be a Key Vault reference, is {v}");
    }
    assert!(t.settings.contains_key("AzureWebJobsStorage__accountName"));
    assert!(!t.settings.contains_key("AzureWebJobsStorage"), "a connection string would carry the account key");
    for file in std::fs::read_dir(repo().join("infra")).unwrap() {
        let path = file.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("listKeys("), "{} reads an account key", path.display());
    }
    assert!(
        t.text.contains("allowSharedKeyAccess") || {
            let storage = std::fs::read_to_string(repo().join("infra/storage.bicep")).unwrap();
            storage.contains("allowSharedKeyAccess: sharedKeyAccess")
        }
    );
    // The identity-based setting the template gives is one xdrsync accepts.
    let mut vars = std::collections::HashMap::new();
    for (k, v) in [
        ("AzureWebJobsStorage__accountName", "socxs0123456789"),
        ("XDRSYNC_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
        ("IDENTITY_ENDPOINT", "http://169.254.129.2:8081/msi/token"),
        ("IDENTITY_HEADER", "h"),
        (
            "XDRSYNC_WORKSPACE_RESOURCE_ID",
            "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/ws",
        ),
        ("XDRSYNC_LOGS_INGESTION_ENDPOINT", "https://dce.westeurope-1.ingest.monitor.azure.com"),
        ("XDRSYNC_DCR_IMMUTABLE_ID", "dcr-00000000000000000000000000000001"),
        ("XDRSYNC_CLOUD", "public"),
        ("XDRSYNC_CLIENT_ID", ""),
        ("XDRSYNC_CLIENT_SECRET", ""),
        ("XDRSYNC_GRAPH_CALLS_PER_MINUTE", ""),
    ] {
        vars.insert(k.to_string(), v.to_string());
    }
    let cfg = xdrsync::config::Config::from_vars(&vars).expect("the template's identity-based settings parse");
    assert!(cfg.storage.key.is_none(), "identity-based: no account key");

    // A reference the platform could not resolve arrives as its own text: refused, never a key.
    for secret in SECRETS {
        let mut unresolved = vars.clone();
        unresolved
            .insert(secret.to_string(), "@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/secrets/s/1)".into());
        unresolved.insert("XDRSYNC_CLIENT_ID".into(), "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0".into());
        let e = xdrsync::config::Config::from_vars(&unresolved).unwrap_err();
        assert_eq!(e.var, *secret);
        assert!(e.problem.contains("Key Vault Secrets User"), "{e}");
    }
}

#[test]
fn every_setting_a_binding_reads_gets_a_value() {
    let t = template();
    for dir in std::fs::read_dir(repo().join("functions")).unwrap() {
        let path = dir.unwrap().path().join("function.json");
        let text = std::fs::read_to_string(&path).unwrap();
        for name in text.split('%').skip(1).step_by(2) {
            let v = t
                .settings
                .get(name)
                .unwrap_or_else(|| panic!("{} binds %{name}%, the template sets no {name}", path.display()));
            if let Some(Some(default)) = t.params.get(v) {
                assert_ne!(default, "''", "{name} defaults to empty: the binding would not resolve");
            }
        }
    }
}

#[test]
fn the_settings_reader_sees_nested_and_commented_lines_correctly() {
    let vars = object_vars(
        "var a = {\n  K1: p\n  // K2: not a key\n  K3: '@Microsoft.KeyVault(SecretUri=${v.outputs.u})'\n}\nvar b = 'x'\n",
    );
    let a = &vars["a"];
    assert_eq!(a.keys().collect::<Vec<_>>(), ["K1", "K3"]);
    assert!(a["K3"].starts_with("'@Microsoft.KeyVault"));
    let p = param_defaults("param x string = '' // c\nparam y int\n");
    assert_eq!(p["x"].as_deref(), Some("''"));
    assert_eq!(p["y"], None);
}

#[test]
fn flex_consumption_with_the_custom_runtime_is_the_default_and_keeps_shared_keys_off() {
    let t = template();
    assert_eq!(t.params["hostingPlan"].as_deref(), Some("'FlexConsumption'"));
    let compact: String = t.text.split_whitespace().collect::<Vec<_>>().join(" ");
    for needle in [
        "sku: isFlex ? { name: 'FC1', tier: 'FlexConsumption' } : { name: 'Y1', tier: 'Dynamic' }",
        "runtime: { name: 'custom', version: '1.0' }",
        "authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identity.id }",
        "maximumInstanceCount: maximumInstanceCount",
        "sharedKeyAccess: !isFlex",
        "properties: isFlex ? appSettings : union(appSettings, consumptionSettings)",
    ] {
        assert!(compact.contains(needle), "infra/main.bicep lost `{needle}`");
    }
    let host: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("host.json")).unwrap()).unwrap();
    // Linux Consumption allows at most 10 minutes; one host.json serves both plans.
    assert_eq!(host["functionTimeout"], "00:10:00");
}

#[test]
fn every_checkov_suppression_says_why() {
    let mut bare = Vec::new();
    let mut count = 0;
    for file in std::fs::read_dir(repo().join("infra")).unwrap() {
        let path = file.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let Some((_, rest)) = line.split_once("checkov:skip=") else { continue };
            count += 1;
            let id_ok = rest.starts_with("CKV");
            let reason = rest.split_once(':').map(|(_, r)| r.trim()).unwrap_or("");
            if !id_ok || reason.split_whitespace().count() < 4 {
                bare.push(format!("{}:{}: {line}", path.display(), n + 1));
            }
        }
    }
    assert!(count > 0, "no suppression found: the scan is broken");
    assert!(bare.is_empty(), "checkov suppressions without a reason:\n{}", bare.join("\n"));
}
