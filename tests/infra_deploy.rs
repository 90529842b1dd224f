//! Static checks that a first `az deployment group create` of `infra/main.bicep` succeeds on an
//! empty resource group and leaves a deployment whose calls are allowed: every role goes to the
//! principals xdrsync calls Azure as (the app's user-assigned identity, plus an optional secret's
//! principal); nothing needs published code; the analytics rule waits for its table; each hunting
//! DCR declares only selected streams, within Azure Monitor's 10 per DCR; Flex Consumption's
//! lowest instance count holds; the automation rules cannot deploy without the principal that
//! lets them run the playbook; host.json bounds the Event Hubs batch; and
//! grant-graph-permissions.sh grants what the features need, idempotently.

mod bicep;

use std::collections::BTreeMap;
use std::path::Path;

use bicep::{infra, Bicep};

const ROLE_ASSIGNMENT: &str = "Microsoft.Authorization/roleAssignments";

/// Roles xdrsync itself needs (the playbook's and Sentinel's own roles are not xdrsync's).
const XDRSYNC_ROLES: &[(&str, &str)] = &[
    ("3e150937-b8fe-4cfb-8069-0eaf05ecd056", "Microsoft Sentinel Responder"),
    ("3913510d-42f4-4e42-8a64-420c390055eb", "Monitoring Metrics Publisher"),
    ("73c42c96-874c-492b-b04d-ab87d138a893", "Log Analytics Reader"),
    ("b7e6dc6d-f1e8-4753-8033-0f276bb0955b", "Storage Blob Data Owner"),
    ("974c5e8b-45b9-4653-ba55-5f855dd0fb88", "Storage Queue Data Contributor"),
    ("0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3", "Storage Table Data Contributor"),
];

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(file: &str) -> String {
    std::fs::read_to_string(repo().join("infra").join(file)).unwrap()
}

/// Whitespace collapsed, for matching expressions whatever their layout.
fn compact(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The role (by name) a role-assignment declaration grants, through the `var` holding its GUID.
fn role_of(bicep: &Bicep, assignment: &bicep::Decl) -> Option<&'static str> {
    let def = assignment.prop("properties.roleDefinitionId")?;
    let var = bicep.decls.iter().find(|d| d.kind == "var" && def.contains(&format!(", {})", d.name)))?;
    XDRSYNC_ROLES.iter().find(|(id, _)| var.value.contains(id)).map(|(_, n)| *n)
}

/// Every module call of `module` (by file name) in `files`: (calling file, its declaration).
fn callers<'a>(files: &'a BTreeMap<String, Bicep>, module: &str) -> Vec<(&'a str, &'a bicep::Decl)> {
    files
        .iter()
        .flat_map(|(f, b)| {
            b.decls.iter().filter(move |d| d.kind == "module" && d.target == module).map(move |d| (f.as_str(), d))
        })
        .collect()
}

