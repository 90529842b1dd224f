//! The Azure Functions custom-handler envelope (ARCHITECTURE.md: “The Functions edge”): requests arrive as
//! `{Data, Metadata}`, replies are `{Outputs, Logs, ReturnValue}`. Queue text may arrive
//! JSON-quoted or as an object; HTTP `Query` may be a JSON object or a JSON string; HTTP output
//! is an object with statusCode/status/body/headers.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// `POST /{FunctionName}` body.
#[derive(Debug, Default, Deserialize)]
pub struct InvokeRequest {
    #[serde(rename = "Data", default)]
    pub data: Map<String, Value>,
    #[serde(rename = "Metadata", default)]
    pub metadata: Map<String, Value>,
}

/// The handler's reply.
#[derive(Debug, Default, Serialize)]
pub struct InvokeResponse {
    #[serde(rename = "Outputs")]
    pub outputs: Map<String, Value>,
    #[serde(rename = "Logs")]
    pub logs: Vec<String>,
    #[serde(rename = "ReturnValue")]
    pub return_value: Value,
}

impl InvokeResponse {
    pub fn log(line: impl Into<String>) -> Self {
        Self { logs: vec![line.into()], ..Default::default() }
    }
}

impl InvokeRequest {
    /// The value of binding `name`, or the only binding when the name differs.
    pub fn binding(&self, name: &str) -> Option<&Value> {
        self.data.get(name).or_else(|| if self.data.len() == 1 { self.data.values().next() } else { None })
    }

    /// Queue `DequeueCount` (a number, or a number in a string).
    pub fn dequeue_count(&self) -> Option<u64> {
        match self.metadata.get("DequeueCount")? {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim_matches('"').parse().ok(),
            _ => None,
        }
    }

    pub fn metadata_str(&self, key: &str) -> Option<String> {
        match self.metadata.get(key)? {
            Value::String(s) => Some(s.trim_matches('"').to_string()),
            other => Some(other.to_string()),
        }
    }
}

/// The queue message's text from the host's `Data` value: the host passes it as a JSON string
/// whose content is the text JSON-quoted once more (that one layer is removed here), or, from
/// some hosts, the text itself or an already-parsed object. Deeper layers (messages quoted by
/// older versions) are left to `WorkItem::parse`.
pub fn queue_text(v: &Value) -> String {
    match v {
        Value::String(s) if s.trim_start().starts_with('"') => {
            serde_json::from_str::<String>(s.trim()).unwrap_or_else(|_| s.clone())
        }
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An HTTP trigger's request object.
#[derive(Debug, Default, Clone)]
pub struct HttpTriggerRequest {
    pub method: String,
    pub url: String,
    pub headers: HashMap<String, String>,
    pub query: HashMap<String, String>,
    pub body: Option<String>,
}

impl HttpTriggerRequest {
    pub fn from_value(v: &Value) -> Self {
        let str_of = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
        let mut headers = HashMap::new();
        if let Some(h) = v.get("Headers").and_then(Value::as_object) {
            for (k, val) in h {
                let joined = match val {
                    Value::Array(items) => items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                headers.insert(k.to_ascii_lowercase(), joined);
            }
        }
        // Newer hosts send Query as an object; older ones as a JSON string.
        let query_value = match v.get("Query") {
            Some(Value::String(s)) => serde_json::from_str::<Value>(s).unwrap_or(Value::Null),
            Some(other) => other.clone(),
            None => Value::Null,
        };
        let query = query_value
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let body = match v.get("Body") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        };
        Self { method: str_of("Method"), url: str_of("Url"), headers, query, body }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }
}

/// An HTTP output binding value; every field present (hosts differ on which are required).
pub fn http_output(status: u16, body: &Value) -> Value {
    json!({
        "statusCode": status,
        "status": status,
        "body": body.to_string(),
        "headers": {"Content-Type": "application/json"},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_queue_payloads_and_metadata() {
        let req: InvokeRequest = serde_json::from_value(json!({
            "Data": {"msg": "\"{\\\"a\\\":1}\""},
            "Metadata": {"DequeueCount": 3, "Id": "\"abc\"", "sys": {"MethodName": "IncidentSync"}}
        }))
        .unwrap();
        assert_eq!(queue_text(req.binding("msg").unwrap()), "{\"a\":1}", "the host's quoting removed");
        assert_eq!(queue_text(&json!("{\"a\":1}")), "{\"a\":1}", "unquoted text as is");
        assert_eq!(queue_text(&json!("\"broken")), "\"broken", "not a JSON string: as is");
        assert_eq!(req.dequeue_count(), Some(3));
        assert_eq!(req.metadata_str("Id").as_deref(), Some("abc"));
        let req: InvokeRequest =
            serde_json::from_value(json!({"Data": {"other": {"a": 1}}, "Metadata": {"DequeueCount": "2"}})).unwrap();
        assert_eq!(queue_text(req.binding("msg").unwrap()), "{\"a\":1}");
        assert_eq!(req.dequeue_count(), Some(2));
    }

    #[test]
    fn reads_http_requests_with_query_as_string_or_object() {
        let a = HttpTriggerRequest::from_value(
            &json!({"Method": "POST", "Url": "http://h/api/x", "Query": "{\"code\":\"k\"}",
            "Headers": {"Content-Type": ["application/json"], "X-Xdrsync-Key": ["s"]}, "Body": "{}"}),
        );
        assert_eq!(a.query.get("code").map(String::as_str), Some("k"));
        assert_eq!(a.header("x-xdrsync-key"), Some("s"));
        let b = HttpTriggerRequest::from_value(&json!({"Method": "GET", "Query": {"code": "k"}}));
        assert_eq!(b.query.get("code").map(String::as_str), Some("k"));
        assert_eq!(b.body, None);
    }

    #[test]
    fn http_output_has_every_field() {
        let v = http_output(202, &json!({"ok": true}));
        for k in ["statusCode", "status", "body", "headers"] {
            assert!(v.get(k).is_some(), "{k}");
        }
        assert!(v["body"].is_string());
    }
}
