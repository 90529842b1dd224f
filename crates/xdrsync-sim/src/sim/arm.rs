//! Simulated Sentinel incidents API (ARM Microsoft.SecurityInsights). Paths are matched
//! case-insensitively (ARM returns `Incidents` and accepts `incidents`). Strict like the real
//! service: api-version required, workspace must exist, `$top` ≤ 1000, PUT needs title/severity/
//! status, Closed needs a classification and (except Undetermined) a matching reason,
//! description ≤ 5,000, a stale body etag is a 409, read-only properties are ignored and
//! `providerName`/`incidentNumber` are set by the server, ≤ 100 comments of ≤ 30,000 chars.

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

use super::entra::authorize;
use super::faults::{arm_error, empty};
use super::filter::{self, Lit};
use super::world::{Audience, SentinelRecord, World};
use super::Sim;
use xdrsync_core::domain::sentinel::*;

pub const API_VERSIONS: [&str; 7] =
    ["2020-01-01", "2021-04-01", "2022-11-01", "2023-02-01", "2024-03-01", "2024-09-01", "2025-09-01"];
pub const TOP_MAX: usize = 1000;
const DEFAULT_PAGE: usize = 50;
pub const MAX_DESCRIPTION: usize = 5000;
pub const MAX_COMMENTS: usize = 100;
pub const MAX_COMMENT_CHARS: usize = 30_000;

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
    let app = match authorize(&sim, &headers, Audience::Arm, err) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let pairs = query_pairs(raw.as_deref());
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
    let target = match parse_target(&sim, uri.path()) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let base = format!("{}/providers/Microsoft.SecurityInsights", sim.config.workspace.resource_id());
    match (method.as_str(), target) {
        ("GET", Target::Incidents) => list_incidents(&sim, &headers, uri.path(), &pairs, &base),
        ("GET", Target::Incident(id)) => with_incident(&sim, &id, |w, name| {
            sim.stats.bump("arm.incidents.get");
            Json(incident_json(&base, name, &w.sentinel[name])).into_response()
        }),
        ("PUT", Target::Incident(id)) => put_incident(&sim, &id, &body, &base, &app),
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
        ("GET", Target::Comments(id)) => with_incident(&sim, &id, |w, name| {
            sim.stats.bump("arm.comments.list");
            let value: Vec<Value> =
                w.sentinel[name].comments.values().map(|c| serde_json::to_value(c).unwrap_or(Value::Null)).collect();
            Json(json!({"value": value})).into_response()
        }),
        ("GET", Target::Comment(id, cid)) => with_incident(&sim, &id, |w, name| {
            sim.stats.bump("arm.comments.get");
            match Uuid::parse_str(&cid).ok().and_then(|c| w.sentinel[name].comments.get(&c)) {
                Some(c) => Json(c.clone()).into_response(),
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
        ("POST", Target::Alerts(id)) => with_incident(&sim, &id, |_, _| Json(json!({"value": []})).into_response()),
        ("POST", Target::Entities(id)) => {
            with_incident(&sim, &id, |_, _| Json(json!({"entities": [], "metaData": []})).into_response())
        }
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

pub fn incident_json(base: &str, name: &Uuid, r: &SentinelRecord) -> Value {
    let props = SentinelProperties { writable: r.writable.clone(), read_only: r.read_only.clone() };
    json!({
        "id": format!("{base}/Incidents/{name}"),
        "name": name.to_string(),
        "etag": r.etag,
        "type": "Microsoft.SecurityInsights/Incidents",
        "properties": props,
    })
}

fn incident_prop(r: &SentinelRecord, prop: &str) -> Lit {
    match prop.to_ascii_lowercase().as_str() {
        "properties/lastmodifiedtimeutc" => r.read_only.last_modified_time_utc.map_or(Lit::Null, Lit::Time),
        "properties/createdtimeutc" => r.read_only.created_time_utc.map_or(Lit::Null, Lit::Time),
        "properties/status" => Lit::Str(r.writable.status.to_string()),
        "properties/severity" => Lit::Str(r.writable.severity.to_string()),
        "properties/title" => Lit::Str(r.writable.title.clone()),
        "properties/incidentnumber" => r.read_only.incident_number.map_or(Lit::Null, |n| Lit::Num(n as f64)),
        // Sentinel's known quirk: filtering on Undetermined classification matches nothing.
        "properties/classification" => match &r.writable.classification {
            Some(SentinelClassification::Undetermined) | None => Lit::Null,
            Some(c) => Lit::Str(c.to_string()),
        },
        _ => Lit::Null,
    }
}

fn list_incidents(sim: &Sim, headers: &HeaderMap, path: &str, pairs: &[(String, String)], base: &str) -> Response {
    sim.stats.bump("arm.incidents.list");
    let top = match param(pairs, "$top").map(str::parse::<usize>) {
        None => DEFAULT_PAGE,
        Some(Ok(n)) if (1..=TOP_MAX).contains(&n) => n,
        Some(_) => return bad(format!("$top must be between 1 and {TOP_MAX}")),
    };
    let clauses = match param(pairs, "$filter").map(filter::parse).transpose() {
        Ok(c) => c.unwrap_or_default(),
        Err(e) => return bad(format!("Invalid $filter: {e}")),
    };
    let (order_prop, asc) = match param(pairs, "$orderby").map(|o| o.to_ascii_lowercase()) {
        None => ("properties/lastmodifiedtimeutc".to_string(), false),
        Some(o) => {
            let mut it = o.split_whitespace();
            let prop = it.next().unwrap_or("").to_string();
            let dir = it.next().unwrap_or("asc");
            if !["properties/lastmodifiedtimeutc", "properties/createdtimeutc", "properties/incidentnumber"]
                .contains(&prop.as_str())
                || !["asc", "desc"].contains(&dir)
            {
                return bad(format!("$orderby '{o}' is not supported"));
            }
            (prop, dir == "asc")
        }
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
    let world = sim.world();
    let mut items: Vec<(&Uuid, &SentinelRecord)> = world
        .sentinel
        .iter()
        .filter(|(_, r)| clauses.iter().all(|c| filter::matches(c, &incident_prop(r, &c.prop))))
        .collect();
    items.sort_by(|a, b| {
        let key = |r: &SentinelRecord| match incident_prop(r, &order_prop) {
            Lit::Time(t) => t.unix_timestamp_nanos(),
            Lit::Num(n) => n as i128,
            _ => 0,
        };
        let o = key(a.1).cmp(&key(b.1)).then_with(|| a.0.cmp(b.0));
        if asc {
            o
        } else {
            o.reverse()
        }
    });
    let value: Vec<Value> = items.iter().skip(skip).take(top).map(|(n, r)| incident_json(base, n, r)).collect();
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

/// Validates writable properties as Sentinel does.
pub fn validate(w: &SentinelWritable) -> Result<(), String> {
    if w.title.trim().is_empty() {
        return Err("Incident title is required".into());
    }
    if matches!(w.severity, SentinelSeverity::Unrecognized(_)) {
        return Err(format!("Severity '{}' is not valid", w.severity));
    }
    if matches!(w.status, SentinelStatus::Unrecognized(_)) {
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
    if let Some(SentinelClassification::Unrecognized(c)) = &w.classification {
        return Err(format!("Classification '{c}' is not valid"));
    }
    if let Some(ClassificationReason::Unrecognized(r)) = &w.classification_reason {
        return Err(format!("ClassificationReason '{r}' is not valid"));
    }
    if w.status == SentinelStatus::Closed {
        let Some(c) = &w.classification else {
            return Err("Incident classification is required when closing an incident".into());
        };
        let allowed: &[ClassificationReason] = match c {
            SentinelClassification::Undetermined => &[],
            SentinelClassification::TruePositive => &[ClassificationReason::SuspiciousActivity],
            SentinelClassification::BenignPositive => &[ClassificationReason::SuspiciousButExpected],
            SentinelClassification::FalsePositive => {
                &[ClassificationReason::IncorrectAlertLogic, ClassificationReason::InaccurateData]
            }
            SentinelClassification::Unrecognized(_) => &[],
        };
        match (&w.classification_reason, allowed.is_empty()) {
            (None, false) => return Err(format!("classification '{c}' must have classificationReason")),
            (Some(r), false) if !allowed.contains(r) => {
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

fn put_incident(sim: &Arc<Sim>, id: &str, body: &[u8], base: &str, _app: &str) -> Response {
    sim.stats.bump("arm.incidents.put");
    let name = match incident_name(id) {
        Ok(n) => n,
        Err(r) => return r,
    };
    let parsed: Result<SentinelIncidentBody, _> = serde_json::from_slice(body);
    let mut body = match parsed {
        Ok(b) => b,
        Err(e) => return bad(format!("The request content was invalid and could not be deserialized: {e}")),
    };
    if let Err(e) = validate(&body.properties) {
        return bad(e);
    }
    let mut world = sim.world();
    let now = world.now();
    let existing = world.sentinel.get(&name).cloned();
    if let (Some(sent), Some(cur)) = (&body.etag, &existing) {
        if sent != &cur.etag {
            sim.stats.bump("arm.incidents.conflict");
            return arm_error(
                StatusCode::CONFLICT,
                "Conflict",
                format!("Newer version of resource '{name}' exists. Data was not saved"),
            );
        }
    }
    // The server owns label types and fills the owner from the directory.
    for l in body.properties.labels.iter_mut() {
        l.label_type = Some(LabelType::User);
    }
    if let Some(owner) = body.properties.owner.as_mut() {
        match owner.object_id.as_deref().and_then(|id| world.user_by_upn_or_id(id)) {
            Some(u) => {
                *owner = Owner {
                    object_id: Some(u.id.clone()),
                    email: Some(u.mail.clone()),
                    assigned_to: Some(u.display_name.clone()),
                    user_principal_name: Some(u.user_principal_name.clone()),
                    owner_type: Some(OwnerType::User),
                }
            }
            None if owner.object_id.is_some() => owner.owner_type = Some(OwnerType::Unknown),
            None => {}
        }
    }
    let created = existing.is_none();
    let mut record = existing.unwrap_or_else(|| {
        let number = world.next_incident_number;
        world.next_incident_number += 1;
        SentinelRecord {
            writable: body.properties.clone(),
            read_only: SentinelReadOnly {
                created_time_utc: Some(now),
                incident_number: Some(number),
                incident_url: Some(format!(
                    "https://portal.azure.com/#asset/Microsoft_Azure_Security_Insights/Incident{base}/Incidents/{name}"
                )),
                provider_name: Some("Azure Sentinel".into()),
                provider_incident_id: Some(number.to_string()),
                ..Default::default()
            },
            etag: String::new(),
            comments: BTreeMap::new(),
            relations: BTreeMap::new(),
            writes: 0,
        }
    });
    record.writable = body.properties;
    record.read_only.last_modified_time_utc = Some(now);
    record.read_only.additional_data = Some(additional_data(&record));
    record.etag = World::new_etag();
    record.writes += 1;
    let out = incident_json(base, &name, &record);
    world.sentinel.insert(name, record);
    drop(world);
    super::automation::fire(sim, name, if created { "Create" } else { "Update" });
    (if created { StatusCode::CREATED } else { StatusCode::OK }, Json(out)).into_response()
}

fn additional_data(r: &SentinelRecord) -> Value {
    json!({"alertsCount": 0, "bookmarksCount": 0, "commentsCount": r.comments.len(), "alertProductNames": [], "tactics": [], "techniques": []})
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
    let response = with_incident_mut(sim, id, |w, name| {
        let now = w.now();
        let Some(r) = w.sentinel.get_mut(name) else {
            return empty(StatusCode::NOT_FOUND);
        };
        let exists = r.comments.contains_key(&comment_name);
        if !exists && r.comments.len() >= MAX_COMMENTS {
            return bad(format!("Incident has reached the maximum of {MAX_COMMENTS} comments"));
        }
        let created = r.comments.get(&comment_name).and_then(|c| c.properties.created_time_utc).unwrap_or(now);
        let comment = SentinelComment {
            id: format!("{base}/Incidents/{name}/Comments/{comment_name}"),
            name: comment_name.to_string(),
            etag: Some(World::new_etag()),
            properties: SentinelCommentProperties {
                message,
                created_time_utc: Some(created),
                last_modified_time_utc: Some(now),
                author: Some(json!({"objectId": app, "name": "xdrsync", "userPrincipalName": null, "email": null})),
            },
        };
        r.comments.insert(comment_name, comment.clone());
        r.read_only.last_modified_time_utc = Some(now);
        r.read_only.additional_data = Some(additional_data(r));
        r.etag = World::new_etag();
        (if exists { StatusCode::OK } else { StatusCode::CREATED }, Json(comment)).into_response()
    });
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
    with_incident_mut(sim, id, |w, name| {
        let Some(r) = w.sentinel.get_mut(name) else {
            return empty(StatusCode::NOT_FOUND);
        };
        let value = json!({
            "id": format!("{base}/Incidents/{name}/relations/{rel}"),
            "name": rel, "etag": World::new_etag(), "type": "Microsoft.SecurityInsights/Incidents/relations",
            "properties": {"relatedResourceId": related, "relatedResourceName": related.rsplit('/').next().unwrap_or(""),
                           "relatedResourceType": "", "relatedResourceKind": ""}
        });
        let created = r.relations.insert(rel.to_string(), value.clone()).is_none();
        (if created { StatusCode::CREATED } else { StatusCode::OK }, Json(value)).into_response()
    })
}
