//! The reconcile's decisions from literal service answers (JSON as Graph and ARM send it).

use serde_json::json;
use time::macros::datetime;

use super::*;
use crate::domain::defender::DefenderIncident;
use crate::domain::sentinel::{SentinelComment, SentinelIncident};

const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const NOW: OffsetDateTime = datetime!(2026-11-29 12:00 UTC);

fn defender(extra: serde_json::Value) -> DefenderIncident {
    let mut v = json!({
        "id": "29", "displayName": "Multi-stage incident", "status": "active", "severity": "high",
        "lastUpdateDateTime": "2026-11-29T10:00:00Z", "createdDateTime": "2026-11-29T09:00:00Z",
        "incidentWebUrl": "https://security.microsoft.com/incidents/29?tid=72f988bf", "customTags": [],
        "comments": []
    });
    v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    serde_json::from_value(v).unwrap()
}

fn alert(id: &str, incident: &str) -> DefenderAlert {
    serde_json::from_value(json!({
        "id": id, "incidentId": incident, "title": "Suspicious PowerShell", "severity": "high", "status": "new",
        "serviceSource": "microsoftDefenderForEndpoint", "createdDateTime": "2026-11-29T09:00:00Z",
        "lastUpdateDateTime": "2026-11-29T09:30:00Z", "evidence": []
    }))
    .unwrap()
}

/// The mirror as ARM returns it after our first sync of `d`.
fn mirrored(d: &DefenderIncident, etag: &str, count: u64) -> (SentinelIncident, IncidentState) {
    let o = Observed { tenant_id: TENANT, incident_id: &d.id, defender: d, sentinel: None, stored: None, tenant: None };
    let p = plan(&o, &Extras::default(), ConflictPolicy::LatestWins, NOW);
    let body = p.put_sentinel.expect("first sync creates the mirror");
    let mut v = json!({
        "id": format!("/subscriptions/s/resourceGroups/r/providers/Microsoft.OperationalInsights/workspaces/w/providers/Microsoft.SecurityInsights/incidents/{}", p.sentinel_name),
        "name": p.sentinel_name.to_string(), "etag": etag, "type": "Microsoft.SecurityInsights/Incidents",
        "properties": serde_json::to_value(&body.properties).unwrap()
    });
    let props = v["properties"].as_object_mut().unwrap();
    props.insert("lastModifiedTimeUtc".into(), json!("2026-11-29T10:00:05Z"));
    props.insert("additionalData".into(), json!({"commentsCount": count, "alertsCount": 0}));
    let s: SentinelIncident = serde_json::from_value(v).unwrap();
    let mut st = p.next;
    st.sentinel_etag_seen = Some(etag.into());
    st.sentinel_comments_count = comments_count(&s);
    st.sentinel_view = Some(from_sentinel(&s));
    (s, st)
}

fn observe<'a>(
    d: &'a DefenderIncident,
    s: Option<&'a SentinelIncident>,
    st: Option<&'a IncidentState>,
) -> Observed<'a> {
    Observed { tenant_id: TENANT, incident_id: &d.id, defender: d, sentinel: s, stored: st, tenant: None }
}

fn sentinel_comment(name: &str, text: &str) -> SentinelComment {
    serde_json::from_value(json!({
        "id": format!("…/comments/{name}"), "name": name,
        "properties": {"message": text, "author": {"name": "Bob", "email": "bob@contoso.com"}}
    }))
    .unwrap()
}

#[test]
fn first_sync_writes_the_index_first_then_creates_the_mirror_and_ships_alerts() {
    let d = defender(json!({}));
    let alerts = [alert("da1", "29"), alert("da2", "29")];
    let p = plan(
        &observe(&d, None, None),
        &Extras { alerts: &alerts, ..Default::default() },
        ConflictPolicy::LatestWins,
        NOW,
    );
    assert_eq!(p.sentinel_name.to_string(), sentinel_incident_name(TENANT, "29").to_string());
    assert!(p.write_index);
    let body = p.put_sentinel.unwrap();
    assert_eq!(body.etag, None);
    assert_eq!(body.properties.title, "Multi-stage incident");
    assert!(p.defender_patch.is_none(), "nothing to tell Defender");
    assert_eq!(p.alerts.unwrap().rows.len(), 2);
    assert!(p.next.indexed && p.next.base.is_some());
    assert_eq!(p.next.alert_count, 2);
}

