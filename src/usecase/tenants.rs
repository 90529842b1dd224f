//! Many Defender tenants (ARCHITECTURE.md: “Tenants”): the per-tenant ports (each tenant's own
//! Graph client, token source and call budget; its advanced hunting with its own budget; its
//! workspace and data collection rule) and the
//! scoping of [`Ports`] to one tenant. A scoped `Ports` has that tenant in `config.tenant_id`, so
//! every use case (poll, reconcile, failures, owners) runs unchanged inside one tenant's
//! partition. Without `XDRSYNC_DEFENDER_TENANTS` there is no directory and the one tenant is
//! `XDRSYNC_TENANT_ID`, exactly as before.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::config::{Config, DefenderTenant};
use crate::domain::tenants::TenantBadge;
use crate::error::PortError;
use crate::ports::{DefenderApi, Entity, HuntingApi, LogQuery, LogsIngestion, SentinelApi, Table};
use crate::state::{decode, put, RowKey};
use crate::usecase::Ports;

/// The partition of `Cursors` that lists every tenant xdrsync has polled (so a tenant removed
/// from the settings is still known, and reported).
pub const KNOWN_TENANTS_PARTITION: &str = "tenants";

/// One configured Defender tenant's ports.
#[derive(Clone)]
pub struct TenantPorts {
    pub tenant: DefenderTenant,
    /// The settings with `tenant_id`, `workspace` and `dcr_immutable_id` of this tenant.
    pub config: Arc<Config>,
    /// Graph in this tenant, with its own token source and call budget.
    pub defender: Arc<dyn DefenderApi>,
    pub sentinel: Arc<dyn SentinelApi>,
    pub logs: Arc<dyn LogsIngestion>,
    /// The Log Analytics query API of its workspace (“Native alerts”).
    pub log_query: Arc<dyn LogQuery>,
    /// Advanced hunting in this tenant: its token source, its own `runHuntingQuery` budget (the
    /// quota is per tenant). Its rows go to the one hunting DCR (`Ports::hunting_logs`).
    pub hunting: Arc<dyn HuntingApi>,
}

/// Every configured tenant's ports (empty in single-tenant mode).
#[derive(Clone, Default)]
pub struct TenantDirectory {
    pub tenants: Vec<TenantPorts>,
    /// Graph in the workspace's tenant (`XDRSYNC_TENANT_ID`): Sentinel owners are its users.
    pub workspace_users: Option<Arc<dyn DefenderApi>>,
    /// `XDRSYNC_TENANT_ID`, the workspace's tenant.
    pub workspace_tenant_id: String,
}

/// A tenant xdrsync has polled, as remembered in `Cursors` (`tenants` partition).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KnownTenant {
    pub tenant_id: String,
    pub display_name: String,
    #[serde(with = "time::serde::rfc3339")]
    pub first_polled: OffsetDateTime,
}

impl Ports {
    /// Whether `XDRSYNC_DEFENDER_TENANTS` lists the tenants.
    pub fn is_multi_tenant(&self) -> bool {
        !self.tenants.tenants.is_empty()
    }

    /// The ports of every configured tenant, each scoped to it (one in single-tenant mode).
    pub fn each_tenant(&self) -> Vec<Ports> {
        if !self.is_multi_tenant() {
            return vec![self.clone()];
        }
        self.tenants.tenants.iter().map(|t| self.scoped(t)).collect()
    }

    /// The ports of one configured tenant; `None` for a tenant not (or no longer) configured.
    pub fn for_tenant(&self, tenant_id: &str) -> Option<Ports> {
        if !self.is_multi_tenant() {
            // The configured tenant, not `config.tenant_id`: `partition_of` may have rewritten
            // that for a tenant that is not configured.
            let configured = match self.tenants.workspace_tenant_id.as_str() {
                "" => self.config.tenant_id.as_str(),
                t => t,
            };
            return tenant_id.eq_ignore_ascii_case(configured).then(|| self.clone());
        }
        self.tenants.tenants.iter().find(|t| t.tenant.id.eq_ignore_ascii_case(tenant_id)).map(|t| self.scoped(t))
    }

    /// Ports whose partition is `tenant_id`, configured or not: for recording what happened to a
    /// removed tenant's work (its Graph is never called).
    pub fn partition_of(&self, tenant_id: &str) -> Ports {
        self.for_tenant(tenant_id).unwrap_or_else(|| {
            let mut s = self.clone();
            let mut cfg = (*self.config).clone();
            cfg.tenant_id = tenant_id.to_ascii_lowercase();
            s.config = Arc::new(cfg);
            s
        })
    }

    fn scoped(&self, t: &TenantPorts) -> Ports {
        let mut s = self.clone();
        s.config = t.config.clone();
        s.defender = t.defender.clone();
        s.sentinel = t.sentinel.clone();
        s.logs = t.logs.clone();
        s.log_query = t.log_query.clone();
        s.hunting = t.hunting.clone();
        s
    }

    /// How this scope's mirrors show their tenant (multi-tenant mode only).
    pub fn tenant_badge(&self) -> Option<TenantBadge> {
        let t = self.tenants.tenants.iter().find(|t| t.tenant.id == self.config.tenant_id)?;
        Some(TenantBadge { tenant_id: t.tenant.id.clone(), display_name: t.tenant.display_name.clone() })
    }

