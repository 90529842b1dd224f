//! Tests of mode 2's links and group sync: unit cases and a property (random edits on two
//! sources and their shared target converge, and a second pass writes nothing).

use proptest::prelude::*;
use serde_json::json;
use time::{Duration, OffsetDateTime};

use super::*;
use crate::domain::defender::{Classification, IncidentStatus};
use crate::domain::fields::Verdict;

const T0: OffsetDateTime = time::macros::datetime!(2026-11-29 10:00 UTC);

fn incident(id: &str) -> DefenderIncident {
    serde_json::from_value(json!({"id": id, "lastUpdateDateTime": "2026-11-29T10:00:00Z", "status": "active"})).unwrap()
}

fn alert(extra: Value) -> DefenderAlert {
    let mut v = json!({"id": "a1", "serviceSource": "microsoftSentinel", "severity": "medium"});
    v.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    serde_json::from_value(v).unwrap()
}

fn src(t: &str, i: &str) -> SourceRef {
    SourceRef { tenant: t.into(), incident: i.into() }
}

/// Users of the source tenants end in `@a.com`, of the target in `@b.com`.
struct Dir;
impl Directory for Dir {
    fn in_source(&self, _tenant: &str, upn: &str) -> bool {
        upn.ends_with("@a.com")
    }
    fn in_target(&self, upn: &str) -> bool {
        upn.ends_with("@b.com")
    }
}

/// What Graph does with a PATCH and new comments.
fn apply(i: &mut DefenderIncident, p: &DefenderIncidentPatch, comments: &[String], now: OffsetDateTime) {
    if let Some(s) = &p.status {
        i.status = s.clone();
    }
    if let Some(o) = &p.assigned_to {
        i.assigned_to = o.clone();
    }
    if let Some(c) = &p.classification {
        i.classification = Some(c.clone());
    }
    if let Some(d) = &p.determination {
        i.determination = Some(d.clone());
    }
    if let Some(t) = &p.custom_tags {
        i.custom_tags = t.clone();
    }
    for (n, c) in comments.iter().enumerate() {
        i.comments.push(AlertComment {
            comment: Some(c.clone()),
            created_date_time: Some(now + Duration::milliseconds(n as i64)),
            ..Default::default()
        });
    }
    if !p.is_empty() || !comments.is_empty() {
        i.last_update_date_time = now;
    }
}

/// A world of one target and its sources, with the stored pair states.
struct World {
    t: DefenderIncident,
    s: Vec<(SourceRef, DefenderIncident, Option<PairState>)>,
    now: OffsetDateTime,
}

impl World {
    fn new(n: usize) -> Self {
        let s =
            (0..n).map(|k| (src("tenant-a", &format!("{}", k + 1)), incident(&format!("{}", k + 1)), None)).collect();
        World { t: incident("900"), s, now: T0 }
    }

    fn plan(&self) -> GroupPlan {
        let sides: Vec<SourceSide<'_>> =
            self.s.iter().map(|(r, i, st)| SourceSide { source: r.clone(), incident: i, state: st.as_ref() }).collect();
        plan_group("900", &self.t, &sides, &Dir, ConflictPolicy::LatestWins)
    }

    /// One pass, applied as Graph would; returns the plan.
    fn pass(&mut self) -> GroupPlan {
        let p = self.plan();
        self.now += Duration::seconds(10);
        apply(&mut self.t, &p.target_patch, &p.target_comments, self.now);
        for sp in &p.sources {
            let (_, i, st) = self.s.iter_mut().find(|(r, _, _)| *r == sp.source).unwrap();
            apply(i, &sp.patch, &sp.comments, self.now);
            *st = Some(sp.next.clone());
        }
        p
    }

    fn edit(&mut self, who: usize, f: impl FnOnce(&mut DefenderIncident)) {
        self.now += Duration::seconds(1);
        let i = if who == 0 { &mut self.t } else { &mut self.s[who - 1].1 };
        f(i);
        i.last_update_date_time = self.now;
    }

    fn comment(&mut self, who: usize, text: &str) {
        let now = self.now;
        self.edit(who, |i| {
            i.comments.push(AlertComment {
                comment: Some(text.into()),
                created_date_time: Some(now),
                ..Default::default()
            })
        });
    }
}

