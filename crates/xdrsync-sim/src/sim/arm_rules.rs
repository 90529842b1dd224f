//! Workspace settings under Microsoft.SecurityInsights that `xdrsync connect` reads and writes:
//! analytics rules (`alertRules`) and data connectors (`dataConnectors`), at their ARM paths.
//!
//! From the REST specs (AlertRules.json, DataConnectors.json): a rule is `{id, name, type, etag,
//! kind, properties}`; kind `MicrosoftSecurityIncidentCreation` requires `displayName`,
//! `enabled` and `productFilter` (one of [`PRODUCTS`]); `lastModifiedUtc` is read-only. PUT
//! creates (201) or replaces (200) and returns the rule with a new etag; an etag in the body
//! that is not the current one is a 409 (as for incidents; the etag is optional). The
//! connector of kind `MicrosoftThreatProtection` carries `properties.dataTypes.incidents.state`
//! (`Enabled`/`Disabled`). Kind `NRT` (2025-07-01-preview) requires `displayName`, `enabled`,
//! `severity`, `query`, `suppressionEnabled` and `suppressionDuration`. Sentinel runs a query rule's
//! query when it is saved: a rule over a table that does not exist yet is refused with a 400 "Failed
//! to run the analytics rule query. One of the tables does not exist." (as reported in the field):
//! a table exists once a declared DCR stream lands in it, except the ones in
//! [`WorkspaceRules::missing_tables`]. An NRT rule is compiled and checked as
//! [`super::nrt_rule`] says (KQL subset, custom details, entity mappings) and the rule engine
//! runs it from then on (`alert_rule.rs`). Azure RBAC: reading needs a
//! Sentinel role; writing rules needs Microsoft Sentinel Contributor (Learn: Responder manages
//! incidents, not analytics rules).
//!
//! The default workspace is one that used Microsoft's own connectors before xdrsync: enabled
//! incident-creation rules for Defender for Endpoint, Defender for Office 365 and Defender for
//! Cloud, a disabled one for Defender for Identity, one scheduled rule, and the Defender XDR
//! connector with its incident creation on.

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Map, Value};

use super::faults::arm_error;
use super::nrt_rule::{NrtRule, Refusal};
use super::permissions::{arm_authorization_failed, object_id_of, ArmAccess, SENTINEL_CONTRIBUTOR};
use super::world::World;
use super::Sim;

/// `MicrosoftSecurityProductName` in the REST specs.
pub const PRODUCTS: [&str; 7] = [
    "Azure Active Directory Identity Protection",
    "Azure Advanced Threat Protection",
    "Azure Security Center",
    "Azure Security Center for IoT",
    "Microsoft Cloud App Security",
    "Microsoft Defender Advanced Threat Protection",
    "Office 365 Advanced Threat Protection",
];

/// One stored resource: kind, properties, etag.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub kind: String,
    pub etag: String,
    pub properties: Map<String, Value>,
}

/// The workspace's rules and connectors, by name.
#[derive(Debug, Clone, Default)]
pub struct WorkspaceRules {
    pub alert_rules: BTreeMap<String, Resource>,
    pub data_connectors: BTreeMap<String, Resource>,
    /// Tables the workspace does not have yet (every other table exists): a query rule over one
    /// of them is refused.
    pub missing_tables: std::collections::BTreeSet<String>,
}

impl WorkspaceRules {
    /// The `(column, type)` pairs of `table` when the workspace has it: a table exists once a
    /// declared DCR stream lands in it (the deployment creates both) and it is not one of
    /// [`Self::missing_tables`].
    pub fn table_schema(&self, config: &super::SimConfig, table: &str) -> Option<Vec<(String, String)>> {
        if self.missing_tables.contains(table) {
            return None;
        }
        config
            .streams
            .iter()
            .find(|s| super::stream_columns::table_of(s) == table)
            .and_then(|s| super::stream_columns::declared(s))
    }

