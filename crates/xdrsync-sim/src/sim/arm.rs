//! Simulated Sentinel incidents API (ARM Microsoft.SecurityInsights). Paths are matched
//! case-insensitively (ARM returns `Incidents` and accepts `incidents`). Strict like the real
//! service: api-version required, workspace must exist, Azure RBAC on the workspace
//! (`permissions.rs`), `$top` ≤ 1000 (the spec's maximum; more is a 400), `$filter`/`$orderby`
//! only on incident properties (an unknown one is the service's own 400, "Could not find a
//! property named '…'"), `nextLink` paging, PUT needs title/severity/status, Closed needs a
//! classification and (except Undetermined) a matching reason, description ≤ 5,000, a stale body
//! etag is a 409, read-only properties are ignored (or refused, by option) and
//! `providerName`/`incidentNumber`/`labelType` are set by the server, ≤ 100 comments of ≤ 30,000
//! chars, ARM's token buckets per principal when `SimOptions::arm_limits` is on (`faults.rs`).
//! Bodies are parsed and rendered with the simulator's own model (`model.rs`).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use uuid::Uuid;

use super::entra::{authorize, Caller};
use super::faults::{arm_error, empty};
use super::filter::{self, Lit};
use super::model::{
    parse_incident_put, vocab, CommentProperties, IncidentReadOnly, IncidentWritable, OwnerInfo, SentinelComment,
    SentinelRecord,
};
use super::permissions::{arm_authorization_failed, object_id_of, ArmAccess};
use super::world::{Audience, World};
use super::Sim;

pub const API_VERSIONS: [&str; 7] =
    ["2020-01-01", "2021-04-01", "2022-11-01", "2023-02-01", "2024-03-01", "2024-09-01", "2025-09-01"];
/// `Incidents_List` `$top` maximum (spec: `"maximum": 1000`; Learn: the list API returns at most
/// 1,000 incidents).
pub const TOP_MAX: usize = 1000;
/// Page size without `$top` (clients that ignore nextLink see 50: assumed from reports).
const DEFAULT_PAGE: usize = 50;
pub const MAX_DESCRIPTION: usize = 5000;
pub const MAX_COMMENTS: usize = 100;
pub const MAX_COMMENT_CHARS: usize = 30_000;

/// Incident properties the simulated list takes in `$filter` and `$orderby`. The spec gives no
/// list (the parameters are plain OData strings); these are the scalar `IncidentProperties`,
/// addressed the way clients address them (`properties/…`, case-sensitive: the service answered
/// "Could not find a property named 'CreatedTimeUtc'" to a capitalised name,
/// Azure/azure-powershell#21618), plus `name`, which the service accepts but matches nothing
/// on (Azure/azure-rest-api-specs#28207).
pub const LIST_PROPERTIES: &[&str] = &[
    "name",
    "properties/title",
    "properties/description",
    "properties/severity",
    "properties/status",
    "properties/classification",
    "properties/classificationReason",
    "properties/classificationComment",
    "properties/createdTimeUtc",
    "properties/lastModifiedTimeUtc",
    "properties/firstActivityTimeUtc",
    "properties/lastActivityTimeUtc",
    "properties/incidentNumber",
    "properties/providerName",
    "properties/providerIncidentId",
    "properties/owner/objectId",
    "properties/owner/email",
    "properties/owner/assignedTo",
    "properties/owner/userPrincipalName",
    "properties/owner/ownerType",
];

pub fn routes() -> Router<Arc<Sim>> {
    Router::new().route("/subscriptions/{*rest}", any(dispatch))
}

fn err(status: StatusCode, code: &str, message: String) -> Response {
    arm_error(status, code, message)
}

fn bad(message: impl Into<String>) -> Response {
    arm_error(StatusCode::BAD_REQUEST, "BadRequest", message)
}

/// The parsed resource path below `…/providers/Microsoft.SecurityInsights/incidents`.
enum Target {
    Incidents,
    Incident(String),
    Comments(String),
    Comment(String, String),
    Relations(String),
    Relation(String, String),
    Alerts(String),
    Entities(String),
}

