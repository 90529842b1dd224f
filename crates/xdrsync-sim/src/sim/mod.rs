//! `xdrsync-sim serve`: one loopback HTTP server standing in for Entra ID (client credentials and the
//! managed-identity endpoint), Graph security (incidents, alerts_v2, users), Sentinel (ARM
//! Microsoft.SecurityInsights) and Logs Ingestion, plus a `/_sim` control API.
//!
//! It is strict where the real services are (ARCHITECTURE.md: “Service facts”): `$top` limits, bearer tokens per
//! audience, etag 409s, read-only fields ignored, Closed needs a classification, 1 MB ingestion
//! cap, 429s with Retry-After when faults are injected, `$filter` only on properties the service
//! filters on, 403s with the services' bodies when a role is missing ([`Permissions`]), ties in
//! list order not broken by id ([`TieOrder`]), writes that commit and then lose their answer
//! ([`FaultKind::CommitThenFail`]). Paths match the real hosts' paths, so one port serves every
//! API: point each endpoint setting at it.
//!
//! It never serializes or parses with xdrsync's models: `model.rs` holds its own documents,
//! written from the public documentation, so a product modelling mistake fails a test.

// Handlers' helpers return ready-made error responses; boxing them would only add noise.
#![allow(clippy::result_large_err)]

pub mod alert_rule;
mod arm;
pub mod arm_rules;
mod automation;
mod control;
pub mod dcrs;
mod engine;
pub mod entra;
mod entra_cert;
mod faults;
mod filter;
mod graph;
pub mod hunting;
mod hunting_kql;
pub mod hunting_schema;
pub mod hunting_seed;
mod log_query;
mod logs;
pub mod model;
pub mod nrt_rule;
pub mod permissions;
mod rule_alert;
pub mod rule_kql;
pub mod rule_state;
pub mod seed;
pub mod stream_columns;
pub mod tenants;
pub mod timefmt;
mod world;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

pub use automation::Automation;
pub use faults::{FaultKind, FaultRule};
pub use permissions::Permissions;
pub use world::{SimUser, TieOrder, World};

use serde::{Deserialize, Serialize};

/// The simulated Sentinel workspace (an ARM resource).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimWorkspace {
    pub subscription_id: String,
    pub resource_group: String,
    pub name: String,
}

impl SimWorkspace {
    /// `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.OperationalInsights/workspaces/{w}`
    pub fn resource_id(&self) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.OperationalInsights/workspaces/{}",
            self.subscription_id, self.resource_group, self.name
        )
    }

    /// The workspace's GUID (“Workspace ID”, `properties.customerId`), derived from its id.
    pub fn customer_id(&self) -> String {
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, self.resource_id().to_ascii_lowercase().as_bytes()).to_string()
    }
}

/// Order of an incident's `comments` array in Graph answers (not documented; both are plausible).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum CommentOrder {
    OldestFirst,
    NewestFirst,
}

/// What a summary alert's custom details hold (Learn is silent; the product must work with both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SummaryDetails {
    /// Each custom detail is the array of every result's value.
    AllValues,
    /// The first result's values only: the summary looks like that result's single alert.
    FirstRow,
}

