//! Configuration from app settings (environment variables), validated at startup.
//!
//! Every problem names the variable and the fix. Endpoints must be https except on loopback (the
//! simulator and Azurite). Secrets are `SecretString`s and the hand-written `Debug` never shows
//! them. Built from a map so tests never touch the process environment.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
pub use xdrsync_core::domain::tenants::{DefenderTenant, TenantRoute};
pub use xdrsync_core::domain::workspace::Workspace;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::adapters::cert_assertion::ClientCertificate;
use crate::domain::merge::ConflictPolicy;
pub mod audit;
pub mod endpoint;
pub mod hunting;
pub mod storage_conn;

use endpoint::err;
pub use endpoint::{is_loopback, parse_endpoint, refuse_credentials, ConfigError};
use storage_conn::StorageConnection;

pub const QUEUE_NAME: &str = "xdrsync-incidents";
const DEFAULT_SCHEDULE: &str = "*/30 * * * * *";

/// Sovereign cloud presets for the Entra, Graph, ARM and Monitor defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cloud {
    Public,
    UsGov,
    UsGovDod,
}

impl Cloud {
    fn authority(self) -> &'static str {
        match self {
            Cloud::Public => "https://login.microsoftonline.com",
            Cloud::UsGov | Cloud::UsGovDod => "https://login.microsoftonline.us",
        }
    }
    fn graph(self) -> &'static str {
        match self {
            Cloud::Public => "https://graph.microsoft.com",
            Cloud::UsGov => "https://graph.microsoft.us",
            Cloud::UsGovDod => "https://dod-graph.microsoft.us",
        }
    }
    fn arm(self) -> &'static str {
        match self {
            Cloud::Public => "https://management.azure.com",
            Cloud::UsGov | Cloud::UsGovDod => "https://management.usgovcloudapi.net",
        }
    }
    fn monitor(self) -> &'static str {
        match self {
            Cloud::Public => "https://monitor.azure.com",
            Cloud::UsGov | Cloud::UsGovDod => "https://monitor.azure.us",
        }
    }
    fn log_analytics(self) -> &'static str {
        match self {
            Cloud::Public => "https://api.loganalytics.io",
            Cloud::UsGov | Cloud::UsGovDod => "https://api.loganalytics.us",
        }
    }
    /// The audience of the managed identity's token a federated identity credential trusts (Learn,
    /// "Configure an application to trust a managed identity": one value per cloud;
    /// `XDRSYNC_FEDERATED_AUDIENCE` overrides it).
    fn token_exchange_audience(self) -> &'static str {
        match self {
            Cloud::Public => "api://AzureADTokenExchange",
            Cloud::UsGov | Cloud::UsGovDod => "api://AzureADTokenExchangeUSGov",
        }
    }
    fn storage_suffix(self) -> &'static str {
        match self {
            Cloud::Public => "core.windows.net",
            Cloud::UsGov | Cloud::UsGovDod => "core.usgovcloudapi.net",
        }
    }
}

/// How xdrsync gets tokens for Azure (ARM, Logs Ingestion, Log Analytics, Storage): the app's
/// managed identity wherever one exists, which is the principal the template assigns every role
/// to; the app registration's secret only outside Azure (no `IDENTITY_ENDPOINT`).
#[derive(Clone)]
pub enum Credential {
    ClientSecret {
        client_id: String,
        secret: SecretString,
    },
    /// Outside Azure: the app registration's certificate (`XDRSYNC_CLIENT_CERTIFICATE_PATH`).
    ClientCertificate {
        client_id: String,
        certificate: Arc<ClientCertificate>,
    },
    ManagedIdentity {
        endpoint: Url,
        header: SecretString,
        client_id: Option<String>,
    },
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::ClientSecret { client_id, .. } => {
                f.debug_struct("ClientSecret").field("client_id", client_id).field("secret", &"[redacted]").finish()
            }
            Credential::ClientCertificate { client_id, certificate } => f
                .debug_struct("ClientCertificate")
                .field("client_id", client_id)
                .field("thumbprint", &certificate.thumbprint)
                .finish(),
            Credential::ManagedIdentity { endpoint, client_id, .. } => f
                .debug_struct("ManagedIdentity")
                .field("endpoint", &endpoint.as_str())
                .field("header", &"[redacted]")
                .field("client_id", client_id)
                .finish(),
        }
    }
}

/// How xdrsync gets Graph tokens (`XDRSYNC_GRAPH_CREDENTIAL`).
#[derive(Clone)]
pub enum GraphCredential {
    /// The Azure credential itself (`managed-identity`): the managed identity holds the Graph
    /// application roles; its own tenant only.
    Azure,
    /// The app registration with a client secret (`secret`).
    Secret { client_id: String, secret: SecretString },
    /// The multi-tenant app registration whose federated identity credential trusts the managed
    /// identity (`federated`): the managed identity's token for `audience` is the client assertion.
    Federated { client_id: String, audience: String },
    /// The app registration with a certificate (`certificate`): a client assertion signed with
    /// the key of `XDRSYNC_CLIENT_CERTIFICATE_PATH`.
    Certificate { client_id: String, certificate: Arc<ClientCertificate> },
}

impl fmt::Debug for GraphCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GraphCredential::Azure => f.write_str("Azure"),
            GraphCredential::Secret { client_id, .. } => {
                f.debug_struct("Secret").field("client_id", client_id).field("secret", &"[redacted]").finish()
            }
            GraphCredential::Federated { client_id, audience } => {
                f.debug_struct("Federated").field("client_id", client_id).field("audience", audience).finish()
            }
            GraphCredential::Certificate { client_id, certificate } => f
                .debug_struct("Certificate")
                .field("client_id", client_id)
                .field("thumbprint", &certificate.thumbprint)
                .finish(),
        }
    }
}

