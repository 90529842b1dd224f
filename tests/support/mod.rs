//! Test harness: the simulator in-process on a free port, Azurite as a child process on free
//! ports (killed on drop), and configuration pointing xdrsync at both. Azurite must be installed
//! (`npm ci`); a missing install fails the test loudly instead of skipping it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use xdrsync::config::Config;
use xdrsync::standalone::Runner;
use xdrsync::usecase::Ports;
use xdrsync_sim::sim::{RunningSim, SimConfig};

pub use xdrsync_sim::azurite::Azurite as AzuriteProcess;

/// Azurite for a test; a missing install fails the test (never skips).
pub struct Azurite;

impl Azurite {
    #[allow(clippy::new_ret_no_self)]
    pub fn start() -> AzuriteProcess {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        AzuriteProcess::start(&xdrsync_sim::azurite::azurite_bin(&root)).expect("Azurite starts (run `npm ci`)")
    }
}

/// Starts the simulator on a free loopback port.
pub async fn start_sim(config: SimConfig) -> RunningSim {
    if std::env::var_os("TEST_LOG").is_some() {
        xdrsync::telemetry::init(false);
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    xdrsync_sim::sim::spawn(listener, config).await.expect("simulator starts")
}

static PREFIX: AtomicU32 = AtomicU32::new(0);

/// A unique table prefix, so tests sharing one Azurite never see each other's rows.
pub fn unique_prefix() -> String {
    format!("t{}x{}", std::process::id(), PREFIX.fetch_add(1, Ordering::SeqCst))
}

/// Settings for xdrsync pointed at `sim` and (when given) Azurite.
pub fn settings(sim: &RunningSim, storage: Option<&str>) -> HashMap<String, String> {
    let mut m: HashMap<String, String> = sim.sim.config.settings_for(sim.addr).into_iter().collect();
    m.insert("AzureWebJobsStorage".into(), storage.unwrap_or("UseDevelopmentStorage=true").into());
    m.insert("XDRSYNC_TABLE_PREFIX".into(), unique_prefix());
    m.insert("XDRSYNC_WEBHOOK_KEY".into(), "test-webhook-key-0123456789".into());
    // Budgets far above what tests spend, so only the tests about budgets meet them.
    m.insert("XDRSYNC_GRAPH_CALLS_PER_MINUTE".into(), "60000".into());
    m.insert("XDRSYNC_ARM_WRITES_PER_SECOND".into(), "1000".into());
    m
}

pub fn config(settings: &HashMap<String, String>) -> Config {
    Config::from_vars(settings).expect("valid test configuration")
}

/// GET a control-API path of the simulator as JSON.
pub async fn sim_get(sim: &RunningSim, path: &str) -> serde_json::Value {
    reqwest::get(format!("{}{path}", sim.base_url())).await.expect("sim reachable").json().await.expect("json")
}

/// POST JSON to a control-API path of the simulator.
pub async fn sim_post(sim: &RunningSim, path: &str, body: serde_json::Value) -> reqwest::Response {
    reqwest::Client::new().post(format!("{}{path}", sim.base_url())).json(&body).send().await.expect("sim reachable")
}

pub async fn sim_stat(sim: &RunningSim, key: &str) -> u64 {
    sim.sim.stats.snapshot().get(key).copied().unwrap_or(0)
}

/// Ports against `sim`, with in-memory storage (for tests that do not exercise storage).
pub fn services_with_fakes(
    sim: &RunningSim,
) -> (std::sync::Arc<xdrsync::usecase::Ports>, std::sync::Arc<xdrsync_sim::fakes::MemoryQueue>) {
    let mut s = xdrsync::app::build(config(&settings(sim, None)));
    let queue = std::sync::Arc::new(xdrsync_sim::fakes::MemoryQueue::new());
    s.store = std::sync::Arc::new(xdrsync_sim::fakes::MemoryStore::new());
    s.queue = queue.clone();
    (std::sync::Arc::new(s), queue)
}

/// Serves `router` on a free loopback port the way both product servers do
/// (`xdrsync::http_api::serve`); returns its base URL.
pub async fn serve_router(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let forever = std::future::pending::<()>();
    tokio::spawn(xdrsync::http_api::serve(listener, router, xdrsync::http_api::READ_TIMEOUT, forever));
    format!("http://{addr}")
}

pub fn seed(sim: &RunningSim, spec: xdrsync_sim::sim::seed::SeedSpec) -> Vec<String> {
    xdrsync_sim::sim::seed::seed(&mut sim.sim.world(), &sim.sim.config.tenant_id, &spec)
}

/// Waits until `check` is true (polling every 100 ms) or panics after `secs`.
pub async fn eventually<F: FnMut() -> bool>(secs: u64, what: &str, mut check: F) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !check() {
        assert!(std::time::Instant::now() < deadline, "timed out after {secs} s waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Waits until `check` resolves to true (polling every 100 ms) or panics after `secs`.
pub async fn eventually_async<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while !check().await {
        assert!(std::time::Instant::now() < deadline, "timed out after {secs} s waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Waits until `get` resolves to `Some` (polling every 100 ms) and returns it, or panics after `secs`.
pub async fn wait_for<T, F, Fut>(secs: u64, what: &str, mut get: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = get().await {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out after {secs} s waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// Nothing left to do: no message queued or being processed (the queue's count includes
/// leased messages until they are deleted) and no Sentinel automation delivery pending.
pub async fn idle(sim: &RunningSim, services: &Ports) -> bool {
    let queued = services.queue.approximate_len(&services.config.queue_name).await.unwrap_or(usize::MAX);
    let s = sim.sim.stats.snapshot();
    let n = |k: &str| s.get(k).copied().unwrap_or(0);
    queued == 0 && n("automation.fired") == n("automation.deliveries") + n("automation.failures")
}

/// Waits until `runner` has run `n` whole polls from now and then nothing is left to do (see
/// [`idle`]); returns how many polls started meanwhile.
pub async fn after_polls(sim: &RunningSim, runner: &Runner, services: &Ports, n: u64, secs: u64) -> u64 {
    let polls = || runner.stats.polls.load(Ordering::Relaxed);
    let from = polls();
    // `polls` counts polls as they start, one at a time: at `from + n + 1`, the `n` polls that
    // started after `from` have finished.
    eventually_async(secs, &format!("{n} polls and an idle pipeline"), || async move {
        polls() > from + n && idle(sim, services).await
    })
    .await;
    polls() - from
}

/// POSTs, PUTs or DELETEs a control path of a (multi-tenant) simulator at `base`; the answer's
/// JSON, if any.
pub async fn sim_control(
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: serde_json::Value,
) -> serde_json::Value {
    let r = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .json(&body)
        .send()
        .await
        .expect("sim reachable");
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap_or(serde_json::Value::Null)
}

/// Logs Ingestion that stores every upload but, at the chosen call, loses the answer (the rows
/// are in the workspace, xdrsync is told it failed): the crash between acceptance and cursor.
/// With `only_tenant`, only uploads of that tenant's rows (`DefenderTenantId`) are counted.
pub struct LoseAnswer {
    pub inner: std::sync::Arc<dyn xdrsync::ports::LogsIngestion>,
    pub calls: std::sync::atomic::AtomicUsize,
    pub lose_at: usize,
    pub only_tenant: Option<String>,
}

#[async_trait::async_trait]
impl xdrsync::ports::LogsIngestion for LoseAnswer {
    async fn upload_reporting(
        &self,
        stream: &str,
        rows: &[serde_json::Value],
        on: &dyn xdrsync::ports::AcceptedRows,
    ) -> Result<xdrsync::ports::UploadReport, xdrsync::error::PortError> {
        let r = self.inner.upload_reporting(stream, rows, on).await?;
        let counted =
            self.only_tenant.as_deref().is_none_or(|t| rows.first().is_some_and(|r| r["DefenderTenantId"] == t));
        if counted && self.calls.fetch_add(1, Ordering::SeqCst) + 1 == self.lose_at {
            return Err(xdrsync::error::PortError::unavailable(
                "logs-ingestion",
                "connection reset after the rows were stored",
            ));
        }
        Ok(r)
    }
    async fn probe(&self, stream: &str) -> Result<(), xdrsync::error::PortError> {
        self.inner.probe(stream).await
    }
}

/// The DCR of the second workspace of [`start_two_workspaces`].
pub const SECOND_DCR: &str = "dcr-00000000000000000000000000000002";

/// The workspace tenant's sim, `n` Defender tenants (numbering incidents alike) and a second
/// workspace `soc-emea` with its own DCR, behind one address; the tenants' ids.
pub async fn start_two_workspaces(n: usize) -> (xdrsync_sim::sim::tenants::RunningTenantSims, Vec<String>) {
    let primary = SimConfig::demo();
    let tenants = xdrsync_sim::sim::tenants::tenant_configs(&primary, n);
    let ids: Vec<String> = tenants.iter().map(|t| t.tenant_id.clone()).collect();
    let mut emea = primary.clone();
    emea.workspace.name = "soc-emea".into();
    emea.dcr_immutable_id = SECOND_DCR.into();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let sims = xdrsync_sim::sim::tenants::spawn_tenants(listener, primary, tenants, vec![emea])
        .await
        .expect("simulator starts");
    (sims, ids)
}

/// Settings for `sims` with `tenants` (named `names`) and the tenant at `routed` sent to the
/// second workspace of [`start_two_workspaces`].
pub fn two_workspace_settings(
    sims: &xdrsync_sim::sim::tenants::RunningTenantSims,
    storage: Option<&str>,
    tenants: &[String],
    names: &[&str],
    routed: usize,
) -> HashMap<String, String> {
    let mut vars = settings(&sims.primary(), storage);
    let list: Vec<String> = tenants.iter().zip(names).map(|(t, n)| format!("{t}={n}")).collect();
    vars.insert("XDRSYNC_DEFENDER_TENANTS".into(), list.join(","));
    let ws2 = sims.sims.workspaces[0].config.workspace.resource_id();
    vars.insert("XDRSYNC_TENANT_WORKSPACES".into(), format!("{}={ws2}|{SECOND_DCR}", tenants[routed]));
    vars.insert("XDRSYNC_ATTACH_ALERTS".into(), "true".into());
    vars
}

/// Starts `xdrsync run` with exactly `vars` as its environment, in `dir`, its output discarded.
pub fn spawn_run(vars: &HashMap<String, String>, dir: &std::path::Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_xdrsync"))
        .env_clear()
        .envs(vars.iter())
        .current_dir(dir)
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("xdrsync starts")
}

/// One invocation of a custom-handler function as the Functions host makes it: `POST
/// /{function}` with an invocation id; returns the status and the JSON answer.
pub async fn invoke(base: &str, function: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}/{function}"))
        .header("X-Azure-Functions-InvocationId", uuid::Uuid::new_v4().to_string())
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(serde_json::Value::Null))
}
