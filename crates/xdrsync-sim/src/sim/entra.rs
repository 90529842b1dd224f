//! Simulated Entra ID: `POST /{tenant}/oauth2/v2.0/token` (client credentials with a client
//! secret, a federated client assertion or a certificate assertion (`entra_cert`), checked) and the App Service managed-identity
//! endpoint `GET /msi/token`; plus the bearer check every other simulated API uses (right
//! audience, not expired).
//!
//! Tokens are JWT-shaped (`header.payload.signature`, base64url) with the claims a client may
//! read (`aud`, `iss`, `sub`, `oid`, `appid`, `tid`, `roles`, `exp`), signed with a key only the
//! simulator knows, so a managed identity's token can be checked wherever it is presented.
//! A client assertion is accepted as Entra does for a federated identity credential (Learn,
//! "Configure an application to trust a managed identity"; "workload identity federation"): a
//! token the simulator's managed identity issued, unexpired, whose `iss`, `sub` and `aud` equal the
//! app registration's federated credential. Error codes: AADSTS700211 (issuer), AADSTS700213
//! (subject), AADSTS700212 (audience), AADSTS70021 (no credential), AADSTS700024 (expired) —
//! the codes Entra documents for these cases; the error field (`invalid_client`) is assumed.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use serde_json::{json, Value};
use sha2::Digest;
use time::{Duration, OffsetDateTime};

use super::world::{Audience, IssuedToken};
use super::{Sim, SimConfig};

/// The demo's user-assigned managed identity (client id).
pub const DEMO_MANAGED_IDENTITY: &str = "5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d";
/// The audience a federated credential trusts in the public cloud.
pub const TOKEN_EXCHANGE: &str = "api://AzureADTokenExchange";
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Signs the simulator's tokens (a stand-in for Entra's signing keys; not a secret).
const SIGNING_KEY: &[u8] = b"xdrsync-sim-token-signing-key";

/// A federated identity credential of the app registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedCredential {
    pub issuer: String,
    pub subject: String,
    pub audience: String,
}

impl FederatedCredential {
    /// The credential that trusts the managed identity `client_id` of `tenant`: issuer
    /// `https://login.microsoftonline.com/{tenant}/v2.0`, subject its object (principal) id.
    pub fn trusting(tenant: &str, client_id: &str) -> Self {
        Self {
            issuer: issuer_of(tenant),
            subject: super::permissions::object_id_of(client_id),
            audience: TOKEN_EXCHANGE.into(),
        }
    }
}

fn issuer_of(tenant: &str) -> String {
    format!("https://login.microsoftonline.com/{tenant}/v2.0")
}

impl SimConfig {
    /// Settings for xdrsync with one Graph credential kind (`managed-identity`, `federated`,
    /// `secret`), running "in Azure": the managed-identity endpoint is the simulator's.
    pub fn settings_with_credential(&self, addr: std::net::SocketAddr, kind: &str) -> Vec<(String, String)> {
        let mut v: Vec<(String, String)> = self
            .settings_for(addr)
            .into_iter()
            .filter(|(k, _)| match kind {
                "managed-identity" => k != "XDRSYNC_CLIENT_ID" && k != "XDRSYNC_CLIENT_SECRET",
                "federated" => k != "XDRSYNC_CLIENT_SECRET",
                _ => true,
            })
            .collect();
        v.extend([
            ("IDENTITY_ENDPOINT".to_string(), format!("http://{addr}/msi/token")),
            ("IDENTITY_HEADER".to_string(), self.identity_header.clone()),
            ("XDRSYNC_MANAGED_IDENTITY_CLIENT_ID".to_string(), self.managed_identity_client_id.clone()),
            ("XDRSYNC_GRAPH_CREDENTIAL".to_string(), kind.to_string()),
        ]);
        v
    }
}

pub fn routes() -> Router<Arc<Sim>> {
    Router::new().route("/{tenant}/oauth2/v2.0/token", post(token)).route("/msi/token", get(managed_identity))
}

fn aad_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description}"),
        "error_codes": [code],
        "timestamp": super::timefmt::format(OffsetDateTime::now_utc()),
        "trace_id": uuid::Uuid::new_v4().to_string(),
        "correlation_id": uuid::Uuid::new_v4().to_string(),
    });
    (status, Json(body)).into_response()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn signature(signed: &str) -> String {
    let mut h = sha2::Sha256::new();
    h.update(SIGNING_KEY);
    h.update(signed.as_bytes());
    b64(&h.finalize())
}