/// Everything xdrsync needs, validated.
#[derive(Clone)]
pub struct Config {
    /// `AzureWebJobsStorage`
    pub storage: StorageConnection,
    /// `XDRSYNC_TENANT_ID`
    pub tenant_id: String,
    /// Azure calls: the managed identity (`IDENTITY_ENDPOINT`, `XDRSYNC_MANAGED_IDENTITY_CLIENT_ID`),
    /// or outside Azure `XDRSYNC_CLIENT_ID` + `XDRSYNC_CLIENT_SECRET`
    pub credential: Credential,
    /// Graph calls: `XDRSYNC_GRAPH_CREDENTIAL`
    pub graph_credential: GraphCredential,
    /// `XDRSYNC_AUTHORITY_HOST`
    pub authority_host: Url,
    /// `XDRSYNC_GRAPH_ENDPOINT`
    pub graph_endpoint: Url,
    /// `XDRSYNC_ARM_ENDPOINT`
    pub arm_endpoint: Url,
    /// Token scopes; the resource ids of the cloud, whatever endpoint URLs point at.
    pub graph_scope: String,
    pub arm_scope: String,
    pub monitor_scope: String,
    /// `XDRSYNC_WORKSPACE_RESOURCE_ID`
    pub workspace: Workspace,
    /// `XDRSYNC_LOGS_INGESTION_ENDPOINT`
    pub logs_ingestion_endpoint: Url,
    /// `XDRSYNC_DCR_IMMUTABLE_ID`
    pub dcr_immutable_id: String,
    /// `XDRSYNC_DCR_RESOURCE_ID`: the same rule's ARM id, for `check`'s permission proof
    pub dcr_resource_id: Option<String>,
    /// `XDRSYNC_ALERTS_STREAM`
    pub alerts_stream: String,
    /// `XDRSYNC_WEBHOOK_KEY`
    pub webhook_key: Option<SecretString>,
    /// `XDRSYNC_POLL_SCHEDULE`
    pub poll_schedule: String,
    /// `XDRSYNC_HTTP_PORT`
    pub http_port: u16,
    /// `XDRSYNC_HTTP_BIND` (standalone mode: the address to listen on; default every interface)
    pub http_bind: std::net::IpAddr,
    /// `XDRSYNC_TABLE_PREFIX`
    pub table_prefix: String,
    /// `XDRSYNC_QUEUE_NAME`
    pub queue_name: String,
    /// `XDRSYNC_POLL_OVERLAP_SECONDS`
    pub poll_overlap: Duration,
    /// `XDRSYNC_INITIAL_LOOKBACK_HOURS`
    pub initial_lookback: Duration,
    /// `XDRSYNC_MAX_BATCH_BYTES`
    pub max_batch_bytes: usize,
    /// `XDRSYNC_USER_CACHE_HOURS`
    pub user_cache_ttl: Duration,
    /// `XDRSYNC_HTTP_TIMEOUT_SECONDS`
    pub http_timeout: Duration,
    /// `XDRSYNC_CONFLICT_POLICY`
    pub conflict_policy: ConflictPolicy,
    /// `XDRSYNC_QUEUE_VISIBILITY_SECONDS` (standalone mode: how long a failed message waits)
    pub queue_visibility: Duration,
    /// `XDRSYNC_WORKERS` (standalone mode: concurrent queue messages)
    pub workers: usize,
    /// `XDRSYNC_MIRROR_SENTINEL_INCIDENTS`: mirror Defender incidents whose alerts all come from
    /// Microsoft Sentinel (workspaces onboarded to the Defender portal list them in Graph).
    pub mirror_sentinel_incidents: bool,
    /// `XDRSYNC_GRAPH_CALLS_PER_MINUTE`: the Graph call budget of one Defender tenant.
    pub graph_calls_per_minute: u32,
    /// `XDRSYNC_ARM_WRITES_PER_SECOND`: the refill of the Sentinel (ARM) write budget.
    pub arm_writes_per_second: u32,
    /// `XDRSYNC_ARM_WRITE_BURST`: the size of that budget's bucket (ARM's own is 200 per principal).
    pub arm_write_burst: u32,
    /// `XDRSYNC_POLL_TIME_BUDGET_SECONDS`: a poll stops walking backfill windows after this long.
    pub poll_time_budget: Duration,
    /// `XDRSYNC_RETRY_SCHEDULE_SECONDS`: delays before the retries of a failed incident; the last
    /// one repeats.
    pub retry_schedule: Vec<Duration>,
    /// `XDRSYNC_DEFENDER_TENANTS`: the Defender tenants read (empty: only `tenant_id`, as before).
    pub defender_tenants: Vec<DefenderTenant>,
    /// `XDRSYNC_TENANT_WORKSPACES`: tenants whose mirrors go to another workspace.
    pub tenant_routes: Vec<TenantRoute>,
    /// Native alerts on mirrors (“Native alerts”): `XDRSYNC_ATTACH_ALERTS`, `XDRSYNC_WORKSPACE_ID`,
    /// `XDRSYNC_LOG_ANALYTICS_ENDPOINT`, `XDRSYNC_ALERTS_ATTACH_DELAY_MINUTES`.
    pub alerts: AlertAttachSettings,
    /// `XDRSYNC_DEFENDER_PORTAL_ONBOARDED`: the workspace is onboarded to the Defender portal
    /// (not detectable through a documented API; `check` reports what it means).
    pub defender_portal_onboarded: bool,
    /// `XDRSYNC_TARGET`: `sentinel` (Sentinel incidents through ARM) or `defender-portal` (the
    /// workspace tenant's own Defender incidents, docs/unified-portal.md “Mode 2”).
    pub target: xdrsync_core::domain::portal::SyncTarget,
    /// `XDRSYNC_HUNTING_*`: the advanced-hunting export.
    pub hunting: hunting::HuntingSettings,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("storage", &self.storage)
            .field("tenant_id", &self.tenant_id)
            .field("credential", &self.credential)
            .field("graph_credential", &self.graph_credential)
            .field("authority_host", &self.authority_host.as_str())
            .field("graph_endpoint", &self.graph_endpoint.as_str())
            .field("arm_endpoint", &self.arm_endpoint.as_str())
            .field("workspace", &self.workspace)
            .field("logs_ingestion_endpoint", &self.logs_ingestion_endpoint.as_str())
            .field("dcr_immutable_id", &self.dcr_immutable_id)
            .field("alerts_stream", &self.alerts_stream)
            .field("webhook_key", &self.webhook_key.as_ref().map(|_| "[redacted]"))
            .field("poll_schedule", &self.poll_schedule)
            .field("http_port", &self.http_port)
            .field("http_bind", &self.http_bind)
            .field("table_prefix", &self.table_prefix)
            .field("queue_name", &self.queue_name)
            .finish_non_exhaustive()
    }
}

struct Vars<'a>(&'a HashMap<String, String>);

impl Vars<'_> {
    fn get(&self, var: &str) -> Option<&str> {
        self.0.get(var).map(|s| s.trim()).filter(|s| !s.is_empty())
    }
    fn required(&self, var: &'static str, hint: &str) -> Result<&str, ConfigError> {
        self.get(var).ok_or_else(|| err(var, format!("is not set; {hint}")))
    }
    fn number<T>(&self, var: &'static str, default: T, range: std::ops::RangeInclusive<T>) -> Result<T, ConfigError>
    where
        T: std::str::FromStr + PartialOrd + fmt::Display + Copy,
    {
        let Some(raw) = self.get(var) else {
            return Ok(default);
        };
        let v: T = raw.parse().map_err(|_| err(var, format!("'{raw}' is not a number")))?;
        if !range.contains(&v) {
            return Err(err(var, format!("{v} is outside {}..={}", range.start(), range.end())));
        }
        Ok(v)
    }
    fn seconds_list(&self, var: &'static str, default: &[u64]) -> Result<Vec<Duration>, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(default.iter().copied().map(Duration::from_secs).collect());
        };
        raw.split(',')
            .map(|p| match p.trim().parse::<u64>() {
                Ok(n) if (1..=7 * 24 * 3600).contains(&n) => Ok(Duration::from_secs(n)),
                _ => Err(err(var, format!("'{raw}' is not a comma-separated list of seconds (1 to 604800 each)"))),
            })
            .collect()
    }

    fn flag(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes") => Ok(true),
            Some("false" | "0" | "no") => Ok(false),
            Some(other) => Err(err(var, format!("'{other}' is not true or false"))),
        }
    }

    fn ip(&self, var: &'static str, default: std::net::IpAddr) -> Result<std::net::IpAddr, ConfigError> {
        let Some(raw) = self.get(var) else {
            return Ok(default);
        };
        raw.parse().map_err(|_| {
            err(
                var,
                format!(
                    "'{raw}' is not an IP address (0.0.0.0 listens on every interface, 127.0.0.1 on this machine only)"
                ),
            )
        })
    }
    fn endpoint(&self, var: &'static str, default: &str) -> Result<Url, ConfigError> {
        let raw = self.get(var).unwrap_or(default);
        parse_endpoint(var, raw)
    }
}

