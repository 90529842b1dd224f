//! `AzureWebJobsStorage` connection strings: `UseDevelopmentStorage=true`, full strings with
//! explicit `TableEndpoint`/`QueueEndpoint` (Azurite on other ports), or account + key + suffix;
//! or identity-based storage (`AzureWebJobsStorage__accountName`, the Functions convention), where
//! requests carry a token for `https://storage.azure.com` from the app's identity.

use std::fmt;

use secrecy::SecretString;
use url::Url;

/// Azurite's well-known development account (public, documented by Microsoft).
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
pub const DEV_KEY: &str = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

#[derive(Clone)]
pub struct StorageConnection {
    pub account: String,
    /// The account key; `None` for identity-based storage (a bearer token instead).
    pub key: Option<SecretString>,
    pub table_endpoint: Url,
    pub queue_endpoint: Url,
}

impl fmt::Debug for StorageConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageConnection")
            .field("account", &self.account)
            .field("key", &self.key.as_ref().map_or("none (identity)", |_| "[redacted]"))
            .field("table_endpoint", &self.table_endpoint.as_str())
            .field("queue_endpoint", &self.queue_endpoint.as_str())
            .finish()
    }
}

impl StorageConnection {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut parts = std::collections::HashMap::new();
        for part in raw.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("'{}' is not key=value", part.split('=').next().unwrap_or("")))?;
            parts.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
        let dev = parts.get("usedevelopmentstorage").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let account = parts.get("accountname").cloned().or_else(|| dev.then(|| DEV_ACCOUNT.to_string()));
        let key = parts.get("accountkey").cloned().or_else(|| dev.then(|| DEV_KEY.to_string()));
        let (Some(account), Some(key)) = (account, key) else {
            return Err("needs AccountName and AccountKey (identity-based storage connections are not supported yet), or UseDevelopmentStorage=true".into());
        };
        let protocol = parts.get("defaultendpointsprotocol").map(String::as_str).unwrap_or("https");
        let suffix = parts.get("endpointsuffix").map(String::as_str).unwrap_or("core.windows.net");
        let endpoint = |name: &str, sub: &str, dev_port: u16| -> Result<Url, String> {
            let raw = match parts.get(name) {
                Some(e) => e.clone(),
                None if dev => format!("http://127.0.0.1:{dev_port}/{DEV_ACCOUNT}"),
                None => format!("{protocol}://{account}.{sub}.{suffix}"),
            };
            let url = Url::parse(&raw).map_err(|e| format!("{name} '{raw}' is not a URL ({e})"))?;
            super::endpoint::refuse_credentials(&url).map_err(|p| format!("{name} {p}"))?;
            if url.scheme() != "https" && !super::endpoint::is_loopback(&url) {
                return Err(format!("{name} '{raw}' must use https (http only for a local emulator)"));
            }
            Ok(url)
        };
        Ok(Self {
            table_endpoint: endpoint("tableendpoint", "table", 10002)?,
            queue_endpoint: endpoint("queueendpoint", "queue", 10001)?,
            key: Some(SecretString::from(key)),
            account,
        })
    }

    /// Identity-based storage: the account, and the service URIs when given
    /// (`AzureWebJobsStorage__tableServiceUri`, `__queueServiceUri`), else the cloud's defaults.
    pub fn identity(account: &str, table: Option<&str>, queue: Option<&str>, suffix: &str) -> Result<Self, String> {
        let ok_name =
            (3..=24).contains(&account.len()) && account.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !ok_name {
            return Err(format!("'{account}' is not a storage account name (3-24 lowercase letters and digits)"));
        }
        let endpoint = |given: Option<&str>, sub: &str| -> Result<Url, String> {
            let raw = given.map(str::to_string).unwrap_or_else(|| format!("https://{account}.{sub}.{suffix}"));
            let url = Url::parse(&raw).map_err(|e| format!("'{raw}' is not a URL ({e})"))?;
            super::endpoint::refuse_credentials(&url)?;
            if url.scheme() != "https" && !super::endpoint::is_loopback(&url) {
                return Err(format!("'{raw}' must use https"));
            }
            Ok(url)
        };
        Ok(Self {
            account: account.to_string(),
            key: None,
            table_endpoint: endpoint(table, "table")?,
            queue_endpoint: endpoint(queue, "queue")?,
        })
    }

    /// A connection string for Azurite listening on the given ports.
    #[cfg(test)]
    pub fn azurite_string(table_port: u16, queue_port: u16) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};TableEndpoint=http://127.0.0.1:{table_port}/{DEV_ACCOUNT};QueueEndpoint=http://127.0.0.1:{queue_port}/{DEV_ACCOUNT};"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn development_storage_shorthand() {
        let c = StorageConnection::parse("UseDevelopmentStorage=true").unwrap();
        assert_eq!(c.account, DEV_ACCOUNT);
        assert_eq!(c.table_endpoint.as_str(), "http://127.0.0.1:10002/devstoreaccount1");
        assert_eq!(c.queue_endpoint.as_str(), "http://127.0.0.1:10001/devstoreaccount1");
    }

    #[test]
    fn explicit_azurite_endpoints() {
        let c = StorageConnection::parse(&StorageConnection::azurite_string(41002, 41001)).unwrap();
        assert_eq!(c.table_endpoint.port(), Some(41002));
        assert_eq!(c.queue_endpoint.port(), Some(41001));
    }

    #[test]
    fn production_account_uses_https_endpoints() {
        let c = StorageConnection::parse(
            "DefaultEndpointsProtocol=https;AccountName=soc;AccountKey=a2V5;EndpointSuffix=core.usgovcloudapi.net",
        )
        .unwrap();
        assert_eq!(c.table_endpoint.as_str(), "https://soc.table.core.usgovcloudapi.net/");
    }

    #[test]
    fn rejects_incomplete_or_insecure_strings() {
        assert!(StorageConnection::parse("AccountName=x").is_err());
        assert!(StorageConnection::parse("garbage").is_err());
        assert!(StorageConnection::parse("AccountName=x;AccountKey=a2V5;TableEndpoint=http://example.com/x").is_err());
    }
}