/// A signed JWT-shaped token with `claims`.
fn mint(claims: &Value) -> String {
    let signed = format!("{}.{}", b64(br#"{"alg":"HS256","typ":"JWT"}"#), b64(claims.to_string().as_bytes()));
    let sig = signature(&signed);
    format!("{signed}.{sig}")
}

/// The claims of a token this simulator signed; `None` for anything else.
fn verified_claims(token: &str) -> Option<Value> {
    let (signed, sig) = token.rsplit_once('.')?;
    if signature(signed) != sig {
        return None;
    }
    let payload = signed.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Issues a token for `resource` to `app_id`, carrying the grants of this moment.
fn issue(sim: &Sim, audience: Audience, resource: &str, app_id: &str) -> (String, u64) {
    let lifetime = sim.config.token_lifetime_secs;
    let permissions = sim.permissions();
    // Graph application roles travel in the token as its `roles` claim.
    let roles = if audience == Audience::Graph { permissions.graph_app_roles.clone() } else { Default::default() };
    let now = OffsetDateTime::now_utc();
    let expires = now + Duration::seconds(lifetime as i64);
    let oid = super::permissions::object_id_of(app_id);
    let token = mint(&json!({
        "aud": resource.trim_end_matches("/.default"),
        "iss": issuer_of(&sim.config.tenant_id),
        "tid": sim.config.tenant_id,
        "sub": oid,
        "oid": oid,
        "appid": app_id,
        "roles": roles,
        "iat": now.unix_timestamp(),
        "nbf": now.unix_timestamp(),
        "exp": expires.unix_timestamp(),
        "jti": uuid::Uuid::new_v4().to_string(),
    }));
    sim.world()
        .tokens
        .insert(token.clone(), IssuedToken { audience, expires, app_id: app_id.to_string(), roles, permissions });
    (token, lifetime)
}

/// Checks a federated client assertion against the app registration's federated credential.
fn check_assertion(sim: &Sim, assertion: &str) -> Result<(), Response> {
    let refuse = |code: u32, text: &str| aad_error(StatusCode::UNAUTHORIZED, "invalid_client", code, text);
    let Some(claims) = verified_claims(assertion) else {
        return Err(refuse(50013, "Assertion failed signature validation."));
    };
    let claim = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or_default().to_string();
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    if exp <= OffsetDateTime::now_utc().unix_timestamp() {
        return Err(refuse(700024, "Client assertion is not within its valid time range."));
    }
    let Some(fic) = &sim.config.federated_credential else {
        return Err(refuse(70021, "No matching federated identity record found for presented assertion."));
    };
    if claim("iss") != fic.issuer {
        return Err(refuse(
            700211,
            &format!("No matching federated identity record found for presented assertion issuer '{}'.", claim("iss")),
        ));
    }
    if claim("sub") != fic.subject {
        return Err(refuse(
            700213,
            &format!("No matching federated identity record found for presented assertion subject '{}'.", claim("sub")),
        ));
    }
    if !claim("aud").eq_ignore_ascii_case(&fic.audience) {
        return Err(refuse(
            700212,
            &format!(
                "No matching federated identity record found for presented assertion audience '{}'.",
                claim("aud")
            ),
        ));
    }
    Ok(())
}

async fn token(
    State(sim): State<Arc<Sim>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
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
    match (form.get("client_secret"), form.get("client_assertion_type"), form.get("client_assertion")) {
        (Some(secret), _, _) if *secret == sim.config.client_secret => sim.stats.bump("entra.secret"),
        (Some(_), _, _) => {
            return aad_error(StatusCode::UNAUTHORIZED, "invalid_client", 7000215, "Invalid client secret provided.")
        }
        (None, Some(kind), Some(assertion))
            if kind == CLIENT_ASSERTION_TYPE && super::entra_cert::is_certificate_assertion(assertion) =>
        {
            // `aud` must be this token endpoint, as the client addressed it.
            let host = headers.get("host").and_then(|v| v.to_str().ok()).unwrap_or_default();
            let token_url = format!("http://{host}/{tenant}/oauth2/v2.0/token");
            let refuse = |code: u32, text: &str| aad_error(super::entra_cert::REFUSED, "invalid_client", code, text);
            let registered = sim.config.client_certificate.as_deref();
            if let Err(r) =
                super::entra_cert::check(registered, &client_id, &token_url, assertion, &sim.seen_jti, refuse)
            {
                sim.stats.bump("entra.assertion_refused");
                return r;
            }
            sim.stats.bump("entra.certificate");
        }
        (None, Some(kind), Some(assertion)) if kind == CLIENT_ASSERTION_TYPE => {
            if let Err(r) = check_assertion(&sim, assertion) {
                sim.stats.bump("entra.assertion_refused");
                return r;
            }
            sim.stats.bump("entra.assertion");
        }
        _ => {
            return aad_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000216,
                "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
            )
        }
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
    let (access_token, lifetime) = issue(&sim, audience, &scope, &client_id);
    Json(json!({"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": access_token})).into_response()
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
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "unauthorized", "error_description": "X-IDENTITY-HEADER is missing or wrong"})),
        )
            .into_response();
    }
    if q.get("api-version").map(String::as_str) != Some("2019-08-01") {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request", "error_description": "api-version 2019-08-01 is required"})),
        )
            .into_response();
    }
    let resource = q.get("resource").cloned().unwrap_or_default();
    let Some(audience) = Audience::from_scope_or_resource(&resource) else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_resource", "error_description": format!("unknown resource '{resource}'")})),
        )
            .into_response();
    };
    let app = match q.get("client_id") {
        Some(id) if !id.eq_ignore_ascii_case(&sim.config.managed_identity_client_id) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"statusCode": 400, "message": "Unable to load the proper Managed Identity."})),
            )
                .into_response();
        }
        Some(id) => id.clone(),
        None => "system-assigned".into(),
    };
    let (access_token, lifetime) = issue(&sim, audience, &resource, &app);
    let expires_on = (OffsetDateTime::now_utc().unix_timestamp() + lifetime as i64).to_string();
    Json(json!({"access_token": access_token, "expires_on": expires_on, "resource": resource, "token_type": "Bearer", "client_id": app})).into_response()
}

/// Who called, from the bearer token.
#[derive(Debug, Clone)]
pub struct Caller {
    pub app_id: String,
    /// The token's `roles` claim (Graph application roles; empty for other audiences).
    pub roles: std::collections::BTreeSet<String>,
    /// The grants as they stood when the token was issued (Azure RBAC is checked against these).
    pub permissions: super::permissions::Permissions,
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
    let current = sim.permissions();
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
        Some(t) => {
            let permissions = t.permissions.still_held(&current);
            let roles = t.roles.intersection(&permissions.graph_app_roles).cloned().collect();
            Ok(Caller { app_id: t.app_id.clone(), roles, permissions })
        }
    }
}