/// A DCR input stream name setting: `Custom-` followed by letters, digits or `_`.
fn custom_stream(v: &Vars, name: &'static str, default: &str) -> Result<String, ConfigError> {
    let stream = v.get(name).unwrap_or(default).to_string();
    let ok = stream.starts_with("Custom-")
        && stream.len() > 7
        && stream[7..].chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !ok {
        return Err(err(name, format!("'{stream}' must be Custom- followed by letters, digits or _")));
    }
    Ok(stream)
}

fn is_guid(s: &str) -> bool {
    uuid::Uuid::parse_str(s).is_ok() && s.len() == 36
}

/// Settings of relating the rule's alerts to mirrors (ARCHITECTURE.md: “Native alerts”).
#[derive(Debug, Clone)]
pub struct AlertAttachSettings {
    /// `XDRSYNC_ATTACH_ALERTS` (default off: it needs the analytics rule and Log Analytics Reader).
    pub attach: bool,
    /// `XDRSYNC_WORKSPACE_ID`: the workspace's GUID the query API addresses.
    pub workspace_id: Option<String>,
    /// `XDRSYNC_LOG_ANALYTICS_ENDPOINT`
    pub endpoint: Url,
    pub scope: String,
    /// `XDRSYNC_ALERTS_ATTACH_DELAY_MINUTES`: how far back each run looks again, for alerts the
    /// workspace stores late (ingestion and query latency).
    pub overlap: Duration,
    /// `XDRSYNC_ALERT_RULES`: how many analytics rules (shards) read the trigger table.
    pub rules: u16,
    /// `XDRSYNC_ALERT_TRIGGERS_STREAM`: the DCR input stream of trigger rows.
    pub triggers_stream: String,
}

