//! What the Sentinel incident of a Defender incident should look like (ARCHITECTURE.md: “What it does”, “The three-way merge”), pure:
//! Defender-owned fields (title, description with the deep link and an alert summary, activity
//! times, owned labels) plus the merged synced fields, on top of whatever Sentinel holds that
//! xdrsync does not own (AutoAssigned labels, a classification comment).

use time::OffsetDateTime;

use super::defender::{DefenderAlert, DefenderIncident, IncidentStatus};
use super::fields::*;
use super::sentinel::*;

/// Sentinel's description limit, in characters.
pub const MAX_DESCRIPTION: usize = 5000;
/// Sentinel shows at most this many alerts per incident.
pub const SENTINEL_ALERT_CAP: usize = 150;

/// What the mirror needs to know about the alerts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertSummary {
    pub count: usize,
    pub lines: Vec<String>,
    pub first_activity: Option<OffsetDateTime>,
    pub last_activity: Option<OffsetDateTime>,
}

impl AlertSummary {
    pub fn of(alerts: &[DefenderAlert]) -> Self {
        let mut sorted: Vec<&DefenderAlert> = alerts.iter().collect();
        sorted.sort_by(|a, b| a.created_date_time.cmp(&b.created_date_time).then_with(|| a.id.cmp(&b.id)));
        let lines = sorted
            .iter()
            .map(|a| {
                let product = a.product_name.as_deref().or(a.service_source.as_deref()).unwrap_or("Defender");
                let techniques = if a.mitre_techniques.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", a.mitre_techniques.join(", "))
                };
                format!("- {} [{product}]{techniques}", a.title.as_deref().unwrap_or("Untitled alert"))
            })
            .collect();
        Self {
            count: alerts.len(),
            lines,
            first_activity: alerts.iter().filter_map(|a| a.first_activity_date_time.or(a.created_date_time)).min(),
            last_activity: alerts.iter().filter_map(|a| a.last_activity_date_time.or(a.last_update_date_time)).max(),
        }
    }
}

/// The Defender owner resolved against Entra (objectId `None` = Entra has no such user).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedOwner {
    pub upn: String,
    pub object_id: Option<String>,
}

/// Cuts `s` to at most `max` characters, marking the cut.
pub fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let marker = "\n… (truncated; full details in Defender)";
    let keep = max.saturating_sub(marker.chars().count());
    let mut out: String = s.chars().take(keep).collect();
    out.push_str(marker);
    out
}

/// The Sentinel description: a line with the Defender id and link, Defender's description,
/// then the alert summary; at most 5,000 characters.
pub fn description(i: &DefenderIncident, alerts: &AlertSummary) -> String {
    let link = i.incident_web_url.as_deref().unwrap_or("(no link)");
    let mut s = format!("Defender XDR incident {}: {link}\n", i.id);
    if let Some(d) = i.description.as_deref().filter(|d| !d.trim().is_empty()) {
        s.push('\n');
        s.push_str(d.trim());
        s.push('\n');
    }
    if alerts.count > 0 {
        let note = if alerts.count > SENTINEL_ALERT_CAP {
            " — more than Sentinel's 150; all are in the alerts table and in Defender"
        } else {
            ""
        };
        s.push_str(&format!("\nAlerts ({}{note}):\n", alerts.count));
        s.push_str(&alerts.lines.join("\n"));
    }
    truncate_chars(&s, MAX_DESCRIPTION)
}

/// Inputs of [`desired`].
pub struct MirrorInput<'a> {
    pub incident: &'a DefenderIncident,
    pub alerts: &'a AlertSummary,
    /// The merged synced fields.
    pub target: &'a Fields,
    /// The target owner resolved to an objectId (when the target has an owner).
    pub owner: Option<&'a ResolvedOwner>,
    /// What Sentinel holds now, if the incident exists.
    pub current: Option<&'a SentinelWritable>,
    /// The Defender tenant to show (multi-tenant mode only: title prefix, label, `tid` link).
    pub tenant: Option<&'a super::tenants::TenantBadge>,
}

