//! Defender XDR through Microsoft Graph v1.0 (`/security/incidents`, `/security/alerts_v2`,
//! `/users`). Lists page with `$top=50` (the incidents maximum) and follow `@odata.nextLink`
//! verbatim; every call sends `Prefer: include-unknown-enum-members`.

use async_trait::async_trait;
use reqwest::Method;
use serde::Deserialize;
use time::OffsetDateTime;

use super::http::{read_back, Call, ServiceClient};
use super::odata::{encode_path_segment, encode_query_value, get_all_pages, get_page, string_literal};
use crate::domain::cursor::Window;
use crate::domain::defender::{AlertComment, DefenderAlert, DefenderIncident, DefenderIncidentPatch, IncidentStamp};
use crate::domain::snapshot::{ExpandMemory, ExpandOutcome};
use crate::domain::time_fmt;
use crate::error::PortError;
use crate::ports::{DefenderApi, DirectoryUser, IncidentPage, ListedIncident, StampPage};

/// Graph's maximum page size for incidents.
pub const INCIDENT_PAGE_SIZE: u32 = 50;

pub struct GraphDefender {
    client: ServiceClient,
    base: String,
    /// `$select` is not among the documented options of the incidents list; it is tried, and
    /// dropped for the life of the process if the service refuses it.
    select_refused: std::sync::atomic::AtomicBool,
    /// Likewise `alerts_v2?$filter=incidentId eq …` (see [`GraphDefender::list_alerts`]).
    incident_filter_refused: std::sync::atomic::AtomicBool,
    /// This tenant's listing with `$expand=alerts`: left off for a while after it failed.
    expand: std::sync::Mutex<ExpandMemory>,
}

/// How far before an incident's creation its alerts' `lastUpdateDateTime` may lie (assumed: an
/// alert joins an incident within this of the incident's creation, or is updated when it joins).
const ALERT_LEAD: time::Duration = time::Duration::days(1);

impl GraphDefender {
    /// `endpoint` is the Graph root (e.g. `https://graph.microsoft.com`).
    pub fn new(client: ServiceClient, endpoint: &url::Url) -> Self {
        Self {
            client,
            base: format!("{}/v1.0", endpoint.as_str().trim_end_matches('/')),
            select_refused: Default::default(),
            incident_filter_refused: Default::default(),
            expand: Default::default(),
        }
    }

    fn incidents_url(&self, window: Window) -> String {
        let mut filter = format!("lastUpdateDateTime ge {}", time_fmt::format(window.since));
        if let Some(until) = window.until {
            filter.push_str(&format!(" and lastUpdateDateTime lt {}", time_fmt::format(until)));
        }
        format!("{}/security/incidents?$filter={}&$top={INCIDENT_PAGE_SIZE}", self.base, encode_query_value(&filter))
    }

    fn expanding(&self) -> bool {
        self.expand.lock().unwrap_or_else(|p| p.into_inner()).expand(OffsetDateTime::now_utc())
    }

    fn remember(&self, outcome: ExpandOutcome) {
        self.expand.lock().unwrap_or_else(|p| p.into_inner()).record(outcome, OffsetDateTime::now_utc());
    }

    /// A listed page's incidents: each one's stamp, and the incident itself when it came with its
    /// alerts. An incident whose whole form does not parse is still listed by its stamp (its
    /// reconcile reads it and reports the problem for that incident alone).
    fn listed(&self, items: Vec<serde_json::Value>, next: Option<String>) -> Result<IncidentPage, PortError> {
        let mut out = Vec::with_capacity(items.len());
        for v in items {
            let stamp: IncidentStamp =
                serde_json::from_value(v.clone()).map_err(|e| PortError::decode(self.client.service, e))?;
            let full = match v.get("alerts") {
                Some(_) => match serde_json::from_value::<DefenderIncident>(v) {
                    Ok(full) => Some(full),
                    Err(e) => {
                        tracing::warn!(incident.id = %stamp.id, error.message = %e, "listed incident unreadable; its reconcile reads it");
                        None
                    }
                },
                None => None,
            };
            out.push(ListedIncident { stamp, full });
        }
        Ok(IncidentPage { items: out, next })
    }

    fn call(&self, method: Method, url: String) -> Call {
        Call::new(method, url).header("Prefer", "include-unknown-enum-members")
    }
}

#[derive(Deserialize)]
struct CommentList {
    #[serde(default)]
    value: Vec<AlertComment>,
}

#[async_trait]
impl DefenderApi for GraphDefender {
    #[tracing::instrument(level = "debug", skip_all, fields(since = %since))]
    async fn list_incidents_since(&self, since: OffsetDateTime) -> Result<Vec<DefenderIncident>, PortError> {
        let filter = format!("lastUpdateDateTime ge {}", time_fmt::format(since));
        let url = format!(
            "{}/security/incidents?$filter={}&$top={INCIDENT_PAGE_SIZE}",
            self.base,
            encode_query_value(&filter)
        );
        get_all_pages(&self.client, self.call(Method::GET, url)).await
    }