impl Target {
    /// The Azure RBAC action and access level an operation on this target needs.
    fn action(&self, method: &Method) -> (&'static str, ArmAccess) {
        let (kind, write) = match self {
            Target::Incidents | Target::Incident(_) => ("incidents", "write"),
            Target::Comments(_) | Target::Comment(..) => ("incidents/comments", "write"),
            Target::Relations(_) | Target::Relation(..) => ("incidents/relations", "write"),
            Target::Alerts(_) => ("incidents/alerts", "action"),
            Target::Entities(_) => ("incidents/entities", "action"),
        };
        let access = match *method {
            Method::GET => ArmAccess::Read,
            Method::DELETE => ArmAccess::Delete,
            Method::POST if write == "action" => ArmAccess::Read,
            _ => ArmAccess::Write,
        };
        let verb = match access {
            ArmAccess::Read if write == "action" => "action",
            ArmAccess::Read => "read",
            ArmAccess::Write => write,
            ArmAccess::Delete => "delete",
        };
        let action: &'static str = match (kind, verb) {
            ("incidents", "read") => "Microsoft.SecurityInsights/incidents/read",
            ("incidents", "write") => "Microsoft.SecurityInsights/incidents/write",
            ("incidents", _) => "Microsoft.SecurityInsights/incidents/delete",
            ("incidents/comments", "read") => "Microsoft.SecurityInsights/incidents/comments/read",
            ("incidents/comments", "write") => "Microsoft.SecurityInsights/incidents/comments/write",
            ("incidents/comments", _) => "Microsoft.SecurityInsights/incidents/comments/delete",
            ("incidents/relations", "read") => "Microsoft.SecurityInsights/incidents/relations/read",
            ("incidents/relations", "write") => "Microsoft.SecurityInsights/incidents/relations/write",
            ("incidents/relations", _) => "Microsoft.SecurityInsights/incidents/relations/delete",
            ("incidents/alerts", _) => "Microsoft.SecurityInsights/incidents/alerts/action",
            _ => "Microsoft.SecurityInsights/incidents/entities/action",
        };
        (action, access)
    }
}

/// `GET {workspace}/providers/Microsoft.Authorization/roleAssignments?$filter=atScope()`: the
/// app's workspace roles as assignments at the workspace scope. Reading assignments needs read
/// access on the scope (`Microsoft.Authorization/roleAssignments/read`, in every Sentinel role).
fn role_assignments(sim: &Sim, caller: &Caller, path: &str, method: &Method, pairs: &[(String, String)]) -> Response {
    if *method != Method::GET {
        return arm_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", "only GET is simulated");
    }
    if param(pairs, "api-version") != Some("2022-04-01") {
        return arm_error(StatusCode::BAD_REQUEST, "InvalidApiVersionParameter", "use api-version 2022-04-01");
    }
    let scope = path.trim_end_matches('/').rsplitn(4, '/').nth(3).unwrap_or_default().to_string();
    let app_id = caller.app_id.as_str();
    let roles = &caller.permissions.workspace_roles;
    if !ArmAccess::Read.allowed_by(roles) {
        sim.stats.bump("arm.forbidden");
        return arm_authorization_failed(
            app_id,
            &object_id_of(app_id),
            "Microsoft.Authorization/roleAssignments/read",
            path,
        );
    }
    sim.stats.bump("arm.role_assignments.list");
    let sub = scope.split('/').nth(2).unwrap_or_default().to_string();
    let value: Vec<Value> = roles
        .iter()
        .filter_map(|r| match r.as_str() {
            "Microsoft Sentinel Responder" => Some("3e150937-b8fe-4cfb-8069-0eaf05ecd056"),
            "Microsoft Sentinel Reader" => Some("8d289c81-5878-46d4-8554-54e1e3d8b5cb"),
            "Microsoft Sentinel Contributor" => Some("ab8e14d6-4a74-4a29-9ba8-549422addade"),
            _ => None,
        })
        .map(|guid| {
            let name = Uuid::new_v5(&Uuid::NAMESPACE_URL, format!("{scope}{guid}").as_bytes());
            json!({
                "id": format!("{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"),
                "name": name.to_string(),
                "type": "Microsoft.Authorization/roleAssignments",
                "properties": {
                    "roleDefinitionId": format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}"),
                    "principalId": object_id_of(app_id),
                    "principalType": "ServicePrincipal",
                    "scope": scope,
                }
            })
        })
        .collect();
    Json(json!({"value": value})).into_response()
}

