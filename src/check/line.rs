//! What every check reports: one line per check, and the words for a probe's answer (a 403
//! names the missing role, a 400 from Logs Ingestion names the stream, silence is silence).

use crate::error::{PortError, Reaction};
use crate::usecase::Ports;

/// One line of the report.
#[derive(Debug)]
pub struct CheckLine {
    pub what: String,
    pub ok: bool,
    pub detail: String,
}

pub(crate) fn advice(e: &PortError, settings: &str) -> String {
    match e.reaction() {
        Reaction::FixAccess => format!("{e}. Check {settings}."),
        Reaction::Retry => {
            format!("{e}. The endpoint did not answer; check the URL and network ({settings}).")
        }
        _ => format!("{e}. Check {settings}."),
    }
}

/// The line for one permission probe: ok, or what the 403 means.
pub(crate) fn probe_line(what: &str, result: Result<(), PortError>, ok: &str, role: &str, settings: &str) -> CheckLine {
    let detail = match &result {
        Ok(()) => ok.to_string(),
        Err(e @ PortError::Forbidden { .. }) => format!("{e}. Missing: {role}."),
        Err(e) => advice(e, settings),
    };
    CheckLine { what: what.into(), ok: result.is_ok(), detail }
}

/// The line of a Logs Ingestion probe of `stream` (an empty batch: it adds no row). A 400 is a
/// failure that names the stream (an undeclared stream or a wrong DCR refuses every row later, so
/// it must show here); whether the service accepts an empty batch is not documented: the
/// simulator does.
pub(crate) fn logs_line(
    what: &str,
    result: Result<(), PortError>,
    stream: &str,
    role: &str,
    settings: &str,
) -> CheckLine {
    match result {
        Err(e @ PortError::Rejected { .. }) => CheckLine {
            what: what.into(),
            ok: false,
            detail: format!(
                "{e}. The data collection rule refused stream {stream}: check that it declares {stream} and that {settings} name it."
            ),
        },
        r => probe_line(what, r, &format!("the data collection rule accepts {stream} with our token"), role, settings),
    }
}

/// Where a customer's administrator consents to the app in `tenant` (multi-tenant mode).
pub(crate) fn admin_consent(s: &Ports, tenant: &str) -> String {
    let client_id = s.config.app_client_id().unwrap_or_default();
    format!(
        "admin consent in tenant {tenant}: {}/{tenant}/adminconsent?client_id={client_id}",
        s.config.authority_host.as_str().trim_end_matches('/')
    )
}