    /// A workspace that used Microsoft's connectors before xdrsync (see the module note).
    pub fn microsoft_defaults(tenant_id: &str) -> Self {
        let mut w = Self::default();
        let incident_rule = |product: &str, name: &str, enabled: bool| Resource {
            kind: "MicrosoftSecurityIncidentCreation".into(),
            etag: World::new_etag(),
            properties: json!({
                "displayName": format!("Create incidents based on {name} alerts"),
                "description": format!("Create incidents based on all alerts generated in {name}"),
                "productFilter": product,
                "enabled": enabled,
                "severitiesFilter": ["High", "Medium", "Low", "Informational"],
                "lastModifiedUtc": "2026-01-05T09:00:00Z",
            })
            .as_object()
            .cloned()
            .unwrap_or_default(),
        };
        for (id, product, name, enabled) in [
            (
                "b1b4c3a5-2a0e-4a8a-9d5a-0000000000e1",
                "Microsoft Defender Advanced Threat Protection",
                "Microsoft Defender for Endpoint",
                true,
            ),
            (
                "b1b4c3a5-2a0e-4a8a-9d5a-0000000000e2",
                "Office 365 Advanced Threat Protection",
                "Microsoft Defender for Office 365",
                true,
            ),
            (
                "b1b4c3a5-2a0e-4a8a-9d5a-0000000000e3",
                "Azure Advanced Threat Protection",
                "Microsoft Defender for Identity",
                false,
            ),
            ("b1b4c3a5-2a0e-4a8a-9d5a-0000000000e4", "Azure Security Center", "Microsoft Defender for Cloud", true),
        ] {
            w.alert_rules.insert(id.into(), incident_rule(product, name, enabled));
        }
        w.alert_rules.insert(
            "b1b4c3a5-2a0e-4a8a-9d5a-0000000000f1".into(),
            Resource {
                kind: "Scheduled".into(),
                etag: World::new_etag(),
                properties: json!({"displayName": "Rare process on a server", "enabled": true,
                    "query": "SecurityEvent | take 1", "severity": "Medium"})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            },
        );
        w.data_connectors.insert(
            "c0ffee00-0000-4000-8000-00000000d001".into(),
            Resource {
                kind: "MicrosoftThreatProtection".into(),
                etag: World::new_etag(),
                properties: json!({"tenantId": tenant_id, "dataTypes": {"incidents": {"state": "Enabled"}}})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            },
        );
        w
    }
}

enum Target {
    AlertRules,
    AlertRule(String),
    DataConnectors,
    DataConnector(String),
}

/// The collection and id after `…/providers/Microsoft.SecurityInsights/`, when `path` is one of
/// ours (any other path is left to the incidents handler).
fn target(sim: &Sim, path: &str) -> Option<Result<Target, Response>> {
    let lower = path.to_ascii_lowercase();
    let marker = "/providers/microsoft.securityinsights/";
    let at = lower.find(marker)?;
    let rest: Vec<&str> = path[at + marker.len()..].trim_matches('/').split('/').collect();
    let t = match (rest.first().map(|s| s.to_ascii_lowercase()).as_deref(), rest.get(1), rest.len()) {
        (Some("alertrules"), None, 1) => Target::AlertRules,
        (Some("alertrules"), Some(id), 2) => Target::AlertRule(id.to_string()),
        (Some("dataconnectors"), None, 1) => Target::DataConnectors,
        (Some("dataconnectors"), Some(id), 2) => Target::DataConnector(id.to_string()),
        _ => return None,
    };
    let workspace = sim.config.workspace.resource_id().to_ascii_lowercase();
    if !lower[..at].eq(&workspace) {
        return Some(Err(arm_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("The Resource '{}' was not found.", &path[..at]),
        )));
    }
    Some(Ok(t))
}

fn to_json(base: &str, collection: &str, name: &str, r: &Resource) -> Value {
    json!({
        "id": format!("{base}/{collection}/{name}"),
        "name": name,
        "type": format!("Microsoft.SecurityInsights/{collection}"),
        "etag": r.etag,
        "kind": r.kind,
        "properties": r.properties,
    })
}

