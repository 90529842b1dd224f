//! Mode 2, `XDRSYNC_TARGET=defender-portal` (docs/unified-portal.md): the target tenant's
//! Defender incidents (made by the correlation engine from the native-alerts rule) synced with
//! their source incidents through Graph on both sides. On each tick: list target incidents
//! changed since the `portal` cursor, read their alerts, record the links (source → targets) and
//! run the group sync of domain/portal.rs for each; a source incident's reconcile runs the sync
//! of every target it is linked to. The pair states (base, comments copied) live in `Cursors`
//! rows of partition `portal:<target id>`; links in partition `portal-link:<tenant>`.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use crate::domain::cursor::{select_new, Mark};
use crate::domain::defender::{DefenderAlert, DefenderIncident};
use crate::domain::keys::unescape_key;
use crate::domain::portal::{
    pair_row, plan_group, sources_of, stale_pairs, view, Directory, PairState, SourceRef, SourceSide,
    SOURCE_OWNER_PREFIX, TARGET_OWNER_PREFIX,
};
use crate::ports::{DefenderApi, Table};
use crate::state::{load, modify, put, RowKey};
use crate::usecase::poll::Feed;
use crate::usecase::Ports;

use super::UseCaseError;

/// The cursor (and health feed) of the target-tenant listing.
pub const FEED: &str = crate::records::PORTAL_FEED;

/// What one run did, for the tick's answer and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PortalReport {
    pub listed: usize,
    pub targets_synced: usize,
    pub writes: usize,
}

impl std::fmt::Display for PortalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "portal: {} target incidents listed, {} synced, {} writes",
            self.listed, self.targets_synced, self.writes
        )
    }
}

/// Graph in the target (workspace) tenant: built with the workspace's token source, as the
/// directory of Sentinel owners is (`TenantDirectory::workspace_users`).
pub fn target_graph(s: &Ports) -> Arc<dyn DefenderApi> {
    s.tenants.workspace_users.clone().unwrap_or_else(|| s.defender.clone())
}

/// Lists target incidents changed since the cursor and syncs each with its sources.
pub async fn sync_changed_targets(s: &Ports) -> Result<PortalReport, UseCaseError> {
    let graph = target_graph(s);
    let started = tokio::time::Instant::now();
    let mut report = PortalReport::default();
    // Window by window, as the Defender poll walks a backfill, within the poll's time budget.
    loop {
        let feed = Feed::open(s, FEED, s.config.initial_lookback).await?;
        let mut marks: Vec<Mark> = Vec::new();
        let mut page = graph.list_incident_stamps(feed.window, None).await?;
        loop {
            marks.extend(page.items.iter().map(|i| Mark { id: i.id.clone(), at: i.last_update_date_time }));
            match page.next.take() {
                Some(next) => page = graph.list_incident_stamps(feed.window, Some(&next)).await?,
                None => break,
            }
        }
        let fresh: BTreeSet<String> = select_new(feed.cursor(), &marks).into_iter().map(|m| m.id.clone()).collect();
        report.listed += marks.len();
        for id in &fresh {
            report.writes += sync_target(s, graph.as_ref(), id).await?;
            report.targets_synced += 1;
        }
        feed.commit(s, &marks, marks.len(), fresh.len()).await?;
        if feed.window.until.is_none() || started.elapsed() >= s.config.poll_time_budget {
            break;
        }
    }
    Ok(report)
}

/// After a source incident's reconcile: syncs every target it is linked to.
pub async fn sync_linked_targets(s: &Ports, tenant: &str, incident: &str) -> Result<usize, UseCaseError> {
    let Some(link) = load::<BTreeSet<String>>(s.store.as_ref(), Table::Cursors, &link_key(tenant, incident)?).await?
    else {
        return Ok(0); // the engine has not made (or we have not yet seen) its target incident
    };
    let graph = target_graph(s);
    let mut writes = 0;
    for target in &link.value {
        writes += sync_target(s, graph.as_ref(), target).await?;
    }
    Ok(writes)
}