#[test]
fn versions_our_last_sync_left_mean_nothing_to_do_and_an_older_defender_read_is_no_edit() {
    let d = defender(json!({}));
    let (s, st) = mirrored(&d, "\"e1\"", 0);
    assert_eq!(glance(&observe(&d, Some(&s), Some(&st)), false), Glance::Unchanged);
    let unindexed = IncidentState { indexed: false, ..st.clone() };
    assert_eq!(glance(&observe(&d, Some(&s), Some(&unindexed)), false), Glance::Changed, "the index row is repaired");
    let older = defender(json!({"lastUpdateDateTime": "2026-11-29T09:59:00Z"}));
    assert_eq!(glance(&observe(&older, Some(&s), Some(&st)), false), Glance::StaleDefender);
    let newer = defender(json!({"lastUpdateDateTime": "2026-11-29T10:01:00Z"}));
    assert_eq!(glance(&observe(&newer, Some(&s), Some(&st)), false), Glance::Changed);
}

#[test]
fn a_comment_added_in_sentinel_without_an_etag_change_is_still_read_and_copied() {
    let d = defender(json!({}));
    let (_, st) = mirrored(&d, "\"e1\"", 0);
    let (s1, _) = mirrored(&d, "\"e1\"", 1);
    let o = observe(&d, Some(&s1), Some(&st));
    assert_eq!(glance(&o, false), Glance::Changed, "commentsCount moved");
    assert!(reads_needed(&o, ConflictPolicy::LatestWins).sentinel_comments);
    let listed = [sentinel_comment("c-1", "isolated the host")];
    let x = Extras { sentinel_comments: Some(&listed), ..Default::default() };
    let p = plan(&o, &x, ConflictPolicy::LatestWins, NOW);
    assert_eq!(p.comments_to_defender, ("29".to_string(), vec!["[Sentinel] Bob: isolated the host".to_string()]));
    assert!(p.put_sentinel.is_none() && p.defender_patch.is_none(), "a comment changes no field");
    assert_eq!(p.next.sentinel_comments_count, Some(1));
    assert!(p.next.sentinel_comments_sent.contains(&"c-1".to_string()));
}

#[test]
fn defender_comments_are_copied_once_by_identity_in_any_order() {
    let c1 = json!({"comment": "first look", "createdByDisplayName": "alice@contoso.com", "createdDateTime": "2026-11-29T09:10:00Z"});
    let c2 = json!({"comment": "contained", "createdByDisplayName": "alice@contoso.com", "createdDateTime": "2026-11-29T09:20:00Z"});
    let d1 = defender(json!({"comments": [c1]}));
    let (s, st) = mirrored(&d1, "\"e1\"", 1);
    assert_eq!(st.defender_comments_copied.len(), 1);
    // Newest first, with one new comment: only the new one is copied.
    let d2 = defender(json!({"lastUpdateDateTime": "2026-11-29T10:05:00Z", "comments": [c2, c1]}));
    let o = observe(&d2, Some(&s), Some(&st));
    assert!(reads_needed(&o, ConflictPolicy::LatestWins).sentinel_comments, "the cap needs Sentinel's count");
    let listed = [sentinel_comment("x", "[Defender] alice@contoso.com: first look")];
    let p =
        plan(&o, &Extras { sentinel_comments: Some(&listed), ..Default::default() }, ConflictPolicy::LatestWins, NOW);
    assert_eq!(p.comments_to_sentinel.len(), 1);
    assert_eq!(p.comments_to_sentinel[0].message, "[Defender] alice@contoso.com: contained");
    assert_eq!(p.next.defender_comments_copied.len(), 2);
    assert!(p.comments_to_defender.1.is_empty(), "our own copy is not copied back");
}

