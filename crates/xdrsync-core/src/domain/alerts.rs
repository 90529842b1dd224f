//! Defender alerts as rows of the alerts stream (ARCHITECTURE.md: “What it does”, “Logs Ingestion”), pure: SecurityAlert's column
//! names where they exist so hunting queries carry over, the evidence mapped to entities, the
//! Defender incident id and Sentinel incident name for joins, and a stable key and digest so
//! only changed alerts are sent again.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::defender::{DefenderAlert, Severity};
use super::time_fmt;

fn severity(s: &Severity) -> &'static str {
    match s {
        Severity::High => "High",
        Severity::Medium => "Medium",
        Severity::Low => "Low",
        _ => "Informational",
    }
}

fn s(v: &Value, k: &str) -> Value {
    v.get(k).cloned().unwrap_or(Value::Null)
}

/// One evidence item as a SecurityAlert-style entity (`Type` + identifying fields).
pub fn entity(evidence: &Value) -> Value {
    let kind =
        evidence.get("@odata.type").and_then(Value::as_str).unwrap_or("").rsplit('.').next().unwrap_or("").to_string();
    let account = |ua: &Value| {
        json!({"Type": "account", "Name": s(ua, "accountName"), "NTDomain": s(ua, "domainName"), "DisplayName": s(ua, "displayName"),
               "UPNSuffix": ua.get("userPrincipalName").and_then(Value::as_str).and_then(|u| u.split('@').nth(1)),
               "AadUserId": s(ua, "azureAdUserId"), "Sid": s(ua, "userSid"), "UserPrincipalName": s(ua, "userPrincipalName")})
    };
    let mut e = match kind.as_str() {
        "deviceEvidence" => {
            json!({"Type": "host", "HostName": evidence.get("deviceDnsName").and_then(Value::as_str).map(|d| d.split('.').next().unwrap_or(d)),
            "FQDN": s(evidence, "deviceDnsName"), "OSFamily": s(evidence, "osPlatform"), "MdatpDeviceId": s(evidence, "mdeDeviceId"),
            "AzureID": s(evidence, "azureAdDeviceId"), "RiskScore": s(evidence, "riskScore")})
        }
        "userEvidence" => account(evidence.get("userAccount").unwrap_or(&Value::Null)),
        "ipEvidence" => {
            json!({"Type": "ip", "Address": s(evidence, "ipAddress"), "CountryCode": s(evidence, "countryLetterCode")})
        }
        "fileEvidence" => {
            let f = evidence.get("fileDetails").unwrap_or(&Value::Null);
            let hashes: Vec<Value> = ["sha256", "sha1", "md5"]
                .iter()
                .filter_map(|a| {
                    f.get(*a).and_then(Value::as_str).map(|v| json!({"Algorithm": a.to_uppercase(), "Value": v}))
                })
                .collect();
            json!({"Type": "file", "Name": s(f, "fileName"), "Directory": s(f, "filePath"), "Size": s(f, "fileSize"), "FileHashes": hashes})
        }
        "processEvidence" => {
            json!({"Type": "process", "ProcessId": s(evidence, "processId"), "CommandLine": s(evidence, "processCommandLine"),
            "CreationTimeUtc": s(evidence, "processCreationDateTime"), "ImageFile": evidence.get("imageFile").map(|f| s(f, "fileName")),
            "ParentProcessId": s(evidence, "parentProcessId"), "Account": evidence.get("userAccount").map(account)})
        }
        "urlEvidence" => json!({"Type": "url", "Url": s(evidence, "url")}),
        "mailboxEvidence" => {
            json!({"Type": "mailbox", "MailboxPrimaryAddress": s(evidence, "primaryAddress"), "DisplayName": s(evidence, "displayName"), "Upn": s(evidence, "upn")})
        }
        "" => json!({"Type": "unknown"}),
        other => {
            json!({"Type": other.trim_end_matches("Evidence").to_ascii_lowercase(), "Raw": evidence})
        }
    };
    if let Some(m) = e.as_object_mut() {
        m.retain(|_, v| !v.is_null());
        for k in ["verdict", "remediationStatus", "roles"] {
            if let Some(v) = evidence.get(k).filter(|v| !v.is_null()) {
                m.insert(format!("Defender{}{}", k[..1].to_uppercase(), &k[1..]), v.clone());
            }
        }
    }
    e
}

