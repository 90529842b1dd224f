//! The simulated workspace's data collection rules as ARM and Logs Ingestion see them: the alerts
//! DCR (`SimConfig::dcr_immutable_id`) and the per-table hunting DCRs (`SimConfig::hunting_dcrs`),
//! each with its own streams and its own role assignments (`Permissions::dcr_roles` and
//! `Permissions::hunting_dcr_roles`).
//!
//! - `GET /subscriptions/{s}[/resourceGroups/{rg}]/providers/Microsoft.Insights/dataCollectionRules
//!   ?api-version=2022-06-01` (azure-rest-api-specs, `DataCollectionRules_ListBySubscription` /
//!   `_ListByResourceGroup`): `{"value":[{"id","name","type","location","properties":
//!   {"immutableId","streamDeclarations",…}}],"nextLink"?}`. Like every ARM list it holds only
//!   the resources the caller may read (`Microsoft.Insights/dataCollectionRules/read`): a rule
//!   where the caller holds only Monitoring Metrics Publisher is not listed (that role has no
//!   read action). One page here; the real list may page (`nextLink`).
//! - `GET {dcr id}/providers/Microsoft.Authorization/permissions`: the caller's roles on that rule.
//! - Logs Ingestion: Monitoring Metrics Publisher on the rule named by the URL, and a stream that
//!   rule declares.

use std::collections::BTreeSet;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::faults::arm_error;
use super::permissions::{dcr_resource_id, Permissions};
use super::{Sim, SimConfig};

/// A hunting DCR of the workspace's resource group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimDcr {
    pub immutable_id: String,
    /// Its ARM name (the id is the workspace's resource group + this name).
    pub name: String,
    /// The streams it declares.
    pub streams: Vec<String>,
}

/// One rule as seen from outside: ARM id, immutable id, streams, and the caller's roles on it.
pub struct Rule<'a> {
    pub arm_id: String,
    pub immutable_id: &'a str,
    pub streams: &'a [String],
}

/// Every rule of the simulated workspace.
pub fn rules(config: &SimConfig) -> Vec<Rule<'_>> {
    let ws = &config.workspace;
    let mut v = vec![Rule {
        arm_id: dcr_resource_id(config),
        immutable_id: &config.dcr_immutable_id,
        streams: &config.streams,
    }];
    v.extend(config.hunting_dcrs.iter().map(|d| Rule {
        arm_id: format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Insights/dataCollectionRules/{}",
            ws.subscription_id, ws.resource_group, d.name
        ),
        immutable_id: &d.immutable_id,
        streams: &d.streams,
    }));
    v
}

/// The roles `p` holds on the rule with `immutable_id` (`None`: no such rule here).
pub fn roles_on<'p>(config: &SimConfig, p: &'p Permissions, immutable_id: &str) -> Option<&'p BTreeSet<String>> {
    static NONE: std::sync::OnceLock<BTreeSet<String>> = std::sync::OnceLock::new();
    if immutable_id.eq_ignore_ascii_case(&config.dcr_immutable_id) {
        return Some(&p.dcr_roles);
    }
    config.hunting_dcrs.iter().any(|d| d.immutable_id.eq_ignore_ascii_case(immutable_id)).then(|| {
        p.hunting_dcr_roles.get(&immutable_id.to_ascii_lowercase()).unwrap_or_else(|| NONE.get_or_init(BTreeSet::new))
    })
}

/// The roles `p` holds at ARM `scope` (lower case), if it is one of the rules.
pub fn roles_at_scope<'p>(config: &SimConfig, p: &'p Permissions, scope: &str) -> Option<&'p BTreeSet<String>> {
    let rule = rules(config).into_iter().find(|r| r.arm_id.eq_ignore_ascii_case(scope))?;
    roles_on(config, p, rule.immutable_id)
}

/// Whether `roles` let the caller read a rule (ARM lists only what the caller may read).
fn may_read(roles: &BTreeSet<String>) -> bool {
    roles.iter().any(|r| {
        super::permissions::role_actions(r).is_some_and(|(actions, not_actions)| {
            let op = "Microsoft.Insights/dataCollectionRules/read";
            let m = |v: &[&str]| v.iter().any(|a| glob(a, op));
            m(actions) && !m(not_actions)
        })
    })
}

