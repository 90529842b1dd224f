//! The ports: one small trait per external system, speaking domain types only. Each has a real
//! adapter (`adapters/`) and, where tests need one, an in-memory fake (`fakes/`). Held as
//! `Arc<dyn Trait>` at the edges.

use std::time::Duration;

use async_trait::async_trait;
use secrecy::SecretString;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::alert_links::{ExistingRelation, QueryTable};
use crate::domain::cursor::Window;
use crate::domain::defender::{AlertComment, DefenderAlert, DefenderIncident, DefenderIncidentPatch, IncidentStamp};
use crate::domain::sentinel::{SentinelComment, SentinelIncident, SentinelIncidentBody};
use crate::domain::workspace_rules::{AlertRule, DataConnector};
use crate::error::PortError;

/// Bearer tokens per scope, cached and refreshed before expiry.
#[async_trait]
pub trait TokenSource: Send + Sync {
    async fn token(&self, scope: &str) -> Result<SecretString, PortError>;
    /// Drops a cached token the service refused (401), so the next call fetches a fresh one.
    async fn invalidate(&self, scope: &str);
}

/// A directory user, for owner mapping (Graph `/users/{upn}`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryUser {
    pub id: String,
    #[serde(default)]
    pub user_principal_name: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub mail: Option<String>,
}

/// Defender XDR through Microsoft Graph.
#[async_trait]
pub trait DefenderApi: Send + Sync {
    /// Every incident with `lastUpdateDateTime >= since`, all pages, in service order.
    async fn list_incidents_since(&self, since: OffsetDateTime) -> Result<Vec<DefenderIncident>, PortError>;
    /// One page of the incidents changed within `window` (`lastUpdateDateTime ge since` and, when
    /// set, `lt until`), from the first page or from a page's continuation.
    async fn list_incident_stamps(&self, window: Window, page: Option<&str>) -> Result<StampPage, PortError>;
    /// The same page with each incident in full and its alerts where the service expands them
    /// (`$expand=alerts`), for reconciling from the page (docs/sync.md). Default: stamps only.
    async fn list_incident_page(&self, window: Window, page: Option<&str>) -> Result<IncidentPage, PortError> {
        let p = self.list_incident_stamps(window, page).await?;
        Ok(IncidentPage {
            items: p.items.into_iter().map(|stamp| ListedIncident { stamp, full: None }).collect(),
            next: p.next,
        })
    }
    /// One incident; `Ok(None)` on 404.
    async fn get_incident(&self, id: &str) -> Result<Option<DefenderIncident>, PortError>;
    /// Every alert of an incident (`alerts_v2?$filter=incidentId eq '…'`), all pages.
    async fn list_alerts(&self, incident_id: &str) -> Result<Vec<DefenderAlert>, PortError>;
    /// `PATCH` with only the fields that change; returns the updated incident.
    async fn patch_incident(&self, id: &str, patch: &DefenderIncidentPatch) -> Result<DefenderIncident, PortError>;
    /// Adds a comment; returns the incident's whole comment list (as Graph does).
    async fn add_comment(&self, id: &str, text: &str) -> Result<Vec<AlertComment>, PortError>;
    /// A user by UPN; `Ok(None)` when the directory has no such user.
    async fn find_user(&self, upn: &str) -> Result<Option<DirectoryUser>, PortError>;
    /// A B2B guest of this tenant whose `mail` is `address` (another tenant's UPN); `None` when
    /// there is none. Default: no guest lookup.
    async fn find_guest(&self, address: &str) -> Result<Option<DirectoryUser>, PortError> {
        let _ = address;
        Ok(None)
    }
}

/// One page of incidents in full where the service expanded them, and where the next one is.
#[derive(Debug, Clone, Default)]
pub struct IncidentPage {
    pub items: Vec<ListedIncident>,
    /// Opaque continuation (`@odata.nextLink`), followed verbatim.
    pub next: Option<String>,
}

/// One incident of a list page: its stamp, and the whole incident when the page carried it.
#[derive(Debug, Clone)]
pub struct ListedIncident {
    pub stamp: IncidentStamp,
    pub full: Option<DefenderIncident>,
}

