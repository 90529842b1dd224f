//! Realistic Defender incidents for the simulator: alerts from Defender for Endpoint, Identity,
//! Office 365, Cloud Apps, Entra ID Protection and Purview DLP, with device, user, IP, file,
//! process, URL and mailbox evidence in Graph's `alertEvidence` shapes. Deterministic per seed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use super::model::{GraphAlert, GraphIncident};
use super::world::World;

/// What to seed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SeedSpec {
    pub count: usize,
    pub seed: u64,
    pub min_alerts: usize,
    pub max_alerts: usize,
    /// How many of the incidents get more than 150 alerts.
    pub big_incidents: usize,
    pub big_alerts: usize,
    /// Give every seeded incident the same `lastUpdateDateTime`.
    pub same_timestamp: bool,
    /// Spread the incidents' `lastUpdateDateTime` evenly over this many past days (a tenant's
    /// history for a backfill); 0 = now.
    pub history_days: u32,
    /// Every alert's `serviceSource` (e.g. `microsoftSentinel`); default: by product.
    pub service_source: Option<String>,
}

impl Default for SeedSpec {
    fn default() -> Self {
        Self {
            count: 10,
            seed: 7,
            min_alerts: 1,
            max_alerts: 6,
            big_incidents: 0,
            big_alerts: 180,
            same_timestamp: false,
            history_days: 0,
            service_source: None,
        }
    }
}

