//! Carries state written by earlier versions over to today's layout, at start-up, idempotently.
//! Today: webhook index rows written under the old `%XX` key encoding move to the current keys,
//! so Sentinel edits to mirrors that have been quiet since the upgrade still find their incident.

use crate::domain::keys::{escape_key, legacy_percent_key};
use crate::error::PortError;
use crate::ports::Table;
use crate::usecase::Ports;

/// Moves every Index row of this workspace from its legacy partition to the current one; returns
/// how many moved.
pub async fn carry_index_rows(s: &Ports) -> Result<usize, PortError> {
    let workspace = s.config.workspace.resource_id().to_ascii_lowercase();
    let legacy = legacy_percent_key(&workspace);
    let current = escape_key(&workspace).map_err(|e| PortError::rejected("state", e))?;
    if legacy == current {
        return Ok(0);
    }
    let rows = s.store.query_partition(Table::Index, &legacy).await?;
    for row in &rows {
        let mut moved = row.clone();
        moved.partition_key = current.clone();
        s.store.upsert(Table::Index, &moved).await?;
        s.store.delete(Table::Index, &legacy, &row.row_key).await?;
    }
    if !rows.is_empty() {
        tracing::info!(index.rows_moved = rows.len(), "moved webhook index rows to the current key encoding");
    }
    Ok(rows.len())
}

/// Runs every carry-over; a failure is logged and retried at the next start (nothing is lost:
/// the next full reconcile of a mirror also rewrites its index row).
pub async fn run_all(s: &Ports) {
    if let Err(e) = carry_index_rows(s).await {
        tracing::warn!(error.message = %e, "could not move legacy index rows; will try again at the next start");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::records::{index_key, IndexEntry};
    use crate::state::{load, put, RowKey};

    #[tokio::test]
    async fn index_rows_under_legacy_keys_are_found_again_after_the_carry_over() {
        let mut s = crate::usecase::test_ports();
        s.store = Arc::new(xdrsync_sim::fakes::MemoryStore::new());
        let name = uuid::Uuid::new_v4();
        let workspace = s.config.workspace.resource_id().to_ascii_lowercase();
        let legacy = RowKey { pk: legacy_percent_key(&workspace), rk: name.to_string() };
        assert!(legacy.pk.contains("%2F"), "{}", legacy.pk);
        let entry = IndexEntry { tenant_id: "t".into(), incident_id: "29".into() };
        put(s.store.as_ref(), Table::Index, &legacy, &entry, &[]).await.unwrap();
        let key = index_key(&s.config.workspace.resource_id(), &name).unwrap();
        assert!(load::<IndexEntry>(s.store.as_ref(), Table::Index, &key).await.unwrap().is_none());

        assert_eq!(carry_index_rows(&s).await.unwrap(), 1);
        let found = load::<IndexEntry>(s.store.as_ref(), Table::Index, &key).await.unwrap().unwrap();
        assert_eq!(found.value, entry);
        assert!(s.store.query_partition(Table::Index, &legacy.pk).await.unwrap().is_empty());
        assert_eq!(carry_index_rows(&s).await.unwrap(), 0, "idempotent");
    }
}
