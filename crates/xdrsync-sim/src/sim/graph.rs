//! Simulated Microsoft Graph security API v1.0: incidents (list/get/patch/comments),
//! alerts_v2 (list/get) and users. Lists sort newest `lastUpdateDateTime` first (as documented),
//! page with `$skip` in an opaque-to-clients `@odata.nextLink`, and enforce `$top` ≤ 50 for
//! incidents with Graph's own error text.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::entra::authorize;
use super::faults::graph_error;
use super::filter::{self, Lit};
use super::world::Audience;
use super::Sim;
use xdrsync_core::domain::defender::{
    AlertComment, Classification, DefenderAlert, DefenderIncident, Determination, IncidentStatus, Severity,
};

const CONTEXT: &str = "https://graph.microsoft.com/v1.0/$metadata";
pub const INCIDENT_TOP_MAX: usize = 50;
pub const ALERT_TOP_MAX: usize = 1000;
const ALERT_DEFAULT_PAGE: usize = 100;

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/v1.0/security/incidents", get(list_incidents))
        .route("/v1.0/security/incidents/{id}", get(get_incident).patch(patch_incident))
        .route("/v1.0/security/incidents/{id}/comments", post(add_comment))
        .route("/v1.0/security/alerts_v2", get(list_alerts))
        .route("/v1.0/security/alerts_v2/{id}", get(get_alert))
        .route("/v1.0/users/{id}", get(get_user))
}

fn err(status: StatusCode, code: &str, message: String) -> Response {
    graph_error(status, code, message)
}

fn auth(sim: &Sim, headers: &HeaderMap) -> Result<String, Response> {
    authorize(sim, headers, Audience::Graph, err)
}

fn bad_request(message: impl Into<String>) -> Response {
    graph_error(StatusCode::BAD_REQUEST, "BadRequest", message)
}

/// Parsed OData query options.
struct ListQuery {
    top: Option<usize>,
    skip: usize,
    filter: Vec<filter::Clause>,
    count: bool,
    expand_alerts: bool,
    order_asc: bool,
    raw: Vec<(String, String)>,
}

fn parse_query(raw: Option<&str>, top_max: usize, allowed_filter: &[&str]) -> Result<ListQuery, Response> {
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()).into_owned().collect();
    let mut q = ListQuery {
        top: None,
        skip: 0,
        filter: vec![],
        count: false,
        expand_alerts: false,
        order_asc: false,
        raw: pairs.clone(),
    };
    for (k, v) in &pairs {
        match k.as_str() {
            "$top" => {
                let n: usize = v.parse().map_err(|_| bad_request(format!("Invalid value '{v}' for $top")))?;
                if n > top_max {
                    return Err(bad_request(format!(
                        "The query specified in the URI is not valid. The limit of '{top_max}' for Top query has been exceeded. The value from the incoming request is '{n}'."
                    )));
                }
                q.top = Some(n);
            }
            "$skip" => q.skip = v.parse().map_err(|_| bad_request(format!("Invalid value '{v}' for $skip")))?,
            "$filter" => {
                q.filter = filter::parse(v).map_err(|e| bad_request(format!("Invalid filter clause: {e}")))?;
                if let Some(c) =
                    q.filter.iter().find(|c| !allowed_filter.iter().any(|a| a.eq_ignore_ascii_case(&c.prop)))
                {
                    return Err(bad_request(format!("Invalid filter clause: property '{}' is not filterable", c.prop)));
                }
            }
            "$count" => q.count = v.eq_ignore_ascii_case("true"),
            "$expand" if v.eq_ignore_ascii_case("alerts") => q.expand_alerts = true,
            "$expand" => return Err(bad_request(format!("Could not find a property named '{v}' to expand"))),
            "$orderby" => match v.to_ascii_lowercase().as_str() {
                "lastupdatedatetime asc" => q.order_asc = true,
                "lastupdatedatetime desc" | "lastupdatedatetime" => q.order_asc = false,
                _ => return Err(bad_request(format!("$orderby '{v}' is not supported"))),
            },
            "$select" => {}
            k if k.starts_with('$') => return Err(bad_request(format!("Query option '{k}' is not allowed."))),
            _ => {}
        }
    }
    Ok(q)
}