fn texts(i: &DefenderIncident) -> Vec<String> {
    i.comments.iter().filter_map(|c| c.comment.clone()).collect()
}

#[test]
fn target_setting_parses_both_modes_only() {
    assert_eq!(SyncTarget::parse("sentinel"), Some(SyncTarget::Sentinel));
    assert_eq!(SyncTarget::parse("Defender-Portal"), Some(SyncTarget::DefenderPortal));
    assert_eq!(SyncTarget::parse("defender"), None);
    assert_eq!(SyncTarget::default().name(), "sentinel");
    assert_eq!(SyncTarget::DefenderPortal.name(), "defender-portal");
}

#[test]
fn custom_details_are_read_wherever_graph_puts_them() {
    let want = Some(src("t-a", "42"));
    let arrays = alert(json!({"customDetails": {"DefenderTenantId": ["t-a"], "DefenderIncidentId": ["42"]}}));
    assert_eq!(source_of_alert(&arrays), want);
    let plain = alert(json!({"additionalData": {"DefenderTenantId": "t-a", "DefenderIncidentId": "42"}}));
    assert_eq!(source_of_alert(&plain), want);
    let encoded = alert(json!({"additionalData": {"DefenderTenantId": "[\"t-a\"]", "DefenderIncidentId": "[\"42\"]"}}));
    assert_eq!(source_of_alert(&encoded), want);
    let nested = alert(
        json!({"additionalData": {"customDetails": {"defendertenantid": ["t-a"], "DefenderIncidentId": ["42"]}}}),
    );
    assert_eq!(source_of_alert(&nested), want, "nested, keys in any case");
}

#[test]
fn other_alerts_and_incomplete_details_link_nothing() {
    let mde = alert(json!({"serviceSource": "microsoftDefenderForEndpoint",
        "customDetails": {"DefenderTenantId": ["t-a"], "DefenderIncidentId": ["42"]}}));
    assert_eq!(source_of_alert(&mde), None, "only Sentinel rule alerts");
    let half = alert(json!({"customDetails": {"DefenderTenantId": ["t-a"]}}));
    assert_eq!(source_of_alert(&half), None);
    let empty = alert(json!({"customDetails": {"DefenderTenantId": [""], "DefenderIncidentId": ["42"]}}));
    assert_eq!(source_of_alert(&empty), None);
}

#[test]
fn links_map_each_source_to_its_targets() {
    let a1 = alert(json!({"customDetails": {"DefenderTenantId": ["A"], "DefenderIncidentId": ["1"]}}));
    let a2 = alert(json!({"customDetails": {"DefenderTenantId": ["A"], "DefenderIncidentId": ["2"]}}));
    let grouped = vec![a1.clone(), a2.clone()];
    let single = vec![a1.clone()];
    let l = links(&[("900", &grouped), ("901", &single)]);
    assert_eq!(l[&src("A", "1")], BTreeSet::from(["900".to_string(), "901".to_string()]));
    assert_eq!(l[&src("A", "2")], BTreeSet::from(["900".to_string()]));
}

#[test]
fn pairs_the_target_no_longer_names_are_stale() {
    let named = BTreeSet::from([src("T-A", "1"), src("t-b", "7")]);
    let paired = ["t-a:1", "t-a:2", "t-b:7", "t-b:8", "no-colon", "t-c:"];
    assert_eq!(stale_pairs(paired, &named), vec![src("t-a", "2"), src("t-b", "8")], "tenant case is not a difference");
    assert_eq!(stale_pairs(["t-a:1", "t-a:1"], &BTreeSet::new()), vec![src("t-a", "1")], "a gone target: every pair");
    assert!(stale_pairs(paired.iter().take(1).copied(), &named).is_empty());
    assert_eq!(pair_row(&src("T-A", "1")), "t-a:1");
}

