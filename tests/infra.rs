//! Static checks of the Bicep in `infra/` for mistakes that only show up on a real deployment:
//! every role-definition GUID is an Azure built-in role and is named next to it, and the data
//! collection endpoint (DCE) and rule (DCR) are created in the Sentinel workspace's region.
//! There is no Bicep compiler here, so the files are read with a small scanner that knows
//! strings, interpolation, comments and nesting.

use std::collections::BTreeMap;

/// Azure built-in roles, name and ID as the "Azure built-in roles" page lists them
/// (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles; IDs are the same in
/// every tenant). The roles xdrsync assigns, and those a deployment of it could reasonably need.
const BUILT_IN_ROLES: &[(&str, &str)] = &[
    ("Microsoft Sentinel Responder", "3e150937-b8fe-4cfb-8069-0eaf05ecd056"),
    ("Microsoft Sentinel Reader", "8d289c81-5878-46d4-8554-54e1e3d8b5cb"),
    ("Microsoft Sentinel Contributor", "ab8e14d6-4a74-4a29-9ba8-549422addade"),
    ("Microsoft Sentinel Automation Contributor", "f4c81013-99ee-4d62-a7ee-b3f1f648599a"),
    ("Monitoring Metrics Publisher", "3913510d-42f4-4e42-8a64-420c390055eb"),
    ("Monitoring Reader", "43d0d8ad-25c7-4714-9337-8ba259a9fe05"),
    ("Log Analytics Reader", "73c42c96-874c-492b-b04d-ab87d138a893"),
    ("Log Analytics Contributor", "92aaf0da-9dab-42b6-94a3-d43ce8d16293"),
    ("Storage Table Data Contributor", "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"),
    ("Storage Table Data Reader", "76199698-9eea-4c19-bc75-cec21354c6b6"),
    ("Storage Queue Data Contributor", "974c5e8b-45b9-4653-ba55-5f855dd0fb88"),
    ("Storage Blob Data Owner", "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"),
    ("Storage Blob Data Contributor", "ba92f5b4-2d11-453d-a403-e96b0029c9fe"),
    ("Storage Account Contributor", "17d1049b-9a84-46fb-8f53-869881c3d3ab"),
    ("Key Vault Secrets User", "4633458b-17de-408a-b874-0445c86b69e6"),
];

const WORKSPACE_TYPE: &str = "Microsoft.OperationalInsights/workspaces";
const REGIONAL_TO_WORKSPACE: [&str; 2] =
    ["Microsoft.Insights/dataCollectionEndpoints", "Microsoft.Insights/dataCollectionRules"];

mod bicep;
use bicep::{infra, Bicep, Decl};

// ---- role definitions -----------------------------------------------------------------------

fn guids(text: &str) -> Vec<String> {
    let b = text.as_bytes();
    let shape = |w: &[u8]| {
        w.len() == 36
            && w.iter()
                .enumerate()
                .all(|(i, c)| if [8, 13, 18, 23].contains(&i) { *c == b'-' } else { c.is_ascii_hexdigit() })
    };
    (0..b.len().saturating_sub(35))
        .filter(|&i| shape(&b[i..i + 36]))
        .filter(|&i| i == 0 || !b[i - 1].is_ascii_hexdigit())
        .filter(|&i| b.get(i + 36).is_none_or(|c| !c.is_ascii_hexdigit()))
        .map(|i| text[i..i + 36].to_ascii_lowercase())
        .collect()
}

