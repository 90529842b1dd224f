//! Defender's Streaming API writing to a storage account, played against Azurite: one container
//! per table (`insights-logs-advancedhunting-<table lower>`, documented), one append blob per hour
//! (path `tenantId=<tenant>/y=YYYY/m=MM/d=DD/h=HH/m=00/PT1H.json`: the Azure Monitor export layout,
//! assumed for the Streaming API, whose page shows only a picture; xdrsync lists every blob of a
//! container and never relies on the path), one JSON record per line (documented), appended to
//! while readers read.

use std::collections::BTreeMap;

use azure_storage::{CloudLocation, StorageCredentials};
use azure_storage_blobs::prelude::{BlobServiceClient, ClientBuilder};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::sim::hunting_seed::stream_record;
use crate::sim::timefmt;

const DEV_ACCOUNT: &str = "devstoreaccount1";
const DEV_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
/// Bytes per appended block (Azure's limit is higher; small blocks make readers meet partial blobs).
const BLOCK_BYTES: usize = 1024 * 1024;

pub struct StreamingWriter {
    service: BlobServiceClient,
    tenant_id: String,
}

/// The hourly blob a record of time `t` goes to.
pub fn blob_path(tenant_id: &str, t: OffsetDateTime) -> String {
    format!(
        "tenantId={tenant_id}/y={:04}/m={:02}/d={:02}/h={:02}/m=00/PT1H.json",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour()
    )
}

impl StreamingWriter {
    /// Writes to Azurite's blob service on `blob_port`.
    pub fn azurite(blob_port: u16, tenant_id: &str) -> Self {
        let location = CloudLocation::Custom {
            account: DEV_ACCOUNT.into(),
            uri: format!("http://127.0.0.1:{blob_port}/{DEV_ACCOUNT}"),
        };
        let creds = StorageCredentials::access_key(DEV_ACCOUNT, DEV_KEY.to_string());
        Self {
            service: ClientBuilder::with_location(location, creds).blob_service_client(),
            tenant_id: tenant_id.into(),
        }
    }

    /// Appends the rows' records to their hourly blobs (creating container and blobs as needed).
    pub async fn append(&self, table: &str, rows: &[Map<String, Value>]) -> anyhow::Result<()> {
        let mut by_blob: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for row in rows {
            let t = row.get("Timestamp").and_then(Value::as_str).and_then(|s| timefmt::parse(s).ok());
            let path = blob_path(&self.tenant_id, t.unwrap_or_else(OffsetDateTime::now_utc));
            let buf = by_blob.entry(path).or_default();
            buf.extend_from_slice(stream_record(table, &self.tenant_id, row).to_string().as_bytes());
            buf.push(b'\n');
        }
        for (path, bytes) in by_blob {
            self.append_bytes(table, &path, &bytes).await?;
        }
        Ok(())
    }

    /// Appends raw bytes to one blob (e.g. half a record, as a writer caught mid-line).
    pub async fn append_bytes(&self, table: &str, path: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let container =
            self.service.container_client(format!("insights-logs-advancedhunting-{}", table.to_ascii_lowercase()));
        if !container.exists().await? {
            // Another writer may create it first.
            let _ = container.create().await;
        }
        let blob = container.blob_client(path);
        if !blob.exists().await? {
            blob.put_append_blob().await?;
        }
        for chunk in bytes.chunks(BLOCK_BYTES) {
            blob.append_block(chunk.to_vec()).await?;
        }
        Ok(())
    }

    /// The blob path a row of time `t` goes to, for this tenant.
    pub fn path_for(&self, t: OffsetDateTime) -> String {
        blob_path(&self.tenant_id, t)
    }
}
