//! The `xdrsync check` lines of the advanced-hunting export (docs/hunting.md):
//! one probe per source that is on and one Logs Ingestion probe per table (on the table's own
//! DCR), so a missing role shows before the first timer runs. With
//! many Defender tenants the query source is probed in each tenant, with its own token.

use crate::check::{probe_line, CheckLine};
use crate::domain::hunting::streaming::container_of;
use crate::error::PortError;
use crate::usecase::Ports;

/// The lines, in order; empty when no hunting source is on.
pub async fn lines(s: &Ports) -> Vec<CheckLine> {
    let cfg = &s.config.hunting;
    let mut out = Vec::new();
    if let Some(first) = cfg.tables.first() {
        // One row at most: the cheapest query that proves the role (one call of the 45 a minute).
        let query = format!("{} | take 1", first.name);
        if s.is_multi_tenant() {
            // Each Defender tenant is queried with its own token and consent.
            for t in s.each_tenant() {
                let r = t.hunting.run_query(&query).await.map(|_| ());
                let role = format!(
                    "the Graph application permission ThreatHunting.Read.All, with {}",
                    crate::check::admin_consent(s, &t.config.tenant_id)
                );
                out.push(tenant_line(&format!("advanced hunting of {}", t.tenant_name()), r, first.name, &role));
            }
        } else {
            let r = s.hunting.run_query(&query).await.map(|_| ());
            out.push(probe_line(
                "advanced hunting (query source)",
                r,
                &format!("ran a query on {}", first.name),
                "the Graph application permission ThreatHunting.Read.All, with admin consent",
                "XDRSYNC_GRAPH_ENDPOINT, XDRSYNC_HUNTING_TABLES",
            ));
        }
    }
    // Every table's stream on its own DCR (tables may be routed to several): an empty batch adds
    // no row; a 400 names the stream the rule refuses, a 403 the rule that lacks the role.
    let mut probed = Vec::new();
    for table in cfg.tables.iter().chain(&cfg.storage_tables) {
        if probed.contains(&table.name) {
            continue;
        }
        probed.push(table.name);
        let dcr = cfg.dcr_for(table).unwrap_or_else(|| s.config.dcr_immutable_id.clone());
        let r = s.hunting_logs.probe(&table.stream()).await;
        out.push(crate::check::logs_line(
            &format!("hunting Logs Ingestion of {} (data collection rule {dcr})", table.name),
            r,
            &table.stream(),
            &format!("the role Monitoring Metrics Publisher on the hunting data collection rule {dcr}"),
            "XDRSYNC_LOGS_INGESTION_ENDPOINT, XDRSYNC_HUNTING_DCR_IMMUTABLE_ID, XDRSYNC_HUNTING_TABLES",
        ));
    }
    if let Some(first) = cfg.storage_tables.first() {
        let container = container_of(first);
        let r = match &s.blobs {
            Some(b) => b.list(&container).await.map(|_| ()),
            None => Err(PortError::rejected("blob-storage", "XDRSYNC_HUNTING_STORAGE_CONNECTION is unusable")),
        };
        out.push(probe_line(
            "advanced hunting (storage source)",
            r,
            &format!("listed {container}"),
            "the role Storage Blob Data Reader on the Streaming API's storage account",
            "XDRSYNC_HUNTING_STORAGE_CONNECTION",
        ));
    }
    out
}

/// A customer tenant's query probe: a token refused there (consent revoked, 401) needs the same
/// fix as a 403, so both name the permission and the consent URL.
fn tenant_line(what: &str, r: Result<(), PortError>, table: &str, role: &str) -> CheckLine {
    match r {
        Err(e @ PortError::Unauthorized { .. }) => {
            CheckLine { what: what.into(), ok: false, detail: format!("{e}. Missing: {role}.") }
        }
        r => probe_line(
            what,
            r,
            &format!("ran a query on {table} (Graph, the tenant's own token)"),
            role,
            "XDRSYNC_DEFENDER_TENANTS, XDRSYNC_HUNTING_TABLES",
        ),
    }
}
