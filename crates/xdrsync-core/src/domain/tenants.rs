//! Many Defender tenants into one (or several) Sentinel workspaces (ARCHITECTURE.md: “Tenants”),
//! pure: parsing `XDRSYNC_DEFENDER_TENANTS` and `XDRSYNC_TENANT_WORKSPACES`, how a mirror shows
//! its tenant (title prefix, label, deep link), and the owner decision across tenants.

use super::workspace::Workspace;

/// Prefix of the label naming a mirror's Defender tenant (owned by xdrsync, never a tag).
pub const TENANT_LABEL_PREFIX: &str = "Defender tenant: ";

/// One Defender tenant xdrsync reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefenderTenant {
    /// The Entra tenant id, lower-cased.
    pub id: String,
    /// What mirrors show; the tenant id when no name was given.
    pub display_name: String,
}

/// Where one tenant's mirrors go, when not to the default workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRoute {
    pub tenant_id: String,
    pub workspace: Workspace,
    /// The data collection rule of that workspace (`None`: the default one).
    pub dcr_immutable_id: Option<String>,
    /// The Logs Ingestion endpoint of that rule (`None`: `XDRSYNC_LOGS_INGESTION_ENDPOINT`). A
    /// data collection endpoint must be in its workspace's region, so a workspace in another
    /// region has its own.
    pub logs_endpoint: Option<String>,
}

fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// Whether `s` is a DCR immutable id (`dcr-` and 32 hex digits).
pub fn is_dcr_id(s: &str) -> bool {
    s.len() == 36 && s.starts_with("dcr-") && s[4..].chars().all(|c| c.is_ascii_hexdigit())
}

/// Parses `tenantId[=display name],…`. Every problem is a sentence for the person deploying;
/// the caller prefixes the setting's name. Empty input is an error (unset means single tenant).
pub fn parse_defender_tenants(raw: &str) -> Result<Vec<DefenderTenant>, String> {
    let mut out: Vec<DefenderTenant> = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (id, name) = match part.split_once('=') {
            Some((id, name)) => (id.trim(), Some(name.trim())),
            None => (part, None),
        };
        if !is_guid(id) {
            return Err(format!("'{id}' is not a tenant id (a GUID); expected tenantId[=display name],…"));
        }
        let id = id.to_ascii_lowercase();
        let display_name = match name {
            Some("") => return Err(format!("tenant {id} has an empty display name after '='")),
            Some(n) if n.chars().count() > 64 => {
                return Err(format!("the display name of tenant {id} is longer than 64 characters"))
            }
            Some(n) if n.chars().any(char::is_control) => {
                return Err(format!("the display name of tenant {id} holds a control character"))
            }
            Some(n) => n.to_string(),
            None => id.clone(),
        };
        if out.iter().any(|t| t.id == id) {
            return Err(format!("tenant {id} is listed twice"));
        }
        if out.iter().any(|t| t.display_name.eq_ignore_ascii_case(&display_name)) {
            return Err(format!("two tenants are named '{display_name}'; mirrors could not be told apart"));
        }
        out.push(DefenderTenant { id, display_name });
    }
    if out.is_empty() {
        return Err("lists no tenant; expected tenantId[=display name],…".into());
    }
    Ok(out)
}

