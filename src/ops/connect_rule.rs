//! `xdrsync connect`'s analytics rules: the `XDRSYNC_ALERT_RULES` NRT rules over the trigger
//! table (`XdrsyncAlertTriggers_CL`), rule i over the rows of shard i, that turn each row into a
//! Sentinel alert (docs/native-alerts.md). The deployment creates them after their table
//! (infra/alert-rule.bicep); when the table appeared too late for that, or someone edited a rule,
//! `connect` creates it or puts back what xdrsync owns of it. Both read one template,
//! infra/alert-rule.json (`{table}`, `{shard}`, `shardNames`), so they cannot drift apart.
//!
//! Documented (azure-rest-api-specs, SecurityInsights AlertRules.json, 2025-07-01-preview): kind
//! `NRT` requires `displayName`, `enabled`, `severity`, `query`, `suppressionEnabled`,
//! `suppressionDuration`; PUT creates (201) or replaces (200); an etag in the body that is not the
//! current one is a 409. Seen in the field, not documented: creating a rule whose query names a
//! table that does not exist yet is a 400 "Failed to run the analytics rule query. One of the
//! tables does not exist." (older answers say "Failed to resolve table or column expression
//! named …"); both read as "table missing" here, any other 400 as a refusal. Assumed: the service
//! returns the properties as sent (same ISO durations, empty arrays possibly left out), so an
//! absent, `null`, `[]` or `{}` value counts as the same.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::domain::workspace_rules::AlertRule;
use crate::error::PortError;
use crate::usecase::Ports;

/// The rule's definition, shared with infra/alert-rule.bicep (`loadJsonContent`).
pub const DEFINITION: &str = include_str!("../../infra/alert-rule.json");
/// Where the template puts the table's name and the shard number.
const TABLE_PLACEHOLDER: &str = "{table}";
const SHARD_PLACEHOLDER: &str = "{shard}";
/// The template's properties that carry placeholders.
const TEMPLATED: [&str; 3] = ["query", "displayName", "description"];

/// What `connect` did about the rule (one line of its report).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RuleLine {
    /// The rule's name (its ARM id segment).
    pub name: String,
    pub table: String,
    /// `present`, `created`, `repaired`, or `not created` / `not repaired` / `not read`.
    pub action: String,
    pub ok: bool,
    pub detail: String,
}

/// The table a `Custom-<Name>` stream lands in (the DCR's output stream `Custom-<Name>_CL`).
pub fn table_of(stream: &str) -> String {
    format!("{}_CL", stream.strip_prefix("Custom-").unwrap_or(stream))
}

/// The fixed names of the rules, rule i named `shardNames[i]` (at most 40).
pub fn shard_names() -> Vec<String> {
    let v: Value = serde_json::from_str(DEFINITION).expect("infra/alert-rule.json is JSON (tested)");
    v["shardNames"]
        .as_array()
        .map(|a| a.iter().filter_map(|n| n.as_str().map(str::to_string)).collect())
        .unwrap_or_default()
}

/// Rule `shard` xdrsync needs over `table`, as infra/alert-rule.json declares it.
pub fn wanted(table: &str, shard: u16) -> AlertRule {
    let mut rule: AlertRule = serde_json::from_str(DEFINITION).expect("infra/alert-rule.json is a rule (tested)");
    rule.name = shard_names().get(usize::from(shard)).cloned().unwrap_or_default();
    for key in TEMPLATED {
        if let Some(Value::String(q)) = rule.properties.get_mut(key) {
            *q = q.replace(TABLE_PLACEHOLDER, table).replace(SHARD_PLACEHOLDER, &shard.to_string());
        }
    }
    rule
}