#[test]
fn first_sync_takes_the_source_and_keeps_a_foreign_owner_as_a_tag() {
    let mut w = World::new(1);
    w.edit(1, |i| {
        i.status = IncidentStatus::Resolved;
        i.assigned_to = Some("Ann@A.com".into());
        i.custom_tags = vec!["VIP".into()];
    });
    let p = w.pass();
    assert_eq!(p.target_patch.status, Some(IncidentStatus::Resolved));
    assert_eq!(p.target_patch.assigned_to, None, "ann is no user of the target tenant");
    assert_eq!(p.target_patch.custom_tags, Some(vec!["Source owner: ann@a.com".into(), "VIP".into()]));
    assert!(p.sources[0].patch.is_empty(), "the source already holds the agreed values");
    assert!(w.pass().writes_nothing(), "the owner tag reads back as the owner: no echo");
}

#[test]
fn target_edits_reach_the_source() {
    let mut w = World::new(1);
    w.pass();
    w.edit(0, |i| {
        i.status = IncidentStatus::Resolved;
        i.classification = Some(Classification::TruePositive);
        i.determination = Some(Determination::Malware);
        i.assigned_to = Some("bob@b.com".into());
    });
    let p = w.pass();
    let sp = &p.sources[0].patch;
    assert_eq!(sp.status, Some(IncidentStatus::Resolved));
    assert_eq!(sp.classification, Some(Classification::TruePositive));
    assert_eq!(sp.determination, Some(Determination::Malware), "the determination crosses as it is");
    assert_eq!(sp.assigned_to, None);
    assert_eq!(sp.custom_tags, Some(vec!["Target owner: bob@b.com".into()]));
    assert!(p.target_patch.is_empty());
    assert!(w.pass().writes_nothing());
}

#[test]
fn comments_cross_once_each_way_and_echoes_are_recognised() {
    let mut w = World::new(1);
    w.comment(1, "seen on host");
    w.comment(0, "escalated");
    let p = w.pass();
    assert_eq!(p.target_comments, vec!["[xdrsync from tenant-a/1] seen on host".to_string()]);
    assert_eq!(p.sources[0].comments, vec!["[xdrsync from target 900] escalated".to_string()]);
    assert!(w.pass().writes_nothing(), "neither copy goes back");
    assert_eq!(texts(&w.t).len(), 2);
    assert_eq!(texts(&w.s[0].1).len(), 2);
}

#[test]
fn a_grouped_target_fans_out_and_one_source_reaches_the_other_in_one_pass() {
    let mut w = World::new(2);
    w.pass();
    w.edit(1, |i| i.status = IncidentStatus::Resolved);
    w.comment(1, "from s1");
    let p = w.pass();
    assert_eq!(p.target_patch.status, Some(IncidentStatus::Resolved));
    assert_eq!(p.sources[1].patch.status, Some(IncidentStatus::Resolved), "S1's change reaches S2");
    assert!(p.sources[0].patch.status.is_none(), "not sent back to S1");
    assert_eq!(p.sources[1].comments, vec!["[xdrsync from target 900] [xdrsync from tenant-a/1] from s1".to_string()]);
    assert!(p.sources[0].comments.is_empty());
    assert!(w.pass().writes_nothing(), "no ping-pong");
}

#[test]
fn two_sources_changing_a_field_differently_meet_the_policy_once() {
    let mut w = World::new(2);
    w.pass();
    w.edit(1, |i| i.classification = Some(Classification::FalsePositive));
    w.edit(2, |i| i.classification = Some(Classification::TruePositive));
    let p = w.pass();
    assert_eq!(p.conflicts.len(), 1);
    assert_eq!(p.target_patch.classification, Some(Classification::TruePositive), "latest wins: S2 edited last");
    assert_eq!(p.sources[0].patch.classification, Some(Classification::TruePositive));
    assert!(p.target_comments.iter().any(|c| c.starts_with(FROM_XDRSYNC)), "one note on the target");
    assert!(w.pass().writes_nothing());
}

#[test]
fn a_source_joining_a_synced_target_takes_its_values_and_adds_its_tags() {
    let mut w = World::new(1);
    w.edit(1, |i| i.status = IncidentStatus::Resolved);
    w.pass();
    let mut joiner = incident("2");
    joiner.custom_tags = vec!["Late".into()];
    w.s.push((src("tenant-a", "2"), joiner, None));
    let p = w.pass();
    assert_eq!(p.sources[1].patch.status, Some(IncidentStatus::Resolved));
    assert_eq!(p.target_patch.custom_tags, Some(vec!["Late".into()]));
    assert!(w.pass().writes_nothing());
}

