//! The Functions host's own Storage queue client for the soak, on Azurite: the host is another
//! program than xdrsync and does not share its adapter. It moves message bodies as they are on
//! the wire (base64, xdrsync's encoding and the host's default `messageEncoding`), so the host
//! emulator decodes them with the host's rule ([`crate::functions_host::MessageEncoding::Base64`]).

use std::time::Duration;

use async_trait::async_trait;
use azure_storage::{CloudLocation, StorageCredentials};
use azure_storage_queues::prelude::*;
use azure_storage_queues::QueueServiceClientBuilder;

use crate::azurite::{DEV_ACCOUNT, DEV_KEY};
use xdrsync_core::error::PortError;
use xdrsync_core::ports::{QueueMessage, WorkQueue};

const SERVICE: &str = "queue-storage (host)";

pub struct HostQueue {
    service: QueueServiceClient,
}

impl HostQueue {
    /// A client of Azurite's queue service on `queue_port`.
    pub fn new(queue_port: u16) -> Self {
        let location = CloudLocation::Custom {
            account: DEV_ACCOUNT.to_string(),
            uri: format!("http://127.0.0.1:{queue_port}/{DEV_ACCOUNT}"),
        };
        let creds = StorageCredentials::access_key(DEV_ACCOUNT, DEV_KEY.to_string());
        Self { service: QueueServiceClientBuilder::with_location(location, creds).build() }
    }
}

/// The host retries later whatever failed; the soak only needs "it failed" (storage paused, a
/// message already gone).
fn failed(e: azure_core::Error) -> PortError {
    PortError::Unavailable { service: SERVICE, message: e.to_string() }
}

#[async_trait]
impl WorkQueue for HostQueue {
    async fn ensure_queue(&self, queue: &str) -> Result<(), PortError> {
        // Created by xdrsync at start; an existing queue answers 409 or 204.
        let _ = self.service.queue_client(queue).create().await;
        Ok(())
    }

    async fn send_later(&self, queue: &str, text: &str, delay: Duration) -> Result<(), PortError> {
        let client = self.service.queue_client(queue);
        let _ = client.create().await;
        let mut put = client.put_message(text.to_string());
        if !delay.is_zero() {
            put = put.visibility_timeout(delay);
        }
        put.await.map(|_| ()).map_err(failed)
    }

    async fn receive(&self, queue: &str, max: u8, visibility: Duration) -> Result<Vec<QueueMessage>, PortError> {
        let resp = self
            .service
            .queue_client(queue)
            .get_messages()
            .number_of_messages(NumberOfMessages::new(max.clamp(1, 32)))
            .visibility_timeout(visibility)
            .await
            .map_err(failed)?;
        Ok(resp
            .messages
            .into_iter()
            .map(|m| QueueMessage {
                id: m.message_id,
                pop_receipt: m.pop_receipt,
                dequeue_count: m.dequeue_count.min(u64::from(u32::MAX)) as u32,
                text: m.message_text,
            })
            .collect())
    }

    async fn delete(&self, queue: &str, msg: &QueueMessage) -> Result<(), PortError> {
        let receipt = PopReceipt::new(msg.id.clone(), msg.pop_receipt.clone());
        self.service.queue_client(queue).pop_receipt_client(receipt).delete().await.map(|_| ()).map_err(failed)
    }

    async fn release(&self, queue: &str, msg: &QueueMessage, delay: Duration) -> Result<(), PortError> {
        let receipt = PopReceipt::new(msg.id.clone(), msg.pop_receipt.clone());
        self.service
            .queue_client(queue)
            .pop_receipt_client(receipt)
            .update(msg.text.clone(), delay)
            .await
            .map(|_| ())
            .map_err(failed)
    }

    async fn peek_oldest_inserted(&self, queue: &str) -> Result<Option<time::OffsetDateTime>, PortError> {
        let r = self
            .service
            .queue_client(queue)
            .peek_messages()
            .number_of_messages(NumberOfMessages::new(32))
            .await
            .map_err(failed)?;
        Ok(r.messages.iter().map(|m| m.insertion_time).min())
    }

    async fn approximate_len(&self, queue: &str) -> Result<usize, PortError> {
        let r = self.service.queue_client(queue).get_metadata().await.map_err(failed)?;
        Ok(r.approximate_messages_count)
    }
}
