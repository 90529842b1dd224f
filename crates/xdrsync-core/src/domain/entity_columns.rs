//! Flattened entity columns of an alert row (ARCHITECTURE.md: “Native alerts”), pure: the
//! analytics rule maps columns, not JSON, to entities, so each row carries the first entity of
//! each kind (and a second account and IP) as plain columns.
//!
//! Documented (Learn, “Map data fields to entities”): at most 10 entity mappings per rule, 3
//! identifiers per mapping, 500 entities per alert; the identifiers used here are the documented
//! strong or weak identifiers of each entity type. The rule maps one entity per mapping and row,
//! so an alert gets at most 10 mapped entities; every entity stays in the `Entities` column.

use serde_json::{Map, Value};

/// `(column, entity type, identifier)`, grouped by mapping, as `infra/alert-rule.bicep` maps them.
pub const MAPPINGS: [(&str, &[(&str, &str)]); 10] = [
    ("Host", &[("EntityHostName", "HostName"), ("EntityHostDnsDomain", "DnsDomain"), ("EntityHostAzureId", "AzureID")]),
    (
        "Account",
        &[
            ("EntityAccountName", "Name"),
            ("EntityAccountUPNSuffix", "UPNSuffix"),
            ("EntityAccountAadUserId", "AadUserId"),
        ],
    ),
    (
        "Account",
        &[
            ("EntityAccount2Name", "Name"),
            ("EntityAccount2UPNSuffix", "UPNSuffix"),
            ("EntityAccount2AadUserId", "AadUserId"),
        ],
    ),
    ("IP", &[("EntityIp", "Address")]),
    ("IP", &[("EntityIp2", "Address")]),
    ("FileHash", &[("EntityFileHashAlgorithm", "Algorithm"), ("EntityFileHashValue", "Value")]),
    ("URL", &[("EntityUrl", "Url")]),
    ("Mailbox", &[("EntityMailbox", "MailboxPrimaryAddress")]),
    ("Process", &[("EntityProcessId", "ProcessId"), ("EntityProcessCommandLine", "CommandLine")]),
    ("CloudApplication", &[("EntityCloudAppId", "AppId"), ("EntityCloudAppName", "Name")]),
];

fn text(e: &Value, k: &str) -> Option<String> {
    match e.get(k)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn of_type<'a>(entities: &'a [Value], t: &str) -> impl Iterator<Item = &'a Value> + 'a {
    let t = t.to_string();
    entities.iter().filter(move |e| e.get("Type").and_then(Value::as_str) == Some(t.as_str()))
}

/// The flattened columns of `entities` (the row's `Entities`, in evidence order). Columns with no
/// value are absent, so the row stays as small as before for alerts without such entities.
pub fn columns(entities: &[Value]) -> Map<String, Value> {
    let mut m = Map::new();
    let mut put = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            m.insert(k.to_string(), Value::String(v));
        }
    };
    if let Some(h) = of_type(entities, "host").next() {
        put("EntityHostName", text(h, "HostName"));
        put("EntityHostDnsDomain", text(h, "FQDN").and_then(|f| f.split_once('.').map(|(_, d)| d.to_string())));
        put("EntityHostAzureId", text(h, "AzureID"));
    }
    let accounts: Vec<&Value> = of_type(entities, "account").collect();
    for (a, prefix) in accounts.iter().zip(["EntityAccount", "EntityAccount2"]) {
        let upn = text(a, "UserPrincipalName");
        let name = text(a, "Name").or_else(|| upn.as_deref().and_then(|u| u.split('@').next()).map(str::to_string));
        put(&format!("{prefix}Name"), name);
        put(&format!("{prefix}UPNSuffix"), text(a, "UPNSuffix"));
        put(&format!("{prefix}AadUserId"), text(a, "AadUserId"));
    }
    for (ip, col) in of_type(entities, "ip").zip(["EntityIp", "EntityIp2"]) {
        put(col, text(ip, "Address"));
    }
    let hash = of_type(entities, "file").find_map(|f| f.get("FileHashes")?.as_array()?.first().cloned());
    if let Some(h) = hash {
        put("EntityFileHashAlgorithm", text(&h, "Algorithm"));
        put("EntityFileHashValue", text(&h, "Value"));
    }
    put("EntityUrl", of_type(entities, "url").find_map(|u| text(u, "Url")));
    put("EntityMailbox", of_type(entities, "mailbox").find_map(|u| text(u, "MailboxPrimaryAddress")));
    if let Some(p) = of_type(entities, "process").next() {
        put("EntityProcessId", text(p, "ProcessId"));
        put("EntityProcessCommandLine", text(p, "CommandLine"));
    }
    if let Some(raw) = of_type(entities, "cloudapplication").find_map(|c| c.get("Raw")) {
        put("EntityCloudAppId", text(raw, "appId"));
        put("EntityCloudAppName", text(raw, "displayName"));
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_first_entity_of_each_kind_becomes_columns() {
        let entities = vec![
            json!({"Type": "host", "HostName": "wks-1", "FQDN": "wks-1.contoso.com", "AzureID": "dev-1"}),
            json!({"Type": "account", "Name": "ann", "UPNSuffix": "contoso.com", "AadUserId": "u-1", "UserPrincipalName": "ann@contoso.com"}),
            json!({"Type": "account", "UserPrincipalName": "bob@contoso.com", "UPNSuffix": "contoso.com"}),
            json!({"Type": "account", "Name": "third"}),
            json!({"Type": "ip", "Address": "203.0.113.5"}),
            json!({"Type": "ip", "Address": "203.0.113.6"}),
            json!({"Type": "ip", "Address": "203.0.113.7"}),
            json!({"Type": "file", "FileHashes": [{"Algorithm": "SHA256", "Value": "abc"}]}),
            json!({"Type": "url", "Url": "https://x.example"}),
            json!({"Type": "mailbox", "MailboxPrimaryAddress": "ann@contoso.com"}),
            json!({"Type": "process", "ProcessId": 42, "CommandLine": "cmd /c"}),
            json!({"Type": "cloudapplication", "Raw": {"appId": 11161, "displayName": "Office 365"}}),
        ];
        let c = columns(&entities);
        assert_eq!(c["EntityHostName"], "wks-1");
        assert_eq!(c["EntityHostDnsDomain"], "contoso.com");
        assert_eq!(c["EntityAccountName"], "ann");
        assert_eq!(c["EntityAccount2Name"], "bob", "the name part of the UPN when Name is absent");
        assert_eq!(c["EntityIp2"], "203.0.113.6");
        assert_eq!(c["EntityFileHashValue"], "abc");
        assert_eq!(c["EntityProcessId"], "42");
        assert_eq!(c["EntityCloudAppId"], "11161");
        let declared: Vec<&str> = MAPPINGS.iter().flat_map(|(_, ids)| ids.iter().map(|(c, _)| *c)).collect();
        assert!(c.keys().all(|k| declared.contains(&k.as_str())), "only mapped columns");
        assert!(columns(&[]).is_empty(), "no entities, no columns");
    }

    #[test]
    fn the_mappings_stay_within_the_documented_limits() {
        assert!(MAPPINGS.len() <= 10, "at most 10 entity mappings per rule");
        assert!(MAPPINGS.iter().all(|(_, ids)| !ids.is_empty() && ids.len() <= 3), "1 to 3 identifiers each");
    }
}
