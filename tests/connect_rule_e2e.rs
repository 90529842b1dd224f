//! `xdrsync connect` and the analytics rule over `XdrsyncAlerts_CL` (src/ops/connect_rule.rs),
//! run as an operator runs it (the binary against the simulator and Azurite): a missing rule is
//! created, a table that does not exist yet is reported (exit 1, nothing written), a drifted rule
//! is repaired, a rerun writes nothing; a concurrent edit between read and write is a 409 that is
//! reported, not overwritten.

mod support;

use std::collections::HashMap;
use std::process::Command;

use serde_json::{json, Value};
use support::*;
use xdrsync::domain::workspace_rules::AlertRule;
use xdrsync::ops::connect_rule::{drift, wanted};
use xdrsync_sim::sim::arm_rules::Resource;
use xdrsync_sim::sim::{RunningSim, SimConfig};

const TABLE: &str = "XdrsyncAlerts_CL";

async fn run(vars: &HashMap<String, String>, args: &[&str]) -> (i32, String, String) {
    let vars = vars.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_xdrsync"))
            .env_clear()
            .envs(vars.iter())
            .current_dir(dir.path())
            .args(&args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}

fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// A simulator, Azurite and native alerts on; `contributor`: xdrsync may write analytics rules.
async fn setup(contributor: bool) -> (RunningSim, xdrsync_sim::azurite::Azurite, HashMap<String, String>) {
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let mut vars = settings(&sim, Some(&az.connection_string()));
    vars.insert("XDRSYNC_ATTACH_ALERTS".into(), "true".into());
    if contributor {
        let g = sim_post(&sim, "/_sim/permissions/grant", json!({"role": "Microsoft Sentinel Contributor"})).await;
        assert!(g.status().is_success());
    }
    (sim, az, vars)
}

fn stored(sim: &RunningSim) -> Option<Resource> {
    sim.sim.rules.lock().unwrap().alert_rules.get(&wanted(TABLE).name).cloned()
}

fn as_rule(r: &Resource) -> AlertRule {
    AlertRule {
        name: wanted(TABLE).name,
        etag: Some(r.etag.clone()),
        kind: r.kind.clone(),
        properties: r.properties.clone(),
    }
}

fn puts(sim: &RunningSim) -> u64 {
    sim.sim.stats.snapshot().get("arm.alert_rules.put").copied().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_creates_the_missing_rule_and_a_rerun_writes_nothing() {
    let (sim, _az, vars) = setup(false).await;
    assert!(stored(&sim).is_none());

    // Without Microsoft Sentinel Contributor: said so, exit 1, nothing written.
    let (code, out, err) = run(&vars, &["connect", "--json"]).await;
    assert_eq!(code, 1, "{out}{err}");
    let r = json_of(&out);
    assert_eq!(r["alertRule"]["action"], "not created", "{r}");
    assert!(r["alertRule"]["detail"].as_str().unwrap().contains("Microsoft Sentinel Contributor"), "{r}");
    assert!(stored(&sim).is_none());

    let g = sim_post(&sim, "/_sim/permissions/grant", json!({"role": "Microsoft Sentinel Contributor"})).await;
    assert!(g.status().is_success());
    let (code, text, err) = run(&vars, &["connect"]).await;
    assert_eq!(code, 0, "{text}{err}");
    let line = text.lines().find(|l| l.contains("analytics rule")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("ok") && line.contains(TABLE) && line.ends_with("created"), "{line}");
    let rule = stored(&sim).expect("created");
    assert_eq!(rule.kind, "NRT");
    assert_eq!(rule.properties["query"], TABLE);
    assert_eq!(drift(&as_rule(&rule), &wanted(TABLE)), Vec::<String>::new(), "exactly infra/alert-rule.json");
    assert_eq!(puts(&sim), 1);

    let (code, out, err) = run(&vars, &["connect", "--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(json_of(&out)["alertRule"]["action"], "present");
    assert_eq!(puts(&sim), 1, "a rerun writes nothing");
    assert_eq!(stored(&sim).unwrap().etag, rule.etag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_reports_a_table_that_does_not_exist_yet_then_creates_the_rule_once_it_does() {
    let (sim, _az, vars) = setup(true).await;
    sim.sim.rules.lock().unwrap().missing_tables.insert(TABLE.into());

    let (code, text, err) = run(&vars, &["connect"]).await;
    assert_eq!(code, 1, "{text}{err}");
    let line = text.lines().find(|l| l.contains("analytics rule")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("FAIL") && line.contains("not created"), "{line}");
    assert!(
        line.contains(&format!("the table {TABLE} does not exist yet")) && line.contains("run connect again"),
        "{line}"
    );
    assert!(text.contains("not connected"), "{text}");
    assert!(stored(&sim).is_none(), "nothing stored");

    // The table appears late: the next connect creates the rule.
    sim.sim.rules.lock().unwrap().missing_tables.clear();
    let (code, out, err) = run(&vars, &["connect", "--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(json_of(&out)["alertRule"]["action"], "created");
    assert!(stored(&sim).is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_repairs_a_drifted_rule_and_keeps_what_others_set() {
    let (sim, _az, vars) = setup(true).await;
    let want = wanted(TABLE);
    let mut properties = want.properties.clone();
    properties.insert("query".into(), json!(format!("{TABLE} | where AlertSeverity == 'High'")));
    properties["entityMappings"].as_array_mut().unwrap().truncate(3);
    properties.insert("enabled".into(), json!(false));
    properties.insert("templateVersion".into(), json!("1.2.3"));
    let before = Resource { kind: "NRT".into(), etag: "\"0000-drifted\"".into(), properties: properties.clone() };
    sim.sim.rules.lock().unwrap().alert_rules.insert(want.name.clone(), before);

    let (code, out, err) = run(&vars, &["connect", "--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let r = json_of(&out);
    assert_eq!(r["alertRule"]["action"], "repaired", "{r}");
    let detail = r["alertRule"]["detail"].as_str().unwrap();
    for field in ["enabled", "entityMappings", "query"] {
        assert!(detail.contains(field), "{detail}");
    }
    let after = stored(&sim).unwrap();
    assert_eq!(drift(&as_rule(&after), &want), Vec::<String>::new());
    assert_eq!(after.properties["templateVersion"], "1.2.3", "what xdrsync does not own stays");
    assert_eq!(puts(&sim), 1);

    let (code, out, _) = run(&vars, &["connect", "--json"]).await;
    assert_eq!(code, 0);
    assert_eq!(json_of(&out)["alertRule"]["action"], "present");
    assert_eq!(puts(&sim), 1, "a rerun writes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_edit_is_a_409_reported_and_not_overwritten() {
    let (sim, _az, vars) = setup(true).await;
    let want = wanted(TABLE);
    let mut properties = want.properties.clone();
    properties.insert("enabled".into(), json!(false));
    sim.sim
        .rules
        .lock()
        .unwrap()
        .alert_rules
        .insert(want.name.clone(), Resource { kind: "NRT".into(), etag: "\"e0\"".into(), properties });
    let s = xdrsync::app::build(config(&vars));
    // xdrsync reads the rule; an analyst saves an edit before xdrsync writes.
    let read = s.sentinel.get_alert_rule(&want.name).await.unwrap();
    assert_eq!(read.as_ref().and_then(|r| r.etag.as_deref()), Some("\"e0\""));
    if let Some(r) = sim.sim.rules.lock().unwrap().alert_rules.get_mut(&want.name) {
        r.properties.insert("description".into(), json!("edited by an analyst"));
        r.etag = "\"e-analyst\"".into();
    }

    let line = xdrsync::ops::connect_rule::apply(&s, TABLE, read).await;
    assert!(!line.ok, "{line:?}");
    assert_eq!(line.action, "not repaired");
    assert!(line.detail.contains("409") && line.detail.contains("nothing overwritten"), "{line:?}");
    let now = stored(&sim).unwrap();
    assert_eq!(now.properties["description"], "edited by an analyst", "the analyst's edit stays");
    assert_eq!(now.properties["enabled"], false);
}