#[test]
fn an_owner_set_in_sentinel_goes_to_defender_only() {
    let d = defender(json!({}));
    let (mut s, st) = mirrored(&d, "\"e1\"", 0);
    s.etag = Some("\"e2\"".into());
    s.properties.writable.owner =
        Some(serde_json::from_value(json!({"objectId": "oid-bob", "userPrincipalName": "Bob@Contoso.com"})).unwrap());
    let o = observe(&d, Some(&s), Some(&st));
    assert_eq!(reads_needed(&o, ConflictPolicy::LatestWins).owner_upn.as_deref(), Some("bob@contoso.com"));
    let owner = ResolvedOwner { upn: "bob@contoso.com".into(), object_id: Some("oid-bob".into()) };
    let p = plan(
        &o,
        &Extras { owner: Some(&owner), sentinel_comments: Some(&[]), ..Default::default() },
        ConflictPolicy::LatestWins,
        NOW,
    );
    assert_eq!(p.defender_patch.unwrap().assigned_to, Some(Some("bob@contoso.com".into())));
    assert!(p.put_sentinel.is_none(), "Sentinel already shows it");
    assert!(p.conflict_note.is_none());
}

#[test]
fn a_conflict_is_explained_in_the_portals_words() {
    let d = defender(json!({}));
    let (mut s, st) = mirrored(&d, "\"e1\"", 0);
    // Sentinel closes it later; Defender starts work on it earlier.
    s.etag = Some("\"e2\"".into());
    s.properties.writable.status = crate::domain::sentinel::SentinelStatus::Closed;
    s.properties.writable.classification = Some(crate::domain::sentinel::SentinelClassification::TruePositive);
    s.properties.writable.classification_reason =
        Some(crate::domain::sentinel::ClassificationReason::SuspiciousActivity);
    s.properties.read_only.last_modified_time_utc = Some(datetime!(2026-11-29 11:00 UTC));
    let d2 = defender(json!({"lastUpdateDateTime": "2026-11-29T10:30:00Z", "status": "inProgress"}));
    let o = observe(&d2, Some(&s), Some(&st));
    let p = plan(&o, &Extras { sentinel_comments: Some(&[]), ..Default::default() }, ConflictPolicy::LatestWins, NOW);
    let note = p.conflict_note.expect("a conflict note").message;
    assert!(
        note.contains("latest-wins") && note.contains("Defender had Active, Sentinel had Closed; Sentinel won"),
        "{note}"
    );
    for debug_text in ["LatestWins", "Some(", "InProgress", "Closed)"] {
        assert!(!note.contains(debug_text), "{debug_text} in {note}");
    }
    assert_eq!(p.defender_patch.unwrap().status, Some(IncidentStatus::Resolved));
}

#[test]
fn alerts_of_another_incident_are_left_out() {
    let d = defender(json!({}));
    let alerts = [alert("da1", "29"), alert("da9", "30")];
    let p = plan(
        &observe(&d, None, None),
        &Extras { alerts: &alerts, ..Default::default() },
        ConflictPolicy::LatestWins,
        NOW,
    );
    assert_eq!(p.foreign_alerts, 1);
    assert_eq!(p.alerts.unwrap().rows.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), ["da1"]);
}

#[test]
fn a_merged_away_incident_is_noted_once_sends_comments_to_the_survivor_and_asks_for_its_reconcile() {
    let d = defender(json!({}));
    let (s, st) = mirrored(&d, "\"e1\"", 0);
    let merged = defender(
        json!({"lastUpdateDateTime": "2026-11-29T10:40:00Z", "status": "redirected", "redirectIncidentId": "31"}),
    );
    let listed = [sentinel_comment("c-7", "see the other one")];
    let o = observe(&merged, Some(&s), Some(&st));
    let p =
        plan(&o, &Extras { sentinel_comments: Some(&listed), ..Default::default() }, ConflictPolicy::LatestWins, NOW);
    assert!(p.redirect_note.as_ref().unwrap().message.contains("incident 31"));
    assert_eq!(p.enqueue_reconcile.as_deref(), Some("31"));
    assert_eq!(p.comments_to_defender.0, "31");
    assert!(p.defender_patch.is_none(), "no field edits on a merged-away incident");
    let again = IncidentState { redirect_target: Some("31".into()), ..p.next.clone() };
    let p2 = plan(&observe(&merged, Some(&s), Some(&again)), &Extras::default(), ConflictPolicy::LatestWins, NOW);
    assert!(p2.redirect_note.is_none() && p2.enqueue_reconcile.is_none(), "noted once");
}