/// Parses `tenantId=workspaceResourceId[|dcr-…[|https://endpoint]],…`; every tenant must be one of
/// `tenants`. The endpoint is checked as a URL by the caller (the settings' own URL rules).
pub fn parse_tenant_workspaces(raw: &str, tenants: &[DefenderTenant]) -> Result<Vec<TenantRoute>, String> {
    let mut out: Vec<TenantRoute> = Vec::new();
    for part in raw.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((id, rest)) = part.split_once('=') else {
            return Err(format!("'{part}' is not tenantId=workspaceResourceId"));
        };
        let id = id.trim().to_ascii_lowercase();
        if !is_guid(&id) {
            return Err(format!("'{id}' is not a tenant id (a GUID)"));
        }
        if !tenants.iter().any(|t| t.id == id) {
            return Err(format!("tenant {id} is not listed in XDRSYNC_DEFENDER_TENANTS"));
        }
        if out.iter().any(|r| r.tenant_id == id) {
            return Err(format!("tenant {id} is routed twice"));
        }
        let mut fields = rest.split('|').map(str::trim);
        let ws = fields.next().unwrap_or_default();
        let dcr = fields.next();
        let endpoint = fields.next();
        if fields.next().is_some() {
            return Err(format!("'{part}' has more than workspace|dcr|endpoint"));
        }
        let workspace = Workspace::parse(ws)?;
        if let Some(d) = dcr.filter(|d| !is_dcr_id(d)) {
            return Err(format!("'{d}' is not a DCR immutable id (dcr- followed by 32 hex digits)"));
        }
        if let Some(e) = endpoint.filter(|e| !e.starts_with("https://") && !e.starts_with("http://")) {
            return Err(format!("'{e}' is not a Logs Ingestion endpoint (https://…)"));
        }
        out.push(TenantRoute {
            tenant_id: id,
            workspace,
            dcr_immutable_id: dcr.map(str::to_string),
            logs_endpoint: endpoint.map(str::to_string),
        });
    }
    Ok(out)
}

/// How a mirror shows its Defender tenant (multi-tenant mode only; `None` keeps today's mirror).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantBadge {
    pub tenant_id: String,
    pub display_name: String,
}

impl TenantBadge {
    /// `[Contoso] title`; a title already carrying the prefix is left as is.
    pub fn title(&self, title: &str) -> String {
        let prefix = format!("[{}] ", self.display_name);
        if title.starts_with(&prefix) {
            title.to_string()
        } else {
            format!("{prefix}{title}")
        }
    }

    /// `Defender tenant: Contoso`
    pub fn label(&self) -> String {
        format!("{TENANT_LABEL_PREFIX}{}", self.display_name)
    }

    /// The Defender portal link with `tid=<tenant>`, so it opens in the right tenant. A link that
    /// already names a `tid` gets it replaced (the portal would otherwise open the signed-in one).
    pub fn deep_link(&self, link: &str) -> String {
        let (base, fragment) = match link.split_once('#') {
            Some((b, f)) => (b, Some(f)),
            None => (link, None),
        };
        let (path, query) = match base.split_once('?') {
            Some((p, q)) => (p, q),
            None => (base, ""),
        };
        let mut params: Vec<String> = query
            .split('&')
            .filter(|p| !p.is_empty() && !p.to_ascii_lowercase().starts_with("tid="))
            .map(str::to_string)
            .collect();
        params.push(format!("tid={}", self.tenant_id));
        let mut out = format!("{path}?{}", params.join("&"));
        if let Some(f) = fragment {
            out.push('#');
            out.push_str(f);
        }
        out
    }
}

/// What to do with a Sentinel owner on the way to a customer's Defender incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerAcrossTenants {
    /// The user exists in the customer tenant (member or B2B guest): assign it.
    Assign,
    /// Not known there: keep Defender's assignment and record the Sentinel owner in a comment.
    KeepWithComment(String),
}

/// The decision, from whether the customer tenant knows the user (`None`: the lookup failed for
/// a reason other than "no such user": treated as unknown, never failing the sync).
pub fn owner_across_tenants(upn: &str, known_in_customer: Option<bool>) -> OwnerAcrossTenants {
    match known_in_customer {
        Some(true) => OwnerAcrossTenants::Assign,
        _ => OwnerAcrossTenants::KeepWithComment(owner_comment(upn)),
    }
}

