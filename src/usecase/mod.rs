//! Orchestration over the ports: each use case reads, asks the pure core what to do, and writes.
//! Triggers (Functions or standalone) call these and nothing else.

pub mod activity;
pub mod alert_outbox;
pub mod attach_alerts;
pub mod comment_claim;
pub mod cross_owner;
pub mod failures;
pub mod health;
pub mod health_cache;
pub mod health_facts;
pub mod health_rules;
pub mod hunting;
pub mod hunting_estimate;
pub mod hunting_jobs;
pub mod hunting_storage;
pub mod hunting_stream;
pub mod hunting_tenants;
pub mod jobs;
pub mod locks;
pub mod migrate;
pub mod owner;
pub mod poll;
pub mod portal;
pub mod ship_alerts;
pub mod sync;
pub mod tenant_health;
pub mod tenant_poll;
pub mod tenants;
pub mod webhook;

use std::sync::Arc;

use crate::config::Config;
use crate::error::{PortError, Reaction};
use crate::metrics::CallCounters;
use crate::ports::{
    BlobReader, Clock, DefenderApi, HuntingApi, LogQuery, LogsIngestion, SentinelApi, StateStore, TokenSource,
    WorkQueue,
};

/// What every use case runs on: the settings and one trait object per external system. Built
/// from real adapters by `app::build`, or from fakes and the simulator in tests; use cases never
/// see a concrete adapter.
#[derive(Clone)]
pub struct Ports {
    pub config: Arc<Config>,
    /// Azure calls' tokens (the managed identity, or the app outside Azure).
    pub tokens: Arc<dyn TokenSource>,
    /// Graph tokens of the workspace's tenant (`XDRSYNC_GRAPH_CREDENTIAL`).
    pub graph_tokens: Arc<dyn TokenSource>,
    pub defender: Arc<dyn DefenderApi>,
    pub sentinel: Arc<dyn SentinelApi>,
    pub logs: Arc<dyn LogsIngestion>,
    /// The Log Analytics query API (“Native alerts”).
    pub log_query: Arc<dyn LogQuery>,
    pub store: Arc<dyn StateStore>,
    pub queue: Arc<dyn WorkQueue>,
    pub clock: Arc<dyn Clock>,
    pub counters: Arc<CallCounters>,
    /// Serializes reconciles of one incident within this process.
    pub locks: Arc<locks::KeyedLocks>,
    /// Advanced hunting (its own call budget) and the sink of the hunting export (the DCR with
    /// the `Custom-<Table>` streams).
    pub hunting: Arc<dyn HuntingApi>,
    pub hunting_logs: Arc<dyn LogsIngestion>,
    /// The Streaming API's storage account (`XDRSYNC_HUNTING_STORAGE_CONNECTION`), when set.
    pub blobs: Option<Arc<dyn BlobReader>>,
    /// The Defender tenants of `XDRSYNC_DEFENDER_TENANTS` and their ports (empty: one tenant).
    pub tenants: Arc<tenants::TenantDirectory>,
    /// Served health's one assessment per few seconds and its last known facts.
    pub health_cache: Arc<health_cache::HealthCache>,
}

/// Why a use case failed, grouped by what the trigger does next.
#[derive(Debug, thiserror::Error)]
pub enum UseCaseError {
    /// Try again later (throttling, outage, contention, credentials being fixed).
    #[error(transparent)]
    Retry(PortError),
    /// Can never succeed as asked; acknowledge and record.
    #[error("{0}")]
    Permanent(String),
}

impl From<PortError> for UseCaseError {
    fn from(e: PortError) -> Self {
        match e.reaction() {
            Reaction::Retry | Reaction::Redo | Reaction::FixAccess => UseCaseError::Retry(e),
            Reaction::Reject => UseCaseError::Permanent(e.to_string()),
        }
    }
}

impl UseCaseError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, UseCaseError::Retry(_))
    }
}

/// Ports over a valid test configuration (real adapters that no test reaches: replace the ones a
/// test uses with fakes).
#[cfg(test)]
pub(crate) fn test_ports() -> Ports {
    let config = Config::from_vars(&crate::config::tests::base_vars()).expect("valid test settings");
    crate::app::build(config)
}