impl Config {
    /// Reads and validates the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_vars(&std::env::vars().collect())
    }

    /// Reads and validates a settings map (same names as the environment).
    pub fn from_vars(map: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let v = Vars(map);
        let cloud = match v.get("XDRSYNC_CLOUD").map(str::to_ascii_lowercase).as_deref() {
            None | Some("public") | Some("azurecloud") => Cloud::Public,
            Some("usgov") | Some("azureusgovernment") => Cloud::UsGov,
            Some("usgovdod") | Some("dod") => Cloud::UsGovDod,
            Some(other) => {
                return Err(err("XDRSYNC_CLOUD", format!("'{other}' is not one of public, usgov, usgovdod")))
            }
        };

        // App Service leaves a Key Vault reference it cannot resolve in place as the literal text:
        // used as a key, it would be public knowledge.
        for var in ["XDRSYNC_WEBHOOK_KEY", "XDRSYNC_CLIENT_SECRET"] {
            if v.get(var).is_some_and(|s| s.starts_with("@Microsoft.KeyVault(")) {
                return Err(err(var, "is a Key Vault reference the platform could not resolve: give the app's identity Key Vault Secrets User on the vault, check the SecretUri, then restart the app"));
            }
        }

        let storage = match (v.get("AzureWebJobsStorage"), v.get("AzureWebJobsStorage__accountName")) {
            (Some(raw), _) => StorageConnection::parse(raw).map_err(|p| err("AzureWebJobsStorage", p))?,
            (None, Some(account)) => StorageConnection::identity(
                account,
                v.get("AzureWebJobsStorage__tableServiceUri"),
                v.get("AzureWebJobsStorage__queueServiceUri"),
                cloud.storage_suffix(),
            )
            .map_err(|p| err("AzureWebJobsStorage__accountName", p))?,
            (None, None) => {
                return Err(err(
                    "AzureWebJobsStorage",
                    "is not set: set a storage connection string (UseDevelopmentStorage=true for Azurite), or AzureWebJobsStorage__accountName for identity-based storage",
                ))
            }
        };

        let tenant_id =
            v.required("XDRSYNC_TENANT_ID", "set the Entra tenant id (a GUID) of the Defender tenant")?.to_string();
        if !is_guid(&tenant_id) {
            return Err(err("XDRSYNC_TENANT_ID", format!("'{tenant_id}' is not a GUID")));
        }

        let (credential, graph_credential) = credentials(&v, cloud)?;

        let workspace_raw =
            v.required("XDRSYNC_WORKSPACE_RESOURCE_ID", "set the Sentinel workspace's ARM resource id")?;
        let workspace = Workspace::parse(workspace_raw).map_err(|p| err("XDRSYNC_WORKSPACE_RESOURCE_ID", p))?;

        let logs_raw = v.required(
            "XDRSYNC_LOGS_INGESTION_ENDPOINT",
            "set the data collection endpoint (or the DCR's logsIngestion endpoint)",
        )?;
        let logs_ingestion_endpoint = parse_endpoint("XDRSYNC_LOGS_INGESTION_ENDPOINT", logs_raw)?;

        let dcr =
            v.required("XDRSYNC_DCR_IMMUTABLE_ID", "set the data collection rule's immutable id (dcr-…)")?.to_string();
        let dcr_ok = dcr.len() == 36 && dcr.starts_with("dcr-") && dcr[4..].chars().all(|c| c.is_ascii_hexdigit());
        if !dcr_ok {
            return Err(err(
                "XDRSYNC_DCR_IMMUTABLE_ID",
                format!("'{dcr}' is not a DCR immutable id (dcr- followed by 32 hex digits)"),
            ));
        }

        let dcr_resource_id = match v.get("XDRSYNC_DCR_RESOURCE_ID") {
            None => None,
            Some(id) => {
                let lower = id.to_ascii_lowercase();
                if !lower.starts_with("/subscriptions/")
                    || !lower.contains("/providers/microsoft.insights/datacollectionrules/")
                {
                    return Err(err(
                        "XDRSYNC_DCR_RESOURCE_ID",
                        format!("'{id}' is not a data collection rule's resource id (/subscriptions/…/providers/Microsoft.Insights/dataCollectionRules/<name>)"),
                    ));
                }
                Some(id.trim_end_matches('/').to_string())
            }
        };

        let alerts_stream = custom_stream(&v, "XDRSYNC_ALERTS_STREAM", "Custom-XdrsyncAlerts")?;

        let webhook_key = match v.get("XDRSYNC_WEBHOOK_KEY") {
            Some(k) => Some(SecretString::from(check_webhook_key(k).map_err(|p| err("XDRSYNC_WEBHOOK_KEY", p))?)),
            None => None,
        };

        let poll_schedule = v.get("XDRSYNC_POLL_SCHEDULE").unwrap_or(DEFAULT_SCHEDULE).to_string();
        crate::domain::schedule::Schedule::parse(&poll_schedule).map_err(|p| err("XDRSYNC_POLL_SCHEDULE", p))?;

        let table_prefix = v.get("XDRSYNC_TABLE_PREFIX").unwrap_or("xdrsync").to_string();
        let prefix_ok = table_prefix.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && table_prefix.chars().all(|c| c.is_ascii_alphanumeric())
            && table_prefix.len() <= 40;
        if !prefix_ok {
            return Err(err(
                "XDRSYNC_TABLE_PREFIX",
                format!("'{table_prefix}' must start with a letter and hold only letters and digits (≤ 40)"),
            ));
        }
        let queue_name = v.get("XDRSYNC_QUEUE_NAME").unwrap_or(QUEUE_NAME).to_string();
        if let Some(problem) = queue_name_problem(&queue_name) {
            return Err(err("XDRSYNC_QUEUE_NAME", problem));
        }

        let defender_tenants = match v.get("XDRSYNC_DEFENDER_TENANTS") {
            None => Vec::new(),
            Some(raw) => xdrsync_core::domain::tenants::parse_defender_tenants(raw)
                .map_err(|p| err("XDRSYNC_DEFENDER_TENANTS", p))?,
        };
        if !defender_tenants.is_empty() && matches!(graph_credential, GraphCredential::Azure) {
            return Err(err(
                "XDRSYNC_DEFENDER_TENANTS",
                "needs the multi-tenant app registration: set XDRSYNC_CLIENT_ID (with XDRSYNC_GRAPH_CREDENTIAL=federated, or a client secret); a managed identity alone cannot get tokens from other tenants",
            ));
        }
        let tenant_routes = match v.get("XDRSYNC_TENANT_WORKSPACES") {
            None => Vec::new(),
            Some(_) if defender_tenants.is_empty() => {
                return Err(err("XDRSYNC_TENANT_WORKSPACES", "needs XDRSYNC_DEFENDER_TENANTS (the tenants it routes)"))
            }
            Some(raw) => xdrsync_core::domain::tenants::parse_tenant_workspaces(raw, &defender_tenants)
                .map_err(|p| err("XDRSYNC_TENANT_WORKSPACES", p))?,
        };
        for endpoint in tenant_routes.iter().filter_map(|r| r.logs_endpoint.as_deref()) {
            parse_endpoint("XDRSYNC_TENANT_WORKSPACES", endpoint)?;
        }

        Ok(Config {
            defender_tenants,
            tenant_routes,
            storage,
            tenant_id: tenant_id.to_ascii_lowercase(),
            credential,
            graph_credential,
            authority_host: v.endpoint("XDRSYNC_AUTHORITY_HOST", cloud.authority())?,
            graph_endpoint: v.endpoint("XDRSYNC_GRAPH_ENDPOINT", cloud.graph())?,
            arm_endpoint: v.endpoint("XDRSYNC_ARM_ENDPOINT", cloud.arm())?,
            graph_scope: format!("{}/.default", cloud.graph()),
            arm_scope: format!("{}/.default", cloud.arm()),
            monitor_scope: format!("{}/.default", cloud.monitor()),
            workspace,
            logs_ingestion_endpoint,
            dcr_immutable_id: dcr,
            dcr_resource_id,
            alerts_stream,
            webhook_key,
            poll_schedule,
            http_port: v.number("XDRSYNC_HTTP_PORT", 8080u16, 1..=65535)?,
            http_bind: v.ip("XDRSYNC_HTTP_BIND", std::net::Ipv4Addr::UNSPECIFIED.into())?,
            table_prefix,
            queue_name,
            poll_overlap: Duration::from_secs(v.number("XDRSYNC_POLL_OVERLAP_SECONDS", 120u64, 0..=3600)?),
            initial_lookback: Duration::from_secs(
                3600 * v.number("XDRSYNC_INITIAL_LOOKBACK_HOURS", 24u64 * 30, 0..=24 * 180)?,
            ),
            max_batch_bytes: v.number("XDRSYNC_MAX_BATCH_BYTES", 1_000_000usize, 1024..=1_000_000)?,
            user_cache_ttl: Duration::from_secs(3600 * v.number("XDRSYNC_USER_CACHE_HOURS", 24u64, 0..=24 * 30)?),
            http_timeout: Duration::from_secs(v.number("XDRSYNC_HTTP_TIMEOUT_SECONDS", 30u64, 1..=600)?),
            conflict_policy: match v.get("XDRSYNC_CONFLICT_POLICY") {
                None => ConflictPolicy::LatestWins,
                Some(p) => ConflictPolicy::parse(p).ok_or_else(|| {
                    err(
                        "XDRSYNC_CONFLICT_POLICY",
                        format!("'{p}' is not one of latest-wins, defender-wins, sentinel-wins"),
                    )
                })?,
            },
            queue_visibility: Duration::from_secs(v.number("XDRSYNC_QUEUE_VISIBILITY_SECONDS", 30u64, 1..=3600)?),
            workers: v.number("XDRSYNC_WORKERS", 8usize, 1..=64)?,
            mirror_sentinel_incidents: v.flag("XDRSYNC_MIRROR_SENTINEL_INCIDENTS", false)?,
            graph_calls_per_minute: v.number("XDRSYNC_GRAPH_CALLS_PER_MINUTE", 120u32, 1..=60_000)?,
            arm_writes_per_second: v.number("XDRSYNC_ARM_WRITES_PER_SECOND", 8u32, 1..=1_000)?,
            arm_write_burst: v.number("XDRSYNC_ARM_WRITE_BURST", 150u32, 1..=10_000)?,
            poll_time_budget: Duration::from_secs(v.number("XDRSYNC_POLL_TIME_BUDGET_SECONDS", 240u64, 5..=3600)?),
            retry_schedule: v.seconds_list("XDRSYNC_RETRY_SCHEDULE_SECONDS", &[60, 300, 1800, 10800])?,
            alerts: AlertAttachSettings {
                attach: v.flag("XDRSYNC_ATTACH_ALERTS", false)?,
                workspace_id: match (v.flag("XDRSYNC_ATTACH_ALERTS", false)?, v.get("XDRSYNC_WORKSPACE_ID")) {
                    (_, Some(id)) if is_guid(id) => Some(id.to_ascii_lowercase()),
                    (_, Some(id)) => {
                        return Err(err(
                            "XDRSYNC_WORKSPACE_ID",
                            format!("'{id}' is not a GUID (the workspace's Workspace ID)"),
                        ))
                    }
                    (true, None) => {
                        return Err(err(
                            "XDRSYNC_WORKSPACE_ID",
                            "XDRSYNC_ATTACH_ALERTS needs the workspace's Workspace ID (a GUID, properties.customerId)",
                        ))
                    }
                    (false, None) => None,
                },
                endpoint: v.endpoint("XDRSYNC_LOG_ANALYTICS_ENDPOINT", cloud.log_analytics())?,
                scope: format!("{}/.default", cloud.log_analytics()),
                overlap: Duration::from_secs(60 * v.number("XDRSYNC_ALERTS_ATTACH_DELAY_MINUTES", 10u64, 0..=1440)?),
                rules: v.number("XDRSYNC_ALERT_RULES", 10u16, 1..=xdrsync_core::domain::alert_pacing::MAX_RULES)?,
                triggers_stream: custom_stream(&v, "XDRSYNC_ALERT_TRIGGERS_STREAM", "Custom-XdrsyncAlertTriggers")?,
            },
            defender_portal_onboarded: v.flag("XDRSYNC_DEFENDER_PORTAL_ONBOARDED", false)?,
            target: match v.get("XDRSYNC_TARGET") {
                None => Default::default(),
                Some(t) => xdrsync_core::domain::portal::SyncTarget::parse(t)
                    .ok_or_else(|| err("XDRSYNC_TARGET", format!("'{t}' is not one of sentinel, defender-portal")))?,
            },
            hunting: hunting::HuntingSettings::from_vars(map)?,
        })
    }

    /// Whether `XDRSYNC_DEFENDER_TENANTS` lists the tenants (mirrors then show their tenant).
    /// The app registration's client id, when Graph uses one (admin consent URLs).
    pub fn app_client_id(&self) -> Option<&str> {
        match &self.graph_credential {
            GraphCredential::Secret { client_id, .. }
            | GraphCredential::Federated { client_id, .. }
            | GraphCredential::Certificate { client_id, .. } => Some(client_id),
            GraphCredential::Azure => None,
        }
    }

    pub fn is_multi_tenant(&self) -> bool {
        !self.defender_tenants.is_empty()
    }

    /// The workspace's Microsoft.SecurityInsights base URL (no api-version).
    pub fn security_insights_base(&self) -> String {
        format!(
            "{}{}/providers/Microsoft.SecurityInsights",
            self.arm_endpoint.as_str().trim_end_matches('/'),
            self.workspace.resource_id()
        )
    }

    /// True when the webhook key matches (constant-time).
    pub fn webhook_key_matches(&self, presented: &str) -> bool {
        use subtle::ConstantTimeEq;
        match &self.webhook_key {
            Some(k) => k.expose_secret().as_bytes().ct_eq(presented.as_bytes()).into(),
            None => false,
        }
    }
}

