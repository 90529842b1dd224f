//! Defender alerts as rows of the alerts stream (ARCHITECTURE.md: “What it does”, “Logs Ingestion”), pure: SecurityAlert's column
//! names where they exist so hunting queries carry over, the evidence mapped to entities, the
//! Defender incident id and Sentinel incident name for joins, and a stable key and digest so
//! only changed alerts are sent again. Every value is bounded below the service's field limit so
//! that none is ever truncated into invalid JSON ([`MAX_VALUE_BYTES`]).

use std::borrow::Cow;

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

/// The most bytes any one value of a row takes, serialized as JSON (quotes and escapes included,
/// so never less than the UTF-8 bytes of the string the table stores).
///
/// Documented (Azure Monitor service limits, “Logs Ingestion API”): “Maximum size for field
/// values: 64 KB. Fields longer than 64 KB are truncated.” A truncated `Entities` or
/// `ExtendedProperties` would be cut-off JSON, which KQL's `parse_json()` returns as a plain
/// string (documented), so a query expanding the entities would silently see none.
/// Assumed (not documented): the limit counts UTF-8 bytes of the value, and “KB” may mean 64,000
/// or 65,536 bytes; 60,000 stays below both with room to spare.
pub const MAX_VALUE_BYTES: usize = 60_000;

/// The most bytes a whole row (without `TimeGenerated` and `RowDigest`) takes, serialized.
/// Documented: one call carries at most 1 MB, compressed or not; 900,000 leaves room for the
/// columns added at send time and the array brackets, so a row never exceeds one call with the
/// default `XDRSYNC_MAX_BATCH_BYTES` (1,000,000).
pub const MAX_ROW_BYTES: usize = 900_000;

/// Below this, a string is not worth cutting further (the marker alone is ~50 bytes).
const MIN_CUT_BYTES: usize = 64;

/// Bytes `c` takes inside a JSON string as serde_json writes it.
fn escaped_len(c: char) -> usize {
    match c {
        '"' | '\\' | '\u{8}' | '\u{c}' | '\n' | '\r' | '\t' => 2,
        c if (c as u32) < 0x20 => 6,
        c => c.len_utf8(),
    }
}

/// Serialized size of a string value, quotes included.
fn string_json_len(s: &str) -> usize {
    2 + s.chars().map(escaped_len).sum::<usize>()
}

/// `s` cut at a char boundary so that, serialized as a JSON string with the visible marker
/// `… [truncated by xdrsync from N bytes]` appended, it takes at most `max` bytes. Unchanged if it
/// already fits.
pub fn cut(s: &str, max: usize) -> Cow<'_, str> {
    if string_json_len(s) <= max {
        return Cow::Borrowed(s);
    }
    let marker = format!("… [truncated by xdrsync from {} bytes]", s.len());
    let marker_len = string_json_len(&marker) - 2;
    // Too small for the marker (never so for our callers): keep what fits.
    let (budget, marker) = if max >= 2 + marker_len { (max - marker_len, marker.as_str()) } else { (max, "") };
    let mut used = 2;
    let mut end = 0;
    for (i, c) in s.char_indices() {
        used += escaped_len(c);
        if used > budget {
            break;
        }
        end = i + c.len_utf8();
    }
    Cow::Owned(format!("{}{marker}", &s[..end]))
}

/// Every string inside `v` (recursively) cut to `cap` serialized bytes.
fn cap_strings(v: &Value, cap: usize) -> Value {
    match v {
        Value::String(s) => Value::String(cut(s, cap).into_owned()),
        Value::Array(a) => Value::Array(a.iter().map(|x| cap_strings(x, cap)).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, x)| (k.clone(), cap_strings(x, cap))).collect()),
        other => other.clone(),
    }
}

fn json_len(v: &Value) -> usize {
    serde_json::to_string(v).map_or(usize::MAX, |s| s.len())
}

/// Bytes the JSON text of `v` takes once it is itself the content of a JSON string (a column
/// holding JSON text, like `Entities`): every `"` and `\` of the text is escaped again.
fn text_len(v: &Value) -> usize {
    string_json_len(&v.to_string()) - 2
}

