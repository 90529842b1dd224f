//! Static checks of the Bicep in `infra/` for mistakes that only show up on a real deployment:
//! every role-definition GUID is an Azure built-in role and is named next to it, and the data
//! collection endpoint (DCE) and rule (DCR) are created in the Sentinel workspace's region.
//! There is no Bicep compiler here, so the files are read with a small scanner that knows
//! strings, interpolation, comments and nesting.

use std::collections::BTreeMap;
use std::path::Path;

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

// ---- a small Bicep reader -------------------------------------------------------------------

/// One source line: the code before any `//` comment, the comment, and the nesting depth
/// (`{`, `[`, `(`) at its start. `depth` is `None` for a line that starts inside a string.
#[derive(Debug)]
struct Line {
    code: String,
    comment: String,
    depth: Option<usize>,
}

fn scan(src: &str) -> Vec<Line> {
    #[derive(Clone, Copy, PartialEq)]
    enum Frame {
        Str,
        Interp(usize),
        MultiStr,
        BlockComment,
    }
    let chars: Vec<char> = src.chars().collect();
    let mut stack: Vec<Frame> = Vec::new();
    let mut depth = 0usize;
    let mut lines = Vec::new();
    let mut cur = Line { code: String::new(), comment: String::new(), depth: Some(0) };
    let mut in_line_comment = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            lines.push(cur);
            in_line_comment = false;
            let in_code = matches!(stack.last(), None | Some(Frame::Interp(_)));
            cur = Line { code: String::new(), comment: String::new(), depth: in_code.then_some(depth) };
            i += 1;
            continue;
        }
        if in_line_comment {
            cur.comment.push(c);
            i += 1;
            continue;
        }
        match stack.last().copied() {
            Some(Frame::Str) => {
                cur.code.push(c);
                if c == '\\' {
                    if let Some(n) = next {
                        cur.code.push(n);
                    }
                    i += 2;
                    continue;
                }
                if c == '\'' {
                    stack.pop();
                } else if c == '$' && next == Some('{') {
                    cur.code.push('{');
                    stack.push(Frame::Interp(depth));
                    i += 2;
                    continue;
                }
            }
            Some(Frame::MultiStr) => {
                cur.code.push(c);
                if src[char_offset(&chars, i)..].starts_with("'''") {
                    cur.code.push_str("''");
                    stack.pop();
                    i += 3;
                    continue;
                }
            }
            Some(Frame::BlockComment) => {
                if c == '*' && next == Some('/') {
                    stack.pop();
                    i += 2;
                    continue;
                }
            }
            None | Some(Frame::Interp(_)) => {
                if c == '/' && next == Some('/') {
                    in_line_comment = true;
                    i += 2;
                    continue;
                }
                if c == '/' && next == Some('*') {
                    stack.push(Frame::BlockComment);
                    i += 2;
                    continue;
                }
                cur.code.push(c);
                match c {
                    '\'' if src[char_offset(&chars, i)..].starts_with("'''") => {
                        cur.code.push_str("''");
                        stack.push(Frame::MultiStr);
                        i += 3;
                        continue;
                    }
                    '\'' => stack.push(Frame::Str),
                    '{' | '[' | '(' => depth += 1,
                    '}' if stack.last() == Some(&Frame::Interp(depth)) => {
                        stack.pop();
                    }
                    '}' | ']' | ')' => depth = depth.saturating_sub(1),
                    _ => {}
                }
            }
        }
        i += 1;
    }
    lines.push(cur);
    for l in &mut lines {
        l.comment = l.comment.trim().to_string();
    }
    lines
}

fn char_offset(chars: &[char], i: usize) -> usize {
    chars[..i].iter().map(|c| c.len_utf8()).sum()
}

#[derive(Debug, Default)]
struct Decl {
    /// `resource`, `module`, `param`, `var` or `output`.
    kind: String,
    name: String,
    /// Resource type without the API version, module path, or param type.
    target: String,
    existing: bool,
    /// The part after `=` on the header line (a param's default, a var's value).
    value: String,
    /// Properties of the body by dotted key path (`location`, `params.location`).
    props: Vec<(String, String)>,
}

impl Decl {
    fn prop(&self, path: &str) -> Option<&str> {
        self.props.iter().find(|(k, _)| k == path).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Default)]
struct Bicep {
    lines: Vec<Line>,
    decls: Vec<Decl>,
}

impl Bicep {
    fn parse(src: &str) -> Bicep {
        let lines = scan(src);
        let mut decls: Vec<Decl> = Vec::new();
        let mut keys: Vec<String> = Vec::new();
        for line in &lines {
            let code = line.code.trim();
            let Some(depth) = line.depth else { continue };
            if code.is_empty() {
                continue;
            }
            if depth == 0 {
                keys.clear();
                let mut words = code.split_whitespace();
                let kind = words.next().unwrap_or_default();
                if !["resource", "module", "param", "var", "output"].contains(&kind) {
                    continue;
                }
                let name = words.next().unwrap_or_default().to_string();
                let target = match kind {
                    "var" => String::new(),
                    _ => {
                        words.next().unwrap_or_default().trim_matches('\'').split('@').next().unwrap_or_default().into()
                    }
                };
                let value = code.split_once('=').map(|(_, v)| v.trim().to_string()).unwrap_or_default();
                let existing = code.split_whitespace().any(|w| w == "existing");
                decls.push(Decl { kind: kind.into(), name, target, existing, value, props: Vec::new() });
                continue;
            }
            keys.truncate(depth - 1);
            while keys.len() < depth - 1 {
                keys.push(String::new());
            }
            let Some(decl) = decls.last_mut() else { continue };
            match property(code) {
                Some((key, value)) => {
                    keys.push(key.to_string());
                    let path = keys.iter().filter(|k| !k.is_empty()).cloned().collect::<Vec<_>>().join(".");
                    decl.props.push((path, value.to_string()));
                }
                None => keys.push(String::new()),
            }
        }
        Bicep { lines, decls }
    }

    fn decl(&self, kind: &str, name: &str) -> Option<&Decl> {
        self.decls.iter().find(|d| d.kind == kind && d.name == name)
    }
}

/// `key: value` (the key an identifier or a quoted name).
fn property(code: &str) -> Option<(&str, &str)> {
    let (key, value) = code.split_once(':')?;
    let key = key.trim();
    let bare = key.trim_matches('\'');
    (!bare.is_empty()
        && bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '{' || c == '}'))
    .then_some((bare, value.trim()))
}

fn infra() -> BTreeMap<String, Bicep> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("infra");
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "bicep") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            files.insert(name, Bicep::parse(&std::fs::read_to_string(&path).unwrap()));
        }
    }
    assert!(files.contains_key("main.bicep"), "infra/main.bicep not found in {}", dir.display());
    files
}

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
        for d in
            bicep.decls.iter().filter(|d| d.kind == "resource" && REGIONAL_TO_WORKSPACE.contains(&d.target.as_str()))
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
    assert_eq!(checked, 2, "expected one DCE and one DCR in infra/");
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