fn link_key(tenant: &str, incident: &str) -> Result<RowKey, crate::error::PortError> {
    RowKey::new(&format!("portal-link:{}", tenant.to_ascii_lowercase()), incident)
}

fn pair_key(target: &str, src: &SourceRef) -> Result<RowKey, crate::error::PortError> {
    RowKey::new(&format!("portal:{target}"), &pair_row(src))
}

/// Unlinks the sources of `target_id` its alerts no longer name (an engine split, or the target
/// gone): each such source's link drops the target, so its changes no longer read it. The pair's
/// state (base and comment fingerprints) stays: if the engine groups them again, the sync goes
/// on from it instead of copying comments twice.
async fn forget_stale_pairs(s: &Ports, target_id: &str, named: &BTreeSet<SourceRef>) -> Result<(), UseCaseError> {
    let pk = RowKey::new(&format!("portal:{target_id}"), "")?.pk;
    let rows = s.store.query_partition(Table::Cursors, &pk).await?;
    let paired: Vec<String> = rows.iter().map(|e| unescape_key(&e.row_key)).collect();
    for src in stale_pairs(paired.iter().map(String::as_str), named) {
        let mut unlinked = false;
        modify::<BTreeSet<String>, _>(s.store.as_ref(), Table::Cursors, &link_key(&src.tenant, &src.incident)?, |l| {
            let l = l?;
            unlinked = l.contains(target_id);
            unlinked.then(|| l.iter().filter(|t| *t != target_id).cloned().collect())
        })
        .await?;
        if unlinked {
            tracing::info!(target.incident = %target_id, tenant.id = %src.tenant, incident.id = %src.incident, "the target incident no longer holds this source's alerts; link removed");
        }
    }
    Ok(())
}

/// Owner lookups answered before the pure plan runs (it cannot wait on Graph).
struct Known {
    target: HashMap<String, bool>,
    source: HashMap<(String, String), bool>,
}

impl Directory for Known {
    fn in_source(&self, tenant: &str, upn: &str) -> bool {
        self.source.get(&(tenant.to_ascii_lowercase(), upn.to_string())).copied().unwrap_or(false)
    }
    fn in_target(&self, upn: &str) -> bool {
        self.target.get(upn).copied().unwrap_or(false)
    }
}

async fn knows(graph: &dyn DefenderApi, upn: &str) -> bool {
    match graph.find_user(upn).await {
        Ok(u) => u.is_some(),
        Err(e) => {
            // An owner we cannot look up is kept as a tag, never dropped.
            tracing::warn!(owner.upn = %upn, error.message = %e, "owner lookup failed; kept as a tag");
            false
        }
    }
}

