//! Simulated Entra ID: `POST /{tenant}/oauth2/v2.0/token` (client credentials, checked) and the
//! App Service managed-identity endpoint `GET /msi/token`; plus the bearer check every other
//! simulated API uses (right audience, not expired).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use time::{Duration, OffsetDateTime};

use super::world::{Audience, IssuedToken};
use super::Sim;

pub fn routes() -> Router<Arc<Sim>> {
    Router::new().route("/{tenant}/oauth2/v2.0/token", post(token)).route("/msi/token", get(managed_identity))
}

fn aad_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let body = serde_json::json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description}"),
        "error_codes": [code],
        "timestamp": super::timefmt::format(OffsetDateTime::now_utc()),
        "trace_id": uuid::Uuid::new_v4().to_string(),
        "correlation_id": uuid::Uuid::new_v4().to_string(),
    });
    (status, Json(body)).into_response()
}

fn issue(sim: &Sim, audience: Audience, app_id: &str) -> (String, u64) {
    let token = format!("sim.{}", uuid::Uuid::new_v4().simple());
    let lifetime = sim.config.token_lifetime_secs;
    // Graph application roles travel in the token; Azure RBAC is checked per request.
    let roles = if audience == Audience::Graph { sim.permissions().graph_app_roles } else { Default::default() };
    sim.world().tokens.insert(
        token.clone(),
        IssuedToken {
            audience,
            expires: OffsetDateTime::now_utc() + Duration::seconds(lifetime as i64),
            app_id: app_id.to_string(),
            roles,
        },
    );
    (token, lifetime)
}

async fn token(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    sim.stats.bump("entra.token");
    if !tenant.eq_ignore_ascii_case(&sim.config.tenant_id) {
        return aad_error(StatusCode::BAD_REQUEST, "invalid_request", 90002, &format!("Tenant '{tenant}' not found."));
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    if !client_id.eq_ignore_ascii_case(&sim.config.client_id) {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory."),
        );
    }
    if form.get("client_secret") != Some(&sim.config.client_secret) {
        return aad_error(StatusCode::UNAUTHORIZED, "invalid_client", 7000215, "Invalid client secret provided.");
    }
    let scope = form.get("scope").cloned().unwrap_or_default();
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    let audience = match scopes.as_slice() {
        [one] if one.ends_with("/.default") => Audience::from_scope_or_resource(one),
        _ => None,
    };
    let Some(audience) = audience else {
        return aad_error(StatusCode::BAD_REQUEST, "invalid_scope", 70011, &format!("The provided value for scope '{scope}' is not valid. Client credential flows must have one scope value with /.default suffixed to the resource identifier."));
    };
    let (access_token, lifetime) = issue(&sim, audience, &client_id);
    Json(serde_json::json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": access_token})).into_response()
}

async fn managed_identity(
    State(sim): State<Arc<Sim>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    sim.stats.bump("entra.msi");
    let header_ok =
        headers.get("x-identity-header").and_then(|v| v.to_str().ok()) == Some(sim.config.identity_header.as_str());
    if !header_ok {
        return (StatusCode::UNAUTHORIZED, Json(serde_json::json!({"error": "unauthorized", "error_description": "X-IDENTITY-HEADER is missing or wrong"}))).into_response();
    }
    if q.get("api-version").map(String::as_str) != Some("2019-08-01") {
        return (StatusCode::BAD_REQUEST, Json(serde_json::json!({"error": "invalid_request", "error_description": "api-version 2019-08-01 is required"}))).into_response();
    }
    let resource = q.get("resource").cloned().unwrap_or_default();
    let Some(audience) = Audience::from_scope_or_resource(&resource) else {
        return (StatusCode::BAD_REQUEST, Json(serde_json::json!({"error": "invalid_resource", "error_description": format!("unknown resource '{resource}'")}))).into_response();
    };
    let app = q.get("client_id").cloned().unwrap_or_else(|| "system-assigned".into());
    let (access_token, lifetime) = issue(&sim, audience, &app);
    let expires_on = (OffsetDateTime::now_utc().unix_timestamp() + lifetime as i64).to_string();
    Json(serde_json::json!({"access_token": access_token, "expires_on": expires_on, "resource": resource, "token_type": "Bearer", "client_id": app})).into_response()
}

/// Who called, from the bearer token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub app_id: String,
    /// The token's `roles` claim (Graph application roles; empty for other audiences).
    pub roles: std::collections::BTreeSet<String>,
}

impl Caller {
    /// Whether the token carries one of `any_of`.
    pub fn has_any(&self, any_of: &[&str]) -> bool {
        any_of.iter().any(|r| self.roles.contains(*r))
    }
}

/// Checks `Authorization: Bearer …` for `audience`; returns the caller, or the 401.
pub fn authorize(
    sim: &Sim,
    headers: &HeaderMap,
    audience: Audience,
    error: fn(StatusCode, &str, String) -> Response,
) -> Result<Caller, Response> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let Some(token) = token else {
        return Err(error(StatusCode::UNAUTHORIZED, "InvalidAuthenticationToken", "Access token is empty.".into()));
    };
    let world = sim.world();
    match world.tokens.get(token) {
        None => Err(error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token validation failure. Invalid token.".into(),
        )),
        Some(t) if t.expires <= OffsetDateTime::now_utc() => Err(error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Lifetime validation failed, the token is expired.".into(),
        )),
        Some(t) if t.audience != audience => Err(error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token validation failure. Invalid audience.".into(),
        )),
        Some(t) => Ok(Caller { app_id: t.app_id.clone(), roles: t.roles.clone() }),
    }
}