fn status_of(k: u8) -> IncidentStatus {
    [IncidentStatus::Active, IncidentStatus::InProgress, IncidentStatus::Resolved][k as usize % 3].clone()
}

proptest! {
    /// Random edits on any of the three incidents between passes: after each pass every side
    /// shows the same values, and a second pass writes nothing.
    #[test]
    fn two_sources_and_their_target_converge_without_ping_pong(
        edits in prop::collection::vec((0usize..3, 0u8..5, 0u8..6), 1..12)
    ) {
        let mut w = World::new(2);
        w.pass();
        for (who, what, v) in edits {
            match what {
                0 => w.edit(who, |i| i.status = status_of(v)),
                1 => w.edit(who, |i| i.assigned_to = ["ann@a.com", "bob@b.com", ""][v as usize % 3].to_string().into()),
                2 => w.edit(who, |i| i.classification = Some([Classification::TruePositive, Classification::FalsePositive, Classification::Unknown][v as usize % 3].clone())),
                3 => w.edit(who, |i| { let t = format!("tag{}", v % 3); if !i.custom_tags.contains(&t) { i.custom_tags.push(t) } else { i.custom_tags.retain(|x| *x != t) } }),
                _ => w.comment(who, &format!("note {v}")),
            }
            if v % 2 == 0 {
                w.pass();
                let again = w.pass();
                prop_assert!(again.writes_nothing(), "second pass wrote: {again:?}");
                let tv = view(&w.t, SOURCE_OWNER_PREFIX);
                for (_, i, _) in &w.s {
                    let sv = view(i, TARGET_OWNER_PREFIX);
                    prop_assert_eq!(sv.status, tv.status);
                    prop_assert_eq!(&sv.owner, &tv.owner);
                    prop_assert_eq!(sv.verdict, tv.verdict);
                    prop_assert_eq!(&sv.tags, &tv.tags);
                }
            }
        }
        w.pass();
        prop_assert!(w.pass().writes_nothing());
    }
}

#[test]
fn views_ignore_severity_and_read_the_owner_tag() {
    let mut i = incident("1");
    i.custom_tags = vec!["Source owner: Ann@a.com".into(), "x".into()];
    let v = view(&i, SOURCE_OWNER_PREFIX);
    assert_eq!(v.owner, Some(Some("ann@a.com".into())));
    assert_eq!(v.tags, Some(BTreeSet::from(["x".to_string()])));
    assert_eq!(v.severity, None);
    assert_eq!(v.status, Some(crate::domain::fields::Status::Open));
    i.status = IncidentStatus::InProgress;
    assert_eq!(view(&i, SOURCE_OWNER_PREFIX).status, v.status, "in progress reads as open: Graph cannot set it");
    assert_eq!(v.verdict, Some(Verdict::Undetermined));
}

#[test]
fn a_source_reconcile_in_this_mode_ships_rows_and_writes_no_mirror() {
    use crate::domain::plan::{plan, Extras, Observed};
    let mut d = incident("7");
    d.comments.push(AlertComment { comment: Some("hi".into()), created_date_time: Some(T0), ..Default::default() });
    let a = alert(json!({"incidentId": "7", "serviceSource": "microsoftDefenderForEndpoint", "evidence": []}));
    let alerts = vec![a];
    let o =
        Observed { tenant_id: "tenant-a", incident_id: "7", defender: &d, sentinel: None, stored: None, tenant: None };
    let x = Extras { alerts: &alerts, ..Extras::default() };
    let full = plan(&o, &x, ConflictPolicy::LatestWins, T0);
    assert!(full.put_sentinel.is_some() && full.alerts.is_some(), "the Sentinel mode creates a mirror");
    let p = rows_only(full);
    assert!(p.put_sentinel.is_none() && !p.write_index && p.comments_to_sentinel.is_empty());
    assert!(p.defender_patch.is_none());
    assert!(p.alerts.is_some(), "the rows still go to XdrsyncAlerts_CL for the rule");
}