/// Azure RBAC's operation match: case-insensitive, `*` any run of characters (written here from
/// Learn's "Understand Azure role definitions", not shared with the product).
fn glob(pattern: &str, op: &str) -> bool {
    let (p, o) = (pattern.to_ascii_lowercase(), op.to_ascii_lowercase());
    let mut pieces = p.split('*');
    let first = pieces.next().unwrap_or_default();
    let Some(mut rest) = o.strip_prefix(first) else { return false };
    let pieces: Vec<&str> = pieces.collect();
    let Some((last, middle)) = pieces.split_last() else { return rest.is_empty() };
    for piece in middle {
        match rest.find(piece) {
            Some(i) => rest = &rest[i + piece.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

/// The list answer for `path` (`/subscriptions/{s}[/resourceGroups/{rg}]/providers/…`).
pub fn list(sim: &Sim, caller: &Permissions, path: &str, api_version: Option<&str>) -> Response {
    if api_version != Some("2022-06-01") {
        return arm_error(StatusCode::BAD_REQUEST, "InvalidApiVersionParameter", "use api-version 2022-06-01");
    }
    let c = &sim.config;
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let in_scope = match segments.as_slice() {
        ["subscriptions", s, "providers", ..] => s.eq_ignore_ascii_case(&c.workspace.subscription_id),
        ["subscriptions", s, "resourceGroups", rg, "providers", ..] => {
            s.eq_ignore_ascii_case(&c.workspace.subscription_id) && rg.eq_ignore_ascii_case(&c.workspace.resource_group)
        }
        _ => false,
    };
    let value: Vec<serde_json::Value> = if in_scope {
        rules(c)
            .into_iter()
            .filter(|r| roles_on(c, caller, r.immutable_id).is_some_and(may_read))
            .map(|r| {
                let declarations: serde_json::Map<String, serde_json::Value> =
                    r.streams.iter().map(|s| (s.clone(), json!({"columns": []}))).collect();
                json!({
                    "id": r.arm_id,
                    "name": r.arm_id.rsplit('/').next(),
                    "type": "Microsoft.Insights/dataCollectionRules",
                    "location": "westeurope",
                    "properties": {"immutableId": r.immutable_id, "streamDeclarations": declarations, "provisioningState": "Succeeded"},
                })
            })
            .collect()
    } else {
        Vec::new()
    };
    axum::Json(json!({ "value": value })).into_response()
}

impl SimConfig {
    /// Adds a hunting DCR `immutable_id` (named `hunting-{n}`) declaring only `stream`, with the
    /// roles the template assigns on it (Monitoring Metrics Publisher and Monitoring Reader).
    pub fn with_hunting_dcr(mut self, stream: &str, immutable_id: &str) -> Self {
        let name = format!("hunting-{}", self.hunting_dcrs.len() + 1);
        self.hunting_dcrs.push(SimDcr { immutable_id: immutable_id.into(), name, streams: vec![stream.into()] });
        for role in [super::permissions::MONITORING_METRICS_PUBLISHER, super::permissions::MONITORING_READER] {
            self.permissions.set_on_dcr(immutable_id, role, true);
        }
        self
    }
}

/// Logs Ingestion's checks of the rule in the URL: the caller's Monitoring Metrics Publisher on
/// it (403 with the service's body), then that it exists (404) and declares `stream` (400).
pub fn ingestion_gate(sim: &Sim, caller: &super::entra::Caller, dcr: &str, stream: &str) -> Result<(), Response> {
    let c = &sim.config;
    let rule = rules(c).into_iter().find(|r| r.immutable_id.eq_ignore_ascii_case(dcr));
    if let Some(r) = &rule {
        let publisher = roles_on(c, &caller.permissions, r.immutable_id)
            .is_some_and(|roles| roles.contains(super::permissions::MONITORING_METRICS_PUBLISHER));
        if !publisher {
            sim.stats.bump("logs.forbidden");
            let oid = super::permissions::object_id_of(&caller.app_id);
            return Err(super::permissions::logs_forbidden(r.immutable_id, &r.arm_id, &c.tenant_id, &oid));
        }
    }
    let Some(rule) = rule else {
        return Err(arm_error(
            StatusCode::NOT_FOUND,
            "DcrNotFound",
            format!("Data collection rule '{dcr}' was not found"),
        ));
    };
    if !rule.streams.iter().any(|s| s == stream) {
        return Err(arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidStream",
            format!("Stream '{stream}' is not declared in the data collection rule"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn glob_matches_like_rbac() {
        assert!(super::glob("*/read", "Microsoft.Insights/dataCollectionRules/read"));
        assert!(super::glob("*", "Microsoft.Insights/dataCollectionRules/read"));
        assert!(!super::glob("Microsoft.Support/*", "Microsoft.Insights/dataCollectionRules/read"));
        assert!(!super::glob("Microsoft.Insights/Register/Action", "Microsoft.Insights/dataCollectionRules/read"));
        assert!(super::glob("microsoft.insights/*/read", "Microsoft.Insights/dataCollectionRules/read"));
    }
}
