//! Simulated Logs Ingestion API: `POST /dataCollectionRules/{dcr}/streams/{stream}`. Strict
//! like the service: api-version required, known DCR and declared stream, JSON array of
//! objects, optional gzip, more than 1 MB compressed *or* uncompressed is a 413, 204 on success.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use serde_json::Value;

use super::entra::authorize;
use super::faults::{arm_error, empty};
use super::permissions::{logs_forbidden, object_id_of, MONITORING_METRICS_PUBLISHER};
use super::world::Audience;
use super::Sim;

/// The per-call limit, in bytes (the service's "1 MB").
pub const MAX_BYTES: usize = 1_000_000;

pub fn routes() -> Router<Arc<Sim>> {
    Router::new()
        .route("/dataCollectionRules/{dcr}/streams/{stream}", post(ingest))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024 * 1024))
}

fn err(status: StatusCode, code: &str, message: String) -> Response {
    arm_error(status, code, message)
}

async fn ingest(
    State(sim): State<Arc<Sim>>,
    Path((dcr, stream)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let caller = match authorize(&sim, &headers, Audience::Monitor, err) {
        Ok(c) => c,
        Err(r) => return r,
    };
    sim.stats.bump("logs.post");
    // Azure RBAC on the DCR, evaluated per request.
    if !sim.permissions().dcr_roles.contains(MONITORING_METRICS_PUBLISHER) {
        sim.stats.bump("logs.forbidden");
        let ws = &sim.config.workspace;
        let dcr_arm_id = format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Insights/dataCollectionRules/xdrsync",
            ws.subscription_id, ws.resource_group
        );
        let oid = object_id_of(&caller.app_id);
        return logs_forbidden(&sim.config.dcr_immutable_id, &dcr_arm_id, &sim.config.tenant_id, &oid);
    }
    if !q.contains_key("api-version") {
        return err(StatusCode::BAD_REQUEST, "MissingApiVersion", "api-version is required".into());
    }
    if !dcr.eq_ignore_ascii_case(&sim.config.dcr_immutable_id) {
        return err(StatusCode::NOT_FOUND, "DcrNotFound", format!("Data collection rule '{dcr}' was not found"));
    }
    if !sim.config.streams.iter().any(|s| s == &stream) {
        return err(
            StatusCode::BAD_REQUEST,
            "InvalidStream",
            format!("Stream '{stream}' is not declared in the data collection rule"),
        );
    }
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !content_type.to_ascii_lowercase().starts_with("application/json") {
        return err(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            "Content-Type must be application/json".into(),
        );
    }
    if body.len() > MAX_BYTES {
        sim.stats.bump("logs.too_large");
        return err(
            StatusCode::PAYLOAD_TOO_LARGE,
            "ContentLengthLimitExceeded",
            format!("Request body of {} bytes exceeds the {MAX_BYTES}-byte limit", body.len()),
        );
    }
    let gzip =
        headers.get("content-encoding").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    let raw = if gzip {
        let mut out = Vec::new();
        // Read one byte past the limit so an oversize body is detected without inflating it all.
        let mut dec = flate2::read::GzDecoder::new(&body[..]).take(MAX_BYTES as u64 + 1);
        if dec.read_to_end(&mut out).is_err() {
            return err(StatusCode::BAD_REQUEST, "InvalidContentEncoding", "Body is not valid gzip".into());
        }
        out
    } else {
        body.to_vec()
    };
    if raw.len() > MAX_BYTES {
        sim.stats.bump("logs.too_large");
        return err(
            StatusCode::PAYLOAD_TOO_LARGE,
            "ContentLengthLimitExceeded",
            format!("Uncompressed body exceeds the {MAX_BYTES}-byte limit"),
        );
    }
    let rows = match serde_json::from_slice::<Value>(&raw) {
        Ok(Value::Array(rows)) if rows.iter().all(Value::is_object) => rows,
        Ok(_) => return err(StatusCode::BAD_REQUEST, "InvalidPayload", "Body must be a JSON array of objects".into()),
        Err(e) => return err(StatusCode::BAD_REQUEST, "InvalidJson", format!("Body is not valid JSON: {e}")),
    };
    if let Some(i) = rows
        .iter()
        .position(|r| r.get("TimeGenerated").and_then(Value::as_str).is_none_or(|t| super::timefmt::parse(t).is_err()))
    {
        return err(StatusCode::BAD_REQUEST, "InvalidPayload", format!("Row {i} has no valid TimeGenerated"));
    }
    // Log Analytics reserves these names; a stream that sends them is misdeclared.
    const RESERVED: [&str; 7] = ["_ResourceId", "id", "_SubscriptionId", "TenantId", "Type", "UniqueId", "Title"];
    if let Some((i, col)) =
        rows.iter().enumerate().find_map(|(i, r)| RESERVED.iter().find(|c| r.get(**c).is_some()).map(|c| (i, *c)))
    {
        return err(
            StatusCode::BAD_REQUEST,
            "InvalidPayload",
            format!("Row {i} uses the reserved column name '{col}'"),
        );
    }
    sim.stats.bump("logs.rows");
    let mut world = sim.world();
    super::alert_rule::on_ingest(&sim, &mut world, &stream, &rows);
    world.logs.entry(stream).or_default().extend(rows);
    empty(StatusCode::NO_CONTENT)
}
