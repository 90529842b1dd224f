//! What every setting parser shares: the error that names the setting and its fix, and the
//! rules for endpoint URLs (https except on loopback, no credentials in them).

use url::Url;

/// A configuration problem, phrased for the person deploying.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {problem}")]
pub struct ConfigError {
    /// The setting at fault (a per-table setting's name is built at run time).
    pub var: std::borrow::Cow<'static, str>,
    pub problem: String,
}

pub(crate) fn err(var: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError { var: var.into(), problem: problem.into() }
}

/// Refuses a URL that carries a user name or password: xdrsync sends its own credentials, and
/// the client would otherwise add them as a Basic header beside ours. The error shows the URL
/// without them, so the password is not printed.
pub fn refuse_credentials(url: &Url) -> Result<(), String> {
    if url.username().is_empty() && url.password().is_none() {
        return Ok(());
    }
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    Err(format!("'{shown}' must not carry a user name or password (user:password@ in the URL); remove them"))
}

/// Parses an endpoint URL and enforces https (loopback excepted) and no credentials in it.
pub fn parse_endpoint(var: &'static str, raw: &str) -> Result<Url, ConfigError> {
    let url = Url::parse(raw).map_err(|e| err(var, format!("'{raw}' is not a URL ({e})")))?;
    refuse_credentials(&url).map_err(|p| err(var, p))?;
    match url.scheme() {
        "https" => Ok(url),
        "http" if is_loopback(&url) => Ok(url),
        "http" => Err(err(var, format!("'{raw}' must use https (plain http is allowed only for 127.0.0.1/localhost)"))),
        other => Err(err(var, format!("'{raw}' has scheme '{other}'; use https"))),
    }
}

pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}