#[test]
fn a_mirror_whose_index_row_was_never_confirmed_gets_it_written_first() {
    let d = defender(json!({"lastUpdateDateTime": "2026-11-29T10:01:00Z"}));
    let (s, mut st) = mirrored(&defender(json!({})), "\"e1\"", 0);
    st.indexed = false;
    let p = plan(&observe(&d, Some(&s), Some(&st)), &Extras::default(), ConflictPolicy::LatestWins, NOW);
    assert!(p.write_index);
    st.indexed = true;
    let p = plan(&observe(&d, Some(&s), Some(&st)), &Extras::default(), ConflictPolicy::LatestWins, NOW);
    assert!(!p.write_index);
}

#[test]
fn defender_refusing_in_progress_gets_active_instead() {
    let d = defender(json!({"status": "resolved", "classification": "truePositive", "determination": "malware"}));
    let (mut s, st) = mirrored(&d, "\"e1\"", 0);
    s.etag = Some("\"e2\"".into());
    s.properties.writable.status = crate::domain::sentinel::SentinelStatus::Active;
    let p = plan(
        &observe(&d, Some(&s), Some(&st)),
        &Extras { sentinel_comments: Some(&[]), ..Default::default() },
        ConflictPolicy::LatestWins,
        NOW,
    );
    assert_eq!(p.defender_patch.unwrap().status, Some(IncidentStatus::InProgress));
    assert_eq!(p.in_progress_fallback.unwrap().status, Some(IncidentStatus::Active));
    let remembered = IncidentState { defender_refuses_in_progress: true, ..st };
    let p = plan(
        &observe(&d, Some(&s), Some(&remembered)),
        &Extras { sentinel_comments: Some(&[]), ..Default::default() },
        ConflictPolicy::LatestWins,
        NOW,
    );
    assert_eq!(p.defender_patch.unwrap().status, Some(IncidentStatus::Active), "not asked again");
}

#[test]
fn an_incident_sentinel_created_is_left_unmirrored_unless_asked_and_noted_once() {
    let d = defender(json!({}));
    let mut from_sentinel_rule = alert("sa1", "29");
    from_sentinel_rule.service_source = Some("microsoftSentinel".into());
    let mixed = [from_sentinel_rule.clone(), alert("da1", "29")];
    let only_sentinel = [from_sentinel_rule];
    let o = observe(&d, None, None);
    assert!(leave_unmirrored(&o, &only_sentinel, false));
    assert!(!leave_unmirrored(&o, &only_sentinel, true), "XDRSYNC_MIRROR_SENTINEL_INCIDENTS=true mirrors it");
    assert!(!leave_unmirrored(&o, &mixed, false), "one Defender alert makes it Defender's");
    assert!(!leave_unmirrored(&o, &[], false));
    let (s, _) = mirrored(&d, "\"e1\"", 0);
    assert!(!leave_unmirrored(&observe(&d, Some(&s), None), &only_sentinel, false), "an existing mirror keeps syncing");
    let noted = unmirrored_state(&o);
    assert!(noted.not_mirrored && noted.base.is_none());
    assert_eq!(glance(&observe(&d, None, Some(&noted)), false), Glance::Unchanged, "noted once");
    assert_eq!(glance(&observe(&d, None, Some(&noted)), true), Glance::Changed, "looked at again once mirroring is on");
    let later = defender(json!({"lastUpdateDateTime": "2026-11-29T11:00:00Z"}));
    assert_eq!(glance(&observe(&later, None, Some(&noted)), false), Glance::Changed);
}

