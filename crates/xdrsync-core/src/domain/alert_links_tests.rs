//! Tests of `alert_links.rs` with literal query answers and relation lists.

use super::*;
use proptest::prelude::*;
use serde_json::json;

const T: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const BASE: &str = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w/providers/Microsoft.SecurityInsights";

fn at(minute: i64) -> OffsetDateTime {
    OffsetDateTime::UNIX_EPOCH + time::Duration::minutes(minute)
}

fn ra(sys: &str, incident: &str, alert: &str, minute: i64) -> RuleAlert {
    RuleAlert {
        system_alert_id: sys.into(),
        tenant_id: T.into(),
        incident_id: incident.into(),
        alert_id: alert.into(),
        time_generated: at(minute),
        ingested: Some(at(minute + 2)),
    }
}

fn rel(name: &str, sys: &str) -> ExistingRelation {
    ExistingRelation { name: name.into(), related_resource_id: alert_resource_id(BASE, sys) }
}

fn key(incident: &str) -> IncidentKey {
    (T.into(), incident.into())
}

#[test]
fn a_query_answer_is_read_by_column_name_and_bad_rows_are_counted() {
    let table = QueryTable {
        columns: [
            "DefenderAlertId",
            "SystemAlertId",
            "TimeGenerated",
            "DefenderIncidentId",
            "DefenderTenantId",
            "IngestedAt",
        ]
        .map(String::from)
        .to_vec(),
        rows: vec![
            vec![
                json!("da1"),
                json!("sys-1"),
                json!("2026-01-01T00:00:00.1234567Z"),
                json!("29"),
                json!(T),
                json!("2026-01-01T00:03:00Z"),
            ],
            vec![json!(""), json!("sys-2"), json!("2026-01-01T00:00:00Z"), json!("29"), json!(T), json!(null)],
        ],
    };
    let (alerts, bad) = parse_rule_alerts(&table);
    assert_eq!(bad, 1, "a row without its Defender alert id");
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].alert_id, "da1");
    assert_eq!(alerts[0].incident_id, "29");
    assert!(alerts[0].ingested.is_some());
}

#[test]
fn the_query_reads_custom_details_and_filters_as_asked() {
    let q = rule_alerts_query(&AlertFilter::IngestedAfter(at(0)));
    assert!(q.starts_with("SecurityAlert\n| where ingestion_time() > datetime(1970-01-01T00:00:00"));
    assert!(q.contains("[\"Custom Details\"]"));
    assert!(q.contains(
        "coalesce(tostring(XdrsyncDetails.DefenderIncidentId[0]), tostring(XdrsyncDetails.DefenderIncidentId))"
    ));
    assert!(q.ends_with(
        "| project SystemAlertId, TimeGenerated, IngestedAt = ingestion_time(), DefenderTenantId, DefenderIncidentId, DefenderAlertId"
    ));
    let q = rule_alerts_query(&AlertFilter::Of { incidents: vec!["29".into()], alerts: vec!["a\"b".into()], days: 90 });
    assert!(q.contains("| where TimeGenerated > ago(90d)"));
    assert!(q.contains("| where DefenderIncidentId in (\"29\") or DefenderAlertId in (\"a\\\"b\")"), "{q}");
}