struct Product {
    service_source: &'static str,
    detection_source: &'static str,
    product_name: &'static str,
    titles: &'static [(&'static str, &'static str, &'static [&'static str])],
    evidence: &'static [Evidence],
}

#[derive(Clone, Copy)]
enum Evidence {
    Device,
    User,
    Ip,
    File,
    Process,
    Url,
    Mailbox,
}

const PRODUCTS: &[Product] = &[
    Product {
        service_source: "microsoftDefenderForEndpoint",
        detection_source: "microsoftDefenderForEndpoint",
        product_name: "Microsoft Defender for Endpoint",
        titles: &[
            ("Suspicious PowerShell command line", "Execution", &["T1059.001"]),
            ("Ransomware behavior detected in the file system", "Impact", &["T1486"]),
            ("Suspicious access to LSASS service", "CredentialAccess", &["T1003.001"]),
            ("Hidden file dropped by an unusual process", "DefenseEvasion", &["T1564.001"]),
        ],
        evidence: &[Evidence::Device, Evidence::Process, Evidence::File, Evidence::User, Evidence::Ip],
    },
    Product {
        service_source: "microsoftDefenderForIdentity",
        detection_source: "microsoftDefenderForIdentity",
        product_name: "Microsoft Defender for Identity",
        titles: &[
            ("Suspected DCSync attack (replication of directory services)", "CredentialAccess", &["T1003.006"]),
            ("Suspected Kerberos SPN exposure", "CredentialAccess", &["T1558.003"]),
            ("Account enumeration reconnaissance", "Discovery", &["T1087.002"]),
        ],
        evidence: &[Evidence::User, Evidence::Device, Evidence::Ip],
    },
    Product {
        service_source: "microsoftDefenderForOffice365",
        detection_source: "microsoftDefenderForOffice365",
        product_name: "Microsoft Defender for Office 365",
        titles: &[
            ("Email messages containing malicious URL removed after delivery", "InitialAccess", &["T1566.002"]),
            ("A potentially malicious URL click was detected", "InitialAccess", &["T1204.001"]),
        ],
        evidence: &[Evidence::Mailbox, Evidence::Url, Evidence::User],
    },
    Product {
        service_source: "microsoftDefenderForCloudApps",
        detection_source: "cloudAppSecurity",
        product_name: "Microsoft Defender for Cloud Apps",
        titles: &[
            ("Impossible travel activity", "InitialAccess", &["T1078"]),
            ("Mass download by a single user", "Exfiltration", &["T1530"]),
        ],
        evidence: &[Evidence::User, Evidence::Ip],
    },
    Product {
        service_source: "azureAdIdentityProtection",
        detection_source: "azureAdIdentityProtection",
        product_name: "Microsoft Entra ID Protection",
        titles: &[
            ("Unfamiliar sign-in properties", "InitialAccess", &["T1078.004"]),
            ("Anonymous IP address", "InitialAccess", &["T1090.003"]),
        ],
        evidence: &[Evidence::User, Evidence::Ip],
    },
    Product {
        service_source: "dataLossPrevention",
        detection_source: "microsoftDataLossPrevention",
        product_name: "Microsoft Purview Data Loss Prevention",
        titles: &[("DLP policy (Financial data) matched for email", "Exfiltration", &["T1048"])],
        evidence: &[Evidence::User, Evidence::Mailbox, Evidence::File],
    },
];

const USERS: &[(&str, &str)] =
    &[("ann", "Ann Miller"), ("raj", "Raj Patel"), ("li", "Li Wei"), ("omar", "Omar Haddad"), ("sofia", "Sofia Rossi")];
const DEVICES: &[&str] = &["wks-fin-042", "srv-dc-01", "lap-hr-007", "wks-dev-113", "srv-sql-02"];

fn evidence(rng: &mut StdRng, kind: Evidence, at: OffsetDateTime) -> Value {
    let (user, name) = USERS[rng.gen_range(0..USERS.len())];
    let device = DEVICES[rng.gen_range(0..DEVICES.len())];
    let created = super::timefmt::format(at);
    let verdict = ["suspicious", "malicious", "unknown"][rng.gen_range(0..3)];
    let user_account = json!({"accountName": user, "domainName": "CONTOSO", "displayName": name,
        "userPrincipalName": format!("{user}@contoso.com"), "azureAdUserId": uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_DNS, user.as_bytes()).to_string(),
        "userSid": format!("S-1-5-21-1111111111-2222222222-3333333333-{}", 1100 + rng.gen_range(0..900))});
    let base = |t: &str, roles: &[&str]| {
        json!({"@odata.type": format!("#microsoft.graph.security.{t}"), "createdDateTime": created,
        "verdict": verdict, "remediationStatus": "none", "remediationStatusDetails": null, "roles": roles, "detailedRoles": [], "tags": []})
    };
    let sha = format!("{:064x}", rng.gen::<u128>());
    let mut v = match kind {
        Evidence::Device => {
            let mut v = base("deviceEvidence", &[]);
            v["deviceDnsName"] = json!(format!("{device}.contoso.com"));
            v["mdeDeviceId"] = json!(format!("{:040x}", rng.gen::<u128>()));
            v["azureAdDeviceId"] = json!(uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_DNS, device.as_bytes()).to_string());
            v["osPlatform"] = json!("Windows11");
            v["osBuild"] = json!(22631);
            v["healthStatus"] = json!("active");
            v["riskScore"] = json!(["low", "medium", "high"][rng.gen_range(0..3)]);
            v["onboardingStatus"] = json!("onboarded");
            v["loggedOnUsers"] = json!([{"accountName": user, "domainName": "CONTOSO"}]);
            v["ipInterfaces"] = json!([format!("10.1.{}.{}", rng.gen_range(0..255), rng.gen_range(1..255))]);
            v
        }
        Evidence::User => {
            let mut v = base("userEvidence", &["compromised"]);
            v["userAccount"] = user_account;
            v
        }
        Evidence::Ip => {
            let mut v = base("ipEvidence", &["attacker"]);
            v["ipAddress"] = json!(format!(
                "{}.{}.{}.{}",
                rng.gen_range(20..223),
                rng.gen_range(0..255),
                rng.gen_range(0..255),
                rng.gen_range(1..255)
            ));
            v["countryLetterCode"] = json!(["NL", "US", "RU", "BR", "SG"][rng.gen_range(0..5)]);
            v
        }
        Evidence::File => {
            let mut v = base("fileEvidence", &[]);
            v["detectionStatus"] = json!("detected");
            v["mdeDeviceId"] = json!(format!("{:040x}", rng.gen::<u128>()));
            let file_name = ["invoice.docm", "payload.dll", "q3-report.xlsx"][rng.gen_range(0..3)];
            v["fileDetails"] = json!({"fileName": file_name,
                "filePath": "C:\\Users\\Public\\Downloads", "fileSize": rng.gen_range(1_000..5_000_000), "sha1": &sha[..40], "sha256": sha,
                "md5": &sha[..32], "fileSize@odata.type": "#Int64"});
            v
        }
        Evidence::Process => {
            let mut v = base("processEvidence", &[]);
            v["processId"] = json!(rng.gen_range(1000..30000));
            v["parentProcessId"] = json!(rng.gen_range(100..1000));
            v["processCommandLine"] = json!("powershell.exe -nop -w hidden -enc SQBFAFgA");
            v["processCreationDateTime"] = json!(created);
            v["imageFile"] = json!({"fileName": "powershell.exe", "filePath": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0", "sha1": &sha[..40]});
            v["userAccount"] = user_account;
            v["detectionStatus"] = json!("detected");
            v
        }
        Evidence::Url => {
            let mut v = base("urlEvidence", &[]);
            v["url"] = json!(format!("https://login-contoso.example.net/{}", rng.gen_range(1000..9999)));
            v
        }
        Evidence::Mailbox => {
            let mut v = base("mailboxEvidence", &[]);
            v["displayName"] = json!(name);
            v["primaryAddress"] = json!(format!("{user}@contoso.com"));
            v["upn"] = json!(format!("{user}@contoso.com"));
            v["userAccount"] = user_account;
            v
        }
    };
    // Property annotations (`fileSize@odata.type`) are dropped; the evidence's own `@odata.type`
    // stays: Graph writes it for every derived type in a collection of the base type (OData
    // minimal metadata), and it is how a client tells a device from a user.
    if let Some(m) = v.as_object_mut() {
        m.retain(|k, _| k == "@odata.type" || !k.ends_with("@odata.type"));
    }
    v
}

/// A new alert for `incident_id` (id unique within the world).
pub fn make_alert(rng: &mut StdRng, seq: u64, tenant: &str, incident_id: &str, at: OffsetDateTime) -> GraphAlert {
    let p = &PRODUCTS[rng.gen_range(0..PRODUCTS.len())];
    let (title, category, techniques) = p.titles[rng.gen_range(0..p.titles.len())];
    let n_evidence = rng.gen_range(1..=p.evidence.len());
    let ev = (0..n_evidence).map(|i| evidence(rng, p.evidence[i], at)).collect();
    let id = format!("da{}_{}", 637_000_000_000_000_000u64 + seq, -(rng.gen_range(1..2_000_000_000i64)));
    let severity = ["low", "medium", "high", "informational"][rng.gen_range(0..4)];
    let first = at - Duration::minutes(rng.gen_range(1..240));
    GraphAlert {
        id: id.clone(),
        provider_alert_id: format!("{:x}", rng.gen::<u64>()),
        incident_id: Some(incident_id.to_string()),
        status: "new".into(),
        severity: severity.into(),
        classification: "unknown".into(),
        determination: "unknown".into(),
        service_source: p.service_source.into(),
        detection_source: p.detection_source.into(),
        detector_id: uuid::Uuid::from_u128(rng.gen()).to_string(),
        tenant_id: tenant.to_string(),
        title: title.into(),
        description: format!("{title}. Review the evidence and the device timeline."),
        recommended_actions: "Isolate the device, reset the user's credentials, and review related activity.".into(),
        category: category.into(),
        assigned_to: None,
        alert_web_url: format!("https://security.microsoft.com/alerts/{id}?tid={tenant}"),
        incident_web_url: format!("https://security.microsoft.com/incidents/{incident_id}?tid={tenant}"),
        actor_display_name: None,
        threat_display_name: None,
        threat_family_name: None,
        mitre_techniques: techniques.iter().map(|t| t.to_string()).collect(),
        created_date_time: at,
        last_update_date_time: at,
        resolved_date_time: None,
        first_activity_date_time: first,
        last_activity_date_time: at,
        product_name: p.product_name.into(),
        evidence: ev,
        system_tags: vec![],
        comments: vec![],
        custom_details: None,
        // Set by the caller when the alert enters the world.
        seq: 0,
    }
}

/// Puts `alert` into the world with the next insertion sequence number.
pub fn insert_alert(world: &mut World, mut alert: GraphAlert) {
    alert.seq = world.next_seq();
    world.alerts.insert(alert.id.clone(), alert);
}

/// Seeds incidents; returns their ids.
pub fn seed(world: &mut World, tenant: &str, spec: &SeedSpec) -> Vec<String> {
    let mut rng = StdRng::seed_from_u64(spec.seed ^ world.next_incident_id);
    let shared_time = world.now();
    let mut ids = Vec::new();
    for n in 0..spec.count {
        let id = world.next_incident_id.to_string();
        world.next_incident_id += 1;
        let at = if spec.same_timestamp {
            shared_time
        } else if spec.history_days > 0 {
            // Oldest first, evenly over the history, each a distinct time.
            let span = Duration::days(i64::from(spec.history_days));
            let step = span / (spec.count.max(1) as i32);
            let base = world.now() - span;
            base + step * (n as i32) + Duration::nanoseconds(100 * n as i64)
        } else {
            world.now()
        };
        let alert_count = if n < spec.big_incidents {
            spec.big_alerts
        } else {
            rng.gen_range(spec.min_alerts.max(1)..=spec.max_alerts.max(spec.min_alerts.max(1)))
        };
        let alerts: Vec<GraphAlert> = (0..alert_count)
            .map(|_| {
                world.next_alert_seq += 1;
                let mut a = make_alert(&mut rng, world.next_alert_seq, tenant, &id, at);
                if let Some(source) = &spec.service_source {
                    a.service_source = source.clone();
                }
                a
            })
            .collect();
        let first_title = alerts[0].title.clone();
        let categories: std::collections::BTreeSet<&str> = alerts.iter().map(|a| a.category.as_str()).collect();
        let display_name = if categories.len() > 1 {
            format!(
                "Multi-stage incident involving {} reported by multiple sources",
                categories.into_iter().take(3).collect::<Vec<_>>().join(" & ")
            )
        } else {
            format!("{first_title} involving one user")
        };
        let severity = alerts.iter().map(|a| a.severity.as_str()).max_by_key(|s| severity_rank(s)).unwrap_or("medium");
        let incident = GraphIncident {
            id: id.clone(),
            tenant_id: tenant.to_string(),
            display_name,
            description: Some(format!("Correlated {} alert(s). First seen: {first_title}.", alerts.len())),
            summary: None,
            created_date_time: at - Duration::seconds(rng.gen_range(0..600)),
            last_update_date_time: at,
            status: "active".into(),
            severity: severity.to_string(),
            assigned_to: None,
            classification: "unknown".into(),
            determination: "unknown".into(),
            custom_tags: if rng.gen_bool(0.3) { vec!["VIP".into()] } else { vec![] },
            system_tags: vec![],
            incident_web_url: format!("https://security.microsoft.com/incident2/{id}/overview?tid={tenant}"),
            redirect_incident_id: None,
            resolving_comment: None,
            last_modified_by: Some("Microsoft 365 Defender-AlertCorrelation".into()),
            priority_score: Some(rng.gen_range(0..100)),
            comments: vec![],
            seq: world.next_seq(),
        };
        for a in alerts {
            insert_alert(world, a);
        }
        world.incidents.insert(id.parse().unwrap_or_default(), incident);
        ids.push(id);
    }
    ids
}

/// Rank of an `alertSeverity` member (high first).
pub fn severity_rank(s: &str) -> u8 {
    match s {
        "high" => 4,
        "medium" => 3,
        "low" => 2,
        "informational" => 1,
        _ => 0,
    }
}

/// An RNG for edits (adding alerts), seeded from the world.
pub fn edit_rng(world: &World) -> StdRng {
    StdRng::seed_from_u64(world.next_incident_id ^ world.alerts.len() as u64 ^ 0x5eed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeding_one_at_a_time_never_reuses_an_alert_id() {
        let mut world = World::new(&super::super::SimConfig::demo());
        let mut made = 0;
        for k in 0..300u64 {
            let spec = SeedSpec { count: 1, seed: 42 + k, ..Default::default() };
            for id in seed(&mut world, "t", &spec) {
                made += world.alerts_of(&id).len();
            }
        }
        assert_eq!(world.alerts.len(), made, "every generated alert is still there");
        assert_eq!(world.incidents.len(), 300);
        assert!(world.incidents.keys().all(|id| !world.alerts_of(&id.to_string()).is_empty()));
    }
}
