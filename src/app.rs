//! The composition root: builds the real adapters from a validated [`Config`] (one `reqwest`
//! client, one token source) into the [`Ports`] bundle the use cases run on. The only module that
//! knows both the adapters and the use cases.

use std::sync::Arc;

use crate::adapters::budget::SharedBudget;
use crate::adapters::clock::SystemClock;
use crate::adapters::graph::GraphDefender;
use crate::adapters::http::{build_http_client, CounterRef, ServiceClient};
use crate::adapters::hunting::GraphHunting;
use crate::adapters::log_analytics::LogAnalyticsQuery;
use crate::adapters::logs::{DcrLogsIngestion, RoutedLogsIngestion};
use crate::adapters::queue::AzureQueues;
use crate::adapters::sentinel::ArmSentinel;
use crate::adapters::tables::AzureTables;
use crate::config::Config;
use crate::metrics::CallCounters;
use crate::ports::TokenSource;
use crate::retry::RetryPolicy;
use crate::usecase::tenants::{TenantDirectory, TenantPorts};
use crate::usecase::Ports;

/// The concrete ports bundle for a validated configuration.
pub fn build(config: Config) -> Ports {
    let counters = CallCounters::shared();
    let http = build_http_client(config.http_timeout);
    // Azure calls use the managed identity; Graph its own credential (docs/identity.md).
    let tokens = crate::adapters::auth::azure_token_source(&config, http.clone(), counters.clone());
    let graph_tokens =
        crate::adapters::auth::graph_token_source(&config, &config.tenant_id, http.clone(), counters.clone(), &tokens);
    let retry = RetryPolicy::default();
    let client = |service: &'static str,
                  tokens: &Arc<dyn TokenSource>,
                  scope: &str,
                  pick: fn(&CallCounters) -> &std::sync::atomic::AtomicU64| {
        ServiceClient::new(service, http.clone(), tokens.clone(), scope, retry, CounterRef::new(counters.clone(), pick))
    };
    // Graph budgets are per tenant: each Defender tenant gets its own bucket.
    let graph = |tokens: &Arc<dyn TokenSource>| {
        let budget = Arc::new(SharedBudget::per_minute("graph", config.graph_calls_per_minute));
        Arc::new(GraphDefender::new(
            client("graph", tokens, &config.graph_scope, |c| &c.graph).with_budget(budget),
            &config.graph_endpoint,
        ))
    };
    // ARM's writes are a bucket per subscription and principal (Learn: 200, refilled at 10/s);
    // ours is smaller, so other callers with this identity keep room (docs/configuration.md).
    let arm_writes =
        Arc::new(SharedBudget::arm_writes("sentinel", config.arm_write_burst, config.arm_writes_per_second));
    let sentinel_for = |cfg: &Config| {
        Arc::new(ArmSentinel::new(
            client("sentinel", &tokens, &config.arm_scope, |c| &c.arm).with_budget(arm_writes.clone()),
            cfg.security_insights_base(),
        ))
    };
    let logs_for = |cfg: &Config| {
        Arc::new(DcrLogsIngestion::new(
            client("logs-ingestion", &tokens, &config.monitor_scope, |c| &c.logs),
            &cfg.logs_ingestion_endpoint,
            cfg.dcr_immutable_id.clone(),
            config.max_batch_bytes,
        ))
    };
    let log_query: Arc<dyn crate::ports::LogQuery> = Arc::new(LogAnalyticsQuery::new(
        client("log-analytics", &tokens, &config.alerts.scope, |c| &c.log_query),
        &config.alerts.endpoint,
        config.alerts.workspace_id.as_deref().unwrap_or("00000000-0000-0000-0000-000000000000"),
    ));
    // A routed workspace's query API, by resource id: one per workspace, whichever tenants share it.
    let mut routed_queries: Vec<(String, Arc<dyn crate::ports::LogQuery>)> = Vec::new();
    let mut query_for = |ws: &crate::domain::workspace::Workspace| {
        if let Some((_, q)) = routed_queries.iter().find(|(k, _)| *k == ws.key()) {
            return q.clone();
        }
        let q: Arc<dyn crate::ports::LogQuery> = Arc::new(LogAnalyticsQuery::for_resource(
            client("log-analytics", &tokens, &config.alerts.scope, |c| &c.log_query),
            &config.alerts.endpoint,
            ws,
        ));
        routed_queries.push((ws.key(), q.clone()));
        q
    };
    // Advanced hunting has its own per-tenant quota (45 calls a minute), apart from incidents':
    // each Defender tenant gets its own bucket.
    let hunting_for = |tokens: &Arc<dyn TokenSource>| {
        let budget = Arc::new(SharedBudget::per_minute("hunting", config.hunting.calls_per_minute));
        Arc::new(GraphHunting::new(
            client("hunting", tokens, &config.graph_scope, |c| &c.graph).with_budget(budget),
            &config.graph_endpoint,
        ))
    };
    let defender = graph(&graph_tokens);
    let sentinel = sentinel_for(&config);
    let logs = logs_for(&config);
    let mut directory = TenantDirectory { workspace_tenant_id: config.tenant_id.clone(), ..Default::default() };
    if config.is_multi_tenant() {
        directory.workspace_users = Some(defender.clone());
        for t in &config.defender_tenants {
            let route = config.tenant_routes.iter().find(|r| r.tenant_id == t.id);
            let mut cfg = config.clone();
            cfg.tenant_id = t.id.clone();
            if let Some(r) = route {
                cfg.workspace = r.workspace.clone();
                if let Some(dcr) = &r.dcr_immutable_id {
                    cfg.dcr_immutable_id = dcr.clone();
                }
                // Validated when the settings were read.
                if let Some(endpoint) = r.logs_endpoint.as_deref().and_then(|e| url::Url::parse(e).ok()) {
                    cfg.logs_ingestion_endpoint = endpoint;
                }
            }
            let tenant_tokens =
                crate::adapters::auth::graph_token_source(&config, &t.id, http.clone(), counters.clone(), &tokens);
            directory.tenants.push(TenantPorts {
                tenant: t.clone(),
                defender: graph(&tenant_tokens),
                hunting: hunting_for(&tenant_tokens),
                sentinel: if route.is_some() { sentinel_for(&cfg) } else { sentinel.clone() },
                log_query: match route {
                    Some(r) if !r.workspace.same_as(&config.workspace) => query_for(&r.workspace),
                    _ => log_query.clone(),
                },
                logs: if cfg.dcr_immutable_id != config.dcr_immutable_id
                    || cfg.logs_ingestion_endpoint != config.logs_ingestion_endpoint
                {
                    logs_for(&cfg)
                } else {
                    logs.clone()
                },
                config: Arc::new(cfg),
            });
        }
    }
    let hunting = hunting_for(&graph_tokens);
    // Each hunting table to its own DCR where routed (XDRSYNC_HUNTING_DCR_IMMUTABLE_ID).
    let hunting_dcr = |dcr: String| -> Arc<dyn crate::ports::LogsIngestion> {
        Arc::new(DcrLogsIngestion::new(
            client("logs-ingestion", &tokens, &config.monitor_scope, |c| &c.logs),
            &config.logs_ingestion_endpoint,
            dcr,
            config.max_batch_bytes,
        ))
    };
    let hunting_logs = RoutedLogsIngestion {
        default: hunting_dcr(
            config.hunting.dcr_immutable_id.clone().unwrap_or_else(|| config.dcr_immutable_id.clone()),
        ),
        routes: config
            .hunting
            .dcr_routes
            .iter()
            .filter_map(|(name, dcr)| crate::domain::hunting::schema::TableDef::find(name).map(|t| (t.stream(), dcr)))
            .map(|(stream, dcr)| (stream, hunting_dcr(dcr.clone())))
            .collect(),
    };
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
        graph_tokens,
        defender,
        sentinel,
        logs,
        log_query,
        store: Arc::new(store),
        queue: Arc::new(queue),
        clock: Arc::new(SystemClock),
        counters,
        locks: Default::default(),
        hunting,
        hunting_logs: Arc::new(hunting_logs),
        blobs,
        tenants: Arc::new(directory),
        health_cache: Default::default(),
    }
}
