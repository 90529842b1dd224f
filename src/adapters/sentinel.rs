//! Sentinel incidents through ARM (Microsoft.SecurityInsights). PUT carries the etag in the
//! body; a stale etag answers 409, which surfaces as [`PortError::Conflict`] for
//! the reconcile to reread both sides and redo (`usecase::sync`).

use async_trait::async_trait;
use reqwest::Method;
use time::OffsetDateTime;
use uuid::Uuid;

use super::http::{read_back, Call, ServiceClient};
use super::odata::{encode_query_value, get_all_pages};
use crate::domain::alert_links::ExistingRelation;
use crate::domain::sentinel::{SentinelComment, SentinelIncident, SentinelIncidentBody};
use crate::domain::time_fmt;
use crate::domain::workspace_rules::{AlertRule, DataConnector};
use crate::error::PortError;
use crate::ports::SentinelApi;

pub const API_VERSION: &str = "2025-09-01";
/// For analytics rules of kind `NRT` (xdrsync's own, infra/alert-rule.json): documented
/// (azure-rest-api-specs, AlertRules.json) in the preview versions only; the stable one lists
/// Fusion, MicrosoftSecurityIncidentCreation and Scheduled. Assumed: listing with the stable
/// version still returns NRT rules (read by kind string, not typed).
pub const NRT_RULES_API_VERSION: &str = "2025-07-01-preview";
/// Page size for incident listings (ARM allows up to 1000).
pub const LIST_PAGE_SIZE: u32 = 500;

pub struct ArmSentinel {
    client: ServiceClient,
    /// `{arm}/subscriptions/…/workspaces/{w}/providers/Microsoft.SecurityInsights`
    base: String,
}

impl ArmSentinel {
    pub fn new(client: ServiceClient, base: String) -> Self {
        Self { client, base }
    }

    fn incident_url(&self, name: &Uuid) -> String {
        format!("{}/incidents/{name}?api-version={API_VERSION}", self.base)
    }
}