/// `v` made to take at most `max` bytes as JSON text inside a string column ([`text_len`]) while
/// staying valid JSON: first its strings are cut (each to half the budget, then a quarter, …);
/// if that is not enough, an object loses its largest members, named in `XdrsyncOmitted`.
/// `None` if not even that fits.
fn fit_json(v: &Value, max: usize) -> Option<Value> {
    if text_len(v) <= max {
        return Some(v.clone());
    }
    let mut cap = max / 2;
    let mut capped = v.clone();
    while cap >= MIN_CUT_BYTES {
        capped = cap_strings(v, cap);
        if text_len(&capped) <= max {
            return Some(capped);
        }
        cap /= 2;
    }
    let Value::Object(mut m) = capped else { return None };
    let mut omitted: Vec<String> = Vec::new();
    loop {
        let mut candidate = m.clone();
        if !omitted.is_empty() {
            candidate.insert("XdrsyncOmitted".into(), json!(omitted));
        }
        let candidate = Value::Object(candidate);
        if text_len(&candidate) <= max {
            return Some(candidate);
        }
        let largest = m.iter().max_by_key(|(_, x)| json_len(x)).map(|(k, _)| k.clone())?;
        m.remove(&largest);
        omitted.push(largest);
    }
}

/// The entities as one JSON array text whose string value takes at most `max` bytes serialized,
/// and how many were left out. Entities keep their order (evidence order, most useful first) and
/// stay whole: the list is cut at the first entity that no longer fits, and every one from there
/// on is left out. An entity too big to fit even alone has its long strings cut (with the
/// visible marker) instead.
fn bounded_entities(entities: &[Value], max: usize) -> (String, usize) {
    // Serialized as a string value: quotes, `[`, `]`, and each text escaped.
    let alone = max.saturating_sub(4);
    let mut out = String::from("[");
    let mut used = 4;
    let mut kept = 0;
    for e in entities {
        let fitted;
        let e = if text_len(e) <= alone {
            e
        } else {
            match fit_json(e, alone) {
                Some(f) => {
                    fitted = f;
                    &fitted
                }
                None => break,
            }
        };
        let separator = usize::from(kept > 0);
        let len = text_len(e);
        if used + separator + len > max {
            break;
        }
        if separator == 1 {
            out.push(',');
        }
        out.push_str(&e.to_string());
        used += separator + len;
        kept += 1;
    }
    out.push(']');
    (out, entities.len() - kept)
}

/// Columns whose value is JSON text; they are bounded structurally, never cut as strings.
const JSON_COLUMNS: [&str; 2] = ["Entities", "ExtendedProperties"];

/// Every plain string column cut to [`MAX_VALUE_BYTES`], then, while the row is over
/// [`MAX_ROW_BYTES`], the largest one cut to half its size. Cuts are made from the original
/// value, so the marker always gives its full size.
fn bound_row(m: &mut Map<String, Value>) {
    let row_len = |m: &Map<String, Value>| serde_json::to_string(m).map_or(usize::MAX, |s| s.len());
    let plain = |k: &str| !JSON_COLUMNS.contains(&k);
    let fits = m.iter().all(|(k, v)| !plain(k) || v.as_str().is_none_or(|s| string_json_len(s) <= MAX_VALUE_BYTES));
    if fits && row_len(m) <= MAX_ROW_BYTES {
        return;
    }
    let originals: Vec<(String, String)> = m
        .iter()
        .filter(|(k, _)| plain(k))
        .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_string())))
        .collect();
    let mut limits: Vec<usize> = vec![MAX_VALUE_BYTES; originals.len()];
    loop {
        for ((k, original), limit) in originals.iter().zip(&limits) {
            m.insert(k.clone(), Value::String(cut(original, *limit).into_owned()));
        }
        if row_len(m) <= MAX_ROW_BYTES {
            return;
        }
        let largest = originals
            .iter()
            .zip(&limits)
            .enumerate()
            .map(|(i, ((_, original), limit))| (i, string_json_len(original).min(*limit)))
            .max_by_key(|(_, n)| *n);
        match largest {
            Some((i, n)) if n > 4 * MIN_CUT_BYTES => limits[i] = n / 2,
            _ => return,
        }
    }
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
    // `EntitiesOmitted` is present only when entities were left out, so rows that fit keep
    // the digest they had before the column existed (and are not sent again for it).
    let (entities_text, entities_omitted) = bounded_entities(&entities, MAX_VALUE_BYTES);
    let extended_text = fit_json(&extended, MAX_VALUE_BYTES).unwrap_or_else(|| json!({})).to_string();
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
        "Entities": entities_text,
        "EntitiesOmitted": (entities_omitted > 0).then_some(entities_omitted),
        "ExtendedProperties": extended_text,
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
    // Flattened entity columns for the analytics rule's entity mappings (“Native alerts”).
    m.extend(super::entity_columns::columns(&entities));
    bound_row(&mut m);
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

