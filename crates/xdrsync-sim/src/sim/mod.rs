//! `xdrsync sim`: one loopback HTTP server standing in for Entra ID (client credentials and the
//! managed-identity endpoint), Graph security (incidents, alerts_v2, users), Sentinel (ARM
//! Microsoft.SecurityInsights) and Logs Ingestion, plus a `/_sim` control API.
//!
//! It is strict where the real services are (ARCHITECTURE.md: “Service facts”): `$top` limits, bearer tokens per
//! audience, etag 409s, read-only fields ignored, Closed needs a classification, 1 MB ingestion
//! cap, 429s with Retry-After when faults are injected. Paths match the real hosts' paths, so
//! one port serves every API: point each endpoint setting at it.

// Handlers' helpers return ready-made error responses; boxing them would only add noise.
#![allow(clippy::result_large_err)]

mod arm;
mod automation;
mod control;
mod entra;
mod faults;
mod filter;
mod graph;
mod logs;
pub mod seed;
mod world;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

pub use automation::Automation;
pub use faults::{FaultKind, FaultRule};
pub use world::{SimUser, World};
use xdrsync_core::domain::workspace::Workspace;

/// What the simulated tenant looks like.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// Header secret of the simulated managed-identity endpoint (`/msi/token`).
    pub identity_header: String,
    pub workspace: Workspace,
    pub dcr_immutable_id: String,
    /// Declared DCR input streams.
    pub streams: Vec<String>,
    /// Lifetime of issued tokens.
    pub token_lifetime_secs: u64,
}

impl SimConfig {
    /// The defaults `xdrsync sim` and the demo use.
    pub fn demo() -> Self {
        Self {
            tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            client_id: "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0".into(),
            client_secret: "sim-client-secret-not-real".into(),
            identity_header: "sim-identity-header-not-real".into(),
            workspace: Workspace {
                subscription_id: "00000000-0000-0000-0000-000000000000".into(),
                resource_group: "rg-soc".into(),
                name: "soc-workspace".into(),
            },
            dcr_immutable_id: "dcr-00000000000000000000000000000001".into(),
            streams: vec!["Custom-XdrsyncAlerts".into()],
            token_lifetime_secs: 3599,
        }
    }

    /// App settings that point xdrsync at a simulator listening on `addr`.
    pub fn settings_for(&self, addr: SocketAddr) -> Vec<(String, String)> {
        let base = format!("http://{addr}");
        [
            ("XDRSYNC_TENANT_ID", self.tenant_id.clone()),
            ("XDRSYNC_CLIENT_ID", self.client_id.clone()),
            ("XDRSYNC_CLIENT_SECRET", self.client_secret.clone()),
            ("XDRSYNC_AUTHORITY_HOST", base.clone()),
            ("XDRSYNC_GRAPH_ENDPOINT", base.clone()),
            ("XDRSYNC_ARM_ENDPOINT", base.clone()),
            ("XDRSYNC_WORKSPACE_RESOURCE_ID", self.workspace.resource_id()),
            ("XDRSYNC_LOGS_INGESTION_ENDPOINT", base),
            ("XDRSYNC_DCR_IMMUTABLE_ID", self.dcr_immutable_id.clone()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// Shared simulator state.
pub struct Sim {
    pub config: SimConfig,
    pub world: std::sync::Mutex<World>,
    pub faults: faults::Faults,
    pub stats: faults::Stats,
    /// Where simulated automation rules deliver the playbook payload (`None` = off).
    pub automation: std::sync::Mutex<Option<Automation>>,
    pub http: reqwest::Client,
}

impl Sim {
    pub fn new(config: SimConfig) -> Arc<Self> {
        Arc::new(Self {
            world: std::sync::Mutex::new(World::new(&config)),
            config,
            faults: Default::default(),
            stats: Default::default(),
            automation: Default::default(),
            http: reqwest::Client::new(),
        })
    }

    pub fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The full router: every API plus the control API.
pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .merge(entra::routes())
        .merge(graph::routes())
        .merge(arm::routes())
        .merge(logs::routes())
        .merge(control::routes())
        .layer(axum::middleware::from_fn_with_state(sim.clone(), faults::apply))
        .with_state(sim)
}

/// A running simulator.
pub struct RunningSim {
    pub addr: SocketAddr,
    pub sim: Arc<Sim>,
    pub task: tokio::task::JoinHandle<()>,
}

impl RunningSim {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Serves the simulator on `listener` in a background task.
pub async fn spawn(listener: TcpListener, config: SimConfig) -> std::io::Result<RunningSim> {
    let addr = listener.local_addr()?;
    let sim = Sim::new(config);
    let app = router(sim.clone());
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error.message = %e, "simulator stopped");
        }
    });
    Ok(RunningSim { addr, sim, task })
}