/// The properties of `wanted` that `existing` lacks or holds otherwise (and `kind` when it
/// differs). Properties xdrsync does not set are not compared: they are someone else's.
pub fn drift(existing: &AlertRule, wanted: &AlertRule) -> Vec<String> {
    let mut out = Vec::new();
    if !existing.kind.eq_ignore_ascii_case(&wanted.kind) {
        out.push("kind".to_string());
    }
    for (key, value) in &wanted.properties {
        if !same(existing.properties.get(key).unwrap_or(&Value::Null), value) {
            out.push(key.clone());
        }
    }
    out
}

/// The PUT that puts back what xdrsync owns: what was read, xdrsync's properties over it, the
/// etag read (a concurrent edit answers 409), read-only properties left out.
pub fn repaired(existing: &AlertRule, wanted: &AlertRule) -> AlertRule {
    let mut properties = existing.properties.clone();
    properties.remove("lastModifiedUtc");
    for (k, v) in &wanted.properties {
        properties.insert(k.clone(), v.clone());
    }
    AlertRule { name: existing.name.clone(), etag: existing.etag.clone(), kind: wanted.kind.clone(), properties }
}

/// JSON equality where absent, `null`, `[]` and `{}` are the same and object keys are unordered.
fn same(a: &Value, b: &Value) -> bool {
    fn empty(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.values().all(empty),
            _ => false,
        }
    }
    match (a, b) {
        _ if empty(a) && empty(b) => true,
        (Value::Object(x), Value::Object(y)) => {
            let get = |m: &Map<String, Value>, k: &str| m.get(k).cloned().unwrap_or(Value::Null);
            x.keys().chain(y.keys()).all(|k| same(&get(x, k), &get(y, k)))
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q)),
        _ => a == b,
    }
}

/// A 400 that says the query's table does not exist (see the module note).
pub fn is_table_missing(e: &PortError) -> bool {
    match e {
        PortError::Rejected { reason, .. } => {
            let r = reason.to_ascii_lowercase();
            r.contains("tables does not exist")
                || r.contains("table does not exist")
                || r.contains("failed to resolve table")
        }
        _ => false,
    }
}

/// Creates or repairs the `XDRSYNC_ALERT_RULES` rules in the default workspace (the one the
/// trigger table and the query API are in): one line for them all, each rule's problem in its
/// detail. `None` when native alerts are off (`XDRSYNC_ATTACH_ALERTS`): then no rule is needed.
pub async fn ensure(s: &Ports) -> Option<RuleLine> {
    if !s.config.alerts.attach {
        return None;
    }
    let table = table_of(&s.config.alerts.triggers_stream);
    let mut lines = Vec::new();
    for shard in 0..s.config.alerts.rules {
        lines.push(match s.sentinel.get_alert_rule(&wanted(&table, shard).name).await {
            Ok(existing) => apply(s, &table, shard, existing).await,
            Err(e) => line(&table, shard, "not read", false, format!("{e}{}", access_hint(&e, "reading"))),
        });
    }
    Some(combine(&table, lines))
}

/// One line for every rule: `ok` when all are; the action counted per kind; the details of
/// those with something to say.
fn combine(table: &str, lines: Vec<RuleLine>) -> RuleLine {
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for l in &lines {
        *counts.entry(l.action.as_str()).or_default() += 1;
    }
    let action = counts.iter().map(|(a, n)| format!("{n} {a}")).collect::<Vec<_>>().join(", ");
    let detail = lines
        .iter()
        .filter(|l| !l.detail.is_empty())
        .map(|l| format!("{}: {}", l.name, l.detail))
        .collect::<Vec<_>>()
        .join("; ");
    let name = match (lines.first(), lines.last()) {
        (Some(a), Some(b)) if lines.len() > 1 => format!("{} rules ({} … {})", lines.len(), a.name, b.name),
        (Some(a), _) => a.name.clone(),
        _ => String::new(),
    };
    RuleLine { name, table: table.to_string(), ok: lines.iter().all(|l| l.ok), action, detail }
}

