//! Simulated Log Analytics query API: `POST /v1/workspaces/{workspaceId}/query` with
//! `{"query", "timespan"}`, answered `{"tables": [{"name", "columns", "rows"}]}` (documented
//! shape). It runs only the KQL xdrsync sends (SecurityAlert by the rule's custom details); any
//! other query is a 400 `BadArgumentError`, so a change to the query shows up as a failing test.
//! Token audience `https://api.loganalytics.io`; reading needs a role on the workspace that
//! allows queries (Log Analytics Reader, or a Microsoft Sentinel role).
//!
//! The workspace is addressed by its GUID (“Query - Execute”) or by its resource id (“Query -
//! Execute With Resource Id”: `POST /v1/{resourceId}/query`, documented). Assumed: the
//! workspace's own resource id queries the whole workspace, with the same role; a resource id
//! the service does not know is a 404 `ResourceNotFoundError` in the same error shape.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use super::alert_rule::run;
use super::entra::authorize;
use super::rule_state::SecurityAlertRecord;
use super::world::Audience;
use super::Sim;

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/v1/workspaces/{workspace}/query", post(query))
        .route("/v1/subscriptions/{*rest}", post(query_resource))
}

fn error(status: StatusCode, code: &str, message: String) -> Response {
    (status, Json(json!({"error": {"code": code, "message": message}}))).into_response()
}

/// What the query asks, read from xdrsync's KQL.
struct Ask {
    ingested_after: Option<OffsetDateTime>,
    generated_days: Option<i64>,
    incidents: Option<Vec<String>>,
    alerts: Option<Vec<String>>,
}

fn between<'a>(q: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let at = q.find(start)? + start.len();
    let len = q[at..].find(end)?;
    Some(&q[at..at + len])
}

fn kql_list(s: &str) -> Vec<String> {
    serde_json::from_str::<Vec<String>>(&format!("[{s}]")).unwrap_or_default()
}

fn parse(q: &str) -> Result<Ask, String> {
    let q = q.trim();
    let required = [
        "SecurityAlert\n",
        "[\"Custom Details\"]",
        "| project SystemAlertId, TimeGenerated, IngestedAt = ingestion_time(), DefenderTenantId, DefenderIncidentId, DefenderAlertId",
    ];
    if let Some(missing) = required.iter().find(|r| !q.contains(**r)) {
        return Err(format!("the simulator does not run this query (expected `{}`)", missing.trim()));
    }
    let ingested_after = match between(q, "ingestion_time() > datetime(", ")") {
        Some(t) => Some(super::timefmt::parse(t).map_err(|e| format!("datetime({t}): {e}"))?),
        None => None,
    };
    let generated_days = between(q, "TimeGenerated > ago(", "d)").and_then(|d| d.parse().ok());
    let incidents = between(q, "DefenderIncidentId in (", ")").map(kql_list);
    let alerts = between(q, "DefenderAlertId in (", ")").map(kql_list);
    if ingested_after.is_none() && incidents.is_none() {
        return Err("the simulator runs SecurityAlert queries by ingestion time or by Defender ids only".into());
    }
    Ok(Ask { ingested_after, generated_days, incidents, alerts })
}

fn matches(a: &SecurityAlertRecord, ask: &Ask, now: OffsetDateTime, timespan_days: Option<i64>) -> bool {
    let (Some(incident), Some(alert)) = (a.custom_detail("DefenderIncidentId"), a.custom_detail("DefenderAlertId"))
    else {
        return false;
    };
    ask.ingested_after.is_none_or(|t| a.ingested > t)
        && ask.generated_days.is_none_or(|d| a.time_generated > now - Duration::days(d))
        && timespan_days.is_none_or(|d| a.time_generated > now - Duration::days(d))
        && (ask.incidents.is_none() && ask.alerts.is_none()
            || ask.incidents.as_ref().is_some_and(|v| v.contains(&incident))
            || ask.alerts.as_ref().is_some_and(|v| v.contains(&alert)))
}

