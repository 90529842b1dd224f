//! The `xdrsync check` lines that prove `Microsoft.Insights/Telemetry/Write` on every data
//! collection rule xdrsync uploads to: the alerts DCR (`XDRSYNC_DCR_IMMUTABLE_ID`), each routed
//! workspace's DCR (`XDRSYNC_TENANT_WORKSPACES`) and each hunting DCR
//! (`XDRSYNC_HUNTING_DCR_IMMUTABLE_ID`). Settings give immutable ids; ARM's permissions API needs
//! the rule's resource id, found by listing the rules of the workspace's subscription
//! (`GET /subscriptions/{s}/providers/Microsoft.Insights/dataCollectionRules?api-version=2022-06-01`,
//! azure-rest-api-specs `DataCollectionRules_ListBySubscription`: `value[].id`,
//! `value[].properties.immutableId`, `nextLink`). Like every ARM list it shows only the rules
//! the caller may read (documented for ARM lists in general; Monitoring Metrics Publisher has no
//! read action), hence the template's Monitoring Reader on each rule. `XDRSYNC_DCR_RESOURCE_ID`
//! names the alerts DCR directly, without the list.

use std::collections::BTreeMap;

use crate::adapters::http::{Call, ServiceClient};
use crate::check::CheckLine;
use crate::check_access::{azure_line, caller_permissions};
use crate::config::Config;
use crate::domain::permissions::{missing, DCR_DATA_ACTIONS};
use crate::error::PortError;
use crate::usecase::Ports;

/// Documented api-version of the DCR list.
const LIST_API_VERSION: &str = "2022-06-01";

/// One rule to prove, by immutable id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DcrTarget {
    pub immutable_id: String,
    /// The subscription to look it up in (its workspace's).
    pub subscription: String,
    /// What xdrsync uploads there, in words.
    pub used_by: Vec<String>,
    /// The setting that names it.
    pub setting: &'static str,
    /// Its resource id when a setting gives it (`XDRSYNC_DCR_RESOURCE_ID`).
    pub resource_id: Option<String>,
    /// Whether it is the alerts DCR of `XDRSYNC_DCR_IMMUTABLE_ID`.
    pub default: bool,
}

/// Every rule xdrsync uploads to, each once (pure). `routed` are the routed workspaces'
/// configurations (`Ports::each_tenant`).
pub fn targets(cfg: &Config, routed: &[&Config]) -> Vec<DcrTarget> {
    let mut out: Vec<DcrTarget> = Vec::new();
    let mut add =
        |id: &str, sub: &str, use_: String, setting: &'static str, resource_id: Option<String>, default| match out
            .iter_mut()
            .find(|t| t.immutable_id.eq_ignore_ascii_case(id))
        {
            Some(t) if !t.used_by.contains(&use_) => t.used_by.push(use_),
            Some(_) => {}
            None => out.push(DcrTarget {
                immutable_id: id.to_string(),
                subscription: sub.to_string(),
                used_by: vec![use_],
                setting,
                resource_id,
                default,
            }),
        };
    let sub = &cfg.workspace.subscription_id;
    add(
        &cfg.dcr_immutable_id,
        sub,
        format!("alerts of workspace {}", cfg.workspace.name),
        "XDRSYNC_DCR_IMMUTABLE_ID",
        cfg.dcr_resource_id.clone(),
        true,
    );
    for t in routed {
        add(
            &t.dcr_immutable_id,
            &t.workspace.subscription_id,
            format!("alerts of workspace {}", t.workspace.name),
            "XDRSYNC_TENANT_WORKSPACES",
            None,
            false,
        );
    }
    let h = &cfg.hunting;
    for table in h.tables.iter().chain(&h.storage_tables) {
        let dcr = h.dcr_for(table).unwrap_or_else(|| cfg.dcr_immutable_id.clone());
        add(&dcr, sub, format!("hunting table {}", table.name), "XDRSYNC_HUNTING_DCR_IMMUTABLE_ID", None, false);
    }
    out
}