fn parse_target(sim: &Sim, path: &str) -> Result<Target, Response> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let eq = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
    let ws = &sim.config.workspace;
    let shape_ok = segs.len() >= 11
        && eq(segs[0], "subscriptions")
        && eq(segs[2], "resourceGroups")
        && eq(segs[4], "providers")
        && eq(segs[5], "Microsoft.OperationalInsights")
        && eq(segs[6], "workspaces")
        && eq(segs[8], "providers")
        && eq(segs[9], "Microsoft.SecurityInsights")
        && eq(segs[10], "incidents");
    if !shape_ok {
        return Err(arm_error(StatusCode::NOT_FOUND, "InvalidResourceType", "The resource type could not be found."));
    }
    if !(eq(segs[1], &ws.subscription_id) && eq(segs[3], &ws.resource_group) && eq(segs[7], &ws.name)) {
        return Err(arm_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!(
                "The Resource 'Microsoft.OperationalInsights/workspaces/{}' under resource group '{}' was not found.",
                segs[7], segs[3]
            ),
        ));
    }
    let rest: Vec<String> = segs[11..].iter().map(|s| s.to_string()).collect();
    let lower: Vec<String> = rest.iter().map(|s| s.to_ascii_lowercase()).collect();
    let t = match (rest.as_slice(), lower.iter().map(String::as_str).collect::<Vec<_>>().as_slice()) {
        ([], _) => Target::Incidents,
        ([id], _) => Target::Incident(id.clone()),
        ([id, _], [_, "comments"]) => Target::Comments(id.clone()),
        ([id, _, c], [_, "comments", _]) => Target::Comment(id.clone(), c.clone()),
        ([id, _], [_, "relations"]) => Target::Relations(id.clone()),
        ([id, _, r], [_, "relations", _]) => Target::Relation(id.clone(), r.clone()),
        ([id, _], [_, "alerts"]) => Target::Alerts(id.clone()),
        ([id, _], [_, "entities"]) => Target::Entities(id.clone()),
        _ => {
            return Err(arm_error(
                StatusCode::NOT_FOUND,
                "InvalidResourceType",
                "The resource type could not be found.",
            ))
        }
    };
    Ok(t)
}

fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.unwrap_or("").as_bytes()).into_owned().collect()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