fn next_link(headers: &HeaderMap, path: &str, q: &ListQuery, next_skip: usize) -> String {
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in q.raw.iter().filter(|(k, _)| k != "$skip") {
        ser.append_pair(k, v);
    }
    ser.append_pair("$skip", &next_skip.to_string());
    format!("http://{host}{path}?{}", ser.finish())
}

fn wants_unknown_members(headers: &HeaderMap) -> bool {
    headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|p| p.trim().eq_ignore_ascii_case("include-unknown-enum-members")))
}

/// Without the Prefer header Graph hides evolvable enum members added after unknownFutureValue.
fn incident_json(i: &DefenderIncident, evolvable: bool) -> Value {
    let mut v = serde_json::to_value(i).unwrap_or(Value::Null);
    if !evolvable && i.status == IncidentStatus::AwaitingAction {
        v["status"] = json!("unknownFutureValue");
    }
    v["@odata.type"] = json!("#microsoft.graph.security.incident");
    v
}

fn alert_json(a: &DefenderAlert, evolvable: bool) -> Value {
    let mut v = serde_json::to_value(a).unwrap_or(Value::Null);
    let late = ["microsoftDefenderForCloud", "microsoftSentinel"];
    if !evolvable && a.service_source.as_deref().is_some_and(|s| late.contains(&s)) {
        v["serviceSource"] = json!("unknownFutureValue");
    }
    v["@odata.type"] = json!("#microsoft.graph.security.alert");
    v
}

fn opt_str(s: &Option<String>) -> Lit {
    s.as_ref().map_or(Lit::Null, |s| Lit::Str(s.clone()))
}

fn incident_prop(i: &DefenderIncident, prop: &str) -> Lit {
    match prop.to_ascii_lowercase().as_str() {
        "lastupdatedatetime" => Lit::Time(i.last_update_date_time),
        "createddatetime" => i.created_date_time.map_or(Lit::Null, Lit::Time),
        "status" => Lit::Str(i.status.to_string()),
        "severity" => Lit::Str(i.severity.to_string()),
        "assignedto" => opt_str(&i.assigned_to),
        "classification" => i.classification.as_ref().map_or(Lit::Null, |c| Lit::Str(c.to_string())),
        "determination" => i.determination.as_ref().map_or(Lit::Null, |c| Lit::Str(c.to_string())),
        _ => Lit::Null,
    }
}

async fn list_incidents(State(sim): State<Arc<Sim>>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    if let Err(r) = auth(&sim, &headers) {
        return r;
    }
    sim.stats.bump("graph.incidents.list");
    let allowed = [
        "lastUpdateDateTime",
        "createdDateTime",
        "status",
        "severity",
        "assignedTo",
        "classification",
        "determination",
    ];
    let q = match parse_query(raw.as_deref(), INCIDENT_TOP_MAX, &allowed) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let world = sim.world();
    let mut items: Vec<&DefenderIncident> = world
        .incidents
        .values()
        .filter(|i| q.filter.iter().all(|c| filter::matches(c, &incident_prop(i, &c.prop))))
        .collect();
    items.sort_by(|a, b| {
        let o = a
            .last_update_date_time
            .cmp(&b.last_update_date_time)
            .then_with(|| a.id.parse::<u64>().unwrap_or(0).cmp(&b.id.parse::<u64>().unwrap_or(0)));
        if q.order_asc {
            o
        } else {
            o.reverse()
        }
    });
    let total = items.len();
    let top = q.top.unwrap_or(INCIDENT_TOP_MAX);
    let evolvable = wants_unknown_members(&headers);
    let page: Vec<Value> = items
        .iter()
        .skip(q.skip)
        .take(top)
        .map(|i| {
            let mut v = incident_json(i, evolvable);
            if q.expand_alerts {
                v["alerts"] = Value::Array(world.alerts_of(&i.id).iter().map(|a| alert_json(a, evolvable)).collect());
            }
            v
        })
        .collect();
    let mut body = json!({"@odata.context": format!("{CONTEXT}#security/incidents"), "value": page});
    if q.count {
        body["@odata.count"] = json!(total);
    }
    if q.skip + top < total {
        body["@odata.nextLink"] = json!(next_link(&headers, "/v1.0/security/incidents", &q, q.skip + top));
    }
    Json(body).into_response()
}

