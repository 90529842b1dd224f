//! The advanced-hunting export's storage source (ARCHITECTURE.md: “Advanced hunting”): for each
//! table in `XDRSYNC_HUNTING_STORAGE_TABLES`, the blobs of `insights-logs-advancedhunting-<table>`
//! (hourly append blobs the Streaming API keeps appending to), each read from its byte offset on
//! in chunks of whole lines; the records go through the stream sink, then the blob's offset is
//! saved (ETag-guarded), so a crash re-sends at most one chunk. A line still being written (no
//! newline yet) waits for the next run.

use crate::records::HUNTING_STORAGE_FEED;
use crate::usecase::health::record_feed;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::domain::hunting::schema::TableDef;
use crate::domain::hunting::streaming::{complete_prefix, container_of, parse_lines};
use crate::error::PortError;
use crate::ports::{BlobReader, Table};
use crate::state::{self, RowKey};
use crate::usecase::hunting_stream::{export_records, StreamReport};
use crate::usecase::Ports;

/// Bytes read per request; a line longer than this is read with a larger one.
pub const CHUNK_BYTES: u64 = 4 * 1024 * 1024;

/// A blob's cursor (`Cursors`, PK `<tenant>:blobs`, RK `<container>/<blob>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BlobCursor {
    pub offset: u64,
}

fn partition(tenant: &str) -> String {
    format!("{tenant}:blobs")
}

/// The offset of every blob read so far, by row key (one partition query, so a run reads a
/// cursor row only for the blobs that grew).
async fn offsets(s: &Ports) -> Result<HashMap<String, u64>, PortError> {
    let pk = RowKey::new(&partition(&s.config.tenant_id), "x")?.pk;
    let mut out = HashMap::new();
    for e in s.store.query_partition(Table::Cursors, &pk).await? {
        if let Ok(c) = state::decode::<BlobCursor>(&e) {
            out.insert(e.row_key.clone(), c.offset);
        }
    }
    Ok(out)
}

/// Reads one table's container.
pub async fn export_table(
    s: &Ports,
    blobs: &dyn BlobReader,
    table: &'static TableDef,
) -> Result<StreamReport, PortError> {
    let container = container_of(table);
    let known = offsets(s).await?;
    let mut total = StreamReport::default();
    for blob in blobs.list(&container).await? {
        let key = RowKey::new(&partition(&s.config.tenant_id), &format!("{container}/{}", blob.name))?;
        let stored = match known.get(&key.rk) {
            Some(offset) if *offset >= blob.size => continue,
            Some(_) => state::load::<BlobCursor>(&*s.store, Table::Cursors, &key).await?,
            None => None,
        };
        let mut etag = stored.as_ref().map(|v| v.etag.clone());
        let mut offset = stored.map_or(0, |v| v.value.offset);
        let mut want = CHUNK_BYTES;
        while offset < blob.size {
            let end = blob.size.min(offset + want);
            let bytes = blobs.read(&container, &blob.name, offset, end).await?;
            let whole = complete_prefix(&bytes);
            if whole == 0 {
                if end < blob.size {
                    want *= 2; // one line longer than a chunk
                    continue;
                }
                break; // a record still being written
            }
            let text = String::from_utf8_lossy(&bytes[..whole]);
            let r = export_records(s, parse_lines(&text)).await?;
            total.records += r.records;
            total.rows_sent += r.rows_sent;
            total.rows_filtered += r.rows_filtered;
            total.rows_too_large += r.rows_too_large;
            total.skipped += r.skipped;
            // The rows are accepted: only now does the offset move.
            offset += whole as u64;
            etag =
                Some(state::save(&*s.store, Table::Cursors, &key, &BlobCursor { offset }, &[], etag.as_ref()).await?);
            want = CHUNK_BYTES;
        }
    }
    Ok(total)
}

/// One tick of the storage source over every configured table.
pub async fn export_all(s: &Ports) -> Result<Vec<(String, StreamReport)>, String> {
    let Some(blobs) = s.blobs.clone() else {
        let e = crate::usecase::UseCaseError::Permanent("XDRSYNC_HUNTING_STORAGE_CONNECTION is not set".into());
        record_feed(s, HUNTING_STORAGE_FEED, Err(&e)).await;
        return Err(e.to_string());
    };
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    let mut first_error = None;
    for table in &s.config.hunting.storage_tables {
        match export_table(s, &*blobs, table).await {
            Ok(r) => reports.push((table.name.to_string(), r)),
            Err(e) => {
                tracing::error!(hunting.table = table.name, error.message = %e, "storage export failed; the next run resumes at each blob's offset");
                failures.push(format!("{}: {e}", table.name));
                first_error.get_or_insert(crate::usecase::UseCaseError::from(e));
            }
        }
    }
    // Health shows the source's last run (`GET /api/health`, `xdrsync status`).
    record_feed(s, HUNTING_STORAGE_FEED, first_error.as_ref().map_or(Ok(()), Err)).await;
    if failures.is_empty() {
        Ok(reports)
    } else {
        Err(failures.join("; "))
    }
}
