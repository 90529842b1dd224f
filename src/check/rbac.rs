//! What xdrsync's principal may do at an ARM scope, read without writing: ARM's permissions
//! API, every page, and the check line that names what is missing (`access` for workspaces,
//! `dcrs` for data collection rules).

use crate::adapters::http::{Call, ServiceClient};
use crate::domain::permissions::PermissionPage;
use crate::error::PortError;

use super::line::CheckLine;

/// Documented api-version of `Microsoft.Authorization/permissions` (azure-rest-api-specs,
/// `Permissions_ListForResource`).
const API_VERSION: &str = "2022-04-01";

/// The caller's permissions at `scope`, every page.
pub(crate) async fn caller_permissions(
    arm: &ServiceClient,
    endpoint: &str,
    scope: &str,
) -> Result<Vec<crate::domain::permissions::Permission>, PortError> {
    let mut url = Some(format!(
        "{}{scope}/providers/Microsoft.Authorization/permissions?api-version={API_VERSION}",
        endpoint.trim_end_matches('/')
    ));
    let mut all = Vec::new();
    // A few pages at most (one entry per role held); the bound guards against a nextLink loop.
    for _ in 0..20 {
        let Some(u) = url.take() else { break };
        let page: PermissionPage = arm.send(&Call::new(reqwest::Method::GET, u)).await?.json("arm")?;
        all.extend(page.value);
        url = page.next_link;
    }
    Ok(all)
}

pub(crate) fn azure_line(what: &str, r: Result<Vec<String>, PortError>, principal: &str, role: &str) -> CheckLine {
    match r {
        Ok(m) if m.is_empty() => CheckLine {
            what: what.into(),
            ok: true,
            detail: format!("{principal} may do everything xdrsync does there"),
        },
        Ok(m) => CheckLine {
            what: what.into(),
            ok: false,
            detail: format!("{principal} may not {}. Missing: {role} (for {principal}).", m.join(", ")),
        },
        Err(e) => CheckLine {
            what: what.into(),
            ok: false,
            detail: format!("{e}. Could not read the permissions of {principal}."),
        },
    }
}
