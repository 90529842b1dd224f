//! Flattened entity columns (ARCHITECTURE.md: “Native alerts”), pure: the analytics rules map
//! columns, not JSON, to entities. [`trigger_parts`] spreads an alert's entities over as many
//! trigger rows as its mapped entities need (docs/native-alerts.md); [`columns`] is the older
//! flattening kept in `XdrsyncAlerts_CL` rows (changing it would re-send every alert row).
//!
//! Documented (Learn, “Map data fields to entities”): at most 10 entity mappings per rule, 3
//! identifiers per mapping, 500 entities per alert. The rules map one entity per mapping and row,
//! so an alert gets at most 10 mapped entities; every entity stays in the `Entities` column of
//! `XdrsyncAlerts_CL`.

use serde_json::{Map, Value};

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
        for (k, v) in host_cols(h) {
            put(k, v);
        }
    }
    for (i, a) in of_type(entities, "account").take(2).enumerate() {
        for (k, v) in account_cols(a, i == 1) {
            put(k, v);
        }
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

/// The trigger rows' mappings (`infra/alert-rule.json`), `(entity type, [(column, identifier)])`.
///
/// Documented (Learn, “Microsoft Sentinel entity types reference”,
/// learn.microsoft.com/azure/sentinel/entities-reference): Host is strong with HostName +
/// DnsDomain or AzureID; Account with Name + UPNSuffix or AadUserId; IP with Address; FileHash
/// with Algorithm + Value; URL with Url; Mailbox with MailboxPrimaryAddress; Process is strong
/// only with Host + ProcessId + CreationTimeUtc, where Host is the Host entity of the same alert,
/// so every part carrying a process also carries a host mapping; CloudApplication's `AppId` is
/// deprecated, Name is a strong identifier on its own.
pub const TRIGGER_MAPPINGS: [(&str, &[(&str, &str)]); 10] = [
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
    (
        "Process",
        &[
            ("EntityProcessId", "ProcessId"),
            ("EntityProcessCommandLine", "CommandLine"),
            ("EntityProcessCreationTime", "CreationTimeUtc"),
        ],
    ),
    ("CloudApplication", &[("EntityCloudAppName", "Name")]),
];

/// Every column of [`TRIGGER_MAPPINGS`].
pub fn trigger_entity_columns() -> impl Iterator<Item = &'static str> {
    TRIGGER_MAPPINGS.iter().flat_map(|(_, ids)| ids.iter().map(|(c, _)| *c))
}

fn host_cols(h: &Value) -> Vec<(&'static str, Option<String>)> {
    vec![
        ("EntityHostName", text(h, "HostName")),
        ("EntityHostDnsDomain", text(h, "FQDN").and_then(|f| f.split_once('.').map(|(_, d)| d.to_string()))),
        ("EntityHostAzureId", text(h, "AzureID")),
    ]
}

fn account_cols(a: &Value, second: bool) -> Vec<(&'static str, Option<String>)> {
    let upn = text(a, "UserPrincipalName");
    let name = text(a, "Name").or_else(|| upn.as_deref().and_then(|u| u.split('@').next()).map(str::to_string));
    let [n, s, id] = if second {
        ["EntityAccount2Name", "EntityAccount2UPNSuffix", "EntityAccount2AadUserId"]
    } else {
        ["EntityAccountName", "EntityAccountUPNSuffix", "EntityAccountAadUserId"]
    };
    vec![(n, name), (s, text(a, "UPNSuffix")), (id, text(a, "AadUserId"))]
}

