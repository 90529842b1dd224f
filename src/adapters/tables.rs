//! [`StateStore`] on Azure Table Storage through `azure_data_tables` 0.21. The only module that
//! knows that crate: a move to a 1.x Tables crate changes this file alone. The SDK's own retry
//! is off; callers use the shared [`RetryPolicy`].

use std::sync::Arc;

use async_trait::async_trait;
use azure_core::Etag;
use azure_data_tables::clients::TableServiceClientBuilder;
use azure_data_tables::prelude::*;
use azure_data_tables::IfMatchCondition;
use azure_storage::CloudLocation;
use futures::StreamExt;
use serde_json::{Map, Value};

use super::azure_err::from_azure;
use crate::config::storage_conn::StorageConnection;
use crate::error::PortError;
use crate::metrics::{bump, CallCounters};
use crate::ports::{ETag, Entity, StateStore, Table};
use crate::retry::RetryPolicy;

const SERVICE: &str = "table-storage";

pub struct AzureTables {
    service: TableServiceClient,
    prefix: String,
    retry: RetryPolicy,
    counters: Arc<CallCounters>,
}

impl AzureTables {
    pub fn new(
        conn: &StorageConnection,
        prefix: &str,
        counters: Arc<CallCounters>,
        tokens: &Arc<dyn crate::ports::TokenSource>,
    ) -> Self {
        let location = CloudLocation::Custom {
            account: conn.account.clone(),
            uri: conn.table_endpoint.as_str().trim_end_matches('/').to_string(),
        };
        let creds = super::storage_auth::credentials(conn, tokens);
        let service =
            TableServiceClientBuilder::with_location(location, creds).retry(azure_core::RetryOptions::none()).build();
        Self { service, prefix: prefix.to_string(), retry: RetryPolicy::default(), counters }
    }

    fn table(&self, t: Table) -> TableClient {
        self.service.table_client(format!("{}{}", self.prefix, t.suffix()))
    }

    fn entity_client(&self, t: Table, pk: &str, rk: &str) -> EntityClient {
        self.table(t).partition_key_client(pk).entity_client(rk)
    }

    fn count(&self) {
        bump(&self.counters.table);
    }
}

/// The wire form: keys plus properties.
fn to_wire(e: &Entity) -> Value {
    let mut m = e.props.clone();
    m.insert("PartitionKey".into(), Value::String(e.partition_key.clone()));
    m.insert("RowKey".into(), Value::String(e.row_key.clone()));
    Value::Object(m)
}

/// Drops service metadata (`odata.*`, `Timestamp`, `…@odata.type`) and splits out the keys.
fn from_wire(mut m: Map<String, Value>) -> Option<Entity> {
    let pk = m.remove("PartitionKey")?.as_str()?.to_string();
    let rk = m.remove("RowKey")?.as_str()?.to_string();
    m.retain(|k, _| !k.starts_with("odata.") && k != "Timestamp" && !k.ends_with("@odata.type"));
    Some(Entity { partition_key: pk, row_key: rk, props: m })
}

fn etag(e: Etag) -> ETag {
    ETag(e.to_string())
}

#[async_trait]
impl StateStore for AzureTables {
    async fn ensure_tables(&self) -> Result<(), PortError> {
        for t in Table::ALL {
            self.count();
            match self.table(t).create().await {
                Ok(_) => {}
                Err(e) => {
                    let e = from_azure(SERVICE, e);
                    if !e.is_conflict() {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }

    async fn get(&self, table: Table, pk: &str, rk: &str) -> Result<Option<(Entity, ETag)>, PortError> {
        let client = self.entity_client(table, pk, rk);
        let r = self
            .retry
            .run(|| async {
                self.count();
                client.get::<Map<String, Value>>().await.map_err(|e| from_azure(SERVICE, e))
            })
            .await;
        match r {
            Ok(resp) => {
                let entity = from_wire(resp.entity).ok_or_else(|| PortError::decode(SERVICE, "entity without keys"))?;
                Ok(Some((entity, etag(resp.etag))))
            }
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn insert(&self, table: Table, entity: &Entity) -> Result<ETag, PortError> {
        let client = self.table(table);
        let wire = to_wire(entity);
        self.retry
            .run(|| async {
                self.count();
                let builder = client.insert::<_, Value>(&wire).map_err(|e| from_azure(SERVICE, e))?;
                let resp = builder.return_entity(false).await.map_err(|e| from_azure(SERVICE, e))?;
                Ok(etag(resp.etag))
            })
            .await
    }

    async fn replace(&self, table: Table, entity: &Entity, if_match: &ETag) -> Result<ETag, PortError> {
        let client = self.entity_client(table, &entity.partition_key, &entity.row_key);
        let wire = to_wire(entity);
        let cond = IfMatchCondition::Etag(Etag::from(if_match.0.clone()));
        self.retry
            .run(|| async {
                self.count();
                let builder = client.update(&wire, cond.clone()).map_err(|e| from_azure(SERVICE, e))?;
                let resp = builder.await.map_err(|e| from_azure(SERVICE, e))?;
                Ok(etag(resp.etag))
            })
            .await
    }

    async fn upsert(&self, table: Table, entity: &Entity) -> Result<(), PortError> {
        let client = self.entity_client(table, &entity.partition_key, &entity.row_key);
        let wire = to_wire(entity);
        self.retry
            .run(|| async {
                self.count();
                let builder = client.insert_or_replace(&wire).map_err(|e| from_azure(SERVICE, e))?;
                builder.await.map_err(|e| from_azure(SERVICE, e)).map(|_| ())
            })
            .await
    }

    async fn upsert_many(&self, table: Table, entities: &[Entity]) -> Result<(), PortError> {
        let mut by_pk: std::collections::BTreeMap<&str, Vec<&Entity>> = Default::default();
        for e in entities {
            by_pk.entry(e.partition_key.as_str()).or_default().push(e);
        }
        for (pk, group) in by_pk {
            // Entity group transactions: ≤ 100 operations, one partition, each entity once.
            for chunk in group.chunks(100) {
                self.retry
                    .run(|| async {
                        self.count();
                        let mut tx = self.table(table).partition_key_client(pk).transaction();
                        for e in chunk {
                            tx = tx
                                .insert_or_replace(e.row_key.clone(), to_wire(e))
                                .map_err(|e| from_azure(SERVICE, e))?;
                        }
                        tx.await.map_err(|e| from_azure(SERVICE, e)).map(|_| ())
                    })
                    .await?;
            }
        }
        Ok(())
    }

    async fn delete(&self, table: Table, pk: &str, rk: &str) -> Result<(), PortError> {
        let client = self.entity_client(table, pk, rk);
        let r = self
            .retry
            .run(|| async {
                self.count();
                client.delete().await.map_err(|e| from_azure(SERVICE, e)).map(|_| ())
            })
            .await;
        match r {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    async fn query_partition(&self, table: Table, pk: &str) -> Result<Vec<Entity>, PortError> {
        let filter = format!("PartitionKey eq '{}'", pk.replace('\'', "''"));
        let mut stream = self.table(table).query().filter(filter).into_stream::<Map<String, Value>>();
        let mut out = Vec::new();
        while let Some(page) = stream.next().await {
            self.count();
            let page = page.map_err(|e| from_azure(SERVICE, e))?;
            out.extend(page.entities.into_iter().filter_map(from_wire));
        }
        Ok(out)
    }
}