/// Every GUID in the Bicep must be a built-in role ID with that role's name in a `//` comment on
/// its line, and every `roleDefinitionId` must be built from such a GUID (directly or through a
/// `var` that holds one). Returns the roles found, or every problem.
fn check_roles(files: &BTreeMap<String, Bicep>) -> Result<Vec<String>, Vec<String>> {
    let by_id: BTreeMap<&str, &str> = BUILT_IN_ROLES.iter().map(|(n, id)| (*id, *n)).collect();
    let mut found = Vec::new();
    let mut problems = Vec::new();
    for (file, bicep) in files {
        for (n, line) in bicep.lines.iter().enumerate() {
            for guid in guids(&line.code) {
                let at = format!("{file}:{}", n + 1);
                match by_id.get(guid.as_str()) {
                    None => problems.push(format!("{at}: {guid} is not a built-in role this test knows")),
                    Some(name) if line.comment != *name => problems
                        .push(format!("{at}: {guid} is {name}, but the comment on its line says {:?}", line.comment)),
                    Some(name) => found.push(name.to_string()),
                }
            }
        }
        let guid_vars: Vec<&str> = bicep
            .decls
            .iter()
            .filter(|d| d.kind == "var" && guids(&d.value).len() == 1)
            .map(|d| d.name.as_str())
            .collect();
        for d in &bicep.decls {
            for (key, value) in &d.props {
                if !key.ends_with("roleDefinitionId") {
                    continue;
                }
                let words: Vec<&str> = value.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).collect();
                if guids(value).is_empty() && !words.iter().any(|w| guid_vars.contains(w)) {
                    problems.push(format!(
                        "{file}: {} {}: roleDefinitionId {value} names no role GUID or role-ID var",
                        d.kind, d.name
                    ));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(found)
    } else {
        Err(problems)
    }
}

// ---- DCE and DCR region ---------------------------------------------------------------------

/// Whether `expr`, evaluated in `file`, is the location of an `existing` Log Analytics
/// workspace: `ws.location` directly, or a parameter that every module using `file` sets to one.
fn is_workspace_location(files: &BTreeMap<String, Bicep>, file: &str, expr: &str, hops: usize) -> Result<(), String> {
    let bicep = &files[file];
    let expr = expr.trim();
    if hops > 8 {
        return Err(format!("{file}: {expr}: parameters pass through too many modules"));
    }
    if let Some(sym) = expr.strip_suffix(".location") {
        return match bicep.decl("resource", sym) {
            Some(d) if d.target == WORKSPACE_TYPE && d.existing => Ok(()),
            Some(d) => {
                Err(format!("{file}: {expr} is the location of a {} that is not an existing workspace", d.target))
            }
            None => Err(format!("{file}: {expr} is not the location of a workspace")),
        };
    }
    if let Some(param) = bicep.decl("param", expr) {
        let callers: Vec<(&String, &Decl)> = files
            .iter()
            .flat_map(|(f, b)| b.decls.iter().map(move |d| (f, d)))
            .filter(|(_, d)| d.kind == "module" && d.target.trim_start_matches("./") == file)
            .collect();
        if callers.is_empty() {
            return Err(format!(
                "{file}: parameter {expr} (default {:?}) is not set by any module to the workspace's location",
                param.value
            ));
        }
        for (caller_file, module) in callers {
            let Some(value) = module.prop(&format!("params.{expr}")) else {
                return Err(format!("{caller_file}: module {} does not set {expr}", module.name));
            };
            is_workspace_location(files, caller_file, value, hops + 1)?;
        }
        return Ok(());
    }
    Err(format!("{file}: {expr} is neither a workspace's location nor a parameter"))
}

/// Every DCE and DCR must be created in the workspace's region. Returns how many were checked.
fn check_ingestion_regions(files: &BTreeMap<String, Bicep>) -> Result<usize, Vec<String>> {
    let mut checked = 0;
    let mut problems = Vec::new();
    for (file, bicep) in files {
        for d in bicep
            .decls
            .iter()
            .filter(|d| d.kind == "resource" && !d.existing && REGIONAL_TO_WORKSPACE.contains(&d.target.as_str()))
        {
            checked += 1;
            match d.prop("location") {
                None => problems.push(format!("{file}: {} has no location", d.name)),
                Some(loc) => {
                    if let Err(e) = is_workspace_location(files, file, loc, 0) {
                        problems.push(format!("{file}: {} ({}): {e}", d.name, d.target));
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(checked)
    } else {
        Err(problems)
    }
}

// ---- the tests ------------------------------------------------------------------------------

#[test]
fn every_role_guid_in_infra_is_the_built_in_role_its_comment_names() {
    let roles = check_roles(&infra()).unwrap_or_else(|p| panic!("role definitions in infra/:\n{}", p.join("\n")));
    for needed in [
        "Microsoft Sentinel Responder",
        "Monitoring Metrics Publisher",
        "Storage Blob Data Owner",
        "Storage Queue Data Contributor",
        "Storage Table Data Contributor",
        "Key Vault Secrets User",
        "Microsoft Sentinel Automation Contributor",
    ] {
        assert!(roles.iter().any(|r| r == needed), "infra/ assigns no {needed} (found {roles:?})");
    }
}

#[test]
fn the_dce_and_dcr_are_created_in_the_workspace_region() {
    let checked = check_ingestion_regions(&infra())
        .unwrap_or_else(|p| panic!("DCE/DCR not in the workspace region:\n{}", p.join("\n")));
    assert_eq!(checked, 3, "expected one DCE, the alerts DCR and the hunting DCR (hunting.bicep) in infra/");
}

fn files(list: &[(&str, &str)]) -> BTreeMap<String, Bicep> {
    list.iter().map(|(n, s)| (n.to_string(), Bicep::parse(s))).collect()
}

#[test]
fn the_role_check_rejects_an_unknown_or_misnamed_guid() {
    let wrong = files(&[(
        "w.bicep",
        "resource r 'Microsoft.Authorization/roleAssignments@2022-04-01' = {\n  properties: {\n    \
         roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', \
         '3e150937-b8fe-4cfb-8069-0eccf92785c3')\n  }\n}\n",
    )]);
    let p = check_roles(&wrong).unwrap_err();
    assert!(p[0].contains("not a built-in role"), "{p:?}");

    let misnamed = files(&[(
        "w.bicep",
        "var responderRoleId = '8d289c81-5878-46d4-8554-54e1e3d8b5cb' // Microsoft Sentinel Responder\n",
    )]);
    let p = check_roles(&misnamed).unwrap_err();
    assert!(p[0].contains("is Microsoft Sentinel Reader"), "{p:?}");

    let unnamed = files(&[("w.bicep", "var id = '3913510d-42f4-4e42-8a64-420c390055eb'\n")]);
    assert!(check_roles(&unnamed).is_err());

    let indirect = files(&[(
        "w.bicep",
        "param roleId string\nresource r 'Microsoft.Authorization/roleAssignments@2022-04-01' = {\n  properties: {\n    \
         roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)\n  }\n}\n",
    )]);
    assert!(check_roles(&indirect).unwrap_err()[0].contains("names no role GUID"));
}

#[test]
fn the_region_check_rejects_the_function_app_region() {
    // The layout before this check: the DCE in the Function App's resource group region.
    let before = files(&[(
        "main.bicep",
        "param location string = resourceGroup().location\n\
         resource dce 'Microsoft.Insights/dataCollectionEndpoints@2023-03-11' = {\n  name: '${prefix}-dce'\n  \
         location: location\n}\n",
    )]);
    let p = check_ingestion_regions(&before).unwrap_err();
    assert!(p[0].contains("not set by any module"), "{p:?}");

    // A module whose caller passes something other than an existing workspace's location.
    let wrong_caller = files(&[
        (
            "main.bicep",
            "resource ws 'Microsoft.OperationalInsights/workspaces@2022-10-01' = {\n  name: 'w'\n  location: 'x'\n}\n\
             module m 'ingest.bicep' = {\n  name: 'm'\n  params: {\n    location: resourceGroup().location\n  }\n}\n",
        ),
        (
            "ingest.bicep",
            "param location string\nresource dcr 'Microsoft.Insights/dataCollectionRules@2023-03-11' = {\n  \
             location: location\n}\n",
        ),
    ]);
    assert!(check_ingestion_regions(&wrong_caller).is_err());

    let right = files(&[
        (
            "main.bicep",
            "resource ws 'Microsoft.OperationalInsights/workspaces@2022-10-01' existing = {\n  name: 'w'\n}\n\
             module m 'ingest.bicep' = {\n  name: 'm'\n  params: {\n    location: ws.location\n  }\n}\n",
        ),
        (
            "ingest.bicep",
            "param location string\nresource dcr 'Microsoft.Insights/dataCollectionRules@2023-03-11' = {\n  \
             name: '${x}-{y}'\n  location: location\n}\n",
        ),
    ]);
    assert_eq!(check_ingestion_regions(&right), Ok(1));
}

#[test]
fn the_scanner_keeps_strings_comments_and_interpolation_apart() {
    let b = Bicep::parse(
        "// a comment with { and '\nvar s = 'a ${concat('}', '{')} b' // tail {\nresource r 'T@1' = {\n  \
         properties: {\n    q: '''\n{ not code\n'''\n  }\n  location: ws.location\n}\n",
    );
    let r = b.decl("resource", "r").unwrap();
    assert_eq!(r.target, "T");
    assert_eq!(r.prop("location"), Some("ws.location"));
    assert_eq!(b.lines[1].comment, "tail {");
    assert_eq!(b.decl("var", "s").unwrap().value, "'a ${concat('}', '{')} b'");
}
