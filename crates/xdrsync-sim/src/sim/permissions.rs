//! The simulated tenant's permission model, and the 403s the real services answer without them.
//!
//! - Graph: application roles travel in the token (`roles` claim), so a change applies to tokens
//!   issued afterwards; the control API revokes issued Graph tokens when the Graph roles change,
//!   which makes a client fetch a new one (real tokens would keep their roles until they expire).
//!   Roles per operation are the documented least-privileged application permissions:
//!   incidents read `SecurityIncident.Read.All` (or `.ReadWrite.All`), incident PATCH and comment
//!   POST `SecurityIncident.ReadWrite.All`, `GET /users/{id}` `User.Read.All` (or
//!   `User.ReadWrite.All`, `Directory.Read.All`, `Directory.ReadWrite.All`). alerts_v2 reads take
//!   `SecurityAlert.*` or `SecurityIncident.*` (the service's own 403 text lists all four).
//!   403 bodies: `{"error":{"code":"Forbidden","message":"Missing application roles. API required
//!   roles: …, application roles: ….","innerError":{…}}}` for security APIs (seen in real answers,
//!   wazuh/wazuh-documentation#7300) and `Authorization_RequestDenied` / "Insufficient privileges
//!   to complete the operation." for directory reads.
//! - ARM: Azure RBAC is evaluated per request on the workspace scope. `Microsoft Sentinel
//!   Reader` reads; `Microsoft Sentinel Responder` also updates incidents and adds comments
//!   (Learn, "Supported triggers and actions in Microsoft Sentinel playbooks": update incident
//!   and add a comment need Responder/Contributor); deletes need `Microsoft Sentinel Contributor`
//!   (assumed from the Responder role's purpose). 403 body: `AuthorizationFailed`, "The client
//!   '…' with object id '…' does not have authorization to perform action '…' over scope '…' or
//!   the scope is invalid. If access was recently granted, please refresh your credentials."
//! - Tokens keep the grants of their issue time (`IssuedToken::permissions`): a grant reaches a
//!   client once it fetches a new token.
//! - `GET {scope}/providers/Microsoft.Authorization/permissions?api-version=2022-04-01` answers the
//!   caller's permissions at the workspace or the DCR, one entry per role it holds there, from
//!   the built-in role definitions below (Learn, "Azure built-in roles": the Sentinel roles,
//!   Monitoring Metrics Publisher, Log Analytics Reader, Contributor, Owner; abridged to the
//!   operations that matter here, wildcards as published).
//! - Logs Ingestion: `Monitoring Metrics Publisher` on the DCR, evaluated per request; the 403 body
//!   is the one the Azure Monitor Ingestion SDKs' troubleshooting guides quote
//!   (`OperationFailed`, "The authentication token provided does not have access to ingest data
//!   for the data collection rule with immutable Id '…' …").

use std::collections::BTreeSet;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::faults::{arm_error, graph_error};

pub const SECURITY_INCIDENT_READ: &str = "SecurityIncident.Read.All";
pub const SECURITY_INCIDENT_READ_WRITE: &str = "SecurityIncident.ReadWrite.All";
pub const SECURITY_ALERT_READ: &str = "SecurityAlert.Read.All";
pub const SECURITY_ALERT_READ_WRITE: &str = "SecurityAlert.ReadWrite.All";
pub const USER_READ_ALL: &str = "User.Read.All";
pub const SENTINEL_READER: &str = "Microsoft Sentinel Reader";
pub const SENTINEL_RESPONDER: &str = "Microsoft Sentinel Responder";
pub const SENTINEL_CONTRIBUTOR: &str = "Microsoft Sentinel Contributor";
pub const MONITORING_METRICS_PUBLISHER: &str = "Monitoring Metrics Publisher";
/// Reads monitoring resources (`*/read`): lets `xdrsync check` find a DCR by its immutable id.
pub const MONITORING_READER: &str = "Monitoring Reader";

