//! Token sources. Azure calls (ARM, Logs Ingestion, Log Analytics, Storage) use the app's managed
//! identity through the App Service identity endpoint; Graph uses `XDRSYNC_GRAPH_CREDENTIAL`: the
//! same managed identity, or the app registration proving itself with a client secret, with the
//! managed identity's token as a federated client assertion, or with a client assertion signed by
//! its certificate (`cert_assertion`; docs/identity.md). Token requests
//! are plain reqwest calls on the shared client, so they obey `XDRSYNC_HTTP_TIMEOUT_SECONDS`, and
//! a timeout or DNS failure is "unreachable" (retry), never "credentials refused".

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use time::OffsetDateTime;
use tokio::sync::Mutex;
use url::Url;

use crate::adapters::status::{from_status, network};
use crate::config::{Config, Credential, GraphCredential};
use crate::error::PortError;
use crate::metrics::{bump, CallCounters};
use crate::ports::TokenSource;

/// The token source of every Azure call: the managed identity, or outside Azure the app
/// registration's secret in `XDRSYNC_TENANT_ID`.
pub fn azure_token_source(cfg: &Config, http: reqwest::Client, counters: Arc<CallCounters>) -> Arc<dyn TokenSource> {
    match &cfg.credential {
        Credential::ClientSecret { client_id, secret } => {
            Arc::new(AppTokens::new(cfg, &cfg.tenant_id, client_id, AppProof::Secret(secret.clone()), http, counters))
        }
        Credential::ClientCertificate { client_id, certificate } => {
            let proof = AppProof::Certificate(certificate.clone());
            Arc::new(AppTokens::new(cfg, &cfg.tenant_id, client_id, proof, http, counters))
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

/// Graph tokens from `tenant`'s authority (`{authority}/{tenant}/oauth2/v2.0/token`) for the one
/// multi-tenant app registration (ARCHITECTURE.md: “Tenants”), or the managed identity itself
/// (its own tenant only: config validation refuses it with many tenants). `azure` is the
/// managed identity whose token a federated credential presents.
pub fn graph_token_source(
    cfg: &Config,
    tenant: &str,
    http: reqwest::Client,
    counters: Arc<CallCounters>,
    azure: &Arc<dyn TokenSource>,
) -> Arc<dyn TokenSource> {
    match &cfg.graph_credential {
        GraphCredential::Azure => azure.clone(),
        GraphCredential::Secret { client_id, secret } => {
            Arc::new(AppTokens::new(cfg, tenant, client_id, AppProof::Secret(secret.clone()), http, counters))
        }
        GraphCredential::Federated { client_id, audience } => {
            let proof = AppProof::Assertion { source: azure.clone(), scope: format!("{audience}/.default") };
            Arc::new(AppTokens::new(cfg, tenant, client_id, proof, http, counters))
        }
        GraphCredential::Certificate { client_id, certificate } => {
            Arc::new(AppTokens::new(cfg, tenant, client_id, AppProof::Certificate(certificate.clone()), http, counters))
        }
    }
}

/// Which principal a token source of this configuration speaks for, in words (for `check`).
pub fn azure_principal(cfg: &Config) -> String {
    match &cfg.credential {
        Credential::ManagedIdentity { client_id: Some(id), .. } => format!("the managed identity {id}"),
        Credential::ManagedIdentity { client_id: None, .. } => "the system-assigned managed identity".into(),
        Credential::ClientSecret { client_id, .. } => format!("the app registration {client_id} (client secret)"),
        Credential::ClientCertificate { client_id, certificate } => {
            format!("the app registration {client_id} (certificate {})", certificate.thumbprint)
        }
    }
}

/// Like [`azure_principal`], for Graph.
pub fn graph_principal(cfg: &Config) -> String {
    match &cfg.graph_credential {
        GraphCredential::Azure => azure_principal(cfg),
        GraphCredential::Secret { client_id, .. } => format!("the app registration {client_id} (client secret)"),
        GraphCredential::Federated { client_id, .. } => format!(
            "the app registration {client_id} (federated credential: {})",
            azure_principal(cfg).trim_start_matches("the ")
        ),
        GraphCredential::Certificate { client_id, certificate } => {
            format!("the app registration {client_id} (certificate {})", certificate.thumbprint)
        }
    }
}

/// How the app registration proves itself in a client-credentials request.
enum AppProof {
    Secret(SecretString),
    /// The managed identity's token for the federated credential's audience.
    Assertion {
        source: Arc<dyn TokenSource>,
        scope: String,
    },
    /// A client assertion signed with the app's certificate (`cert_assertion`), made afresh for
    /// each token request (its own `jti`, a few minutes' validity).
    Certificate(Arc<crate::adapters::cert_assertion::ClientCertificate>),
}

/// Client-credentials tokens of the app registration in one tenant.
///
/// The request is Entra's v2 client-credentials grant (Learn, "OAuth 2.0 client credentials
/// flow": `grant_type=client_credentials`, `client_id`, `scope={resource}/.default`, and either
/// `client_secret`, or, in the "access token request with a federated credential" case,
/// `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` with
/// `client_assertion` = the managed identity's token for `api://AzureADTokenExchange`; Learn,
/// "Configure an application to trust a managed identity"). The answer is
/// `{"token_type","expires_in","access_token"}`; errors are `{"error","error_description":"AADSTS…"}`.
struct AppTokens {
    http: reqwest::Client,
    token_url: Url,
    client_id: String,
    proof: AppProof,
    cache: Mutex<HashMap<String, Cached>>,
    counters: Arc<CallCounters>,
}

impl AppTokens {
    fn new(
        cfg: &Config,
        tenant: &str,
        client_id: &str,
        proof: AppProof,
        http: reqwest::Client,
        counters: Arc<CallCounters>,
    ) -> Self {
        let base = cfg.authority_host.as_str().trim_end_matches('/');
        // The tenant is a validated GUID and the authority a validated URL.
        let token_url = Url::parse(&format!("{base}/{tenant}/oauth2/v2.0/token")).expect("a valid token URL");
        Self { http, token_url, client_id: client_id.to_string(), proof, cache: Mutex::new(HashMap::new()), counters }
    }
}

#[derive(serde::Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: u64,
}

#[async_trait]
impl TokenSource for AppTokens {
    async fn token(&self, scope: &str) -> Result<SecretString, PortError> {
        let mut cache = self.cache.lock().await;
        let now = OffsetDateTime::now_utc();
        if let Some(c) = cache.get(scope).filter(|c| c.refresh_at > now) {
            return Ok(c.token.clone());
        }
        let mut form = vec![
            ("grant_type", "client_credentials".to_string()),
            ("client_id", self.client_id.clone()),
            ("scope", scope.to_string()),
        ];
        match &self.proof {
            AppProof::Secret(secret) => form.push(("client_secret", secret.expose_secret().to_string())),
            AppProof::Assertion { source, scope: audience } => {
                let assertion = source.token(audience).await.map_err(|e| match e {
                    PortError::Unauthorized { service, message } => PortError::Unauthorized {
                        service,
                        message: format!("the managed identity's token for the federated credential: {message}"),
                    },
                    other => other,
                })?;
                form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()));
                form.push(("client_assertion", assertion.expose_secret().to_string()));
            }
            AppProof::Certificate(cert) => {
                // `aud` is the token endpoint this request goes to (Learn: certificate credentials).
                let assertion = cert
                    .assertion(&self.client_id, self.token_url.as_str(), now)
                    .map_err(|message| PortError::Unauthorized { service: "entra", message })?;
                form.push(("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into()));
                form.push(("client_assertion", assertion));
            }
        }
        bump(&self.counters.entra);
        // Request bodies hold the secret or assertion: errors keep only reqwest's kind, never them.
        let resp = self
            .http
            .post(self.token_url.clone())
            .form(&form)
            .send()
            .await
            .map_err(|e| network("entra", unreachable(&e)))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| network("entra", unreachable(&e)))?;
        if !(200..300).contains(&status) {
            return Err(token_error("entra", status, &body));
        }
        let r: TokenResponse = serde_json::from_str(&body).map_err(|e| PortError::decode("entra", e))?;
        let lifetime = Duration::from_secs(r.expires_in);
        let token = SecretString::from(r.access_token);
        cache.insert(scope.to_string(), Cached::new(token.clone(), now, lifetime));
        Ok(token)
    }

    async fn invalidate(&self, scope: &str) {
        self.cache.lock().await.remove(scope);
        if let AppProof::Assertion { source, scope: audience } = &self.proof {
            // The assertion is short-lived too; a refused exchange may be its age.
            source.invalidate(audience).await;
        }
    }
}

/// A token endpoint that did not answer: which way, without the URL.
fn unreachable(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect (DNS or network)"
    } else {
        "request failed"
    };
    format!("the token endpoint is unreachable: {kind}")
}

