//! `xdrsync reconcile`: compares every mirrored pair (Defender, Sentinel and the stored base)
//! and prints the drift table; without `--dry-run` it enqueues one reconcile per drifted
//! incident (`ChangeHint::Reconcile`), which the queue workers carry out. The decisions are the
//! reconcile's own (`domain/drift.rs` over `plan::glance` and the merge), so the report says
//! exactly what the fix will do. Also found: Defender incidents in the window without a mirror,
//! and mirrors a person deleted in Sentinel (the reconcile recreates them under the same name).

use std::collections::{BTreeMap, BTreeSet};

use futures::StreamExt;
use serde::Serialize;
use time::OffsetDateTime;

use crate::domain::defender::DefenderIncident;
use crate::domain::drift::{drift, FieldDrift};
use crate::domain::keys::unescape_key;
use crate::domain::names::sentinel_incident_name;
use crate::domain::plan::Observed;
use crate::domain::time_fmt;
use crate::domain::work::{ChangeHint, WorkItem};
use crate::error::PortError;
use crate::ports::Table;
use crate::records::{incident_key, IncidentState};
use crate::state::{decode, load, RowKey};
use crate::usecase::Ports;

/// Pairs compared at once (each costs a Graph GET unless listed, and an ARM GET).
const CONCURRENCY: usize = 8;

#[derive(Debug, Clone)]
pub struct Options {
    /// How far back to look: Defender incidents updated, or pairs synced, within it.
    pub since: time::Duration,
    /// Only these Defender incident ids (the window is then ignored).
    pub incidents: Vec<String>,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftRow {
    pub incident_id: String,
    #[serde(flatten)]
    pub drift: FieldDrift,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    pub incident_id: String,
    pub message: String,
}

#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub tenant_id: String,
    #[serde(with = "time_fmt::rfc3339_opt")]
    pub since: Option<OffsetDateTime>,
    pub dry_run: bool,
    /// Pairs (or would-be pairs) looked at.
    pub compared: usize,
    pub in_sync: usize,
    pub drift: Vec<DriftRow>,
    /// Defender incidents with no mirror yet.
    pub missing_mirrors: Vec<String>,
    /// Mirrors gone from Sentinel (deleted by a person); the reconcile recreates them.
    pub deleted_mirrors: Vec<String>,
    /// Incidents enqueued for a reconcile (empty with `--dry-run`).
    pub enqueued: Vec<String>,
    /// Defender no longer has these incidents (nothing to do).
    pub gone_from_defender: Vec<String>,
    /// Pairs that could not be compared.
    pub errors: Vec<Problem>,
}

/// Runs the comparison for the configured tenant (the one place that names it).
pub async fn run(s: &Ports, opts: &Options) -> Result<Report, PortError> {
    let tenant = s.config.tenant_id.clone();
    for_tenant(s, &tenant, opts).await
}