/// The full set of writable properties the Sentinel incident should have.
pub fn desired(input: &MirrorInput<'_>) -> SentinelWritable {
    let i = input.incident;
    let t = input.target;
    let current = input.current;
    let redirected = i.status == IncidentStatus::Redirected;

    let status = if redirected { Status::Closed } else { t.status.unwrap_or(Status::Open) };
    let (classification, classification_reason) = if status == Status::Closed {
        let keep_incorrect_logic =
            current.is_some_and(|c| c.classification_reason == Some(ClassificationReason::IncorrectAlertLogic));
        let (c, r) = verdict_to_sentinel(t.verdict.unwrap_or(Verdict::Undetermined), keep_incorrect_logic);
        (Some(c), r)
    } else {
        (None, None)
    };
    let classification_comment = match (status, i.resolving_comment.as_deref()) {
        (Status::Closed, Some(c)) if !c.trim().is_empty() => Some(truncate_chars(c, MAX_DESCRIPTION)),
        _ => current.and_then(|c| c.classification_comment.clone()),
    };

    let mut labels: Vec<Label> = vec![Label::user(PRODUCT_LABEL)];
    if let Some(b) = input.tenant {
        labels.push(Label::user(b.label()));
    }
    if redirected {
        labels.push(Label::user(REDIRECTED_LABEL));
    }
    if input.alerts.count > SENTINEL_ALERT_CAP {
        labels.push(Label::user(BIG_INCIDENT_LABEL));
    }
    let owner = match (t.owner.as_ref().and_then(|o| o.as_ref()), input.owner) {
        (Some(upn), Some(r)) if r.upn == *upn && r.object_id.is_some() => {
            Some(Owner { object_id: r.object_id.clone(), user_principal_name: Some(upn.clone()), ..Default::default() })
        }
        (Some(upn), _) => {
            labels.push(Label::user(format!("{UNKNOWN_OWNER_PREFIX}{upn}")));
            None
        }
        (None, _) => None,
    };
    for tag in t.tags.iter().flatten() {
        labels.push(Label::user(tag.clone()));
    }
    if let Some(c) = current {
        for l in c.labels.iter().filter(|l| l.label_type == Some(LabelType::AutoAssigned)) {
            labels.push(l.clone());
        }
    }

    let title = i
        .display_name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| format!("Defender XDR incident {}", i.id));
    let desc = match input.tenant {
        Some(b) => {
            let mut linked = i.clone();
            linked.incident_web_url = i.incident_web_url.as_deref().map(|l| b.deep_link(l));
            description(&linked, input.alerts)
        }
        None => description(i, input.alerts),
    };
    SentinelWritable {
        title: match input.tenant {
            Some(b) => b.title(&title),
            None => title,
        },
        description: Some(desc),
        severity: level_to_sentinel(t.severity.unwrap_or(Level::Medium)),
        status: status_to_sentinel(status),
        classification,
        classification_reason,
        classification_comment,
        owner,
        labels,
        first_activity_time_utc: input.alerts.first_activity.or(i.created_date_time),
        last_activity_time_utc: input.alerts.last_activity.or(Some(i.last_update_date_time)),
    }
}