/// The row with its own digest in `RowDigest`, so copies of one version can be told apart from
/// versions in the table (`summarize count() by SystemAlertId, RowDigest`). Added at send time,
/// like `TimeGenerated`, so the digest covers content only.
pub fn with_row_digest(mut row: Map<String, Value>, digest: &str) -> Map<String, Value> {
    row.insert("RowDigest".into(), Value::String(digest.to_string()));
    row
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
        assert_eq!(r["EntityHostName"], "wks-1", "flattened for the rule's entity mappings");
        assert_eq!(r["EntityAccountUPNSuffix"], "contoso.com");
        assert_eq!(r["EntityIp"], "203.0.113.5");
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
        let dcr: std::collections::BTreeSet<String> =
            serde_json::from_str::<Vec<Value>>(include_str!("../../../../infra/alert-columns.json"))
                .expect("infra/alert-columns.json is JSON")
                .iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect();
        let table = declared_columns(include_str!("../../../../infra/workspace.bicep"));
        assert_eq!(dcr, table, "the DCR stream and the table declare the same columns");
        // A plain alert and one whose entities overflow (which adds `EntitiesOmitted`).
        for a in [alert(), with_evidence(alert(), 5_000)] {
            let r = row(&a, "t", "29", &Uuid::nil());
            let dg = digest(&r);
            let sent = with_time_generated(with_row_digest(r, &dg), time::OffsetDateTime::UNIX_EPOCH);
            for key in sent.as_object().unwrap().keys() {
                assert!(dcr.contains(key), "column {key} is sent but not declared in infra/alert-columns.json");
            }
        }
        assert!(with_time_generated(
            row(&with_evidence(alert(), 5_000), "t", "29", &Uuid::nil()),
            OffsetDateTime::UNIX_EPOCH
        )
        .get("EntitiesOmitted")
        .is_some());
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

    /// `alert` with `n` evidence items: processes with a 200-byte command line (quotes and
    /// non-ASCII included) and ip addresses, alternating.
    fn with_evidence(mut a: DefenderAlert, n: usize) -> DefenderAlert {
        a.evidence = (0..n)
            .map(|i| {
                if i % 2 == 0 {
                    json!({"@odata.type": "#microsoft.graph.security.processEvidence", "processId": i,
                           "processCommandLine": format!("cmd.exe /c \"échо {i}\" {}", "x".repeat(170)),
                           "imageFile": {"fileName": "cmd.exe"}})
                } else {
                    json!({"@odata.type": "#microsoft.graph.security.ipEvidence", "ipAddress": format!("10.0.{}.{}", i / 256 % 256, i % 256)})
                }
            })
            .collect();
        a
    }

    fn value_bytes(v: &Value) -> usize {
        serde_json::to_string(v).unwrap().len()
    }

    /// The invariants of every row: each value within the field limit, the row within one call,
    /// `Entities` a JSON array of whole entities, a prefix of the evidence, with
    /// `EntitiesOmitted` counting exactly the rest, `ExtendedProperties` a JSON object.
    fn check_row(a: &DefenderAlert, r: &Map<String, Value>) -> Result<(), String> {
        for (k, v) in r {
            if value_bytes(v) > MAX_VALUE_BYTES {
                return Err(format!("{k} takes {} bytes", value_bytes(v)));
            }
        }
        let total = value_bytes(&Value::Object(r.clone()));
        if total > MAX_ROW_BYTES {
            return Err(format!("the row takes {total} bytes"));
        }
        let entities: Vec<Value> =
            serde_json::from_str(r["Entities"].as_str().ok_or("Entities is a string")?).map_err(|e| e.to_string())?;
        let omitted = r.get("EntitiesOmitted").map_or(Some(0), Value::as_u64).ok_or("EntitiesOmitted is a number")?;
        if omitted == 0 && r.contains_key("EntitiesOmitted") {
            return Err("EntitiesOmitted is present but 0".into());
        }
        if entities.len() + omitted as usize != a.evidence.len() {
            return Err(format!("{} kept + {omitted} omitted != {} evidence", entities.len(), a.evidence.len()));
        }
        for (i, (kept, ev)) in entities.iter().zip(&a.evidence).enumerate() {
            if kept["Type"] != entity(ev)["Type"] {
                return Err(format!("entity {i} is not evidence {i}: order changed"));
            }
        }
        let ext: Value =
            serde_json::from_str(r["ExtendedProperties"].as_str().ok_or("a string")?).map_err(|e| e.to_string())?;
        if !ext.is_object() {
            return Err("ExtendedProperties is not an object".into());
        }
        Ok(())
    }

    #[test]
    fn five_thousand_evidence_items_keep_valid_entities_under_the_limit_and_count_the_rest() {
        let a = with_evidence(alert(), 5_000);
        let r = row(&a, "t", "29", &Uuid::nil());
        check_row(&a, &r).unwrap();
        let entities: Vec<Value> = serde_json::from_str(r["Entities"].as_str().unwrap()).unwrap();
        assert!(value_bytes(&r["Entities"]) <= MAX_VALUE_BYTES);
        assert!(entities.len() > 100, "as many whole entities as fit: {}", entities.len());
        assert_eq!(r["EntitiesOmitted"].as_u64().unwrap() as usize, 5_000 - entities.len());
        let full: Vec<Value> = a.evidence.iter().map(entity).collect();
        assert_eq!(entities[..], full[..entities.len()], "whole entities, in evidence order: the first ones kept");
        assert!(
            entities.len() + 1 < 5_000 && value_bytes(&r["Entities"]) > MAX_VALUE_BYTES - 400,
            "no room for one more"
        );
    }

    #[test]
    fn an_entity_too_big_alone_is_kept_with_its_long_strings_cut() {
        let mut a = alert();
        a.evidence = vec![json!({"@odata.type": "#microsoft.graph.security.processEvidence",
            "processCommandLine": "powershell -enc ".to_string() + &"QUJD".repeat(50_000)})];
        let r = row(&a, "t", "29", &Uuid::nil());
        check_row(&a, &r).unwrap();
        let entities: Vec<Value> = serde_json::from_str(r["Entities"].as_str().unwrap()).unwrap();
        let cmd = entities[0]["CommandLine"].as_str().unwrap();
        assert!(cmd.starts_with("powershell -enc QUJD"));
        assert!(cmd.ends_with("… [truncated by xdrsync from 200016 bytes]"), "{}", &cmd[cmd.len() - 60..]);
        assert!(!r.contains_key("EntitiesOmitted"));
    }

    #[test]
    fn long_strings_are_cut_at_a_char_boundary_with_a_visible_marker() {
        let mut a = alert();
        let long = "é😀\"\\\n\u{1}a".repeat(20_000);
        a.description = Some(long.clone());
        let r = row(&a, "t", "29", &Uuid::nil());
        check_row(&a, &r).unwrap();
        let d = r["Description"].as_str().unwrap();
        let (kept, marker) = d.split_once("… [truncated by xdrsync from ").unwrap();
        assert!(long.starts_with(kept), "a prefix of the original");
        assert_eq!(marker, format!("{} bytes]", long.len()));
        assert!(value_bytes(&r["Description"]) <= MAX_VALUE_BYTES);
        assert!(value_bytes(&r["Description"]) > MAX_VALUE_BYTES - 8, "cut no shorter than needed");
        // Short values are untouched.
        assert_eq!(cut("short", MAX_VALUE_BYTES), "short");
        assert_eq!(string_json_len("a\"\n\u{1}é"), 2 + 1 + 2 + 2 + 6 + 2);
        assert_eq!(string_json_len("a\"\n\u{1}é"), serde_json::to_string("a\"\n\u{1}é").unwrap().len());
    }

    #[test]
    fn oversized_extended_properties_stay_a_json_object() {
        let mut a = alert();
        a.additional_data =
            Some(json!((0..4_000).map(|i| (format!("key{i}"), json!("v".repeat(40)))).collect::<Map<String, Value>>()));
        let r = row(&a, "t", "29", &Uuid::nil());
        check_row(&a, &r).unwrap();
        let ext: Value = serde_json::from_str(r["ExtendedProperties"].as_str().unwrap()).unwrap();
        assert_eq!(ext["XdrsyncOmitted"], json!(["AdditionalData"]), "named, not silently gone");
        assert_eq!(ext["DetectionSource"], "antivirus");
    }

    #[test]
    fn a_row_of_many_long_strings_stays_within_one_call() {
        let mut a = alert();
        let long = "x".repeat(100_000);
        for f in [
            &mut a.title,
            &mut a.description,
            &mut a.recommended_actions,
            &mut a.alert_web_url,
            &mut a.product_name,
            &mut a.detection_source,
            &mut a.provider_alert_id,
            &mut a.category,
        ] {
            *f = Some(long.clone());
        }
        a.mitre_techniques = vec![long.clone()];
        a.id = long.clone();
        a.threat_display_name = Some(long.clone());
        a.additional_data = Some(json!({"blob": long}));
        a = with_evidence(a, 1_000);
        let (tenant, incident) = (long.clone(), long.clone());
        let r = row(&a, &tenant, &incident, &Uuid::nil());
        check_row(&a, &r).unwrap();
        // 14 plain columns and the 2 JSON ones at ~60,000 bytes each would exceed the row budget:
        // some column was cut further, and no more than needed.
        assert!(r.values().any(|v| v
            .as_str()
            .is_some_and(|s| s.len() < 40_000 && s.ends_with("truncated by xdrsync from 100000 bytes]"))));
        assert!(value_bytes(&Value::Object(r.clone())) > MAX_ROW_BYTES - 2 * MAX_VALUE_BYTES);
    }

    fn arb_string() -> impl Strategy<Value = String> {
        let piece = prop_oneof![Just("a"), Just("é"), Just("😀"), Just("\""), Just("\\"), Just("\n"), Just("\u{1}")];
        proptest::collection::vec((piece, 0usize..30_000), 0..4)
            .prop_map(|parts| parts.into_iter().map(|(p, n)| p.repeat(n)).collect())
    }

    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn every_value_of_any_row_stays_under_the_field_limit(
            n in 0usize..3_000,
            pad in 0usize..600,
            huge in proptest::option::of((0usize..3_000, 50_000usize..150_000)),
            raw_at in proptest::option::of(0usize..3_000),
            description in arb_string(),
            remediation in arb_string(),
            additional in arb_string(),
        ) {
            let mut a = alert();
            a.evidence = (0..n).map(|i| {
                let len = match huge { Some((at, len)) if at == i => len, _ => pad };
                if raw_at == Some(i) {
                    json!({"@odata.type": "#microsoft.graph.security.registryValueEvidence",
                           "registryValue": "é".repeat(len), "keys": (0..len / 10).collect::<Vec<_>>()})
                } else {
                    json!({"@odata.type": "#microsoft.graph.security.processEvidence", "processId": i,
                           "processCommandLine": "\"q\" ".repeat(len / 4 + 1)})
                }
            }).collect();
            a.description = Some(description);
            a.recommended_actions = Some(remediation);
            a.additional_data = Some(json!({"blob": additional}));
            let r = row(&a, "t", "29", &Uuid::nil());
            if let Err(e) = check_row(&a, &r) {
                return Err(TestCaseError::fail(e));
            }
        }
    }
}
