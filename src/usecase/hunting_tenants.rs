//! The advanced-hunting query source with many Defender tenants (ARCHITECTURE.md: “Advanced
//! hunting”): every tenant's tables are exported, two tenants at a time, each in its own scope (its Graph
//! token, its own `runHuntingQuery` budget, its cursors and its `hunting` feed health in its
//! partition), so one tenant that is throttled or lost its consent neither stops nor slows the
//! others. Rows of every tenant go to the one hunting DCR, told apart by `DefenderTenantId`.

use crate::usecase::hunting::{export_all, TableReport};
use crate::usecase::Ports;

/// Tenants exported at once. Each holds up to a page (`XDRSYNC_HUNTING_PAGE_ROWS`) in memory and
/// all share the hunting DCR's minute (2 GB, 12,000 calls), so a few at a time, not all.
pub const TENANTS_AT_ONCE: usize = 2;

/// One tick over every tenant: each tenant's display name and how its run went (a failing
/// tenant does not stop the others).
pub async fn export_tenants(s: &Ports) -> Vec<(String, Result<Vec<TableReport>, String>)> {
    use futures::StreamExt;
    let tenants = s.each_tenant();
    // Each future owns its scope: a stream of futures borrowing `tenants` is not `Send` for
    // every lifetime the Functions router asks of it.
    futures::stream::iter(tenants.into_iter().map(|t| async move {
        let span = tracing::info_span!("tenant", tenant.id = %t.config.tenant_id);
        let outcome = tracing::Instrument::instrument(export_all(&t), span).await;
        if let Err(e) = &outcome {
            tracing::error!(tenant.id = %t.config.tenant_id, error.message = %e, "hunting export failed for this tenant; the others go on");
        }
        (t.tenant_name(), outcome)
    }))
    .buffer_unordered(TENANTS_AT_ONCE)
    .collect()
    .await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    #[test]
    fn each_tenant_scope_has_its_own_hunting_port_and_single_tenant_keeps_the_one() {
        let mut vars = crate::config::tests::base_vars();
        let one = crate::app::build(crate::config::Config::from_vars(&vars).unwrap());
        let scopes = one.each_tenant();
        assert!(Arc::ptr_eq(&scopes[0].hunting, &one.hunting), "one tenant: the port as before");
        let (a, b) = ("1f2e3d4c-0000-4000-8000-00000000000a", "9a8b7c6d-0000-4000-8000-00000000000b");
        vars.insert("XDRSYNC_DEFENDER_TENANTS".into(), format!("{a}=A,{b}=B"));
        let many = crate::app::build(crate::config::Config::from_vars(&vars).unwrap());
        let scopes = many.each_tenant();
        assert_eq!(scopes.len(), 2);
        // A port per tenant is a token source and a call budget per tenant (app::build).
        assert!(!Arc::ptr_eq(&scopes[0].hunting, &scopes[1].hunting));
        assert!(scopes.iter().all(|t| !Arc::ptr_eq(&t.hunting, &many.hunting)), "never the workspace tenant's");
        assert!(Arc::ptr_eq(&scopes[0].hunting_logs, &scopes[1].hunting_logs), "one hunting DCR for all");
        assert_eq!((scopes[0].config.tenant_id.as_str(), scopes[1].config.tenant_id.as_str()), (a, b));
    }
}
