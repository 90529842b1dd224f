//! Golden fixtures (`tests/fixtures/`, sources in its README): the product's models read what the
//! documentation says the services send, its error mapping reads the services' error bodies,
//! and the bodies it sends use the documented property names only: no read-only property in a
//! Sentinel PUT, only updatable properties in a Defender PATCH.

mod support;

use std::collections::BTreeSet;

use serde_json::{json, Value};
use xdrsync::adapters::status::from_status;
use xdrsync::domain::defender::*;
use xdrsync::domain::fields::{self, Fields, Level, Status, Verdict};
use xdrsync::domain::mirror::{desired, AlertSummary, MirrorInput, ResolvedOwner};
use xdrsync::domain::sentinel::*;
use xdrsync::error::{PortError, Reaction};

fn fixture(path: &str) -> Value {
    let full = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path);
    let text = std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

fn time(s: &str) -> time::OffsetDateTime {
    xdrsync::domain::time_fmt::parse(s).unwrap()
}

// ------------------------------------------------------------------------------------------------
// Graph: what the product reads

#[test]
fn graph_incident_get_example_parses() {
    let i: DefenderIncident = serde_json::from_value(fixture("graph/incident-get.json")).unwrap();
    assert_eq!(i.id, "2972395");
    assert_eq!(i.tenant_id.as_deref(), Some("b3c1b5fc-828c-45fa-a1e1-10d74f6d6e9c"));
    // The example's enum values are PascalCase.
    assert_eq!(i.status, IncidentStatus::Active);
    assert_eq!(i.severity, Severity::Medium);
    assert_eq!(i.classification, Some(Classification::TruePositive));
    assert_eq!(i.determination, Some(Determination::MultiStagedAttack));
    assert_eq!(i.assigned_to.as_deref(), Some("KaiC@contoso.onmicrosoft.com"));
    assert_eq!(i.custom_tags, ["Demo"]);
    assert_eq!(i.system_tags, ["Defender Experts"]);
    assert_eq!(i.created_date_time, Some(time("2021-08-13T08:43:35.5533333Z")));
    assert_eq!(i.last_update_date_time, time("2021-09-30T09:35:45.1133333Z"));
    assert_eq!(i.redirect_incident_id, None);
    assert!(i.incident_web_url.as_deref().unwrap().starts_with("https://security.microsoft.com/incidents/2972395"));
    assert!(i.description.as_deref().unwrap().starts_with("Microsoft observed Raspberry Robin"));
    assert!(i.alerts.is_none(), "not expanded");
    assert_eq!(i.comments.len(), 1);
    assert_eq!(i.comments[0].comment.as_deref(), Some("Demo incident"));
}

#[test]
fn graph_comment_author_and_time_are_read_under_either_documented_name() {
    // The alertComment resource page names them createdByDisplayName/createdDateTime; the
    // examples (fixtures above) write createdBy/createdTime. Both are read.
    let c: AlertComment = serde_json::from_value(json!({
        "@odata.type": "#microsoft.graph.security.alertComment",
        "comment": "Demo incident",
        "createdByDisplayName": "DavidS@contoso.onmicrosoft.com",
        "createdDateTime": "2021-09-30T12:07:37.2756993Z"
    }))
    .unwrap();
    assert_eq!(c.created_by_display_name.as_deref(), Some("DavidS@contoso.onmicrosoft.com"));
    assert_eq!(c.created_date_time, Some(time("2021-09-30T12:07:37.2756993Z")));
    let example: DefenderIncident = serde_json::from_value(fixture("graph/incident-get.json")).unwrap();
    assert!(example.comments[0].author().is_some(), "the examples' createdBy is read too");
    assert!(example.comments[0].written_at().is_some(), "the examples' createdTime is read too");
}

