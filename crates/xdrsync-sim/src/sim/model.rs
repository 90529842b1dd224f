//! What the simulated services store and send, written from the public documentation and never
//! from xdrsync's own structs: a product modelling mistake must show up as a failed test, not be
//! mirrored by a simulator that speaks the product's dialect.
//!
//! Sources (property names and enum members are verbatim):
//! - Graph v1.0 `microsoft.graph.security.incident`, `alert`, `alertComment` resource pages and the
//!   incident update page (microsoft-graph-docs-contrib, `api-reference/v1.0/resources/security-*.md`,
//!   `api-reference/v1.0/api/security-incident-update.md`).
//! - Sentinel `Incident`, `IncidentProperties`, `IncidentLabel`, `IncidentOwnerInfo`,
//!   `IncidentComment` definitions (azure-rest-api-specs,
//!   `specification/securityinsights/resource-manager/Microsoft.SecurityInsights/stable/2025-09-01/Incidents.json`
//!   and `common/IncidentTypes.json`), including which properties are `readOnly`.
//!
//! Enum values are stored in the documented spelling (Graph camelCase, Sentinel PascalCase).
//! Incoming values are matched case-insensitively, because the Graph documentation's own request
//! examples send PascalCase (`"TruePositive"`) and ARM's JSON enum converter is case-insensitive
//! (assumed, not documented).

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::timefmt;

/// Documented enum members.
pub mod vocab {
    /// `incidentStatus`. `awaitingAction` comes after `unknownFutureValue`: Graph sends it only with
    /// `Prefer: include-unknown-enum-members`.
    pub const INCIDENT_STATUS: &[&str] =
        &["active", "resolved", "inProgress", "redirected", "unknownFutureValue", "awaitingAction"];
    /// Statuses the update page lists as settable.
    pub const INCIDENT_STATUS_SETTABLE: &[&str] = &["active", "resolved", "redirected"];
    /// `alertStatus` (alerts v2).
    pub const ALERT_STATUS: &[&str] = &["unknown", "new", "inProgress", "resolved", "unknownFutureValue"];
    /// `alertSeverity`.
    pub const SEVERITY: &[&str] = &["unknown", "informational", "low", "medium", "high", "unknownFutureValue"];
    /// `alertClassification`.
    pub const CLASSIFICATION: &[&str] =
        &["unknown", "falsePositive", "truePositive", "informationalExpectedActivity", "unknownFutureValue"];
    /// `alertDetermination`: the resource page's and the update page's members (they differ).
    pub const DETERMINATION: &[&str] = &[
        "unknown",
        "apt",
        "malware",
        "securityPersonnel",
        "securityTesting",
        "unwantedSoftware",
        "other",
        "multiStagedAttack",
        "compromisedUser",
        "compromisedAccount",
        "phishing",
        "maliciousUserActivity",
        "clean",
        "notMalicious",
        "insufficientData",
        "notEnoughDataToValidate",
        "confirmedActivity",
        "confirmedUserActivity",
        "lineOfBusinessApplication",
        "unknownFutureValue",
    ];
    /// `serviceSource` members after `unknownFutureValue` (need the Prefer header).
    pub const SERVICE_SOURCE_EVOLVABLE: &[&str] = &["microsoftDefenderForCloud", "microsoftSentinel"];

    pub const SENTINEL_SEVERITY: &[&str] = &["High", "Medium", "Low", "Informational"];
    pub const SENTINEL_STATUS: &[&str] = &["New", "Active", "Closed"];
    pub const SENTINEL_CLASSIFICATION: &[&str] = &["Undetermined", "TruePositive", "BenignPositive", "FalsePositive"];
    pub const SENTINEL_CLASSIFICATION_REASON: &[&str] =
        &["SuspiciousActivity", "SuspiciousButExpected", "IncorrectAlertLogic", "InaccurateData"];
    pub const OWNER_TYPE: &[&str] = &["Unknown", "User", "Group"];