    #[tracing::instrument(level = "debug", skip_all, fields(since = %window.since))]
    async fn list_incident_stamps(&self, window: Window, page: Option<&str>) -> Result<StampPage, PortError> {
        use std::sync::atomic::Ordering;
        if let Some(next) = page {
            let (items, next) = get_page(&self.client, &self.call(Method::GET, next.to_string())).await?;
            return Ok(StampPage { items, next });
        }
        let url = self.incidents_url(window);
        if !self.select_refused.load(Ordering::Relaxed) {
            let selected = format!("{url}&$select=id,lastUpdateDateTime");
            match get_page(&self.client, &self.call(Method::GET, selected)).await {
                Ok((items, next)) => return Ok(StampPage { items, next }),
                Err(PortError::Rejected { reason, .. }) => {
                    tracing::info!(error.message = %reason, "Graph refused $select on incidents; listing whole incidents");
                    self.select_refused.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        let (items, next) = get_page(&self.client, &self.call(Method::GET, url)).await?;
        Ok(StampPage { items, next })
    }

    /// Lists with `$expand=alerts` (documented for the incidents list: Graph's “List incidents”
    /// example 2, with `$filter` and `$top` among its options), so the reconcile can act on the
    /// page. Reported (not documented) to answer 500 on very large tenants: a 5xx or a 400 falls
    /// back to the stamps listing at once and leaves the expansion off for this tenant a while
    /// (`snapshot::ExpandMemory`). A continuation is followed verbatim (it carries the first
    /// page's options); if it fails while expanding, the expansion is left off and the error
    /// returned, and the poller lists the window again without it.
    #[tracing::instrument(level = "debug", skip_all, fields(since = %window.since))]
    async fn list_incident_page(&self, window: Window, page: Option<&str>) -> Result<IncidentPage, PortError> {
        if let Some(next) = page {
            let expanding = self.expanding();
            return match get_page::<serde_json::Value>(&self.client, &self.call(Method::GET, next.to_string())).await {
                Ok((items, next)) => self.listed(items, next),
                Err(e @ (PortError::Unavailable { .. } | PortError::Rejected { .. })) if expanding => {
                    tracing::warn!(error.message = %e, "incident page with $expand=alerts failed; listing without it for a while");
                    self.remember(ExpandOutcome::Failed);
                    Err(e)
                }
                Err(e) => Err(e),
            };
        }
        if self.expanding() {
            let url = format!("{}&$expand=alerts", self.incidents_url(window));
            match get_page::<serde_json::Value>(&self.client, &self.call(Method::GET, url)).await {
                Ok((items, next)) => {
                    self.remember(ExpandOutcome::Served);
                    return self.listed(items, next);
                }
                Err(PortError::Rejected { reason, .. }) => {
                    tracing::info!(error.message = %reason, "Graph refused $expand=alerts on the incident list; reading incidents one by one for a while");
                    self.remember(ExpandOutcome::Refused);
                }
                Err(PortError::Unavailable { message, .. }) => {
                    tracing::warn!(error.message = %message, "incident list with $expand=alerts failed; reading incidents one by one for a while");
                    self.remember(ExpandOutcome::Failed);
                }
                Err(e) => return Err(e),
            }
        }
        let p = self.list_incident_stamps(window, None).await?;
        Ok(IncidentPage {
            items: p.items.into_iter().map(|stamp| ListedIncident { stamp, full: None }).collect(),
            next: p.next,
        })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(incident.id = %id))]
    async fn get_incident(&self, id: &str) -> Result<Option<DefenderIncident>, PortError> {
        let url = format!("{}/security/incidents/{}", self.base, encode_path_segment(id));
        // One call for the incident and its alerts. `$expand=alerts` is documented for incidents;
        // it is reported to fail with 500 on very large tenants (with `$filter` on lists), so a
        // server failure falls back to the plain GET and the alerts are listed separately.
        let expanded = format!("{url}?$expand=alerts");
        let answer = match self.client.send_optional(&self.call(Method::GET, expanded)).await {
            Err(PortError::Unavailable { message, .. }) => {
                tracing::warn!(error.message = %message, "GET with $expand=alerts failed; reading without it");
                self.client.send_optional(&self.call(Method::GET, url)).await?
            }
            other => other?,
        };
        answer.map(|a| a.json(self.client.service)).transpose()
    }

    /// One incident's alerts, when `$expand=alerts` failed or came back paged.
    ///
    /// Documented (List alerts_v2, microsoft-graph-docs-contrib): `$filter` on assignedTo,
    /// classification, determination, createdDateTime, lastUpdateDateTime, severity,
    /// serviceSource and status; `incidentId` is not among them. `incidentId eq '…'` is widely
    /// used and tried first; on a 400 it is dropped for the life of the process, and the alerts
    /// are found with documented calls: the incident (plain GET) for its creation time, then
    /// alerts updated since a day before it, kept where `incidentId` matches. Either way the
    /// answer is checked client-side, so a service that ignored the filter is still right.
    #[tracing::instrument(level = "debug", skip_all, fields(incident.id = %incident_id))]
    async fn list_alerts(&self, incident_id: &str) -> Result<Vec<DefenderAlert>, PortError> {
        use std::sync::atomic::Ordering;
        let mine = |mut alerts: Vec<DefenderAlert>| {
            alerts.retain(|a| a.incident_id.as_deref() == Some(incident_id));
            alerts
        };
        if !self.incident_filter_refused.load(Ordering::Relaxed) {
            let filter = format!("incidentId eq {}", string_literal(incident_id));
            let url = format!("{}/security/alerts_v2?$filter={}", self.base, encode_query_value(&filter));
            match get_all_pages(&self.client, self.call(Method::GET, url)).await {
                Err(PortError::Rejected { reason, .. }) => {
                    tracing::info!(error.message = %reason, "Graph refused $filter=incidentId on alerts_v2; listing alerts by lastUpdateDateTime");
                    self.incident_filter_refused.store(true, Ordering::Relaxed);
                }
                other => return other.map(mine),
            }
        }
        let url = format!("{}/security/incidents/{}", self.base, encode_path_segment(incident_id));
        let incident: Option<DefenderIncident> = match self.client.send_optional(&self.call(Method::GET, url)).await? {
            Some(a) => Some(a.json(self.client.service)?),
            None => None,
        };
        // An unknown incident has no alerts; the list is still read (over an empty window), so the
        // call proves the alerts permission as the filtered one did (`xdrsync check`).
        let since = match &incident {
            Some(i) => i.created_date_time.unwrap_or(i.last_update_date_time) - ALERT_LEAD,
            None => OffsetDateTime::now_utc(),
        };
        let filter = format!("lastUpdateDateTime ge {}", time_fmt::format(since));
        let url = format!("{}/security/alerts_v2?$filter={}", self.base, encode_query_value(&filter));
        let alerts = get_all_pages(&self.client, self.call(Method::GET, url)).await?;
        Ok(if incident.is_some() { mine(alerts) } else { Vec::new() })
    }

    #[tracing::instrument(level = "debug", skip_all, fields(incident.id = %id))]
    async fn patch_incident(&self, id: &str, patch: &DefenderIncidentPatch) -> Result<DefenderIncident, PortError> {
        let url = format!("{}/security/incidents/{}", self.base, encode_path_segment(id));
        let answer = self.client.send(&self.call(Method::PATCH, url).json(patch)).await?;
        match answer.json_opt(self.client.service)? {
            Some(incident) => Ok(incident),
            // Older Graph revisions answered 204.
            None => read_back(self.client.service, self.get_incident(id).await?),
        }
    }

    #[tracing::instrument(level = "debug", skip_all, fields(incident.id = %id))]
    async fn add_comment(&self, id: &str, text: &str) -> Result<Vec<AlertComment>, PortError> {
        let url = format!("{}/security/incidents/{}/comments", self.base, encode_path_segment(id));
        let body = serde_json::json!({"@odata.type": "microsoft.graph.security.alertComment", "comment": text});
        // Not idempotent: a retried POST after a lost answer would add the comment twice.
        let call = self.call(Method::POST, url).json(&body).not_idempotent();
        let list: Option<CommentList> = self.client.send(&call).await?.json_opt(self.client.service)?;
        Ok(list.map(|l| l.value).unwrap_or_default())
    }

    #[tracing::instrument(level = "debug", skip_all)]
    async fn find_user(&self, upn: &str) -> Result<Option<DirectoryUser>, PortError> {
        let url =
            format!("{}/users/{}?$select=id,userPrincipalName,displayName,mail", self.base, encode_path_segment(upn));
        match self.client.send_optional(&self.call(Method::GET, url)).await? {
            Some(a) => Ok(Some(a.json(self.client.service)?)),
            None => Ok(None),
        }
    }

    /// `GET /users?$filter=mail eq '…'`: `mail` supports `eq` filters (Graph user resource,
    /// documented); a guest's `mail` is its home address. The first match is taken.
    #[tracing::instrument(level = "debug", skip_all)]
    async fn find_guest(&self, address: &str) -> Result<Option<DirectoryUser>, PortError> {
        #[derive(serde::Deserialize)]
        struct Users {
            #[serde(default)]
            value: Vec<DirectoryUser>,
        }
        let filter = format!("mail eq '{}'", address.replace('\'', "''"));
        let url = url::Url::parse_with_params(
            &format!("{}/users", self.base),
            &[("$filter", filter.as_str()), ("$select", "id,userPrincipalName,displayName,mail")],
        )
        .map_err(|e| PortError::decode(self.client.service, e))?;
        let users: Users =
            self.client.send(&self.call(Method::GET, url.to_string())).await?.json(self.client.service)?;
        Ok(users.value.into_iter().next())
    }
}