#[test]
fn graph_incident_with_expanded_alerts_example_parses() {
    let page = fixture("graph/incidents-list-expand-alerts.json");
    let incidents: Vec<DefenderIncident> = serde_json::from_value(page["value"].clone()).unwrap();
    let i = &incidents[0];
    assert_eq!(i.id, "2972395");
    // camelCase values in this example.
    assert_eq!((i.status.clone(), i.severity.clone()), (IncidentStatus::Active, Severity::Medium));
    assert_eq!(i.classification, Some(Classification::TruePositive));
    assert_eq!(i.determination, Some(Determination::MultiStagedAttack));
    let alerts = i.complete_alerts().expect("expanded and complete");
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!(a.id, "da637551227677560813_-961444813");
    assert_eq!(a.incident_id.as_deref(), Some("28282"));
    assert_eq!(a.status, Some(AlertStatus::New));
    assert_eq!(a.severity, Severity::Low);
    assert_eq!(a.service_source.as_deref(), Some("microsoftDefenderForEndpoint"));
    assert_eq!(a.mitre_techniques, ["T1564.001"]);
    assert_eq!(a.evidence.len(), 4);
    assert_eq!(a.evidence[3]["@odata.type"], "#microsoft.graph.security.registryKeyEvidence");
}

#[test]
fn graph_alert_with_evidence_example_parses() {
    let a: DefenderAlert = serde_json::from_value(fixture("graph/alert-get.json")).unwrap();
    assert_eq!(a.id, "da637578995287051192_756343937");
    assert_eq!(a.provider_alert_id.as_deref(), Some("da637578995287051192_756343937"));
    assert_eq!(a.incident_id.as_deref(), Some("28282"));
    assert_eq!(a.status, Some(AlertStatus::New));
    assert_eq!(a.severity, Severity::Low);
    assert_eq!(a.classification, Some(Classification::Unknown));
    assert_eq!(a.determination, Some(Determination::Unknown));
    assert_eq!(a.detection_source.as_deref(), Some("antivirus"));
    assert_eq!(a.category.as_deref(), Some("DefenseEvasion"));
    assert_eq!(a.title.as_deref(), Some("Suspicious execution of hidden file"));
    assert_eq!(a.created_date_time, Some(time("2021-04-27T12:19:27.7211305Z")));
    assert_eq!(a.first_activity_date_time, Some(time("2021-04-26T07:45:50.116Z")));
    assert_eq!(a.resolved_date_time, None);
    assert_eq!(a.system_tags, ["Defender Experts"]);
    let types: Vec<&str> = a.evidence.iter().map(|e| e["@odata.type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        [
            "#microsoft.graph.security.deviceEvidence",
            "#microsoft.graph.security.fileEvidence",
            "#microsoft.graph.security.processEvidence",
            "#microsoft.graph.security.registryKeyEvidence"
        ]
    );
    assert_eq!(a.evidence[1]["fileDetails"]["sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn graph_list_page_example_parses_and_carries_a_next_link() {
    let page = fixture("graph/incidents-list-page.json");
    let incidents: Vec<DefenderIncident> = serde_json::from_value(page["value"].clone()).unwrap();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0].id, "2972395");
    assert!(page["@odata.nextLink"]
        .as_str()
        .unwrap()
        .starts_with("https://graph.microsoft.com/v1.0/security/incidents?"));
}