fn compromised_entity(entities: &[Value]) -> Option<String> {
    entities.iter().find_map(|e| match e.get("Type").and_then(Value::as_str) {
        Some("host") => e.get("HostName").and_then(Value::as_str).map(str::to_string),
        Some("account") => e.get("UserPrincipalName").and_then(Value::as_str).map(str::to_string),
        _ => None,
    })
}

/// The row for one alert, without `TimeGenerated` (added at send time) so that the digest
/// covers content only.
pub fn row(
    alert: &DefenderAlert,
    tenant_id: &str,
    defender_incident_id: &str,
    sentinel_incident: &Uuid,
) -> Map<String, Value> {
    let entities: Vec<Value> = alert.evidence.iter().map(entity).collect();
    let t = |v: Option<OffsetDateTime>| v.map(time_fmt::format);
    let extended = json!({
        "DetectorId": alert.detector_id, "ServiceSource": alert.service_source, "DetectionSource": alert.detection_source,
        "Classification": alert.classification, "Determination": alert.determination, "Category": alert.category,
        "ThreatDisplayName": alert.threat_display_name, "ThreatFamilyName": alert.threat_family_name,
        "ActorDisplayName": alert.actor_display_name, "AssignedTo": alert.assigned_to, "IncidentWebUrl": alert.incident_web_url,
        "AdditionalData": alert.additional_data,
    });
    let row = json!({
        "SystemAlertId": alert.id,
        "AlertName": alert.title,
        "DisplayName": alert.title,
        "Description": alert.description,
        "AlertSeverity": severity(&alert.severity),
        "ProductName": alert.product_name.clone().or_else(|| alert.service_source.clone()),
        "ProductComponentName": alert.detection_source,
        "ProviderName": "Microsoft Defender XDR",
        "VendorName": "Microsoft",
        "VendorOriginalId": alert.provider_alert_id,
        "Status": alert.status,
        "StartTime": t(alert.first_activity_date_time.or(alert.created_date_time)),
        "EndTime": t(alert.last_activity_date_time.or(alert.last_update_date_time)),
        "ProcessingEndTime": t(alert.last_update_date_time),
        "AlertLink": alert.alert_web_url,
        "RemediationSteps": alert.recommended_actions,
        "Tactics": alert.category,
        "Techniques": alert.mitre_techniques.join(","),
        "CompromisedEntity": compromised_entity(&entities),
        "Entities": Value::String(Value::Array(entities).to_string()),
        "ExtendedProperties": Value::String(extended.to_string()),
        "IsIncident": false,
        "DefenderTenantId": tenant_id,
        "DefenderIncidentId": defender_incident_id,
        "SentinelIncidentName": sentinel_incident.to_string(),
        "AlertLastUpdateDateTime": t(alert.last_update_date_time),
        "RowKey": format!("{}:{}", alert.id, t(alert.last_update_date_time).unwrap_or_default()),
    });
    let mut m = match row {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    m.retain(|_, v| !v.is_null());
    m
}

/// A stable digest of a row's content (hex SHA-256, first 16 bytes).
pub fn digest(row: &Map<String, Value>) -> String {
    // serde_json's Map is ordered by key, so the serialization is canonical.
    let bytes = serde_json::to_vec(row).unwrap_or_default();
    let hash = Sha256::digest(&bytes);
    hash[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// A digest over a set of (alert id, digest) pairs, order-independent.
pub fn combined_digest<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut v: Vec<(&str, &str)> = pairs.into_iter().collect();
    v.sort();
    let mut h = Sha256::new();
    for (id, d) in v {
        h.update(id.as_bytes());
        h.update([0]);
        h.update(d.as_bytes());
        h.update([0]);
    }
    h.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// The row as sent: content plus `TimeGenerated`.
pub fn with_time_generated(mut row: Map<String, Value>, now: OffsetDateTime) -> Value {
    row.insert("TimeGenerated".into(), Value::String(time_fmt::format(now)));
    Value::Object(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert() -> DefenderAlert {
        serde_json::from_value(json!({
            "id": "da637551227677560813_-961444813", "providerAlertId": "p1", "incidentId": "29",
            "status": "new", "severity": "high", "serviceSource": "microsoftDefenderForEndpoint",
            "detectionSource": "antivirus", "title": "Suspicious PowerShell command line", "category": "Execution",
            "mitreTechniques": ["T1059.001"], "productName": "Microsoft Defender for Endpoint",
            "createdDateTime": "2026-01-01T00:00:00Z", "lastUpdateDateTime": "2026-01-01T00:05:00Z",
            "alertWebUrl": "https://security.microsoft.com/alerts/da1?tid=t",
            "evidence": [
                {"@odata.type": "#microsoft.graph.security.deviceEvidence", "deviceDnsName": "wks-1.contoso.com", "mdeDeviceId": "abc", "verdict": "suspicious"},
                {"@odata.type": "#microsoft.graph.security.userEvidence", "userAccount": {"accountName": "ann", "userPrincipalName": "ann@contoso.com"}},
                {"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": "203.0.113.5"},
                {"@odata.type": "#microsoft.graph.security.kubernetesPodEvidence", "name": "pod-1"}
            ]
        }))
        .unwrap()
    }

    #[test]
    fn row_uses_security_alert_columns_and_maps_entities() {
        let name = Uuid::nil();
        let r = row(&alert(), "t", "29", &name);
        assert_eq!(r["SystemAlertId"], "da637551227677560813_-961444813");
        assert_eq!(r["AlertSeverity"], "High");
        assert_eq!(r["Techniques"], "T1059.001");
        assert_eq!(r["Tactics"], "Execution");
        assert_eq!(r["CompromisedEntity"], "wks-1");
        assert_eq!(r["DefenderIncidentId"], "29");
        let entities: Vec<Value> = serde_json::from_str(r["Entities"].as_str().unwrap()).unwrap();
        let types: Vec<_> = entities.iter().map(|e| e["Type"].as_str().unwrap()).collect();
        assert_eq!(types, vec!["host", "account", "ip", "kubernetespod"]);
        assert_eq!(entities[1]["UPNSuffix"], "contoso.com");
        assert!(!r.contains_key("TimeGenerated"));
    }

    fn declared_columns(bicep: &str) -> std::collections::BTreeSet<String> {
        bicep
            .lines()
            .filter_map(|l| l.trim().strip_prefix("{ name: '"))
            .filter_map(|rest| rest.split('\'').next())
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn rows_use_exactly_the_columns_the_infra_declares() {
        let dcr = declared_columns(include_str!("../../../../infra/main.bicep"));
        let table = declared_columns(include_str!("../../../../infra/workspace.bicep"));
        assert_eq!(dcr, table, "the DCR stream and the table declare the same columns");
        let sent = with_time_generated(row(&alert(), "t", "29", &Uuid::nil()), time::OffsetDateTime::UNIX_EPOCH);
        for key in sent.as_object().unwrap().keys() {
            assert!(dcr.contains(key), "column {key} is sent but not declared in infra/main.bicep");
        }
        for reserved in ["TenantId", "Type", "id", "Title", "UniqueId"] {
            assert!(!dcr.contains(reserved), "{reserved} is reserved in Log Analytics");
        }
    }

    #[test]
    fn digest_changes_with_content_only() {
        let name = Uuid::nil();
        let a = alert();
        let d1 = digest(&row(&a, "t", "29", &name));
        assert_eq!(d1, digest(&row(&a, "t", "29", &name)));
        let mut b = a.clone();
        b.status = Some(crate::domain::defender::AlertStatus::Resolved);
        assert_ne!(d1, digest(&row(&b, "t", "29", &name)));
        assert_eq!(combined_digest([("a", "1"), ("b", "2")]), combined_digest([("b", "2"), ("a", "1")]));
    }
}