/// Roles that let an app read incidents.
pub const GRAPH_INCIDENTS_READ: &[&str] = &[SECURITY_INCIDENT_READ, SECURITY_INCIDENT_READ_WRITE];
/// Roles that let an app update incidents and add comments.
pub const GRAPH_INCIDENTS_WRITE: &[&str] = &[SECURITY_INCIDENT_READ_WRITE];
/// Roles that let an app read alerts_v2.
pub const GRAPH_ALERTS_READ: &[&str] =
    &[SECURITY_ALERT_READ, SECURITY_ALERT_READ_WRITE, SECURITY_INCIDENT_READ, SECURITY_INCIDENT_READ_WRITE];
/// Roles that let an app read a user.
pub const GRAPH_USERS_READ: &[&str] =
    &[USER_READ_ALL, "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"];

/// What the app has been granted. The defaults are what xdrsync needs and no more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Permissions {
    /// Graph application roles (admin-consented), carried in issued tokens.
    pub graph_app_roles: BTreeSet<String>,
    /// Azure role assignments on the Sentinel workspace.
    pub workspace_roles: BTreeSet<String>,
    /// Azure role assignments on the (alerts) data collection rule.
    pub dcr_roles: BTreeSet<String>,
    /// Azure role assignments on each hunting DCR (`SimConfig::hunting_dcrs`), by immutable id
    /// in lower case; a rule absent here has none.
    pub hunting_dcr_roles: std::collections::BTreeMap<String, BTreeSet<String>>,
}

impl Default for Permissions {
    fn default() -> Self {
        Self {
            // ThreatHunting.Read.All: the advanced-hunting export's query source.
            graph_app_roles: [SECURITY_INCIDENT_READ_WRITE, USER_READ_ALL, super::hunting::THREAT_HUNTING_READ]
                .map(String::from)
                .into(),
            workspace_roles: [SENTINEL_RESPONDER.to_string()].into(),
            // What the template assigns on each DCR (infra/ingestion.bicep).
            dcr_roles: [MONITORING_METRICS_PUBLISHER, MONITORING_READER].map(String::from).into(),
            hunting_dcr_roles: Default::default(),
        }
    }
}

/// Which set a role belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleKind {
    Graph,
    Workspace,
    Dcr,
}

impl Permissions {
    /// Every role name is distinct across the three sets, so a name says where it goes.
    pub fn kind_of(role: &str) -> RoleKind {
        if role == MONITORING_METRICS_PUBLISHER || role == MONITORING_READER {
            RoleKind::Dcr
        } else if role.starts_with("Microsoft Sentinel ") || role == "Contributor" || role == "Owner" {
            RoleKind::Workspace
        } else {
            RoleKind::Graph
        }
    }

    fn set_mut(&mut self, kind: RoleKind) -> &mut BTreeSet<String> {
        match kind {
            RoleKind::Graph => &mut self.graph_app_roles,
            RoleKind::Workspace => &mut self.workspace_roles,
            RoleKind::Dcr => &mut self.dcr_roles,
        }
    }

    pub fn grant(&mut self, role: &str) -> RoleKind {
        let kind = Self::kind_of(role);
        self.set_mut(kind).insert(role.to_string());
        kind
    }

    /// What a token issued with `self` may do now: its grants as issued, less any withheld since.
    /// A grant reaches only tokens issued after it (as with Entra); a withheld role applies at
    /// once (Entra would honour the old token until it expires: tests of refusals need not wait).
    pub fn still_held(&self, now: &Permissions) -> Permissions {
        let both = |a: &BTreeSet<String>, b: &BTreeSet<String>| a.intersection(b).cloned().collect();
        Permissions {
            graph_app_roles: both(&self.graph_app_roles, &now.graph_app_roles),
            workspace_roles: both(&self.workspace_roles, &now.workspace_roles),
            dcr_roles: both(&self.dcr_roles, &now.dcr_roles),
            hunting_dcr_roles: self
                .hunting_dcr_roles
                .iter()
                .map(|(dcr, roles)| {
                    (dcr.clone(), both(roles, now.hunting_dcr_roles.get(dcr).unwrap_or(&BTreeSet::new())))
                })
                .collect(),
        }
    }