fn not_found(what: &str, id: &str) -> Response {
    graph_error(StatusCode::NOT_FOUND, "NotFound", format!("{what} {id} was not found"))
}

async fn get_incident(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    if let Err(r) = auth(&sim, &headers) {
        return r;
    }
    // A single GET takes `$expand=alerts` (and `$select`), nothing else of the list's options.
    let q = match parse_query(raw.as_deref(), INCIDENT_TOP_MAX, &[]) {
        Ok(q) => q,
        Err(r) => return r,
    };
    sim.stats.bump("graph.incidents.get");
    let world = sim.world();
    match world.incident(&id) {
        Some(i) => {
            let evolvable = wants_unknown_members(&headers);
            let mut v = incident_json(i, evolvable);
            if q.expand_alerts {
                v["alerts"] = Value::Array(world.alerts_of(&i.id).iter().map(|a| alert_json(a, evolvable)).collect());
            }
            v["@odata.context"] = json!(format!("{CONTEXT}#security/incidents/$entity"));
            Json(v).into_response()
        }
        None => not_found("Incident", &id),
    }
}

/// Applies a PATCH body to an incident. Read-only and unknown properties are ignored, as Graph
/// ignores them; invalid values of updatable properties are a 400.
pub(super) fn apply_patch(i: &mut DefenderIncident, body: &serde_json::Map<String, Value>) -> Result<(), String> {
    fn string(v: &Value, name: &str) -> Result<String, String> {
        v.as_str().map(str::to_string).ok_or_else(|| format!("'{name}' must be a string"))
    }
    for (k, v) in body {
        match k.as_str() {
            "assignedTo" => i.assigned_to = if v.is_null() { None } else { Some(string(v, k)?) },
            "classification" => {
                let c = Classification::parse(&string(v, k)?);
                if matches!(c, Classification::Unrecognized(_)) {
                    return Err(format!("'{v}' is not a valid classification"));
                }
                i.classification = Some(c);
            }
            "determination" => {
                let d = Determination::parse(&string(v, k)?);
                if matches!(d, Determination::Unrecognized(_)) {
                    return Err(format!("'{v}' is not a valid determination"));
                }
                i.determination = Some(d);
            }
            "customTags" => {
                let tags = v.as_array().ok_or("'customTags' must be an array")?;
                i.custom_tags = tags.iter().map(|t| string(t, k)).collect::<Result<_, _>>()?;
            }
            "description" => i.description = Some(string(v, k)?),
            "displayName" => i.display_name = Some(string(v, k)?),
            "summary" => i.summary = Some(string(v, k)?),
            "resolvingComment" => i.resolving_comment = Some(string(v, k)?),
            "severity" => {
                let s = Severity::parse(&string(v, k)?);
                if matches!(s, Severity::Unrecognized(_)) {
                    return Err(format!("'{v}' is not a valid severity"));
                }
                i.severity = s;
            }
            "status" => {
                let s = IncidentStatus::parse(&string(v, k)?);
                // Graph docs (incident update): PATCH takes active, resolved, redirected (not inProgress).
                if !matches!(s, IncidentStatus::Active | IncidentStatus::Resolved | IncidentStatus::Redirected) {
                    return Err(format!("'{v}' is not a status that can be set"));
                }
                i.status = s;
            }
            _ => {} // read-only or unknown: ignored
        }
    }
    Ok(())
}