/// Problems with the principal of each xdrsync role assignment: it must loop over the module's
/// `principalIds` (or be `hunting-publisher.bicep`, called once per principal), and every caller
/// must pass main.bicep's `rolePrincipals` down, which holds the app's identity.
fn check_role_principals(files: &BTreeMap<String, Bicep>) -> Result<Vec<String>, Vec<String>> {
    let mut problems = Vec::new();
    let mut granted = Vec::new();
    for (file, b) in files {
        for d in b.decls.iter().filter(|d| d.kind == "resource" && d.target == ROLE_ASSIGNMENT) {
            let Some(role) = role_of(b, d) else { continue };
            granted.push(role.to_string());
            let at = format!("{file}: {} ({role})", d.name);
            if d.prop("properties.principalId") != Some("principalId") {
                problems.push(format!(
                    "{at}: principalId is {:?}, not the loop's principalId",
                    d.prop("properties.principalId")
                ));
            }
            let looped = d.value.starts_with("[for principalId in principalIds:");
            let per_principal_module = callers(files, file).iter().all(|(_, m)| {
                m.value.starts_with("[for principalId in principalIds:")
                    && m.prop("params.principalId") == Some("principalId")
            });
            let per_principal = per_principal_module && !callers(files, file).is_empty();
            if !looped && !per_principal {
                problems.push(format!("{at}: assigned to one principal, not to each of principalIds"));
            }
        }
    }
    // Follow principalIds up to main.bicep: each module's caller passes its own principalIds, or
    // main.bicep's rolePrincipals.
    for (file, b) in files {
        let takes =
            b.decls.iter().find(|d| d.kind == "param" && (d.name == "principalIds" || d.name == "appPrincipalIds"));
        let Some(param) = takes else { continue };
        for (caller, m) in callers(files, file) {
            let passed = m.prop(&format!("params.{}", param.name));
            let ok = match caller {
                "main.bicep" => passed == Some("rolePrincipals"),
                _ => passed == Some("principalIds"),
            };
            if !ok {
                problems.push(format!("{caller}: module {} passes {}: {passed:?}", m.name, param.name));
            }
        }
    }
    let main = &files["main.bicep"];
    let principals = main.decl("var", "rolePrincipals").map(|d| d.value.clone()).unwrap_or_default();
    for needed in ["identity.properties.principalId", "credentialPrincipalId"] {
        if !principals.contains(needed) {
            problems.push(format!("main.bicep: rolePrincipals ({principals}) lacks {needed}"));
        }
    }
    if problems.is_empty() {
        Ok(granted)
    } else {
        Err(problems)
    }
}

#[test]
fn every_role_xdrsync_needs_goes_to_each_principal_it_calls_azure_as() {
    let files = infra();
    let granted = check_role_principals(&files).unwrap_or_else(|p| panic!("role targets:\n{}", p.join("\n")));
    for (_, role) in XDRSYNC_ROLES {
        assert!(granted.iter().any(|g| g == role), "no {role} assignment found (found {granted:?})");
    }
    // Key Vault Secrets User for the app settings' references: each principal too.
    let kv = compact(&text("keyvault.bicep"));
    assert!(kv.contains("resource appSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in appPrincipalIds:"));
    // The app runs as that identity, resolves Key Vault references and reaches storage with it,
    // and tells xdrsync its client id.
    let main = compact(&text("main.bicep"));
    for needle in [
        "type: 'UserAssigned' userAssignedIdentities: { '${identity.id}': {} }",
        "keyVaultReferenceIdentity: identity.id",
        "AzureWebJobsStorage__credential: 'managedidentity'",
        "AzureWebJobsStorage__clientId: identity.properties.clientId",
        "XDRSYNC_MANAGED_IDENTITY_CLIENT_ID: identity.properties.clientId",
        "authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identity.id }",
        "WEBSITE_RUN_FROM_PACKAGE_BLOB_MI_RESOURCE_ID: identity.id",
        "output principalId string = identity.properties.principalId",
    ] {
        assert!(main.contains(needle), "main.bicep lost `{needle}`");
    }
    assert!(!main.contains("SystemAssigned'"), "no system-assigned identity: it would hold no role");
}

