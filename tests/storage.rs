//! The state store and work queue against Azurite (started here on free ports): ETag conflicts
//! between two writers, continuation past 1,000 rows, key escaping, and the queue round trip.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::*;
use xdrsync::adapters::queue::AzureQueues;
use xdrsync::adapters::tables::AzureTables;
use xdrsync::config::storage_conn::StorageConnection;
use xdrsync::metrics::CallCounters;
use xdrsync::ports::{Entity, StateStore, Table, WorkQueue};
use xdrsync::state::{load, modify, save, RowKey, Versioned};

fn tables(az: &AzuriteProcess, prefix: &str) -> AzureTables {
    let conn = StorageConnection::parse(&az.connection_string()).unwrap();
    AzureTables::new(&conn, prefix, CallCounters::shared(), &key_only())
}

#[tokio::test]
async fn two_writers_conflict_on_etag_and_modify_loses_nothing() {
    let az = Azurite::start();
    let prefix = unique_prefix();
    let a = tables(&az, &prefix);
    let b = tables(&az, &prefix);
    a.ensure_tables().await.unwrap();
    b.ensure_tables().await.unwrap(); // idempotent
    let key = RowKey::new("72f988bf-86f1-41af-91ab-2d7cd011db47", "1001").unwrap();
    save(&a, Table::Incidents, &key, &1u32, &[], None).await.unwrap();
    let va: Versioned<u32> = load(&a, Table::Incidents, &key).await.unwrap().unwrap();
    let vb: Versioned<u32> = load(&b, Table::Incidents, &key).await.unwrap().unwrap();
    save(&a, Table::Incidents, &key, &2u32, &[], Some(&va.etag)).await.unwrap();
    let e = save(&b, Table::Incidents, &key, &3u32, &[], Some(&vb.etag)).await.unwrap_err();
    assert!(e.is_conflict(), "{e}");
    assert!(
        save(&b, Table::Incidents, &key, &9u32, &[], None).await.unwrap_err().is_conflict(),
        "insert of an existing row"
    );

    // Concurrent read-modify-writes from two stores: every increment survives.
    let (a, b) = (Arc::new(a), Arc::new(b));
    let mut tasks = Vec::new();
    for store in [a.clone(), b.clone(), a.clone(), b.clone()] {
        let key = key.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..5 {
                modify::<u32, _>(store.as_ref(), Table::Incidents, &key, |c| Some(c.copied().unwrap_or(0) + 1))
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let v: Versioned<u32> = load(a.as_ref(), Table::Incidents, &key).await.unwrap().unwrap();
    assert_eq!(v.value, 22);
}

#[tokio::test]
async fn partition_queries_follow_continuation_past_1000_rows() {
    let az = Azurite::start();
    let store = tables(&az, &unique_prefix());
    store.ensure_tables().await.unwrap();
    let rows: Vec<Entity> = (0..1500).map(|i| Entity::new("p1", format!("r{i:05}")).with("N", i.to_string())).collect();
    store.upsert_many(Table::AlertDigests, &rows).await.unwrap();
    store.upsert(Table::AlertDigests, &Entity::new("p2", "other")).await.unwrap();
    let got = store.query_partition(Table::AlertDigests, "p1").await.unwrap();
    assert_eq!(got.len(), 1500);
    let mut names: Vec<_> = got.iter().map(|e| e.row_key.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 1500);
    assert_eq!(got.iter().find(|e| e.row_key == "r01234").unwrap().str("N"), Some("1234"));
}

#[tokio::test]
async fn escaped_keys_round_trip_through_table_storage() {
    let az = Azurite::start();
    let store = tables(&az, &unique_prefix());
    store.ensure_tables().await.unwrap();
    let key = RowKey::new("tenant/with#odd?chars", "id\\with'quote%").unwrap();
    save(&store, Table::Index, &key, &"value".to_string(), &[], None).await.unwrap();
    let got: Versioned<String> = load(&store, Table::Index, &key).await.unwrap().unwrap();
    assert_eq!(got.value, "value");
    assert!(store.get(Table::Index, "missing", "row").await.unwrap().is_none());
    store.delete(Table::Index, &key.pk, &key.rk).await.unwrap();
    assert!(store.get(Table::Index, &key.pk, &key.rk).await.unwrap().is_none());
    store.delete(Table::Index, &key.pk, &key.rk).await.unwrap(); // deleting a missing row is fine
}

/// The keys real tenants produce: an Index PartitionKey that is a workspace resource id and a
/// Users RowKey that is a guest UPN (`#EXT#`), next to plain ids that keep their old keys.
#[tokio::test]
async fn real_tenant_keys_round_trip_through_table_storage() {
    let az = Azurite::start();
    let store = tables(&az, &unique_prefix());
    store.ensure_tables().await.unwrap();
    let workspace = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/soc/providers/microsoft.operationalinsights/workspaces/sentinel";
    let cases = [
        (Table::Index, RowKey::new(workspace, "6b5a2b0e-9a0e-4b54-9d0b-2f6f0c3a5e11").unwrap()),
        (
            Table::Users,
            RowKey::new("72f988bf-86f1-41af-91ab-2d7cd011db47", "jane_contoso.com#EXT#@fabrikam.onmicrosoft.com")
                .unwrap(),
        ),
        (Table::Incidents, RowKey::new("72f988bf-86f1-41af-91ab-2d7cd011db47", "2972395").unwrap()),
        (Table::Index, RowKey::new("50% off/it's", "a?b\\c").unwrap()),
    ];
    for (table, key) in &cases {
        for k in [&key.pk, &key.rk] {
            assert!(!k.contains(['%', '\'', '/', '\\', '#', '?']), "{k}");
        }
        save(&store, *table, key, &key.rk, &[], None).await.unwrap();
    }
    for (table, key) in &cases {
        let got: Versioned<String> = load(&store, *table, key).await.unwrap().unwrap();
        assert_eq!(&got.value, &key.rk);
        let partition = store.query_partition(*table, &key.pk).await.unwrap();
        assert!(partition.iter().any(|e| e.row_key == key.rk), "{} not found in its partition", key.rk);
        store.delete(*table, &key.pk, &key.rk).await.unwrap();
        assert!(store.get(*table, &key.pk, &key.rk).await.unwrap().is_none());
    }
    assert_eq!(cases[2].1.rk, "2972395", "plain ids keep their keys");
}

#[tokio::test]
async fn queue_round_trip_with_visibility_and_dequeue_count() {
    let az = Azurite::start();
    let conn = StorageConnection::parse(&az.connection_string()).unwrap();
    let q = AzureQueues::new(&conn, CallCounters::shared(), &key_only());
    let name = "xdrsync-incidents";
    q.ensure_queue(name).await.unwrap();
    q.ensure_queue(name).await.unwrap();
    let text = r#"{"kind":"reconcile","tenantId":"t","incidentId":"1001","hint":"defender"}"#;
    q.send(name, text).await.unwrap();
    q.send(name, "abcd").await.unwrap(); // valid base64 on its own: must still arrive verbatim
    assert_eq!(q.approximate_len(name).await.unwrap(), 2);

    let got = q.receive(name, 32, Duration::from_secs(2)).await.unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].text, text);
    assert_eq!(got[1].text, "abcd");
    assert!(got.iter().all(|m| m.dequeue_count == 1));
    assert!(q.receive(name, 32, Duration::from_secs(2)).await.unwrap().is_empty(), "invisible while leased");

    q.delete(name, &got[1]).await.unwrap();
    let again = wait_for(30, "the undeleted message back after its 2 s lease", || async {
        Some(q.receive(name, 32, Duration::from_secs(30)).await.unwrap()).filter(|m| !m.is_empty())
    })
    .await;
    assert_eq!(again.len(), 1, "the undeleted message comes back");
    assert_eq!(again[0].text, text);
    assert_eq!(again[0].dequeue_count, 2);
    q.delete(name, &again[0]).await.unwrap();
    assert_eq!(q.approximate_len(name).await.unwrap(), 0);
}

