//! The `xdrsync check` lines of the advanced-hunting export (docs/hunting.md):
//! one probe per source that is on, so a missing role shows before the first timer runs. With
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
    if let Some(first) = cfg.tables.first().or(cfg.storage_tables.first()) {
        // An empty batch adds no row; a 400 for it still proves a permitted token reached the DCR.
        let r = match s.hunting_logs.probe(&first.stream()).await {
            Err(PortError::Rejected { .. }) => Ok(()),
            other => other,
        };
        out.push(probe_line(
            "hunting Logs Ingestion",
            r,
            &format!("the data collection rule accepts {}", first.stream()),
            "the role Monitoring Metrics Publisher on the hunting data collection rule",
            "XDRSYNC_LOGS_INGESTION_ENDPOINT, XDRSYNC_HUNTING_DCR_IMMUTABLE_ID",
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
