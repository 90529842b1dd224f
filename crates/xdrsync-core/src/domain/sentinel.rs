//! Microsoft Sentinel incidents (Microsoft.SecurityInsights) as ARM returns and accepts them.
//!
//! `SentinelIncident` is what a GET returns (read-only fields included); `SentinelIncidentBody`
//! is what a PUT sends: only writable properties plus the etag, because PUT replaces all
//! properties and the etag in the body is the optimistic-concurrency token.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::time_fmt::rfc3339_opt;
use crate::tolerant_enum;

tolerant_enum!(SentinelSeverity { High => "High", Medium => "Medium", Low => "Low", Informational => "Informational" });
tolerant_enum!(SentinelStatus { New => "New", Active => "Active", Closed => "Closed" });
tolerant_enum!(SentinelClassification {
    Undetermined => "Undetermined",
    TruePositive => "TruePositive",
    BenignPositive => "BenignPositive",
    FalsePositive => "FalsePositive",
});
tolerant_enum!(ClassificationReason {
    SuspiciousActivity => "SuspiciousActivity",
    SuspiciousButExpected => "SuspiciousButExpected",
    IncorrectAlertLogic => "IncorrectAlertLogic",
    InaccurateData => "InaccurateData",
});
tolerant_enum!(LabelType { User => "User", AutoAssigned => "AutoAssigned" });
tolerant_enum!(OwnerType { Unknown => "Unknown", User => "User", Group => "Group" });

/// `properties.owner`. On PUT only `objectId` matters; the server fills the rest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Owner {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_principal_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_type: Option<OwnerType>,
}

/// `properties.labels[]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Label {
    pub label_name: String,
    /// Read-only in the REST spec (the service sets it): read, never sent. An AutoAssigned label
    /// we keep is sent back by name only; whether the service then keeps its type is not
    /// documented, and nothing here depends on it (AutoAssigned labels never become tags).
    #[serde(default, skip_serializing)]
    pub label_type: Option<LabelType>,
}

impl Label {
    pub fn user(name: impl Into<String>) -> Self {
        Self { label_name: name.into(), label_type: Some(LabelType::User) }
    }
}

/// The writable incident properties (what a PUT sends).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SentinelWritable {
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub severity: SentinelSeverity,
    pub status: SentinelStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<SentinelClassification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification_reason: Option<ClassificationReason>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification_comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    #[serde(default)]
    pub labels: Vec<Label>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "rfc3339_opt")]
    pub first_activity_time_utc: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "rfc3339_opt")]
    pub last_activity_time_utc: Option<OffsetDateTime>,
}

/// Read-only properties the server maintains.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SentinelReadOnly {
    #[serde(default, skip_serializing_if = "Option::is_none", with = "rfc3339_opt")]
    pub created_time_utc: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "rfc3339_opt")]
    pub last_modified_time_utc: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_number: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incident_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_incident_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_data: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related_analytic_rule_ids: Vec<String>,
}

/// All incident properties as a GET returns them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentinelProperties {
    #[serde(flatten)]
    pub writable: SentinelWritable,
    #[serde(flatten)]
    pub read_only: SentinelReadOnly,
}

/// An incident resource as ARM returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentinelIncident {
    #[serde(default)]
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: String,
    pub properties: SentinelProperties,
}

/// The body of `PUT .../incidents/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentinelIncidentBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    pub properties: SentinelWritable,
}

/// An incident comment resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SentinelComment {
    #[serde(default)]
    pub id: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    pub properties: SentinelCommentProperties,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SentinelCommentProperties {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "rfc3339_opt")]
    pub created_time_utc: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "rfc3339_opt")]
    pub last_modified_time_utc: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_an_arm_incident_with_read_only_fields() {
        let json = r#"{
          "id": "/subscriptions/d0cfe6b2/resourceGroups/myRg/providers/Microsoft.OperationalInsights/workspaces/myWorkspace/providers/Microsoft.SecurityInsights/Incidents/73e01a99-5cd7-4139-a149-9f2736ff2ab5",
          "name": "73e01a99-5cd7-4139-a149-9f2736ff2ab5",
          "etag": "\"0300bf09-0000-0000-0000-5c37296e0000\"",
          "type": "Microsoft.SecurityInsights/Incidents",
          "properties": {
            "title": "My incident", "description": "This is a demo incident",
            "severity": "High", "status": "Closed",
            "classification": "FalsePositive", "classificationReason": "IncorrectAlertLogic",
            "owner": {"objectId": "2046feea-040d-4a46-9e2b-91c2941bfa70", "email": "john.doe@contoso.com",
                      "assignedTo": "john doe", "userPrincipalName": "john@genericUser.com", "ownerType": "User"},
            "labels": [{"labelName": "x", "labelType": "AutoAssigned"}],
            "createdTimeUtc": "2019-01-01T13:15:30Z", "lastModifiedTimeUtc": "2019-01-01T13:15:30Z",
            "incidentNumber": 3177, "providerName": "Azure Sentinel", "providerIncidentId": "3177",
            "additionalData": {"alertsCount": 0, "tactics": ["InitialAccess"]}
          }
        }"#;
        let i: SentinelIncident = serde_json::from_str(json).unwrap();
        assert_eq!(i.properties.writable.status, SentinelStatus::Closed);
        assert_eq!(i.properties.read_only.incident_number, Some(3177));
        assert_eq!(i.properties.writable.labels[0].label_type, Some(LabelType::AutoAssigned));
    }

    #[test]
    fn put_body_carries_etag_and_no_read_only_fields() {
        let body = SentinelIncidentBody {
            etag: Some("\"abc\"".into()),
            properties: SentinelWritable {
                title: "t".into(),
                description: None,
                severity: SentinelSeverity::Low,
                status: SentinelStatus::New,
                classification: None,
                classification_reason: None,
                classification_comment: None,
                owner: None,
                labels: vec![Label::user("Microsoft Defender XDR")],
                first_activity_time_utc: None,
                last_activity_time_utc: None,
            },
        };
        let v = serde_json::to_value(&body).unwrap();
        assert_eq!(v["etag"], "\"abc\"");
        assert!(v["properties"].get("providerName").is_none());
        assert_eq!(
            v["properties"]["labels"][0],
            serde_json::json!({"labelName": "Microsoft Defender XDR"}),
            "labelType is read-only: never sent"
        );
    }
}