/// Handles the request when `path` is an alert-rule or data-connector path.
pub fn handle(sim: &Sim, caller: &super::entra::Caller, path: &str, method: &Method, body: &[u8]) -> Option<Response> {
    let app_id = caller.app_id.as_str();
    let t = match target(sim, path)? {
        Ok(t) => t,
        Err(r) => return Some(r),
    };
    let roles = caller.permissions.workspace_roles.clone();
    let (collection, write) = match (&t, method) {
        (Target::AlertRules | Target::AlertRule(_), &Method::GET) => ("alertRules", false),
        (Target::AlertRule(_), &Method::PUT) => ("alertRules", true),
        (Target::DataConnectors | Target::DataConnector(_), &Method::GET) => ("dataConnectors", false),
        _ => {
            return Some(arm_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{method} is not simulated here"),
            ))
        }
    };
    let allowed = if write {
        ["Owner", "Contributor", SENTINEL_CONTRIBUTOR].iter().any(|r| roles.contains(*r))
    } else {
        ArmAccess::Read.allowed_by(&roles)
    };
    if !allowed {
        sim.stats.bump("arm.forbidden");
        let action = format!("Microsoft.SecurityInsights/{collection}/{}", if write { "write" } else { "read" });
        return Some(arm_authorization_failed(app_id, &object_id_of(app_id), &action, path));
    }
    let base = sim.sentinel_base();
    let mut rules = sim.rules.lock().unwrap_or_else(|p| p.into_inner());
    Some(match t {
        Target::AlertRules => {
            sim.stats.bump("arm.alert_rules.list");
            let value: Vec<Value> = rules.alert_rules.iter().map(|(n, r)| to_json(&base, "alertRules", n, r)).collect();
            Json(json!({"value": value})).into_response()
        }
        Target::DataConnectors => {
            sim.stats.bump("arm.data_connectors.list");
            let value: Vec<Value> =
                rules.data_connectors.iter().map(|(n, r)| to_json(&base, "dataConnectors", n, r)).collect();
            Json(json!({"value": value})).into_response()
        }
        Target::AlertRule(id) if !write => match rules.alert_rules.get(&id) {
            Some(r) => Json(to_json(&base, "alertRules", &id, r)).into_response(),
            None => arm_error(StatusCode::NOT_FOUND, "NotFound", format!("Alert rule '{id}' was not found")),
        },
        Target::DataConnector(id) => match rules.data_connectors.get(&id) {
            Some(r) => Json(to_json(&base, "dataConnectors", &id, r)).into_response(),
            None => arm_error(StatusCode::NOT_FOUND, "NotFound", format!("Data connector '{id}' was not found")),
        },
        Target::AlertRule(id) => {
            let put = match parse_rule(body) {
                Ok(p) => p,
                Err(e) => return Some(arm_error(StatusCode::BAD_REQUEST, "BadRequest", e)),
            };
            let compiled = match compile_nrt(sim, &rules, &id, &put) {
                Ok(c) => c,
                Err(r) => return Some(r),
            };
            let existing = rules.alert_rules.get(&id).cloned();
            if let (Some(sent), Some(cur)) = (&put.etag, &existing) {
                if sent != &cur.etag {
                    sim.stats.bump("arm.alert_rules.conflict");
                    return Some(arm_error(
                        StatusCode::CONFLICT,
                        "Conflict",
                        format!("Newer version of resource '{id}' exists. Data was not saved"),
                    ));
                }
            }
            sim.stats.bump("arm.alert_rules.put");
            let mut properties = put.properties;
            // Read-only: the service sets it.
            let now = sim.world().now();
            properties.insert("lastModifiedUtc".into(), Value::String(super::timefmt::format(now)));
            let stored = Resource { kind: put.kind, etag: World::new_etag(), properties };
            let answer = to_json(&base, "alertRules", &id, &stored);
            rules.alert_rules.insert(id.clone(), stored);
            drop(rules);
            // The rule engine runs what ARM stores (a rule of another kind replacing an NRT
            // rule of that name stops it).
            let mut world = sim.world();
            match compiled {
                Some(rule) => world.rule.rules.insert(id, rule),
                None => world.rule.rules.remove(&id),
            };
            let status = if existing.is_some() { StatusCode::OK } else { StatusCode::CREATED };
            (status, Json(answer)).into_response()
        }
    })
}

struct PutRule {
    kind: String,
    etag: Option<String>,
    properties: Map<String, Value>,
}

fn parse_rule(body: &[u8]) -> Result<PutRule, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("The request body is not valid JSON: {e}"))?;
    let kind = v.get("kind").and_then(Value::as_str).ok_or("The 'kind' property is required")?.to_string();
    let properties =
        v.get("properties").and_then(Value::as_object).cloned().ok_or("The 'properties' object is required")?;
    if kind == "MicrosoftSecurityIncidentCreation" {
        for required in ["displayName", "enabled", "productFilter"] {
            if !properties.contains_key(required) {
                return Err(format!("The '{required}' property is required for kind {kind}"));
            }
        }
        if properties.get("enabled").and_then(Value::as_bool).is_none() {
            return Err("'enabled' must be a boolean".into());
        }
        let product = properties.get("productFilter").and_then(Value::as_str).unwrap_or("");
        if !PRODUCTS.contains(&product) {
            return Err(format!("'{product}' is not a valid productFilter"));
        }
    }
    if kind == "NRT" || kind == "Scheduled" {
        let mut required =
            vec!["displayName", "enabled", "severity", "query", "suppressionEnabled", "suppressionDuration"];
        if kind == "Scheduled" {
            required.extend(["queryFrequency", "queryPeriod", "triggerOperator", "triggerThreshold"]);
        }
        if let Some(missing) = required.iter().find(|k| properties.get(**k).is_none_or(Value::is_null)) {
            return Err(format!("The '{missing}' property is required for kind {kind}"));
        }
        if !["High", "Medium", "Low", "Informational"].contains(&properties["severity"].as_str().unwrap_or("")) {
            return Err("'severity' must be High, Medium, Low or Informational".into());
        }
    }
    Ok(PutRule { kind, etag: v.get("etag").and_then(Value::as_str).map(str::to_string), properties })
}

