//! The simulator's call counters grouped for reports: which kinds are ARM reads, and how a
//! report line shows calls per kind (shared by the demo and the benches).

use std::collections::BTreeMap;

/// ARM calls that read (`GET`, and the POST listings of an incident's alerts and entities);
/// `arm.incidents.notfound` is a read of an incident that does not exist yet (a mirror's 404).
pub const ARM_READS: [&str; 11] = [
    "arm.incidents.get",
    "arm.incidents.notfound",
    "arm.incidents.list",
    "arm.comments.get",
    "arm.comments.list",
    "arm.relations.list",
    "arm.incidents.alerts",
    "arm.incidents.entities",
    "arm.alert_rules.list",
    "arm.data_connectors.list",
    "arm.role_assignments.list",
];

/// ARM's non-write calls per incident, by kind (the kinds that occurred).
pub fn arm_reads(stats: &BTreeMap<String, u64>, incidents: f64) -> BTreeMap<String, f64> {
    ARM_READS
        .iter()
        .filter_map(|k| stats.get(*k).filter(|n| **n > 0).map(|n| (k.to_string(), *n as f64 / incidents.max(1.0))))
        .collect()
}

/// `kind 0.12, kind 0.50` for a report line.
pub fn per_kind(values: &BTreeMap<String, f64>) -> String {
    if values.is_empty() {
        return "none".into();
    }
    values.iter().map(|(k, v)| format!("{k} {v:.2}")).collect::<Vec<_>>().join(", ")
}