    /// Grants (or withholds) `role` on the hunting DCR `dcr` (immutable id).
    pub fn set_on_dcr(&mut self, dcr: &str, role: &str, held: bool) {
        let roles = self.hunting_dcr_roles.entry(dcr.to_ascii_lowercase()).or_default();
        if held {
            roles.insert(role.to_string());
        } else {
            roles.remove(role);
        }
    }

    pub fn withhold(&mut self, role: &str) -> RoleKind {
        let kind = Self::kind_of(role);
        self.set_mut(kind).remove(role);
        kind
    }
}

/// ARM actions the simulated operations need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArmAccess {
    Read,
    Write,
    Delete,
}

impl ArmAccess {
    /// Whether the workspace role assignments allow this access.
    pub fn allowed_by(self, roles: &BTreeSet<String>) -> bool {
        let has = |r: &str| roles.contains(r);
        let owner = has(SENTINEL_CONTRIBUTOR) || has("Contributor") || has("Owner");
        match self {
            ArmAccess::Read => owner || has(SENTINEL_RESPONDER) || has(SENTINEL_READER),
            ArmAccess::Write => owner || has(SENTINEL_RESPONDER),
            ArmAccess::Delete => owner,
        }
    }
}

/// A built-in role's permissions (abridged): `(actions, notActions, dataActions)`.
fn role_definition(role: &str) -> Option<(&'static [&'static str], &'static [&'static str], &'static [&'static str])> {
    Some(match role {
        SENTINEL_READER => (
            &[
                "Microsoft.SecurityInsights/*/read",
                "Microsoft.OperationalInsights/workspaces/*/read",
                "Microsoft.Authorization/*/read",
            ],
            &[],
            &[],
        ),
        SENTINEL_RESPONDER => (
            &[
                "Microsoft.SecurityInsights/*/read",
                "Microsoft.SecurityInsights/cases/*",
                "Microsoft.SecurityInsights/incidents/*",
                "Microsoft.OperationalInsights/workspaces/*/read",
                "Microsoft.Authorization/*/read",
            ],
            &["Microsoft.SecurityInsights/cases/*/Delete", "Microsoft.SecurityInsights/incidents/*/Delete"],
            &[],
        ),
        SENTINEL_CONTRIBUTOR => (
            &[
                "Microsoft.SecurityInsights/*",
                "Microsoft.OperationalInsights/workspaces/*/read",
                "Microsoft.Authorization/*/read",
            ],
            &[],
            &[],
        ),
        "Log Analytics Reader" => (
            &[
                "*/read",
                "Microsoft.OperationalInsights/workspaces/analytics/query/action",
                "Microsoft.OperationalInsights/workspaces/search/action",
            ],
            &["Microsoft.OperationalInsights/workspaces/sharedKeys/read"],
            &[],
        ),
        MONITORING_READER => {
            (&["*/read", "Microsoft.OperationalInsights/workspaces/search/action", "Microsoft.Support/*"], &[], &[])
        }
        MONITORING_METRICS_PUBLISHER => (
            &[
                "Microsoft.Insights/Register/Action",
                "Microsoft.Support/*",
                "Microsoft.Resources/subscriptions/resourceGroups/read",
            ],
            &[],
            &["Microsoft.Insights/Metrics/Write", "Microsoft.Insights/Telemetry/Write"],
        ),
        "Contributor" => (
            &["*"],
            &[
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
            ],
            &[],
        ),
        "Owner" => (&["*"], &[], &[]),
        _ => return None,
    })
}

/// A built-in role's `(actions, notActions)`.
pub fn role_actions(role: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    role_definition(role).map(|(a, n, _)| (a, n))
}

/// The permissions API's answer for the roles held at a scope.
pub fn permissions_answer(roles: &BTreeSet<String>) -> Response {
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let value: Vec<serde_json::Value> = roles
        .iter()
        .filter_map(|r| role_definition(r))
        .map(|(actions, not_actions, data_actions)| {
            json!({"actions": strings(actions), "notActions": strings(not_actions), "dataActions": strings(data_actions), "notDataActions": []})
        })
        .collect();
    axum::Json(json!({ "value": value })).into_response()
}

