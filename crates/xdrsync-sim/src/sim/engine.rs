//! Defender's correlation engine for a workspace onboarded to the Defender portal, simulated:
//! each alert the native-alerts rule makes becomes a Graph alert of the workspace's tenant
//! (`serviceSource` `microsoftSentinel`, the rule's custom details in `customDetails` as Sentinel
//! stores them, `{"Key": ["value"]}`), grouped into a Defender incident of that tenant: one
//! incident per source incident the custom details name, or, with `engine_groups_all`, every
//! alert into the latest engine incident (so one target holds two source incidents). Which
//! Graph field carries a rule alert's custom details is not documented: the product reads
//! `customDetails` and `additionalData` alike.

use serde_json::{json, Value};

use super::model::{GraphAlert, GraphIncident};
use super::rule_state::SecurityAlertRecord;
use super::seed::insert_alert;
use super::world::World;

/// Puts the rule's `alert` into the tenant's Defender queue.
pub fn correlate(world: &mut World, alert: &SecurityAlertRecord, group_all: bool, tenant: &str) {
    let (Some(src_tenant), Some(src_incident)) =
        (alert.custom_detail("DefenderTenantId"), alert.custom_detail("DefenderIncidentId"))
    else {
        return;
    };
    let key = format!("{src_tenant}/{src_incident}");
    let existing = if group_all { world.rule.engine_last.clone() } else { world.rule.engine_links.get(&key).cloned() }
        .filter(|id| world.incident(id).is_some());
    let now = world.now();
    let doc = &alert.doc;
    let text = |k: &str| doc.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let severity = text("AlertSeverity").to_ascii_lowercase();
    let incident_id = match existing {
        Some(id) => {
            if let Some(i) = world.incident_mut(&id) {
                i.last_update_date_time = now;
            }
            id
        }
        None => {
            let id = world.next_incident_id.to_string();
            world.next_incident_id += 1;
            let seq = world.next_seq();
            world.incidents.insert(
                id.parse().unwrap_or_default(),
                GraphIncident {
                    id: id.clone(),
                    tenant_id: tenant.to_string(),
                    display_name: text("AlertName"),
                    description: Some(text("Description")),
                    summary: None,
                    created_date_time: now,
                    last_update_date_time: now,
                    status: "active".into(),
                    severity: if severity.is_empty() { "medium".into() } else { severity.clone() },
                    assigned_to: None,
                    classification: "unknown".into(),
                    determination: "unknown".into(),
                    custom_tags: vec![],
                    system_tags: vec![],
                    incident_web_url: format!("https://security.microsoft.com/incident2/{id}/overview?tid={tenant}"),
                    redirect_incident_id: None,
                    resolving_comment: None,
                    last_modified_by: Some("Microsoft 365 Defender-AlertCorrelation".into()),
                    priority_score: None,
                    comments: vec![],
                    seq,
                },
            );
            id
        }
    };
    world.rule.engine_links.insert(key, incident_id.clone());
    world.rule.engine_last = Some(incident_id.clone());
    let details = json!({
        "DefenderTenantId": [src_tenant], "DefenderIncidentId": [src_incident],
        "DefenderAlertId": [alert.custom_detail("DefenderAlertId").unwrap_or_default()],
    });
    let id = format!("sn{}", alert.system_alert_id);
    insert_alert(
        world,
        GraphAlert {
            id: id.clone(),
            provider_alert_id: alert.system_alert_id.clone(),
            incident_id: Some(incident_id.clone()),
            status: "new".into(),
            severity: if severity.is_empty() { "medium".into() } else { severity },
            classification: "unknown".into(),
            determination: "unknown".into(),
            service_source: "microsoftSentinel".into(),
            detection_source: "microsoftSentinel".into(),
            detector_id: "xdrsync-native-alerts-rule".into(),
            tenant_id: tenant.to_string(),
            title: text("AlertName"),
            description: text("Description"),
            recommended_actions: String::new(),
            category: text("Tactics"),
            assigned_to: None,
            alert_web_url: format!("https://security.microsoft.com/alerts/{id}?tid={tenant}"),
            incident_web_url: format!("https://security.microsoft.com/incidents/{incident_id}?tid={tenant}"),
            actor_display_name: None,
            threat_display_name: None,
            threat_family_name: None,
            mitre_techniques: vec![],
            created_date_time: now,
            last_update_date_time: now,
            resolved_date_time: None,
            first_activity_date_time: now,
            last_activity_date_time: now,
            product_name: "Microsoft Sentinel".into(),
            evidence: vec![],
            system_tags: vec![],
            comments: vec![],
            custom_details: Some(details),
            seq: 0,
        },
    );
}
