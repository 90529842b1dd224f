//! What xdrsync's own principal may do, decided without writing: the caller's Azure permissions
//! at a scope, as ARM's `GET {scope}/providers/Microsoft.Authorization/permissions`
//! (api-version 2022-04-01, azure-rest-api-specs `Permissions_ListForResource`) returns them, and
//! the Graph application permissions in an access token's `roles` claim.
//!
//! ARM answers `{"value":[{"actions":[…],"notActions":[…],"dataActions":[…],"notDataActions":[…]}],
//! "nextLink"?}`, one entry per role the caller holds there. Azure RBAC grants an operation when
//! one role's actions match it and that same role's notActions do not (a notAction subtracts
//! from its own role only, not from other roles; Learn, "Understand Azure role definitions").
//! Operation names compare case-insensitively; `*` matches any run of characters, `/` included
//! (`Microsoft.SecurityInsights/*`, `*/read`).

use serde::Deserialize;

/// One role's permissions at the scope.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Permission {
    pub actions: Vec<String>,
    pub not_actions: Vec<String>,
    pub data_actions: Vec<String>,
    pub not_data_actions: Vec<String>,
}

/// One page of the permissions API.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PermissionPage {
    pub value: Vec<Permission>,
    pub next_link: Option<String>,
}

/// ARM operations on a Sentinel workspace xdrsync performs: incident reads and writes, comments,
/// relations (alerts attached to mirrors).
pub const WORKSPACE_ACTIONS: &[&str] = &[
    "Microsoft.SecurityInsights/incidents/read",
    "Microsoft.SecurityInsights/incidents/write",
    "Microsoft.SecurityInsights/incidents/comments/write",
    "Microsoft.SecurityInsights/incidents/relations/write",
];

/// The data action of a Logs Ingestion upload to a data collection rule.
pub const DCR_DATA_ACTIONS: &[&str] = &["Microsoft.Insights/Telemetry/Write"];

/// Whether `pattern` (with `*` wildcards) matches `operation`, case-insensitively.
pub fn matches(pattern: &str, operation: &str) -> bool {
    let p = pattern.to_ascii_lowercase();
    let o = operation.to_ascii_lowercase();
    let parts: Vec<&str> = p.split('*').collect();
    if parts.len() == 1 {
        return p == o;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !o.starts_with(first) || o.len() < first.len() + last.len() || !o.ends_with(last) {
        return false;
    }
    // Middle pieces in order, greedily leftmost, between the fixed prefix and suffix.
    let mut rest = &o[first.len()..o.len() - last.len()];
    for piece in &parts[1..parts.len() - 1] {
        match rest.find(piece) {
            Some(i) => rest = &rest[i + piece.len()..],
            None => return false,
        }
    }
    true
}

fn any_match(patterns: &[String], operation: &str) -> bool {
    patterns.iter().any(|p| matches(p, operation))
}

/// Whether the permissions allow control-plane `action`.
pub fn allows_action(perms: &[Permission], action: &str) -> bool {
    perms.iter().any(|p| any_match(&p.actions, action) && !any_match(&p.not_actions, action))
}

/// Whether the permissions allow `data_action`.
pub fn allows_data_action(perms: &[Permission], data_action: &str) -> bool {
    perms.iter().any(|p| any_match(&p.data_actions, data_action) && !any_match(&p.not_data_actions, data_action))
}

/// The needed operations the permissions do not allow, in the order given.
pub fn missing(perms: &[Permission], actions: &[&str], data_actions: &[&str]) -> Vec<String> {
    let a = actions.iter().filter(|x| !allows_action(perms, x));
    let d = data_actions.iter().filter(|x| !allows_data_action(perms, x));
    a.chain(d).map(|s| s.to_string()).collect()
}

/// A Graph application permission a feature needs: any of `any_of` (the first is the one to grant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphNeed {
    pub feature: &'static str,
    pub any_of: &'static [&'static str],
}

/// The needs that `held` (a token's `roles`) satisfies none of, in order.
pub fn missing_graph_roles<'a>(held: &[String], needs: &'a [GraphNeed]) -> Vec<&'a GraphNeed> {
    needs.iter().filter(|n| !n.any_of.iter().any(|r| held.iter().any(|h| h.eq_ignore_ascii_case(r)))).collect()
}