#[test]
fn the_role_target_check_rejects_a_single_or_foreign_principal() {
    let main = "var rolePrincipals = [identity.properties.principalId, credentialPrincipalId]\nmodule ws 'ws.bicep' = {\n  params: {\n    principalIds: rolePrincipals\n  }\n}\n";
    let good = "param principalIds array\nvar r = '3e150937-b8fe-4cfb-8069-0eaf05ecd056' // Microsoft Sentinel Responder\nresource a 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for principalId in principalIds: {\n  properties: {\n    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', r)\n    principalId: principalId\n  }\n}]\n";
    let files = |ws: &str, m: &str| -> BTreeMap<String, Bicep> {
        [("main.bicep", m), ("ws.bicep", ws)].iter().map(|(n, s)| (n.to_string(), Bicep::parse(s))).collect()
    };
    assert_eq!(check_role_principals(&files(good, main)).unwrap(), ["Microsoft Sentinel Responder"]);
    let single = good.replace("[for principalId in principalIds: {", "{").replace("}]\n", "}\n");
    assert!(check_role_principals(&files(&single, main)).is_err(), "one principal only");
    let foreign = good.replace("    principalId: principalId", "    principalId: app.identity.principalId");
    assert!(check_role_principals(&files(&foreign, main)).is_err(), "another principal");
    let not_passed = main.replace("principalIds: rolePrincipals", "principalIds: [identity.properties.principalId]");
    assert!(check_role_principals(&files(good, &not_passed)).is_err(), "the secret's principal left out");
}

#[test]
fn the_first_template_deploys_nothing_that_needs_published_code() {
    let files = infra();
    for (file, b) in &files {
        let has_key =
            b.decls.iter().any(|d| d.kind == "resource" && d.target == "Microsoft.Web/sites/host/functionKeys");
        let step_two = file == "function-key.bicep";
        assert_eq!(has_key, step_two, "{file}: host keys belong only to function-key.bicep (after publishing)");
        if !step_two {
            assert!(callers(&files, "function-key.bicep").is_empty(), "function-key.bicep is its own deployment");
        }
    }
    // The playbook reads the key from the secret function-key.bicep creates, and may read it.
    let fk = compact(&text("function-key.bicep"));
    assert!(fk.contains("name: 'xdrsync-function-key'") && fk.contains("scope: functionKeySecret"));
    assert!(text("playbook.bicep").contains("secrets/xdrsync-function-key?"));
    assert!(!compact(&text("keyvault.bicep")).contains("xdrsync-function-key"), "main.bicep must not reset the key");
}

#[test]
fn the_analytics_rule_is_created_after_its_table() {
    let files = infra();
    let main = &files["main.bicep"];
    let rule = main.decl("module", "alertRule").expect("module alertRule");
    assert_eq!(rule.target, "alert-rule.bicep");
    let table =
        main.decls.iter().find(|d| d.kind == "module" && d.target == "workspace.bicep").expect("the table module");
    let deps = rule.prop("dependsOn").unwrap_or_default();
    assert!(
        deps.trim_matches(['[', ']']).split(',').any(|d| d.trim() == table.name),
        "alertRule must dependsOn the module creating XdrsyncAlerts_CL ({}), has {deps:?}",
        table.name
    );
}

#[test]
fn each_hunting_dcr_declares_only_its_table_within_the_per_dcr_limits() {
    let hunting = Bicep::parse(&text("hunting.bicep"));
    let dcr = hunting.decl("resource", "dcr").expect("resource dcr");
    assert!(dcr.value.starts_with("[for (name, i) in tables:"), "one DCR per selected table: {}", dcr.value);
    let body = compact(&text("hunting.bicep"));
    // One stream declaration, the selected table's, and one data flow: documented limits are 10 of
    // each per DCR (Azure Monitor service limits, "Data collection rules").
    assert!(
        body.contains("streamDeclarations: { 'Custom-${name}': schema.streams['Custom-${name}'] }"),
        "only the table's own stream"
    );
    assert_eq!(body.matches("streams: ['Custom-${name}']").count(), 1, "one data flow of that stream");
    assert!(!body.contains("streamDeclarations: schema.streams"), "every stream would be declared");
    // No cap on the number of tables any more, and each table's DCR is routed by its own id.
    let main = text("main.bicep");
    assert!(!compact(&main).contains("@maxLength(10) param huntingTables"));
    assert!(
        body.contains("output routes array = [for (name, i) in tables: '${name}=${dcr[i].properties.immutableId}']")
    );
    assert!(compact(&text("ingestion.bicep"))
        .contains("output huntingRoutes string = empty(huntingTables) ? '' : join(hunting.outputs.routes, ',')"));
    assert!(compact(&main).contains("XDRSYNC_HUNTING_DCR_IMMUTABLE_ID: ingestion.outputs.huntingRoutes"));
    // What the template produces for every table xdrsync exports (more than 10) is a setting
    // xdrsync accepts, and it sends each table to that table's DCR.
    let tables = xdrsync::domain::hunting::schema::TABLES;
    assert!(tables.len() > 10);
    let routes: Vec<String> =
        tables.iter().enumerate().map(|(i, t)| format!("{}=dcr-{:032x}", t.name, i + 1)).collect();
    let vars = [
        ("XDRSYNC_HUNTING_TABLES".to_string(), tables.iter().map(|t| t.name).collect::<Vec<_>>().join(",")),
        ("XDRSYNC_HUNTING_DCR_IMMUTABLE_ID".to_string(), routes.join(",")),
    ];
    let s = xdrsync::config::hunting::HuntingSettings::from_vars(&vars.into_iter().collect())
        .expect("the template's routes parse");
    for (i, t) in tables.iter().enumerate() {
        assert_eq!(s.dcr_for(t).as_deref(), Some(format!("dcr-{:032x}", i + 1).as_str()), "{}", t.name);
    }
}

