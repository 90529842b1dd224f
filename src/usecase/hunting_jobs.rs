//! The advanced-hunting function bodies both modes run (ARCHITECTURE.md: “Advanced hunting”):
//! the query source's and the storage source's timers and the Event Hub batch. Failures are
//! logged where they are handled, once.

use crate::usecase::Ports;

/// The hunting query source's timer function (a folder under `functions/`) and its lease row.
pub const HUNTING_EXPORT_NAME: &str = "HuntingExport";

/// One tick of the advanced-hunting query source; off when `XDRSYNC_HUNTING_TABLES` is empty.
/// With many Defender tenants, every tenant's tables (`hunting_tenants`); `Err` names the
/// tenants that failed.
pub async fn hunting_export(s: &Ports) -> Result<String, String> {
    if s.config.hunting.tables.is_empty() {
        return Ok("hunting export is off (XDRSYNC_HUNTING_TABLES is empty)".into());
    }
    let line = |reports: &[crate::usecase::hunting::TableReport]| {
        let parts: Vec<String> =
            reports.iter().map(|r| format!("{} {} rows in {} queries", r.table, r.rows_sent, r.queries)).collect();
        parts.join(", ")
    };
    if !s.is_multi_tenant() {
        let reports = crate::usecase::hunting::export_all(s).await?;
        return Ok(format!("hunting export: {}", line(&reports)));
    }
    let (mut parts, mut failed) = (Vec::new(), Vec::new());
    for (name, outcome) in crate::usecase::hunting_tenants::export_tenants(s).await {
        match outcome {
            Ok(reports) => parts.push(format!("{name}: {}", line(&reports))),
            Err(e) => failed.push(format!("{name}: {e}")),
        }
    }
    let summary = format!("hunting export: {}", parts.join("; "));
    if failed.is_empty() {
        Ok(summary)
    } else {
        Err(format!("{summary}; failed: {}", failed.join("; ")))
    }
}

/// The Event Hub function (Streaming API → Event Hub).
pub const HUNTING_EVENT_HUB_NAME: &str = "HuntingEventHub";

/// One Event Hub batch. `Err` makes the invocation fail, so the function's retry policy runs it
/// again before the host checkpoints past it.
pub async fn hunting_event_hub(s: &Ports, events: &serde_json::Value) -> Result<String, String> {
    let parsed = crate::usecase::hunting_stream::event_hub_records(events);
    match crate::usecase::hunting_stream::export_records(s, parsed).await {
        Ok(r) => Ok(format!(
            "hunting events: {} records, {} rows sent, {} filtered, {} skipped",
            r.records, r.rows_sent, r.rows_filtered, r.skipped
        )),
        Err(e) => {
            tracing::error!(error.message = %e, "Event Hub batch not exported; the retry policy runs it again");
            Err(format!("hunting events failed: {e}"))
        }
    }
}

/// The storage source's timer function (Streaming API → storage account) and its lease row.
pub const HUNTING_STORAGE_NAME: &str = "HuntingStorageExport";

/// One tick of the storage source; off when `XDRSYNC_HUNTING_STORAGE_TABLES` is empty.
pub async fn hunting_storage(s: &Ports) -> Result<String, String> {
    if s.config.hunting.storage_tables.is_empty() {
        return Ok("hunting storage export is off (XDRSYNC_HUNTING_STORAGE_TABLES is empty)".into());
    }
    let reports = crate::usecase::hunting_storage::export_all(s).await?;
    let parts: Vec<String> = reports.iter().map(|(t, r)| format!("{t} {} rows", r.rows_sent)).collect();
    Ok(format!("hunting storage export: {}", parts.join(", ")))
}