/// Every rule's line, in [`targets`] order.
pub async fn lines(s: &Ports, arm: &ServiceClient, principal: &str) -> Vec<CheckLine> {
    let cfg = &s.config;
    let tenants = s.each_tenant();
    let routed: Vec<&Config> = tenants.iter().map(|t| t.config.as_ref()).collect();
    let targets = targets(cfg, &routed);
    let endpoint = cfg.arm_endpoint.as_str().trim_end_matches('/');
    // One list per subscription, only where a rule has no resource id yet.
    let mut found: BTreeMap<String, Result<BTreeMap<String, String>, PortError>> = BTreeMap::new();
    for t in targets.iter().filter(|t| t.resource_id.is_none()) {
        if !found.contains_key(&t.subscription) {
            let listed = list_rules(arm, endpoint, &t.subscription).await;
            found.insert(t.subscription.clone(), listed);
        }
    }
    let mut out = Vec::new();
    for t in &targets {
        let what = if t.default {
            format!("permissions on the data collection rule ({})", t.used_by.join(", "))
        } else {
            format!("permissions on data collection rule {} ({})", t.immutable_id, t.used_by.join(", "))
        };
        let resource_id = match (&t.resource_id, found.get(&t.subscription)) {
            (Some(id), _) => id.clone(),
            (None, Some(Ok(rules))) => match rules.get(&t.immutable_id.to_ascii_lowercase()) {
                Some(id) => id.clone(),
                None => {
                    out.push(CheckLine { what, ok: false, detail: not_found(t, principal) });
                    continue;
                }
            },
            (None, Some(Err(e))) => {
                out.push(CheckLine {
                    what,
                    ok: false,
                    detail: format!(
                        "{e}. Could not list the data collection rules of subscription {}.",
                        t.subscription
                    ),
                });
                continue;
            }
            (None, None) => unreachable!("every subscription without a resource id was listed"),
        };
        let r = caller_permissions(arm, endpoint, &resource_id).await;
        out.push(azure_line(
            &what,
            r.map(|p| missing(&p, &[], DCR_DATA_ACTIONS)),
            principal,
            &format!("the role Monitoring Metrics Publisher on data collection rule {resource_id}"),
        ));
    }
    out
}

fn not_found(t: &DcrTarget, principal: &str) -> String {
    format!(
        "data collection rule {} is not among the rules {principal} can read in subscription {}. Check {}; grant {principal} Monitoring Metrics Publisher (to upload) and Monitoring Reader (so check can find it) on that rule.",
        t.immutable_id, t.subscription, t.setting
    )
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RulePage {
    #[serde(default)]
    value: Vec<RuleEntry>,
    next_link: Option<String>,
}

#[derive(serde::Deserialize)]
struct RuleEntry {
    id: String,
    #[serde(default)]
    properties: RuleProperties,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct RuleProperties {
    immutable_id: Option<String>,
}

/// The readable rules of `subscription`: immutable id (lower case) → resource id, every page.
async fn list_rules(
    arm: &ServiceClient,
    endpoint: &str,
    subscription: &str,
) -> Result<BTreeMap<String, String>, PortError> {
    let mut url = Some(format!(
        "{endpoint}/subscriptions/{subscription}/providers/Microsoft.Insights/dataCollectionRules?api-version={LIST_API_VERSION}"
    ));
    let mut rules = BTreeMap::new();
    // The bound guards against a nextLink loop; a subscription rarely holds thousands of rules.
    for _ in 0..50 {
        let Some(u) = url.take() else { break };
        let page: RulePage = arm.send(&Call::new(reqwest::Method::GET, u)).await?.json("arm")?;
        for r in page.value {
            if let Some(id) = r.properties.immutable_id {
                rules.insert(id.to_ascii_lowercase(), r.id);
            }
        }
        url = page.next_link;
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &[(&str, &str)]) -> Config {
        let mut vars = crate::config::tests::base_vars();
        for (k, v) in extra {
            vars.insert(k.to_string(), v.to_string());
        }
        Config::from_vars(&vars).expect("valid")
    }

    #[test]
    fn every_rule_once_with_what_goes_there() {
        let c = cfg(&[
            ("XDRSYNC_HUNTING_TABLES", "EmailEvents,DeviceEvents,IdentityLogonEvents"),
            (
                "XDRSYNC_HUNTING_DCR_IMMUTABLE_ID",
                "EmailEvents=dcr-0000000000000000000000000000000a,DeviceEvents=dcr-0000000000000000000000000000000b",
            ),
        ]);
        let t = targets(&c, &[]);
        let ids: Vec<&str> = t.iter().map(|t| t.immutable_id.as_str()).collect();
        assert_eq!(
            ids,
            [
                c.dcr_immutable_id.as_str(),
                "dcr-0000000000000000000000000000000a",
                "dcr-0000000000000000000000000000000b"
            ]
        );
        // The unrouted table goes to the alerts DCR: one line names both uses.
        assert!(t[0].default && t[0].used_by.iter().any(|u| u.contains("IdentityLogonEvents")), "{t:?}");
        assert_eq!(t[1].setting, "XDRSYNC_HUNTING_DCR_IMMUTABLE_ID");
        assert!(t.iter().all(|t| t.subscription == c.workspace.subscription_id));
    }
}