async fn dispatch(
    State(sim): State<Arc<Sim>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: axum::body::Bytes,
) -> Response {
    let caller = match authorize(&sim, &headers, Audience::Arm, err) {
        Ok(c) => c,
        Err(r) => return r,
    };
    // ARM throttles before routing to a resource provider, per principal (faults.rs).
    if let Some(r) = super::faults::arm_throttle(&sim, uri.path(), &caller.app_id, &method) {
        return r;
    }
    let pairs = query_pairs(raw.as_deref());
    if uri.path().to_ascii_lowercase().ends_with("/providers/microsoft.authorization/roleassignments") {
        return role_assignments(&sim, &caller, uri.path(), &method, &pairs);
    }
    if uri.path().to_ascii_lowercase().ends_with("/providers/microsoft.insights/datacollectionrules") {
        return super::dcrs::list(&sim, &caller.permissions, uri.path(), param(&pairs, "api-version"));
    }
    if let Some(scope) = uri.path().to_ascii_lowercase().strip_suffix("/providers/microsoft.authorization/permissions")
    {
        if param(&pairs, "api-version") != Some("2022-04-01") {
            return arm_error(StatusCode::BAD_REQUEST, "InvalidApiVersionParameter", "use api-version 2022-04-01");
        }
        let held = if let Some(roles) = super::dcrs::roles_at_scope(&sim.config, &caller.permissions, scope) {
            roles
        } else if scope == sim.config.workspace.resource_id().to_ascii_lowercase() {
            &caller.permissions.workspace_roles
        } else {
            return arm_error(
                StatusCode::NOT_FOUND,
                "ResourceNotFound",
                format!("The resource '{scope}' was not found."),
            );
        };
        return super::permissions::permissions_answer(held);
    }
    match param(&pairs, "api-version") {
        None => {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            )
        }
        Some(v) if !API_VERSIONS.contains(&v) && !v.ends_with("-preview") => {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "InvalidApiVersionParameter",
                format!("The api-version '{v}' is invalid."),
            );
        }
        _ => {}
    }
    if let Some(r) = super::arm_rules::handle(&sim, &caller, uri.path(), &method, &body) {
        return r;
    }
    let target = match parse_target(&sim, uri.path()) {
        Ok(t) => t,
        Err(r) => return r,
    };
    // Azure RBAC, against the grants the token was issued with.
    let (action, access) = target.action(&method);
    if !access.allowed_by(&caller.permissions.workspace_roles) {
        sim.stats.bump("arm.forbidden");
        let oid = object_id_of(&caller.app_id);
        return arm_authorization_failed(&caller.app_id, &oid, action, uri.path());
    }
    let app = caller.app_id;
    let base = sim.sentinel_base();
    match (method.as_str(), target) {
        ("GET", Target::Incidents) => list_incidents(&sim, &headers, uri.path(), &pairs, &base),
        ("GET", Target::Incident(id)) => with_incident(&sim, &id, |w, name| {
            sim.stats.bump("arm.incidents.get");
            Json(w.sentinel[name].to_json(&base, name)).into_response()
        }),
        ("PUT", Target::Incident(id)) => put_incident(&sim, &id, &body, &base),
        ("DELETE", Target::Incident(id)) => {
            sim.stats.bump("arm.incidents.delete");
            let Ok(name) = Uuid::parse_str(&id) else {
                return empty(StatusCode::NO_CONTENT);
            };
            match sim.world().sentinel.remove(&name) {
                Some(_) => empty(StatusCode::OK),
                None => empty(StatusCode::NO_CONTENT),
            }
        }
        ("GET", Target::Comments(id)) => {
            let tie = sim.options().tie_order;
            with_incident(&sim, &id, |w, name| {
                sim.stats.bump("arm.comments.list");
                let r = &w.sentinel[name];
                let mut comments: Vec<&SentinelComment> = r.comments.values().collect();
                // Oldest first (not documented); equal times in the tie order, never by name.
                comments.sort_by(|a, b| {
                    a.properties
                        .created_time_utc
                        .cmp(&b.properties.created_time_utc)
                        .then_with(|| tie.key(a.seq).cmp(&tie.key(b.seq)))
                });
                let incident_id = SentinelRecord::arm_id(&base, name);
                let value: Vec<Value> = comments.iter().map(|c| c.to_json(&incident_id)).collect();
                Json(json!({"value": value})).into_response()
            })
        }
        ("GET", Target::Comment(id, cid)) => with_incident(&sim, &id, |w, name| {
            sim.stats.bump("arm.comments.get");
            match Uuid::parse_str(&cid).ok().and_then(|c| w.sentinel[name].comments.get(&c)) {
                Some(c) => Json(c.to_json(&SentinelRecord::arm_id(&base, name))).into_response(),
                None => arm_error(StatusCode::NOT_FOUND, "NotFound", format!("Comment '{cid}' not found")),
            }
        }),
        ("PUT", Target::Comment(id, cid)) => put_comment(&sim, &id, &cid, &body, &base, &app),
        ("DELETE", Target::Comment(id, cid)) => with_incident_mut(&sim, &id, |w, name| {
            sim.stats.bump("arm.comments.delete");
            let removed =
                Uuid::parse_str(&cid).ok().and_then(|c| w.sentinel.get_mut(name).and_then(|r| r.comments.remove(&c)));
            empty(if removed.is_some() { StatusCode::OK } else { StatusCode::NO_CONTENT })
        }),
        ("GET", Target::Relations(id)) => with_incident(&sim, &id, |w, name| {
            sim.stats.bump("arm.relations.list");
            Json(json!({"value": w.sentinel[name].relations.values().cloned().collect::<Vec<_>>()})).into_response()
        }),
        ("PUT", Target::Relation(id, rel)) => put_relation(&sim, &id, &rel, &body, &base),
        ("DELETE", Target::Relation(id, rel)) => with_incident_mut(&sim, &id, |w, name| {
            sim.stats.bump("arm.relations.delete");
            let removed = w.sentinel.get_mut(name).and_then(|r| r.relations.remove(&rel));
            empty(if removed.is_some() { StatusCode::OK } else { StatusCode::NO_CONTENT })
        }),
        ("POST", Target::Alerts(id)) => with_incident_mut(&sim, &id, |w, name| {
            super::alert_rule::run(w);
            super::alert_rule::list_alerts(&sim, w, name, &base)
        }),
        ("POST", Target::Entities(id)) => with_incident_mut(&sim, &id, |w, name| {
            super::alert_rule::run(w);
            super::alert_rule::list_entities(&sim, w, name, &base)
        }),
        _ => arm_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed", format!("{method} is not supported here")),
    }
}

