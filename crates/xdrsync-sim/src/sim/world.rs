//! The simulator's data: Defender incidents and alerts, Sentinel incidents with comments and
//! relations, ingested log rows, issued tokens and directory users. Timestamps are cut to
//! 100 ns (Graph's precision) and strictly increase, as a single service clock would.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::SimConfig;
use xdrsync_core::domain::defender::{DefenderAlert, DefenderIncident};
use xdrsync_core::domain::sentinel::{SentinelComment, SentinelReadOnly, SentinelWritable};

/// Token audiences the simulator issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Graph,
    Arm,
    Monitor,
}

impl Audience {
    /// From a v2 `scope` (`…/.default`) or a managed-identity `resource`.
    pub fn from_scope_or_resource(s: &str) -> Option<Self> {
        let r = s.trim_end_matches("/.default").trim_end_matches('/').to_ascii_lowercase();
        match r.as_str() {
            "https://graph.microsoft.com" => Some(Audience::Graph),
            "https://management.azure.com" | "https://management.core.windows.net" => Some(Audience::Arm),
            "https://monitor.azure.com" => Some(Audience::Monitor),
            _ => None,
        }
    }
}

pub struct IssuedToken {
    pub audience: Audience,
    pub expires: OffsetDateTime,
    pub app_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SimUser {
    pub id: String,
    pub user_principal_name: String,
    pub display_name: String,
    pub mail: String,
}

impl SimUser {
    pub fn new(upn: &str, display_name: &str) -> Self {
        Self {
            id: Uuid::new_v5(&Uuid::NAMESPACE_DNS, upn.to_ascii_lowercase().as_bytes()).to_string(),
            user_principal_name: upn.to_string(),
            display_name: display_name.to_string(),
            mail: upn.to_string(),
        }
    }
}

/// A Sentinel incident as the simulator stores it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SentinelRecord {
    pub writable: SentinelWritable,
    pub read_only: SentinelReadOnly,
    pub etag: String,
    pub comments: BTreeMap<Uuid, SentinelComment>,
    pub relations: BTreeMap<String, Value>,
    /// How many times a client PUT this incident (create included).
    pub writes: u64,
}

pub struct World {
    pub incidents: BTreeMap<u64, DefenderIncident>,
    pub alerts: BTreeMap<String, DefenderAlert>,
    pub next_incident_id: u64,
    /// Makes every alert id unique, whatever the random generator produces.
    pub next_alert_seq: u64,
    pub sentinel: BTreeMap<Uuid, SentinelRecord>,
    pub next_incident_number: i64,
    pub logs: BTreeMap<String, Vec<Value>>,
    pub tokens: HashMap<String, IssuedToken>,
    pub users: Vec<SimUser>,
    last_time: OffsetDateTime,
}

impl World {
    pub fn new(_config: &SimConfig) -> Self {
        let users = [
            ("alice@contoso.com", "Alice Analyst"),
            ("bob@contoso.com", "Bob Responder"),
            ("carol@contoso.com", "Carol Hunter"),
            ("dave@contoso.com", "Dave Lead"),
            ("erin@contoso.com", "Erin Engineer"),
        ]
        .into_iter()
        .map(|(u, n)| SimUser::new(u, n))
        .collect();
        Self {
            incidents: BTreeMap::new(),
            alerts: BTreeMap::new(),
            next_incident_id: 1001,
            next_alert_seq: 1,
            sentinel: BTreeMap::new(),
            next_incident_number: 1,
            logs: BTreeMap::new(),
            tokens: HashMap::new(),
            users,
            last_time: OffsetDateTime::UNIX_EPOCH,
        }
    }

    /// The service clock: now, at 100 ns precision, strictly after the previous reading.
    pub fn now(&mut self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        let now = now.replace_nanosecond(now.nanosecond() / 100 * 100).unwrap_or(now);
        let t = if now > self.last_time { now } else { self.last_time + Duration::nanoseconds(100) };
        self.last_time = t;
        t
    }

    pub fn user_by_upn_or_id(&self, key: &str) -> Option<&SimUser> {
        self.users.iter().find(|u| u.user_principal_name.eq_ignore_ascii_case(key) || u.id.eq_ignore_ascii_case(key))
    }

    pub fn new_etag() -> String {
        format!("\"{}\"", Uuid::new_v4())
    }

    pub fn alerts_of(&self, incident_id: &str) -> Vec<&DefenderAlert> {
        self.alerts.values().filter(|a| a.incident_id.as_deref() == Some(incident_id)).collect()
    }

    pub fn incident(&self, id: &str) -> Option<&DefenderIncident> {
        id.parse::<u64>().ok().and_then(|n| self.incidents.get(&n))
    }

    pub fn incident_mut(&mut self, id: &str) -> Option<&mut DefenderIncident> {
        id.parse::<u64>().ok().and_then(|n| self.incidents.get_mut(&n))
    }
}
