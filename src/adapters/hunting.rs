//! Defender advanced hunting through Graph: `POST /v1.0/security/runHuntingQuery` with
//! `{"Query": "<KQL>"}` (documented; `Timespan` is left out: the query's own `Timestamp`
//! condition bounds it, and without `Timespan` the service applies its 30-day default, which the
//! query never exceeds). The answer is `{"schema": [{"name", "type"}], "results": [{…}]}`
//! (documented; older examples write `Name`/`Type`, both read). Limits (documented for advanced
//! hunting, their Graph parity assumed): 100,000 rows, 45 calls a minute per tenant (429 naming
//! the quota, with `Retry-After`), a result size cap. A result too large is reported as an error
//! whose text is not documented: a 413, or a 400 whose message speaks of a size or limit, becomes
//! [`PortError::TooLarge`] so the caller asks for fewer rows.

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::http::{Call, ServiceClient};
use crate::error::PortError;
use crate::ports::{HuntingApi, HuntingResult};

pub struct GraphHunting {
    client: ServiceClient,
    url: String,
}

impl GraphHunting {
    pub fn new(client: ServiceClient, endpoint: &url::Url) -> Self {
        Self { client, url: format!("{}/v1.0/security/runHuntingQuery", endpoint.as_str().trim_end_matches('/')) }
    }
}

#[derive(Deserialize)]
struct Column {
    #[serde(alias = "Name")]
    name: String,
    #[serde(alias = "Type", default)]
    r#type: String,
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default, alias = "Schema")]
    schema: Vec<Column>,
    #[serde(default, alias = "Results")]
    results: Vec<Map<String, Value>>,
}

fn is_size_refusal(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    ["size", "limit", "exceed", "too large", "too many"].iter().any(|w| r.contains(w))
}

#[async_trait]
impl HuntingApi for GraphHunting {
    #[tracing::instrument(level = "debug", skip_all, fields(hunting.query_len = query.len()))]
    async fn run_query(&self, query: &str) -> Result<HuntingResult, PortError> {
        let call = Call::new(Method::POST, self.url.clone())
            .json(&serde_json::json!({ "Query": query }))
            .header("Content-Type", "application/json; charset=utf-8");
        let answer = match self.client.send(&call).await {
            Ok(a) => a,
            Err(PortError::Rejected { service, reason, .. }) if is_size_refusal(&reason) => {
                return Err(PortError::TooLarge { service, message: reason })
            }
            Err(e) => return Err(e),
        };
        let a: Answer = answer.json(self.client.service)?;
        Ok(HuntingResult { schema: a.schema.into_iter().map(|c| (c.name, c.r#type)).collect(), results: a.results })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn size_refusals_are_recognised() {
        assert!(super::is_size_refusal("status 400: Query result size exceeded the allowed limit"));
        assert!(!super::is_size_refusal("status 400: Syntax error near 'x'"));
    }
}
