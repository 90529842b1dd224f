//! Simulated Entra's check of a certificate client assertion (Learn, "Microsoft identity
//! platform certificate credentials"): a JWT whose header names the registered certificate by
//! `x5t#S256` (or `x5t`), signed RS256 with its key, with `iss` = `sub` = the client id, `aud` =
//! the token endpoint the request went to, unexpired, and a `jti` not seen before. The signature
//! is verified against the certificate registered on the app (`SimConfig::client_certificate`).
//! Codes: AADSTS700027 (signature or unknown certificate) and AADSTS700024 (time range) and
//! AADSTS700021 (iss/sub not the client id) as Entra documents them; AADSTS50027 for a wrong
//! audience or a replayed `jti` is assumed.

use std::collections::BTreeSet;
use std::sync::Mutex;

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use rustls_pki_types::CertificateDer;
use serde_json::Value;
use time::OffsetDateTime;

/// Whether an assertion's header says it is signed by a certificate (rather than a token of a
/// federated issuer).
pub fn is_certificate_assertion(assertion: &str) -> bool {
    part(assertion, 0).is_some_and(|h| h.get("x5t").is_some() || h.get("x5t#S256").is_some())
}

fn part(jwt: &str, i: usize) -> Option<Value> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwt.split('.').nth(i)?).ok()?;
    serde_json::from_slice(&raw).ok()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// `jti`s already presented (Entra refuses a replayed assertion; assumed).
pub type SeenJti = Mutex<BTreeSet<String>>;

/// Checks `assertion` for app `client_id` presented at `token_url`.
pub fn check(
    registered: Option<&[u8]>,
    client_id: &str,
    token_url: &str,
    assertion: &str,
    seen: &SeenJti,
    refuse: impl Fn(u32, &str) -> Response,
) -> Result<(), Response> {
    let (Some(header), Some(claims)) = (part(assertion, 0), part(assertion, 1)) else {
        return Err(refuse(50027, "JWT token is invalid or malformed."));
    };
    let Some(cert) = registered else {
        return Err(refuse(
            700027,
            "The certificate used to sign the client assertion is not registered on the application.",
        ));
    };
    let s256 = b64(ring::digest::digest(&ring::digest::SHA256, cert).as_ref());
    let s1 = b64(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, cert).as_ref());
    let named = header.get("x5t#S256").and_then(Value::as_str) == Some(s256.as_str())
        || header.get("x5t").and_then(Value::as_str) == Some(s1.as_str());
    if !named {
        return Err(refuse(
            700027,
            "The certificate used to sign the client assertion is not registered on the application.",
        ));
    }
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(refuse(700027, "Client assertion failed signature validation (alg)."));
    }
    let (signed, sig) = assertion.rsplit_once('.').unwrap_or_default();
    let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(sig).unwrap_or_default();
    let der = CertificateDer::from(cert);
    let verified = webpki::EndEntityCert::try_from(&der)
        .map(|c| c.verify_signature(webpki::ring::RSA_PKCS1_2048_8192_SHA256, signed.as_bytes(), &sig).is_ok())
        .unwrap_or(false);
    if !verified {
        return Err(refuse(700027, "Client assertion failed signature validation."));
    }
    let claim = |n: &str| claims.get(n).and_then(Value::as_str).unwrap_or_default().to_string();
    if !claim("iss").eq_ignore_ascii_case(client_id) || !claim("sub").eq_ignore_ascii_case(client_id) {
        return Err(refuse(700021, "Client assertion application identifier doesn't match 'client_id' parameter."));
    }
    if claim("aud") != token_url {
        return Err(refuse(50027, &format!("Invalid JWT token: the audience '{}' is not {token_url}.", claim("aud"))));
    }
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let exp = claims.get("exp").and_then(Value::as_i64).unwrap_or(0);
    let nbf = claims.get("nbf").and_then(Value::as_i64).unwrap_or(0);
    // Five minutes of clock skew, as Entra allows (assumed).
    if exp <= now || nbf > now + 300 {
        return Err(refuse(700024, "Client assertion is not within its valid time range."));
    }
    let jti = claim("jti");
    if jti.is_empty() || !seen.lock().unwrap_or_else(|p| p.into_inner()).insert(jti) {
        return Err(refuse(50027, "Invalid JWT token: the jti was already used."));
    }
    Ok(())
}

/// The status Entra answers a refused client assertion with.
pub const REFUSED: StatusCode = StatusCode::UNAUTHORIZED;