/// The webhook key must reach us in the `x-xdrsync-key` header: at least 16 characters (not
/// bytes), each printable ASCII (a header value carries no other characters reliably), with no
/// space at either end (HTTP trims those). The key itself is never part of the error.
pub fn check_webhook_key(key: &str) -> Result<&str, String> {
    if key.chars().count() < 16 {
        return Err("must be at least 16 characters".into());
    }
    if !key.chars().all(|c| c == ' ' || c.is_ascii_graphic()) || key.starts_with(' ') || key.ends_with(' ') {
        return Err("must be printable ASCII (letters, digits, punctuation; spaces only inside): it travels in the x-xdrsync-key HTTP header".into());
    }
    Ok(key)
}

/// The Azure credential and the Graph credential (docs/identity.md). Azure calls always use the
/// managed identity when the platform offers one (`IDENTITY_ENDPOINT`), since that is the
/// principal holding the roles; a secret is for Graph, or for everything outside Azure.
fn credentials(v: &Vars, cloud: Cloud) -> Result<(Credential, GraphCredential), ConfigError> {
    let client_id = v.get("XDRSYNC_CLIENT_ID");
    if client_id.is_some_and(|id| !is_guid(id)) {
        // The value is not echoed: a client id that is not a GUID is often the secret.
        return Err(err("XDRSYNC_CLIENT_ID", "is not a GUID (value not shown)"));
    }
    let secret = v.get("XDRSYNC_CLIENT_SECRET");
    let managed = match v.get("IDENTITY_ENDPOINT") {
        None => None,
        Some(endpoint) => {
            let endpoint = parse_identity_endpoint(endpoint)?;
            let header = v.required("IDENTITY_HEADER", "the managed identity endpoint needs its header secret")?;
            let client_id = v.get("XDRSYNC_MANAGED_IDENTITY_CLIENT_ID").map(str::to_string);
            if let Some(id) = client_id.as_deref().filter(|id| !is_guid(id)) {
                return Err(err("XDRSYNC_MANAGED_IDENTITY_CLIENT_ID", format!("'{id}' is not a GUID")));
            }
            Some(Credential::ManagedIdentity { endpoint, header: SecretString::from(header.to_string()), client_id })
        }
    };
    let kind = match v.get("XDRSYNC_GRAPH_CREDENTIAL").map(str::to_ascii_lowercase) {
        Some(k) if ["managed-identity", "federated", "secret", "certificate"].contains(&k.as_str()) => k,
        Some(other) => {
            return Err(err(
                "XDRSYNC_GRAPH_CREDENTIAL",
                format!("'{other}' is not one of managed-identity, federated, secret, certificate"),
            ))
        }
        None if secret.is_some() => "secret".into(),
        None if v.get("XDRSYNC_CLIENT_CERTIFICATE_PATH").is_some() => "certificate".into(),
        None if client_id.is_some() && managed.is_some() => "federated".into(),
        None => "managed-identity".into(),
    };
    let app_id = |why: &str| {
        client_id.map(str::to_string).ok_or_else(|| {
            err("XDRSYNC_CLIENT_ID", format!("is not set: {why} needs the app registration's client id"))
        })
    };
    let graph = match kind.as_str() {
        "secret" => GraphCredential::Secret {
            client_id: app_id("a client secret")?,
            secret: SecretString::from(
                v.required(
                    "XDRSYNC_CLIENT_SECRET",
                    "XDRSYNC_GRAPH_CREDENTIAL=secret needs the app registration's client secret",
                )?
                .to_string(),
            ),
        },
        "certificate" => {
            if secret.is_some() {
                return Err(err(
                    "XDRSYNC_CLIENT_SECRET",
                    "is set but XDRSYNC_GRAPH_CREDENTIAL=certificate uses no secret: remove it",
                ));
            }
            let path = v.required(
                "XDRSYNC_CLIENT_CERTIFICATE_PATH",
                "XDRSYNC_GRAPH_CREDENTIAL=certificate needs the PEM file with the app registration's private key and certificate",
            )?;
            let certificate = ClientCertificate::load(std::path::Path::new(path))
                .map_err(|e| err("XDRSYNC_CLIENT_CERTIFICATE_PATH", e))?;
            GraphCredential::Certificate {
                client_id: app_id("a certificate credential")?,
                certificate: Arc::new(certificate),
            }
        }
        "federated" => {
            if secret.is_some() {
                return Err(err(
                    "XDRSYNC_CLIENT_SECRET",
                    "is set but XDRSYNC_GRAPH_CREDENTIAL=federated uses no secret: remove it (and its Key Vault secret)",
                ));
            }
            if managed.is_none() {
                return Err(err(
                    "XDRSYNC_GRAPH_CREDENTIAL",
                    "is federated but no managed identity is available (IDENTITY_ENDPOINT is empty): outside Azure use a client secret",
                ));
            }
            let audience = v.get("XDRSYNC_FEDERATED_AUDIENCE").unwrap_or(cloud.token_exchange_audience()).to_string();
            GraphCredential::Federated { client_id: app_id("a federated credential")?, audience }
        }
        _ => {
            if secret.is_some() {
                return Err(err(
                    "XDRSYNC_CLIENT_SECRET",
                    "is set but XDRSYNC_GRAPH_CREDENTIAL=managed-identity uses no secret: remove it, or set XDRSYNC_GRAPH_CREDENTIAL=secret",
                ));
            }
            GraphCredential::Azure
        }
    };
    let azure = match (managed, &graph) {
        (Some(mi), _) => mi,
        (None, GraphCredential::Secret { client_id, secret }) => {
            Credential::ClientSecret { client_id: client_id.clone(), secret: secret.clone() }
        }
        (None, GraphCredential::Certificate { client_id, certificate }) => {
            Credential::ClientCertificate { client_id: client_id.clone(), certificate: certificate.clone() }
        }
        (None, _) => return Err(err(
            "XDRSYNC_CLIENT_SECRET",
            "is not set and no managed identity is available (IDENTITY_ENDPOINT is empty); set XDRSYNC_CLIENT_ID and XDRSYNC_CLIENT_SECRET (or XDRSYNC_CLIENT_CERTIFICATE_PATH), or enable the Function App's managed identity",
        )),
    };
    Ok((azure, graph))
}