fn incident_name(id: &str) -> Result<Uuid, Response> {
    Uuid::parse_str(id).map_err(|_| bad(format!("Incident id '{id}' is not a valid GUID")))
}

fn with_incident(sim: &Sim, id: &str, f: impl FnOnce(&World, &Uuid) -> Response) -> Response {
    let name = match incident_name(id) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let world = sim.world();
    if !world.sentinel.contains_key(&name) {
        sim.stats.bump("arm.incidents.notfound");
        return arm_error(StatusCode::NOT_FOUND, "NotFound", format!("Incident '{id}' not found"));
    }
    f(&world, &name)
}

fn with_incident_mut(sim: &Sim, id: &str, f: impl FnOnce(&mut World, &Uuid) -> Response) -> Response {
    let name = match incident_name(id) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let mut world = sim.world();
    if !world.sentinel.contains_key(&name) {
        return arm_error(StatusCode::NOT_FOUND, "NotFound", format!("Incident '{id}' not found"));
    }
    f(&mut world, &name)
}

/// The value of a `$filter`/`$orderby` property path (see [`LIST_PROPERTIES`]).
fn incident_prop(r: &SentinelRecord, prop: &str) -> Lit {
    let s = |v: &str| Lit::Str(v.to_string());
    let opt = |v: &Option<String>| v.as_ref().map_or(Lit::Null, |v| Lit::Str(v.clone()));
    let owner = |f: fn(&OwnerInfo) -> &Option<String>| r.writable.owner.as_ref().map_or(Lit::Null, |o| opt(f(o)));
    let w = &r.writable;
    match prop {
        "properties/title" => s(&w.title),
        "properties/description" => opt(&w.description),
        "properties/severity" => s(&w.severity),
        "properties/status" => s(&w.status),
        // Sentinel's known quirk: filtering on Undetermined matches nothing
        // (Azure/azure-rest-api-specs#27165).
        "properties/classification" => match w.classification.as_deref() {
            Some("Undetermined") | None => Lit::Null,
            Some(c) => s(c),
        },
        "properties/classificationReason" => opt(&w.classification_reason),
        "properties/classificationComment" => opt(&w.classification_comment),
        "properties/createdTimeUtc" => Lit::Time(r.read_only.created_time_utc),
        "properties/lastModifiedTimeUtc" => Lit::Time(r.read_only.last_modified_time_utc),
        "properties/firstActivityTimeUtc" => w.first_activity_time_utc.map_or(Lit::Null, Lit::Time),
        "properties/lastActivityTimeUtc" => w.last_activity_time_utc.map_or(Lit::Null, Lit::Time),
        "properties/incidentNumber" => Lit::Num(r.read_only.incident_number as f64),
        "properties/providerName" => s(&r.read_only.provider_name),
        "properties/providerIncidentId" => s(&r.read_only.provider_incident_id),
        "properties/owner/objectId" => owner(|o| &o.object_id),
        "properties/owner/email" => owner(|o| &o.email),
        "properties/owner/assignedTo" => owner(|o| &o.assigned_to),
        "properties/owner/userPrincipalName" => owner(|o| &o.user_principal_name),
        "properties/owner/ownerType" => owner(|o| &o.owner_type),
        // `name` is accepted but matches nothing (Azure/azure-rest-api-specs#28207).
        _ => Lit::Null,
    }
}

fn unknown_property(prop: &str) -> Response {
    bad(format!("Could not find a property named '{prop}'"))
}

/// One `$orderby` item: a property and a direction.
fn parse_order_by(o: &str) -> Result<Vec<(String, bool)>, Response> {
    let mut keys = Vec::new();
    for item in o.split(',') {
        let mut it = item.split_whitespace();
        let prop = it.next().unwrap_or("").to_string();
        let asc = match it.next().map(|d| d.to_ascii_lowercase()) {
            None => true,
            Some(d) if d == "asc" => true,
            Some(d) if d == "desc" => false,
            Some(d) => return Err(bad(format!("'{d}' is not a valid $orderby direction"))),
        };
        if it.next().is_some() || prop.is_empty() {
            return Err(bad(format!("$orderby '{o}' is not valid")));
        }
        if !LIST_PROPERTIES.contains(&prop.as_str()) {
            return Err(unknown_property(&prop));
        }
        keys.push((prop, asc));
    }
    Ok(keys)
}