/// One page of a listing, and where the next one is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StampPage {
    pub items: Vec<IncidentStamp>,
    /// Opaque continuation (`@odata.nextLink`), followed verbatim.
    pub next: Option<String>,
}

/// Sentinel incidents through ARM.
#[async_trait]
pub trait SentinelApi: Send + Sync {
    /// `Ok(None)` on 404.
    async fn get_incident(&self, name: &Uuid) -> Result<Option<SentinelIncident>, PortError>;
    /// Create-or-update. A stale `body.etag` fails with [`PortError::Conflict`].
    async fn put_incident(&self, name: &Uuid, body: &SentinelIncidentBody) -> Result<SentinelIncident, PortError>;
    /// Incidents with `lastModifiedTimeUtc >= since`, all pages.
    async fn list_incidents_modified_since(&self, since: OffsetDateTime) -> Result<Vec<SentinelIncident>, PortError>;
    async fn list_comments(&self, incident: &Uuid) -> Result<Vec<SentinelComment>, PortError>;
    /// The role definition ids assigned at the workspace's own scope (`xdrsync check`).
    async fn workspace_role_definitions(&self) -> Result<Vec<String>, PortError>;
    /// Create-or-update of a comment by id (so a retry writes the same comment).
    async fn put_comment(&self, incident: &Uuid, comment: &Uuid, message: &str) -> Result<(), PortError>;
    /// The workspace's analytics rules (`xdrsync connect`). Implementations that do not reach
    /// ARM answer `Rejected`.
    async fn list_alert_rules(&self) -> Result<Vec<AlertRule>, PortError> {
        Err(PortError::rejected("sentinel", "alert rules are not available here"))
    }
    /// One analytics rule by name, whatever its kind (`Ok(None)` on 404): `connect` reads
    /// xdrsync's own NRT rule (`ops/connect_rule.rs`).
    async fn get_alert_rule(&self, name: &str) -> Result<Option<AlertRule>, PortError> {
        let _ = name;
        Err(PortError::rejected("sentinel", "alert rules are not available here"))
    }
    /// Create-or-update of an analytics rule; a stale `rule.etag` fails with [`PortError::Conflict`].
    async fn put_alert_rule(&self, rule: &AlertRule) -> Result<AlertRule, PortError> {
        let _ = rule;
        Err(PortError::rejected("sentinel", "alert rules are not available here"))
    }
    /// The workspace's data connectors (`xdrsync connect`).
    async fn list_data_connectors(&self) -> Result<Vec<DataConnector>, PortError> {
        Err(PortError::rejected("sentinel", "data connectors are not available here"))
    }

    // Relations (ARCHITECTURE.md: “Native alerts”). Provided methods answer `Rejected`, so a
    // test double that wraps only some calls still compiles; the ARM adapter implements them.

    /// Every relation of an incident (alerts, bookmarks), all pages.
    async fn list_relations(&self, incident: &Uuid) -> Result<Vec<ExistingRelation>, PortError> {
        let _ = incident;
        Err(unsupported("list relations"))
    }
    /// Create-or-update of a relation by name to `related_resource_id` (an alert:
    /// `…/Microsoft.SecurityInsights/entities/{SystemAlertId}`). Reusing a name for another
    /// resource is a [`PortError::Conflict`].
    async fn put_relation(&self, incident: &Uuid, relation: &Uuid, related_resource_id: &str) -> Result<(), PortError> {
        let _ = (incident, relation, related_resource_id);
        Err(unsupported("relate"))
    }
    /// Removes a relation (gone already is success).
    async fn delete_relation(&self, incident: &Uuid, relation: &str) -> Result<(), PortError> {
        let _ = (incident, relation);
        Err(unsupported("unrelate"))
    }
}

fn unsupported(what: &str) -> PortError {
    PortError::Rejected { service: "sentinel", code: None, reason: format!("this SentinelApi cannot {what}") }
}

/// The Log Analytics query API over the Sentinel workspace (read-only KQL).
#[async_trait]
pub trait LogQuery: Send + Sync {
    /// Runs `query` limited to the ISO 8601 duration `timespan`; the first result table.
    async fn query(&self, query: &str, timespan: &str) -> Result<QueryTable, PortError>;
}