    /// The documented spelling of `value`, matched case-insensitively.
    pub fn canonical(value: &str, members: &[&'static str]) -> Option<&'static str> {
        members.iter().copied().find(|m| m.eq_ignore_ascii_case(value))
    }
}

// ------------------------------------------------------------------------------------------------
// Graph

/// `microsoft.graph.security.alertComment`.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphComment {
    pub comment: String,
    pub created_by_display_name: String,
    pub created_date_time: OffsetDateTime,
}

impl GraphComment {
    pub fn to_json(&self) -> Value {
        json!({
            "comment": self.comment,
            "createdByDisplayName": self.created_by_display_name,
            "createdDateTime": timefmt::format(self.created_date_time),
        })
    }
}

/// How a Graph answer is rendered for one request.
#[derive(Debug, Clone, Copy, Default)]
pub struct GraphView {
    /// The caller sent `Prefer: include-unknown-enum-members`.
    pub evolvable: bool,
    /// `comments` newest first (the simulator's option; the default is oldest first).
    pub comments_newest_first: bool,
}

/// `microsoft.graph.security.incident` as the simulated tenant holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphIncident {
    pub id: String,
    pub tenant_id: String,
    pub display_name: String,
    pub description: Option<String>,
    pub summary: Option<String>,
    pub created_date_time: OffsetDateTime,
    pub last_update_date_time: OffsetDateTime,
    /// An `incidentStatus` member (`active`, `resolved`, …).
    pub status: String,
    /// An `alertSeverity` member.
    pub severity: String,
    pub assigned_to: Option<String>,
    /// An `alertClassification` member (`unknown` when not set).
    pub classification: String,
    /// An `alertDetermination` member (`unknown` when not set).
    pub determination: String,
    pub custom_tags: Vec<String>,
    pub system_tags: Vec<String>,
    pub incident_web_url: String,
    pub redirect_incident_id: Option<String>,
    pub resolving_comment: Option<String>,
    pub last_modified_by: Option<String>,
    pub priority_score: Option<i64>,
    /// Oldest first, as they were added.
    pub comments: Vec<GraphComment>,
    /// Insertion order in the world (for the order of ties in lists).
    pub seq: u64,
}

impl GraphIncident {
    pub fn to_json(&self, view: GraphView) -> Value {
        let status =
            if !view.evolvable && self.status == "awaitingAction" { "unknownFutureValue" } else { &self.status };
        let mut comments: Vec<Value> = self.comments.iter().map(GraphComment::to_json).collect();
        if view.comments_newest_first {
            comments.reverse();
        }
        json!({
            "@odata.type": "#microsoft.graph.security.incident",
            "id": self.id,
            "tenantId": self.tenant_id,
            "displayName": self.display_name,
            "description": self.description,
            "summary": self.summary,
            "createdDateTime": timefmt::format(self.created_date_time),
            "lastUpdateDateTime": timefmt::format(self.last_update_date_time),
            "status": status,
            "severity": self.severity,
            "assignedTo": self.assigned_to,
            "classification": self.classification,
            "determination": self.determination,
            "customTags": self.custom_tags,
            "systemTags": self.system_tags,
            "incidentWebUrl": self.incident_web_url,
            "redirectIncidentId": self.redirect_incident_id,
            "resolvingComment": self.resolving_comment,
            "lastModifiedBy": self.last_modified_by,
            "priorityScore": self.priority_score,
            "comments": comments,
        })
    }

