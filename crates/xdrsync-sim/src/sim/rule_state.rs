//! What the simulated rule engine holds between runs (the rules, rows waiting for their run,
//! the alerts made): data only, so the world can own it without knowing how rules run
//! (`alert_rule.rs`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::faults::Stats;
use super::nrt_rule::NrtRule;
use super::SummaryDetails;

/// One SecurityAlert a rule made.
#[derive(Debug, Clone)]
pub struct SecurityAlertRecord {
    pub system_alert_id: String,
    pub time_generated: OffsetDateTime,
    pub ingested: OffsetDateTime,
    /// The SecurityAlert columns.
    pub doc: Map<String, Value>,
    /// Entities as the Entities tab lists them (`kind`, `properties`).
    pub entities: Vec<Value>,
    /// The rule that raised it (the simulator's own bookkeeping, never served).
    pub rule: String,
    /// Whether it is a run's summary alert (bookkeeping, never served: Sentinel does not mark it).
    pub summary: bool,
}

impl SecurityAlertRecord {
    /// A custom detail's values, read back from `ExtendedProperties` as a query would.
    pub fn custom_detail_values(&self, key: &str) -> Vec<String> {
        let details = || -> Option<Value> {
            let ext: Value = serde_json::from_str(self.doc.get("ExtendedProperties")?.as_str()?).ok()?;
            serde_json::from_str(ext.get("Custom Details")?.as_str()?).ok()
        };
        details()
            .and_then(|d| d.get(key).and_then(Value::as_array).cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    }

    /// A custom detail's first value.
    pub fn custom_detail(&self, key: &str) -> Option<String> {
        self.custom_detail_values(key).into_iter().next()
    }
}

/// A row waiting for its rules' run.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) at: Instant,
    pub(super) table: String,
    pub(super) row: Map<String, Value>,
}

/// The rule engine's state: rules, rows waiting for their run, and the alerts made.
#[derive(Default)]
pub struct RuleState {
    /// The stored NRT rules by name.
    pub rules: BTreeMap<String, NrtRule>,
    pub(super) pending: VecDeque<Pending>,
    /// When the first row arrived: minutes are counted from it.
    pub(super) epoch: Option<Instant>,
    pub(super) minute: Duration,
    pub(super) summary_details: Option<SummaryDetails>,
    /// The correlation engine when the rows arrived: `(groups all, workspace tenant)`; `None`
    /// when the workspace is not onboarded to the Defender portal.
    pub engine: Option<(bool, String)>,
    /// The engine's incidents: source `tenant/incident` → incident id, and the latest one.
    pub engine_links: BTreeMap<String, String>,
    pub engine_last: Option<String>,
    pub alerts: Vec<SecurityAlertRecord>,
    /// The simulator's counters (shared with `Sim::stats`).
    pub stats: Arc<Stats>,
}

impl RuleState {
    /// The minute a row that arrived `at` belongs to.
    pub(super) fn minute_of(&self, at: Instant) -> u128 {
        match self.epoch {
            Some(e) if !self.minute.is_zero() => at.saturating_duration_since(e).as_nanos() / self.minute.as_nanos(),
            _ => 0,
        }
    }

    /// Whether the run after minute `k` has come.
    pub(super) fn due(&self, k: u128, now: Instant) -> bool {
        match self.epoch {
            Some(e) if !self.minute.is_zero() => {
                let end = self.minute.as_nanos().saturating_mul(k + 1);
                now.saturating_duration_since(e).as_nanos() >= end
            }
            _ => true,
        }
    }
}