/// Entra's answer to a refused token request. 400 and 401 are the credentials or the request
/// (`invalid_client`, `unauthorized_client`, `invalid_scope`, AADSTS7002xx for a federated
/// assertion that matches no credential): the operator must fix access. Throttling and server
/// errors keep their usual meaning (retry).
fn token_error(service: &'static str, status: u16, body: &str) -> PortError {
    match from_status(service, status, None, body) {
        PortError::Rejected { reason, .. } if status == 400 => PortError::Unauthorized { service, message: reason },
        other => other,
    }
}

/// Refresh this long before a token's expiry.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);

struct Cached {
    token: SecretString,
    /// When to fetch a new one: `REFRESH_MARGIN` before expiry, or half-way for short tokens.
    refresh_at: OffsetDateTime,
}

impl Cached {
    fn new(token: SecretString, now: OffsetDateTime, lifetime: Duration) -> Self {
        let margin = REFRESH_MARGIN.min(lifetime / 2);
        Self { token, refresh_at: now + (lifetime - margin) }
    }
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
        if let Some(c) = cache.get(scope).filter(|c| c.refresh_at > now) {
            return Ok(c.token.clone());
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
            .map_err(|e| network("managed-identity", unreachable(&e)))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.map_err(|e| network("managed-identity", e.without_url()))?;
        if !(200..300).contains(&status) {
            // 400: the identity named by XDRSYNC_MANAGED_IDENTITY_CLIENT_ID is not assigned to the
            // app (or the resource is unknown): a setting to fix, like a refused credential.
            return Err(token_error("managed-identity", status, &body));
        }
        let r: MsiResponse = serde_json::from_str(&body).map_err(|e| PortError::decode("managed-identity", e))?;
        let secs = match &r.expires_on {
            serde_json::Value::String(s) => s.parse::<i64>().ok(),
            serde_json::Value::Number(n) => n.as_i64(),
            _ => None,
        }
        .ok_or_else(|| PortError::decode("managed-identity", "expires_on is not epoch seconds"))?;
        let lifetime = Duration::from_secs(u64::try_from(secs - now.unix_timestamp()).unwrap_or(0));
        let token = SecretString::from(r.access_token);
        cache.insert(scope.to_string(), Cached::new(token.clone(), now, lifetime));
        Ok(token)
    }

    async fn invalidate(&self, scope: &str) {
        self.cache.lock().await.remove(scope);
    }
}
