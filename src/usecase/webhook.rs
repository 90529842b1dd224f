//! The Sentinel webhook (ARCHITECTURE.md: “The Functions edge”): authenticate (`x-xdrsync-key`, constant time), validate,
//! look the incident up, enqueue "reconcile D" and answer 202. It never syncs by itself (the
//! reconcile does, level-triggered), and every rejection is a 4xx with a JSON reason that
//! changes nothing.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::domain::work::{ChangeHint, WorkItem};
use crate::ports::Table;
use crate::records::{incident_key, index_key, IncidentState, IndexEntry};
use crate::state::{load, Versioned};
use crate::usecase::Ports;

/// Largest body accepted (a playbook payload with many entities is well under this).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A webhook call, whichever way it arrived (Functions payload or plain HTTP).
pub struct WebhookCall<'a> {
    pub key: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub body: &'a [u8],
}

/// Status code and JSON body to answer.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookAnswer {
    pub status: u16,
    pub body: Value,
}

/// A rejection in the documented shape, `{"error": {"code": …, "message": …}}` (also what the
/// HTTP servers answer for unknown routes, oversize bodies and stalled requests).
pub fn reject(status: u16, code: &str, message: impl Into<String>) -> WebhookAnswer {
    WebhookAnswer { status, body: json!({"error": {"code": code, "message": message.into()}}) }
}

/// The documented 413 for a body over `limit` bytes (`size` when known).
pub fn payload_too_large(size: Option<u64>, limit: usize) -> WebhookAnswer {
    let message = match size {
        Some(n) => format!("body is {n} bytes; the limit is {limit}"),
        None => format!("body is over the limit of {limit} bytes"),
    };
    reject(413, "PayloadTooLarge", message)
}

/// The incident the payload is about.
#[derive(Debug, Clone, PartialEq)]
pub struct IncidentRef {
    pub arm_id: String,
    pub name: Uuid,
    pub etag: Option<String>,
    /// `properties.additionalData.commentsCount`, when the payload carries it.
    pub comments_count: Option<u64>,
}

/// Reads the playbook payload (`object` = the incident resource, `workspaceInfo`,
/// `workspaceId`) or a bare incident resource. Pure.
pub fn parse_payload(v: &Value, workspace_resource_id: &str) -> Result<IncidentRef, WebhookAnswer> {
    let obj = v.get("object").unwrap_or(v);
    let Some(arm_id) = obj.get("id").and_then(Value::as_str) else {
        return Err(reject(
            400,
            "InvalidShape",
            "expected a Sentinel incident resource (id, name, properties) or a playbook payload with `object`",
        ));
    };
    if let Some(t) = obj.get("type").and_then(Value::as_str) {
        if !t.eq_ignore_ascii_case("Microsoft.SecurityInsights/Incidents") {
            return Err(reject(400, "InvalidShape", format!("resource type '{t}' is not a Sentinel incident")));
        }
    }
    let prefix =
        format!("{}/providers/Microsoft.SecurityInsights/Incidents/", workspace_resource_id.trim_end_matches('/'));
    let lower = arm_id.to_ascii_lowercase();
    if !lower.starts_with(&prefix.to_ascii_lowercase()) {
        return Err(reject(403, "OtherWorkspace", "the incident does not belong to the configured workspace"));
    }
    if let Some(info) = v.get("workspaceInfo") {
        let field = |k: &str| info.get(k).and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
        let expected = workspace_resource_id.to_ascii_lowercase();
        let claimed = format!(
            "/subscriptions/{}/resourcegroups/{}/providers/microsoft.operationalinsights/workspaces/{}",
            field("SubscriptionId"),
            field("ResourceGroupName"),
            field("WorkspaceName")
        );
        if claimed != expected {
            return Err(reject(403, "OtherWorkspace", "workspaceInfo names another workspace"));
        }
    }
    let tail = &arm_id[prefix.len()..];
    let Ok(name) = Uuid::parse_str(tail) else {
        return Err(reject(400, "InvalidShape", format!("incident name '{tail}' is not a GUID")));
    };
    if let Some(n) = obj.get("name").and_then(Value::as_str) {
        if Uuid::parse_str(n).ok() != Some(name) {
            return Err(reject(400, "InvalidShape", "name and id disagree"));
        }
    }
    Ok(IncidentRef {
        arm_id: arm_id.to_string(),
        name,
        etag: obj.get("etag").and_then(Value::as_str).map(str::to_string),
        comments_count: obj.pointer("/properties/additionalData/commentsCount").and_then(Value::as_u64),
    })
}

/// The key check alone (from the headers), so a server can answer 401 before reading a body.
pub fn authorize(s: &Ports, key: Option<&str>) -> Result<(), WebhookAnswer> {
    match key {
        Some(k) if s.config.webhook_key_matches(k) => Ok(()),
        _ => Err(reject(401, "Unauthorized", "missing or wrong x-xdrsync-key")),
    }
}