async fn for_tenant(s: &Ports, tenant: &str, opts: &Options) -> Result<Report, PortError> {
    let cfg = &s.config;
    let now = s.clock.now();
    let since = (opts.incidents.is_empty()).then(|| now - opts.since);
    let mut report = Report { tenant_id: tenant.to_string(), since, dry_run: opts.dry_run, ..Default::default() };

    // The stored pairs and the Defender incidents of the window.
    let mut stored: BTreeMap<String, IncidentState> = BTreeMap::new();
    let mut listed: BTreeMap<String, DefenderIncident> = BTreeMap::new();
    let candidates: BTreeSet<String> = match since {
        None => opts.incidents.iter().cloned().collect(),
        Some(since) => {
            let pk = RowKey::new(tenant, "-")?.pk;
            for e in s.store.query_partition(Table::Incidents, &pk).await? {
                match decode::<IncidentState>(&e) {
                    Ok(st) => {
                        stored.insert(unescape_key(&e.row_key), st);
                    }
                    Err(err) => {
                        report.errors.push(Problem { incident_id: unescape_key(&e.row_key), message: err.to_string() })
                    }
                }
            }
            for d in s.defender.list_incidents_since(since).await? {
                listed.insert(d.id.clone(), d);
            }
            let recent = |st: &IncidentState| {
                st.last_sync.is_some_and(|t| t >= since) || st.defender_seen.is_some_and(|t| t >= since)
            };
            listed.keys().cloned().chain(stored.iter().filter(|(_, st)| recent(st)).map(|(id, _)| id.clone())).collect()
        }
    };

    let results: Vec<(String, Result<Compared, PortError>)> = futures::stream::iter(candidates)
        .map(|id| {
            let st = stored.remove(&id);
            let d = listed.remove(&id);
            async move {
                let r = compare(s, tenant, &id, st, d).await;
                (id, r)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;

    let mut to_fix = BTreeSet::new();
    for (id, r) in results {
        report.compared += 1;
        match r {
            Ok(Compared::Gone) => report.gone_from_defender.push(id),
            Ok(Compared::Rows(rows)) if rows.is_empty() => report.in_sync += 1,
            Ok(Compared::Rows(rows)) => {
                for row in rows {
                    if row.field == "mirror" {
                        if row.action.starts_with("recreate") {
                            report.deleted_mirrors.push(id.clone());
                        } else {
                            report.missing_mirrors.push(id.clone());
                        }
                    }
                    report.drift.push(DriftRow { incident_id: id.clone(), drift: row });
                }
                to_fix.insert(id);
            }
            Err(e) => report.errors.push(Problem { incident_id: id, message: e.to_string() }),
        }
    }
    report.drift.sort_by(|a, b| numeric_order(&a.incident_id, &b.incident_id).then(a.drift.field.cmp(b.drift.field)));
    for list in [&mut report.missing_mirrors, &mut report.deleted_mirrors, &mut report.gone_from_defender] {
        list.sort_by(|a, b| numeric_order(a, b));
    }
    if !opts.dry_run && !to_fix.is_empty() {
        s.queue.ensure_queue(&cfg.queue_name).await?;
        for id in to_fix {
            let item = WorkItem::reconcile(tenant, &id, ChangeHint::Reconcile);
            s.queue.send(&cfg.queue_name, &item.to_json()).await?;
            report.enqueued.push(id);
        }
        report.enqueued.sort_by(|a, b| numeric_order(a, b));
        tracing::info!(reconcile.enqueued = report.enqueued.len(), "enqueued the fixes");
    }
    Ok(report)
}

enum Compared {
    Gone,
    Rows(Vec<FieldDrift>),
}

/// Reads what the reconcile's glance reads, and asks the core what drifted.
async fn compare(
    s: &Ports,
    tenant: &str,
    id: &str,
    stored: Option<IncidentState>,
    listed: Option<DefenderIncident>,
) -> Result<Compared, PortError> {
    let cfg = &s.config;
    let stored = match stored {
        Some(st) => Some(st),
        None => load::<IncidentState>(s.store.as_ref(), Table::Incidents, &incident_key(tenant, id)?)
            .await?
            .map(|v| v.value),
    };
    let d = match listed {
        Some(d) => d,
        None => match s.defender.get_incident(id).await? {
            Some(d) => d,
            None => return Ok(Compared::Gone),
        },
    };
    let name = stored.as_ref().map(|st| st.sentinel_name).unwrap_or_else(|| sentinel_incident_name(tenant, id));
    let current = s.sentinel.get_incident(&name).await?;
    let badge = s.tenant_badge();
    let observed = Observed {
        tenant_id: tenant,
        incident_id: id,
        defender: &d,
        sentinel: current.as_ref(),
        stored: stored.as_ref(),
        tenant: badge.as_ref(),
    };
    Ok(Compared::Rows(drift(&observed, cfg.conflict_policy, cfg.mirror_sentinel_incidents)))
}

/// Numeric ids in numeric order, anything else after, by text.
fn numeric_order(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => std::cmp::Ordering::Less,
        (Err(_), Ok(_)) => std::cmp::Ordering::Greater,
        _ => a.cmp(b),
    }
}

/// The text form: the drift table, then the lists and what was done.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let scope = r.since.map_or("the incidents named".to_string(), |t| format!("since {}", time_fmt::format(t)));
    out.push_str(&format!(
        "compared {} incident(s) ({scope}): {} in sync, {} drifted\n",
        r.compared,
        r.in_sync,
        r.drift.iter().map(|d| &d.incident_id).collect::<BTreeSet<_>>().len()
    ));
    if !r.drift.is_empty() {
        let w = |f: &dyn Fn(&DriftRow) -> usize, min: usize| r.drift.iter().map(f).max().unwrap_or(0).clamp(min, 40);
        let wi = w(&|d| d.incident_id.len(), 8);
        let wf = w(&|d| d.drift.field.len(), 5);
        let wd = w(&|d| d.drift.defender.chars().count(), 8);
        let ws = w(&|d| d.drift.sentinel.chars().count(), 8);
        let wb = w(&|d| d.drift.base.chars().count(), 4);
        let cut = |s: &str, n: usize| -> String {
            if s.chars().count() > n {
                s.chars().take(n - 1).collect::<String>() + "…"
            } else {
                s.to_string()
            }
        };
        out.push_str(&format!(
            "{:<wi$}  {:<wf$}  {:<wd$}  {:<ws$}  {:<wb$}  action\n",
            "incident", "field", "Defender", "Sentinel", "base"
        ));
        for d in &r.drift {
            out.push_str(&format!(
                "{:<wi$}  {:<wf$}  {:<wd$}  {:<ws$}  {:<wb$}  {}\n",
                d.incident_id,
                d.drift.field,
                cut(&d.drift.defender, wd),
                cut(&d.drift.sentinel, ws),
                cut(&d.drift.base, wb),
                d.drift.action
            ));
        }
    }
    if !r.missing_mirrors.is_empty() {
        out.push_str(&format!("without a mirror: {}\n", r.missing_mirrors.join(", ")));
    }
    if !r.deleted_mirrors.is_empty() {
        out.push_str(&format!(
            "mirror deleted in Sentinel (recreated by the reconcile): {}\n",
            r.deleted_mirrors.join(", ")
        ));
    }
    if !r.gone_from_defender.is_empty() {
        out.push_str(&format!("no longer in Defender (nothing to do): {}\n", r.gone_from_defender.join(", ")));
    }
    for e in &r.errors {
        out.push_str(&format!("could not compare incident {}: {}\n", e.incident_id, e.message));
    }
    if r.dry_run {
        out.push_str("dry run: nothing enqueued\n");
    } else if r.enqueued.is_empty() {
        out.push_str("nothing to fix\n");
    } else {
        out.push_str(&format!("enqueued {} reconcile(s): {}\n", r.enqueued.len(), r.enqueued.join(", ")));
    }
    out
}
