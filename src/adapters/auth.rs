//! Token sources: client credentials through `azure_identity` (which caches and refreshes 20 s
//! before expiry), and managed identity through the App Service identity endpoint, written here
//! because `azure_identity` 0.21 cannot pick a user-assigned identity by client id.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::auth::TokenCredential;
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;
use tokio::sync::Mutex;
use url::Url;

use crate::adapters::status::{from_status, network};
use crate::config::{Config, Credential};
use crate::error::PortError;
use crate::metrics::{bump, CallCounters};
use crate::ports::TokenSource;

/// Builds the token source the configuration asks for (tokens of `XDRSYNC_TENANT_ID`).
pub fn token_source(cfg: &Config, http: reqwest::Client, counters: Arc<CallCounters>) -> Arc<dyn TokenSource> {
    tenant_token_source(cfg, &cfg.tenant_id, http, counters)
}

/// Tokens from `tenant`'s authority (`{authority}/{tenant}/oauth2/v2.0/token`) for the one
/// multi-tenant app registration (ARCHITECTURE.md: “Tenants”). Config validation makes
/// multi-tenant mode use a client secret; a managed identity only ever has its own tenant.
pub fn tenant_token_source(
    cfg: &Config,
    tenant: &str,
    http: reqwest::Client,
    counters: Arc<CallCounters>,
) -> Arc<dyn TokenSource> {
    match &cfg.credential {
        Credential::ClientSecret { client_id, secret } => {
            let transport = Arc::new(EntraTransport {
                inner: azure_core::new_http_client(),
                last_error: Default::default(),
                counters,
            });
            let cred = azure_identity::ClientSecretCredential::new(
                transport.clone(),
                cfg.authority_host.clone(),
                tenant.to_string(),
                client_id.clone(),
                secret.expose_secret().to_string(),
            );
            Arc::new(CredentialTokens { inner: Arc::new(cred), transport })
        }
        Credential::ManagedIdentity { endpoint, header, client_id } => Arc::new(ManagedIdentityTokens {
            http,
            endpoint: endpoint.clone(),
            header: header.clone(),
            client_id: client_id.clone(),
            cache: Mutex::new(HashMap::new()),
            counters,
        }),
    }
}

/// The transport under `azure_identity`: counts token requests and keeps the token endpoint's
/// last error text (`error`, `error_description`), which the credential's own error drops.
/// Response bodies of token errors hold no secrets; request bodies (which do) are never kept.
#[derive(Debug)]
pub struct EntraTransport {
    inner: Arc<dyn azure_core::HttpClient>,
    last_error: std::sync::Mutex<Option<String>>,
    counters: Arc<CallCounters>,
}

impl EntraTransport {
    fn take_last_error(&self) -> Option<String> {
        self.last_error.lock().ok().and_then(|mut e| e.take())
    }
}

#[async_trait]
impl azure_core::HttpClient for EntraTransport {
    async fn execute_request(&self, request: &azure_core::Request) -> azure_core::Result<azure_core::Response> {
        bump(&self.counters.entra);
        let resp = self.inner.execute_request(request).await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let (status, headers, body) = resp.deconstruct();
        let bytes = body.collect().await?;
        let text = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .map(|v| {
                let code = v.get("error").and_then(|c| c.as_str()).unwrap_or_default();
                let desc = v.get("error_description").and_then(|c| c.as_str()).unwrap_or_default();
                format!("{code}: {desc}")
            })
            .unwrap_or_else(|| format!("status {}", u16::from(status)));
        if let Ok(mut slot) = self.last_error.lock() {
            *slot = Some(text);
        }
        let stream = futures::stream::once(async move { Ok(bytes) });
        Ok(azure_core::Response::new(status, headers, Box::pin(stream)))
    }
}

/// Any `azure_core` credential over an [`EntraTransport`].
pub struct CredentialTokens {
    inner: Arc<dyn TokenCredential>,
    transport: Arc<EntraTransport>,
}

#[async_trait]
impl TokenSource for CredentialTokens {
    async fn token(&self, scope: &str) -> Result<SecretString, PortError> {
        let t = self.inner.get_token(&[scope]).await.map_err(|e| PortError::Unauthorized {
            service: "entra",
            message: match self.transport.take_last_error() {
                Some(server) => format!("{} ({server})", credential_message(&e)),
                None => credential_message(&e),
            },
        })?;
        Ok(SecretString::from(t.token.secret().to_string()))
    }

    async fn invalidate(&self, _scope: &str) {
        let _ = self.inner.clear_cache().await;
    }
}

/// Flattens an azure_core error chain into one line. The chain holds the token endpoint's
/// error (e.g. `invalid_client`, AADSTS…), never the secret.
fn credential_message(e: &azure_core::Error) -> String {
    let mut parts = vec![e.to_string()];
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        parts.push(s.to_string());
        src = s.source();
    }
    parts.join(": ")
}

/// Refresh this long before a token's expiry.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

struct Cached {
    token: SecretString,
    expires_on: OffsetDateTime,
}

/// Managed identity via `IDENTITY_ENDPOINT` + `X-IDENTITY-HEADER` (api-version 2019-08-01).
pub struct ManagedIdentityTokens {
    http: reqwest::Client,
    endpoint: Url,
    header: SecretString,
    client_id: Option<String>,
    cache: Mutex<HashMap<String, Cached>>,
    counters: Arc<CallCounters>,
}

#[derive(serde::Deserialize)]
struct MsiResponse {
    access_token: String,
    /// Epoch seconds, sent as a string.
    expires_on: serde_json::Value,
}

#[async_trait]
impl TokenSource for ManagedIdentityTokens {
    async fn token(&self, scope: &str) -> Result<SecretString, PortError> {
        let mut cache = self.cache.lock().await;
        let now = OffsetDateTime::now_utc();
        if let Some(c) = cache.get(scope) {
            if c.expires_on - REFRESH_MARGIN > now {
                return Ok(c.token.clone());
            }
        }
        let resource = scope.trim_end_matches("/.default");
        let mut url = self.endpoint.clone();
        url.query_pairs_mut().append_pair("api-version", "2019-08-01").append_pair("resource", resource);
        if let Some(id) = &self.client_id {
            url.query_pairs_mut().append_pair("client_id", id);
        }
        bump(&self.counters.entra);
        let resp = self
            .http
            .get(url)
            .header("X-IDENTITY-HEADER", self.header.expose_secret())
            .send()
            .await
            .map_err(|e| network("managed-identity", e.without_url()))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| network("managed-identity", e.without_url()))?;
        if !(200..300).contains(&status) {
            return Err(from_status("managed-identity", status, None, &body));
        }
        let r: MsiResponse = serde_json::from_str(&body).map_err(|e| PortError::decode("managed-identity", e))?;
        let secs = match &r.expires_on {
            serde_json::Value::String(s) => s.parse::<i64>().ok(),
            serde_json::Value::Number(n) => n.as_i64(),
            _ => None,
        }
        .ok_or_else(|| PortError::decode("managed-identity", "expires_on is not epoch seconds"))?;
        let expires_on =
            OffsetDateTime::from_unix_timestamp(secs).map_err(|e| PortError::decode("managed-identity", e))?;
        let token = SecretString::from(r.access_token);
        cache.insert(scope.to_string(), Cached { token: token.clone(), expires_on });
        Ok(token)
    }

    async fn invalidate(&self, scope: &str) {
        self.cache.lock().await.remove(scope);
    }
}