fn compare(a: &Lit, b: &Lit) -> std::cmp::Ordering {
    use std::cmp::Ordering::*;
    match (a, b) {
        (Lit::Time(x), Lit::Time(y)) => x.cmp(y),
        (Lit::Num(x), Lit::Num(y)) => x.partial_cmp(y).unwrap_or(Equal),
        (Lit::Str(x), Lit::Str(y)) => x.to_ascii_lowercase().cmp(&y.to_ascii_lowercase()),
        (Lit::Null, Lit::Null) => Equal,
        (Lit::Null, _) => Less,
        (_, Lit::Null) => Greater,
        _ => Equal,
    }
}

fn list_incidents(sim: &Sim, headers: &HeaderMap, path: &str, pairs: &[(String, String)], base: &str) -> Response {
    sim.stats.bump("arm.incidents.list");
    let top = match param(pairs, "$top").map(str::parse::<usize>) {
        None => DEFAULT_PAGE,
        Some(Ok(n)) if (1..=TOP_MAX).contains(&n) => n,
        Some(_) => return bad(format!("The value of $top must be between 1 and {TOP_MAX}.")),
    };
    let clauses = match param(pairs, "$filter").map(filter::parse).transpose() {
        Ok(c) => c.unwrap_or_default(),
        Err(e) => return bad(format!("Invalid $filter: {e}")),
    };
    if let Some(c) = clauses.iter().find(|c| !LIST_PROPERTIES.contains(&c.prop.as_str())) {
        sim.stats.bump("arm.incidents.list.bad_filter");
        return unknown_property(&c.prop);
    }
    // Without `$orderby`: last modified first (not documented; assumed).
    let order = match param(pairs, "$orderby") {
        None => vec![("properties/lastModifiedTimeUtc".to_string(), false)],
        Some(o) => match parse_order_by(o) {
            Ok(k) => k,
            Err(r) => return r,
        },
    };
    let skip = match param(pairs, "$skipToken") {
        None => 0,
        Some(t) => match base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse().ok())
        {
            Some(n) => n,
            None => return bad("Invalid $skipToken"),
        },
    };
    let tie = sim.options().tie_order;
    let world = sim.world();
    let mut items: Vec<(&Uuid, &SentinelRecord)> = world
        .sentinel
        .iter()
        .filter(|(_, r)| clauses.iter().all(|c| filter::matches(c, &incident_prop(r, &c.prop))))
        .collect();
    items.sort_by(|a, b| {
        order
            .iter()
            .map(|(prop, asc)| {
                let o = compare(&incident_prop(a.1, prop), &incident_prop(b.1, prop));
                if *asc {
                    o
                } else {
                    o.reverse()
                }
            })
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| tie.key(a.1.seq).cmp(&tie.key(b.1.seq)))
    });
    let value: Vec<Value> = items.iter().skip(skip).take(top).map(|(n, r)| r.to_json(base, n)).collect();
    let mut body = json!({"value": value});
    if skip + top < items.len() {
        let host = headers.get("host").and_then(|h| h.to_str().ok()).unwrap_or("localhost");
        let mut ser = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("$skipToken")) {
            ser.append_pair(k, v);
        }
        ser.append_pair(
            "$skipToken",
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.encode((skip + top).to_string()),
        );
        body["nextLink"] = json!(format!("http://{host}{path}?{}", ser.finish()));
    }
    Json(body).into_response()
}