#[tokio::test]
async fn a_released_message_reappears_after_the_retry_delay_not_the_processing_lease() {
    let az = Azurite::start();
    let conn = StorageConnection::parse(&az.connection_string()).unwrap();
    let q = AzureQueues::new(&conn, CallCounters::shared(), &key_only());
    q.ensure_queue("work").await.unwrap();
    q.send("work", "{\"n\":1}").await.unwrap();
    let got = q.receive("work", 1, Duration::from_secs(600)).await.unwrap();
    assert_eq!(got.len(), 1);
    q.release("work", &got[0], Duration::from_secs(1)).await.unwrap();
    assert!(q.receive("work", 1, Duration::from_secs(600)).await.unwrap().is_empty());
    // Back after the 1 s delay: far before the 600 s processing lease would have let it go.
    let again = wait_for(30, "the released message back", || async {
        Some(q.receive("work", 1, Duration::from_secs(600)).await.unwrap()).filter(|m| !m.is_empty())
    })
    .await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].text, "{\"n\":1}");
    assert_eq!(again[0].dequeue_count, 2);
}

/// A token source for connections that sign with the account key (never asked for a token).
fn key_only() -> std::sync::Arc<dyn xdrsync::ports::TokenSource> {
    struct KeyOnly;
    #[async_trait::async_trait]
    impl xdrsync::ports::TokenSource for KeyOnly {
        async fn token(&self, scope: &str) -> Result<secrecy::SecretString, xdrsync::error::PortError> {
            panic!("a key-signed connection asked for a {scope} token")
        }
        async fn invalidate(&self, _: &str) {}
    }
    std::sync::Arc::new(KeyOnly)
}