/// Whether writing `desired` would change what Sentinel holds. Server-filled owner fields and
/// label order do not count.
pub fn differs(desired: &SentinelWritable, current: &SentinelWritable) -> bool {
    let owner_id = |w: &SentinelWritable| w.owner.as_ref().and_then(|o| o.object_id.clone());
    let labels = |w: &SentinelWritable| {
        let mut v: Vec<String> = w.labels.iter().map(|l| l.label_name.clone()).collect();
        v.sort();
        v
    };
    desired.title != current.title
        || desired.description != current.description
        || desired.severity != current.severity
        || desired.status != current.status
        || desired.classification != current.classification
        || desired.classification_reason != current.classification_reason
        || desired.classification_comment != current.classification_comment
        || owner_id(desired) != owner_id(current)
        || labels(desired) != labels(current)
        || desired.first_activity_time_utc != current.first_activity_time_utc
        || desired.last_activity_time_utc != current.last_activity_time_utc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::defender::Classification;

    fn incident() -> DefenderIncident {
        serde_json::from_value(serde_json::json!({
            "id": "29", "displayName": "Multi-stage incident", "description": "Defender says so",
            "incidentWebUrl": "https://security.microsoft.com/incidents/29?tid=t",
            "lastUpdateDateTime": "2026-01-01T00:00:00Z", "createdDateTime": "2025-12-31T23:00:00Z",
            "status": "active", "severity": "high", "customTags": ["VIP"]
        }))
        .unwrap()
    }

    fn mirror(
        i: &DefenderIncident,
        alerts: &AlertSummary,
        t: &Fields,
        owner: Option<&ResolvedOwner>,
    ) -> SentinelWritable {
        desired(&MirrorInput { incident: i, alerts, target: t, owner, current: None, tenant: None })
    }

    fn target(status: Status, owner: Option<&str>) -> Fields {
        Fields {
            status: Some(status),
            verdict: Some(Verdict::TruePositive),
            owner: Some(owner.map(str::to_string)),
            severity: Some(Level::High),
            tags: Some(["VIP".to_string()].into()),
        }
    }

    #[test]
    fn open_incident_has_no_classification_and_carries_link_and_labels() {
        let i = incident();
        let s = AlertSummary::default();
        let t = target(Status::Open, None);
        let w = mirror(&i, &s, &t, None);
        assert_eq!(w.status, SentinelStatus::New);
        assert_eq!(w.classification, None);
        assert!(w
            .description
            .as_deref()
            .unwrap()
            .starts_with("Defender XDR incident 29: https://security.microsoft.com/incidents/29"));
        let names: Vec<_> = w.labels.iter().map(|l| l.label_name.as_str()).collect();
        assert_eq!(names, vec!["Microsoft Defender XDR", "VIP"]);
        assert_eq!(w.severity, SentinelSeverity::High);
    }

    #[test]
    fn a_tenant_mirror_shows_its_tenant_and_the_label_is_no_tag() {
        let i = incident();
        let t = target(Status::Open, None);
        let b = crate::domain::tenants::TenantBadge { tenant_id: "abc".into(), display_name: "Contoso".into() };
        let w = desired(&MirrorInput {
            incident: &i,
            alerts: &AlertSummary::default(),
            target: &t,
            owner: None,
            current: None,
            tenant: Some(&b),
        });
        assert_eq!(w.title, "[Contoso] Multi-stage incident");
        assert!(w.description.as_deref().unwrap().contains("https://security.microsoft.com/incidents/29?tid=abc\n"));
        let names: Vec<_> = w.labels.iter().map(|l| l.label_name.as_str()).collect();
        assert_eq!(names, vec!["Microsoft Defender XDR", "Defender tenant: Contoso", "VIP"]);
        // Read back from Sentinel, the tenant label is not a tag: it never reaches Defender.
        let tags: Vec<&str> = w
            .labels
            .iter()
            .map(|l| l.label_name.as_str())
            .filter(|n| !crate::domain::fields::is_owned_label(n))
            .collect();
        assert_eq!(tags, vec!["VIP"]);
    }

    #[test]
    fn closed_gets_classification_and_reason() {
        let i = incident();
        let t = target(Status::Closed, None);
        let w = mirror(&i, &AlertSummary::default(), &t, None);
        assert_eq!(w.status, SentinelStatus::Closed);
        assert_eq!(w.classification, Some(SentinelClassification::TruePositive));
        assert_eq!(w.classification_reason, Some(ClassificationReason::SuspiciousActivity));
    }

    #[test]
    fn redirected_is_closed_with_label() {
        let mut i = incident();
        i.status = IncidentStatus::Redirected;
        i.classification = Some(Classification::Unknown);
        let mut t = target(Status::Open, None);
        t.verdict = Some(Verdict::Undetermined);
        let w = mirror(&i, &AlertSummary::default(), &t, None);
        assert_eq!(w.status, SentinelStatus::Closed);
        assert_eq!(w.classification, Some(SentinelClassification::Undetermined));
        assert!(w.labels.iter().any(|l| l.label_name == "Redirected"));
    }

    #[test]
    fn owner_resolved_or_kept_in_a_label() {
        let i = incident();
        let t = target(Status::InProgress, Some("bob@contoso.com"));
        let known = ResolvedOwner { upn: "bob@contoso.com".into(), object_id: Some("oid-1".into()) };
        let w = mirror(&i, &AlertSummary::default(), &t, Some(&known));
        assert_eq!(w.owner.unwrap().object_id.as_deref(), Some("oid-1"));
        let unknown = ResolvedOwner { upn: "bob@contoso.com".into(), object_id: None };
        let w = mirror(&i, &AlertSummary::default(), &t, Some(&unknown));
        assert!(w.owner.is_none());
        assert!(w.labels.iter().any(|l| l.label_name == "Defender owner: bob@contoso.com"));
    }

    #[test]
    fn description_is_cut_to_5000_characters() {
        let mut i = incident();
        i.description = Some("é".repeat(9000));
        let d = description(&i, &AlertSummary::default());
        assert_eq!(d.chars().count(), 5000);
        assert!(d.ends_with("full details in Defender)"));
    }

    #[test]
    fn big_incidents_get_the_150_plus_label_and_count() {
        let i = incident();
        let alerts = AlertSummary { count: 180, lines: vec!["- a [MDE]".into(); 180], ..Default::default() };
        let t = target(Status::Open, None);
        let w = mirror(&i, &alerts, &t, None);
        assert!(w.labels.iter().any(|l| l.label_name == "150+"));
        assert!(w.description.unwrap().contains("Alerts (180"));
    }

    #[test]
    fn differs_ignores_server_filled_owner_fields_and_label_order() {
        let i = incident();
        let t = target(Status::Open, None);
        let a = mirror(&i, &AlertSummary::default(), &t, None);
        let mut b = a.clone();
        b.labels.reverse();
        assert!(!differs(&a, &b));
        b.severity = SentinelSeverity::Low;
        assert!(differs(&a, &b));
    }
}