#[test]
fn flex_consumption_keeps_at_least_40_instances() {
    let main = text("main.bicep");
    let lines: Vec<&str> = main.lines().collect();
    let at = lines.iter().position(|l| l.starts_with("param maximumInstanceCount int")).expect("the param");
    let decorators: Vec<&str> = lines[..at].iter().rev().take_while(|l| l.starts_with('@')).copied().collect();
    assert!(
        decorators.contains(&"@minValue(40)"),
        "Flex Consumption's lowest maximumInstanceCount is 40: {decorators:?}"
    );
}

#[test]
fn automation_rules_cannot_deploy_without_the_principal_that_runs_the_playbook() {
    let text = text("main.bicep");
    let main = Bicep::parse(&text);
    let playbook = main.decl("module", "playbook").expect("module playbook");
    assert_eq!(playbook.prop("params.sentinelAutomationPrincipalId"), Some("sentinelAutomationPrincipalId"));
    // Required: no default, and an object id's length, so ARM refuses the deployment naming it.
    let param = main.decl("param", "sentinelAutomationPrincipalId").expect("the param");
    assert!(param.value.is_empty(), "no default: {}", param.value);
    let lines: Vec<&str> = text.lines().collect();
    let at = lines.iter().position(|l| l.starts_with("param sentinelAutomationPrincipalId ")).unwrap();
    assert_eq!(lines[at - 1], "@minLength(36)");
    // The grant is unconditional once the principal is given (playbook.bicep).
    assert!(compact(&self::text("playbook.bicep")).contains("principalId: sentinelAutomationPrincipalId"));
}

/// The handler's envelope limit (src/functions/mod.rs) and the inputs of the batch bound.
const ENVELOPE_LIMIT: usize = 16 * 1024 * 1024;
/// Event Hubs' largest event (Standard, Premium and Dedicated tiers: 1 MB; read as MiB).
const MAX_EVENT: usize = 1024 * 1024;
/// The host writes each event body into the envelope as a JSON string (Newtonsoft's default
/// escaping: `"` and `\` doubled, control characters as escapes). A Streaming API event is JSON
/// text (no raw control characters), so its escaped form is at most twice its size.
const ESCAPE_FACTOR: usize = 2;
/// Room per event for the metadata arrays the host adds (properties, offsets, times).
const META_PER_EVENT: usize = 16 * 1024;

pub fn batch_bound() -> usize {
    (ENVELOPE_LIMIT - 64 * 1024) / (MAX_EVENT * ESCAPE_FACTOR + META_PER_EVENT)
}