    /// Applies a PATCH body. The update page lists the updatable properties: `assignedTo`,
    /// `classification`, `customTags`, `description`, `determination`, `displayName`,
    /// `resolvingComment`, `severity`, `status`, `summary` (the 2022 revision only the first five of
    /// `assignedTo`, `classification`, `determination`, `status`, `customTags`). Other properties
    /// are ignored (assumed: Graph ignores read-only properties on PATCH). A wrong type or an
    /// unknown enum member is a 400.
    pub fn apply_patch(&mut self, body: &Map<String, Value>) -> Result<(), String> {
        fn string(v: &Value, name: &str) -> Result<String, String> {
            v.as_str().map(str::to_string).ok_or_else(|| format!("'{name}' must be a string"))
        }
        fn member(v: &Value, name: &str, members: &[&'static str]) -> Result<String, String> {
            let s = string(v, name)?;
            vocab::canonical(&s, members).map(str::to_string).ok_or_else(|| format!("'{s}' is not a valid {name}"))
        }
        for (k, v) in body {
            match k.as_str() {
                "assignedTo" => self.assigned_to = if v.is_null() { None } else { Some(string(v, k)?) },
                "classification" => self.classification = member(v, k, vocab::CLASSIFICATION)?,
                "determination" => self.determination = member(v, k, vocab::DETERMINATION)?,
                "customTags" => {
                    let tags = v.as_array().ok_or("'customTags' must be an array")?;
                    self.custom_tags = tags.iter().map(|t| string(t, k)).collect::<Result<_, _>>()?;
                }
                "description" => self.description = if v.is_null() { None } else { Some(string(v, k)?) },
                "displayName" => self.display_name = string(v, k)?,
                "summary" => self.summary = if v.is_null() { None } else { Some(string(v, k)?) },
                "resolvingComment" => self.resolving_comment = if v.is_null() { None } else { Some(string(v, k)?) },
                "severity" => self.severity = member(v, k, vocab::SEVERITY)?,
                "status" => {
                    let s = member(v, k, vocab::INCIDENT_STATUS)?;
                    if !vocab::INCIDENT_STATUS_SETTABLE.contains(&s.as_str()) {
                        return Err(format!("'{s}' is not a status that can be set"));
                    }
                    self.status = s;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// `microsoft.graph.security.alert` (alerts v2). Evidence stays JSON: its `@odata.type` family
/// keeps growing.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphAlert {
    pub id: String,
    pub provider_alert_id: String,
    pub incident_id: Option<String>,
    /// An `alertStatus` member.
    pub status: String,
    pub severity: String,
    pub classification: String,
    pub determination: String,
    pub service_source: String,
    pub detection_source: String,
    pub detector_id: String,
    pub tenant_id: String,
    pub title: String,
    pub description: String,
    pub recommended_actions: String,
    pub category: String,
    pub assigned_to: Option<String>,
    pub alert_web_url: String,
    pub incident_web_url: String,
    pub actor_display_name: Option<String>,
    pub threat_display_name: Option<String>,
    pub threat_family_name: Option<String>,
    pub mitre_techniques: Vec<String>,
    pub created_date_time: OffsetDateTime,
    pub last_update_date_time: OffsetDateTime,
    pub resolved_date_time: Option<OffsetDateTime>,
    pub first_activity_date_time: OffsetDateTime,
    pub last_activity_date_time: OffsetDateTime,
    pub product_name: String,
    pub evidence: Vec<Value>,
    pub system_tags: Vec<String>,
    pub comments: Vec<GraphComment>,
    /// `customDetails` of a Sentinel rule alert (the correlation engine's); `None` elsewhere.
    pub custom_details: Option<Value>,
    pub seq: u64,
}

impl GraphAlert {
    pub fn to_json(&self, view: GraphView) -> Value {
        let service_source =
            if !view.evolvable && vocab::SERVICE_SOURCE_EVOLVABLE.contains(&self.service_source.as_str()) {
                "unknownFutureValue"
            } else {
                &self.service_source
            };
        let mut v = json!({
            "@odata.type": "#microsoft.graph.security.alert",
            "id": self.id,
            "providerAlertId": self.provider_alert_id,
            "incidentId": self.incident_id,
            "status": self.status,
            "severity": self.severity,
            "classification": self.classification,
            "determination": self.determination,
            "serviceSource": service_source,
            "detectionSource": self.detection_source,
            "detectorId": self.detector_id,
            "tenantId": self.tenant_id,
            "title": self.title,
            "description": self.description,
            "recommendedActions": self.recommended_actions,
            "category": self.category,
            "assignedTo": self.assigned_to,
            "alertWebUrl": self.alert_web_url,
            "incidentWebUrl": self.incident_web_url,
            "actorDisplayName": self.actor_display_name,
            "threatDisplayName": self.threat_display_name,
            "threatFamilyName": self.threat_family_name,
            "mitreTechniques": self.mitre_techniques,
            "createdDateTime": timefmt::format(self.created_date_time),
            "lastUpdateDateTime": timefmt::format(self.last_update_date_time),
            "resolvedDateTime": timefmt::json_opt(self.resolved_date_time),
            "firstActivityDateTime": timefmt::format(self.first_activity_date_time),
            "lastActivityDateTime": timefmt::format(self.last_activity_date_time),
            "productName": self.product_name,
            "comments": self.comments.iter().map(GraphComment::to_json).collect::<Vec<_>>(),
            "evidence": self.evidence,
            "systemTags": self.system_tags,
        });
        if let (Some(d), Some(m)) = (&self.custom_details, v.as_object_mut()) {
            m.insert("customDetails".into(), d.clone());
        }
        v
    }
}

// ------------------------------------------------------------------------------------------------
// Sentinel

/// `IncidentOwnerInfo` (every property writable in the spec; the server fills them from the
/// directory when `objectId` is known).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OwnerInfo {
    pub object_id: Option<String>,
    pub email: Option<String>,
    pub assigned_to: Option<String>,
    pub user_principal_name: Option<String>,
    /// An `OwnerType` member.
    pub owner_type: Option<String>,
}

/// `IncidentLabel`. `labelType` is `readOnly` in the spec: the server sets it (`User` for labels
/// a client sends, `AutoAssigned` for the system's).
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentLabel {
    pub label_name: String,
    pub label_type: String,
}

impl IncidentLabel {
    pub fn user(name: impl Into<String>) -> Self {
        Self { label_name: name.into(), label_type: "User".into() }
    }
}

/// The `IncidentProperties` a client writes.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentWritable {
    pub title: String,
    pub description: Option<String>,
    /// An `IncidentSeverity` member (`High`, …).
    pub severity: String,
    /// An `IncidentStatus` member (`New`, `Active`, `Closed`).
    pub status: String,
    pub classification: Option<String>,
    pub classification_reason: Option<String>,
    pub classification_comment: Option<String>,
    pub owner: Option<OwnerInfo>,
    pub labels: Vec<IncidentLabel>,
    pub first_activity_time_utc: Option<OffsetDateTime>,
    pub last_activity_time_utc: Option<OffsetDateTime>,
}

/// The `readOnly` `IncidentProperties` the server maintains (`additionalData` is computed when
/// the incident is rendered).
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentReadOnly {
    pub created_time_utc: OffsetDateTime,
    pub last_modified_time_utc: OffsetDateTime,
    pub incident_number: i64,
    pub incident_url: String,
    pub provider_name: String,
    pub provider_incident_id: String,
    pub related_analytic_rule_ids: Vec<String>,
}

/// `IncidentCommentProperties`.
#[derive(Debug, Clone, PartialEq)]
pub struct CommentProperties {
    pub message: String,
    pub created_time_utc: OffsetDateTime,
    pub last_modified_time_utc: OffsetDateTime,
    /// `ClientInfo` (`email`, `name`, `objectId`, `userPrincipalName`).
    pub author: Value,
}

/// An `IncidentComment` resource.
#[derive(Debug, Clone, PartialEq)]
pub struct SentinelComment {
    pub name: Uuid,
    pub etag: String,
    pub properties: CommentProperties,
    pub seq: u64,
}

impl SentinelComment {
    pub fn to_json(&self, incident_id: &str) -> Value {
        json!({
            "id": format!("{incident_id}/comments/{}", self.name),
            "name": self.name.to_string(),
            "type": "Microsoft.SecurityInsights/incidents/comments",
            "etag": self.etag,
            "properties": {
                "message": self.properties.message,
                "createdTimeUtc": timefmt::format(self.properties.created_time_utc),
                "lastModifiedTimeUtc": timefmt::format(self.properties.last_modified_time_utc),
                "author": self.properties.author,
            }
        })
    }
}

/// A Sentinel incident as the simulator stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct SentinelRecord {
    pub writable: IncidentWritable,
    pub read_only: IncidentReadOnly,
    pub etag: String,
    pub comments: BTreeMap<Uuid, SentinelComment>,
    pub relations: BTreeMap<String, Value>,
    /// How many times a client PUT this incident (create included).
    pub writes: u64,
    pub seq: u64,
}

impl SentinelRecord {
    /// The incident's ARM id below `base` (`…/providers/Microsoft.SecurityInsights`).
    pub fn arm_id(base: &str, name: &Uuid) -> String {
        // List answers have been seen with `Incidents` capitalised; clients compare ids
        // case-insensitively.
        format!("{base}/Incidents/{name}")
    }

    /// `IncidentAdditionalData` (all readOnly); `commentsCount` always equals the comments held.
    pub fn additional_data(&self) -> Value {
        json!({
            "alertsCount": 0,
            "bookmarksCount": 0,
            "commentsCount": self.comments.len(),
            "alertProductNames": [],
            "tactics": [],
        })
    }

    /// The `Incident` resource as GET/PUT/list answer it.
    pub fn to_json(&self, base: &str, name: &Uuid) -> Value {
        let w = &self.writable;
        let r = &self.read_only;
        let mut props = json!({
            "title": w.title,
            "severity": w.severity,
            "status": w.status,
            "labels": w.labels.iter().map(|l| json!({"labelName": l.label_name, "labelType": l.label_type})).collect::<Vec<_>>(),
            "createdTimeUtc": timefmt::format(r.created_time_utc),
            "lastModifiedTimeUtc": timefmt::format(r.last_modified_time_utc),
            "incidentNumber": r.incident_number,
            "incidentUrl": r.incident_url,
            "providerName": r.provider_name,
            "providerIncidentId": r.provider_incident_id,
            "relatedAnalyticRuleIds": r.related_analytic_rule_ids,
            "additionalData": self.additional_data(),
        });
        let p = props.as_object_mut().expect("an object");
        let mut opt = |k: &str, v: &Option<String>| {
            if let Some(v) = v {
                p.insert(k.into(), json!(v));
            }
        };
        opt("description", &w.description);
        opt("classification", &w.classification);
        opt("classificationReason", &w.classification_reason);
        opt("classificationComment", &w.classification_comment);
        if let Some(o) = &w.owner {
            let mut owner = Map::new();
            for (k, v) in [
                ("objectId", &o.object_id),
                ("email", &o.email),
                ("assignedTo", &o.assigned_to),
                ("userPrincipalName", &o.user_principal_name),
                ("ownerType", &o.owner_type),
            ] {
                if let Some(v) = v {
                    owner.insert(k.into(), json!(v));
                }
            }
            p.insert("owner".into(), Value::Object(owner));
        }
        if let Some(t) = w.first_activity_time_utc {
            p.insert("firstActivityTimeUtc".into(), json!(timefmt::format(t)));
        }
        if let Some(t) = w.last_activity_time_utc {
            p.insert("lastActivityTimeUtc".into(), json!(timefmt::format(t)));
        }
        json!({
            "id": Self::arm_id(base, name),
            "name": name.to_string(),
            "etag": self.etag,
            "type": "Microsoft.SecurityInsights/Incidents",
            "properties": props,
        })
    }
}

/// Properties the spec marks `readOnly` (on the resource envelope and in `IncidentProperties`).
pub const INCIDENT_READ_ONLY: &[&str] = &[
    "createdTimeUtc",
    "lastModifiedTimeUtc",
    "incidentNumber",
    "incidentUrl",
    "providerName",
    "providerIncidentId",
    "relatedAnalyticRuleIds",
    "additionalData",
];

/// A parsed `PUT …/incidents/{id}` body.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentPut {
    pub etag: Option<String>,
    pub properties: IncidentWritable,
    /// Read-only properties the client sent (JSON paths), which the server ignores.
    pub read_only_sent: Vec<String>,
}

/// Parses a PUT body against the spec's `Incident` definition: `title`, `severity`, `status`
/// required; enum members checked; read-only properties noted (and dropped); unknown
/// properties ignored.
pub fn parse_incident_put(body: &[u8]) -> Result<IncidentPut, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let top = v.as_object().ok_or("the body must be a JSON object")?;
    let mut read_only_sent = Vec::new();
    for k in ["id", "name", "type", "systemData"] {
        if top.contains_key(k) {
            read_only_sent.push(k.to_string());
        }
    }
    let etag = match top.get("etag") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("'etag' must be a string".into()),
    };
    let p = top.get("properties").and_then(Value::as_object).ok_or("'properties' is required")?;
    for k in INCIDENT_READ_ONLY {
        if p.contains_key(*k) {
            read_only_sent.push(format!("properties.{k}"));
        }
    }
    let opt_string = |k: &str| -> Result<Option<String>, String> {
        match p.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("'properties.{k}' must be a string")),
        }
    };
    let opt_member = |k: &str, members: &[&'static str]| -> Result<Option<String>, String> {
        match opt_string(k)? {
            None => Ok(None),
            Some(s) => vocab::canonical(&s, members)
                .map(|m| Some(m.to_string()))
                .ok_or_else(|| format!("'{s}' is not a valid value for '{k}'")),
        }
    };
    let required = |k: &str, members: &[&'static str]| -> Result<String, String> {
        opt_member(k, members)?.ok_or_else(|| format!("'properties.{k}' is required"))
    };
    let opt_time =
        |k: &str| -> Result<Option<OffsetDateTime>, String> { opt_string(k)?.map(|s| timefmt::parse(&s)).transpose() };
    let title = opt_string("title")?.ok_or("'properties.title' is required")?;
    let owner = match p.get("owner") {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => {
            let s = |k: &str| -> Result<Option<String>, String> {
                match o.get(k) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    Some(_) => Err(format!("'properties.owner.{k}' must be a string")),
                }
            };
            // The spec says `format: uuid`; whether the service rejects other strings is not
            // documented, so any string is kept.
            let object_id = s("objectId")?;
            let owner_type = match s("ownerType")? {
                None => None,
                Some(t) => Some(
                    vocab::canonical(&t, vocab::OWNER_TYPE)
                        .ok_or_else(|| format!("'{t}' is not a valid value for 'ownerType'"))?
                        .to_string(),
                ),
            };
            Some(OwnerInfo {
                object_id,
                email: s("email")?,
                assigned_to: s("assignedTo")?,
                user_principal_name: s("userPrincipalName")?,
                owner_type,
            })
        }
        Some(_) => return Err("'properties.owner' must be an object".into()),
    };
    let mut labels = Vec::new();
    match p.get("labels") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) => {
            for (i, l) in items.iter().enumerate() {
                let l = l.as_object().ok_or_else(|| format!("'properties.labels[{i}]' must be an object"))?;
                let name = l
                    .get("labelName")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("'properties.labels[{i}].labelName' is required"))?;
                if l.contains_key("labelType") {
                    read_only_sent.push(format!("properties.labels[{i}].labelType"));
                }
                labels.push(IncidentLabel::user(name));
            }
        }
        Some(_) => return Err("'properties.labels' must be an array".into()),
    }
    let properties = IncidentWritable {
        title,
        description: opt_string("description")?,
        severity: required("severity", vocab::SENTINEL_SEVERITY)?,
        status: required("status", vocab::SENTINEL_STATUS)?,
        classification: opt_member("classification", vocab::SENTINEL_CLASSIFICATION)?,
        classification_reason: opt_member("classificationReason", vocab::SENTINEL_CLASSIFICATION_REASON)?,
        classification_comment: opt_string("classificationComment")?,
        owner,
        labels,
        first_activity_time_utc: opt_time("firstActivityTimeUtc")?,
        last_activity_time_utc: opt_time("lastActivityTimeUtc")?,
    };
    Ok(IncidentPut { etag, properties, read_only_sent })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_create_example_and_notes_read_only_properties() {
        // The request of CreateIncident.json (2025-09-01), plus a label with its read-only type.
        let body = br#"{"etag": "\"0300bf09-0000-0000-0000-5c37296e0000\"", "properties": {
            "lastActivityTimeUtc": "2019-01-01T13:05:30Z", "firstActivityTimeUtc": "2019-01-01T13:00:30Z",
            "description": "This is a demo incident", "title": "My incident",
            "owner": {"objectId": "2046feea-040d-4a46-9e2b-91c2941bfa70"}, "severity": "High",
            "classification": "FalsePositive", "classificationComment": "Not a malicious activity",
            "classificationReason": "IncorrectAlertLogic", "status": "Closed",
            "labels": [{"labelName": "x", "labelType": "User"}], "providerName": "me"}}"#;
        let put = parse_incident_put(body).unwrap();
        assert_eq!(put.etag.as_deref(), Some("\"0300bf09-0000-0000-0000-5c37296e0000\""));
        assert_eq!(put.properties.status, "Closed");
        assert_eq!(put.properties.classification_reason.as_deref(), Some("IncorrectAlertLogic"));
        assert_eq!(put.read_only_sent, vec!["properties.providerName", "properties.labels[0].labelType"]);
    }

    #[test]
    fn rejects_missing_required_properties_and_unknown_members() {
        assert!(parse_incident_put(br#"{"properties": {"severity": "High", "status": "New"}}"#).is_err());
        assert!(
            parse_incident_put(br#"{"properties": {"title": "t", "severity": "Urgent", "status": "New"}}"#).is_err()
        );
        assert!(parse_incident_put(br#"{"properties": {"title": "t", "severity": "high", "status": "new"}}"#)
            .is_ok_and(|p| p.properties.severity == "High" && p.properties.status == "New"));
        assert!(parse_incident_put(
            br#"{"properties": {"title": "t", "severity": "High", "status": "New", "owner": 7}}"#
        )
        .is_err());
    }
}
