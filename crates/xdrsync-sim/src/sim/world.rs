//! The simulator's data: Defender incidents and alerts, Sentinel incidents with comments and
//! relations, ingested log rows, issued tokens and directory users, all in the simulator's own
//! model (`model.rs`). Timestamps are cut to 100 ns (Graph's precision) and strictly increase, as
//! a single service clock would.
//!
//! Lists never break ties by id: records carry their insertion sequence, and records whose sort
//! keys are equal come out in insertion order or in a seeded shuffle ([`TieOrder`]), so a client
//! that relies on ids to order equal timestamps is caught.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::model::{GraphAlert, GraphIncident, SentinelRecord};
use super::SimConfig;

/// Token audiences the simulator issues.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    Graph,
    Arm,
    Monitor,
    LogAnalytics,
    /// `api://AzureADTokenExchange`: a managed identity's token presented as a federated
    /// credential's client assertion.
    TokenExchange,
}

impl Audience {
    /// From a v2 `scope` (`…/.default`) or a managed-identity `resource`.
    pub fn from_scope_or_resource(s: &str) -> Option<Self> {
        let r = s.trim_end_matches("/.default").trim_end_matches('/').to_ascii_lowercase();
        match r.as_str() {
            "https://graph.microsoft.com" => Some(Audience::Graph),
            "https://management.azure.com" | "https://management.core.windows.net" => Some(Audience::Arm),
            "https://monitor.azure.com" => Some(Audience::Monitor),
            "https://api.loganalytics.io" => Some(Audience::LogAnalytics),
            "api://azureadtokenexchange" => Some(Audience::TokenExchange),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct IssuedToken {
    pub audience: Audience,
    pub expires: OffsetDateTime,
    pub app_id: String,
    /// The `roles` claim: Graph application roles granted when the token was issued.
    pub roles: BTreeSet<String>,
    /// Every grant as it stood when the token was issued: a role granted later is not in this
    /// token (the service keeps refusing it until the client fetches a new one).
    pub permissions: super::permissions::Permissions,
}

/// How records whose sort keys are equal are ordered in list answers. Neither breaks ties by id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum TieOrder {
    /// In the order the records were created.
    Insertion,
    /// A fixed pseudo-random permutation of the records, from `seed` (stable across pages).
    Shuffled { seed: u64 },
}

impl TieOrder {
    /// The secondary sort key of a record created `seq`-th.
    pub fn key(self, seq: u64) -> u64 {
        match self {
            TieOrder::Insertion => seq,
            TieOrder::Shuffled { seed } => {
                // splitmix64
                let mut z = seed.wrapping_add(seq.wrapping_mul(0x9E37_79B9_7F4A_7C15));
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^ (z >> 31)
            }
        }
    }
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

pub struct World {
    pub incidents: BTreeMap<u64, GraphIncident>,
    pub alerts: BTreeMap<String, GraphAlert>,
    pub next_incident_id: u64,
    /// Makes every alert id unique, whatever the random generator produces.
    pub next_alert_seq: u64,
    pub sentinel: BTreeMap<Uuid, SentinelRecord>,
    pub next_incident_number: i64,
    pub logs: BTreeMap<String, Vec<Value>>,
    pub tokens: HashMap<String, IssuedToken>,
    pub users: Vec<SimUser>,
    /// The analytics rule's pending rows and SecurityAlerts (`alert_rule.rs`).
    pub rule: super::rule_state::RuleState,
    last_time: OffsetDateTime,
    next_seq: u64,
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
            rule: Default::default(),
            last_time: OffsetDateTime::UNIX_EPOCH,
            next_seq: 0,
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

    /// The next insertion sequence number (for the order of ties).
    pub fn next_seq(&mut self) -> u64 {
        self.next_seq += 1;
        self.next_seq
    }

    pub fn user_by_upn_or_id(&self, key: &str) -> Option<&SimUser> {
        self.users.iter().find(|u| u.user_principal_name.eq_ignore_ascii_case(key) || u.id.eq_ignore_ascii_case(key))
    }

    pub fn new_etag() -> String {
        format!("\"{}\"", Uuid::new_v4())
    }

    /// The alerts of a Defender incident, in creation order.
    pub fn alerts_of(&self, incident_id: &str) -> Vec<&GraphAlert> {
        let mut v: Vec<&GraphAlert> =
            self.alerts.values().filter(|a| a.incident_id.as_deref() == Some(incident_id)).collect();
        v.sort_by_key(|a| a.seq);
        v
    }

    /// A Defender incident by its Graph id.
    pub fn incident(&self, id: &str) -> Option<&GraphIncident> {
        id.parse::<u64>().ok().and_then(|n| self.incidents.get(&n))
    }

    pub fn incident_mut(&mut self, id: &str) -> Option<&mut GraphIncident> {
        id.parse::<u64>().ok().and_then(|n| self.incidents.get_mut(&n))
    }

    /// A Sentinel incident by its name (`incidentId`).
    pub fn sentinel_incident(&self, name: &Uuid) -> Option<&SentinelRecord> {
        self.sentinel.get(name)
    }

    /// Drops every issued token of `audience` (clients must fetch new ones).
    pub fn revoke_tokens(&mut self, audience: Audience) {
        self.tokens.retain(|_, t| t.audience != audience);
    }
}
