//! Simulated Sentinel automation: when any incident is created or updated (by anyone, xdrsync
//! included — the worst case for loops), POST the playbook incident-trigger payload to a
//! configured webhook with the key, after a small delay, and count deliveries.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::Sim;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Automation {
    pub url: String,
    pub key: String,
    #[serde(default = "default_delay")]
    pub delay_ms: u64,
}

fn default_delay() -> u64 {
    200
}

/// Schedules a delivery for incident `name` (if automation is configured).
pub fn fire(sim: &Arc<Sim>, name: Uuid, event: &'static str) {
    let Some(cfg) = sim.automation.lock().unwrap_or_else(|p| p.into_inner()).clone() else { return };
    // Fired minus delivered and failed = deliveries still pending (tests wait for none).
    sim.stats.bump("automation.fired");
    let sim = sim.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(cfg.delay_ms)).await;
        let payload = {
            let world = sim.world();
            let Some(rec) = world.sentinel.get(&name) else { return };
            let base = sim.sentinel_base();
            let ws = &sim.config.workspace;
            json!({
                "objectSchemaType": "incident",
                "objectEventType": event,
                "object": rec.to_json(&base, &name),
                "workspaceInfo": {"SubscriptionId": ws.subscription_id, "ResourceGroupName": ws.resource_group, "WorkspaceName": ws.name},
                "workspaceId": Uuid::new_v5(&Uuid::NAMESPACE_URL, ws.resource_id().as_bytes()).to_string(),
            })
        };
        let sent = sim.http.post(&cfg.url).header("x-xdrsync-key", &cfg.key).json(&payload).send().await;
        match sent {
            Ok(r) if r.status().is_success() => sim.stats.bump("automation.deliveries"),
            _ => sim.stats.bump("automation.failures"),
        }
    });
}
