//! Credentials for Table and Queue storage: the account key of a connection string, or, for
//! identity-based storage, a bearer token for `https://storage.azure.com` from the app's own
//! token source (managed identity or the app registration), handed to the azure_* crates through
//! their `TokenCredential` trait.

use std::sync::Arc;

use azure_core::auth::{AccessToken, TokenCredential};
use azure_storage::StorageCredentials;
use secrecy::ExposeSecret;

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
}