/// Validates writable properties as Sentinel does (beyond the shape `parse_incident_put` checks).
pub fn validate(w: &IncidentWritable) -> Result<(), String> {
    if w.title.trim().is_empty() {
        return Err("Incident title is required".into());
    }
    if vocab::canonical(&w.severity, vocab::SENTINEL_SEVERITY).is_none() {
        return Err(format!("Severity '{}' is not valid", w.severity));
    }
    if vocab::canonical(&w.status, vocab::SENTINEL_STATUS).is_none() {
        return Err(format!("Status '{}' is not valid", w.status));
    }
    if let Some(d) = &w.description {
        if d.chars().count() > MAX_DESCRIPTION {
            return Err(format!(
                "Description length {} exceeds the maximum of {MAX_DESCRIPTION} characters",
                d.chars().count()
            ));
        }
    }
    if let Some(c) = &w.classification {
        if vocab::canonical(c, vocab::SENTINEL_CLASSIFICATION).is_none() {
            return Err(format!("Classification '{c}' is not valid"));
        }
    }
    if let Some(r) = &w.classification_reason {
        if vocab::canonical(r, vocab::SENTINEL_CLASSIFICATION_REASON).is_none() {
            return Err(format!("ClassificationReason '{r}' is not valid"));
        }
    }
    if w.status == "Closed" {
        let Some(c) = &w.classification else {
            return Err("Incident classification is required when closing an incident".into());
        };
        // Pairing assumed from the portal's close dialog; reported: BenignPositive without a
        // reason is a 400 "classification 'BenignPositive' must have classificationReason".
        let allowed: &[&str] = match c.as_str() {
            "TruePositive" => &["SuspiciousActivity"],
            "BenignPositive" => &["SuspiciousButExpected"],
            "FalsePositive" => &["IncorrectAlertLogic", "InaccurateData"],
            _ => &[],
        };
        match (&w.classification_reason, allowed.is_empty()) {
            (None, false) => return Err(format!("classification '{c}' must have classificationReason")),
            (Some(r), false) if !allowed.contains(&r.as_str()) => {
                return Err(format!("classificationReason '{r}' does not match classification '{c}'"))
            }
            (Some(r), true) => return Err(format!("classification '{c}' cannot have classificationReason '{r}'")),
            _ => {}
        }
    }
    if w.labels.iter().any(|l| l.label_name.trim().is_empty()) {
        return Err("Label name is required".into());
    }
    Ok(())
}

/// The owner as the server stores it: filled from the directory when `objectId` is a known user.
pub fn resolve_owner(world: &World, owner: Option<OwnerInfo>) -> Option<OwnerInfo> {
    let owner = owner?;
    match owner.object_id.as_deref().and_then(|id| world.user_by_upn_or_id(id)) {
        Some(u) => Some(OwnerInfo {
            object_id: Some(u.id.clone()),
            email: Some(u.mail.clone()),
            assigned_to: Some(u.display_name.clone()),
            user_principal_name: Some(u.user_principal_name.clone()),
            owner_type: Some("User".into()),
        }),
        None if owner.object_id.is_some() => Some(OwnerInfo { owner_type: Some("Unknown".into()), ..owner }),
        None => Some(owner),
    }
}

fn put_incident(sim: &Arc<Sim>, id: &str, body: &[u8], base: &str) -> Response {
    sim.stats.bump("arm.incidents.put");
    let name = match incident_name(id) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let put = match parse_incident_put(body) {
        Ok(p) => p,
        Err(e) => return bad(format!("The request content was invalid and could not be deserialized: {e}")),
    };
    if !put.read_only_sent.is_empty() {
        sim.stats.bump("arm.incidents.put.read_only_sent");
        if sim.options().reject_read_only_properties {
            return bad(format!(
                "The request content has read-only properties that cannot be set: {}",
                put.read_only_sent.join(", ")
            ));
        }
    }
    let mut props = put.properties;
    if let Err(e) = validate(&props) {
        return bad(e);
    }
    let mut world = sim.world();
    let now = world.now();
    let existing = world.sentinel.get(&name).cloned();
    if let (Some(sent), Some(cur)) = (&put.etag, &existing) {
        if sent != &cur.etag {
            sim.stats.bump("arm.incidents.conflict");
            return arm_error(
                StatusCode::CONFLICT,
                "Conflict",
                format!("Newer version of resource '{name}' exists. Data was not saved"),
            );
        }
    }
    // The server owns label types: a label the incident already has as AutoAssigned stays so,
    // every other label a client sends is a User label (assumed).
    let auto: Vec<String> = existing
        .iter()
        .flat_map(|r| r.writable.labels.iter())
        .filter(|l| l.label_type == "AutoAssigned")
        .map(|l| l.label_name.clone())
        .collect();
    for l in props.labels.iter_mut() {
        l.label_type = if auto.contains(&l.label_name) { "AutoAssigned".into() } else { "User".into() };
    }
    props.owner = resolve_owner(&world, props.owner);
    let created = existing.is_none();
    let mut record = match existing {
        Some(r) => r,
        None => {
            let number = world.next_incident_number;
            world.next_incident_number += 1;
            SentinelRecord {
                writable: props.clone(),
                read_only: IncidentReadOnly {
                    created_time_utc: now,
                    last_modified_time_utc: now,
                    incident_number: number,
                    incident_url: format!(
                        "https://portal.azure.com/#asset/Microsoft_Azure_Security_Insights/Incident{}",
                        SentinelRecord::arm_id(base, &name)
                    ),
                    provider_name: "Azure Sentinel".into(),
                    provider_incident_id: number.to_string(),
                    related_analytic_rule_ids: vec![],
                },
                etag: String::new(),
                comments: BTreeMap::new(),
                relations: BTreeMap::new(),
                writes: 0,
                seq: world.next_seq(),
            }
        }
    };
    record.writable = props;
    record.read_only.last_modified_time_utc = now;
    record.etag = World::new_etag();
    record.writes += 1;
    let out = record.to_json(base, &name);
    world.sentinel.insert(name, record);
    drop(world);
    super::automation::fire(sim, name, if created { "Create" } else { "Update" });
    (if created { StatusCode::CREATED } else { StatusCode::OK }, Json(out)).into_response()
}

