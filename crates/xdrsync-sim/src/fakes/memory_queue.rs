//! [`WorkQueue`] in memory: messages become invisible on receive and reappear after the
//! visibility timeout with a higher dequeue count, as Storage Queues do.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use xdrsync_core::error::PortError;
use xdrsync_core::ports::{QueueMessage, WorkQueue};

struct Stored {
    id: String,
    text: String,
    dequeue_count: u32,
    visible_at: Instant,
    receipt: u64,
    inserted: time::OffsetDateTime,
}

#[derive(Default)]
pub struct MemoryQueue {
    queues: Mutex<HashMap<String, Vec<Stored>>>,
    counter: Mutex<u64>,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }

    fn next(&self) -> u64 {
        let mut c = self.counter.lock().expect("lock");
        *c += 1;
        *c
    }

    /// Makes every message of `queue` look `by` older (for tests of a queue's age).
    pub fn backdate(&self, queue: &str, by: Duration) {
        if let Some(q) = self.queues.lock().expect("lock").get_mut(queue) {
            for m in q.iter_mut() {
                m.inserted -= by;
            }
        }
    }

    /// Every message text in a queue, visible or not (for tests).
    pub fn texts(&self, queue: &str) -> Vec<String> {
        self.queues
            .lock()
            .expect("lock")
            .get(queue)
            .map(|q| q.iter().map(|m| m.text.clone()).collect())
            .unwrap_or_default()
    }
}

#[async_trait]
impl WorkQueue for MemoryQueue {
    async fn ensure_queue(&self, queue: &str) -> Result<(), PortError> {
        self.queues.lock().expect("lock").entry(queue.to_string()).or_default();
        Ok(())
    }

    async fn send_later(&self, queue: &str, text: &str, delay: Duration) -> Result<(), PortError> {
        let id = self.next();
        self.queues.lock().expect("lock").entry(queue.to_string()).or_default().push(Stored {
            id: id.to_string(),
            text: text.to_string(),
            dequeue_count: 0,
            visible_at: Instant::now() + delay,
            receipt: 0,
            inserted: time::OffsetDateTime::now_utc(),
        });
        Ok(())
    }

    async fn receive(&self, queue: &str, max: u8, visibility: Duration) -> Result<Vec<QueueMessage>, PortError> {
        let now = Instant::now();
        let receipts: Vec<u64> = (0..max).map(|_| self.next()).collect();
        let mut queues = self.queues.lock().expect("lock");
        let q = queues.entry(queue.to_string()).or_default();
        let mut out = Vec::new();
        for m in q.iter_mut().filter(|m| m.visible_at <= now).take(max as usize) {
            m.dequeue_count += 1;
            m.visible_at = now + visibility;
            m.receipt = receipts[out.len()];
            out.push(QueueMessage {
                id: m.id.clone(),
                pop_receipt: m.receipt.to_string(),
                dequeue_count: m.dequeue_count,
                text: m.text.clone(),
            });
        }
        Ok(out)
    }

    async fn delete(&self, queue: &str, msg: &QueueMessage) -> Result<(), PortError> {
        let mut queues = self.queues.lock().expect("lock");
        if let Some(q) = queues.get_mut(queue) {
            q.retain(|m| !(m.id == msg.id && m.receipt.to_string() == msg.pop_receipt));
        }
        Ok(())
    }

    async fn release(&self, queue: &str, msg: &QueueMessage, delay: Duration) -> Result<(), PortError> {
        let mut queues = self.queues.lock().expect("lock");
        if let Some(m) = queues
            .get_mut(queue)
            .and_then(|q| q.iter_mut().find(|m| m.id == msg.id && m.receipt.to_string() == msg.pop_receipt))
        {
            m.visible_at = Instant::now() + delay;
        }
        Ok(())
    }

    async fn extend_visibility(
        &self,
        queue: &str,
        msg: &QueueMessage,
        visibility: Duration,
    ) -> Result<String, PortError> {
        let receipt = self.next();
        let mut queues = self.queues.lock().expect("lock");
        let m = queues
            .get_mut(queue)
            .and_then(|q| q.iter_mut().find(|m| m.id == msg.id && m.receipt.to_string() == msg.pop_receipt))
            .ok_or_else(|| PortError::not_found("queue-storage", "no message with this pop receipt"))?;
        m.visible_at = Instant::now() + visibility;
        m.receipt = receipt;
        Ok(receipt.to_string())
    }

    async fn approximate_len(&self, queue: &str) -> Result<usize, PortError> {
        Ok(self.queues.lock().expect("lock").get(queue).map_or(0, Vec::len))
    }

    async fn peek_oldest_inserted(&self, queue: &str) -> Result<Option<time::OffsetDateTime>, PortError> {
        let now = Instant::now();
        let queues = self.queues.lock().expect("lock");
        Ok(queues.get(queue).and_then(|q| q.iter().filter(|m| m.visible_at <= now).map(|m| m.inserted).min()))
    }
}
