//! The workspace settings `xdrsync connect` inspects (ARCHITECTURE.md: “Service facts”): Sentinel
//! "Microsoft incident creation" analytics rules (`Microsoft.SecurityInsights/alertRules`, kind
//! `MicrosoftSecurityIncidentCreation`) and the Microsoft Defender XDR data connector
//! (`dataConnectors`, kind `MicrosoftThreatProtection`). Either one creates Sentinel incidents
//! from Defender alerts by itself, so with xdrsync each incident would appear twice.
//!
//! Documented (REST specs, `MicrosoftSecurityProductName`): the rule's `properties.productFilter`
//! is one of "Azure Active Directory Identity Protection", "Azure Advanced Threat Protection",
//! "Azure Security Center", "Azure Security Center for IoT", "Microsoft Cloud App Security",
//! "Microsoft Defender Advanced Threat Protection", "Office 365 Advanced Threat Protection"; the
//! connector's `properties.dataTypes.incidents.state` is `Enabled` or `Disabled`. Assumed: the
//! five products below are the ones whose alerts Defender XDR groups into its incidents (Defender
//! for Cloud, "Azure Security Center", is left alone: its alerts reach Defender XDR only when
//! that integration is on, so its rule is reported, not disabled).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const INCIDENT_CREATION_KIND: &str = "MicrosoftSecurityIncidentCreation";
pub const XDR_CONNECTOR_KIND: &str = "MicrosoftThreatProtection";

/// Products whose incident-creation rules duplicate Defender XDR incidents.
pub const DEFENDER_XDR_PRODUCTS: [&str; 5] = [
    "Microsoft Defender Advanced Threat Protection",
    "Office 365 Advanced Threat Protection",
    "Azure Advanced Threat Protection",
    "Microsoft Cloud App Security",
    "Azure Active Directory Identity Protection",
];

/// An analytics rule as ARM returns it; `properties` kept whole so a PUT sends back what was read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub properties: Map<String, Value>,
}

impl AlertRule {
    pub fn display_name(&self) -> &str {
        self.properties.get("displayName").and_then(Value::as_str).unwrap_or(&self.name)
    }
    pub fn product(&self) -> Option<&str> {
        self.properties.get("productFilter").and_then(Value::as_str)
    }
    pub fn enabled(&self) -> bool {
        self.properties.get("enabled").and_then(Value::as_bool).unwrap_or(false)
    }
    fn is_incident_creation(&self) -> bool {
        self.kind.eq_ignore_ascii_case(INCIDENT_CREATION_KIND)
    }
    /// A Microsoft incident-creation rule for a product whose alerts Defender XDR groups into
    /// its incidents (enabled or not).
    pub fn covers_defender_xdr(&self) -> bool {
        self.is_incident_creation()
            && self.product().is_some_and(|p| DEFENDER_XDR_PRODUCTS.iter().any(|d| d.eq_ignore_ascii_case(p)))
    }
    /// Any Microsoft incident-creation rule.
    pub fn creates_incidents_from_microsoft_alerts(&self) -> bool {
        self.is_incident_creation()
    }
    /// The PUT body that disables the rule: what was read, `enabled: false`, the etag read (so a
    /// concurrent edit answers 409), read-only properties left out.
    pub fn disabled(&self) -> AlertRule {
        let mut properties = self.properties.clone();
        properties.insert("enabled".into(), Value::Bool(false));
        properties.remove("lastModifiedUtc");
        AlertRule { name: self.name.clone(), etag: self.etag.clone(), kind: self.kind.clone(), properties }
    }
}

/// A data connector as ARM returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataConnector {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub properties: Map<String, Value>,
}

impl DataConnector {
    /// The Microsoft Defender XDR connector with its incident integration on.
    pub fn xdr_incidents_enabled(&self) -> bool {
        self.kind.eq_ignore_ascii_case(XDR_CONNECTOR_KIND)
            && self
                .properties
                .get("dataTypes")
                .and_then(|d| d.get("incidents"))
                .and_then(|i| i.get("state"))
                .and_then(Value::as_str)
                .is_some_and(|s| s.eq_ignore_ascii_case("Enabled"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rule(kind: &str, product: &str, enabled: bool) -> AlertRule {
        serde_json::from_value(json!({
            "id": "/subscriptions/s/…/alertRules/r1", "name": "r1", "etag": "\"0300bf09-0000-0000-0000-5c37296e0000\"",
            "type": "Microsoft.SecurityInsights/alertRules", "kind": kind,
            "properties": {"productFilter": product, "displayName": "Create incidents", "enabled": enabled,
                           "lastModifiedUtc": "2026-01-01T00:00:00Z", "severitiesFilter": ["High"]}
        }))
        .unwrap()
    }

    #[test]
    fn defender_products_duplicate_others_do_not() {
        assert!(rule("MicrosoftSecurityIncidentCreation", "Microsoft Defender Advanced Threat Protection", true)
            .covers_defender_xdr());
        assert!(rule("MicrosoftSecurityIncidentCreation", "office 365 advanced threat protection", true)
            .covers_defender_xdr());
        assert!(!rule("MicrosoftSecurityIncidentCreation", "Azure Security Center", true).covers_defender_xdr());
        assert!(!rule("Scheduled", "Microsoft Defender Advanced Threat Protection", true).covers_defender_xdr());
    }

    #[test]
    fn disabling_keeps_the_rule_and_its_etag_and_drops_read_only_fields() {
        let r = rule("MicrosoftSecurityIncidentCreation", "Microsoft Cloud App Security", true);
        let d = r.disabled();
        assert!(!d.enabled());
        assert_eq!(d.etag, r.etag);
        assert_eq!(d.properties["severitiesFilter"], json!(["High"]));
        assert!(!d.properties.contains_key("lastModifiedUtc"));
        let body = serde_json::to_value(&d).unwrap();
        assert_eq!(body["kind"], "MicrosoftSecurityIncidentCreation");
        assert_eq!(body["properties"]["enabled"], false);
    }

    #[test]
    fn xdr_connector_incident_creation() {
        let c = |kind: &str, state: &str| -> DataConnector {
            serde_json::from_value(json!({"name": "c", "kind": kind,
                "properties": {"tenantId": "t", "dataTypes": {"incidents": {"state": state}}}}))
            .unwrap()
        };
        assert!(c("MicrosoftThreatProtection", "Enabled").xdr_incidents_enabled());
        assert!(!c("MicrosoftThreatProtection", "Disabled").xdr_incidents_enabled());
        assert!(!c("AzureActiveDirectory", "Enabled").xdr_incidents_enabled());
    }
}