async fn query(
    State(sim): State<Arc<Sim>>,
    Path(workspace): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let unknown = (!workspace.eq_ignore_ascii_case(&sim.config.workspace.customer_id()))
        .then(|| error(StatusCode::NOT_FOUND, "WorkspaceNotFoundError", format!("Workspace {workspace} not found")));
    answer(&sim, &headers, &body, unknown)
}

/// `POST /v1/subscriptions/…/query`: the workspace by its resource id.
async fn query_resource(
    State(sim): State<Arc<Sim>>,
    Path(rest): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    sim.stats.bump("logquery.by_resource_id");
    let resource = rest.strip_suffix("/query").map(|r| format!("/subscriptions/{r}"));
    let unknown = match resource {
        None => Some(error(
            StatusCode::NOT_FOUND,
            "PathNotFoundError",
            format!("The requested path /v1/subscriptions/{rest} does not exist"),
        )),
        Some(r) if !r.eq_ignore_ascii_case(&sim.config.workspace.resource_id()) => {
            Some(error(StatusCode::NOT_FOUND, "ResourceNotFoundError", format!("The resource {r} was not found")))
        }
        Some(_) => None,
    };
    answer(&sim, &headers, &body, unknown)
}

/// The answer of the workspace of `sim`: the caller first (token and audience), then
/// `unknown` (the 404 of a workspace this is not), then the role and the query.
fn answer(sim: &Sim, headers: &HeaderMap, body: &[u8], unknown: Option<Response>) -> Response {
    let caller = match authorize(sim, headers, Audience::LogAnalytics, error) {
        Ok(c) => c,
        Err(r) => return r,
    };
    sim.stats.bump("logquery.post");
    if let Some(r) = unknown {
        return r;
    }
    let roles = caller.permissions.workspace_roles;
    let may_read = ["Log Analytics Reader", "Log Analytics Contributor"].iter().any(|r| roles.contains(*r))
        || roles.iter().any(|r| r.starts_with("Microsoft Sentinel"));
    if !may_read {
        sim.stats.bump("logquery.forbidden");
        return error(
            StatusCode::FORBIDDEN,
            "InsufficientAccessError",
            "The provided credentials have insufficient access to perform the requested operation".into(),
        );
    }
    let Ok(req) = serde_json::from_slice::<Value>(body) else {
        return error(StatusCode::BAD_REQUEST, "BadArgumentError", "the body is not JSON".into());
    };
    let Some(text) = req.get("query").and_then(Value::as_str) else {
        return error(StatusCode::BAD_REQUEST, "BadArgumentError", "query is required".into());
    };
    let ask = match parse(text) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::BAD_REQUEST, "BadArgumentError", e),
    };
    let timespan_days = req
        .get("timespan")
        .and_then(Value::as_str)
        .and_then(|t| t.strip_prefix('P')?.strip_suffix('D')?.parse::<i64>().ok());
    let mut world = sim.world();
    run(&mut world);
    let now = world.now();
    let rows: Vec<Value> = world
        .rule
        .alerts
        .iter()
        .filter(|a| matches(a, &ask, now, timespan_days))
        .map(|a| {
            json!([
                a.system_alert_id,
                super::timefmt::format(a.time_generated),
                super::timefmt::format(a.ingested),
                a.custom_detail("DefenderTenantId"),
                a.custom_detail("DefenderIncidentId"),
                a.custom_detail("DefenderAlertId")
            ])
        })
        .collect();
    let columns: Vec<Value> = [
        ("SystemAlertId", "string"),
        ("TimeGenerated", "datetime"),
        ("IngestedAt", "datetime"),
        ("DefenderTenantId", "string"),
        ("DefenderIncidentId", "string"),
        ("DefenderAlertId", "string"),
    ]
    .iter()
    .map(|(n, t)| json!({"name": n, "type": t}))
    .collect();
    Json(json!({"tables": [{"name": "PrimaryResult", "columns": columns, "rows": rows}]})).into_response()
}
