//! `xdrsync connect` and the analytics rules over `XdrsyncAlertTriggers_CL`
//! (src/ops/connect_rule.rs), run as an operator runs it (the binary against the simulator and
//! Azurite): the `XDRSYNC_ALERT_RULES` missing rules are created, a table that does not exist yet
//! is reported (exit 1, nothing written), a drifted rule is repaired, a rerun writes nothing; a
//! concurrent edit between read and write is a 409 that is reported, not overwritten.

mod support;

use std::collections::HashMap;
use std::process::Command;

use serde_json::{json, Value};
use support::*;
use xdrsync::domain::workspace_rules::AlertRule;
use xdrsync::ops::connect_rule::{drift, wanted};
use xdrsync_sim::sim::arm_rules::Resource;
use xdrsync_sim::sim::{RunningSim, SimConfig};

const TABLE: &str = "XdrsyncAlertTriggers_CL";
/// Rules (shards) these tests deploy.
const RULES: u16 = 3;

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
    vars.insert("XDRSYNC_ALERT_RULES".into(), RULES.to_string());
    if contributor {
        let g = sim_post(&sim, "/_sim/permissions/grant", json!({"role": "Microsoft Sentinel Contributor"})).await;
        assert!(g.status().is_success());
    }
    (sim, az, vars)
}

fn stored(sim: &RunningSim, shard: u16) -> Option<Resource> {
    sim.sim.rules.lock().unwrap().alert_rules.get(&wanted(TABLE, shard).name).cloned()
}

fn as_rule(r: &Resource) -> AlertRule {
    AlertRule {
        name: String::new(),
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
    assert!(stored(&sim, 0).is_none());

    // Without Microsoft Sentinel Contributor: said so, exit 1, nothing written.
    let (code, out, err) = run(&vars, &["connect", "--json"]).await;
    assert_eq!(code, 1, "{out}{err}");
    let r = json_of(&out);
    assert_eq!(r["alertRule"]["action"], "3 not created", "{r}");
    assert!(r["alertRule"]["detail"].as_str().unwrap().contains("Microsoft Sentinel Contributor"), "{r}");
    assert!(stored(&sim, 0).is_none());

    let g = sim_post(&sim, "/_sim/permissions/grant", json!({"role": "Microsoft Sentinel Contributor"})).await;
    assert!(g.status().is_success());
    let (code, text, err) = run(&vars, &["connect"]).await;
    assert_eq!(code, 0, "{text}{err}");
    let line = text.lines().find(|l| l.contains("analytics rule")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("ok") && line.contains(TABLE) && line.ends_with("3 created"), "{line}");
    for shard in 0..RULES {
        let rule = stored(&sim, shard).expect("created");
        assert_eq!(rule.kind, "NRT");
        let q = rule.properties["query"].as_str().unwrap();
        assert!(q.starts_with(&format!("{TABLE} | where RuleShard == {shard} | project ")), "{q}");
        assert_eq!(
            drift(&as_rule(&rule), &wanted(TABLE, shard)),
            Vec::<String>::new(),
            "exactly infra/alert-rule.json"
        );
    }
    assert!(stored(&sim, RULES).is_none(), "no more rules than XDRSYNC_ALERT_RULES");
    assert_eq!(puts(&sim), u64::from(RULES));
    let etag = stored(&sim, 0).unwrap().etag;

    let (code, out, err) = run(&vars, &["connect", "--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(json_of(&out)["alertRule"]["action"], "3 present");
    assert_eq!(puts(&sim), u64::from(RULES), "a rerun writes nothing");
    assert_eq!(stored(&sim, 0).unwrap().etag, etag);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_reports_a_table_that_does_not_exist_yet_then_creates_the_rule_once_it_does() {
    let (sim, _az, vars) = setup(true).await;
    sim.sim.rules.lock().unwrap().missing_tables.insert(TABLE.into());

    let (code, text, err) = run(&vars, &["connect"]).await;
    assert_eq!(code, 1, "{text}{err}");
    let line = text.lines().find(|l| l.contains("analytics rule")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("FAIL") && line.contains("3 not created"), "{line}");
    assert!(
        line.contains(&format!("the table {TABLE} does not exist yet")) && line.contains("run connect again"),
        "{line}"
    );
    assert!(text.contains("not connected"), "{text}");
    assert!(stored(&sim, 0).is_none(), "nothing stored");

    // The table appears late: the next connect creates the rule.
    sim.sim.rules.lock().unwrap().missing_tables.clear();
    let (code, out, err) = run(&vars, &["connect", "--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(json_of(&out)["alertRule"]["action"], "3 created");
    assert!((0..RULES).all(|shard| stored(&sim, shard).is_some()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_repairs_a_drifted_rule_and_keeps_what_others_set() {
    let (sim, _az, vars) = setup(true).await;
    let want = wanted(TABLE, 1);
    let mut properties = want.properties.clone();
    properties.insert("query".into(), json!(format!("{TABLE} | where AlertSeverity == 'High'")));
    properties["entityMappings"].as_array_mut().unwrap().truncate(3);
    properties.insert("enabled".into(), json!(false));
    properties.insert("templateVersion".into(), json!("1.2.3"));
    let before = Resource { kind: "NRT".into(), etag: "\"0000-drifted\"".into(), properties: properties.clone() };
    sim.sim.rules.lock().unwrap().alert_rules.insert(want.name.clone(), before);
    for shard in [0, 2] {
        let w = wanted(TABLE, shard);
        let r = Resource { kind: "NRT".into(), etag: "\"e\"".into(), properties: w.properties.clone() };
        sim.sim.rules.lock().unwrap().alert_rules.insert(w.name.clone(), r);
    }

    let (code, out, err) = run(&vars, &["connect", "--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let r = json_of(&out);
    assert_eq!(r["alertRule"]["action"], "2 present, 1 repaired", "{r}");
    let detail = r["alertRule"]["detail"].as_str().unwrap();
    for field in ["enabled", "entityMappings", "query"] {
        assert!(detail.contains(field), "{detail}");
    }
    let after = stored(&sim, 1).unwrap();
    assert_eq!(drift(&as_rule(&after), &want), Vec::<String>::new());
    assert_eq!(after.properties["templateVersion"], "1.2.3", "what xdrsync does not own stays");
    assert_eq!(puts(&sim), 1);

    let (code, out, _) = run(&vars, &["connect", "--json"]).await;
    assert_eq!(code, 0);
    assert_eq!(json_of(&out)["alertRule"]["action"], "3 present");
    assert_eq!(puts(&sim), 1, "a rerun writes nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_edit_is_a_409_reported_and_not_overwritten() {
    let (sim, _az, vars) = setup(true).await;
    let want = wanted(TABLE, 0);
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

    let line = xdrsync::ops::connect_rule::apply(&s, TABLE, 0, read).await;
    assert!(!line.ok, "{line:?}");
    assert_eq!(line.action, "not repaired");
    assert!(line.detail.contains("409") && line.detail.contains("nothing overwritten"), "{line:?}");
    let now = stored(&sim, 0).unwrap();
    assert_eq!(now.properties["description"], "edited by an analyst", "the analyst's edit stays");
    assert_eq!(now.properties["enabled"], false);
}