/// Handles one call. Infrastructure failures (storage down) answer 503 so the caller retries.
pub async fn handle(s: &Ports, call: WebhookCall<'_>) -> WebhookAnswer {
    if let Err(refused) = authorize(s, call.key) {
        return refused;
    }
    let json_type = call
        .content_type
        .map(|c| c.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json"))
        .unwrap_or(false);
    if !json_type {
        return reject(415, "UnsupportedMediaType", "Content-Type must be application/json");
    }
    if call.body.len() > MAX_BODY_BYTES {
        return payload_too_large(Some(call.body.len() as u64), MAX_BODY_BYTES);
    }
    let v: Value = match serde_json::from_slice(call.body) {
        Ok(v) => v,
        Err(e) => return reject(400, "InvalidJson", format!("body is not JSON: {e}")),
    };
    if !v.is_object() {
        return reject(400, "InvalidShape", "body must be a JSON object");
    }
    // Any workspace a tenant is routed to (one, unless XDRSYNC_TENANT_WORKSPACES routes some).
    let mut parsed = Err(reject(403, "OtherWorkspace", "the incident does not belong to the configured workspace"));
    let mut workspace = s.config.workspace.resource_id();
    for w in s.each_workspace() {
        let candidate = w.config.workspace.resource_id();
        parsed = parse_payload(&v, &candidate);
        if parsed.is_ok() {
            workspace = candidate;
            break;
        }
        // Shape errors are the same for every workspace: answer the first one's.
        if parsed.as_ref().err().is_some_and(|a| a.status != 403) {
            break;
        }
    }
    let incident = match parsed {
        Ok(i) => i,
        Err(answer) => return answer,
    };
    let entry: Option<Versioned<IndexEntry>> = match index_key(&workspace, &incident.name) {
        Ok(k) => match load(s.store.as_ref(), Table::Index, &k).await {
            Ok(e) => e,
            Err(e) => return unavailable(&e),
        },
        Err(_) => None,
    };
    let Some(entry) = entry.map(|e| e.value) else {
        return reject(404, "NotAMirror", format!("incident {} is not mirrored by xdrsync", incident.name));
    };
    // Our own write echoed back by automation: nothing changed since we synced.
    if let (Some(etag), Ok(key)) = (&incident.etag, incident_key(&entry.tenant_id, &entry.incident_id)) {
        if let Ok(Some(state)) = load::<IncidentState>(s.store.as_ref(), Table::Incidents, &key).await {
            // A comment added in Sentinel need not change the incident's etag: a moved
            // commentsCount is news even when the etag is the one we synced.
            let same_comments = incident.comments_count.is_none_or(|n| state.value.sentinel_comments_count == Some(n));
            if state.value.sentinel_etag_seen.as_deref() == Some(etag.as_str()) && same_comments {
                return WebhookAnswer {
                    status: 202,
                    body: json!({"status": "unchanged", "incidentId": entry.incident_id}),
                };
            }
        }
    }
    let item = WorkItem::reconcile(&entry.tenant_id, &entry.incident_id, ChangeHint::Sentinel);
    if let Err(e) = s.queue.send(&s.config.queue_name, &item.to_json()).await {
        return unavailable(&e);
    }
    tracing::info!(incident.id = %entry.incident_id, sentinel.incident = %incident.name, "webhook enqueued a reconcile");
    WebhookAnswer { status: 202, body: json!({"status": "accepted", "incidentId": entry.incident_id}) }
}

fn unavailable(e: &crate::error::PortError) -> WebhookAnswer {
    tracing::error!(error.message = %e, "webhook could not reach storage");
    reject(503, "Unavailable", "storage is unavailable; retry later")
}

#[cfg(test)]
mod tests {
    use super::*;

    const WS: &str = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/ws";

    fn resource(name: &str) -> Value {
        json!({"id": format!("{WS}/providers/Microsoft.SecurityInsights/Incidents/{name}"), "name": name,
               "type": "Microsoft.SecurityInsights/Incidents", "etag": "\"e1\"", "properties": {"title": "t"}})
    }

    #[test]
    fn accepts_playbook_payloads_and_bare_resources() {
        let name = "73e01a99-5cd7-4139-a149-9f2736ff2ab5";
        let bare = parse_payload(&resource(name), WS).unwrap();
        assert_eq!(bare.name.to_string(), name);
        assert_eq!(bare.etag.as_deref(), Some("\"e1\""));
        let playbook = json!({"object": resource(name), "workspaceInfo": {"SubscriptionId": "S1", "ResourceGroupName": "RG", "WorkspaceName": "ws"}, "workspaceId": "x"});
        assert_eq!(parse_payload(&playbook, WS).unwrap(), bare);
    }

    #[test]
    fn rejects_other_workspaces_and_wrong_shapes() {
        let name = "73e01a99-5cd7-4139-a149-9f2736ff2ab5";
        let other = json!({"id": format!("/subscriptions/s2/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/ws/providers/Microsoft.SecurityInsights/Incidents/{name}")});
        assert_eq!(parse_payload(&other, WS).unwrap_err().status, 403);
        let lying = json!({"object": resource(name), "workspaceInfo": {"SubscriptionId": "s9", "ResourceGroupName": "rg", "WorkspaceName": "ws"}});
        assert_eq!(parse_payload(&lying, WS).unwrap_err().status, 403);
        assert_eq!(parse_payload(&json!({"hello": 1}), WS).unwrap_err().status, 400);
        let mut wrong_type = resource(name);
        wrong_type["type"] = json!("Microsoft.SecurityInsights/bookmarks");
        assert_eq!(parse_payload(&wrong_type, WS).unwrap_err().status, 400);
        let not_guid = json!({"id": format!("{WS}/providers/Microsoft.SecurityInsights/Incidents/abc")});
        assert_eq!(parse_payload(&not_guid, WS).unwrap_err().status, 400);
    }
}