#[test]
fn host_json_bounds_the_event_hubs_batch_so_the_largest_envelope_fits() {
    let src = std::fs::read_to_string(repo().join("src/functions/mod.rs")).unwrap();
    assert!(
        src.contains("const MAX_ENVELOPE_BYTES: usize = 16 * 1024 * 1024;"),
        "the handler's limit changed: update this test"
    );
    let host: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("host.json")).unwrap()).unwrap();
    let size = host["extensions"]["eventHubs"]["maxEventBatchSize"]
        .as_u64()
        .expect("extensions.eventHubs.maxEventBatchSize") as usize;
    assert!(size >= 1 && size <= batch_bound(), "maxEventBatchSize {size} > {} events fit under 16 MiB", batch_bound());
    assert_eq!(size, batch_bound(), "the largest batch that fits: fewer only costs invocations");
}

/// Runs grant-graph-permissions.sh with a fake `az` that keeps app-role assignments in a file
/// and, as Graph does, refuses a second identical one.
fn run_grant(dir: &Path, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("bash")
        .arg(repo().join("infra/grant-graph-permissions.sh"))
        .args(args)
        .env("PATH", format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default()))
        .env("FAKE_AZ_STATE", dir.join("held"))
        .output()
        .expect("bash runs");
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn grant_graph_permissions_grants_what_the_features_need_and_reruns_cleanly() {
    let dir = std::env::temp_dir().join(format!("xdrsync-grant-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = r#"#!/usr/bin/env bash
# fake az: `ad sp show` answers ids; `rest GET` lists held role ids; `rest POST` adds one, failing on a duplicate.
args="$*"
touch "$FAKE_AZ_STATE"
case "$args" in
  "ad sp show"*"appRoles[?value=='"*) role=${args#*value==\'}; echo "id-${role%%\'*}" ;;
  "ad sp show"*) echo graph-sp ;;
  "rest --method GET"*) cat "$FAKE_AZ_STATE" ;;
  "rest --method POST"*) id=${args##*appRoleId\":\"}; id=${id%%\"*}
    if grep -qx "$id" "$FAKE_AZ_STATE"; then echo "Permission being assigned already exists on the object" >&2; exit 1; fi
    echo "$id" >> "$FAKE_AZ_STATE" ;;
  *) echo "unexpected az $args" >&2; exit 2 ;;
esac
"#;
    let az = dir.join("az");
    std::fs::write(&az, fake).unwrap();
    std::process::Command::new("chmod").arg("+x").arg(&az).status().unwrap();
    let held = || std::fs::read_to_string(dir.join("held")).unwrap_or_default();

    let (ok, out) = run_grant(&dir, &["00000000-0000-0000-0000-0000000000aa"]);
    assert!(ok, "{out}");
    for role in ["SecurityIncident.ReadWrite.All", "SecurityAlert.Read.All", "User.Read.All"] {
        assert!(held().lines().any(|l| l == format!("id-{role}")), "{role} not granted: {out}");
    }
    assert!(!held().contains("ThreatHunting"), "hunting off: not granted");
    // A rerun, now with hunting on: adds only the missing permission, and succeeds.
    let (ok, out) = run_grant(&dir, &["--hunting", "00000000-0000-0000-0000-0000000000aa"]);
    assert!(ok, "rerun failed: {out}");
    assert!(held().lines().any(|l| l == "id-ThreatHunting.Read.All"), "{out}");
    assert_eq!(held().lines().count(), 4, "each permission once: {}", held());
    assert!(out.contains("already granted SecurityIncident.ReadWrite.All"), "{out}");
    let (ok, out) = run_grant(&dir, &["--hunting", "00000000-0000-0000-0000-0000000000aa"]);
    assert!(ok && !out.contains("\ngranted") && !out.starts_with("granted"), "third run changes nothing: {out}");
    let _ = std::fs::remove_dir_all(&dir);
}