/// The entity columns of each trigger row of one alert: part k carries the k-th host, the
/// (2k-1)-th and 2k-th accounts and IPs, the k-th file hash, URL, mailbox, process and cloud
/// application. A part with a process but no host of its own carries the alert's first host, so
/// the process keeps its strong identifier. Always at least one part (possibly without entities).
pub fn trigger_parts(entities: &[Value]) -> Vec<Map<String, Value>> {
    let hosts: Vec<&Value> = of_type(entities, "host").collect();
    let accounts: Vec<&Value> = of_type(entities, "account").collect();
    let ips: Vec<String> = of_type(entities, "ip").filter_map(|e| text(e, "Address")).collect();
    let hashes: Vec<Value> = of_type(entities, "file")
        .filter_map(|f| f.get("FileHashes")?.as_array()?.first().cloned())
        .filter(|h| text(h, "Value").is_some())
        .collect();
    let urls: Vec<String> = of_type(entities, "url").filter_map(|u| text(u, "Url")).collect();
    let mailboxes: Vec<String> =
        of_type(entities, "mailbox").filter_map(|u| text(u, "MailboxPrimaryAddress")).collect();
    let processes: Vec<&Value> = of_type(entities, "process").filter(|p| text(p, "ProcessId").is_some()).collect();
    let apps: Vec<String> = of_type(entities, "cloudapplication")
        .filter_map(|c| c.get("Raw").and_then(|r| text(r, "displayName")))
        .collect();
    let n = [
        hosts.len(),
        accounts.len().div_ceil(2),
        ips.len().div_ceil(2),
        hashes.len(),
        urls.len(),
        mailboxes.len(),
        processes.len(),
        apps.len(),
    ]
    .into_iter()
    .max()
    .unwrap_or(0)
    .max(1);
    (0..n)
        .map(|k| {
            let mut cols: Vec<(&'static str, Option<String>)> = Vec::new();
            if let Some(h) = hosts.get(k).or_else(|| processes.get(k).and(hosts.first())) {
                cols.extend(host_cols(h));
            }
            for (j, a) in accounts.iter().skip(2 * k).take(2).enumerate() {
                cols.extend(account_cols(a, j == 1));
            }
            for (j, ip) in ips.iter().skip(2 * k).take(2).enumerate() {
                cols.push((["EntityIp", "EntityIp2"][j], Some(ip.clone())));
            }
            if let Some(h) = hashes.get(k) {
                cols.push(("EntityFileHashAlgorithm", text(h, "Algorithm")));
                cols.push(("EntityFileHashValue", text(h, "Value")));
            }
            cols.push(("EntityUrl", urls.get(k).cloned()));
            cols.push(("EntityMailbox", mailboxes.get(k).cloned()));
            if let Some(p) = processes.get(k) {
                cols.push(("EntityProcessId", text(p, "ProcessId")));
                cols.push(("EntityProcessCommandLine", text(p, "CommandLine")));
                cols.push(("EntityProcessCreationTime", text(p, "CreationTimeUtc")));
            }
            cols.push(("EntityCloudAppName", apps.get(k).cloned()));
            cols.into_iter().filter_map(|(c, v)| v.map(|v| (c.to_string(), Value::String(v)))).collect()
        })
        .collect()
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
        assert!(columns(&[]).is_empty(), "no entities, no columns");
    }

    #[test]
    fn entities_beyond_one_alerts_mappings_spread_over_parts_and_none_is_lost() {
        let mut entities: Vec<Value> = (0..5).map(|i| json!({"Type": "account", "Name": format!("u{i}")})).collect();
        entities.push(json!({"Type": "host", "HostName": "wks-1", "FQDN": "wks-1.contoso.com"}));
        entities.push(
            json!({"Type": "process", "ProcessId": 7, "CommandLine": "a", "CreationTimeUtc": "2026-01-01T00:00:00Z"}),
        );
        entities.push(
            json!({"Type": "process", "ProcessId": 8, "CommandLine": "b", "CreationTimeUtc": "2026-01-01T00:00:01Z"}),
        );
        entities.push(json!({"Type": "cloudapplication", "Raw": {"appId": 1, "displayName": "Office 365"}}));
        let parts = trigger_parts(&entities);
        assert_eq!(parts.len(), 3, "5 accounts at 2 per alert");
        let names: Vec<&str> = parts
            .iter()
            .flat_map(|p| ["EntityAccountName", "EntityAccount2Name"].into_iter().filter_map(|c| p.get(c)?.as_str()))
            .collect();
        assert_eq!(names, ["u0", "u1", "u2", "u3", "u4"], "every account once, in order");
        for p in parts.iter().filter(|p| p.contains_key("EntityProcessId")) {
            assert!(p.contains_key("EntityProcessCreationTime"), "the process keeps its strong identifier");
            assert_eq!(p["EntityHostName"], "wks-1", "with its host in the same alert");
        }
        assert_eq!(parts[1]["EntityProcessId"], "8");
        assert_eq!(parts[0]["EntityCloudAppName"], "Office 365");
        let declared: Vec<&str> = trigger_entity_columns().collect();
        assert!(parts.iter().all(|p| p.keys().all(|k| declared.contains(&k.as_str()))), "only mapped columns");
        assert!(!declared.contains(&"EntityCloudAppId"), "the deprecated AppId is not mapped");
        assert_eq!(trigger_parts(&[]).len(), 1, "an alert without entities still has its row");
    }

    #[test]
    fn the_trigger_mappings_stay_within_the_documented_limits() {
        assert!(TRIGGER_MAPPINGS.len() <= 10);
        assert!(TRIGGER_MAPPINGS.iter().all(|(_, ids)| !ids.is_empty() && ids.len() <= 3));
    }
}