/// The Graph adapter follows the documented page's `@odata.nextLink` verbatim and reads every
/// page's documented incidents (a local server serves the fixture; the simulator issues tokens).
#[tokio::test]
async fn graph_adapter_reads_documented_pages() {
    use axum::extract::RawQuery;
    use axum::routing::get;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let first = {
        let mut p = fixture("graph/incidents-list-page.json");
        p["@odata.nextLink"] = json!(format!("{base}/v1.0/security/incidents?$top=1&$skip=1"));
        p
    };
    let second = {
        let mut p = fixture("graph/incidents-list-page.json");
        p.as_object_mut().unwrap().remove("@odata.nextLink");
        p["value"][0]["id"] = json!("2972396");
        p
    };
    let app = axum::Router::new().route(
        "/v1.0/security/incidents",
        get(move |RawQuery(q): RawQuery| {
            let (first, second) = (first.clone(), second.clone());
            async move { axum::Json(if q.unwrap_or_default().contains("skip=1") { second } else { first }) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let sim = support::start_sim(xdrsync_sim::sim::SimConfig::demo()).await;
    let mut vars = support::settings(&sim, None);
    vars.insert("XDRSYNC_GRAPH_ENDPOINT".into(), base);
    let ports = xdrsync::app::build(support::config(&vars));
    let got = ports.defender.list_incidents_since(time("2021-01-01T00:00:00Z")).await.unwrap();
    let ids: Vec<&str> = got.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["2972395", "2972396"]);
}

// ------------------------------------------------------------------------------------------------
// Sentinel: what the product reads

#[test]
fn sentinel_incident_get_example_parses() {
    let i: SentinelIncident = serde_json::from_value(fixture("arm/incident-get.json")).unwrap();
    assert_eq!(i.name, "73e01a99-5cd7-4139-a149-9f2736ff2ab5");
    assert_eq!(i.etag.as_deref(), Some("\"0300bf09-0000-0000-0000-5c37296e0000\""));
    assert_eq!(i.kind, "Microsoft.SecurityInsights/incidents");
    assert!(i.id.ends_with("/providers/Microsoft.SecurityInsights/incidents/73e01a99-5cd7-4139-a149-9f2736ff2ab5"));
    let w = &i.properties.writable;
    assert_eq!(w.title, "My incident");
    assert_eq!(w.description.as_deref(), Some("This is a demo incident"));
    assert_eq!(w.severity, SentinelSeverity::High);
    assert_eq!(w.status, SentinelStatus::Closed);
    assert_eq!(w.classification, Some(SentinelClassification::FalsePositive));
    assert_eq!(w.classification_reason, Some(ClassificationReason::InaccurateData));
    assert_eq!(w.classification_comment.as_deref(), Some("Not a malicious activity"));
    let owner = w.owner.as_ref().unwrap();
    assert_eq!(owner.object_id.as_deref(), Some("2046feea-040d-4a46-9e2b-91c2941bfa70"));
    assert_eq!(owner.user_principal_name.as_deref(), Some("john@contoso.com"));
    assert_eq!(owner.assigned_to.as_deref(), Some("john doe"));
    assert!(w.labels.is_empty());
    assert_eq!(w.first_activity_time_utc, Some(time("2019-01-01T13:00:30Z")));
    let r = &i.properties.read_only;
    assert_eq!(r.incident_number, Some(3177));
    assert_eq!(r.provider_name.as_deref(), Some("Azure Sentinel"));
    assert_eq!(r.provider_incident_id.as_deref(), Some("3177"));
    assert_eq!(r.created_time_utc, Some(time("2019-01-01T13:15:30Z")));
    assert_eq!(r.last_modified_time_utc, Some(time("2019-01-01T13:15:30Z")));
    assert_eq!(r.related_analytic_rule_ids.len(), 1);
    assert_eq!(r.additional_data.as_ref().unwrap()["commentsCount"], 3);
}

#[test]
fn sentinel_comment_list_example_parses() {
    let page = fixture("arm/incident-comments-list.json");
    let comments: Vec<SentinelComment> = serde_json::from_value(page["value"].clone()).unwrap();
    assert_eq!(comments.len(), 1);
    let c = &comments[0];
    assert_eq!(c.name, "4bb36b7b-26ff-4d1c-9cbe-0d8ab3da0014");
    assert_eq!(c.etag.as_deref(), Some("0300bf09-0000-0000-0000-5c37296e0000"));
    assert_eq!(c.properties.message, "Some message");
    assert_eq!(c.properties.created_time_utc, Some(time("2019-01-01T13:15:30Z")));
    assert_eq!(c.properties.author.as_ref().unwrap()["userPrincipalName"], "john@contoso.com");
    assert!(c.id.ends_with("/comments/4bb36b7b-26ff-4d1c-9cbe-0d8ab3da0014"));
}

// ------------------------------------------------------------------------------------------------
// Error bodies

fn error_body(path: &str) -> String {
    fixture(path).to_string()
}

#[test]
fn arm_error_bodies_map_to_the_port_vocabulary() {
    match from_status("sentinel", 400, None, &error_body("arm/error-400.json")) {
        PortError::Rejected { code, reason, .. } => {
            assert_eq!(code.as_deref(), Some("BadRequest"));
            assert!(reason.contains("Could not find a property named 'CreatedTimeUtc'"), "{reason}");
        }
        e => panic!("400: {e:?}"),
    }
    let e = from_status("sentinel", 403, None, &error_body("arm/error-403.json"));
    assert!(matches!(&e, PortError::Forbidden { message, .. } if message.contains("does not have authorization")));
    assert_eq!(e.reaction(), Reaction::FixAccess);
    let e = from_status("sentinel", 409, None, &error_body("arm/error-409.json"));
    assert!(matches!(&e, PortError::Conflict { message, .. } if message.contains("Data was not saved")));
    assert_eq!(e.reaction(), Reaction::Redo);
    let e = from_status("sentinel", 429, Some(std::time::Duration::from_secs(372)), &error_body("arm/error-429.json"));
    assert!(matches!(&e, PortError::Throttled { message, .. } if message.contains("Please try again after")));
    assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(372)));
}

#[test]
fn graph_and_logs_error_bodies_map_to_the_port_vocabulary() {
    let e = from_status("graph", 403, None, &error_body("graph/error-403-missing-roles.json"));
    assert!(matches!(&e, PortError::Forbidden { message, .. } if message.starts_with("Missing application roles")));
    match from_status("graph", 400, None, &error_body("graph/error-400-top.json")) {
        PortError::Rejected { code, reason, .. } => {
            assert_eq!(code, None, "Graph sends an empty code here");
            assert!(reason.contains("The limit of '50' for Top query has been exceeded"));
        }
        e => panic!("400: {e:?}"),
    }
    let e = from_status("logs-ingestion", 403, None, &error_body("logs/error-403.json"));
    assert!(
        matches!(&e, PortError::Forbidden { message, .. } if message.contains("does not have access to ingest data"))
    );
}

// ------------------------------------------------------------------------------------------------
// Sentinel PUT: what the product sends

/// Writable `IncidentProperties` in the 2025-09-01 spec (every property without `readOnly`).
const SENTINEL_WRITABLE: &[&str] = &[
    "title",
    "description",
    "severity",
    "status",
    "classification",
    "classificationReason",
    "classificationComment",
    "owner",
    "labels",
    "firstActivityTimeUtc",
    "lastActivityTimeUtc",
];
/// `readOnly` `IncidentProperties`.
const SENTINEL_READ_ONLY: &[&str] = &[
    "additionalData",
    "createdTimeUtc",
    "incidentNumber",
    "incidentUrl",
    "lastModifiedTimeUtc",
    "providerIncidentId",
    "providerName",
    "relatedAnalyticRuleIds",
];
/// `IncidentOwnerInfo` properties (none read-only).
const OWNER_PROPERTIES: &[&str] = &["email", "assignedTo", "objectId", "userPrincipalName", "ownerType"];

/// PUT bodies the mirror builds from the documented Defender incident: open, closed as a true
/// positive with an owner, redirected (merged) with a current Sentinel incident that carries an
/// AutoAssigned label.
fn product_put_bodies() -> Vec<Value> {
    let mut incident: DefenderIncident = serde_json::from_value(fixture("graph/incident-get.json")).unwrap();
    let alerts: Vec<DefenderAlert> = vec![serde_json::from_value(fixture("graph/alert-get.json")).unwrap()];
    let summary = AlertSummary::of(&alerts);
    let current: SentinelIncident = serde_json::from_value(fixture("arm/incident-get.json")).unwrap();
    let mut current_w = current.properties.writable.clone();
    current_w.labels.push(Label { label_name: "auto".into(), label_type: Some(LabelType::AutoAssigned) });
    let owner = ResolvedOwner {
        upn: "kaic@contoso.onmicrosoft.com".into(),
        object_id: Some("2046feea-040d-4a46-9e2b-91c2941bfa70".into()),
    };
    let mut bodies = Vec::new();
    let open = fields::from_defender(&incident);
    let closed = Fields {
        status: Some(Status::Closed),
        verdict: Some(Verdict::TruePositive),
        severity: Some(Level::High),
        ..open.clone()
    };
    for (target, current) in [(&open, None), (&closed, Some(&current_w))] {
        let w = desired(&MirrorInput {
            incident: &incident,
            alerts: &summary,
            target,
            owner: Some(&owner),
            current,
            tenant: None,
        });
        bodies.push(
            serde_json::to_value(SentinelIncidentBody { etag: current.map(|_| "\"e\"".into()), properties: w })
                .unwrap(),
        );
    }
    incident.status = IncidentStatus::Redirected;
    incident.redirect_incident_id = Some("2972396".into());
    let w = desired(&MirrorInput {
        incident: &incident,
        alerts: &summary,
        target: &fields::from_defender(&incident),
        owner: None,
        current: Some(&current_w),
        tenant: None,
    });
    bodies.push(serde_json::to_value(SentinelIncidentBody { etag: Some("\"e\"".into()), properties: w }).unwrap());
    bodies
}

#[test]
fn sentinel_put_body_uses_documented_writable_properties() {
    let documented = fixture("arm/incident-put-request.json");
    assert!(documented["properties"].as_object().unwrap().keys().all(|k| SENTINEL_WRITABLE.contains(&k.as_str())));
    for body in product_put_bodies() {
        let top: BTreeSet<&str> = body.as_object().unwrap().keys().map(String::as_str).collect();
        assert!(top.contains("properties"), "{body}");
        assert!(top.iter().all(|k| ["etag", "properties"].contains(k)), "top level {top:?}");
        let props = body["properties"].as_object().unwrap();
        for k in props.keys() {
            assert!(SENTINEL_WRITABLE.contains(&k.as_str()), "'{k}' is not a writable IncidentProperties name");
        }
        for k in ["title", "severity", "status"] {
            assert!(props.contains_key(k), "required '{k}' missing: {body}");
        }
        if let Some(owner) = props.get("owner") {
            assert!(owner.as_object().unwrap().keys().all(|k| OWNER_PROPERTIES.contains(&k.as_str())), "{owner}");
        }
        for l in props.get("labels").and_then(Value::as_array).into_iter().flatten() {
            assert!(l["labelName"].is_string(), "{l}");
        }
        // Documented enum members.
        assert!(["High", "Medium", "Low", "Informational"].contains(&props["severity"].as_str().unwrap()));
        assert!(["New", "Active", "Closed"].contains(&props["status"].as_str().unwrap()));
        if let Some(c) = props.get("classification") {
            assert!(["Undetermined", "TruePositive", "BenignPositive", "FalsePositive"].contains(&c.as_str().unwrap()));
        }
    }
    // The etag travels in the body on updates (the spec has no If-Match parameter).
    assert!(product_put_bodies()[1]["etag"].is_string());
}

#[test]
fn sentinel_put_body_sends_no_read_only_property() {
    for body in product_put_bodies() {
        let props = body["properties"].as_object().unwrap();
        for k in SENTINEL_READ_ONLY {
            assert!(!props.contains_key(*k), "read-only '{k}' sent: {body}");
        }
        // `IncidentLabel.labelType` is `readOnly` (common/IncidentTypes.json): the server sets it.
        for l in props.get("labels").and_then(Value::as_array).into_iter().flatten() {
            assert!(l.get("labelType").is_none(), "read-only labels[].labelType sent: {l}");
        }
    }
}

// ------------------------------------------------------------------------------------------------
// Defender PATCH: what the product sends

/// The update page's updatable properties (2026 revision; the 2022 revision listed only
/// assignedTo, classification, determination, status and customTags).
const DEFENDER_UPDATABLE: &[&str] = &[
    "assignedTo",
    "classification",
    "customTags",
    "description",
    "determination",
    "displayName",
    "resolvingComment",
    "severity",
    "status",
    "summary",
];

#[test]
fn defender_patch_body_uses_updatable_properties_only() {
    let every = DefenderIncidentPatch {
        status: Some(IncidentStatus::Resolved),
        assigned_to: Some(Some("bob@contoso.com".into())),
        classification: Some(Classification::TruePositive),
        determination: Some(Determination::Malware),
        custom_tags: Some(vec!["VIP".into()]),
        severity: Some(Severity::High),
        resolving_comment: Some("done".into()),
    };
    let v = serde_json::to_value(&every).unwrap();
    for k in v.as_object().unwrap().keys() {
        assert!(DEFENDER_UPDATABLE.contains(&k.as_str()), "'{k}' is not updatable");
    }
    // Values are documented members, sent camelCase.
    assert_eq!(v["status"], "resolved");
    assert_eq!(v["classification"], "truePositive");
    assert_eq!(v["determination"], "malware");
    assert_eq!(v["severity"], "high");
    assert_eq!(v["customTags"], json!(["VIP"]));
    // The statuses the product can ask for are the settable ones.
    for s in [IncidentStatus::Active, IncidentStatus::Resolved, IncidentStatus::Redirected] {
        let v = serde_json::to_value(DefenderIncidentPatch { status: Some(s), ..Default::default() }).unwrap();
        assert!(["active", "resolved", "redirected"].contains(&v["status"].as_str().unwrap()));
    }
    // Unassigning sends null, which the update page allows ("or null if no owner is assigned").
    let v = serde_json::to_value(DefenderIncidentPatch { assigned_to: Some(None), ..Default::default() }).unwrap();
    assert_eq!(v, json!({"assignedTo": null}));
}
