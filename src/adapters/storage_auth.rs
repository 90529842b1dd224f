//! Credentials for Table and Queue storage: the account key of a connection string, or, for
//! identity-based storage, a bearer token for `https://storage.azure.com` from the app's own
//! token source (managed identity or the app registration), handed to the azure_* crates through
//! their `TokenCredential` trait. With a token, a 403 drops it and the call is sent once more
//! with a fresh one (`token_refresh`: at most once per few minutes per client), as the HTTP
//! clients do: a storage role granted after the token was issued then applies within minutes.

use std::sync::Arc;

use azure_core::auth::{AccessToken, TokenCredential};
use azure_core::error::ErrorKind;
use azure_core::{ClientOptions, Context, Policy, PolicyResult, Request, StatusCode};
use azure_storage::StorageCredentials;
use secrecy::ExposeSecret;

use crate::adapters::token_refresh::ForbiddenRefresh;
use crate::config::storage_conn::StorageConnection;
use crate::ports::TokenSource;

/// The scope of Azure Storage's data plane.
pub const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";

/// Our token source as an azure_core credential.
pub struct PortCredential(pub Arc<dyn TokenSource>);

impl std::fmt::Debug for PortCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PortCredential")
    }
}

#[async_trait::async_trait]
impl TokenCredential for PortCredential {
    async fn get_token(&self, scopes: &[&str]) -> azure_core::Result<AccessToken> {
        let scope = scopes.first().copied().unwrap_or(STORAGE_SCOPE);
        let token = self
            .0
            .token(scope)
            .await
            .map_err(|e| azure_core::Error::message(azure_core::error::ErrorKind::Credential, e.to_string()))?;
        // Our source caches and refreshes before expiry; the crate only needs a horizon.
        let horizon = time::OffsetDateTime::now_utc() + time::Duration::minutes(5);
        Ok(AccessToken::new(token.expose_secret().to_string(), horizon))
    }

    async fn clear_cache(&self) -> azure_core::Result<()> {
        self.0.invalidate(STORAGE_SCOPE).await;
        Ok(())
    }
}

/// The credentials for a storage connection: its key, or the app's identity.
pub fn credentials(conn: &StorageConnection, tokens: &Arc<dyn TokenSource>) -> StorageCredentials {
    match &conn.key {
        Some(key) => StorageCredentials::access_key(conn.account.clone(), key.expose_secret().to_string()),
        None => StorageCredentials::token_credential(Arc::new(PortCredential(tokens.clone()))),
    }
}

/// The options of one storage client: no SDK retries (ours are in `retry`), and with a token
/// (`tokens`, no account key) the refresh after a 403.
pub fn client_options(tokens: Option<&Arc<dyn TokenSource>>) -> ClientOptions {
    let options = ClientOptions::default().retry(azure_core::RetryOptions::none());
    match tokens {
        Some(t) => options
            .per_call_policies(vec![
                Arc::new(ForbiddenRefreshPolicy { tokens: t.clone(), gate: Default::default() }) as Arc<dyn Policy>
            ]),
        None => options,
    }
}

/// Sends a request refused with 403 once more after dropping the storage token, when the
/// client's [`ForbiddenRefresh`] allows. It sits before the SDK's retry and authorization
/// policies, so the second send asks our token source again (for a new token).
struct ForbiddenRefreshPolicy {
    tokens: Arc<dyn TokenSource>,
    gate: ForbiddenRefresh,
}

impl std::fmt::Debug for ForbiddenRefreshPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ForbiddenRefreshPolicy")
    }
}

/// Whether the SDK's answer is a 403 (an error status arrives as an error from its retry policy).
fn forbidden(r: &PolicyResult) -> bool {
    match r {
        Ok(resp) => resp.status() == StatusCode::Forbidden,
        Err(e) => matches!(e.kind(), ErrorKind::HttpResponse { status: StatusCode::Forbidden, .. }),
    }
}