/// What one upload did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UploadReport {
    pub rows_sent: usize,
    pub requests: usize,
    /// Positions (in the uploaded slice) of rows larger than one request may carry: not sent.
    pub too_large: Vec<usize>,
}

/// Told which rows the service accepted, call by call (ARCHITECTURE.md: “Logs Ingestion”).
#[async_trait]
pub trait AcceptedRows: Send + Sync {
    /// One call was accepted (2xx) carrying these rows (positions in the uploaded slice). The
    /// upload waits for this before making its next call; an error stops the upload with it.
    async fn accepted(&self, rows: &[usize]) -> Result<(), PortError>;
}

/// An [`AcceptedRows`] that records nothing.
pub struct IgnoreAccepted;

#[async_trait]
impl AcceptedRows for IgnoreAccepted {
    async fn accepted(&self, _rows: &[usize]) -> Result<(), PortError> {
        Ok(())
    }
}

/// Azure Monitor Logs Ingestion (DCR streams). A call the service stored but whose answer was
/// lost stores its rows again when sent again: documented, the API takes no idempotency key (its
/// one request id, `x-ms-client-request-id`, is for troubleshooting); assumed, nothing
/// deduplicates behind it.
#[async_trait]
pub trait LogsIngestion: Send + Sync {
    /// Sends rows in order, in ≤ 1 MB gzip'd calls, splitting on 413, and tells `on_accepted`
    /// after each accepted call (before the next one), so a failure part-way loses no record of
    /// what already arrived. On an error, the calls before it stay accepted.
    async fn upload_reporting(
        &self,
        stream: &str,
        rows: &[Value],
        on_accepted: &dyn AcceptedRows,
    ) -> Result<UploadReport, PortError>;

    /// Posts an empty batch: proves the endpoint answers and the caller may write to the data
    /// collection rule (`xdrsync check`), without adding a row.
    async fn probe(&self, stream: &str) -> Result<(), PortError>;

    /// [`LogsIngestion::upload_reporting`] without per-call reports.
    async fn upload(&self, stream: &str, rows: &[Value]) -> Result<UploadReport, PortError> {
        self.upload_reporting(stream, rows, &IgnoreAccepted).await
    }
}

/// The tables of ARCHITECTURE.md: “State”.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Incidents,
    Index,
    Cursors,
    Leases,
    Users,
    AlertDigests,
    Failures,
    /// Native alerts' outbox and relation links (docs/native-alerts.md).
    AlertTriggers,
}

impl Table {
    pub const ALL: [Table; 8] = [
        Table::Incidents,
        Table::Index,
        Table::Cursors,
        Table::Leases,
        Table::Users,
        Table::AlertDigests,
        Table::Failures,
        Table::AlertTriggers,
    ];

    pub fn suffix(self) -> &'static str {
        match self {
            Table::Incidents => "Incidents",
            Table::Index => "Index",
            Table::Cursors => "Cursors",
            Table::Leases => "Leases",
            Table::Users => "Users",
            Table::AlertDigests => "AlertDigests",
            Table::Failures => "Failures",
            Table::AlertTriggers => "AlertTriggers",
        }
    }
}

/// An opaque entity version (Table Storage ETag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ETag(pub String);

/// A Table Storage entity: keys plus string/number/bool properties.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    pub partition_key: String,
    pub row_key: String,
    pub props: Map<String, Value>,
}

impl Entity {
    pub fn new(partition_key: impl Into<String>, row_key: impl Into<String>) -> Self {
        Self { partition_key: partition_key.into(), row_key: row_key.into(), props: Map::new() }
    }
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.props.insert(name.to_string(), value.into());
        self
    }
    pub fn str(&self, name: &str) -> Option<&str> {
        self.props.get(name).and_then(Value::as_str)
    }
}