/// Adds a comment to `record` (server side of a comment PUT and of an analyst's comment).
/// Whether the incident's etag and `lastModifiedTimeUtc` change is the `touch` option.
pub fn store_comment(
    world: &mut World,
    name: &Uuid,
    comment_name: Uuid,
    message: String,
    author: Value,
    touch: bool,
) -> Result<(bool, SentinelComment), String> {
    let now = world.now();
    let seq = world.next_seq();
    let Some(r) = world.sentinel.get_mut(name) else {
        return Err("no such incident".into());
    };
    let existing = r.comments.get(&comment_name);
    if existing.is_none() && r.comments.len() >= MAX_COMMENTS {
        return Err(format!("Incident has reached the maximum of {MAX_COMMENTS} comments"));
    }
    let created = existing.map_or(now, |c| c.properties.created_time_utc);
    let comment = SentinelComment {
        name: comment_name,
        etag: World::new_etag(),
        properties: CommentProperties { message, created_time_utc: created, last_modified_time_utc: now, author },
        seq: existing.map_or(seq, |c| c.seq),
    };
    let exists = existing.is_some();
    r.comments.insert(comment_name, comment.clone());
    if touch {
        r.read_only.last_modified_time_utc = now;
        r.etag = World::new_etag();
    }
    Ok((exists, comment))
}

fn put_comment(sim: &Arc<Sim>, id: &str, cid: &str, body: &[u8], base: &str, app: &str) -> Response {
    sim.stats.bump("arm.comments.put");
    let Ok(comment_name) = Uuid::parse_str(cid) else {
        return bad(format!("Comment id '{cid}' is not a valid GUID"));
    };
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.pointer("/properties/message").and_then(Value::as_str).map(str::to_string));
    let Some(message) = message.filter(|m| !m.trim().is_empty()) else {
        return bad("properties.message is required");
    };
    if message.chars().count() > MAX_COMMENT_CHARS {
        return bad(format!("Comment message exceeds the maximum of {MAX_COMMENT_CHARS} characters"));
    }
    let touch = sim.options().sentinel_comment_touches_incident;
    let author = json!({"objectId": object_id_of(app), "name": "xdrsync", "userPrincipalName": null, "email": null});
    let response =
        with_incident_mut(sim, id, |w, name| match store_comment(w, name, comment_name, message, author, touch) {
            Ok((exists, comment)) => (
                if exists { StatusCode::OK } else { StatusCode::CREATED },
                Json(comment.to_json(&SentinelRecord::arm_id(base, name))),
            )
                .into_response(),
            Err(e) => bad(e),
        });
    // "Incident updated" automation also fires on added comments (Learn), touched or not.
    if response.status().is_success() {
        if let Ok(name) = Uuid::parse_str(id) {
            super::automation::fire(sim, name, "Update");
        }
    }
    response
}

fn put_relation(sim: &Sim, id: &str, rel: &str, body: &[u8], base: &str) -> Response {
    sim.stats.bump("arm.relations.put");
    let name_ok = (3..=63).contains(&rel.len()) && rel.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if !name_ok {
        return bad(format!("Relation name '{rel}' must match ^[a-zA-Z0-9-]{{3,63}}$"));
    }
    let related = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.pointer("/properties/relatedResourceId").and_then(Value::as_str).map(str::to_string));
    let Some(related) = related else {
        return bad("properties.relatedResourceId is required");
    };
    with_incident_mut(sim, id, |w, name| super::alert_rule::put_relation(sim, w, name, rel, &related, base))
}