#[test]
fn the_state_row_stays_small_when_defender_has_thousands_of_comments() {
    let comments: Vec<serde_json::Value> = (0..3000)
        .map(|i| json!({"comment": format!("note {i}"), "createdByDisplayName": "a", "createdDateTime": format!("2026-11-29T09:{:02}:{:02}Z", i / 60 % 60, i % 60)}))
        .collect();
    let d = defender(json!({"comments": comments}));
    let p = plan(&observe(&d, None, None), &Extras::default(), ConflictPolicy::LatestWins, NOW);
    assert_eq!(p.comments_to_sentinel.len(), 100, "99 copies and the limit note");
    assert!(p.next.comment_cap_noted);
    assert_eq!(p.next.defender_comments_copied.len(), 99);
    assert!(serde_json::to_string(&p.next).unwrap().encode_utf16().count() < 8_000);
    let (s, st) = (None, Some(&p.next));
    let more = defender(
        json!({"lastUpdateDateTime": "2026-11-29T11:00:00Z", "comments": [json!({"comment": "late", "createdDateTime": "2026-11-29T10:59:00Z"})]}),
    );
    let p2 = plan(&observe(&more, s, st), &Extras::default(), ConflictPolicy::LatestWins, NOW);
    assert!(p2.comments_to_sentinel.is_empty() && p2.next.defender_comments_copied.len() == 99);
}

/// The drift report of `xdrsync reconcile` (`domain/drift.rs`) agrees with the reconcile.
mod drift_report {
    use super::*;
    use crate::domain::drift::drift;
    use crate::domain::sentinel::SentinelSeverity;

    #[test]
    fn a_pair_in_sync_has_no_drift_and_an_edit_names_the_side_to_write() {
        let d = defender(json!({}));
        let (s, st) = mirrored(&d, "\"e1\"", 0);
        assert!(drift(&observe(&d, Some(&s), Some(&st)), ConflictPolicy::LatestWins, false).is_empty());

        let mut edited = s.clone();
        edited.properties.writable.severity = SentinelSeverity::Low;
        edited.etag = Some("\"e2\"".into());
        let rows = drift(&observe(&d, Some(&edited), Some(&st)), ConflictPolicy::LatestWins, false);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].field, "severity");
        assert_eq!(rows[0].action, "write Defender");
        assert_eq!(rows[0].defender, rows[0].base);
        assert_ne!(rows[0].sentinel, rows[0].defender);

        // Both sides changed it, differently: the conflict policy decides, as in the reconcile.
        let later = defender(json!({"severity": "medium", "lastUpdateDateTime": "2026-11-29T11:00:00Z"}));
        let rows = drift(&observe(&later, Some(&edited), Some(&st)), ConflictPolicy::LatestWins, false);
        assert_eq!(rows[0].action, "conflict: Defender wins, write Sentinel", "{rows:?}");
    }

    #[test]
    fn a_missing_mirror_is_created_and_a_deleted_one_recreated() {
        let d = defender(json!({}));
        let (_, st) = mirrored(&d, "\"e1\"", 0);
        let rows = drift(&observe(&d, None, None), ConflictPolicy::LatestWins, false);
        assert_eq!((rows[0].field, rows[0].action.as_str()), ("mirror", "create mirror"));
        let rows = drift(&observe(&d, None, Some(&st)), ConflictPolicy::LatestWins, false);
        assert_eq!(rows[0].action, "recreate mirror (deleted in Sentinel)");
    }

    #[test]
    fn a_changed_version_without_a_field_change_asks_for_a_resync() {
        let d = defender(json!({}));
        let (s, st) = mirrored(&d, "\"e1\"", 0);
        let mut touched = s.clone();
        touched.etag = Some("\"e9\"".into());
        let rows = drift(&observe(&d, Some(&touched), Some(&st)), ConflictPolicy::LatestWins, false);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].field, "versions");
        assert!(rows[0].action.starts_with("resync"));
    }
}