#[test]
fn relation_names_are_stable_and_distinct_and_fit_the_service_pattern() {
    let a = relation_name(T, "29", "sys-1");
    assert_eq!(a, relation_name(&T.to_uppercase(), "29", "sys-1"));
    assert_ne!(a, relation_name(T, "30", "sys-1"), "another incident, another name");
    assert_ne!(a, relation_name(T, "29", "sys-2"), "another alert, another name");
    let s = a.to_string();
    assert!((3..=63).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    assert_eq!(
        a,
        uuid::uuid!("672a2980-9ce5-5ec4-acef-14443ac8e65d"),
        "pinned: a change would relate every alert twice"
    );
}

#[test]
fn a_mirror_gets_its_missing_alerts_and_keeps_what_it_holds() {
    let alerts = [ra("s1", "29", "a1", 0), ra("s2", "29", "a2", 1)];
    let desired = desired_by_incident(&alerts);
    let d = &desired[&key("29")];
    let known: BTreeSet<&str> = alerts.iter().map(|a| a.system_alert_id.as_str()).collect();
    let plan = plan_relations(&key("29"), d, &[rel("x", "s1"), rel("bookmark", "")], &known);
    assert_eq!(plan.relate, vec![(relation_name(T, "29", "s2"), "s2".to_string())]);
    assert!(plan.unrelate.is_empty());
    assert!(plan_relations(&key("29"), d, &[rel("x", "s1"), rel("y", "s2")], &known).is_empty(), "idempotent");
}

#[test]
fn a_merge_moves_alerts_to_the_survivor() {
    // a1, a2 were in 29; Defender merged 29 into 30: the rows re-sent name 30.
    let alerts = [
        ra("s1", "29", "a1", 0),
        ra("s2", "29", "a2", 1),
        ra("s3", "30", "a3", 2),
        ra("s4", "30", "a1", 5),
        ra("s5", "30", "a2", 5),
    ];
    let desired = desired_by_incident(&alerts);
    let known: BTreeSet<&str> = alerts.iter().map(|a| a.system_alert_id.as_str()).collect();
    let loser = plan_relations(&key("29"), &desired[&key("29")], &[rel("r1", "s1"), rel("r2", "s2")], &known);
    assert!(loser.relate.is_empty());
    assert_eq!(loser.unrelate, vec!["r1".to_string(), "r2".to_string()], "the loser no longer shows them");
    let survivor = plan_relations(&key("30"), &desired[&key("30")], &[rel("r3", "s3")], &known);
    let ids: Vec<&str> = survivor.relate.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(ids, vec!["s4", "s5"], "the survivor shows them, under their newest SecurityAlert");
}

#[test]
fn an_older_copy_of_an_alert_is_replaced_by_its_newest() {
    let alerts = [ra("s1", "29", "a1", 0), ra("s9", "29", "a1", 4)];
    let known: BTreeSet<&str> = alerts.iter().map(|a| a.system_alert_id.as_str()).collect();
    let desired = desired_by_incident(&alerts);
    let plan = plan_relations(&key("29"), &desired[&key("29")], &[rel("r1", "s1")], &known);
    assert_eq!(plan.relate.len(), 1);
    assert_eq!(plan.relate[0].1, "s9");
    assert_eq!(plan.unrelate, vec!["r1".to_string()]);
}

#[test]
fn at_most_150_alerts_and_an_analysts_alerts_count() {
    let alerts: Vec<RuleAlert> = (0..200).map(|i| ra(&format!("s{i:03}"), "29", &format!("a{i}"), i)).collect();
    let known: BTreeSet<&str> = alerts.iter().map(|a| a.system_alert_id.as_str()).collect();
    let desired = desired_by_incident(&alerts);
    let plan = plan_relations(&key("29"), &desired[&key("29")], &[rel("analyst", "foreign")], &known);
    assert_eq!(plan.relate.len(), 149);
    assert_eq!(plan.over_limit, 51);
    assert_eq!(plan.relate[0].1, "s000", "the oldest first");
}

#[test]
fn the_watermark_never_moves_back() {
    assert_eq!(next_watermark(Some(at(10)), &[ra("s", "1", "a", 0)]), Some(at(10)));
    assert_eq!(next_watermark(None, &[ra("s", "1", "a", 20)]), Some(at(22)));
    assert_eq!(next_watermark(None, &[]), None);
}

#[test]
fn a_relation_to_something_else_names_no_alert() {
    let r = ExistingRelation { name: "b".into(), related_resource_id: format!("{BASE}/bookmarks/b1") };
    assert_eq!(r.system_alert_id(), None);
    assert_eq!(rel("x", "sys-1").system_alert_id(), Some("sys-1"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    /// Whatever the history (alerts re-sent, moved between incidents, in any order) and whatever
    /// the mirrors hold, applying the plans gives: every Defender alert on exactly one mirror
    /// (its newest incident's, within the limit), and planning again changes nothing.
    #[test]
    fn plans_converge_and_every_alert_ends_on_exactly_one_mirror(
        history in proptest::collection::vec((0u8..4, 0u8..12, 0i64..50), 1..60),
        held in proptest::collection::vec((0u8..4, 0usize..60), 0..30),
    ) {
        let alerts: Vec<RuleAlert> = history.iter().enumerate()
            .map(|(i, (inc, alert, minute))| ra(&format!("s{i}"), &inc.to_string(), &format!("a{alert}"), *minute))
            .collect();
        let known: BTreeSet<&str> = alerts.iter().map(|a| a.system_alert_id.as_str()).collect();
        let mut mirrors: BTreeMap<IncidentKey, Vec<ExistingRelation>> = BTreeMap::new();
        for (inc, i) in held {
            if let Some(a) = alerts.get(i) {
                mirrors.entry(key(&inc.to_string())).or_default().push(rel(&format!("old-{i}-{inc}"), &a.system_alert_id));
            }
        }
        let desired = desired_by_incident(&alerts);
        for (k, d) in &desired {
            let m = mirrors.entry(k.clone()).or_default();
            let plan = plan_relations(k, d, m, &known);
            m.retain(|r| !plan.unrelate.contains(&r.name));
            for (name, sys) in &plan.relate {
                m.push(rel(&name.to_string(), sys));
            }
            prop_assert!(plan_relations(k, d, m, &known).is_empty(), "a second plan changes nothing");
        }
        let newest = newest_per_alert(&alerts);
        for ((_, alert_id), a) in &newest {
            let on: Vec<&IncidentKey> = mirrors.iter()
                .filter(|(k, _)| desired.contains_key(*k))
                .filter(|(_, rs)| rs.iter().any(|r| r.system_alert_id() == Some(a.system_alert_id.as_str())))
                .map(|(k, _)| k).collect();
            let own = a.incident_key();
            prop_assert_eq!(on, vec![&own], "alert {} on its newest incident only", alert_id);
        }
    }
}

fn ws(name: &str) -> Workspace {
    Workspace { subscription_id: "S".into(), resource_group: "rg".into(), name: name.into() }
}

#[test]
fn one_tenant_keeps_its_own_partition() {
    let scope = AttachScope::single("72F988BF-86F1-41AF-91AB-2D7CD011DB47");
    assert_eq!(scope.partition, T, "the cursor row of single-tenant deployments stays where it was");
    assert!(scope.holds(T) && scope.holds(&T.to_ascii_uppercase()));
    assert!(!scope.holds("00000000-0000-0000-0000-000000000001"));
}

#[test]
fn a_workspace_relates_only_the_tenants_whose_mirrors_live_there_under_a_key_of_its_own() {
    let (default, emea) = (ws("soc"), ws("soc-emea"));
    let (a, b, c) = (
        "aaaaaaaa-0000-0000-0000-000000000001",
        "BBBBBBBB-0000-0000-0000-000000000002",
        "cccccccc-0000-0000-0000-000000000003",
    );
    let listed = [(a, &default), (b, &emea), (c, &default)];
    let home = AttachScope::of_workspace(&default, listed);
    assert_eq!(home.tenants, BTreeSet::from([a.to_string(), c.to_string()]));
    assert!(home.holds(a) && home.holds(c) && !home.holds(b), "a routed tenant's alerts are not the default's");
    let away = AttachScope::of_workspace(&ws("SOC-EMEA"), listed);
    assert_eq!(away.tenants, BTreeSet::from([b.to_ascii_lowercase()]), "routes compare case-insensitively");
    assert!(away.holds(b));
    assert_ne!(home.partition, away.partition, "a cursor per workspace");
    // The key does not depend on which tenants are listed, nor in which order.
    let reordered = AttachScope::of_workspace(&default, [(c, &default), (a, &default)]);
    assert_eq!(reordered.partition, home.partition);
    assert_eq!(reordered.tenants, home.tenants);
    assert_eq!(AttachScope::of_workspace(&default, [(b, &emea)]).partition, home.partition);
    assert!(AttachScope::of_workspace(&default, [(b, &emea)]).tenants.is_empty());
}
