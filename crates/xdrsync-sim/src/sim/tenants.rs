//! Several Defender tenants behind one simulator address, as the real services are one host for
//! every tenant: Entra issues a token from the tenant named in the token endpoint's path
//! (`/{tenant}/oauth2/v2.0/token`), and Graph answers from the tenant that issued the bearer
//! token. Each Defender tenant is a whole [`Sim`] of its own (incidents, alerts, users, comments,
//! permissions, faults, Graph budget, advanced-hunting tables and their `runHuntingQuery` quota,
//! documented per tenant), so incident ids overlap across tenants as they do in reality. The
//! primary sim holds the workspace tenant: ARM, Logs Ingestion, the managed-identity endpoint and
//! its own Graph.
//!
//! Extra workspaces (routing) are whole sims too: their ARM paths, their DCR and their query API
//! (by resource id or Workspace ID) reach them, so each runs the analytics rule over its own
//! alert rows and relates only its own alerts.
//!
//! Control: `/_sim/tenants` lists the tenants; `/_sim/tenants/{tenant}/…` reaches that tenant's
//! own `/_sim/…` (seed, edit, permissions, faults, options, stats); `DELETE
//! /_sim/tenants/{tenant}/consent` revokes the app's consent there (its tokens stop working and
//! new ones are refused as Entra does for an app not in the directory), `PUT` restores it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use tokio::net::TcpListener;
use tower::ServiceExt;

use super::world::{Audience, IssuedToken};
use super::{router, RunningSim, Sim, SimConfig};

/// The primary sim and one sim per additional Defender tenant.
pub struct TenantSims {
    pub primary: Arc<Sim>,
    pub tenants: BTreeMap<String, Arc<Sim>>,
    /// More Sentinel workspaces of the workspace tenant (each a sim of its own: ARM and Logs
    /// Ingestion by workspace path and DCR id; tokens of the primary are valid there).
    pub workspaces: Vec<Arc<Sim>>,
    routers: BTreeMap<String, Router>,
    workspace_routers: Vec<Router>,
    primary_router: Router,
    revoked: Mutex<BTreeSet<String>>,
}

impl TenantSims {
    /// The sim of `tenant` (the primary one for the workspace tenant).
    pub fn tenant(&self, tenant: &str) -> Option<&Arc<Sim>> {
        let t = tenant.to_ascii_lowercase();
        if self.primary.config.tenant_id.eq_ignore_ascii_case(&t) {
            return Some(&self.primary);
        }
        self.tenants.get(&t)
    }

    /// Revokes (or restores) the app's consent in `tenant`.
    pub fn set_consent(&self, tenant: &str, granted: bool) -> bool {
        let t = tenant.to_ascii_lowercase();
        let Some(sim) = self.tenant(&t) else { return false };
        let mut revoked = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
        if granted {
            revoked.remove(&t);
        } else {
            revoked.insert(t);
            sim.world().revoke_tokens(Audience::Graph);
        }
        true
    }

    fn consent_revoked(&self, tenant: &str) -> bool {
        self.revoked.lock().unwrap_or_else(|p| p.into_inner()).contains(&tenant.to_ascii_lowercase())
    }

    fn router_of(&self, tenant: &str) -> Option<Router> {
        let t = tenant.to_ascii_lowercase();
        if self.primary.config.tenant_id.eq_ignore_ascii_case(&t) {
            return Some(self.primary_router.clone());
        }
        self.routers.get(&t).cloned()
    }

    /// The tenant whose sim issued `token`.
    fn issuer_of(&self, token: &str) -> Option<String> {
        if self.primary.world().tokens.contains_key(token) {
            return Some(self.primary.config.tenant_id.clone());
        }
        self.tenants.iter().find(|(_, s)| s.world().tokens.contains_key(token)).map(|(t, _)| t.clone())
    }
}

/// Configurations for `n` extra Defender tenants sharing the primary's app registration.
pub fn tenant_configs(primary: &SimConfig, n: usize) -> Vec<SimConfig> {
    (0..n)
        .map(|i| {
            let mut c = primary.clone();
            c.tenant_id = format!("{:08x}-0000-4000-8000-{:012x}", 0x7e0a_0000u32 + i as u32, i + 1);
            c
        })
        .collect()
}