/// One target incident and all its sources; returns the number of writes made.
pub async fn sync_target(s: &Ports, graph: &dyn DefenderApi, target_id: &str) -> Result<usize, UseCaseError> {
    let _serialized = s.locks.lock(&format!("portal:{target_id}")).await;
    let Some(t) = graph.get_incident(target_id).await? else {
        forget_stale_pairs(s, target_id, &BTreeSet::new()).await?;
        return Ok(0);
    };
    let alerts: Vec<DefenderAlert> = match t.complete_alerts() {
        Some(a) => a.to_vec(),
        None => graph.list_alerts(target_id).await?,
    };
    let named = sources_of(&alerts);
    forget_stale_pairs(s, target_id, &named).await?;
    let mut sources: Vec<(SourceRef, Ports, DefenderIncident, Option<PairState>)> = Vec::new();
    for src in named {
        let Some(scope) = s.for_tenant(&src.tenant) else {
            tracing::warn!(tenant.id = %src.tenant, incident.id = %src.incident, "target incident names a tenant not configured; left out");
            continue;
        };
        let Some(inc) = scope.defender.get_incident(&src.incident).await? else { continue };
        let state = load::<PairState>(s.store.as_ref(), Table::Cursors, &pair_key(target_id, &src)?).await?;
        put(
            s.store.as_ref(),
            Table::Cursors,
            &link_key(&src.tenant, &src.incident)?,
            &link_with(s, &src, target_id).await?,
            &[],
        )
        .await?;
        sources.push((src, scope, inc, state.map(|v| v.value)));
    }
    if sources.is_empty() {
        return Ok(0);
    }
    let known = resolve_owners(graph, &t, &sources).await;
    let sides: Vec<SourceSide<'_>> =
        sources.iter().map(|(r, _, i, st)| SourceSide { source: r.clone(), incident: i, state: st.as_ref() }).collect();
    let plan = plan_group(target_id, &t, &sides, &known, s.config.conflict_policy);
    let mut writes = 0;
    if !plan.target_patch.is_empty() {
        graph.patch_incident(target_id, &plan.target_patch).await?;
        writes += 1;
    }
    for c in &plan.target_comments {
        graph.add_comment(target_id, c).await?;
        writes += 1;
    }
    for sp in &plan.sources {
        let Some((_, scope, _, _)) = sources.iter().find(|(r, ..)| *r == sp.source) else { continue };
        if !sp.patch.is_empty() {
            scope.defender.patch_incident(&sp.source.incident, &sp.patch).await?;
            writes += 1;
        }
        for c in &sp.comments {
            scope.defender.add_comment(&sp.source.incident, c).await?;
            writes += 1;
        }
        put(s.store.as_ref(), Table::Cursors, &pair_key(target_id, &sp.source)?, &sp.next, &[]).await?;
    }
    if writes > 0 {
        tracing::info!(target.incident = %target_id, portal.writes = writes, portal.sources = plan.sources.len(), portal.conflicts = plan.conflicts.len(), "synced target incident with its sources");
    }
    Ok(writes)
}

/// The targets a source is linked to, with `target` added.
async fn link_with(s: &Ports, src: &SourceRef, target: &str) -> Result<BTreeSet<String>, UseCaseError> {
    let key = link_key(&src.tenant, &src.incident)?;
    let mut set =
        load::<BTreeSet<String>>(s.store.as_ref(), Table::Cursors, &key).await?.map(|v| v.value).unwrap_or_default();
    set.insert(target.to_string());
    Ok(set)
}

/// Looks up every owner any side shows, in the tenants it may go to.
async fn resolve_owners(
    graph: &dyn DefenderApi,
    t: &DefenderIncident,
    sources: &[(SourceRef, Ports, DefenderIncident, Option<PairState>)],
) -> Known {
    let mut owners: BTreeSet<String> = BTreeSet::new();
    owners.extend(view(t, SOURCE_OWNER_PREFIX).owner.flatten());
    for (_, _, i, _) in sources {
        owners.extend(view(i, TARGET_OWNER_PREFIX).owner.flatten());
    }
    let mut known = Known { target: HashMap::new(), source: HashMap::new() };
    for o in &owners {
        known.target.insert(o.clone(), knows(graph, o).await);
        for (r, scope, _, _) in sources {
            let k = (r.tenant.to_ascii_lowercase(), o.clone());
            if let std::collections::hash_map::Entry::Vacant(e) = known.source.entry(k) {
                e.insert(knows(scope.defender.as_ref(), o).await);
            }
        }
    }
    known
}

/// Mode 2 (`XDRSYNC_TARGET=defender-portal`): the target incidents changed since the `portal`
/// cursor, synced with their sources. Its own feed: a failure never fails the poll.
pub(crate) async fn tick(s: &Ports) -> String {
    if s.config.target != crate::domain::portal::SyncTarget::DefenderPortal {
        return String::new();
    }
    let r = sync_changed_targets(s).await;
    crate::usecase::health::record_feed(s, FEED, r.as_ref().map(|_| ())).await;
    match r {
        Ok(report) => format!("; {report}"),
        Err(e) => {
            tracing::error!(error.message = %e, "syncing target incidents (defender-portal) failed; the next tick retries");
            format!("; target incidents not synced: {e}")
        }
    }
}