#[async_trait::async_trait]
impl Policy for ForbiddenRefreshPolicy {
    async fn send(&self, ctx: &Context, request: &mut Request, next: &[Arc<dyn Policy>]) -> PolicyResult {
        let first = next[0].send(ctx, request, &next[1..]).await;
        // A streamed body cannot be sent twice from here (the SDK's own reset is private); every
        // storage call of xdrsync sends bytes.
        let resendable = matches!(request.body(), azure_core::Body::Bytes(_));
        if !forbidden(&first) || !resendable || !self.gate.claim(std::time::Instant::now()) {
            return first;
        }
        tracing::info!(token.scope = STORAGE_SCOPE, "storage refused the token (403); retrying once with a fresh one");
        self.tokens.invalidate(STORAGE_SCOPE).await;
        next[0].send(ctx, request, &next[1..]).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::PortError;
    use secrecy::SecretString;

    struct FixedTokens;

    #[async_trait::async_trait]
    impl TokenSource for FixedTokens {
        async fn token(&self, scope: &str) -> Result<SecretString, PortError> {
            assert_eq!(scope, STORAGE_SCOPE);
            Ok(SecretString::from("storage-token".to_string()))
        }
        async fn invalidate(&self, _: &str) {}
    }

    #[tokio::test]
    async fn identity_based_storage_asks_the_apps_token_source_for_a_storage_token() {
        let cred = PortCredential(Arc::new(FixedTokens));
        let t = cred.get_token(&[STORAGE_SCOPE]).await.unwrap();
        assert_eq!(t.token.secret(), "storage-token");
        let conn = StorageConnection::identity("socstore", None, None, "core.windows.net").unwrap();
        assert_eq!(conn.table_endpoint.as_str(), "https://socstore.table.core.windows.net/");
        assert!(conn.key.is_none());
        assert!(StorageConnection::identity("Bad_Name", None, None, "core.windows.net").is_err());
    }

    /// Hands out `old` until invalidated, then `new`; counts invalidations.
    struct RotatingTokens {
        fresh: std::sync::atomic::AtomicBool,
        invalidated: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl TokenSource for RotatingTokens {
        async fn token(&self, _: &str) -> Result<SecretString, PortError> {
            let fresh = self.fresh.load(std::sync::atomic::Ordering::SeqCst);
            Ok(SecretString::from(if fresh { "new" } else { "old" }.to_string()))
        }
        async fn invalidate(&self, scope: &str) {
            assert_eq!(scope, STORAGE_SCOPE);
            self.fresh.store(true, std::sync::atomic::Ordering::SeqCst);
            self.invalidated.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    /// A queue service that creates queues for `Bearer {accepted}` and answers 403 (Azure
    /// Storage's `AuthorizationPermissionMismatch`) to any other token; the tokens it saw.
    async fn queue_service(
        accepted: Arc<std::sync::Mutex<&'static str>>,
    ) -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
            let (log, accepted) = (log.clone(), accepted.clone());
            async move {
                let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                log.lock().unwrap().push(auth.clone());
                // The headers every Storage answer carries (the SDK reads them).
                let headers = [
                    ("x-ms-request-id", "00000000-0000-0000-0000-000000000000"),
                    ("x-ms-version", "2019-12-12"),
                    ("date", "Tue, 08 Dec 2026 02:00:00 GMT"),
                    ("server", "Windows-Azure-Queue/1.0 Microsoft-HTTPAPI/2.0"),
                ];
                if auth == format!("Bearer {}", accepted.lock().unwrap()) {
                    (axum::http::StatusCode::CREATED, headers, String::new())
                } else {
                    let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>AuthorizationPermissionMismatch</Code><Message>This request is not authorized to perform this operation using this permission.</Message></Error>";
                    (axum::http::StatusCode::FORBIDDEN, headers, body.to_string())
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/socstore"), seen)
    }

    #[tokio::test]
    async fn a_storage_403_fetches_a_fresh_token_and_retries_once_then_not_again_within_the_window() {
        use crate::ports::WorkQueue;
        let accepted = Arc::new(std::sync::Mutex::new("new"));
        let (url, seen) = queue_service(accepted.clone()).await;
        let tokens = Arc::new(RotatingTokens { fresh: false.into(), invalidated: 0.into() });
        let source: Arc<dyn TokenSource> = tokens.clone();
        let conn = StorageConnection::identity("socstore", None, Some(&url), "core.windows.net").unwrap();
        let counters = Arc::new(crate::metrics::CallCounters::default());
        let queues = crate::adapters::queue::AzureQueues::new(&conn, counters, &source);

        // The held token predates the grant: refused, then the fresh one is accepted.
        queues.ensure_queue("xdrsync-work").await.expect("the retry with a fresh token succeeds");
        assert_eq!(*seen.lock().unwrap(), ["Bearer old", "Bearer new"]);
        assert_eq!(tokens.invalidated.load(std::sync::atomic::Ordering::SeqCst), 1);

        // Refused again soon after: no second refresh within the window, the 403 is the answer.
        *accepted.lock().unwrap() = "none";
        let e = queues.ensure_queue("xdrsync-work").await.expect_err("refused");
        assert!(matches!(e, PortError::Forbidden { .. }), "{e:?}");
        assert_eq!(seen.lock().unwrap().len(), 3, "one request, not retried");
        assert_eq!(tokens.invalidated.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