/// A running multi-tenant simulator.
pub struct RunningTenantSims {
    pub addr: std::net::SocketAddr,
    pub sims: Arc<TenantSims>,
    pub task: tokio::task::JoinHandle<()>,
}

impl RunningTenantSims {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The primary sim as a [`RunningSim`]-like view (same address).
    pub fn primary(&self) -> RunningSim {
        RunningSim { addr: self.addr, sim: self.sims.primary.clone(), task: tokio::spawn(async {}) }
    }
}

/// Serves the primary sim, one sim per entry of `tenants` and one per extra workspace on
/// `listener`.
pub async fn spawn_tenants(
    listener: TcpListener,
    primary: SimConfig,
    tenants: Vec<SimConfig>,
    workspaces: Vec<SimConfig>,
) -> std::io::Result<RunningTenantSims> {
    let addr = listener.local_addr()?;
    let primary = Sim::new(primary);
    let mut sims = BTreeMap::new();
    let mut routers = BTreeMap::new();
    for c in tenants {
        let id = c.tenant_id.to_ascii_lowercase();
        let sim = Sim::new(c);
        routers.insert(id.clone(), router(sim.clone()));
        sims.insert(id, sim);
    }
    let workspaces: Vec<Arc<Sim>> = workspaces.into_iter().map(Sim::new).collect();
    let all = Arc::new(TenantSims {
        primary_router: router(primary.clone()),
        primary,
        tenants: sims,
        workspace_routers: workspaces.iter().map(|w| router(w.clone())).collect(),
        workspaces,
        routers,
        revoked: Default::default(),
    });
    let app = Router::new().fallback(dispatch).with_state(all.clone());
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error.message = %e, "simulator stopped");
        }
    });
    Ok(RunningTenantSims { addr, sims: all, task })
}

fn with_path(mut req: Request, path_and_query: &str) -> Request {
    if let Ok(uri) = path_and_query.parse::<Uri>() {
        *req.uri_mut() = uri;
    }
    req
}

async fn forward(router: Router, req: Request) -> Response {
    match router.oneshot(req).await {
        Ok(r) => r,
        Err(never) => match never {},
    }
}

async fn dispatch(State(all): State<Arc<TenantSims>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    // Control of one tenant.
    if let ["_sim", "tenants", tenant, rest @ ..] = segments.as_slice() {
        if rest == ["consent"] {
            let granted = match *req.method() {
                Method::DELETE => false,
                Method::PUT => true,
                _ => return StatusCode::METHOD_NOT_ALLOWED.into_response(),
            };
            return if all.set_consent(tenant, granted) {
                Json(serde_json::json!({"tenantId": tenant, "consent": granted})).into_response()
            } else {
                StatusCode::NOT_FOUND.into_response()
            };
        }
        let Some(r) = all.router_of(tenant) else { return StatusCode::NOT_FOUND.into_response() };
        let inner = format!("/_sim/{}{query}", rest.join("/"));
        return forward(r, with_path(req, &inner)).await;
    }
    if segments == ["_sim", "tenants"] {
        let mut ids = vec![all.primary.config.tenant_id.clone()];
        ids.extend(all.tenants.keys().cloned());
        return Json(serde_json::json!({"tenants": ids})).into_response();
    }
    // Entra: the token endpoint's path names the tenant.
    if let [tenant, "oauth2", ..] = segments.as_slice() {
        if all.consent_revoked(tenant) {
            return entra_not_consented(tenant);
        }
        if let Some(r) = all.router_of(tenant) {
            return forward(r, req).await;
        }
    }
    // Graph: the tenant that issued the bearer token answers.
    if matches!(segments.first(), Some(&"v1.0") | Some(&"beta")) {
        let token = bearer(&req);
        if let Some(tenant) = token.as_deref().and_then(|t| all.issuer_of(t)) {
            if let Some(r) = all.router_of(&tenant) {
                return forward(r, req).await;
            }
        }
    }
    // ARM, Logs Ingestion and the query API of another workspace: by resource path, DCR id, or
    // (query API) resource id or Workspace ID after `/v1`.
    let lower = path.to_ascii_lowercase();
    if lower.ends_with("/providers/microsoft.insights/datacollectionrules") {
        return list_every_dcr(&all, req).await;
    }
    let query_path = lower.strip_prefix("/v1").filter(|p| p.starts_with('/'));
    let extra = all.workspaces.iter().position(|w| {
        let resource = format!("{}/", w.config.workspace.resource_id().to_ascii_lowercase());
        let guid = format!("/workspaces/{}/", w.config.workspace.customer_id());
        let dcr = format!("{}/", super::permissions::dcr_resource_id(&w.config).to_ascii_lowercase());
        lower.starts_with(&resource)
            || lower.starts_with(&dcr)
            || lower.starts_with(&format!("/datacollectionrules/{}/", w.config.dcr_immutable_id.to_ascii_lowercase()))
            || query_path.is_some_and(|p| p.starts_with(&resource) || p.starts_with(&guid))
    });
    if let Some(i) = extra {
        return forward_to_workspace(&all, i, req).await;
    }
    forward(all.primary_router.clone(), req).await
}

