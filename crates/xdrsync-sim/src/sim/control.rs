//! The simulator's control API under `/_sim`: seed incidents, make analyst edits on either side
//! (bumping modification times as the services do), merge incidents, inject faults, read what
//! the simulated services hold, and read per-API request counts. No auth: loopback test tool.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::arm::{incident_json, validate};
use super::faults::{arm_error, FaultRule};
use super::graph::apply_patch;
use super::seed::{edit_rng, make_alert, seed, SeedSpec};
use super::world::{SimUser, World};
use super::Sim;
use xdrsync_core::domain::defender::{AlertComment, IncidentStatus};
use xdrsync_core::domain::sentinel::*;

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/_sim/seed", post(seed_incidents))
        .route("/_sim/defender/incidents", get(defender_incidents))
        .route("/_sim/defender/alerts", get(defender_alerts))
        .route("/_sim/defender/incidents/{id}/edit", post(edit_defender))
        .route("/_sim/defender/merge", post(merge))
        .route("/_sim/sentinel/incidents", get(sentinel_incidents))
        .route("/_sim/sentinel/incidents/{name}/edit", post(edit_sentinel))
        .route("/_sim/logs/{stream}", get(logs))
        .route("/_sim/stats", get(stats))
        .route("/_sim/stats/reset", post(reset_stats))
        .route("/_sim/faults", axum::routing::put(set_faults).delete(clear_faults))
        .route("/_sim/users", get(users).post(add_user))
        .route("/_sim/config", get(config))
        .route("/_sim/automation", axum::routing::put(set_automation).delete(clear_automation))
}

fn bad(msg: impl Into<String>) -> Response {
    arm_error(StatusCode::BAD_REQUEST, "BadRequest", msg)
}

async fn seed_incidents(State(sim): State<Arc<Sim>>, Json(spec): Json<SeedSpec>) -> Response {
    if spec.count > 100_000 || spec.max_alerts > 10_000 || spec.big_alerts > 10_000 {
        return bad("seed spec too large");
    }
    let ids = seed(&mut sim.world(), &sim.config.tenant_id, &spec);
    Json(json!({"ids": ids})).into_response()
}