/// The `roles` claim of a JWT access token (application permissions), without checking its
/// signature: the token is our own, read only to report what it carries. `None` when the token
/// is not a readable JWT.
pub fn token_roles(token: &str) -> Option<Vec<String>> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    Some(
        claims
            .get("roles")
            .and_then(|r| r.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn perm(actions: &[&str], not_actions: &[&str]) -> Permission {
        Permission {
            actions: actions.iter().map(|s| s.to_string()).collect(),
            not_actions: not_actions.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn wildcards_and_case() {
        assert!(matches("*", "Microsoft.SecurityInsights/incidents/write"));
        assert!(matches("Microsoft.SecurityInsights/*", "microsoft.securityinsights/incidents/comments/write"));
        assert!(matches(
            "Microsoft.SecurityInsights/incidents/*",
            "Microsoft.SecurityInsights/incidents/relations/write"
        ));
        assert!(matches("*/read", "Microsoft.SecurityInsights/incidents/read"));
        assert!(matches("Microsoft.SecurityInsights/*/read", "Microsoft.SecurityInsights/incidents/read"));
        assert!(!matches("Microsoft.SecurityInsights/*/read", "Microsoft.SecurityInsights/incidents/write"));
        assert!(!matches("*/read", "Microsoft.SecurityInsights/incidents/write"));
        assert!(!matches("Microsoft.Insights/Telemetry/Write", "Microsoft.Insights/Metrics/Write"));
        assert!(matches("Microsoft.Insights/telemetry/write", "Microsoft.Insights/Telemetry/Write"));
        assert!(!matches("a*a", "a"), "prefix and suffix do not overlap");
    }

    #[test]
    fn a_not_action_subtracts_from_its_own_role_only() {
        // Responder-like: incidents/* except deletes.
        let responder = perm(
            &["Microsoft.SecurityInsights/*/read", "Microsoft.SecurityInsights/incidents/*"],
            &["Microsoft.SecurityInsights/incidents/*/delete"],
        );
        assert!(missing(std::slice::from_ref(&responder), WORKSPACE_ACTIONS, &[]).is_empty());
        assert!(!allows_action(
            std::slice::from_ref(&responder),
            "Microsoft.SecurityInsights/incidents/comments/delete"
        ));
        let reader = perm(&["Microsoft.SecurityInsights/*/read"], &[]);
        assert_eq!(
            missing(std::slice::from_ref(&reader), WORKSPACE_ACTIONS, &[]),
            WORKSPACE_ACTIONS[1..].iter().map(|s| s.to_string()).collect::<Vec<_>>()
        );
        // Contributor-like: everything but writes; another role grants what it subtracts.
        let contributor = perm(&["*"], &["*/write"]);
        assert!(!allows_action(std::slice::from_ref(&contributor), "Microsoft.SecurityInsights/incidents/write"));
        assert!(allows_action(&[contributor, responder], "Microsoft.SecurityInsights/incidents/write"));
    }

    #[test]
    fn data_actions_are_separate_from_actions() {
        let owner = perm(&["*"], &[]);
        assert_eq!(missing(&[owner], &[], DCR_DATA_ACTIONS), vec!["Microsoft.Insights/Telemetry/Write".to_string()]);
        let publisher = Permission {
            data_actions: vec!["Microsoft.Insights/Metrics/Write".into(), "Microsoft.Insights/Telemetry/Write".into()],
            ..Default::default()
        };
        assert!(missing(&[publisher], &[], DCR_DATA_ACTIONS).is_empty());
        let denied = Permission {
            data_actions: vec!["*".into()],
            not_data_actions: vec!["Microsoft.Insights/Telemetry/*".into()],
            ..Default::default()
        };
        assert!(!allows_data_action(&[denied], "Microsoft.Insights/Telemetry/Write"));
    }

    #[test]
    fn the_api_shape_parses_and_a_jwt_gives_its_roles() {
        let page: PermissionPage = serde_json::from_str(
            r#"{"value":[{"actions":["Microsoft.SecurityInsights/*"],"notActions":[],"dataActions":[],"notDataActions":[]}]}"#,
        )
        .unwrap();
        assert!(page.next_link.is_none() && allows_action(&page.value, WORKSPACE_ACTIONS[1]));
        use base64::Engine;
        let b = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        let jwt = format!("{}.{}.sig", b("{}"), b(r#"{"roles":["SecurityIncident.ReadWrite.All"]}"#));
        assert_eq!(token_roles(&jwt), Some(vec!["SecurityIncident.ReadWrite.All".to_string()]));
        assert_eq!(token_roles("opaque-token"), None);
    }

    #[test]
    fn graph_needs_are_met_by_any_of_their_roles() {
        const NEEDS: &[GraphNeed] = &[
            GraphNeed { feature: "incidents", any_of: &["SecurityIncident.ReadWrite.All"] },
            GraphNeed { feature: "users", any_of: &["User.Read.All", "Directory.Read.All"] },
        ];
        let held = vec!["directory.read.all".to_string()];
        let missing = missing_graph_roles(&held, NEEDS);
        assert_eq!(missing.len(), 1);
        assert_eq!(missing[0].feature, "incidents");
        assert!(
            missing_graph_roles(&["SecurityIncident.ReadWrite.All".into(), "User.Read.All".into()], NEEDS).is_empty()
        );
    }

    fn segment() -> impl Strategy<Value = String> {
        "[A-Za-z.]{1,8}"
    }

    proptest! {
        /// An operation matches itself (any case), `*`, and any pattern made from it by replacing
        /// one of its segments with `*`.
        #[test]
        fn an_operation_matches_its_generalisations(segs in prop::collection::vec(segment(), 2..5), i in 0usize..4, upper in any::<bool>()) {
            let op = segs.join("/");
            let shown = if upper { op.to_ascii_uppercase() } else { op.clone() };
            prop_assert!(matches(&shown, &op));
            prop_assert!(matches("*", &op));
            let mut g = segs.clone();
            let i = i % g.len();
            g[i] = "*".into();
            prop_assert!(matches(&g.join("/"), &op));
        }

        /// Without wildcards, matching is case-insensitive equality.
        #[test]
        fn literal_patterns_are_equality(a in "[A-Za-z/.]{0,12}", b in "[A-Za-z/.]{0,12}") {
            prop_assert_eq!(matches(&a, &b), a.eq_ignore_ascii_case(&b));
        }

        /// Adding a role never removes a permission; a notAction never adds one.
        #[test]
        fn roles_only_add(op in "[a-z]{1,4}/[a-z]{1,4}", extra in "[a-z*/]{1,6}", deny in "[a-z*/]{1,6}") {
            let base = vec![perm(&[op.as_str()], &[])];
            let mut more = base.clone();
            more.push(perm(&[extra.as_str()], &[]));
            prop_assert!(allows_action(&more, &op));
            let denied = vec![perm(&[op.as_str()], &[deny.as_str()])];
            prop_assert!(!allows_action(&denied, &op) || !matches(&deny, &op));
        }
    }
}