/// Entity storage with optimistic concurrency. Keys arrive already escaped.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// Creates the tables if missing.
    async fn ensure_tables(&self) -> Result<(), PortError>;
    async fn get(&self, table: Table, pk: &str, rk: &str) -> Result<Option<(Entity, ETag)>, PortError>;
    /// Fails with [`PortError::Conflict`] when the entity exists.
    async fn insert(&self, table: Table, entity: &Entity) -> Result<ETag, PortError>;
    /// Replaces only if the entity still has `etag`; otherwise [`PortError::Conflict`].
    async fn replace(&self, table: Table, entity: &Entity, etag: &ETag) -> Result<ETag, PortError>;
    /// Insert or replace, unconditionally.
    async fn upsert(&self, table: Table, entity: &Entity) -> Result<(), PortError>;
    /// Insert-or-replace many entities of one partition (grouped ≤ 100 per transaction).
    async fn upsert_many(&self, table: Table, entities: &[Entity]) -> Result<(), PortError>;
    async fn delete(&self, table: Table, pk: &str, rk: &str) -> Result<(), PortError>;
    /// Every entity of a partition, following continuation tokens.
    async fn query_partition(&self, table: Table, pk: &str) -> Result<Vec<Entity>, PortError>;
}

/// A received queue message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    pub id: String,
    pub pop_receipt: String,
    pub dequeue_count: u32,
    pub text: String,
}

/// Storage queues, as the Functions host uses them (messages base64-encoded on the wire).
#[async_trait]
pub trait WorkQueue: Send + Sync {
    async fn ensure_queue(&self, queue: &str) -> Result<(), PortError>;
    async fn send(&self, queue: &str, text: &str) -> Result<(), PortError> {
        self.send_later(queue, text, Duration::ZERO).await
    }
    /// Sends a message that becomes visible only after `delay` (a fresh message: its dequeue
    /// count starts again, so waiting out a throttle never counts toward the poison queue).
    async fn send_later(&self, queue: &str, text: &str, delay: Duration) -> Result<(), PortError>;
    /// Up to `max` messages, each invisible for `visibility` unless deleted.
    async fn receive(&self, queue: &str, max: u8, visibility: Duration) -> Result<Vec<QueueMessage>, PortError>;
    async fn delete(&self, queue: &str, msg: &QueueMessage) -> Result<(), PortError>;
    /// Makes a received message visible again after `delay` (a failed attempt's retry delay).
    async fn release(&self, queue: &str, msg: &QueueMessage, delay: Duration) -> Result<(), PortError>;
    /// Keeps a received message invisible for `visibility` from now (Update Message with its pop
    /// receipt); returns the new pop receipt, which replaces the old one. Default: unsupported.
    async fn extend_visibility(
        &self,
        queue: &str,
        msg: &QueueMessage,
        visibility: Duration,
    ) -> Result<String, PortError> {
        let _ = (queue, msg, visibility);
        Err(PortError::rejected("queue-storage", "this queue cannot extend a message's visibility"))
    }
    /// Approximate count of messages (for status and tests).
    async fn approximate_len(&self, queue: &str) -> Result<usize, PortError>;
    /// When the oldest visible message was inserted, without changing any message (health:
    /// a queue whose front has waited long is not being worked). `None` for no visible message;
    /// messages in flight or delayed are not seen.
    async fn peek_oldest_inserted(&self, queue: &str) -> Result<Option<OffsetDateTime>, PortError>;
}

/// Time, passed in so the core never reads a clock.
pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

/// One `runHuntingQuery` answer: the result's columns and rows (each row an object keyed by
/// column name, as Graph returns them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HuntingResult {
    /// `(name, type)` of each column, as the service names the type (`DateTime`, `String`, …).
    pub schema: Vec<(String, String)>,
    pub results: Vec<Map<String, Value>>,
}

/// Defender advanced hunting (Graph `POST /security/runHuntingQuery`).
#[async_trait]
pub trait HuntingApi: Send + Sync {
    /// Runs one KQL query. A result over the service's size limit fails with
    /// [`PortError::TooLarge`]; throttling (the per-tenant quota) with [`PortError::Throttled`].
    async fn run_query(&self, query: &str) -> Result<HuntingResult, PortError>;
}

/// One blob of a container: its name and current size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    pub name: String,
    pub size: u64,
}

/// Reading a storage account's blobs (the Streaming API's output).
#[async_trait]
pub trait BlobReader: Send + Sync {
    /// Every blob of `container`, in name order; a missing container has none.
    async fn list(&self, container: &str) -> Result<Vec<BlobInfo>, PortError>;
    /// Bytes `start..end` of a blob.
    async fn read(&self, container: &str, blob: &str, start: u64, end: u64) -> Result<Vec<u8>, PortError>;
}