fn line(table: &str, shard: u16, action: &str, ok: bool, detail: String) -> RuleLine {
    RuleLine { name: wanted(table, shard).name, table: table.to_string(), action: action.to_string(), ok, detail }
}

/// Given rule `shard` as read (`None`: there is none), creates it, repairs it or leaves it.
pub async fn apply(s: &Ports, table: &str, shard: u16, existing: Option<AlertRule>) -> RuleLine {
    let want = wanted(table, shard);
    let workspace = s.config.workspace.name.clone();
    let (verb, body, changed) = match &existing {
        None => ("created", want.clone(), Vec::new()),
        Some(cur) => {
            let changed = drift(cur, &want);
            if changed.is_empty() {
                return line(table, shard, "present", true, others_note(s, &want, &workspace).await);
            }
            ("repaired", repaired(cur, &want), changed)
        }
    };
    let not = if existing.is_none() { "not created" } else { "not repaired" };
    match s.sentinel.put_alert_rule(&body).await {
        Ok(_) => {
            tracing::info!(rule.name = %want.name, rule.table = %table, rule.changed = ?changed, "analytics rule {verb}");
            let what = if changed.is_empty() { String::new() } else { format!("put back: {}", changed.join(", ")) };
            let note = others_note(s, &want, &workspace).await;
            line(table, shard, verb, true, [what, note].into_iter().filter(|x| !x.is_empty()).collect::<Vec<_>>().join("; "))
        }
        Err(e) if is_table_missing(&e) => line(
            table,
            shard,
            not,
            false,
            format!(
                "the table {table} does not exist yet in workspace {workspace} (Sentinel: {e}). Deploy infra/main.bicep (it creates the table), wait a few minutes for the table to become queryable, then run connect again"
            ),
        ),
        Err(e) if e.is_conflict() => line(
            table,
            shard,
            not,
            false,
            "someone edited the rule meanwhile (409); nothing overwritten, run connect again".into(),
        ),
        Err(e) => line(table, shard, not, false, format!("{e}{}", access_hint(&e, "writing"))),
    }
}

fn access_hint(e: &PortError, doing: &str) -> String {
    match e {
        PortError::Forbidden { .. } if doing == "writing" => {
            " (writing analytics rules needs Microsoft Sentinel Contributor on the workspace; or deploy infra/main.bicep again)".into()
        }
        PortError::Forbidden { .. } => " (reading analytics rules needs a Microsoft Sentinel role)".into(),
        _ => String::new(),
    }
}

/// Other NRT rules with this rule's display name (an earlier template named the rule by a hash
/// of the workspace id): each would raise every alert again. Listing is best effort: a failure
/// leaves the note out.
async fn others_note(s: &Ports, want: &AlertRule, workspace: &str) -> String {
    let Ok(listed) = s.sentinel.list_alert_rules().await else { return String::new() };
    let others: Vec<String> = listed
        .iter()
        .filter(|r| r.name != want.name && r.kind.eq_ignore_ascii_case(&want.kind))
        .filter(|r| r.display_name() == want.display_name())
        .map(|r| r.name.clone())
        .collect();
    if others.is_empty() {
        return String::new();
    }
    format!(
        "another rule named '{}' exists in workspace {workspace} ({}): each alert appears twice; delete it (docs/operations.md, Upgrade)",
        want.display_name(),
        others.join(", ")
    )
}

