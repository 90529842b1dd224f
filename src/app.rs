//! The composition root: builds the real adapters from a validated [`Config`] (one `reqwest`
//! client, one token source) into the [`Ports`] bundle the use cases run on. The only module that
//! knows both the adapters and the use cases.

use std::sync::Arc;

use crate::adapters::budget::SharedBudget;
use crate::adapters::graph::GraphDefender;
use crate::adapters::http::{build_http_client, CounterRef, ServiceClient};
use crate::adapters::hunting::GraphHunting;
use crate::adapters::logs::DcrLogsIngestion;
use crate::adapters::queue::AzureQueues;
use crate::adapters::sentinel::ArmSentinel;
use crate::adapters::tables::AzureTables;
use crate::config::Config;
use crate::metrics::CallCounters;
use crate::ports::SystemClock;
use crate::retry::RetryPolicy;
use crate::usecase::Ports;

/// The concrete ports bundle for a validated configuration.
pub fn build(config: Config) -> Ports {
    let counters = CallCounters::shared();
    let http = build_http_client(config.http_timeout);
    let tokens = crate::adapters::auth::token_source(&config, http.clone(), counters.clone());
    let retry = RetryPolicy::default();
    let client = |service: &'static str, scope: &str, pick: fn(&CallCounters) -> &std::sync::atomic::AtomicU64| {
        ServiceClient::new(service, http.clone(), tokens.clone(), scope, retry, CounterRef::new(counters.clone(), pick))
    };
    let graph_budget = Arc::new(SharedBudget::per_minute("graph", config.graph_calls_per_minute));
    let arm_writes = Arc::new(SharedBudget::writes_per_second("sentinel", config.arm_writes_per_second));
    let defender = GraphDefender::new(
        client("graph", &config.graph_scope, |c| &c.graph).with_budget(graph_budget),
        &config.graph_endpoint,
    );
    let sentinel = ArmSentinel::new(
        client("sentinel", &config.arm_scope, |c| &c.arm).with_budget(arm_writes),
        config.security_insights_base(),
    );
    let logs = DcrLogsIngestion::new(
        client("logs-ingestion", &config.monitor_scope, |c| &c.logs),
        &config.logs_ingestion_endpoint,
        config.dcr_immutable_id.clone(),
        config.max_batch_bytes,
    );
    let log_query = crate::adapters::log_analytics::LogAnalyticsQuery::new(
        client("log-analytics", &config.alerts.scope, |c| &c.log_query),
        &config.alerts.endpoint,
        config.alerts.workspace_id.as_deref().unwrap_or("00000000-0000-0000-0000-000000000000"),
    );
    // Advanced hunting has its own per-tenant quota (45 calls a minute), apart from incidents'.
    let hunting_budget = Arc::new(SharedBudget::per_minute("hunting", config.hunting.calls_per_minute));
    let hunting = GraphHunting::new(
        client("hunting", &config.graph_scope, |c| &c.graph).with_budget(hunting_budget),
        &config.graph_endpoint,
    );
    let hunting_logs = DcrLogsIngestion::new(
        client("logs-ingestion", &config.monitor_scope, |c| &c.logs),
        &config.logs_ingestion_endpoint,
        config.hunting.dcr_immutable_id.clone().unwrap_or_else(|| config.dcr_immutable_id.clone()),
        config.max_batch_bytes,
    );
    let blobs = config.hunting.storage_connection.as_deref().and_then(|raw| {
        match crate::adapters::blobs::AzureBlobs::new(raw, &tokens) {
            Ok(b) => Some(Arc::new(b) as Arc<dyn crate::ports::BlobReader>),
            Err(e) => {
                tracing::error!(error.message = %e, "XDRSYNC_HUNTING_STORAGE_CONNECTION is unusable; the storage source is off");
                None
            }
        }
    });
    let store = AzureTables::new(&config.storage, &config.table_prefix, counters.clone(), &tokens);
    let queue = AzureQueues::new(&config.storage, counters.clone(), &tokens);
    Ports {
        config: Arc::new(config),
        tokens,
        defender: Arc::new(defender),
        sentinel: Arc::new(sentinel),
        logs: Arc::new(logs),
        log_query: Arc::new(log_query),
        store: Arc::new(store),
        queue: Arc::new(queue),
        clock: Arc::new(SystemClock),
        counters,
        locks: Default::default(),
        hunting: Arc::new(hunting),
        hunting_logs: Arc::new(hunting_logs),
        blobs,
    }
}
