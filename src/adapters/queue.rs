//! [`WorkQueue`] on Azure Storage Queues through `azure_storage_queues` 0.21. Message text is
//! base64-encoded on the wire, the Functions host's default `messageEncoding`, so messages we
//! put in standalone mode are readable by a queue trigger and vice versa.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_storage::CloudLocation;
use azure_storage_queues::prelude::*;
use azure_storage_queues::QueueServiceClientBuilder;
use base64::Engine;

use super::azure_err::from_azure;
use crate::config::storage_conn::StorageConnection;
use crate::error::PortError;
use crate::metrics::{bump, CallCounters};
use crate::ports::{QueueMessage, WorkQueue};
use crate::retry::RetryPolicy;

const SERVICE: &str = "queue-storage";

pub struct AzureQueues {
    service: QueueServiceClient,
    retry: RetryPolicy,
    counters: Arc<CallCounters>,
}

impl AzureQueues {
    pub fn new(
        conn: &StorageConnection,
        counters: Arc<CallCounters>,
        tokens: &Arc<dyn crate::ports::TokenSource>,
    ) -> Self {
        let location = CloudLocation::Custom {
            account: conn.account.clone(),
            uri: conn.queue_endpoint.as_str().trim_end_matches('/').to_string(),
        };
        let creds = super::storage_auth::credentials(conn, tokens);
        let service =
            QueueServiceClientBuilder::with_location(location, creds).retry(azure_core::RetryOptions::none()).build();
        Self { service, retry: RetryPolicy::default(), counters }
    }
}

impl AzureQueues {
    /// Update Message with the message's pop receipt: visible again after `visibility`.
    /// Documented to answer the message's new pop receipt (`x-ms-popreceipt`), which replaces the
    /// one sent; the timeout counts from the service's clock.
    async fn update(&self, queue: &str, msg: &QueueMessage, visibility: Duration) -> Result<String, PortError> {
        let client = self.service.queue_client(queue);
        let receipt = PopReceipt::new(msg.id.clone(), msg.pop_receipt.clone());
        bump(&self.counters.queue);
        client
            .pop_receipt_client(receipt)
            .update(encode_message_text(&msg.text), visibility)
            .await
            .map(|r| r.pop_receipt)
            .map_err(|e| from_azure(SERVICE, e))
    }
}

/// Decodes base64 message text; text that is not base64 (written by another tool with
/// `messageEncoding: none`) is passed through as-is.
pub fn decode_message_text(wire: &str) -> String {
    base64::engine::general_purpose::STANDARD
        .decode(wire.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .unwrap_or_else(|| wire.to_string())
}

pub fn encode_message_text(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

#[async_trait]
impl WorkQueue for AzureQueues {
    async fn ensure_queue(&self, queue: &str) -> Result<(), PortError> {
        let client = self.service.queue_client(queue);
        bump(&self.counters.queue);
        match client.create().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = from_azure(SERVICE, e);
                if e.is_conflict() {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn send_later(&self, queue: &str, text: &str, delay: Duration) -> Result<(), PortError> {
        let client = self.service.queue_client(queue);
        let wire = encode_message_text(text);
        // Storage queues take a visibility timeout on Put Message (0 to 7 days).
        let delay = delay.min(Duration::from_secs(7 * 24 * 3600));
        let put = || async {
            self.retry
                .run(|| async {
                    bump(&self.counters.queue);
                    let mut req = client.put_message(wire.clone());
                    if !delay.is_zero() {
                        req = req.visibility_timeout(delay);
                    }
                    req.await.map(|_| ()).map_err(|e| from_azure(SERVICE, e))
                })
                .await
        };
        match put().await {
            // A queue nobody created yet (first run, or the host has not started its trigger).
            Err(e) if e.is_not_found() => {
                self.ensure_queue(queue).await?;
                put().await
            }
            other => other,
        }
    }

    async fn receive(&self, queue: &str, max: u8, visibility: Duration) -> Result<Vec<QueueMessage>, PortError> {
        let client = self.service.queue_client(queue);
        let n = NumberOfMessages::new(max.clamp(1, 32));
        let resp = self
            .retry
            .run(|| async {
                bump(&self.counters.queue);
                client
                    .get_messages()
                    .number_of_messages(n.clone())
                    .visibility_timeout(visibility)
                    .await
                    .map_err(|e| from_azure(SERVICE, e))
            })
            .await?;
        Ok(resp
            .messages
            .into_iter()
            .map(|m| QueueMessage {
                id: m.message_id,
                pop_receipt: m.pop_receipt,
                dequeue_count: m.dequeue_count.min(u32::MAX as u64) as u32,
                text: decode_message_text(&m.message_text),
            })
            .collect())
    }

    async fn delete(&self, queue: &str, msg: &QueueMessage) -> Result<(), PortError> {
        let client = self.service.queue_client(queue);
        let receipt = PopReceipt::new(msg.id.clone(), msg.pop_receipt.clone());
        bump(&self.counters.queue);
        match client.pop_receipt_client(receipt).delete().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = from_azure(SERVICE, e);
                // Already gone (another worker or expiry): nothing left to do.
                if e.is_not_found() {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn release(&self, queue: &str, msg: &QueueMessage, delay: Duration) -> Result<(), PortError> {
        self.update(queue, msg, delay).await.map(|_| ())
    }

    async fn extend_visibility(
        &self,
        queue: &str,
        msg: &QueueMessage,
        visibility: Duration,
    ) -> Result<String, PortError> {
        self.update(queue, msg, visibility).await
    }

    async fn approximate_len(&self, queue: &str) -> Result<usize, PortError> {
        let client = self.service.queue_client(queue);
        bump(&self.counters.queue);
        let r = client.get_metadata().await.map_err(|e| from_azure(SERVICE, e))?;
        Ok(r.approximate_messages_count)
    }

    /// Peek Messages (`GET …/messages?peekonly=true&numofmessages=32`): documented to return
    /// messages from the front of the queue, each with its `InsertionTime`, without changing
    /// their visibility; invisible messages are not returned. The front is not documented as
    /// strictly oldest-first, so the oldest of up to 32 is taken.
    async fn peek_oldest_inserted(&self, queue: &str) -> Result<Option<time::OffsetDateTime>, PortError> {
        let client = self.service.queue_client(queue);
        bump(&self.counters.queue);
        let r = client
            .peek_messages()
            .number_of_messages(NumberOfMessages::new(32))
            .await
            .map_err(|e| from_azure(SERVICE, e))?;
        Ok(r.messages.iter().map(|m| m.insertion_time).min())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trip_and_plain_text_passthrough() {
        let t = r#"{"kind":"reconcile"}"#;
        assert_eq!(decode_message_text(&encode_message_text(t)), t);
        assert_eq!(decode_message_text("{not base64}"), "{not base64}");
    }
}
