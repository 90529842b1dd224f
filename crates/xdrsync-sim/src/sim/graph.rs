//! Simulated Microsoft Graph security API v1.0: incidents (list/get/patch/comments),
//! alerts_v2 (list/get) and users. Lists sort newest `lastUpdateDateTime` first (as documented;
//! records with equal times in the world's tie order, never by id), page with `$skip` in an
//! opaque-to-clients `@odata.nextLink`, and enforce `$top` ≤ 50 for incidents with Graph's own
//! error text. `$filter` takes the documented filterable properties only. A list page with
//! `$expand=alerts` pages an incident's alerts above a bound and can answer 500 when large
//! (`SimOptions`). Every operation checks
//! the token's application roles (`permissions.rs`).

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::entra::{authorize, Caller};
use super::faults::graph_error;
use super::filter::{self, Lit};
use super::model::{GraphAlert, GraphComment, GraphIncident, GraphView};
use super::permissions::{self as perm, graph_missing_roles};
use super::world::Audience;
use super::{CommentOrder, Sim};

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
        .route("/v1.0/users", get(list_users))
        .route("/v1.0/users/{id}", get(get_user))
}

fn err(status: StatusCode, code: &str, message: String) -> Response {
    graph_error(status, code, message)
}

/// The caller, if its token is valid and carries one of `roles`.
fn auth(sim: &Sim, headers: &HeaderMap, roles: &[&str]) -> Result<Caller, Response> {
    let caller = authorize(sim, headers, Audience::Graph, err)?;
    if !caller.has_any(roles) {
        sim.stats.bump("graph.forbidden");
        return Err(graph_missing_roles(roles, &caller.roles));
    }
    Ok(caller)
}

