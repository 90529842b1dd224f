//! The app registration's certificate credential (`XDRSYNC_GRAPH_CREDENTIAL=certificate`, for
//! running outside Azure): a PEM file holding the private key and the certificate registered on
//! the app, and the client assertion JWT signed with it.
//!
//! Learn, "Microsoft identity platform certificate credentials": header `alg` RS256 (the current
//! page shows PS256, earlier versions RS256; Entra accepts RS256 assertions, which MSAL sends for
//! RSA keys, assumed), `typ` JWT, `x5t` = base64url SHA-1 thumbprint of the certificate's DER and
//! `x5t#S256` = its base64url SHA-256 thumbprint (both sent: the older page names `x5t`, the
//! current one `x5t#S256`); claims `aud` = the token endpoint
//! (`https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token`), `iss` = `sub` = the client
//! id, `jti` a GUID, `nbf`/`iat` now and `exp` soon after ("5-10 minutes after nbf at most").
//! The key never leaves this module: no `Debug` shows it, errors name the file, not its content.

use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{RsaKeyPair, RSA_PKCS1_SHA256};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// How long an assertion is valid (Learn: keep it short, 5-10 minutes at most).
const ASSERTION_LIFETIME_SECS: i64 = 300;

/// The private key and its certificate's thumbprints.
pub struct ClientCertificate {
    key: RsaKeyPair,
    /// Base64url SHA-1 of the certificate's DER (`x5t`).
    x5t: String,
    /// Base64url SHA-256 of the certificate's DER (`x5t#S256`).
    x5t_s256: String,
    /// Hex SHA-1 thumbprint, as the portal shows it (for `check` and logs).
    pub thumbprint: String,
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate").field("thumbprint", &self.thumbprint).finish_non_exhaustive()
    }
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl ClientCertificate {
    /// Reads `path`: a PEM file with one RSA private key (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA
    /// PRIVATE KEY`) and the certificate (the first `CERTIFICATE`).
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {}", path.display(), e.kind()))?;
        Self::from_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// As [`Self::load`], from the file's bytes.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let cert = CertificateDer::pem_slice_iter(pem)
            .next()
            .ok_or("holds no CERTIFICATE")?
            .map_err(|_| "its CERTIFICATE is not valid PEM")?;
        let key = PrivateKeyDer::from_pem_slice(pem).map_err(|_| "holds no readable PRIVATE KEY")?;
        let key = match &key {
            PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
            _ => return Err("its key is not an RSA key (Entra certificate credentials are RSA)".into()),
        }
        .map_err(|_| "its private key is not a usable RSA key (2048 bits or more)")?;
        let sha1 = ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, cert.as_ref());
        let sha256 = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
        let thumbprint = sha1.as_ref().iter().map(|b| format!("{b:02X}")).collect();
        Ok(Self { key, x5t: b64url(sha1.as_ref()), x5t_s256: b64url(sha256.as_ref()), thumbprint })
    }

    /// A client assertion for `client_id` at the token endpoint `token_url`, issued at `now`.
    pub fn assertion(&self, client_id: &str, token_url: &str, now: time::OffsetDateTime) -> Result<String, String> {
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5t": self.x5t, "x5t#S256": self.x5t_s256});
        let claims = assertion_claims(client_id, token_url, now, &uuid::Uuid::new_v4().to_string());
        let signed = format!("{}.{}", b64url(header.to_string().as_bytes()), b64url(claims.to_string().as_bytes()));
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), signed.as_bytes(), &mut sig)
            .map_err(|_| "signing the client assertion failed".to_string())?;
        Ok(format!("{signed}.{}", b64url(&sig)))
    }
}

/// The assertion's claims (pure).
pub fn assertion_claims(client_id: &str, token_url: &str, now: time::OffsetDateTime, jti: &str) -> serde_json::Value {
    let t = now.unix_timestamp();
    serde_json::json!({
        "aud": token_url,
        "iss": client_id,
        "sub": client_id,
        "jti": jti,
        "nbf": t,
        "iat": t,
        "exp": t + ASSERTION_LIFETIME_SECS,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &[u8] = include_bytes!("../../tests/fixtures/certs/graph-app.pem");

    fn part(jwt: &str, i: usize) -> serde_json::Value {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwt.split('.').nth(i).unwrap()).unwrap();
        serde_json::from_slice(&raw).unwrap()
    }

    #[test]
    fn the_assertion_has_the_documented_header_and_claims_and_a_fresh_jti() {
        let c = ClientCertificate::from_pem(PEM).unwrap();
        let now = time::OffsetDateTime::from_unix_timestamp(1_700_000_000).unwrap();
        let url = "https://login.microsoftonline.com/t/oauth2/v2.0/token";
        let a = c.assertion("app", url, now).unwrap();
        let (h, claims) = (part(&a, 0), part(&a, 1));
        assert_eq!(h["alg"], "RS256");
        assert_eq!(h["x5t"].as_str().unwrap().len(), 27, "SHA-1, base64url");
        assert_eq!(h["x5t#S256"].as_str().unwrap().len(), 43, "SHA-256, base64url");
        assert_eq!(
            (claims["aud"].as_str(), claims["iss"].as_str(), claims["sub"].as_str()),
            (Some(url), Some("app"), Some("app"))
        );
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["nbf"].as_i64().unwrap(), 300);
        let b = c.assertion("app", url, now).unwrap();
        assert_ne!(part(&b, 1)["jti"], claims["jti"], "each assertion its own jti");
        assert!(!format!("{c:?}").contains("PRIVATE"), "Debug shows the thumbprint only");
    }

    #[test]
    fn a_file_without_key_or_certificate_is_refused_without_echoing_it() {
        let text = std::str::from_utf8(PEM).unwrap();
        let cert_only = &text[text.find("-----BEGIN CERTIFICATE").unwrap()..];
        assert!(ClientCertificate::from_pem(cert_only.as_bytes()).unwrap_err().contains("PRIVATE KEY"));
        let key_only = &text[..text.find("-----BEGIN CERTIFICATE").unwrap()];
        let e = ClientCertificate::from_pem(key_only.as_bytes()).unwrap_err();
        assert!(e.contains("CERTIFICATE") && !e.contains("MII"), "{e}");
    }
}
