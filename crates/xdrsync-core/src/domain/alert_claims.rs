//! Which trigger row a SecurityAlert of xdrsync's rules stands for (docs/native-alerts.md),
//! pure: the one Log Analytics query of an attach run, and the reading of its answer.
//!
//! Documented (Sentinel blog, “Alert enrichment”; Learn, “Surface custom event details”): custom
//! details are stored in SecurityAlert's `ExtendedProperties` under `Custom Details`, as JSON,
//! each the values of its column. Not documented: what a summary alert (the 30th of an NRT run
//! over more than 29 results) holds there. So an alert is related only when its claim is
//! unambiguous whichever way the service fills it: every detail has one value (several values:
//! a summary carrying every row's values), and no other alert claims its TriggerId (two alerts
//! claiming one: a summary carrying only its first row's values, indistinguishable by shape from
//! that row's own alert). An ambiguous TriggerId relates nothing; its row is sent again under a
//! new TriggerId.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use time::OffsetDateTime;

use super::alert_links::QueryTable;
use super::alert_triggers::TriggerKey;
use super::time_fmt;

/// The custom details of the rules (`infra/alert-rule.json`).
pub use super::alert_links::{DETAIL_ALERT, DETAIL_INCIDENT, DETAIL_TENANT};
pub const DETAIL_TRIGGER: &str = "TriggerId";
pub const DETAIL_PART: &str = "TriggerPart";
/// Every custom detail the rules carry; the claim needs all of them.
pub const DETAILS: [&str; 5] = [DETAIL_TENANT, DETAIL_INCIDENT, DETAIL_ALERT, DETAIL_TRIGGER, DETAIL_PART];

/// The columns the query projects.
pub const COLUMNS: [&str; 4] = ["SystemAlertId", "TimeGenerated", "IngestedAt", "XdrsyncDetails"];

/// The one query of an attach run: the rules' SecurityAlerts stored after `after`, with their
/// custom details as JSON text (so several values stay visible).
pub fn claims_query(after: OffsetDateTime) -> String {
    format!(
        "SecurityAlert\n| where ingestion_time() > datetime({})\n| where ExtendedProperties has \"{DETAIL_TRIGGER}\"\n| extend XdrsyncDetails = tostring(parse_json(tostring(parse_json(ExtendedProperties)[\"Custom Details\"])))\n| project SystemAlertId, TimeGenerated, IngestedAt = ingestion_time(), XdrsyncDetails",
        time_fmt::format(after)
    )
}

/// A SecurityAlert claiming exactly one trigger row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub system_alert_id: String,
    pub ingested: Option<OffsetDateTime>,
    pub key: TriggerKey,
    pub trigger_id: String,
}

/// One answer row, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    Single(Claim),
    /// Several values in a detail: never related; the TriggerIds it names are summarised.
    Summary {
        system_alert_id: String,
        trigger_ids: Vec<String>,
    },
    /// Without xdrsync's details (counted and logged by the caller).
    Unreadable,
}

/// The values of one custom detail: an array of strings (the documented shape), a plain string,
/// or a number; empty values are ignored.
fn values(details: &Value, key: &str) -> Vec<String> {
    let one = |v: &Value| match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    match details.get(key) {
        Some(Value::Array(a)) => a.iter().filter_map(one).collect(),
        Some(v) => one(v).into_iter().collect(),
        None => Vec::new(),
    }
}

/// Reads one alert's custom details (an object, or JSON text of one).
pub fn read_details(system_alert_id: &str, ingested: Option<OffsetDateTime>, details: &Value) -> Read {
    let parsed;
    let details = match details {
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(v) => {
                parsed = v;
                &parsed
            }
            Err(_) => return Read::Unreadable,
        },
        v => v,
    };
    let all: Vec<Vec<String>> = DETAILS.iter().map(|k| values(details, k)).collect();
    if all.iter().any(|v| v.len() > 1) {
        return Read::Summary { system_alert_id: system_alert_id.to_string(), trigger_ids: all[3].clone() };
    }
    let first = |i: usize| all[i].first().cloned();
    let part = first(4).and_then(|p| p.split('/').next().and_then(|k| k.parse::<u16>().ok()));
    match (first(0), first(1), first(2), first(3), part) {
        (Some(tenant), Some(incident), Some(alert), Some(trigger_id), Some(part)) if part >= 1 => Read::Single(Claim {
            system_alert_id: system_alert_id.to_string(),
            ingested,
            key: TriggerKey { tenant_id: tenant.to_ascii_lowercase(), incident_id: incident, alert_id: alert, part },
            trigger_id,
        }),
        _ => Read::Unreadable,
    }
}

/// What a query answer says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// Unambiguous: one alert for its TriggerId, one value per detail.
    pub relatable: Vec<Claim>,
    /// TriggerIds to send again at once: named by a summary, or claimed by several alerts.
    pub summarised: BTreeSet<String>,
    /// Summary alerts seen (never related), with their ingestion time: by shape (their
    /// SystemAlertId), or as a TriggerId several alerts claim (`trigger:<TriggerId>`).
    pub summaries: Vec<(String, Option<OffsetDateTime>)>,
    /// Alerts of an ambiguous TriggerId (not related).
    pub ambiguous: usize,
    pub unreadable: usize,
    /// The newest ingestion time in the answer (the next watermark).
    pub newest: Option<OffsetDateTime>,
}

/// Reads a query answer ([`claims_query`]); columns are found by name.
pub fn read_claims(table: &QueryTable) -> Claims {
    let at = |name: &str| table.columns.iter().position(|c| c.eq_ignore_ascii_case(name));
    let idx: Vec<Option<usize>> = COLUMNS.iter().map(|c| at(c)).collect();
    let mut out = Claims::default();
    let mut singles: Vec<Claim> = Vec::new();
    for row in &table.rows {
        let cell = |i: usize| idx[i].and_then(|j| row.get(j));
        let text = |i: usize| cell(i).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty());
        let ingested = text(2).and_then(|s| time_fmt::parse(s).ok());
        out.newest = out.newest.max(ingested);
        let (Some(sys), Some(details)) = (text(0), cell(3)) else {
            out.unreadable += 1;
            continue;
        };
        match read_details(sys, ingested, details) {
            Read::Single(c) => singles.push(c),
            Read::Summary { trigger_ids, system_alert_id } => {
                if !out.summaries.iter().any(|(id, _)| *id == system_alert_id) {
                    out.summaries.push((system_alert_id, ingested));
                }
                out.summarised.extend(trigger_ids);
            }
            Read::Unreadable => out.unreadable += 1,
        }
    }
    // One SecurityAlert per id (the overlap may return one twice).
    let mut by_alert: BTreeMap<String, Claim> = BTreeMap::new();
    for c in singles {
        by_alert.insert(c.system_alert_id.clone(), c);
    }
    let mut by_trigger: BTreeMap<String, Vec<Claim>> = BTreeMap::new();
    for c in by_alert.into_values() {
        by_trigger.entry(c.trigger_id.clone()).or_default().push(c);
    }
    // A summary carrying every row's values also names the rows that got their own alert (the
    // first 29): those are related; the rows it names without an alert are sent again.
    for (trigger, claims) in by_trigger {
        if claims.len() == 1 {
            out.summarised.remove(&trigger);
            out.relatable.extend(claims);
        } else {
            out.ambiguous += claims.len();
            let at = claims.iter().filter_map(|c| c.ingested).max();
            out.summaries.push((format!("trigger:{trigger}"), at));
            out.summarised.insert(trigger);
        }
    }
    out
}

#[cfg(test)]
#[path = "alert_claims_tests.rs"]
mod tests;