    /// The display name of this scope's tenant (its id in single-tenant mode).
    pub fn tenant_name(&self) -> String {
        self.tenant_badge().map(|b| b.display_name).unwrap_or_else(|| self.config.tenant_id.clone())
    }

    /// One scope per workspace: the Sentinel sweep lists a workspace once, whichever tenants
    /// it holds (the `Index` row of each mirror names its tenant). The default workspace comes
    /// first (reports read it as the one-workspace answer); each scope is its workspace's first
    /// tenant in `XDRSYNC_DEFENDER_TENANTS` order.
    pub fn each_workspace(&self) -> Vec<Ports> {
        let mut seen: Vec<String> = Vec::new();
        let mut out = Vec::new();
        for t in self.each_tenant() {
            let ws = t.config.workspace.key();
            if !seen.contains(&ws) {
                seen.push(ws);
                out.push(t);
            }
        }
        out.sort_by_key(|w| !w.config.workspace.same_as(&self.config.workspace));
        out
    }
}

/// Remembers the configured tenants (once each), so that one removed later is still reported.
pub async fn remember_tenants(s: &Ports) -> Result<(), PortError> {
    if !s.is_multi_tenant() {
        return Ok(());
    }
    let known = known_tenants(s).await?;
    for t in &s.tenants.tenants {
        if !known.iter().any(|k| k.tenant_id == t.tenant.id) {
            let key = RowKey::new(KNOWN_TENANTS_PARTITION, &t.tenant.id)?;
            let record = KnownTenant {
                tenant_id: t.tenant.id.clone(),
                display_name: t.tenant.display_name.clone(),
                first_polled: s.clock.now(),
            };
            put(s.store.as_ref(), Table::Cursors, &key, &record, &[]).await?;
        }
    }
    Ok(())
}

/// Every tenant xdrsync has polled.
pub async fn known_tenants(s: &Ports) -> Result<Vec<KnownTenant>, PortError> {
    let pk = RowKey::new(KNOWN_TENANTS_PARTITION, "")?.pk;
    let rows: Vec<Entity> = s.store.query_partition(Table::Cursors, &pk).await?;
    rows.iter().map(decode).collect()
}

/// Tenants polled before but no longer configured: their mirrors stay and no longer sync.
pub async fn removed_tenants(s: &Ports) -> Result<Vec<KnownTenant>, PortError> {
    if !s.is_multi_tenant() {
        return Ok(Vec::new());
    }
    Ok(known_tenants(s)
        .await?
        .into_iter()
        .filter(|k| !s.tenants.tenants.iter().any(|t| t.tenant.id == k.tenant_id))
        .collect())
}

/// Why a work item of `tenant_id` cannot be synced (it is not configured).
pub fn not_configured(tenant_id: &str) -> String {
    format!(
        "tenant {tenant_id} is not in XDRSYNC_DEFENDER_TENANTS (removed?): its mirror stays in Sentinel and no longer syncs"
    )
}

/// The run of `s`'s workspace: with one tenant, that tenant; with many, every configured tenant
/// whose mirrors live in the workspace of `s` (a scope of [`Ports::each_workspace`]).
pub fn alert_scope(s: &Ports) -> crate::domain::alert_links::AttachScope {
    if !s.is_multi_tenant() {
        return crate::domain::alert_links::AttachScope::single(&s.config.tenant_id);
    }
    crate::domain::alert_links::AttachScope::of_workspace(
        &s.config.workspace,
        s.tenants.tenants.iter().map(|t| (t.tenant.id.as_str(), &t.config.workspace)),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_default_workspace_comes_first_even_when_the_first_tenant_is_routed() {
        let mut vars = crate::config::tests::base_vars();
        let (a, b) = ("1f2e3d4c-0000-4000-8000-00000000000a", "9a8b7c6d-0000-4000-8000-00000000000b");
        let ws2 = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/ws2";
        vars.insert("XDRSYNC_DEFENDER_TENANTS".into(), format!("{a}=A,{b}=B"));
        vars.insert("XDRSYNC_TENANT_WORKSPACES".into(), format!("{a}={ws2}"));
        let s = crate::app::build(crate::config::Config::from_vars(&vars).unwrap());
        let ws = s.each_workspace();
        assert_eq!(ws.len(), 2);
        assert!(ws[0].config.workspace.same_as(&s.config.workspace), "the default workspace first");
        assert_eq!(ws[0].config.tenant_id, b, "its first tenant");
        assert_eq!((ws[1].config.workspace.name.to_lowercase(), ws[1].config.tenant_id.as_str()), ("ws2".into(), a));
    }

    #[test]
    fn a_partition_of_an_unconfigured_tenant_never_becomes_configured() {
        let s = crate::usecase::test_ports();
        let other = "00000000-0000-0000-0000-000000000009";
        assert!(s.for_tenant(&s.config.tenant_id).is_some());
        assert!(s.for_tenant(other).is_none());
        let p = s.partition_of(other);
        assert_eq!(p.config.tenant_id, other, "its rows go to its own partition");
        assert!(p.for_tenant(other).is_none(), "and its work is still refused");
    }
}