/// Behaviours the documentation leaves open; tests pick the one they need (`SimConfig::options`
/// at start, `GET`/`PATCH /_sim/options` at run time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SimOptions {
    /// Order of Graph incidents' `comments` (default oldest first).
    pub graph_comment_order: CommentOrder,
    /// Whether adding a Sentinel comment changes the parent incident's `etag` and
    /// `lastModifiedTimeUtc` (default true). `additionalData.commentsCount` always counts.
    pub sentinel_comment_touches_incident: bool,
    /// Order of records with equal sort keys in every list (default a seeded shuffle).
    pub tie_order: TieOrder,
    /// Answer 400 to a Sentinel PUT that carries read-only properties (`labels[].labelType`,
    /// `providerName`, `incidentNumber`, …) instead of ignoring them (default false: ignored and
    /// counted as `arm.incidents.put.read_only_sent`).
    pub reject_read_only_properties: bool,
    /// Graph's call budget for the tenant, per minute (`None` = unlimited): requests beyond it get
    /// 429 with `Retry-After` (Microsoft publishes ~150/min per app per tenant for `/security`
    /// alert operations; none for incidents).
    pub graph_calls_per_minute: Option<u32>,
    /// ARM's token buckets per subscription, principal and kind (writes 200 refilled at 10/s,
    /// deletes the same, reads 250 at 25/s): 429 with `Retry-After` when one is empty (default
    /// false; the demo and benches turn it on).
    pub arm_limits: bool,
    /// Whether the workspace's NRT rules run (default true).
    pub alert_rule: bool,
    /// The rules' "minute": they run once per this over the rows ingested in the preceding one
    /// (default 0: every read of alerts is a run over what arrived since the previous one).
    pub alert_rule_delay_ms: u64,
    /// Rules the simulator starts with, expanded from the committed template
    /// `infra/alert-rule.json` (default 10; 0 = none): for tests and the demo that do not run
    /// `xdrsync connect`. Read when the simulator starts.
    pub alert_rules: usize,
    /// What a summary alert's custom details hold (default all values).
    pub summary_details: SummaryDetails,
    /// The workspace is onboarded to the Defender portal: Defender's correlation engine turns
    /// the rule's alerts into Defender incidents of this (the workspace's) tenant (default false).
    pub correlation_engine: bool,
    /// The engine groups every rule alert into one incident, whatever source incident it names
    /// (default false: one incident per source incident), to test a target holding two sources.
    pub engine_groups_all: bool,
    /// Logs Ingestion's per-DCR limits over a sliding minute (documented: 2 GB of data and
    /// 12,000 requests a minute per DCR, beyond them 429 with `Retry-After`). Data is counted
    /// uncompressed, the stricter reading.
    pub logs_bytes_per_minute: u64,
    pub logs_requests_per_minute: u32,
    /// Answer 400 to `alerts_v2?$filter=incidentId eq …`, as a service keeping to the documented
    /// filter list would (default false: the filter works, as widely reported).
    pub strict_alert_filter: bool,
    /// Alerts an incident of a list page with `$expand=alerts` carries; beyond them the rest is
    /// paged (`alerts@odata.nextLink`). Not documented; assumed (default 100, alerts_v2's default
    /// page). The single GET's expansion is never paged.
    pub graph_list_expanded_alerts_max: usize,
    /// Answer 500 to a list page with `$expand=alerts` that would carry more alerts than this, as
    /// reported on very large tenants (default `None`: never).
    pub graph_list_expand_fails_above: Option<usize>,
    /// Refuse `$select` on the incidents list with a 400 (it is not among the documented options
    /// of *List incidents*); by default it is honoured: each incident carries only the selected
    /// properties.
    pub graph_refuses_select: bool,
}

impl Default for SimOptions {
    fn default() -> Self {
        Self {
            graph_comment_order: CommentOrder::OldestFirst,
            sentinel_comment_touches_incident: true,
            tie_order: TieOrder::Shuffled { seed: 0x5eed },
            reject_read_only_properties: false,
            graph_calls_per_minute: None,
            arm_limits: false,
            alert_rule: true,
            alert_rule_delay_ms: 0,
            alert_rules: 10,
            summary_details: SummaryDetails::AllValues,
            correlation_engine: false,
            engine_groups_all: false,
            logs_bytes_per_minute: 2_000_000_000,
            logs_requests_per_minute: 12_000,
            strict_alert_filter: false,
            graph_list_expanded_alerts_max: 100,
            graph_list_expand_fails_above: None,
            graph_refuses_select: false,
        }
    }
}