/// How answers to this request are rendered.
fn view(sim: &Sim, headers: &HeaderMap) -> GraphView {
    GraphView {
        evolvable: wants_unknown_members(headers),
        comments_newest_first: sim.options().graph_comment_order == CommentOrder::NewestFirst,
    }
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
    /// `$select`: the properties each item keeps.
    select: Option<Vec<String>>,
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
        select: None,
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
            "$select" => q.select = Some(v.split(',').map(|p| p.trim().to_string()).collect()),
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

fn opt_str(s: &Option<String>) -> Lit {
    s.as_ref().map_or(Lit::Null, |s| Lit::Str(s.clone()))
}

fn incident_prop(i: &GraphIncident, prop: &str) -> Lit {
    match prop.to_ascii_lowercase().as_str() {
        "lastupdatedatetime" => Lit::Time(i.last_update_date_time),
        "createddatetime" => Lit::Time(i.created_date_time),
        "status" => Lit::Str(i.status.clone()),
        "severity" => Lit::Str(i.severity.clone()),
        "assignedto" => opt_str(&i.assigned_to),
        "classification" => Lit::Str(i.classification.clone()),
        "determination" => Lit::Str(i.determination.clone()),
        _ => Lit::Null,
    }
}

async fn list_incidents(State(sim): State<Arc<Sim>>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    if let Err(r) = auth(&sim, &headers, perm::GRAPH_INCIDENTS_READ) {
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
    if q.select.is_some() && sim.options().graph_refuses_select {
        sim.stats.bump("graph.incidents.list.select_refused");
        return bad_request("Query option '$select' is not allowed.".to_string());
    }
    let tie = sim.options().tie_order;
    let view = view(&sim, &headers);
    let mut world = sim.world();
    super::alert_rule::run(&mut world);
    let world = world;
    if q.expand_alerts {
        sim.stats.bump("graph.incidents.list.expanded");
    }
    let mut items: Vec<&GraphIncident> = world
        .incidents
        .values()
        .filter(|i| q.filter.iter().all(|c| filter::matches(c, &incident_prop(i, &c.prop))))
        .collect();
    // Newest first unless asked otherwise; equal times in the tie order, never by id.
    items.sort_by(|a, b| {
        let o = a.last_update_date_time.cmp(&b.last_update_date_time);
        let o = if q.order_asc { o } else { o.reverse() };
        o.then_with(|| tie.key(a.seq).cmp(&tie.key(b.seq)))
    });
    let total = items.len();
    let top = q.top.unwrap_or(INCIDENT_TOP_MAX);
    let options = sim.options();
    // One pass over the alerts for the whole page (a scan per incident is quadratic on big tenants).
    let mut page_alerts: std::collections::HashMap<&str, Vec<&GraphAlert>> = std::collections::HashMap::new();
    if q.expand_alerts {
        let on_page: std::collections::HashSet<&str> =
            items.iter().skip(q.skip).take(top).map(|i| i.id.as_str()).collect();
        for a in world.alerts.values() {
            if let Some(id) = a.incident_id.as_deref().filter(|id| on_page.contains(id)) {
                page_alerts.entry(id).or_default().push(a);
            }
        }
        for v in page_alerts.values_mut() {
            v.sort_by_key(|a| a.seq);
        }
        let alerts: usize = page_alerts.values().map(Vec::len).sum();
        if options.graph_list_expand_fails_above.is_some_and(|max| alerts > max) {
            sim.stats.bump("graph.incidents.list.expand_failed");
            return graph_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "UnknownError",
                "An error has occurred while processing the request.",
            );
        }
    }
    let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost");
    let page: Vec<Value> = items
        .iter()
        .skip(q.skip)
        .take(top)
        .map(|i| {
            let mut v = i.to_json(view);
            if let (Some(keep), Some(obj)) = (&q.select, v.as_object_mut()) {
                obj.retain(|k, _| k.starts_with("@odata") || keep.iter().any(|s| s.eq_ignore_ascii_case(k)));
            }
            if q.expand_alerts {
                let alerts = page_alerts.get(i.id.as_str()).map(Vec::as_slice).unwrap_or_default();
                let max = options.graph_list_expanded_alerts_max;
                v["alerts"] = Value::Array(alerts.iter().take(max).map(|a| a.to_json(view)).collect());
                if alerts.len() > max {
                    // The rest of a nested collection; the simulator does not serve it (xdrsync
                    // reads such an incident by itself).
                    v["alerts@odata.nextLink"] =
                        json!(format!("http://{host}/v1.0/security/incidents/{}/alerts?$skip={max}", i.id));
                }
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
    if let Err(r) = auth(&sim, &headers, perm::GRAPH_INCIDENTS_READ) {
        return r;
    }
    // A single GET takes `$expand=alerts` (and `$select`), nothing else of the list's options.
    let q = match parse_query(raw.as_deref(), INCIDENT_TOP_MAX, &[]) {
        Ok(q) => q,
        Err(r) => return r,
    };
    sim.stats.bump("graph.incidents.get");
    let view = view(&sim, &headers);
    let mut world = sim.world();
    super::alert_rule::run(&mut world);
    let world = world;
    match world.incident(&id) {
        Some(i) => {
            let mut v = i.to_json(view);
            if q.expand_alerts {
                v["alerts"] = Value::Array(world.alerts_of(&i.id).iter().map(|a| a.to_json(view)).collect());
            }
            v["@odata.context"] = json!(format!("{CONTEXT}#security/incidents/$entity"));
            Json(v).into_response()
        }
        None => not_found("Incident", &id),
    }
}

async fn patch_incident(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let app = match auth(&sim, &headers, perm::GRAPH_INCIDENTS_WRITE) {
        Ok(c) => c.app_id,
        Err(r) => return r,
    };
    sim.stats.bump("graph.incidents.patch");
    let Ok(Value::Object(patch)) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("The request body must be a JSON object");
    };
    let view = view(&sim, &headers);
    let mut world = sim.world();
    let now = world.now();
    let Some(incident) = world.incident_mut(&id) else {
        return not_found("Incident", &id);
    };
    let mut updated = incident.clone();
    if let Err(e) = updated.apply_patch(&patch) {
        return bad_request(e);
    }
    updated.last_update_date_time = now;
    updated.last_modified_by = Some(format!("API-App:{app}"));
    *incident = updated.clone();
    let mut v = updated.to_json(view);
    v["@odata.context"] = json!(format!("{CONTEXT}#security/incidents/$entity"));
    Json(v).into_response()
}

async fn add_comment(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    let app = match auth(&sim, &headers, perm::GRAPH_INCIDENTS_WRITE) {
        Ok(c) => c.app_id,
        Err(r) => return r,
    };
    sim.stats.bump("graph.incidents.comments.post");
    let text = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v.get("comment").and_then(Value::as_str).map(str::to_string));
    let Some(text) = text.filter(|t| !t.trim().is_empty()) else {
        return bad_request("'comment' is required");
    };
    let view = view(&sim, &headers);
    let mut world = sim.world();
    let now = world.now();
    let Some(incident) = world.incident_mut(&id) else {
        return not_found("Incident", &id);
    };
    incident.comments.push(GraphComment {
        comment: text,
        created_by_display_name: format!("API-App:{app}"),
        created_date_time: now,
    });
    incident.last_update_date_time = now;
    // The documented answer is the incident's whole comment list, in the order the incident
    // itself lists them.
    let value = incident.to_json(view)["comments"].take();
    Json(json!({"@odata.context": format!("{CONTEXT}#Collection(microsoft.graph.security.alertComment)"), "value": value})).into_response()
}

fn alert_prop(a: &GraphAlert, prop: &str) -> Lit {
    match prop.to_ascii_lowercase().as_str() {
        "incidentid" => opt_str(&a.incident_id),
        "lastupdatedatetime" => Lit::Time(a.last_update_date_time),
        "createddatetime" => Lit::Time(a.created_date_time),
        "severity" => Lit::Str(a.severity.clone()),
        "status" => Lit::Str(a.status.clone()),
        "servicesource" => Lit::Str(a.service_source.clone()),
        "assignedto" => opt_str(&a.assigned_to),
        "classification" => Lit::Str(a.classification.clone()),
        "determination" => Lit::Str(a.determination.clone()),
        _ => Lit::Null,
    }
}

async fn list_alerts(State(sim): State<Arc<Sim>>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    if let Err(r) = auth(&sim, &headers, perm::GRAPH_ALERTS_READ) {
        return r;
    }
    sim.stats.bump("graph.alerts.list");
    // The documented filterable properties, plus `incidentId`: not in the list-alerts page's
    // list, but widely used to fetch one incident's alerts (assumed to work), unless strict.
    let allowed = [
        "assignedTo",
        "classification",
        "determination",
        "createdDateTime",
        "lastUpdateDateTime",
        "severity",
        "serviceSource",
        "status",
        "incidentId",
    ];
    let allowed = if sim.options().strict_alert_filter { &allowed[..allowed.len() - 1] } else { &allowed[..] };
    let q = match parse_query(raw.as_deref(), ALERT_TOP_MAX, allowed) {
        Ok(q) => q,
        Err(r) => return r,
    };
    let tie = sim.options().tie_order;
    let view = view(&sim, &headers);
    let mut world = sim.world();
    super::alert_rule::run(&mut world);
    let world = world;
    let mut items: Vec<&GraphAlert> = world
        .alerts
        .values()
        .filter(|a| q.filter.iter().all(|c| filter::matches(c, &alert_prop(a, &c.prop))))
        .collect();
    // "The most recent alerts are displayed at the top of the list."
    items.sort_by(|a, b| {
        let o = a.last_update_date_time.cmp(&b.last_update_date_time);
        let o = if q.order_asc { o } else { o.reverse() };
        o.then_with(|| tie.key(a.seq).cmp(&tie.key(b.seq)))
    });
    let top = q.top.unwrap_or(ALERT_DEFAULT_PAGE);
    let page: Vec<Value> = items.iter().skip(q.skip).take(top).map(|a| a.to_json(view)).collect();
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
    if let Err(r) = auth(&sim, &headers, perm::GRAPH_ALERTS_READ) {
        return r;
    }
    sim.stats.bump("graph.alerts.get");
    let view = view(&sim, &headers);
    let mut world = sim.world();
    super::alert_rule::run(&mut world);
    let world = world;
    match world.alerts.get(&id) {
        Some(a) => Json(a.to_json(view)).into_response(),
        None => not_found("Alert", &id),
    }
}

/// `GET /users?$filter=mail eq '…'` (the one filter xdrsync sends: B2B guests by home address).
async fn list_users(State(sim): State<Arc<Sim>>, headers: HeaderMap, RawQuery(q): RawQuery) -> Response {
    match authorize(&sim, &headers, Audience::Graph, err) {
        Err(r) => return r,
        Ok(c) if !c.has_any(perm::GRAPH_USERS_READ) => {
            sim.stats.bump("graph.forbidden");
            return perm::graph_directory_denied();
        }
        Ok(_) => {}
    }
    sim.stats.bump("graph.users.list");
    let params: Vec<(String, String)> =
        url::form_urlencoded::parse(q.unwrap_or_default().as_bytes()).into_owned().collect();
    let filter = params.iter().find(|(k, _)| k == "$filter").map(|(_, v)| v.trim().to_string());
    let mail = match filter.as_deref().and_then(|f| f.strip_prefix("mail eq '")).and_then(|f| f.strip_suffix('\'')) {
        Some(m) => Some(m.replace("''", "'")),
        None if filter.is_none() => None,
        None => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "Request_UnsupportedQuery",
                "the simulator supports only $filter=mail eq '…' on users",
            )
        }
    };
    let world = sim.world();
    let users: Vec<Value> = world
        .users
        .iter()
        .filter(|u| mail.as_deref().is_none_or(|m| u.mail.eq_ignore_ascii_case(m)))
        .map(|u| json!({"id": u.id, "userPrincipalName": u.user_principal_name, "displayName": u.display_name, "mail": u.mail}))
        .collect();
    Json(json!({"@odata.context": format!("{CONTEXT}#users"), "value": users})).into_response()
}

async fn get_user(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(_q): RawQuery,
) -> Response {
    match authorize(&sim, &headers, Audience::Graph, err) {
        Err(r) => return r,
        Ok(c) if !c.has_any(perm::GRAPH_USERS_READ) => {
            sim.stats.bump("graph.forbidden");
            return perm::graph_directory_denied();
        }
        Ok(_) => {}
    }
    sim.stats.bump("graph.users.get");
    let world = sim.world();
    match world.user_by_upn_or_id(&id) {
        Some(u) => Json(json!({
            "@odata.context": format!("{CONTEXT}#users/$entity"),
            "id": u.id,
            "userPrincipalName": u.user_principal_name,
            "displayName": u.display_name,
            "mail": u.mail,
        }))
        .into_response(),
        None => graph_error(
            StatusCode::NOT_FOUND,
            "Request_ResourceNotFound",
            format!("Resource '{id}' does not exist or one of its queried reference-property objects are not present."),
        ),
    }
}
