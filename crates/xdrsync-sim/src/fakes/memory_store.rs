//! [`StateStore`] in a `HashMap`, with counter ETags.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;

use xdrsync_core::error::PortError;
use xdrsync_core::ports::{ETag, Entity, StateStore, Table};

type Key = (Table, String, String);

#[derive(Default)]
pub struct MemoryStore {
    rows: Mutex<HashMap<Key, (Entity, u64)>>,
    version: Mutex<u64>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn next_version(&self) -> u64 {
        let mut v = self.version.lock().expect("lock");
        *v += 1;
        *v
    }

    /// Number of rows in a table (for tests).
    pub fn count(&self, table: Table) -> usize {
        self.rows.lock().expect("lock").keys().filter(|k| k.0 == table).count()
    }
}

fn conflict(what: &str) -> PortError {
    PortError::conflict("memory-store", what)
}

fn tag(v: u64) -> ETag {
    ETag(format!("W/\"{v}\""))
}

#[async_trait]
impl StateStore for MemoryStore {
    async fn ensure_tables(&self) -> Result<(), PortError> {
        Ok(())
    }

    async fn get(&self, table: Table, pk: &str, rk: &str) -> Result<Option<(Entity, ETag)>, PortError> {
        let rows = self.rows.lock().expect("lock");
        Ok(rows.get(&(table, pk.into(), rk.into())).map(|(e, v)| (e.clone(), tag(*v))))
    }

    async fn insert(&self, table: Table, entity: &Entity) -> Result<ETag, PortError> {
        let v = self.next_version();
        let mut rows = self.rows.lock().expect("lock");
        let key = (table, entity.partition_key.clone(), entity.row_key.clone());
        if rows.contains_key(&key) {
            return Err(PortError::conflict("memory-store", "EntityAlreadyExists"));
        }
        rows.insert(key, (entity.clone(), v));
        Ok(tag(v))
    }

    async fn replace(&self, table: Table, entity: &Entity, etag: &ETag) -> Result<ETag, PortError> {
        let v = self.next_version();
        let mut rows = self.rows.lock().expect("lock");
        let key = (table, entity.partition_key.clone(), entity.row_key.clone());
        match rows.get(&key) {
            Some((_, cur)) if tag(*cur) == *etag => {
                rows.insert(key, (entity.clone(), v));
                Ok(tag(v))
            }
            Some(_) => Err(conflict("UpdateConditionNotSatisfied")),
            None => Err(PortError::not_found("memory-store", "ResourceNotFound")),
        }
    }

    async fn upsert(&self, table: Table, entity: &Entity) -> Result<(), PortError> {
        let v = self.next_version();
        let key = (table, entity.partition_key.clone(), entity.row_key.clone());
        self.rows.lock().expect("lock").insert(key, (entity.clone(), v));
        Ok(())
    }

    async fn upsert_many(&self, table: Table, entities: &[Entity]) -> Result<(), PortError> {
        for e in entities {
            self.upsert(table, e).await?;
        }
        Ok(())
    }

    async fn delete(&self, table: Table, pk: &str, rk: &str) -> Result<(), PortError> {
        self.rows.lock().expect("lock").remove(&(table, pk.into(), rk.into()));
        Ok(())
    }

    async fn query_partition(&self, table: Table, pk: &str) -> Result<Vec<Entity>, PortError> {
        let rows = self.rows.lock().expect("lock");
        let sorted: BTreeMap<&str, &Entity> =
            rows.iter().filter(|(k, _)| k.0 == table && k.1 == pk).map(|(k, (e, _))| (k.2.as_str(), e)).collect();
        Ok(sorted.into_values().cloned().collect())
    }
}
