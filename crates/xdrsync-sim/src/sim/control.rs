//! The simulator's control API under `/_sim`: seed incidents, make analyst edits on either side
//! (bumping modification times as the services do), merge incidents, inject faults, read what
//! the simulated services hold, read per-API request counts, change the open behaviours
//! (`/_sim/options`) and the app's grants (`/_sim/permissions`). No auth: loopback test tool.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::arm::{resolve_owner, store_comment, validate};
use super::faults::{arm_error, FaultRule};
use super::model::{vocab, GraphComment, GraphView, IncidentLabel, OwnerInfo, SentinelRecord};
use super::permissions::{Permissions, RoleKind};
use super::seed::{edit_rng, insert_alert, make_alert, seed, SeedSpec};
use super::world::{SimUser, World};
use super::{Sim, SimOptions};

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
        .route("/_sim/options", get(options).patch(patch_options))
        .route("/_sim/permissions", get(permissions).put(set_permissions))
        .route("/_sim/permissions/withhold", post(withhold))
        .route("/_sim/permissions/grant", post(grant))
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

/// Everything the control API renders shows evolvable members and comments oldest first.
const FULL_VIEW: GraphView = GraphView { evolvable: true, comments_newest_first: false };

async fn defender_incidents(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let world = sim.world();
    Json(json!(world.incidents.values().map(|i| i.to_json(FULL_VIEW)).collect::<Vec<_>>()))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AlertQuery {
    incident_id: Option<String>,
}

async fn defender_alerts(State(sim): State<Arc<Sim>>, Query(q): Query<AlertQuery>) -> Json<Value> {
    let world = sim.world();
    let alerts: Vec<Value> = world
        .alerts
        .values()
        .filter(|a| q.incident_id.is_none() || a.incident_id == q.incident_id)
        .map(|a| a.to_json(FULL_VIEW))
        .collect();
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
    let status = edit.remove("status").and_then(|v| v.as_str().map(str::to_string));
    let author =
        edit.remove("by").and_then(|v| v.as_str().map(str::to_string)).unwrap_or_else(|| "alice@contoso.com".into());
    let Some(incident) = world.incident_mut(&id) else {
        return arm_error(StatusCode::NOT_FOUND, "NotFound", format!("incident {id}"));
    };
    let mut updated = incident.clone();
    if let Err(e) = updated.apply_patch(&edit) {
        return bad(e);
    }
    if let Some(s) = status {
        match vocab::canonical(&s, vocab::INCIDENT_STATUS) {
            Some(s) => updated.status = s.to_string(),
            None => return bad(format!("status '{s}' is not valid")),
        }
    }
    if let Some(text) = comment {
        updated.comments.push(GraphComment {
            comment: text,
            created_by_display_name: author.clone(),
            created_date_time: now,
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
        insert_alert(&mut world, a);
    }
    Json(updated.to_json(FULL_VIEW)).into_response()
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
        a.last_update_date_time = now;
    }
    if let Some(s) = world.incident_mut(&m.source) {
        s.status = "redirected".into();
        s.redirect_incident_id = Some(m.target.clone());
        s.last_update_date_time = now;
    }
    if let Some(t) = world.incident_mut(&m.target) {
        t.last_update_date_time = now;
    }
    Json(json!({"merged": m.source, "into": m.target})).into_response()
}

async fn sentinel_incidents(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let base = sim.sentinel_base();
    let world = sim.world();
    let out: Vec<Value> = world
        .sentinel
        .iter()
        .map(|(name, r)| {
            let mut v = r.to_json(&base, name);
            let id = SentinelRecord::arm_id(&base, name);
            let mut comments: Vec<_> = r.comments.values().collect();
            comments.sort_by_key(|c| c.seq);
            v["comments"] = json!(comments.iter().map(|c| c.to_json(&id)).collect::<Vec<_>>());
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
    let touch_for_comment = sim.options().sentinel_comment_touches_incident;
    let mut world = sim.world();
    let now = world.now();
    let owner = match edit.get("ownerUpn") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(upn)) => match world.user_by_upn_or_id(upn) {
            Some(u) => {
                resolve_owner(&world, Some(OwnerInfo { object_id: Some(u.id.clone()), ..Default::default() })).map(Some)
            }
            None => return bad(format!("no user {upn}")),
        },
        Some(_) => return bad("ownerUpn must be a string or null"),
    };
    let Some(record) = world.sentinel.get(&name) else {
        return arm_error(StatusCode::NOT_FOUND, "NotFound", format!("incident {name}"));
    };
    let mut w = record.writable.clone();
    let text = |k: &str| edit.get(k).and_then(Value::as_str);
    // Members are stored in the documented spelling; an unknown one is refused by `validate`.
    let member = |v: &str, members: &[&'static str]| vocab::canonical(v, members).map_or(v.to_string(), String::from);
    if let Some(s) = text("status") {
        w.status = member(s, vocab::SENTINEL_STATUS);
    }
    if let Some(s) = text("severity") {
        w.severity = member(s, vocab::SENTINEL_SEVERITY);
    }
    if edit.contains_key("classification") {
        w.classification = text("classification").map(|c| member(c, vocab::SENTINEL_CLASSIFICATION));
    }
    if edit.contains_key("classificationReason") {
        w.classification_reason =
            text("classificationReason").map(|c| member(c, vocab::SENTINEL_CLASSIFICATION_REASON));
    }
    if let Some(c) = text("classificationComment") {
        w.classification_comment = Some(c.to_string());
    }
    if let Some(o) = owner {
        w.owner = o;
    }
    if let Some(labels) = edit.get("labels").and_then(Value::as_array) {
        let auto: Vec<&IncidentLabel> = w.labels.iter().filter(|l| l.label_type == "AutoAssigned").collect();
        w.labels = labels
            .iter()
            .filter_map(Value::as_str)
            .map(|n| match auto.iter().find(|l| l.label_name == n) {
                Some(l) => (*l).clone(),
                None => IncidentLabel::user(n),
            })
            .collect();
    }
    if let Err(e) = validate(&w) {
        return bad(e);
    }
    let only_comment = edit.keys().all(|k| k == "comment" || k == "by");
    let changed = w != record.writable;
    if let Some(record) = world.sentinel.get_mut(&name) {
        record.writable = w;
    }
    if let Some(message) = text("comment") {
        let by = text("by");
        let author =
            json!({"name": by.unwrap_or("Alice Analyst"), "userPrincipalName": by.unwrap_or("alice@contoso.com")});
        let touch = touch_for_comment || !only_comment;
        if let Err(e) = store_comment(&mut world, &name, Uuid::new_v4(), message.to_string(), author, touch) {
            return bad(e);
        }
    }
    if changed || !only_comment {
        if let Some(record) = world.sentinel.get_mut(&name) {
            record.read_only.last_modified_time_utc = now.max(record.read_only.last_modified_time_utc);
            record.etag = World::new_etag();
        }
    }
    let base = sim.sentinel_base();
    let out = world.sentinel[&name].to_json(&base, &name);
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

async fn options(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(json!(sim.options()))
}

/// Merges the given options into the current ones (fields not given keep their value).
async fn patch_options(State(sim): State<Arc<Sim>>, Json(patch): Json<serde_json::Map<String, Value>>) -> Response {
    let mut current = json!(sim.options());
    for (k, v) in patch {
        current[k] = v;
    }
    match serde_json::from_value::<SimOptions>(current) {
        Ok(o) => {
            *sim.options.lock().unwrap_or_else(|p| p.into_inner()) = o.clone();
            Json(json!(o)).into_response()
        }
        Err(e) => bad(format!("invalid options: {e}")),
    }
}

async fn permissions(State(sim): State<Arc<Sim>>) -> Json<Value> {
    Json(json!(sim.permissions()))
}

/// Replaces the app's grants. An issued token keeps the grants of its issue time less any
/// withheld since (`Permissions::still_held`): a grant reaches only tokens issued afterwards, so
/// a client holding an older one keeps being refused until it fetches a new one, as with Entra.
fn replace_permissions(sim: &Sim, new: Permissions) {
    *sim.permissions.lock().unwrap_or_else(|p| p.into_inner()) = new;
}

async fn set_permissions(State(sim): State<Arc<Sim>>, Json(p): Json<Permissions>) -> Json<Value> {
    replace_permissions(&sim, p);
    Json(json!(sim.permissions()))
}

#[derive(Deserialize)]
struct RoleChange {
    role: String,
    /// A hunting DCR's immutable id: the change applies on that rule only.
    #[serde(default)]
    dcr: Option<String>,
}

async fn withhold(State(sim): State<Arc<Sim>>, Json(r): Json<RoleChange>) -> Json<Value> {
    let mut p = sim.permissions();
    let kind: RoleKind = match &r.dcr {
        Some(dcr) => {
            p.set_on_dcr(dcr, &r.role, false);
            RoleKind::Dcr
        }
        None => p.withhold(&r.role),
    };
    replace_permissions(&sim, p);
    Json(json!({"withheld": r.role, "kind": format!("{kind:?}"), "permissions": sim.permissions()}))
}

async fn grant(State(sim): State<Arc<Sim>>, Json(r): Json<RoleChange>) -> Json<Value> {
    let mut p = sim.permissions();
    let kind: RoleKind = match &r.dcr {
        Some(dcr) => {
            p.set_on_dcr(dcr, &r.role, true);
            RoleKind::Dcr
        }
        None => p.grant(&r.role),
    };
    replace_permissions(&sim, p);
    Json(json!({"granted": r.role, "kind": format!("{kind:?}"), "permissions": sim.permissions()}))
}

async fn config(State(sim): State<Arc<Sim>>) -> Json<Value> {
    let c = &sim.config;
    Json(json!({"tenantId": c.tenant_id, "clientId": c.client_id, "workspaceResourceId": c.workspace.resource_id(),
        "dcrImmutableId": c.dcr_immutable_id, "streams": c.streams,
        "options": sim.options(), "permissions": sim.permissions()}))
}

async fn set_automation(State(sim): State<Arc<Sim>>, Json(a): Json<super::Automation>) -> StatusCode {
    *sim.automation.lock().unwrap_or_else(|p| p.into_inner()) = Some(a);
    StatusCode::NO_CONTENT
}

async fn clear_automation(State(sim): State<Arc<Sim>>) -> StatusCode {
    *sim.automation.lock().unwrap_or_else(|p| p.into_inner()) = None;
    StatusCode::NO_CONTENT
}