/// ARM's DCR list over the workspace tenant: the rules of the primary workspace and of each
/// extra one (each answers for the rules the caller may read there).
async fn list_every_dcr(all: &TenantSims, req: Request) -> Response {
    let copy = |req: &Request| {
        let mut r = Request::new(axum::body::Body::empty());
        *r.method_mut() = req.method().clone();
        *r.uri_mut() = req.uri().clone();
        *r.headers_mut() = req.headers().clone();
        r
    };
    let mut answers = Vec::new();
    for i in 0..all.workspaces.len() {
        answers.push(forward_to_workspace(all, i, copy(&req)).await);
    }
    let primary = forward(all.primary_router.clone(), req).await;
    if !primary.status().is_success() {
        return primary;
    }
    let mut value = Vec::new();
    for r in std::iter::once(primary).chain(answers) {
        let Ok(bytes) = axum::body::to_bytes(r.into_body(), usize::MAX).await else { continue };
        if let Ok(page) = serde_json::from_slice::<serde_json::Value>(&bytes) {
            value.extend(page["value"].as_array().cloned().unwrap_or_default());
        }
    }
    Json(serde_json::json!({ "value": value })).into_response()
}

/// Forwards to extra workspace `i`, whose services accept the workspace tenant's tokens (one
/// tenant's token is good for every workspace of it: it is copied over).
async fn forward_to_workspace(all: &TenantSims, i: usize, req: Request) -> Response {
    if let Some(token) = bearer(&req) {
        let issued: Option<IssuedToken> = all.primary.world().tokens.get(&token).cloned();
        if let Some(mut t) = issued {
            // Roles are assigned per workspace: the token carries this workspace's grants as of
            // its first use here.
            let ws = &all.workspaces[i];
            t.permissions = ws.permissions();
            ws.world().tokens.entry(token).or_insert(t);
        }
    }
    forward(all.workspace_routers[i].clone(), req).await
}

impl TenantSims {
    /// Extra workspace `i`'s services alone, for serving on an address of their own: a data
    /// collection endpoint in another region has its own Logs Ingestion URL.
    pub fn workspace_endpoint(self: &Arc<Self>, i: usize) -> Router {
        let all = self.clone();
        Router::new().fallback(move |req: Request| {
            let all = all.clone();
            async move { forward_to_workspace(&all, i, req).await }
        })
    }
}

fn bearer(req: &Request) -> Option<String> {
    req.headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(|t| t.trim().to_string())
}

/// What Entra answers for an app without a service principal in the tenant (consent removed).
fn entra_not_consented(tenant: &str) -> Response {
    let body = serde_json::json!({
        "error": "unauthorized_client",
        "error_description": format!("AADSTS700016: Application was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant."),
        "error_codes": [700016],
    });
    (StatusCode::BAD_REQUEST, Json(body)).into_response()
}