/// The (alerts) data collection rule's ARM resource id in the simulated tenant: named after its
/// workspace, so two workspaces of one resource group have two rules.
pub fn dcr_resource_id(config: &super::SimConfig) -> String {
    let ws = &config.workspace;
    format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Insights/dataCollectionRules/{}-xdrsync",
        ws.subscription_id, ws.resource_group, ws.name
    )
}

/// Graph's 403 for a security API called without one of `required`.
pub fn graph_missing_roles(required: &[&str], held: &BTreeSet<String>) -> Response {
    let held: Vec<&str> = held.iter().map(String::as_str).collect();
    graph_error(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!(
            "Missing application roles. API required roles: {}, application roles: {}.",
            required.join(","),
            held.join(",")
        ),
    )
}

/// Graph's 403 for a directory read without the permission.
pub fn graph_directory_denied() -> Response {
    graph_error(
        StatusCode::FORBIDDEN,
        "Authorization_RequestDenied",
        "Insufficient privileges to complete the operation.",
    )
}

/// ARM's 403 (`AuthorizationFailed`).
pub fn arm_authorization_failed(client: &str, object_id: &str, action: &str, scope: &str) -> Response {
    arm_error(
        StatusCode::FORBIDDEN,
        "AuthorizationFailed",
        format!(
            "The client '{client}' with object id '{object_id}' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials."
        ),
    )
}

/// Logs Ingestion's 403.
pub fn logs_forbidden(dcr: &str, dcr_arm_id: &str, tenant: &str, object_id: &str) -> Response {
    let message = format!(
        "The authentication token provided does not have access to ingest data for the data collection rule with immutable Id '{dcr}' PipelineAccessResult: AccessGranted: False, IsRbacPresent: False, IsDcrDceBindingValid: , DcrArmId: {dcr_arm_id}, Message: Required authorization action was not found for tenantId {tenant} objectId {object_id} on resourceId {dcr_arm_id} ConfigurationId: {dcr}.."
    );
    (StatusCode::FORBIDDEN, axum::Json(json!({"error": {"code": "OperationFailed", "message": message}})))
        .into_response()
}

/// The service principal's object id for an app id (deterministic; real ones differ from the
/// app id).
pub fn object_id_of(app_id: &str) -> String {
    uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, app_id.to_ascii_lowercase().as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_find_their_set() {
        let mut p = Permissions::default();
        assert_eq!(p.withhold(USER_READ_ALL), RoleKind::Graph);
        assert_eq!(p.withhold(SENTINEL_RESPONDER), RoleKind::Workspace);
        assert_eq!(p.withhold(MONITORING_METRICS_PUBLISHER), RoleKind::Dcr);
        // SecurityIncident.ReadWrite.All and ThreatHunting.Read.All remain.
        assert_eq!(p.graph_app_roles.len(), 2);
        assert_eq!(p.withhold(MONITORING_READER), RoleKind::Dcr);
        assert!(p.workspace_roles.is_empty() && p.dcr_roles.is_empty());
        p.grant(SENTINEL_READER);
        assert!(ArmAccess::Read.allowed_by(&p.workspace_roles));
        assert!(!ArmAccess::Write.allowed_by(&p.workspace_roles));
        assert!(ArmAccess::Write.allowed_by(&Permissions::default().workspace_roles));
        assert!(!ArmAccess::Delete.allowed_by(&Permissions::default().workspace_roles));
    }

    #[test]
    fn a_token_keeps_its_grants_less_what_was_withheld_since() {
        let issued = Permissions::default();
        let mut now = issued.clone();
        now.grant(SENTINEL_CONTRIBUTOR);
        now.withhold(USER_READ_ALL);
        let held = issued.still_held(&now);
        assert!(!held.workspace_roles.contains(SENTINEL_CONTRIBUTOR), "a later grant needs a new token");
        assert!(!held.graph_app_roles.contains(USER_READ_ALL), "a withheld role applies at once");
        assert!(held.workspace_roles.contains(SENTINEL_RESPONDER));
    }
}
