//! Defender XDR (Microsoft Graph security API v1.0) incidents and alerts, as the service sends them.
//!
//! Every field a doc revision may lack is optional; enums are tolerant; evidence stays raw JSON
//! because its `@odata.type` set keeps growing. Serialization uses Graph's camelCase names.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::time_fmt::{rfc3339, rfc3339_opt};
use crate::tolerant_enum;

tolerant_enum!(
    /// `incidentStatus`; `awaitingAction` arrives only with `Prefer: include-unknown-enum-members`.
    IncidentStatus {
        Active => "active",
        Resolved => "resolved",
        InProgress => "inProgress",
        Redirected => "redirected",
        AwaitingAction => "awaitingAction",
        UnknownFutureValue => "unknownFutureValue",
    }
);

tolerant_enum!(
    /// `alertSeverity`.
    Severity {
        Unknown => "unknown",
        Informational => "informational",
        Low => "low",
        Medium => "medium",
        High => "high",
        UnknownFutureValue => "unknownFutureValue",
    }
);

tolerant_enum!(
    /// `alertClassification`.
    Classification {
        Unknown => "unknown",
        FalsePositive => "falsePositive",
        TruePositive => "truePositive",
        InformationalExpectedActivity => "informationalExpectedActivity",
        UnknownFutureValue => "unknownFutureValue",
    }
);

tolerant_enum!(
    /// `alertDetermination`: both doc revisions' spellings are known values.
    Determination {
        Unknown => "unknown",
        Apt => "apt",
        Malware => "malware",
        SecurityPersonnel => "securityPersonnel",
        SecurityTesting => "securityTesting",
        UnwantedSoftware => "unwantedSoftware",
        Other => "other",
        MultiStagedAttack => "multiStagedAttack",
        CompromisedUser => "compromisedUser",
        CompromisedAccount => "compromisedAccount",
        Phishing => "phishing",
        MaliciousUserActivity => "maliciousUserActivity",
        Clean => "clean",
        NotMalicious => "notMalicious",
        InsufficientData => "insufficientData",
        NotEnoughDataToValidate => "notEnoughDataToValidate",
        ConfirmedActivity => "confirmedActivity",
        ConfirmedUserActivity => "confirmedUserActivity",
        LineOfBusinessApplication => "lineOfBusinessApplication",
        UnknownFutureValue => "unknownFutureValue",
    }
);

tolerant_enum!(
    /// `alertStatus` (alerts v2).
    AlertStatus {
        Unknown => "unknown",
        New => "new",
        InProgress => "inProgress",
        Resolved => "resolved",
        UnknownFutureValue => "unknownFutureValue",
    }
);

/// A comment on a Defender incident or alert (`alertComment`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AlertComment {
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub created_by_display_name: Option<String>,
    #[serde(default, with = "rfc3339_opt")]
    pub created_date_time: Option<OffsetDateTime>,
    /// The names the Graph documentation's examples use (`createdBy`, `createdTime`) where the
    /// resource page says `createdByDisplayName`, `createdDateTime`: read both, prefer the latter.
    /// Written back when present, so an incident carried in a work item keeps its comments whole.
    #[serde(default, rename = "createdBy", skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, rename = "createdTime", with = "rfc3339_opt", skip_serializing_if = "Option::is_none")]
    pub created_time: Option<OffsetDateTime>,
}

impl AlertComment {
    pub fn author(&self) -> Option<&str> {
        self.created_by_display_name.as_deref().or(self.created_by.as_deref())
    }

    pub fn written_at(&self) -> Option<OffsetDateTime> {
        self.created_date_time.or(self.created_time)
    }
}

/// `microsoft.graph.security.incident`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DefenderIncident {
    pub id: String,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub summary: Option<String>,
    #[serde(default, with = "rfc3339_opt")]
    pub created_date_time: Option<OffsetDateTime>,
    #[serde(with = "rfc3339")]
    pub last_update_date_time: OffsetDateTime,
    pub status: IncidentStatus,
    #[serde(default = "unknown_severity")]
    pub severity: Severity,
    #[serde(default)]
    pub assigned_to: Option<String>,
    #[serde(default)]
    pub classification: Option<Classification>,
    #[serde(default)]
    pub determination: Option<Determination>,
    #[serde(default)]
    pub custom_tags: Vec<String>,
    #[serde(default)]
    pub system_tags: Vec<String>,
    #[serde(default)]
    pub incident_web_url: Option<String>,
    #[serde(default)]
    pub redirect_incident_id: Option<String>,
    #[serde(default)]
    pub resolving_comment: Option<String>,
    #[serde(default)]
    pub last_modified_by: Option<String>,
    #[serde(default)]
    pub priority_score: Option<i64>,
    #[serde(default)]
    pub comments: Vec<AlertComment>,
    /// The incident's alerts when read with `$expand=alerts` (documented for incidents); `None`
    /// when not expanded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<Vec<DefenderAlert>>,
    /// Set when the service paged the expanded alerts (not documented to happen; then the alerts
    /// are listed separately rather than trusted to be complete).
    #[serde(default, rename = "alerts@odata.nextLink", skip_serializing_if = "Option::is_none")]
    pub alerts_next_link: Option<String>,
}

impl DefenderIncident {
    /// The expanded alerts, when the answer carried all of them.
    pub fn complete_alerts(&self) -> Option<&[DefenderAlert]> {
        self.alerts.as_deref().filter(|_| self.alerts_next_link.is_none())
    }
}