async fn patch_incident(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let app = match auth(&sim, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    sim.stats.bump("graph.incidents.patch");
    let Ok(Value::Object(patch)) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("The request body must be a JSON object");
    };
    let mut world = sim.world();
    let now = world.now();
    let Some(incident) = world.incident_mut(&id) else {
        return not_found("Incident", &id);
    };
    let mut updated = incident.clone();
    if let Err(e) = apply_patch(&mut updated, &patch) {
        return bad_request(e);
    }
    updated.last_update_date_time = now;
    updated.last_modified_by = Some(format!("API-App:{app}"));
    *incident = updated.clone();
    let mut v = incident_json(&updated, wants_unknown_members(&headers));
    v["@odata.context"] = json!(format!("{CONTEXT}#security/incidents/$entity"));
    Json(v).into_response()
}

async fn add_comment(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let app = match auth(&sim, &headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    sim.stats.bump("graph.incidents.comments.post");
    let text = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("comment").and_then(Value::as_str).map(str::to_string));
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return bad_request("'comment' is required");
    };
    let mut world = sim.world();
    let now = world.now();
    let Some(incident) = world.incident_mut(&id) else {
        return not_found("Incident", &id);
    };
    incident.comments.push(AlertComment {
        comment: Some(text),
        created_by_display_name: Some(format!("API-App:{app}")),
        created_date_time: Some(now),
    });
    incident.last_update_date_time = now;
    Json(json!({"@odata.context": format!("{CONTEXT}#Collection(microsoft.graph.security.alertComment)"), "value": incident.comments})).into_response()
}

fn alert_prop(a: &DefenderAlert, prop: &str) -> Lit {
    match prop.to_ascii_lowercase().as_str() {
        "incidentid" => opt_str(&a.incident_id),
        "lastupdatedatetime" => a.last_update_date_time.map_or(Lit::Null, Lit::Time),
        "createddatetime" => a.created_date_time.map_or(Lit::Null, Lit::Time),
        "severity" => Lit::Str(a.severity.to_string()),
        "status" => a.status.as_ref().map_or(Lit::Null, |s| Lit::Str(s.to_string())),
        "servicesource" => opt_str(&a.service_source),
        _ => Lit::Null,
    }
}

async fn list_alerts(State(sim): State<Arc<Sim>>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    if let Err(r) = auth(&sim, &headers) {
        return r;
    }
    sim.stats.bump("graph.alerts.list");
    let allowed = ["incidentId", "lastUpdateDateTime", "createdDateTime", "severity", "status", "serviceSource"];
    let q = match parse_query(raw.as_deref(), ALERT_TOP_MAX, &allowed) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let world = sim.world();
    let items: Vec<&DefenderAlert> = world
        .alerts
        .values()
        .filter(|a| q.filter.iter().all(|c| filter::matches(c, &alert_prop(a, &c.prop))))
        .collect();
    let top = q.top.unwrap_or(ALERT_DEFAULT_PAGE);
    let evolvable = wants_unknown_members(&headers);
    let page: Vec<Value> = items.iter().skip(q.skip).take(top).map(|a| alert_json(a, evolvable)).collect();
    let mut body = json!({"@odata.context": format!("{CONTEXT}#security/alerts_v2"), "value": page});
    if q.count {
        body["@odata.count"] = json!(items.len());
    }
    if q.skip + top < items.len() {
        body["@odata.nextLink"] = json!(next_link(&headers, "/v1.0/security/alerts_v2", &q, q.skip + top));
    }
    Json(body).into_response()
}

async fn get_alert(State(sim): State<Arc<Sim>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    if let Err(r) = auth(&sim, &headers) {
        return r;
    }
    sim.stats.bump("graph.alerts.get");
    let world = sim.world();
    match world.alerts.get(&id) {
        Some(a) => Json(alert_json(a, wants_unknown_members(&headers))).into_response(),
        None => not_found("Alert", &id),
    }
}

async fn get_user(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(_q): RawQuery,
) -> Response {
    if let Err(r) = auth(&sim, &headers) {
        return r;
    }
    sim.stats.bump("graph.users.get");
    let world = sim.world();
    match world.user_by_upn_or_id(&id) {
        Some(u) => {
            let mut v = serde_json::to_value(u).unwrap_or(Value::Null);
            v["@odata.context"] = json!(format!("{CONTEXT}#users/$entity"));
            Json(v).into_response()
        }
        None => graph_error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
        ),
    }
}