fn table_missing(sim: &Sim, table: &str) -> Response {
    sim.stats.bump("arm.alert_rules.table_missing");
    arm_error(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        format!("Failed to run the analytics rule query. One of the tables does not exist. ({table})"),
    )
}

/// The runnable rule of an NRT PUT (`None` for other kinds), or the 400 Sentinel answers.
fn compile_nrt(sim: &Sim, rules: &WorkspaceRules, id: &str, put: &PutRule) -> Result<Option<NrtRule>, Response> {
    if put.kind != "NRT" {
        return match query_table(put).filter(|t| rules.missing_tables.contains(*t)) {
            Some(table) => Err(table_missing(sim, table)),
            None => Ok(None),
        };
    }
    match super::nrt_rule::compile(id, &put.properties, &|t| rules.table_schema(&sim.config, t)) {
        Ok(rule) => Ok(Some(rule)),
        Err(Refusal::TableMissing(table)) => Err(table_missing(sim, &table)),
        Err(Refusal::Invalid(e)) => {
            sim.stats.bump("arm.alert_rules.refused");
            Err(arm_error(StatusCode::BAD_REQUEST, "BadRequest", format!("The analytics rule is not valid: {e}")))
        }
    }
}

/// The table a query rule's query starts from (its first word), for the table check.
fn query_table(put: &PutRule) -> Option<&str> {
    if put.kind != "NRT" && put.kind != "Scheduled" {
        return None;
    }
    let query = put.properties.get("query")?.as_str()?.trim_start();
    query.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next().filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::SimConfig;

    /// A caller with a token issued now.
    fn caller(sim: &Sim) -> super::super::entra::Caller {
        super::super::entra::Caller { app_id: "app".into(), roles: Default::default(), permissions: sim.permissions() }
    }

    async fn body(r: Response) -> (StatusCode, Value) {
        let status = r.status();
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    #[tokio::test]
    async fn rules_are_listed_and_a_put_needs_contributor_and_the_current_etag() {
        let sim = Sim::new(SimConfig::demo());
        let base = sim.sentinel_base();
        let list = format!("{base}/alertRules");
        let (status, listed) = body(handle(&sim, &caller(&sim), &list, &Method::GET, b"").unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        let rule = listed["value"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["properties"]["productFilter"] == "Microsoft Defender Advanced Threat Protection")
            .unwrap()
            .clone();
        let path = format!("{base}/alertRules/{}", rule["name"].as_str().unwrap());
        let mut put = json!({"kind": rule["kind"], "etag": rule["etag"], "properties": rule["properties"]});
        put["properties"]["enabled"] = json!(false);
        let bytes = serde_json::to_vec(&put).unwrap();

        let (status, _) = body(handle(&sim, &caller(&sim), &path, &Method::PUT, &bytes).unwrap()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "Responder may not edit analytics rules");
        sim.permissions.lock().unwrap().workspace_roles.insert(SENTINEL_CONTRIBUTOR.into());

        let mut stale = put.clone();
        stale["etag"] = json!("\"00000000-0000-0000-0000-000000000000\"");
        let (status, _) =
            body(handle(&sim, &caller(&sim), &path, &Method::PUT, &serde_json::to_vec(&stale).unwrap()).unwrap()).await;
        assert_eq!(status, StatusCode::CONFLICT);

        let (status, written) = body(handle(&sim, &caller(&sim), &path, &Method::PUT, &bytes).unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(written["properties"]["enabled"], false);
        assert_ne!(written["etag"], rule["etag"], "every write gets a new etag");
        let (status, _) = body(handle(&sim, &caller(&sim), &path, &Method::PUT, &bytes).unwrap()).await;
        assert_eq!(status, StatusCode::CONFLICT, "the etag read before the write is stale now");

        let mut bad = put.clone();
        bad["etag"] = written["etag"].clone();
        bad["properties"]["productFilter"] = json!("Microsoft 365 Defender");
        let (status, err) =
            body(handle(&sim, &caller(&sim), &path, &Method::PUT, &serde_json::to_vec(&bad).unwrap()).unwrap()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{err}");

        let (status, connectors) =
            body(handle(&sim, &caller(&sim), &format!("{base}/dataConnectors"), &Method::GET, b"").unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(connectors["value"][0]["kind"], "MicrosoftThreatProtection");
        assert!(
            handle(&sim, &caller(&sim), &format!("{base}/incidents"), &Method::GET, b"").is_none(),
            "incidents are not ours"
        );
    }

    #[tokio::test]
    async fn an_nrt_rule_needs_its_required_properties_and_an_existing_table() {
        let sim = Sim::new(SimConfig::demo());
        sim.permissions.lock().unwrap().workspace_roles.insert(SENTINEL_CONTRIBUTOR.into());
        let path = format!("{}/alertRules/nrt-1", sim.sentinel_base());
        let rule = json!({"kind": "NRT", "properties": {
            "displayName": "x", "enabled": true, "severity": "Medium", "query": "XdrsyncAlerts_CL | where AlertSeverity == 'High'",
            "suppressionEnabled": false, "suppressionDuration": "PT5H"}});
        let put =
            |v: &Value| handle(&sim, &caller(&sim), &path, &Method::PUT, &serde_json::to_vec(v).unwrap()).unwrap();

        let mut no_severity = rule.clone();
        no_severity["properties"].as_object_mut().unwrap().remove("severity");
        let (status, err) = body(put(&no_severity)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(err.to_string().contains("severity"), "{err}");

        sim.rules.lock().unwrap().missing_tables.insert("XdrsyncAlerts_CL".into());
        let (status, err) = body(put(&rule)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(err.to_string().contains("One of the tables does not exist"), "{err}");
        assert!(!sim.rules.lock().unwrap().alert_rules.contains_key("nrt-1"), "nothing stored");

        sim.rules.lock().unwrap().missing_tables.clear();
        let (status, written) = body(put(&rule)).await;
        assert_eq!(status, StatusCode::CREATED, "{written}");
        assert_eq!(written["kind"], "NRT");
        let (status, read) = body(handle(&sim, &caller(&sim), &path, &Method::GET, b"").unwrap()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(read["properties"]["query"], "XdrsyncAlerts_CL | where AlertSeverity == 'High'");
        assert!(sim.world().rule.rules.contains_key("nrt-1"), "the rule engine runs what ARM stored");
    }

    #[tokio::test]
    async fn an_nrt_rule_outside_the_simulated_kql_or_on_a_column_not_returned_is_refused_and_not_run() {
        let sim = Sim::new(SimConfig::demo());
        sim.permissions.lock().unwrap().workspace_roles.insert(SENTINEL_CONTRIBUTOR.into());
        let path = format!("{}/alertRules/nrt-2", sim.sentinel_base());
        let rule = |query: &str| {
            json!({"kind": "NRT", "properties": {
                "displayName": "x", "enabled": true, "severity": "Medium", "query": query,
                "suppressionEnabled": false, "suppressionDuration": "PT5H",
                "customDetails": {"DefenderAlertId": "SystemAlertId"}}})
        };
        let put =
            |v: &Value| handle(&sim, &caller(&sim), &path, &Method::PUT, &serde_json::to_vec(v).unwrap()).unwrap();
        for (query, named) in [
            ("XdrsyncAlerts_CL | extend Y = 1", "`extend`"),
            ("XdrsyncAlerts_CL | project DefenderIncidentId", "'SystemAlertId'"),
        ] {
            let (status, err) = body(put(&rule(query))).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{query}");
            assert!(err["error"]["message"].as_str().unwrap().contains(named), "{query}: {err}");
        }
        assert!(!sim.rules.lock().unwrap().alert_rules.contains_key("nrt-2"), "nothing stored");
        assert!(!sim.world().rule.rules.contains_key("nrt-2"), "nothing runs");
        let (status, _) = body(put(&rule("XdrsyncAlerts_CL | project SystemAlertId"))).await;
        assert_eq!(status, StatusCode::CREATED);
        assert!(sim.world().rule.rules.contains_key("nrt-2"));
    }
}
