//! Simulated Log Analytics query API: `POST /v1/workspaces/{workspaceId}/query` with
//! `{"query", "timespan"}`, answered `{"tables": [{"name", "columns", "rows"}]}` (documented
//! shape). It evaluates, operator by operator, the SecurityAlert pipelines xdrsync sends (`where`
//! on ingestion time, TimeGenerated or a term of ExtendedProperties, `extend` of the custom details
//! as JSON text, `project`); any other operator is a 400 `BadArgumentError`, so a change to the
//! query shows up as a failing test.
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

/// One step of the SecurityAlert pipelines the simulator runs, each operator as KQL defines it.
#[derive(Debug, PartialEq)]
enum Step {
    /// `where ingestion_time() > datetime(T)`
    IngestedAfter(OffsetDateTime),
    /// `where TimeGenerated > ago(Nd)`
    GeneratedWithinDays(i64),
    /// `where ExtendedProperties has "term"` (KQL `has`: a whole term, any case).
    ExtendedPropertiesHas(String),
    /// `extend Name = tostring(parse_json(tostring(parse_json(ExtendedProperties)["Custom Details"])))`:
    /// the custom details object as JSON text.
    ExtendCustomDetails,
    /// `project` of columns, `Name = ingestion_time()` and extended names.
    Project(Vec<(String, Source)>),
}

#[derive(Debug, PartialEq, Clone)]
enum Source {
    Column(String),
    IngestionTime,
    Extended,
}

const CUSTOM_DETAILS_TEXT: &str = "tostring(parse_json(tostring(parse_json(ExtendedProperties)[\"Custom Details\"])))";

/// The pipeline of `q`, or the part the simulator does not run (a 400, as the service answers a
/// query it cannot compile: a change of the product's query shows up as a failing test).
fn parse(q: &str) -> Result<Vec<Step>, String> {
    let mut parts = q.split('|').map(str::trim);
    if parts.next() != Some("SecurityAlert") {
        return Err("the simulator runs queries over SecurityAlert only".into());
    }
    let mut steps = Vec::new();
    let mut extended: Vec<String> = Vec::new();
    for part in parts {
        let step = if let Some(t) =
            part.strip_prefix("where ingestion_time() > datetime(").and_then(|r| r.strip_suffix(')'))
        {
            Step::IngestedAfter(super::timefmt::parse(t).map_err(|e| format!("datetime({t}): {e}"))?)
        } else if let Some(d) = part.strip_prefix("where TimeGenerated > ago(").and_then(|r| r.strip_suffix("d)")) {
            Step::GeneratedWithinDays(d.parse().map_err(|_| format!("ago({d}d) is not a number of days"))?)
        } else if let Some(term) = part.strip_prefix("where ExtendedProperties has ") {
            Step::ExtendedPropertiesHas(
                serde_json::from_str::<String>(term).map_err(|_| format!("has {term}: not a string literal"))?,
            )
        } else if let Some(rest) = part.strip_prefix("extend ") {
            let (name, expr) = rest.split_once('=').ok_or_else(|| format!("extend without a name: {rest}"))?;
            if expr.trim() != CUSTOM_DETAILS_TEXT {
                return Err(format!("the simulator does not run `extend {rest}`"));
            }
            extended.push(name.trim().to_string());
            Step::ExtendCustomDetails
        } else if let Some(cols) = part.strip_prefix("project ") {
            let mut out = Vec::new();
            for c in cols.split(',').map(str::trim) {
                let item = match c.split_once('=') {
                    Some((n, e)) if e.trim() == "ingestion_time()" => (n.trim().to_string(), Source::IngestionTime),
                    Some(_) => return Err(format!("the simulator does not run `project {c}`")),
                    None if extended.iter().any(|e| e == c) => (c.to_string(), Source::Extended),
                    None if ["SystemAlertId", "TimeGenerated", "AlertName", "ProviderName"].contains(&c) => {
                        (c.to_string(), Source::Column(c.to_string()))
                    }
                    None => return Err(format!("'project' operator: Failed to resolve scalar expression named '{c}'")),
                };
                out.push(item);
            }
            Step::Project(out)
        } else {
            return Err(format!("the simulator does not run `{part}`"));
        };
        steps.push(step);
    }
    if !matches!(steps.last(), Some(Step::Project(_))) {
        return Err("the simulator runs queries that end in a project".into());
    }
    Ok(steps)
}

/// KQL `has`: `term` as a whole term of `text`, any case.
fn has_term(text: &str, term: &str) -> bool {
    text.split(|c: char| !c.is_alphanumeric()).any(|t| t.eq_ignore_ascii_case(term))
}

fn custom_details_text(a: &SecurityAlertRecord) -> Option<String> {
    let ext: Value = serde_json::from_str(a.doc.get("ExtendedProperties")?.as_str()?).ok()?;
    Some(ext.get("Custom Details")?.as_str()?.to_string())
}

fn keeps(a: &SecurityAlertRecord, steps: &[Step], now: OffsetDateTime, timespan_days: Option<i64>) -> bool {
    timespan_days.is_none_or(|d| a.time_generated > now - Duration::days(d))
        && steps.iter().all(|s| match s {
            Step::IngestedAfter(t) => a.ingested > *t,
            Step::GeneratedWithinDays(d) => a.time_generated > now - Duration::days(*d),
            Step::ExtendedPropertiesHas(term) => {
                a.doc.get("ExtendedProperties").and_then(Value::as_str).is_some_and(|e| has_term(e, term))
            }
            _ => true,
        })
}

fn cell(a: &SecurityAlertRecord, source: &Source) -> Value {
    match source {
        Source::IngestionTime => json!(super::timefmt::format(a.ingested)),
        Source::Extended => custom_details_text(a).map_or(Value::Null, Value::String),
        Source::Column(c) if c == "TimeGenerated" => json!(super::timefmt::format(a.time_generated)),
        Source::Column(c) => a.doc.get(c).cloned().unwrap_or(Value::Null),
    }
}

fn column_type(source: &Source, name: &str) -> &'static str {
    match source {
        Source::IngestionTime => "datetime",
        Source::Column(_) if name == "TimeGenerated" => "datetime",
        _ => "string",
    }
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
    let steps = match parse(text) {
        Ok(a) => a,
        Err(e) => return error(StatusCode::BAD_REQUEST, "BadArgumentError", e),
    };
    let timespan_days = req
        .get("timespan")
        .and_then(Value::as_str)
        .and_then(|t| t.strip_prefix('P')?.strip_suffix('D')?.parse::<i64>().ok());
    let Some(Step::Project(projection)) = steps.last() else {
        return error(StatusCode::BAD_REQUEST, "BadArgumentError", "no project".into());
    };
    let mut world = sim.world();
    run(&mut world);
    let now = world.now();
    let rows: Vec<Value> = world
        .rule
        .alerts
        .iter()
        .filter(|a| keeps(a, &steps, now, timespan_days))
        .map(|a| Value::Array(projection.iter().map(|(_, src)| cell(a, src)).collect()))
        .collect();
    let columns: Vec<Value> =
        projection.iter().map(|(n, src)| json!({"name": n, "type": column_type(src, n)})).collect();
    Json(json!({"tables": [{"name": "PrimaryResult", "columns": columns, "rows": rows}]})).into_response()
}