#[derive(serde::Deserialize)]
struct RoleAssignment {
    properties: RoleAssignmentProperties,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoleAssignmentProperties {
    role_definition_id: String,
}

/// A relation as ARM lists it (`Relation` in the 2025-09-01 spec); only what we read.
#[derive(serde::Deserialize)]
struct RelationResource {
    name: String,
    #[serde(default)]
    properties: RelationProperties,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RelationProperties {
    #[serde(default)]
    related_resource_id: String,
}

#[async_trait]
impl SentinelApi for ArmSentinel {
    async fn workspace_role_definitions(&self) -> Result<Vec<String>, PortError> {
        // Role assignments at the workspace itself (`atScope()`), api-version 2022-04-01.
        let workspace = self.base.trim_end_matches("/providers/Microsoft.SecurityInsights");
        let url = format!(
            "{workspace}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01&$filter={}",
            encode_query_value("atScope()")
        );
        let assignments: Vec<RoleAssignment> = get_all_pages(&self.client, Call::new(Method::GET, url)).await?;
        Ok(assignments.into_iter().map(|a| a.properties.role_definition_id).collect())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(sentinel.incident = %name))]
    async fn get_incident(&self, name: &Uuid) -> Result<Option<SentinelIncident>, PortError> {
        match self.client.send_optional(&Call::new(Method::GET, self.incident_url(name))).await? {
            Some(a) => Ok(Some(a.json(self.client.service)?)),
            None => Ok(None),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(sentinel.incident = %name))]
    async fn put_incident(&self, name: &Uuid, body: &SentinelIncidentBody) -> Result<SentinelIncident, PortError> {
        let call = Call::new(Method::PUT, self.incident_url(name)).json(body);
        match self.client.send(&call).await?.json_opt(self.client.service)? {
            Some(incident) => Ok(incident),
            // Not what ARM documents, but cheap to survive.
            None => read_back(self.client.service, self.get_incident(name).await?),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(since = %since))]
    async fn list_incidents_modified_since(&self, since: OffsetDateTime) -> Result<Vec<SentinelIncident>, PortError> {
        let filter = format!("properties/lastModifiedTimeUtc ge {}", time_fmt::format(since));
        let url = format!(
            "{}/incidents?api-version={API_VERSION}&$filter={}&$top={LIST_PAGE_SIZE}",
            self.base,
            encode_query_value(&filter),
        );
        get_all_pages(&self.client, Call::new(Method::GET, url)).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(sentinel.incident = %incident))]
    async fn list_comments(&self, incident: &Uuid) -> Result<Vec<SentinelComment>, PortError> {
        let url = format!("{}/incidents/{incident}/comments?api-version={API_VERSION}", self.base);
        get_all_pages(&self.client, Call::new(Method::GET, url)).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(sentinel.incident = %incident, sentinel.comment = %comment))]
    async fn put_comment(&self, incident: &Uuid, comment: &Uuid, message: &str) -> Result<(), PortError> {
        let url = format!("{}/incidents/{incident}/comments/{comment}?api-version={API_VERSION}", self.base);
        let body = serde_json::json!({"properties": {"message": message}});
        self.client.send(&Call::new(Method::PUT, url).json(&body)).await.map(|_| ())
    }

    // Relations (ARCHITECTURE.md: “Native alerts”). Documented: `incidents/{id}/relations/{name}`
    // PUT/GET/DELETE and the list, in the 2025-09-01 spec; the how-to relating alerts uses
    // 2022-07-01-preview with the same body. Assumed: the stable version accepts an alert's
    // `…/entities/{SystemAlertId}` as `relatedResourceId` (its list example returns
    // `relatedResourceKind: "SecurityAlert"`).

    #[tracing::instrument(level = "debug", skip_all, fields(sentinel.incident = %incident))]
    async fn list_relations(&self, incident: &Uuid) -> Result<Vec<ExistingRelation>, PortError> {
        let url = format!("{}/incidents/{incident}/relations?api-version={API_VERSION}", self.base);
        let all: Vec<RelationResource> = get_all_pages(&self.client, Call::new(Method::GET, url)).await?;
        Ok(all
            .into_iter()
            .map(|r| ExistingRelation { name: r.name, related_resource_id: r.properties.related_resource_id })
            .collect())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(sentinel.incident = %incident, sentinel.relation = %relation))]
    async fn put_relation(&self, incident: &Uuid, relation: &Uuid, related_resource_id: &str) -> Result<(), PortError> {
        let url = format!("{}/incidents/{incident}/relations/{relation}?api-version={API_VERSION}", self.base);
        let body = serde_json::json!({"properties": {"relatedResourceId": related_resource_id}});
        // Relations can wait: mirror creation and field sync go first in the write budget.
        self.client.send(&Call::new(Method::PUT, url).json(&body).low_priority()).await.map(|_| ())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(sentinel.incident = %incident, sentinel.relation = %relation))]
    async fn delete_relation(&self, incident: &Uuid, relation: &str) -> Result<(), PortError> {
        let url = format!(
            "{}/incidents/{incident}/relations/{}?api-version={API_VERSION}",
            self.base,
            super::odata::encode_path_segment(relation)
        );
        match self.client.send(&Call::new(Method::DELETE, url).low_priority()).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// `GET …/alertRules` (Alert Rules - List; same api-version as incidents: every stable
    /// SecurityInsights version carries the whole spec), all pages.
    async fn list_alert_rules(&self) -> Result<Vec<AlertRule>, PortError> {
        let url = format!("{}/alertRules?api-version={API_VERSION}", self.base);
        get_all_pages(&self.client, Call::new(Method::GET, url)).await
    }

    /// `GET …/alertRules/{ruleId}` (Alert Rules - Get) with the version that knows every kind.
    async fn get_alert_rule(&self, name: &str) -> Result<Option<AlertRule>, PortError> {
        let url = format!("{}/alertRules/{}?api-version={NRT_RULES_API_VERSION}", self.base, encode_path(name));
        match self.client.send(&Call::new(Method::GET, url)).await {
            Ok(r) => r.json_opt(self.client.service),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `PUT …/alertRules/{ruleId}` with the etag read in the body (409 when stale); an NRT rule
    /// with the preview version that defines its kind.
    async fn put_alert_rule(&self, rule: &AlertRule) -> Result<AlertRule, PortError> {
        let version = if rule.kind.eq_ignore_ascii_case("NRT") { NRT_RULES_API_VERSION } else { API_VERSION };
        let url = format!("{}/alertRules/{}?api-version={version}", self.base, encode_path(&rule.name));
        match self.client.send(&Call::new(Method::PUT, url).json(rule)).await?.json_opt(self.client.service)? {
            Some(r) => Ok(r),
            None => Ok(rule.clone()),
        }
    }

    /// `GET …/dataConnectors` (Data Connectors - List), all pages.
    async fn list_data_connectors(&self) -> Result<Vec<DataConnector>, PortError> {
        let url = format!("{}/dataConnectors?api-version={API_VERSION}", self.base);
        get_all_pages(&self.client, Call::new(Method::GET, url)).await
    }
}

/// A rule id as one path segment (ids are GUIDs or names; anything else is escaped).
fn encode_path(segment: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet =
        &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');
    percent_encoding::utf8_percent_encode(segment, SEGMENT).to_string()
}