fn parse_identity_endpoint(raw: &str) -> Result<Url, ConfigError> {
    // App Service's identity endpoint is a local http URL by design, so only the scheme is checked.
    let url = Url::parse(raw).map_err(|e| err("IDENTITY_ENDPOINT", format!("'{raw}' is not a URL ({e})")))?;
    refuse_credentials(&url).map_err(|p| err("IDENTITY_ENDPOINT", p))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(err("IDENTITY_ENDPOINT", format!("'{raw}' must be an http(s) URL")));
    }
    Ok(url)
}

/// Why `name` cannot be xdrsync's queue, or `None`. Storage's rules (Learn, "Naming Queues and
/// Metadata"): 3-63 characters, lowercase letters, digits and dashes, first and last character a
/// letter or digit, no two dashes in a row. The poison queue the host (and standalone mode)
/// derives, `<name>-poison`, must obey them too, or the queue service refuses it at run time.
fn queue_name_problem(name: &str) -> Option<String> {
    let valid = |n: &str| {
        (3..=63).contains(&n.len())
            && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !n.starts_with('-')
            && !n.ends_with('-')
            && !n.contains("--")
    };
    if !valid(name) {
        return Some(format!(
            "'{name}' is not a valid queue name (3-63 lowercase letters, digits and single dashes, starting and ending with a letter or digit)"
        ));
    }
    let poison = format!("{name}-poison");
    (!valid(&poison)).then(|| {
        format!("'{name}' is too long: its poison queue '{poison}' must be a valid queue name too (at most 63 characters), so at most 56 characters")
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn base_vars() -> HashMap<String, String> {
        [
            ("AzureWebJobsStorage", "UseDevelopmentStorage=true"),
            ("XDRSYNC_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47"),
            ("XDRSYNC_CLIENT_ID", "11111111-2222-3333-4444-555555555555"),
            ("XDRSYNC_CLIENT_SECRET", "super-secret-value-123"),
            ("XDRSYNC_WORKSPACE_RESOURCE_ID", "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-soc/providers/Microsoft.OperationalInsights/workspaces/soc-ws"),
            ("XDRSYNC_LOGS_INGESTION_ENDPOINT", "https://dce-x.westeurope-1.ingest.monitor.azure.com"),
            ("XDRSYNC_DCR_IMMUTABLE_ID", "dcr-000a00a000a00000a000000aa000a0aa"),
            ("XDRSYNC_WEBHOOK_KEY", "webhook-key-0123456789"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn with(overrides: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut m = base_vars();
        for (k, v) in overrides {
            m.insert(k.to_string(), v.to_string());
        }
        Config::from_vars(&m)
    }

    #[test]
    fn queue_name_and_its_poison_queue_follow_storage_naming_rules() {
        let ok56 = "q".repeat(56);
        assert_eq!(with(&[("XDRSYNC_QUEUE_NAME", &ok56)]).unwrap().queue_name, ok56);
        for bad in ["ab", "Upper", "a--b", "-ab", "abc-", &"q".repeat(57), &"q".repeat(63), &"q".repeat(64)] {
            let e = with(&[("XDRSYNC_QUEUE_NAME", bad)]).unwrap_err();
            assert_eq!(e.var, "XDRSYNC_QUEUE_NAME", "{bad}");
        }
        let e = with(&[("XDRSYNC_QUEUE_NAME", &"q".repeat(60))]).unwrap_err();
        assert!(e.problem.contains("-poison") && e.problem.contains("56"), "{}", e.problem);
    }

    #[test]
    fn the_arm_write_budget_is_a_burst_and_a_refill_and_the_old_setting_keeps_working() {
        let d = with(&[]).unwrap();
        assert_eq!((d.arm_write_burst, d.arm_writes_per_second), (150, 8));
        // Set before the burst existed: still the refill, the burst keeps its default.
        let old = with(&[("XDRSYNC_ARM_WRITES_PER_SECOND", "5")]).unwrap();
        assert_eq!((old.arm_write_burst, old.arm_writes_per_second), (150, 5));
        for bad in ["0", "-1", "many"] {
            assert_eq!(with(&[("XDRSYNC_ARM_WRITE_BURST", bad)]).unwrap_err().var, "XDRSYNC_ARM_WRITE_BURST", "{bad}");
        }
    }

    #[test]
    fn defaults_are_the_public_cloud() {
        let c = with(&[]).unwrap();
        assert_eq!(c.graph_endpoint.as_str(), "https://graph.microsoft.com/");
        assert_eq!(c.arm_scope, "https://management.azure.com/.default");
        assert_eq!(c.monitor_scope, "https://monitor.azure.com/.default");
        assert_eq!(c.poll_schedule, "*/30 * * * * *");
        assert_eq!(c.queue_name, "xdrsync-incidents");
        assert_eq!(c.initial_lookback, Duration::from_secs(30 * 24 * 3600), "first backfill: 30 days");
    }

    #[test]
    fn us_gov_preset_changes_defaults() {
        let c = with(&[("XDRSYNC_CLOUD", "usgov")]).unwrap();
        assert_eq!(c.authority_host.as_str(), "https://login.microsoftonline.us/");
        assert_eq!(c.graph_scope, "https://graph.microsoft.us/.default");
    }

    #[test]
    fn plain_http_only_on_loopback() {
        assert!(with(&[("XDRSYNC_GRAPH_ENDPOINT", "http://127.0.0.1:9000")]).is_ok());
        assert!(with(&[("XDRSYNC_GRAPH_ENDPOINT", "http://localhost:9000")]).is_ok());
        let e = with(&[("XDRSYNC_GRAPH_ENDPOINT", "http://graph.example.com")]).unwrap_err();
        assert_eq!(e.var, "XDRSYNC_GRAPH_ENDPOINT");
        assert!(e.problem.contains("https"));
    }

    #[test]
    fn target_defaults_to_sentinel_and_rejects_other_values() {
        use xdrsync_core::domain::portal::SyncTarget;
        assert_eq!(with(&[]).unwrap().target, SyncTarget::Sentinel);
        assert_eq!(with(&[("XDRSYNC_TARGET", "defender-portal")]).unwrap().target, SyncTarget::DefenderPortal);
        assert_eq!(with(&[("XDRSYNC_TARGET", "defender")]).unwrap_err().var, "XDRSYNC_TARGET");
    }

    #[test]
    fn errors_name_the_variable() {
        let mut m = base_vars();
        m.remove("XDRSYNC_TENANT_ID");
        assert_eq!(Config::from_vars(&m).unwrap_err().var, "XDRSYNC_TENANT_ID");
        assert_eq!(with(&[("XDRSYNC_DCR_IMMUTABLE_ID", "dcr-nothex")]).unwrap_err().var, "XDRSYNC_DCR_IMMUTABLE_ID");
        assert_eq!(with(&[("XDRSYNC_POLL_SCHEDULE", "every minute")]).unwrap_err().var, "XDRSYNC_POLL_SCHEDULE");
        assert_eq!(
            with(&[("XDRSYNC_WORKSPACE_RESOURCE_ID", "/subscriptions/x")]).unwrap_err().var,
            "XDRSYNC_WORKSPACE_RESOURCE_ID"
        );
        assert_eq!(with(&[("XDRSYNC_HTTP_PORT", "0")]).unwrap_err().var, "XDRSYNC_HTTP_PORT");
        assert_eq!(with(&[("XDRSYNC_CONFLICT_POLICY", "coin-flip")]).unwrap_err().var, "XDRSYNC_CONFLICT_POLICY");
        assert_eq!(
            with(&[("XDRSYNC_CONFLICT_POLICY", "Sentinel-Wins")]).unwrap().conflict_policy,
            ConflictPolicy::SentinelWins
        );
    }

    #[test]
    fn http_bind_is_an_ip_address_defaulting_to_every_interface() {
        use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
        assert_eq!(with(&[]).unwrap().http_bind, IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        assert_eq!(with(&[("XDRSYNC_HTTP_BIND", "127.0.0.1")]).unwrap().http_bind, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(with(&[("XDRSYNC_HTTP_BIND", " ::1 ")]).unwrap().http_bind, IpAddr::V6(Ipv6Addr::LOCALHOST));
        for bad in ["localhost", "10.0.0.300", "0.0.0.0:8080"] {
            let e = with(&[("XDRSYNC_HTTP_BIND", bad)]).unwrap_err();
            assert_eq!(e.var, "XDRSYNC_HTTP_BIND", "{bad}");
            assert!(e.to_string().starts_with("XDRSYNC_HTTP_BIND: "), "{e}");
            assert!(e.problem.contains(bad) && e.problem.contains("IP address"), "{e}");
        }
    }

    #[test]
    fn managed_identity_when_no_secret() {
        let mut m = base_vars();
        m.remove("XDRSYNC_CLIENT_SECRET");
        assert_eq!(Config::from_vars(&m).unwrap_err().var, "XDRSYNC_CLIENT_SECRET");
        m.insert("IDENTITY_ENDPOINT".into(), "http://169.254.129.2:8081/msi/token".into());
        m.insert("IDENTITY_HEADER".into(), "mi-header-secret-value".into());
        m.insert("XDRSYNC_MANAGED_IDENTITY_CLIENT_ID".into(), "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee".into());
        let c = Config::from_vars(&m).unwrap();
        assert!(matches!(c.credential, Credential::ManagedIdentity { client_id: Some(_), .. }));
        assert!(!format!("{c:?}").contains("mi-header-secret-value"));
    }

    #[test]
    fn azure_calls_use_the_managed_identity_whatever_graph_uses() {
        let mi = [
            ("IDENTITY_ENDPOINT", "http://169.254.129.2:8081/msi/token"),
            ("IDENTITY_HEADER", "mi-header-secret-value"),
            ("XDRSYNC_MANAGED_IDENTITY_CLIENT_ID", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"),
        ];
        // Secret + managed identity: Graph uses the secret, Azure the identity.
        let c = with(&mi).unwrap();
        assert!(matches!(c.credential, Credential::ManagedIdentity { .. }));
        assert!(matches!(c.graph_credential, GraphCredential::Secret { .. }));
        // Client id without a secret in Azure: the federated credential, the cloud's audience.
        let mut m = base_vars();
        m.remove("XDRSYNC_CLIENT_SECRET");
        m.extend(mi.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        m.insert("XDRSYNC_DEFENDER_TENANTS".into(), "1f2e3d4c-0000-0000-0000-000000000001".into());
        let c = Config::from_vars(&m).unwrap();
        assert!(matches!(c.credential, Credential::ManagedIdentity { .. }));
        match &c.graph_credential {
            GraphCredential::Federated { client_id, audience } => {
                assert_eq!(client_id, "11111111-2222-3333-4444-555555555555");
                assert_eq!(audience, "api://AzureADTokenExchange");
            }
            other => panic!("{other:?}"),
        }
        m.insert("XDRSYNC_CLOUD".into(), "usgov".into());
        let c = Config::from_vars(&m).unwrap();
        assert!(
            matches!(&c.graph_credential, GraphCredential::Federated { audience, .. } if audience == "api://AzureADTokenExchangeUSGov")
        );
        // The managed identity alone cannot reach other tenants.
        m.insert("XDRSYNC_GRAPH_CREDENTIAL".into(), "managed-identity".into());
        assert_eq!(Config::from_vars(&m).unwrap_err().var, "XDRSYNC_DEFENDER_TENANTS");
        m.remove("XDRSYNC_DEFENDER_TENANTS");
        assert!(matches!(Config::from_vars(&m).unwrap().graph_credential, GraphCredential::Azure));
    }

    #[test]
    fn each_credential_kind_refuses_what_it_cannot_use() {
        let e = with(&[("XDRSYNC_GRAPH_CREDENTIAL", "kerberos")]).unwrap_err();
        assert_eq!(e.var, "XDRSYNC_GRAPH_CREDENTIAL");
        // A certificate with a secret still set: the secret must go.
        let e = with(&[("XDRSYNC_GRAPH_CREDENTIAL", "certificate")]).unwrap_err();
        assert_eq!(e.var, "XDRSYNC_CLIENT_SECRET");
        // Federated outside Azure: no managed identity to assert with.
        let mut m = base_vars();
        m.remove("XDRSYNC_CLIENT_SECRET");
        m.insert("XDRSYNC_GRAPH_CREDENTIAL".into(), "federated".into());
        let e = Config::from_vars(&m).unwrap_err();
        assert!(e.var == "XDRSYNC_GRAPH_CREDENTIAL" && e.problem.contains("IDENTITY_ENDPOINT"), "{e}");
        // A forgotten secret next to a federated credential is refused, value not shown.
        m.insert("IDENTITY_ENDPOINT".into(), "http://169.254.129.2:8081/msi/token".into());
        m.insert("IDENTITY_HEADER".into(), "h".into());
        m.insert("XDRSYNC_CLIENT_SECRET".into(), "super-secret-value-123".into());
        let e = Config::from_vars(&m).unwrap_err();
        assert_eq!(e.var, "XDRSYNC_CLIENT_SECRET");
        assert!(!e.problem.contains("super-secret-value-123"));
        // Federated without the app registration's id.
        m.remove("XDRSYNC_CLIENT_SECRET");
        m.remove("XDRSYNC_CLIENT_ID");
        assert_eq!(Config::from_vars(&m).unwrap_err().var, "XDRSYNC_CLIENT_ID");
        // Secret kind without a secret.
        let mut m = base_vars();
        m.remove("XDRSYNC_CLIENT_SECRET");
        m.insert("XDRSYNC_GRAPH_CREDENTIAL".into(), "secret".into());
        assert_eq!(Config::from_vars(&m).unwrap_err().var, "XDRSYNC_CLIENT_SECRET");
    }

    #[test]
    fn debug_output_redacts_every_secret() {
        let mut m = base_vars();
        m.insert(
            "AzureWebJobsStorage".into(),
            "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=not-a-real-account-key-only-for-the-redaction-test;EndpointSuffix=core.windows.net".into(),
        );
        let c = Config::from_vars(&m).unwrap();
        let dbg = format!("{c:?} {:?} {:?}", c.credential, c.storage);
        for secret in ["super-secret-value-123", "webhook-key-0123456789", "not-a-real-account-key"] {
            assert!(!dbg.contains(secret), "Debug leaked {secret}: {dbg}");
        }
        assert!(dbg.contains("[redacted]"));
    }

    #[test]
    fn defender_tenants_and_routes_are_validated_naming_the_setting() {
        let a = "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9";
        let ws2 = "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/ws2";
        assert!(!with(&[]).unwrap().is_multi_tenant(), "unset: one tenant, as before");
        let c = with(&[
            ("XDRSYNC_DEFENDER_TENANTS", &format!("{a}=Contoso")),
            ("XDRSYNC_TENANT_WORKSPACES", &format!("{a}={ws2}")),
        ])
        .unwrap();
        assert!(c.is_multi_tenant());
        assert_eq!(c.defender_tenants[0].display_name, "Contoso");
        assert_eq!(c.tenant_routes[0].workspace.name, "ws2");
        let plain = format!("{a}={ws2}|dcr-0123456789abcdef0123456789abcdef|http://dce.example.com");
        let e = with(&[("XDRSYNC_DEFENDER_TENANTS", &format!("{a}=Contoso")), ("XDRSYNC_TENANT_WORKSPACES", &plain)])
            .unwrap_err();
        assert!(e.var == "XDRSYNC_TENANT_WORKSPACES" && e.to_string().contains("https"), "{e}");
        for (set, value) in [
            ("XDRSYNC_DEFENDER_TENANTS", "contoso"),
            ("XDRSYNC_DEFENDER_TENANTS", ","),
            ("XDRSYNC_TENANT_WORKSPACES", "nope"),
        ] {
            let e = with(&[("XDRSYNC_DEFENDER_TENANTS", &format!("{a}=Contoso")), (set, value)]).unwrap_err();
            assert_eq!(e.var, set, "{e}");
        }
        let e = with(&[("XDRSYNC_TENANT_WORKSPACES", &format!("{a}={ws2}"))]).unwrap_err();
        assert_eq!(e.var, "XDRSYNC_TENANT_WORKSPACES");
        let mut m = base_vars();
        m.remove("XDRSYNC_CLIENT_SECRET");
        m.remove("XDRSYNC_CLIENT_ID");
        m.insert("IDENTITY_ENDPOINT".into(), "http://169.254.129.2:8081/msi/token".into());
        m.insert("IDENTITY_HEADER".into(), "mi-header-secret-value".into());
        m.insert("XDRSYNC_DEFENDER_TENANTS".into(), a.into());
        assert_eq!(
            Config::from_vars(&m).unwrap_err().var,
            "XDRSYNC_DEFENDER_TENANTS",
            "other tenants need the app registration"
        );
    }

    #[test]
    fn webhook_key_compare() {
        let c = with(&[]).unwrap();
        assert!(c.webhook_key_matches("webhook-key-0123456789"));
        assert!(!c.webhook_key_matches("webhook-key-012345678"));
        assert!(!c.webhook_key_matches(""));
        assert!(with(&[("XDRSYNC_WEBHOOK_KEY", "short")]).is_err());
    }

    #[test]
    fn a_webhook_key_is_counted_in_characters_and_must_fit_a_header() {
        // 16 characters, more bytes: long enough, but not header-safe.
        let accented = "clé-de-webhook-é";
        assert_eq!(accented.chars().count(), 16);
        let e = with(&[("XDRSYNC_WEBHOOK_KEY", accented)]).unwrap_err();
        assert_eq!(e.var, "XDRSYNC_WEBHOOK_KEY");
        assert!(e.to_string().contains("printable ASCII") && !e.to_string().contains(accented), "{e}");
        // 15 characters in 17 bytes is short, whatever its bytes.
        let e = with(&[("XDRSYNC_WEBHOOK_KEY", "ééabcdefghijklm")]).unwrap_err();
        assert!(e.to_string().contains("at least 16 characters"), "{e}");
        // Settings are trimmed; what is left inside must travel in a header.
        for bad in ["webhook-key\n0123456789", "webhook\tkey-0123456789", "webhook-key-01234567\u{7f}89"] {
            assert!(with(&[("XDRSYNC_WEBHOOK_KEY", bad)]).is_err(), "{bad:?}");
        }
        assert!(with(&[("XDRSYNC_WEBHOOK_KEY", "webhook key 0123456789!#$%")]).is_ok());
    }

    #[test]
    fn an_endpoint_with_a_user_name_or_password_is_refused_without_printing_it() {
        for (var, url) in [
            ("XDRSYNC_GRAPH_ENDPOINT", "https://user:hunter2@graph.microsoft.com"),
            ("XDRSYNC_ARM_ENDPOINT", "https://token@management.azure.com"),
            ("XDRSYNC_LOGS_INGESTION_ENDPOINT", "https://:hunter2@dce-x.westeurope-1.ingest.monitor.azure.com"),
            ("XDRSYNC_LOG_ANALYTICS_ENDPOINT", "https://u:hunter2@api.loganalytics.io"),
            ("XDRSYNC_GRAPH_ENDPOINT", "http://u:hunter2@127.0.0.1:9000"),
        ] {
            let e = with(&[(var, url)]).unwrap_err();
            assert_eq!(e.var, var, "{e}");
            let text = e.to_string();
            assert!(text.contains("must not carry a user name or password"), "{text}");
            assert!(!text.contains("hunter2") && !text.contains("token@"), "{text}");
        }
    }

    #[test]
    fn identity_based_storage_reads_the_functions_settings() {
        let mut v = base_vars();
        v.remove("AzureWebJobsStorage");
        v.insert("AzureWebJobsStorage__accountName".into(), "socstore".into());
        let c = Config::from_vars(&v).unwrap();
        assert!(c.storage.key.is_none(), "a token, not a key");
        assert_eq!(c.storage.queue_endpoint.as_str(), "https://socstore.queue.core.windows.net/");
        v.insert("XDRSYNC_CLOUD".into(), "usgov".into());
        v.insert("AzureWebJobsStorage__tableServiceUri".into(), "https://socstore.table.core.usgovcloudapi.net".into());
        let c = Config::from_vars(&v).unwrap();
        assert_eq!(c.storage.table_endpoint.as_str(), "https://socstore.table.core.usgovcloudapi.net/");
        assert_eq!(c.storage.queue_endpoint.as_str(), "https://socstore.queue.core.usgovcloudapi.net/");
        v.remove("AzureWebJobsStorage__accountName");
        let e = Config::from_vars(&v).unwrap_err();
        assert!(e.to_string().contains("AzureWebJobsStorage__accountName"), "{e}");
    }
}