/// The text line, in the form of `connect`'s checks.
pub fn render(r: &RuleLine) -> String {
    let detail = if r.detail.is_empty() { String::new() } else { format!(": {}", r.detail) };
    format!(
        "  {} {:<28} {} over {} {}{detail}\n",
        if r.ok { "ok  " } else { "FAIL" },
        "analytics rule",
        r.name,
        r.table,
        r.action
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_definition_is_an_nrt_rule_over_the_table_with_every_required_property() {
        let w = wanted("XdrsyncAlertTriggers_CL", 3);
        assert_eq!(w.kind, "NRT");
        assert!(uuid::Uuid::parse_str(&w.name).is_ok(), "a fixed GUID name: {}", w.name);
        assert_eq!(w.name, shard_names()[3]);
        let q = w.properties["query"].as_str().unwrap();
        assert!(q.starts_with("XdrsyncAlertTriggers_CL | where RuleShard == 3 | project "), "{q}");
        assert_eq!(w.properties["displayName"], "xdrsync: Defender XDR alerts (3)");
        let names = shard_names();
        assert_eq!(names.len(), 40, "40 fixed names");
        assert_eq!(names.iter().collect::<std::collections::BTreeSet<_>>().len(), 40, "distinct");
        for required in ["displayName", "enabled", "severity", "query", "suppressionEnabled", "suppressionDuration"] {
            assert!(w.properties.contains_key(required), "{required}");
        }
        assert_eq!(w.etag, None, "a create sends no etag");
        assert_eq!(table_of("Custom-XdrsyncAlerts"), "XdrsyncAlerts_CL");
    }

    #[test]
    fn drift_compares_only_what_xdrsync_owns_and_ignores_empty_versus_absent() {
        let w = wanted("XdrsyncAlertTriggers_CL", 0);
        let mut read = w.clone();
        read.etag = Some("\"e1\"".into());
        read.properties.insert("lastModifiedUtc".into(), json!("2026-01-01T00:00:00Z"));
        read.properties.insert("templateVersion".into(), json!("1.0.0"));
        read.properties.remove("tactics");
        read.properties["incidentConfiguration"]["groupingConfiguration"]["groupByEntities"] = Value::Null;
        assert_eq!(drift(&read, &w), Vec::<String>::new(), "service-set and empty-vs-absent are no drift");

        read.properties.insert("query".into(), json!("XdrsyncAlertTriggers_CL | where false"));
        read.properties["entityMappings"].as_array_mut().unwrap().pop();
        read.properties.insert("enabled".into(), json!(false));
        assert_eq!(drift(&read, &w), vec!["enabled", "entityMappings", "query"]);

        let fixed = repaired(&read, &w);
        assert_eq!(drift(&fixed, &w), Vec::<String>::new());
        assert_eq!(fixed.etag.as_deref(), Some("\"e1\""), "the etag read guards the PUT");
        assert_eq!(fixed.properties["templateVersion"], "1.0.0", "what others set stays");
        assert!(!fixed.properties.contains_key("lastModifiedUtc"), "read-only left out");

        let mut other_kind = w.clone();
        other_kind.kind = "Scheduled".into();
        assert_eq!(drift(&other_kind, &w), vec!["kind"]);
    }

    #[test]
    fn one_line_tells_about_every_rule() {
        let l = |shard: u16, action: &str, ok: bool, detail: &str| line("T_CL", shard, action, ok, detail.into());
        let all = combine(
            "T_CL",
            vec![l(0, "present", true, ""), l(1, "created", true, ""), l(2, "not created", false, "no table")],
        );
        assert!(!all.ok, "one rule missing is a failure");
        assert_eq!(all.action, "1 created, 1 not created, 1 present");
        assert_eq!(all.detail, format!("{}: no table", shard_names()[2]));
        assert!(all.name.starts_with("3 rules ("));
    }

    #[test]
    fn a_missing_table_is_told_apart_from_other_refusals() {
        let rej =
            |r: &str| PortError::Rejected { service: "sentinel", code: Some("BadRequest".into()), reason: r.into() };
        assert!(is_table_missing(&rej("Failed to run the analytics rule query. One of the tables does not exist.")));
        assert!(is_table_missing(&rej(
            "'where' operator: Failed to resolve table or column expression named 'XdrsyncAlerts_CL'"
        )));
        assert!(!is_table_missing(&rej("The 'severity' property is required for kind NRT")));
        assert!(!is_table_missing(&PortError::Conflict { service: "sentinel", message: "does not exist".into() }));
    }
}