/// What the simulated tenant looks like.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: String,
    /// Header secret of the simulated managed-identity endpoint (`/msi/token`).
    pub identity_header: String,
    /// Client id of the app's user-assigned managed identity (`/msi/token?client_id=`).
    pub managed_identity_client_id: String,
    /// The certificate registered on the app registration, DER (`None`: none).
    pub client_certificate: Option<Vec<u8>>,
    /// The app registration's federated identity credential (`None`: it has none).
    pub federated_credential: Option<entra::FederatedCredential>,
    pub workspace: SimWorkspace,
    pub dcr_immutable_id: String,
    /// Declared DCR input streams.
    pub streams: Vec<String>,
    /// More data collection rules of the workspace (per-table hunting DCRs; default none).
    pub hunting_dcrs: Vec<dcrs::SimDcr>,
    /// Lifetime of issued tokens.
    pub token_lifetime_secs: u64,
    /// The app's roles at start (control API: `/_sim/permissions`).
    pub permissions: Permissions,
    /// Open behaviours at start (control API: `/_sim/options`).
    pub options: SimOptions,
}

impl SimConfig {
    /// The defaults `xdrsync-sim serve` and the demo use.
    pub fn demo() -> Self {
        Self {
            tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            client_id: "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0".into(),
            client_secret: "sim-client-secret-not-real".into(),
            identity_header: "sim-identity-header-not-real".into(),
            managed_identity_client_id: entra::DEMO_MANAGED_IDENTITY.into(),
            client_certificate: None,
            federated_credential: Some(entra::FederatedCredential::trusting(
                "72f988bf-86f1-41af-91ab-2d7cd011db47",
                entra::DEMO_MANAGED_IDENTITY,
            )),
            workspace: SimWorkspace {
                subscription_id: "00000000-0000-0000-0000-000000000000".into(),
                resource_group: "rg-soc".into(),
                name: "soc-workspace".into(),
            },
            dcr_immutable_id: "dcr-00000000000000000000000000000001".into(),
            // The alert streams (the trigger stream once the repository declares it), and one
            // `Custom-<Table>` stream per advanced-hunting table.
            streams: std::iter::once(stream_columns::ALERTS_STREAM.to_string())
                .chain(stream_columns::triggers_declared().then(|| stream_columns::TRIGGERS_STREAM.to_string()))
                .chain(hunting_schema::streams())
                .collect(),
            hunting_dcrs: Vec::new(),
            token_lifetime_secs: 3599,
            permissions: Permissions::default(),
            options: SimOptions::default(),
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
            ("XDRSYNC_LOGS_INGESTION_ENDPOINT", base.clone()),
            ("XDRSYNC_LOG_ANALYTICS_ENDPOINT", base),
            ("XDRSYNC_WORKSPACE_ID", self.workspace.customer_id()),
            ("XDRSYNC_DCR_IMMUTABLE_ID", self.dcr_immutable_id.clone()),
            ("XDRSYNC_DCR_RESOURCE_ID", permissions::dcr_resource_id(self)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// The webhook key `xdrsync-sim serve` prints (a development value, not a secret).
pub const SERVE_WEBHOOK_KEY: &str = "sim-webhook-key-not-secret";

/// Every setting `xdrsync check` and `xdrsync run` need against a simulator on `addr`, with
/// `storage` as `AzureWebJobsStorage` (`UseDevelopmentStorage=true` for Azurite on its default
/// ports).
pub fn serve_settings(config: &SimConfig, addr: SocketAddr, storage: &str) -> Vec<(String, String)> {
    let mut v = config.settings_for(addr);
    v.push(("AzureWebJobsStorage".into(), storage.to_string()));
    v.push(("XDRSYNC_WEBHOOK_KEY".into(), SERVE_WEBHOOK_KEY.into()));
    v
}

/// The settings as lines a POSIX shell sources and `xdrsync --env-file` reads.
pub fn env_file_text(settings: &[(String, String)]) -> String {
    let mut out = String::from("# xdrsync settings for the simulator (development values only)\n");
    for (k, v) in settings {
        out.push_str(&format!("export {k}='{v}'\n"));
    }
    out
}

/// Shared simulator state.
pub struct Sim {
    pub config: SimConfig,
    pub world: std::sync::Mutex<World>,
    pub faults: faults::Faults,
    /// Counters (shared with the rule engine in the world).
    pub stats: Arc<faults::Stats>,
    /// When each Graph call of the last minute was answered (the budget's window).
    pub graph_window: std::sync::Mutex<std::collections::VecDeque<std::time::Instant>>,
    /// Logs Ingestion calls of the last minute per DCR (immutable id): when and how many bytes.
    pub logs_window:
        std::sync::Mutex<std::collections::HashMap<String, std::collections::VecDeque<(std::time::Instant, u64)>>>,
    pub options: std::sync::Mutex<SimOptions>,
    pub permissions: std::sync::Mutex<Permissions>,
    /// Where simulated automation rules deliver the playbook payload (`None` = off).
    pub automation: std::sync::Mutex<Option<Automation>>,
    /// Analytics rules and data connectors of the workspace (`xdrsync connect`).
    pub rules: std::sync::Mutex<arm_rules::WorkspaceRules>,
    pub http: reqwest::Client,
    /// Advanced hunting: seeded tables, limits, the per-tenant call window.
    pub hunting: std::sync::Mutex<hunting::HuntingState>,
    /// Certificate assertions' `jti`s already presented to Entra.
    pub seen_jti: entra_cert::SeenJti,
}

impl Sim {
    pub fn new(config: SimConfig) -> Arc<Self> {
        let stats = Arc::new(faults::Stats::default());
        let rules = arm_rules::WorkspaceRules::microsoft_defaults(&config.tenant_id);
        let mut world = World::new(&config);
        world.rule.stats = stats.clone();
        seed_rules(&config, &rules, &mut world, &stats);
        Arc::new(Self {
            world: std::sync::Mutex::new(world),
            options: std::sync::Mutex::new(config.options.clone()),
            graph_window: Default::default(),
            logs_window: Default::default(),
            permissions: std::sync::Mutex::new(config.permissions.clone()),
            rules: std::sync::Mutex::new(rules),
            config,
            faults: Default::default(),
            stats,
            automation: Default::default(),
            http: reqwest::Client::new(),
            hunting: Default::default(),
            seen_jti: Default::default(),
        })
    }

    pub fn world(&self) -> std::sync::MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current options.
    pub fn options(&self) -> SimOptions {
        self.options.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The current grants.
    pub fn permissions(&self) -> Permissions {
        self.permissions.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The `…/providers/Microsoft.SecurityInsights` base of incident ids.
    pub fn sentinel_base(&self) -> String {
        format!("{}/providers/Microsoft.SecurityInsights", self.config.workspace.resource_id())
    }
}

/// The seeding helper: `options.alert_rules` rules of the committed template, put straight into
/// the rule engine as a deployment would (ARM lists only rules PUT through it, so `xdrsync
/// connect` still finds its rules missing and creates them under the same names). A template
/// the engine refuses (its table not declared yet) seeds nothing and is counted as
/// `rule.seed_refused`.
fn seed_rules(config: &SimConfig, rules: &arm_rules::WorkspaceRules, world: &mut World, stats: &faults::Stats) {
    match nrt_rule::seed(config.options.alert_rules, &|t| rules.table_schema(config, t)) {
        Ok(seeded) => world.rule.rules.extend(seeded.into_iter().map(|r| (r.name.clone(), r))),
        Err(e) => {
            stats.bump("rule.seed_refused");
            tracing::warn!(error.message = %e, "the simulator starts without the template's rules");
        }
    }
}

/// The full router: every API plus the control API.
pub fn router(sim: Arc<Sim>) -> Router {
    Router::new()
        .merge(entra::routes())
        .merge(graph::routes())
        .merge(arm::routes())
        .merge(logs::routes())
        .merge(log_query::routes())
        .merge(hunting::routes())
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
