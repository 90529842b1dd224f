//! The Log Analytics query API (ARCHITECTURE.md: “Native alerts”): KQL over the Sentinel
//! workspace, used to find the SecurityAlerts the analytics rule made from alert rows.
//!
//! Documented (REST reference “Query - Execute”): `POST {endpoint}/v1/workspaces/{workspaceId}/query`
//! with `{"query", "timespan"}`, `workspaceId` the workspace's GUID (“Workspace ID”), answered
//! `{"tables": [{"name", "columns": [{"name", "type"}], "rows": [[…]]}]}`; token audience
//! `https://api.loganalytics.io` (`…/.default`); reading needs
//! `Microsoft.OperationalInsights/workspaces/query/*/read` (Log Analytics Reader). Assumed: a
//! partial answer (a query over a service limit) comes as 200 with an `error` member; it is
//! read as a failure, so the cursor does not move past rows it did not see.
//!
//! A workspace of `XDRSYNC_TENANT_WORKSPACES` is addressed by its resource id instead of a GUID
//! (no setting holds its Workspace ID). Documented (REST reference “Query - Execute With
//! Resource Id”): `POST {endpoint}/v1/{resourceId}/query`, the same body, answer and token
//! audience, the resource id in the form `/subscriptions/…/providers/…/…`. Assumed: a
//! workspace's own resource id queries it in workspace context (every table, every row), and
//! needs the same read permission on it as the GUID path (Log Analytics Reader).

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::Value;

use super::http::{Call, ServiceClient};
use crate::domain::alert_links::QueryTable;
use crate::domain::workspace::Workspace;
use crate::error::PortError;
use crate::ports::LogQuery;

pub struct LogAnalyticsQuery {
    client: ServiceClient,
    /// `{endpoint}/v1/workspaces/{workspaceId}/query` or `{endpoint}/v1/{resourceId}/query`
    url: String,
}

impl LogAnalyticsQuery {
    /// The workspace by its GUID (`XDRSYNC_WORKSPACE_ID`).
    pub fn new(client: ServiceClient, endpoint: &url::Url, workspace_id: &str) -> Self {
        let url = format!("{}/v1/workspaces/{workspace_id}/query", endpoint.as_str().trim_end_matches('/'));
        Self { client, url }
    }

    /// The workspace by its resource id (a routed workspace of `XDRSYNC_TENANT_WORKSPACES`).
    pub fn for_resource(client: ServiceClient, endpoint: &url::Url, workspace: &Workspace) -> Self {
        let url = format!("{}/v1{}/query", endpoint.as_str().trim_end_matches('/'), workspace.resource_id());
        Self { client, url }
    }
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    tables: Vec<Table>,
    #[serde(default)]
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Table {
    #[serde(default)]
    columns: Vec<Column>,
    #[serde(default)]
    rows: Vec<Vec<Value>>,
}

#[derive(Deserialize)]
struct Column {
    name: String,
}

#[async_trait]
impl LogQuery for LogAnalyticsQuery {
    #[tracing::instrument(level = "debug", skip_all, fields(timespan = %timespan))]
    async fn query(&self, query: &str, timespan: &str) -> Result<QueryTable, PortError> {
        let body = serde_json::json!({"query": query, "timespan": timespan});
        let answer: Answer = self
            .client
            .send(&Call::new(Method::POST, self.url.clone()).json(&body))
            .await?
            .json(self.client.service)?;
        if let Some(e) = answer.error {
            let message = e.get("message").and_then(Value::as_str).unwrap_or("partial result").to_string();
            return Err(PortError::Unavailable { service: self.client.service, message });
        }
        let table = answer.tables.into_iter().next().unwrap_or(Table { columns: vec![], rows: vec![] });
        Ok(QueryTable { columns: table.columns.into_iter().map(|c| c.name).collect(), rows: table.rows })
    }
}