/// The Defender comment recording a Sentinel owner the customer tenant does not know. Starts with
/// `[Sentinel] ` so the copy back to Sentinel skips it like any comment of ours.
pub fn owner_comment(upn: &str) -> String {
    format!(
        "[Sentinel] xdrsync: owner in Microsoft Sentinel is {upn} (not a user of this tenant; Defender assignment kept)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &str = "1f2e3d4c-5b6a-4978-8695-a4b3c2d1e0f9";
    const B: &str = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d";
    const WS: &str =
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/ws2";

    #[test]
    fn parses_ids_and_names() {
        let t = parse_defender_tenants(&format!(" {A}=Contoso , {}", B.to_uppercase())).unwrap();
        assert_eq!(t[0], DefenderTenant { id: A.into(), display_name: "Contoso".into() });
        assert_eq!(t[1], DefenderTenant { id: B.into(), display_name: B.into() }, "no name: the id, lower-cased");
    }

    #[test]
    fn rejects_bad_lists_saying_why() {
        for (raw, says) in [
            ("", "no tenant"),
            ("contoso", "not a tenant id"),
            (&format!("{A}=Contoso,{A}=Again") as &str, "twice"),
            (&format!("{A}=Contoso,{B}=contoso"), "named"),
            (&format!("{A}="), "empty display name"),
        ] {
            let e = parse_defender_tenants(raw).unwrap_err();
            assert!(e.contains(says), "{raw}: {e}");
        }
    }

    #[test]
    fn routes_need_listed_tenants_and_valid_workspaces() {
        let tenants = parse_defender_tenants(&format!("{A}=Contoso,{B}=Fabrikam")).unwrap();
        let r = parse_tenant_workspaces(&format!("{B}={WS}|dcr-0123456789abcdef0123456789abcdef"), &tenants).unwrap();
        assert_eq!(r[0].tenant_id, B);
        assert_eq!(r[0].workspace.name, "ws2");
        assert_eq!(r[0].dcr_immutable_id.as_deref(), Some("dcr-0123456789abcdef0123456789abcdef"));
        assert_eq!(r[0].logs_endpoint, None, "the default endpoint");
        let dce = "https://soc-dce-x1y2.northeurope-1.ingest.monitor.azure.com";
        let r =
            parse_tenant_workspaces(&format!("{B}={WS}|dcr-0123456789abcdef0123456789abcdef|{dce}"), &tenants).unwrap();
        assert_eq!(r[0].logs_endpoint.as_deref(), Some(dce), "a workspace in another region: its own endpoint");
        let bad = format!("{B}={WS}|dcr-0123456789abcdef0123456789abcdef|dce-in-northeurope");
        assert!(parse_tenant_workspaces(&bad, &tenants).unwrap_err().contains("endpoint"));
        let extra = format!("{B}={WS}|dcr-0123456789abcdef0123456789abcdef|{dce}|more");
        assert!(parse_tenant_workspaces(&extra, &tenants).unwrap_err().contains("more than"));
        let other = "00000000-0000-4000-8000-000000000000";
        assert!(parse_tenant_workspaces(&format!("{other}={WS}"), &tenants).unwrap_err().contains("not listed"));
        assert!(parse_tenant_workspaces(&format!("{A}=/subscriptions/x"), &tenants).unwrap_err().contains("workspace"));
        assert!(parse_tenant_workspaces(&format!("{A}={WS}|dcr-1"), &tenants).unwrap_err().contains("DCR"));
        assert!(parse_tenant_workspaces(&format!("{A}={WS},{A}={WS}"), &tenants).unwrap_err().contains("twice"));
        assert!(parse_tenant_workspaces(WS, &tenants).is_err());
    }

    #[test]
    fn badge_prefixes_labels_and_links() {
        let b = TenantBadge { tenant_id: A.into(), display_name: "Contoso".into() };
        assert_eq!(b.title("Ransomware"), "[Contoso] Ransomware");
        assert_eq!(b.title("[Contoso] Ransomware"), "[Contoso] Ransomware");
        assert_eq!(b.label(), "Defender tenant: Contoso");
        assert_eq!(
            b.deep_link("https://security.microsoft.com/incidents/29"),
            format!("https://security.microsoft.com/incidents/29?tid={A}")
        );
        assert_eq!(
            b.deep_link("https://security.microsoft.com/incidents/29?tid=other&x=1#a"),
            format!("https://security.microsoft.com/incidents/29?x=1&tid={A}#a")
        );
    }

    #[test]
    fn owner_is_assigned_only_when_the_customer_knows_the_user() {
        assert_eq!(owner_across_tenants("a@mssp.com", Some(true)), OwnerAcrossTenants::Assign);
        for known in [Some(false), None] {
            match owner_across_tenants("a@mssp.com", known) {
                OwnerAcrossTenants::KeepWithComment(c) => {
                    assert!(c.starts_with("[Sentinel] ") && c.contains("a@mssp.com"), "{c}")
                }
                other => panic!("{other:?}"),
            }
        }
    }

    proptest! {
        #[test]
        fn any_list_of_distinct_tenants_round_trips(ids in proptest::collection::btree_set(any::<u128>(), 1..8)) {
            let tenants: Vec<(String, String)> = ids.iter().enumerate().map(|(i, n)| {
                (uuid_of(*n), format!("Tenant {i}"))
            }).collect();
            let raw = tenants.iter().map(|(id, n)| format!("{id}={n}")).collect::<Vec<_>>().join(",");
            let parsed = parse_defender_tenants(&raw).unwrap();
            prop_assert_eq!(parsed.len(), tenants.len());
            for (p, (id, n)) in parsed.iter().zip(&tenants) {
                prop_assert_eq!(&p.id, id);
                prop_assert_eq!(&p.display_name, n);
            }
        }

        #[test]
        fn the_deep_link_always_names_exactly_the_tenant(q in "[a-s]{0,5}(=[a-z0-9]{0,5})?", tid in proptest::option::of("[a-z0-9-]{1,8}")) {
            let b = TenantBadge { tenant_id: A.into(), display_name: "C".into() };
            let mut link = "https://security.microsoft.com/incidents/7".to_string();
            let mut params = vec![];
            if !q.is_empty() { params.push(q.clone()); }
            if let Some(t) = &tid { params.push(format!("tid={t}")); }
            if !params.is_empty() { link = format!("{link}?{}", params.join("&")); }
            let out = b.deep_link(&link);
            prop_assert_eq!(out.matches("tid=").count(), 1);
            let expected_tid = format!("tid={A}");
            prop_assert!(out.ends_with(&expected_tid));
            prop_assert_eq!(b.deep_link(&out), out.clone(), "idempotent");
        }
    }

    proptest! {
        /// Incident ids collide across tenants; names and state keys never do.
        #[test]
        fn the_same_incident_id_in_two_tenants_never_shares_a_mirror_or_a_key(
            a in any::<u128>(), b in any::<u128>(), id in 1u32..100_000
        ) {
            prop_assume!(a != b);
            let (ta, tb) = (uuid_of(a), uuid_of(b));
            let id = id.to_string();
            prop_assert_ne!(super::super::names::sentinel_incident_name(&ta, &id), super::super::names::sentinel_incident_name(&tb, &id));
            prop_assert_ne!(super::super::keys::escape_key(&ta).unwrap(), super::super::keys::escape_key(&tb).unwrap());
            let ba = TenantBadge { tenant_id: ta.clone(), display_name: "A".into() };
            let bb = TenantBadge { tenant_id: tb.clone(), display_name: "B".into() };
            let link = format!("https://security.microsoft.com/incidents/{id}");
            prop_assert_ne!(ba.deep_link(&link), bb.deep_link(&link));
        }
    }

    fn uuid_of(n: u128) -> String {
        let h = format!("{n:032x}");
        format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
    }
}
