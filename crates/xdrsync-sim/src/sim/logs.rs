//! Simulated Logs Ingestion API: `POST /dataCollectionRules/{dcr}/streams/{stream}`. Strict
//! like the service: api-version required, known DCR and declared stream, JSON array of
//! objects, optional gzip, more than 1 MB compressed *or* uncompressed is a 413, more than 2 GB or
//! 12,000 calls a minute per DCR a 429 with `Retry-After` (`SimOptions`), 204 on success.
//! Columns a stream does not declare are dropped silently, as the service does (declarations
//! from the committed infra files, `stream_columns.rs`); the rows kept reach the rule engine.

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
    // Azure RBAC on the DCR, against the grants the token was issued with.
    if !caller.permissions.dcr_roles.contains(MONITORING_METRICS_PUBLISHER) {
        sim.stats.bump("logs.forbidden");
        let dcr_arm_id = super::permissions::dcr_resource_id(&sim.config);
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
    if let Some(wait) = over_dcr_limits(&sim, &dcr, raw.len() as u64) {
        sim.stats.bump("logs.throttled");
        let mut r = err(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            "The data collection rule's limit of data or requests per minute was reached".into(),
        );
        r.headers_mut().insert("retry-after", wait.to_string().parse().expect("digits are a valid header"));
        return r;
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
    let rows = keep_declared(&sim, &stream, rows);
    sim.stats.bump("logs.rows");
    let mut world = sim.world();
    super::alert_rule::on_ingest(&sim, &mut world, &stream, &rows);
    world.logs.entry(stream).or_default().extend(rows);
    empty(StatusCode::NO_CONTENT)
}

/// The rows with only the columns `stream` declares: the service drops any other column without
/// a word (counted here as `logs.undeclared_columns`, so tests can prove no column is lost).
fn keep_declared(sim: &Sim, stream: &str, mut rows: Vec<Value>) -> Vec<Value> {
    let Some(declared) = super::stream_columns::declared(stream) else { return rows };
    for r in rows.iter_mut().filter_map(Value::as_object_mut) {
        let before = r.len();
        r.retain(|k, _| declared.iter().any(|(c, _)| c == k));
        for _ in r.len()..before {
            sim.stats.bump("logs.undeclared_columns");
        }
    }
    rows
}

/// Counts one call of `bytes` against the DCR's sliding minute; `Some(seconds to wait)` when it
/// would pass the data or request limit (the call is then not counted).
fn over_dcr_limits(sim: &Sim, dcr: &str, bytes: u64) -> Option<u64> {
    let options = sim.options();
    let now = std::time::Instant::now();
    let minute = std::time::Duration::from_secs(60);
    let mut windows = sim.logs_window.lock().unwrap_or_else(|p| p.into_inner());
    let window = windows.entry(dcr.to_ascii_lowercase()).or_default();
    while window.front().is_some_and(|(t, _)| now.duration_since(*t) >= minute) {
        window.pop_front();
    }
    let sent: u64 = window.iter().map(|(_, b)| b).sum();
    if window.len() >= options.logs_requests_per_minute as usize || sent + bytes > options.logs_bytes_per_minute {
        let oldest = window.front().map_or(now, |(t, _)| *t);
        return Some((minute.saturating_sub(now.duration_since(oldest))).as_secs().max(1));
    }
    window.push_back((now, bytes));
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::stream_columns::{declared, triggers_declared, ALERTS_STREAM, TRIGGERS_STREAM};
    use super::super::SimConfig;
    use super::*;

    #[test]
    fn columns_a_stream_does_not_declare_are_dropped_and_counted() {
        let sim = Sim::new(SimConfig::demo());
        let rows =
            vec![json!({"TimeGenerated": "2026-01-01T00:00:00Z", "SystemAlertId": "a", "Bogus": 1, "Other": "x"})];
        let kept = keep_declared(&sim, ALERTS_STREAM, rows);
        assert_eq!(kept, vec![json!({"TimeGenerated": "2026-01-01T00:00:00Z", "SystemAlertId": "a"})]);
        assert_eq!(sim.stats.snapshot()["logs.undeclared_columns"], 2);
        // The trigger stream is declared exactly when the repository declares its columns.
        assert_eq!(sim.config.streams.iter().any(|s| s == TRIGGERS_STREAM), triggers_declared());
        assert_eq!(declared(TRIGGERS_STREAM).is_some(), triggers_declared());
    }
}
