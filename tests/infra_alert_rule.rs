//! The analytics rule in `infra/alert-rule.bicep` matches the code (ARCHITECTURE.md: “Native
//! alerts”): its entity mappings are exactly the flattened columns the rows carry (and the ones the
//! simulator maps), within the documented limits; each mapped column is declared for the DCR stream
//! and the table; the custom details are the ones the attach query reads; no incidents are created.

use std::collections::BTreeSet;

use xdrsync::domain::entity_columns::MAPPINGS;

fn read(name: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("infra").join(name)).unwrap()
}

/// `(entity type, [(column, identifier)])` in file order, read from the Bicep.
fn rule_mappings(bicep: &str) -> Vec<(String, Vec<(String, String)>)> {
    let quoted = |line: &str, key: &str| {
        let at = line.find(&format!("{key}: '"))? + key.len() + 3;
        line[at..].split('\'').next().map(str::to_string)
    };
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in bicep.lines().map(str::trim) {
        if let Some(t) = quoted(line, "entityType") {
            out.push((t, Vec::new()));
        } else if let (Some(i), Some(c)) = (quoted(line, "identifier"), quoted(line, "columnName")) {
            out.last_mut().expect("a mapping before its fields").1.push((c, i));
        }
    }
    out
}

fn as_owned(m: &[(&str, &[(&str, &str)])]) -> Vec<(String, Vec<(String, String)>)> {
    m.iter()
        .map(|(t, ids)| (t.to_string(), ids.iter().map(|(c, i)| (c.to_string(), i.to_string())).collect()))
        .collect()
}

fn declared_columns(bicep: &str) -> BTreeSet<String> {
    bicep
        .lines()
        .filter_map(|l| l.trim().strip_prefix("{ name: '"))
        .filter_map(|rest| rest.split('\'').next())
        .map(str::to_string)
        .collect()
}

#[test]
fn the_rules_entity_mappings_are_the_rows_flattened_columns_within_the_limits() {
    let rule = read("alert-rule.bicep");
    let mappings = rule_mappings(&rule);
    assert_eq!(mappings, as_owned(&MAPPINGS), "infra/alert-rule.bicep maps what entity_columns.rs writes");
    assert_eq!(mappings, as_owned(&xdrsync_sim::sim::alert_rule::ENTITY_MAPPINGS), "the simulator runs the same rule");
    assert!(mappings.len() <= 10, "at most 10 entity mappings");
    assert!(mappings.iter().all(|(_, ids)| (1..=3).contains(&ids.len())), "1 to 3 identifiers per mapping");
    let (dcr, table) = (declared_columns(&read("main.bicep")), declared_columns(&read("workspace.bicep")));
    for (_, ids) in &mappings {
        for (column, _) in ids {
            assert!(
                dcr.contains(column) && table.contains(column),
                "{column} is declared for the stream and the table"
            );
        }
    }
}

#[test]
fn the_rule_attaches_the_custom_details_the_attacher_reads_and_creates_no_incident() {
    let rule = read("alert-rule.bicep");
    assert!(rule.contains("kind: 'NRT'"));
    for (key, column) in xdrsync_sim::sim::alert_rule::CUSTOM_DETAILS {
        assert!(rule.contains(&format!("{key}: '{column}'")), "custom detail {key} from {column}");
    }
    for key in [
        xdrsync::domain::alert_links::DETAIL_TENANT,
        xdrsync::domain::alert_links::DETAIL_INCIDENT,
        xdrsync::domain::alert_links::DETAIL_ALERT,
    ] {
        assert!(rule.contains(&format!("{key}: '")), "the rule sets {key}, which the query reads");
    }
    assert!(rule.contains("createIncident: false"), "alerts only: xdrsync's mirror is the incident");
    for field in
        ["alertDisplayNameFormat", "alertDescriptionFormat", "alertSeverityColumnName", "alertTacticsColumnName"]
    {
        assert!(rule.contains(field), "alertDetailsOverride.{field}");
    }
    assert!(read("main.bicep").contains("module alertRule 'alert-rule.bicep'"), "main.bicep deploys the rule");
}