async fn defender_incidents(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let world = sim.world();
    Json(json!(world.incidents.values().collect::<Vec<_>>()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AlertQuery {
    incident_id: Option<String>,
}

async fn defender_alerts(State(sim): State<Arc<Sim>>, Query(q): Query<AlertQuery>) -> Json<Value> {
    let world = sim.world();
    let alerts: Vec<_> =
        world.alerts.values().filter(|a| q.incident_id.is_none() || a.incident_id == q.incident_id).collect();
    Json(json!(alerts))
}

/// An analyst's edit in the Defender portal: any PATCH-able field, plus `status` values the
/// API cannot set (inProgress, awaitingAction), `addAlerts` and `comment`.
async fn edit_defender(
    State(sim): State<Arc<Sim>>,
    Path(id): Path<String>,
    Json(mut edit): Json<serde_json::Map<String, Value>>,
) -> Response {
    let mut world = sim.world();
    let now = world.now();
    let add_alerts = edit.remove("addAlerts").and_then(|v| v.as_u64()).unwrap_or(0) as usize;
    let comment = edit.remove("comment").and_then(|v| v.as_str().map(str::to_string));
    let status = edit.remove("status").and_then(|v| v.as_str().map(IncidentStatus::parse));
    let author =
        edit.remove("by").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_else(|| "alice@contoso.com".into());
    let Some(incident) = world.incident_mut(&id) else {
        return arm_error(StatusCode::NOT_FOUND, "NotFound", format!("incident {id}"));
    };
    let mut updated = incident.clone();
    if let Err(e) = apply_patch(&mut updated, &edit) {
        return bad(e);
    }
    if let Some(s) = status {
        if matches!(s, IncidentStatus::Unrecognized(_)) {
            return bad(format!("status '{s}' is not valid"));
        }
        updated.status = s;
    }
    if let Some(text) = comment {
        updated.comments.push(AlertComment {
            comment: Some(text),
            created_by_display_name: Some(author.clone()),
            created_date_time: Some(now),
        });
    }
    updated.last_update_date_time = now;
    updated.last_modified_by = Some(author);
    *incident = updated.clone();
    let tenant = sim.config.tenant_id.clone();
    let mut rng = edit_rng(&world);
    for _ in 0..add_alerts {
        world.next_alert_seq += 1;
        let a = make_alert(&mut rng, world.next_alert_seq, &tenant, &id, now);
        world.alerts.insert(a.id.clone(), a);
    }
    Json(updated).into_response()
}

#[derive(Deserialize)]
struct MergeRequest {
    source: String,
    target: String,
}

/// Defender merges `source` into `target`: the source is `redirected` to the target and the
/// target gets all the source's alerts; both change `lastUpdateDateTime`.
async fn merge(State(sim): State<Arc<Sim>>, Json(m): Json<MergeRequest>) -> Response {
    let mut world = sim.world();
    if world.incident(&m.source).is_none() || world.incident(&m.target).is_none() || m.source == m.target {
        return bad("source and target must be two existing incidents");
    }
    let now = world.now();
    for a in world.alerts.values_mut().filter(|a| a.incident_id.as_deref() == Some(m.source.as_str())) {
        a.incident_id = Some(m.target.clone());
        a.last_update_date_time = Some(now);
    }
    if let Some(s) = world.incident_mut(&m.source) {
        s.status = IncidentStatus::Redirected;
        s.redirect_incident_id = Some(m.target.clone());
        s.last_update_date_time = now;
    }
    if let Some(t) = world.incident_mut(&m.target) {
        t.last_update_date_time = now;
    }
    Json(json!({"merged": m.source, "into": m.target})).into_response()
}

async fn sentinel_incidents(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let base = format!("{}/providers/Microsoft.SecurityInsights", sim.config.workspace.resource_id());
    let world = sim.world();
    let out: Vec<Value> = world
        .sentinel
        .iter()
        .map(|(name, r)| {
            let mut v = incident_json(&base, name, r);
            v["comments"] = json!(r.comments.values().collect::<Vec<_>>());
            v["relations"] = json!(r.relations.values().collect::<Vec<_>>());
            v["writes"] = json!(r.writes);
            v
        })
        .collect();
    Json(json!(out))
}

/// An analyst's edit in Sentinel: `status`, `severity`, `classification`,
/// `classificationReason`, `classificationComment`, `ownerUpn` (null unassigns), `labels`
/// (names), `comment`. Validated like a PUT.
async fn edit_sentinel(
    State(sim): State<Arc<Sim>>,
    Path(name): Path<String>,
    Json(edit): Json<serde_json::Map<String, Value>>,
) -> Response {
    let Ok(name) = Uuid::parse_str(&name) else {
        return bad("name must be a GUID");
    };
    let mut world = sim.world();
    let now = world.now();
    let owner = match edit.get("ownerUpn") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(upn)) => match world.user_by_upn_or_id(upn) {
            Some(u) => Some(Some(Owner {
                object_id: Some(u.id.clone()),
                email: Some(u.mail.clone()),
                assigned_to: Some(u.display_name.clone()),
                user_principal_name: Some(u.user_principal_name.clone()),
                owner_type: Some(OwnerType::User),
            })),
            None => return bad(format!("no user {upn}")),
        },
        Some(_) => return bad("ownerUpn must be a string or null"),
    };
    let Some(record) = world.sentinel.get_mut(&name) else {
        return arm_error(StatusCode::NOT_FOUND, "NotFound", format!("incident {name}"));
    };
    let mut w = record.writable.clone();
    let text = |k: &str| edit.get(k).and_then(Value::as_str);
    if let Some(s) = text("status") {
        w.status = SentinelStatus::parse(s);
    }
    if let Some(s) = text("severity") {
        w.severity = SentinelSeverity::parse(s);
    }
    if edit.contains_key("classification") {
        w.classification = text("classification").map(SentinelClassification::parse);
    }
    if edit.contains_key("classificationReason") {
        w.classification_reason = text("classificationReason").map(ClassificationReason::parse);
    }
    if let Some(c) = text("classificationComment") {
        w.classification_comment = Some(c.to_string());
    }
    if let Some(o) = owner {
        w.owner = o;
    }
    if let Some(labels) = edit.get("labels").and_then(Value::as_array) {
        w.labels = labels.iter().filter_map(Value::as_str).map(Label::user).collect();
    }
    if let Err(e) = validate(&w) {
        return bad(e);
    }
    record.writable = w;
    if let Some(message) = text("comment") {
        let cid = Uuid::new_v4();
        record.comments.insert(
            cid,
            SentinelComment {
                id: String::new(),
                name: cid.to_string(),
                etag: Some(World::new_etag()),
                properties: SentinelCommentProperties {
                    message: message.to_string(),
                    created_time_utc: Some(now),
                    last_modified_time_utc: Some(now),
                    author: Some(json!({"name": text("by").unwrap_or("Alice Analyst"), "userPrincipalName": text("by").unwrap_or("alice@contoso.com")})),
                },
            },
        );
    }
    record.read_only.last_modified_time_utc = Some(now);
    record.etag = World::new_etag();
    let base = format!("{}/providers/Microsoft.SecurityInsights", sim.config.workspace.resource_id());
    let out = incident_json(&base, &name, record);
    drop(world);
    super::automation::fire(&sim, name, "Update");
    Json(out).into_response()
}

async fn logs(State(sim): State<Arc<Sim>>, Path(stream): Path<String>) -> Json<Value> {
    Json(json!(sim.world().logs.get(&stream).cloned().unwrap_or_default()))
}

async fn stats(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(json!(sim.stats.snapshot()))
}

async fn reset_stats(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.stats.reset();
    StatusCode::NO_CONTENT
}

async fn set_faults(State(sim): State<Arc<Sim>>, Json(rules): Json<Vec<FaultRule>>) -> Response {
    if rules.iter().any(|r| !(0.0..=1.0).contains(&r.rate)) {
        return bad("rate must be within 0..=1");
    }
    sim.faults.set(rules);
    StatusCode::NO_CONTENT.into_response()
}

async fn clear_faults(State(sim): State<Arc<Sim>>) -> StatusCode {
    sim.faults.set(vec![]);
    StatusCode::NO_CONTENT
}

async fn users(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(json!(sim.world().users))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct NewUser {
    upn: String,
    display_name: String,
}

async fn add_user(State(sim): State<Arc<Sim>>, Json(u): Json<NewUser>) -> Json<Value> {
    let user = SimUser::new(&u.upn, &u.display_name);
    sim.world().users.push(user.clone());
    Json(json!(user))
}

async fn config(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let c = &sim.config;
    Json(json!({"tenantId": c.tenant_id, "clientId": c.client_id, "workspaceResourceId": c.workspace.resource_id(),
        "dcrImmutableId": c.dcr_immutable_id, "streams": c.streams}))
}

async fn set_automation(State(sim): State<Arc<Sim>>, Json(a): Json<super::Automation>) -> StatusCode {
    *sim.automation.lock().unwrap_or_else(|p| p.into_inner()) = Some(a);
    StatusCode::NO_CONTENT
}

async fn clear_automation(State(sim): State<Arc<Sim>>) -> StatusCode {
    *sim.automation.lock().unwrap_or_else(|p| p.into_inner()) = None;
    StatusCode::NO_CONTENT
}
