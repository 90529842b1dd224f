//! Write counting for the fuzz: the in-memory storage fakes wrapped so every write a case causes
//! is seen, and the simulator's request counts reduced to its writes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use xdrsync::error::PortError;
use xdrsync::ports::{ETag, Entity, QueueMessage, StateStore, Table, WorkQueue};
use xdrsync_sim::fakes::{MemoryQueue, MemoryStore};

/// Every write a case causes in storage: (kind, table or queue).
#[derive(Default)]
pub struct Writes(Mutex<Vec<String>>);

impl Writes {
    pub fn note(&self, what: String) {
        self.0.lock().unwrap().push(what);
    }
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

pub struct CountingStore {
    pub inner: MemoryStore,
    pub writes: Arc<Writes>,
}

#[async_trait]
impl StateStore for CountingStore {
    async fn ensure_tables(&self) -> Result<(), PortError> {
        self.inner.ensure_tables().await
    }
    async fn get(&self, table: Table, pk: &str, rk: &str) -> Result<Option<(Entity, ETag)>, PortError> {
        self.inner.get(table, pk, rk).await
    }
    async fn insert(&self, table: Table, entity: &Entity) -> Result<ETag, PortError> {
        self.writes.note(format!("insert {table:?}"));
        self.inner.insert(table, entity).await
    }
    async fn replace(&self, table: Table, entity: &Entity, etag: &ETag) -> Result<ETag, PortError> {
        self.writes.note(format!("replace {table:?}"));
        self.inner.replace(table, entity, etag).await
    }
    async fn upsert(&self, table: Table, entity: &Entity) -> Result<(), PortError> {
        self.writes.note(format!("upsert {table:?}"));
        self.inner.upsert(table, entity).await
    }
    async fn upsert_many(&self, table: Table, entities: &[Entity]) -> Result<(), PortError> {
        self.writes.note(format!("upsert_many {table:?}"));
        self.inner.upsert_many(table, entities).await
    }
    async fn delete(&self, table: Table, pk: &str, rk: &str) -> Result<(), PortError> {
        self.writes.note(format!("delete {table:?}"));
        self.inner.delete(table, pk, rk).await
    }
    async fn query_partition(&self, table: Table, pk: &str) -> Result<Vec<Entity>, PortError> {
        self.inner.query_partition(table, pk).await
    }
}

pub struct CountingQueue {
    pub inner: MemoryQueue,
    pub writes: Arc<Writes>,
}

#[async_trait]
impl WorkQueue for CountingQueue {
    async fn ensure_queue(&self, queue: &str) -> Result<(), PortError> {
        self.inner.ensure_queue(queue).await
    }
    async fn send(&self, queue: &str, text: &str) -> Result<(), PortError> {
        self.writes.note(format!("send {queue}"));
        self.inner.send(queue, text).await
    }
    async fn send_later(&self, queue: &str, text: &str, delay: Duration) -> Result<(), PortError> {
        self.writes.note(format!("send {queue}"));
        self.inner.send_later(queue, text, delay).await
    }
    async fn receive(&self, queue: &str, max: u8, visibility: Duration) -> Result<Vec<QueueMessage>, PortError> {
        self.inner.receive(queue, max, visibility).await
    }
    async fn delete(&self, queue: &str, msg: &QueueMessage) -> Result<(), PortError> {
        self.writes.note(format!("delete {queue}"));
        self.inner.delete(queue, msg).await
    }
    async fn release(&self, queue: &str, msg: &QueueMessage, delay: Duration) -> Result<(), PortError> {
        self.writes.note(format!("release {queue}"));
        self.inner.release(queue, msg, delay).await
    }
    async fn approximate_len(&self, queue: &str) -> Result<usize, PortError> {
        self.inner.approximate_len(queue).await
    }
    async fn peek_oldest_inserted(&self, queue: &str) -> Result<Option<time::OffsetDateTime>, PortError> {
        self.inner.peek_oldest_inserted(queue).await
    }
}

/// Writes the simulator saw: every request that changes something there.
pub fn sim_writes(stats: &std::collections::BTreeMap<String, u64>) -> u64 {
    const WRITES: [&str; 9] = [
        ".put",
        ".patch",
        ".delete",
        "comments.post",
        "logs.post",
        "logs.rows",
        "automation.fired",
        "automation.deliveries",
        "alert_rules.put",
    ];
    stats.iter().filter(|(k, _)| WRITES.iter().any(|w| k.ends_with(w))).map(|(_, v)| v).sum()
}