/// What the poller needs of a listed incident (read with `$select` where the service honours it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IncidentStamp {
    pub id: String,
    #[serde(with = "rfc3339")]
    pub last_update_date_time: OffsetDateTime,
}

fn unknown_severity() -> Severity {
    Severity::Unknown
}

/// `microsoft.graph.security.alert` (alerts v2). Evidence stays raw: see the module note.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DefenderAlert {
    pub id: String,
    #[serde(default)]
    pub provider_alert_id: Option<String>,
    #[serde(default)]
    pub incident_id: Option<String>,
    #[serde(default)]
    pub status: Option<AlertStatus>,
    #[serde(default = "unknown_severity")]
    pub severity: Severity,
    #[serde(default)]
    pub classification: Option<Classification>,
    #[serde(default)]
    pub determination: Option<Determination>,
    #[serde(default)]
    pub service_source: Option<String>,
    #[serde(default)]
    pub detection_source: Option<String>,
    #[serde(default)]
    pub detector_id: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<String>,
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub recommended_actions: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub assigned_to: Option<String>,
    #[serde(default)]
    pub alert_web_url: Option<String>,
    #[serde(default)]
    pub incident_web_url: Option<String>,
    #[serde(default)]
    pub actor_display_name: Option<String>,
    #[serde(default)]
    pub threat_display_name: Option<String>,
    #[serde(default)]
    pub threat_family_name: Option<String>,
    #[serde(default)]
    pub mitre_techniques: Vec<String>,
    #[serde(default, with = "rfc3339_opt")]
    pub created_date_time: Option<OffsetDateTime>,
    #[serde(default, with = "rfc3339_opt")]
    pub last_update_date_time: Option<OffsetDateTime>,
    #[serde(default, with = "rfc3339_opt")]
    pub resolved_date_time: Option<OffsetDateTime>,
    #[serde(default, with = "rfc3339_opt")]
    pub first_activity_date_time: Option<OffsetDateTime>,
    #[serde(default, with = "rfc3339_opt")]
    pub last_activity_date_time: Option<OffsetDateTime>,
    #[serde(default)]
    pub product_name: Option<String>,
    #[serde(default)]
    pub evidence: Vec<Value>,
    #[serde(default)]
    pub system_tags: Vec<String>,
    #[serde(default)]
    pub additional_data: Option<Value>,
    /// `customDetails`: documented on custom detection rules' alert template; whether a Sentinel
    /// rule's alert carries its custom details here or in `additionalData` is assumed (mode 2
    /// reads both: domain/portal.rs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_details: Option<Value>,
}

/// The fields of `PATCH /security/incidents/{id}` we write; `None` = leave unchanged.
/// `assigned_to: Some(None)` clears the owner.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DefenderIncidentPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<IncidentStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_to: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub determination: Option<Determination>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_tags: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolving_comment: Option<String>,
}

impl DefenderIncidentPatch {
    /// True when the patch would change nothing (so no request is sent).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_documented_incident_with_old_pascal_case_values() {
        let json = r##"{
            "@odata.type": "#microsoft.graph.security.incident",
            "id": "2972395",
            "incidentWebUrl": "https://security.microsoft.com/incidents/2972395?tid=12f988bf",
            "displayName": "Multi-stage incident involving Initial access & Command and control",
            "createdDateTime": "2021-08-13T08:43:35.5533333Z",
            "lastUpdateDateTime": "2021-09-30T09:35:45.1133333Z",
            "assignedTo": "KaiC@contoso.onmicrosoft.com",
            "classification": "TruePositive",
            "determination": "MultiStagedAttack",
            "status": "Active",
            "severity": "Medium",
            "customTags": ["Demo"],
            "comments": [{"comment": "Demo incident", "createdByDisplayName": "DavidS@contoso.onmicrosoft.com",
                          "createdDateTime": "2021-09-30T12:07:37.2756993Z"}],
            "systemTags": ["Defender Experts"],
            "description": "A mystery field",
            "someNewField": {"x": 1}
        }"##;
        let i: DefenderIncident = serde_json::from_str(json).unwrap();
        assert_eq!(i.status, IncidentStatus::Active);
        assert_eq!(i.severity, Severity::Medium);
        assert_eq!(i.classification, Some(Classification::TruePositive));
        assert_eq!(i.determination, Some(Determination::MultiStagedAttack));
        assert_eq!(i.comments.len(), 1);
    }

    #[test]
    fn unknown_status_is_kept_not_rejected() {
        let json = r#"{"id":"1","lastUpdateDateTime":"2024-01-01T00:00:00Z","status":"escalatedToMars"}"#;
        let i: DefenderIncident = serde_json::from_str(json).unwrap();
        assert_eq!(i.status, IncidentStatus::Unrecognized("escalatedToMars".into()));
        assert_eq!(i.severity, Severity::Unknown);
    }

    #[test]
    fn patch_serializes_only_changed_fields_and_can_clear_owner() {
        let p = DefenderIncidentPatch {
            assigned_to: Some(None),
            status: Some(IncidentStatus::Resolved),
            ..Default::default()
        };
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v, serde_json::json!({"status": "resolved", "assignedTo": null}));
        assert!(DefenderIncidentPatch::default().is_empty());
    }
}
