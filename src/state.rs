//! Typed records over the [`StateStore`] port: incident sync state, the webhook index, cursors,
//! leases and the owner cache (ARCHITECTURE.md: “State”). Each record is one entity whose `Data` property holds
//! the record as JSON (plus a few plain columns for people browsing the table). Every
//! read-modify-write goes through [`modify`]: ETag-guarded, a conflict rereads and redoes.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::domain::keys::escape_key;
use crate::error::PortError;
use crate::ports::{ETag, Entity, StateStore, Table};

const DATA: &str = "Data";
/// Attempts of a read-modify-write before giving up (each conflict means someone else wrote).
const MODIFY_ATTEMPTS: u32 = 12;

/// Escaped table keys for a record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowKey {
    pub pk: String,
    pub rk: String,
}

impl RowKey {
    pub fn new(pk: &str, rk: &str) -> Result<Self, PortError> {
        let esc = |s: &str| escape_key(s).map_err(|e| PortError::rejected("state", e));
        Ok(Self { pk: esc(pk)?, rk: esc(rk)? })
    }
}

/// A record read with its version.
#[derive(Debug, Clone)]
pub struct Versioned<T> {
    pub value: T,
    pub etag: ETag,
}

/// The longest string property Table Storage stores (64 KiB of UTF-16).
pub const MAX_STRING_UTF16: usize = 32_768;

pub(crate) fn encode<T: Serialize>(key: &RowKey, value: &T, columns: &[(&str, String)]) -> Result<Entity, PortError> {
    let json = serde_json::to_string(value).map_err(|e| PortError::decode("state", e))?;
    // A Table Storage string property holds at most 64 KiB, i.e. 32,768 UTF-16 code units.
    let units = json.encode_utf16().count();
    if units > MAX_STRING_UTF16 {
        return Err(PortError::TooLarge {
            service: "state",
            message: format!("record for {} is {units} UTF-16 code units; the limit is {MAX_STRING_UTF16}", key.rk),
        });
    }
    let mut e = Entity::new(key.pk.clone(), key.rk.clone()).with(DATA, json);
    for (name, v) in columns {
        e = e.with(name, v.clone());
    }
    Ok(e)
}

/// A record from an entity read by a partition query.
pub fn decode<T: DeserializeOwned>(e: &Entity) -> Result<T, PortError> {
    let data = e.str(DATA).ok_or_else(|| PortError::decode("state", format!("row {} has no Data", e.row_key)))?;
    serde_json::from_str(data).map_err(|err| PortError::decode("state", format!("row {}: {err}", e.row_key)))
}

/// Reads a record.
pub async fn load<T: DeserializeOwned>(
    store: &dyn StateStore,
    table: Table,
    key: &RowKey,
) -> Result<Option<Versioned<T>>, PortError> {
    match store.get(table, &key.pk, &key.rk).await? {
        Some((e, etag)) => Ok(Some(Versioned { value: decode(&e)?, etag })),
        None => Ok(None),
    }
}

/// Writes a record: insert when `expected` is `None` (conflict if it exists), else replace if
/// the stored version is still `expected`.
pub async fn save<T: Serialize>(
    store: &dyn StateStore,
    table: Table,
    key: &RowKey,
    value: &T,
    columns: &[(&str, String)],
    expected: Option<&ETag>,
) -> Result<ETag, PortError> {
    let e = encode(key, value, columns)?;
    match expected {
        None => store.insert(table, &e).await,
        Some(etag) => store.replace(table, &e, etag).await,
    }
}

/// Writes a record unconditionally (caches, where last writer wins is fine).
pub async fn put<T: Serialize>(
    store: &dyn StateStore,
    table: Table,
    key: &RowKey,
    value: &T,
    columns: &[(&str, String)],
) -> Result<(), PortError> {
    store.upsert(table, &encode(key, value, columns)?).await
}

/// Read-modify-write with optimistic concurrency. `change` gets the current value (or `None`)
/// and returns the new value, or `None` to leave the row as it is. On a conflict it runs again
/// on the fresh value. Returns the value now stored.
pub async fn modify<T, F>(
    store: &dyn StateStore,
    table: Table,
    key: &RowKey,
    mut change: F,
) -> Result<Option<T>, PortError>
where
    T: Serialize + DeserializeOwned + Clone,
    F: FnMut(Option<&T>) -> Option<T>,
{
    let mut last_err = None;
    for attempt in 0..MODIFY_ATTEMPTS {
        let current: Option<Versioned<T>> = load(store, table, key).await?;
        let Some(next) = change(current.as_ref().map(|c| &c.value)) else {
            return Ok(current.map(|c| c.value));
        };
        match save(store, table, key, &next, &[], current.as_ref().map(|c| &c.etag)).await {
            Ok(_) => return Ok(Some(next)),
            Err(e) if e.is_conflict() => {
                last_err = Some(e);
                // Spread contending writers out so one of them wins the next round.
                let jitter = rand::random::<u64>() % (10 * u64::from(attempt + 1));
                tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
            }
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| PortError::decode("state", "modify gave up")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use xdrsync_sim::fakes::MemoryStore;

    #[tokio::test]
    async fn save_conflicts_on_stale_etag_and_existing_insert() {
        let store = MemoryStore::new();
        let key = RowKey::new("tenant/1", "inc#2").unwrap();
        assert_eq!(key.pk, "~74656e616e742f31");
        let e1 = save(&store, Table::Cursors, &key, &1u32, &[], None).await.unwrap();
        assert!(save(&store, Table::Cursors, &key, &2u32, &[], None).await.unwrap_err().is_conflict());
        let e2 = save(&store, Table::Cursors, &key, &3u32, &[], Some(&e1)).await.unwrap();
        assert!(save(&store, Table::Cursors, &key, &4u32, &[], Some(&e1)).await.unwrap_err().is_conflict());
        assert_ne!(e1, e2);
        let v: Versioned<u32> = load(&store, Table::Cursors, &key).await.unwrap().unwrap();
        assert_eq!(v.value, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn modify_redoes_its_change_when_another_writer_got_there_first() {
        let store = MemoryStore::new();
        let key = RowKey::new("p", "counter").unwrap();
        save(&store, Table::Cursors, &key, &10u32, &[], None).await.unwrap();
        let mut calls = 0;
        let result = modify::<u32, _>(&store, Table::Cursors, &key, |current| {
            calls += 1;
            if calls == 1 {
                // Another worker writes between our read and our write.
                let theirs = encode(&key, &100u32, &[]).unwrap();
                futures::executor::block_on(store.upsert(Table::Cursors, &theirs)).unwrap();
            }
            Some(current.copied().unwrap_or(0) + 1)
        })
        .await
        .unwrap();
        assert_eq!(calls, 2, "the change must run again on the fresh value");
        assert_eq!(result, Some(101));
        let v: Versioned<u32> = load(&store, Table::Cursors, &key).await.unwrap().unwrap();
        assert_eq!(v.value, 101);
    }

    #[tokio::test]
    async fn modify_returning_none_writes_nothing() {
        let store = MemoryStore::new();
        let key = RowKey::new("p", "x").unwrap();
        let r = modify::<u32, _>(&store, Table::Cursors, &key, |_| None).await.unwrap();
        assert_eq!(r, None);
        assert_eq!(store.count(Table::Cursors), 0);
    }
}
