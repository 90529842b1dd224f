//! Azure Monitor Logs Ingestion: rows packed into ≤ `max_batch_bytes` JSON arrays (counted
//! before compression), gzip'd, POSTed to the DCR stream; 204 = done, 413 = split and resend.

use std::io::Write;

use async_trait::async_trait;
use flate2::write::GzEncoder;
use reqwest::Method;
use serde_json::Value;

use super::http::{Call, CallBody, ServiceClient};
use crate::domain::batching::{pack, Batch};
use crate::error::PortError;
use crate::ports::{AcceptedRows, LogsIngestion, UploadReport};

pub const API_VERSION: &str = "2023-01-01";

pub struct DcrLogsIngestion {
    client: ServiceClient,
    endpoint: String,
    dcr_immutable_id: String,
    max_batch_bytes: usize,
}

impl DcrLogsIngestion {
    pub fn new(client: ServiceClient, endpoint: &url::Url, dcr_immutable_id: String, max_batch_bytes: usize) -> Self {
        Self {
            client,
            endpoint: endpoint.as_str().trim_end_matches('/').to_string(),
            dcr_immutable_id,
            max_batch_bytes,
        }
    }

    async fn post(&self, stream: &str, batch: &Batch) -> Result<(), PortError> {
        let url = format!(
            "{}/dataCollectionRules/{}/streams/{}?api-version={API_VERSION}",
            self.endpoint, self.dcr_immutable_id, stream
        );
        let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(batch.body().as_bytes()).map_err(|e| PortError::decode("logs-ingestion", e))?;
        let bytes = gz.finish().map_err(|e| PortError::decode("logs-ingestion", e))?;
        let call = Call {
            body: Some(CallBody::Bytes {
                content_type: "application/json",
                encoding: Some("gzip"),
                bytes: bytes.into(),
            }),
            ..Call::new(Method::POST, url)
        }
        .header("x-ms-client-request-id", uuid::Uuid::new_v4().to_string());
        self.client.send(&call).await.map(|_| ())
    }
}

#[async_trait]
impl LogsIngestion for DcrLogsIngestion {
    async fn probe(&self, stream: &str) -> Result<(), PortError> {
        let url = format!(
            "{}/dataCollectionRules/{}/streams/{}?api-version={API_VERSION}",
            self.endpoint, self.dcr_immutable_id, stream
        );
        self.client.send(&Call::new(Method::POST, url).json(&serde_json::json!([]))).await.map(|_| ())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(logs.stream = %stream, logs.rows = rows.len()))]
    async fn upload_reporting(
        &self,
        stream: &str,
        rows: &[Value],
        on_accepted: &dyn AcceptedRows,
    ) -> Result<UploadReport, PortError> {
        let packed = pack(rows.iter().map(Value::to_string), self.max_batch_bytes);
        let mut report = UploadReport { too_large: packed.oversize, ..Default::default() };
        let mut pending: Vec<Batch> = packed.batches.into_iter().rev().collect();
        while let Some(batch) = pending.pop() {
            report.requests += 1;
            // `post` retries a failed attempt with the same body (http.rs): an attempt the
            // service stored but whose answer was lost stores those rows once more, so each
            // failed attempt costs at most one extra copy of the rows of this one call.
            match self.post(stream, &batch).await {
                Ok(()) => {
                    report.rows_sent += batch.rows().len();
                    on_accepted.accepted(batch.indexes()).await?;
                }
                Err(PortError::TooLarge { .. }) => {
                    let indexes = batch.indexes().to_vec();
                    match batch.split() {
                        // Keep order: the first half goes next.
                        Some((first, second)) => {
                            pending.push(second);
                            pending.push(first);
                        }
                        None => report.too_large.extend(indexes),
                    }
                }
                Err(e) => return Err(e),
            }
        }
        report.too_large.sort_unstable();
        Ok(report)
    }
}

/// Rows sent to the DCR of their stream: the advanced-hunting export's tables each have their own
/// DCR when there are more than one DCR holds (10 streams, Azure Monitor service limits), so a
/// stream is looked up in `routes` and falls back to `default`.
pub struct RoutedLogsIngestion {
    pub default: std::sync::Arc<dyn LogsIngestion>,
    /// Stream name (`Custom-<Table>`) → that table's DCR.
    pub routes: Vec<(String, std::sync::Arc<dyn LogsIngestion>)>,
}

impl RoutedLogsIngestion {
    fn target(&self, stream: &str) -> &dyn LogsIngestion {
        self.routes.iter().find(|(s, _)| s == stream).map_or(self.default.as_ref(), |(_, l)| l.as_ref())
    }
}

#[async_trait]
impl LogsIngestion for RoutedLogsIngestion {
    async fn upload_reporting(
        &self,
        stream: &str,
        rows: &[Value],
        on_accepted: &dyn AcceptedRows,
    ) -> Result<UploadReport, PortError> {
        self.target(stream).upload_reporting(stream, rows, on_accepted).await
    }

    async fn probe(&self, stream: &str) -> Result<(), PortError> {
        self.target(stream).probe(stream).await
    }
}
