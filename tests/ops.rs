//! The operator commands, run as an operator runs them (the `xdrsync` binary against the
//! simulator and Azurite): settings files, `status`, `reconcile`, `backfill`, `connect`, and the
//! simulator printing enough settings for `check`.

mod support;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use support::*;
use xdrsync::domain::names::sentinel_incident_name;
use xdrsync::usecase::jobs::sync_message;
use xdrsync::usecase::Ports;
use xdrsync_sim::sim::seed::SeedSpec;
use xdrsync_sim::sim::SimConfig;

/// Runs the binary with exactly `vars` as its environment, in `dir` (no stray local.settings.json).
fn xdrsync_in(dir: &std::path::Path, vars: &HashMap<String, String>, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xdrsync"))
        .env_clear()
        .envs(vars.iter())
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn run(vars: &HashMap<String, String>, args: &[&str]) -> (i32, String, String) {
    let vars = vars.clone();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        xdrsync_in(dir.path(), &vars, &args)
    })
    .await
    .unwrap()
}

fn json_of(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// What the queue workers do, inline: every message through the workers' job until the queue is empty.
async fn drain(s: &Ports) -> usize {
    let q = &s.config.queue_name;
    let mut n = 0;
    loop {
        let msgs = s.queue.receive(q, 32, Duration::from_secs(60)).await.unwrap();
        if msgs.is_empty() {
            return n;
        }
        for m in msgs {
            sync_message(s, &m.text, u64::from(m.dequeue_count), &m.id).await;
            s.queue.delete(q, &m).await.unwrap();
            n += 1;
        }
    }
}

async fn ready(vars: &HashMap<String, String>) -> Ports {
    let s = xdrsync::app::build(config(vars));
    s.store.ensure_tables().await.unwrap();
    s.queue.ensure_queue(&s.config.queue_name).await.unwrap();
    s.queue.ensure_queue(&format!("{}-poison", s.config.queue_name)).await.unwrap();
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_with_exactly_the_settings_the_simulator_prints_in_either_file() {
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let printed = xdrsync_sim::sim::serve_settings(&sim.sim.config, sim.addr, &az.connection_string());
    let names: Vec<&str> = printed.iter().map(|(k, _)| k.as_str()).collect();
    assert!(names.contains(&"AzureWebJobsStorage") && names.contains(&"XDRSYNC_WEBHOOK_KEY"), "{names:?}");
    let dir = tempfile::tempdir().unwrap();
    let env_file = dir.path().join("sim.env");
    std::fs::write(&env_file, xdrsync_sim::sim::env_file_text(&printed)).unwrap();
    let none = HashMap::new();
    let path = env_file.to_str().unwrap().to_string();

    let (code, out, err) = run(&none, &["check", "--env-file", &path]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.lines().any(|l| l.starts_with("ok") && l.contains("Sentinel incidents")), "{out}");

    // The same values as a Functions local.settings.json in the current directory.
    let values: serde_json::Map<String, Value> = printed.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
    let local = dir.path().join("local.settings.json");
    std::fs::write(&local, json!({"IsEncrypted": false, "Values": values}).to_string()).unwrap();
    let (code, out, err) = tokio::task::spawn_blocking({
        let dir = dir.path().to_path_buf();
        move || xdrsync_in(&dir, &HashMap::new(), &["check"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{out}{err}");

    // The environment wins over the file.
    let over = HashMap::from([("XDRSYNC_GRAPH_ENDPOINT".to_string(), "http://graph.example.com".to_string())]);
    let (code, out, err) = run(&over, &["check", "--env-file", &path]).await;
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.contains("XDRSYNC_GRAPH_ENDPOINT") && out.contains("https"), "{out}");

    // A malformed file is a clear error naming the file and line; nothing runs.
    let bad = dir.path().join("bad.env");
    std::fs::write(&bad, "XDRSYNC_TENANT_ID=x\nthis is not a setting\n").unwrap();
    let (code, _, err) = run(&none, &["status", "--env-file", bad.to_str().unwrap()]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.env") && err.contains("line 2: expected KEY=VALUE"), "{err}");
    let (code, _, err) = run(&none, &["status", "--settings", dir.path().join("missing.json").to_str().unwrap()]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("missing.json") && err.contains("cannot read"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_shows_feeds_backlog_failures_and_the_last_24_hours() {
    use xdrsync::usecase::failures::{self, FailureClass};
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let vars = settings(&sim, Some(&az.connection_string()));
    let s = ready(&vars).await;
    let ids = seed(&sim, SeedSpec { count: 3, ..Default::default() });
    xdrsync::usecase::jobs::poll(&s).await.unwrap();
    assert_eq!(drain(&s).await, 3);
    // A conflict: both portals change the severity of one incident before the next sync.
    let name = sentinel_incident_name(&s.config.tenant_id, &ids[0]);
    let current = s.sentinel.get_incident(&name).await.unwrap().unwrap().properties.writable.severity;
    let (in_sentinel, in_defender) = match current {
        xdrsync::domain::sentinel::SentinelSeverity::High => ("Low", "medium"),
        _ => ("Informational", "high"),
    };
    sim_post(&sim, &format!("/_sim/sentinel/incidents/{name}/edit"), json!({"severity": in_sentinel})).await;
    // The Defender edit must be the later one: wait until the clock has passed the Sentinel edit.
    let edited =
        s.sentinel.get_incident(&name).await.unwrap().unwrap().properties.read_only.last_modified_time_utc.unwrap();
    eventually(5, "the clock to pass the Sentinel edit", || time::OffsetDateTime::now_utc() > edited).await;
    sim_post(&sim, &format!("/_sim/defender/incidents/{}/edit", ids[0]), json!({"severity": in_defender})).await;
    let item = xdrsync::domain::work::WorkItem::reconcile(
        &s.config.tenant_id,
        &ids[0],
        xdrsync::domain::work::ChangeHint::Reconcile,
    );
    sync_message(&s, &item.to_json(), 1, "m").await;
    // A Defender merge: the merged-away incident's mirror is closed as Redirected.
    sim_post(&sim, "/_sim/defender/merge", json!({"source": ids[1], "target": ids[2]})).await;
    let merged = xdrsync::domain::work::WorkItem::reconcile(
        &s.config.tenant_id,
        &ids[1],
        xdrsync::domain::work::ChangeHint::Reconcile,
    );
    sync_message(&s, &merged.to_json(), 1, "m").await;
    drain(&s).await; // the survivor's reconcile
                     // One message waiting, one incident failing for now.
    s.queue.send(&s.config.queue_name, &item.to_json()).await.unwrap();
    failures::note(&s, "4242", FailureClass::Unavailable, Some("sentinel"), "sentinel is unavailable: 503").await;

    let (code, out, err) = run(&vars, &["status", "--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let st = json_of(&out);
    assert_eq!(st["status"], "healthy", "{st}");
    assert_eq!(st["queueBacklog"], 1, "{st}");
    assert_eq!(st["poison"], 0);
    assert_eq!(st["failures"], 1);
    assert_eq!(st["last24h"]["mirrored"], 3, "{st}");
    assert_eq!(st["last24h"]["conflicted"], 1, "{st}");
    assert_eq!(st["last24h"]["redirected"], 1, "{st}");
    let feeds = st["feeds"].as_array().unwrap();
    assert_eq!(feeds.len(), 2);
    assert!(feeds.iter().all(|f| f["lastSuccess"].is_string() && f["lagSeconds"].is_number()), "{st}");
    assert_eq!(st["lastErrors"][0]["source"], "incident 4242");

    let (code, text, _) = run(&vars, &["status"]).await;
    assert_eq!(code, 0);
    for want in [
        "HEALTHY",
        "Defender poll",
        "Sentinel sweep",
        "backlog 1",
        "failures 1",
        "mirrored 3",
        "conflicted 1",
        "incident 4242",
    ] {
        assert!(text.contains(want), "{want}: {text}");
    }
    assert!(text.lines().count() <= 12, "one screen: {text}");

    // A missing permission makes it unhealthy, with a non-zero exit code.
    failures::note(&s, "4243", FailureClass::Forbidden, Some("sentinel"), "sentinel denied the call").await;
    let (code, text, _) = run(&vars, &["status"]).await;
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("UNHEALTHY") && text.contains("Microsoft Sentinel Responder"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_reports_drift_missing_and_deleted_mirrors_and_enqueues_the_fixes() {
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let vars = settings(&sim, Some(&az.connection_string()));
    let s = ready(&vars).await;
    let ids = seed(&sim, SeedSpec { count: 3, ..Default::default() });
    xdrsync::usecase::jobs::poll(&s).await.unwrap();
    assert_eq!(drain(&s).await, 3);
    let tenant = s.config.tenant_id.clone();
    let (edited, deleted, untouched) = (&ids[0], &ids[1], &ids[2]);

    let (code, out, err) = run(&vars, &["reconcile", "--dry-run", "--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let r = json_of(&out);
    assert_eq!(r["compared"], 3, "{r}");
    assert_eq!(r["inSync"], 3, "{r}");

    // An analyst edit in Sentinel the sync has not seen, a mirror deleted by a person, and a
    // Defender incident nobody mirrored yet.
    let name = sentinel_incident_name(&tenant, edited);
    let severity = s.sentinel.get_incident(&name).await.unwrap().unwrap().properties.writable.severity;
    let new_severity = if format!("{severity:?}") == "Low" { "High" } else { "Low" };
    sim_post(&sim, &format!("/_sim/sentinel/incidents/{name}/edit"), json!({"severity": new_severity})).await;
    sim.sim.world().sentinel.remove(&sentinel_incident_name(&tenant, deleted));
    let fresh = seed(&sim, SeedSpec { count: 1, seed: 99, ..Default::default() }).remove(0);

    let (code, out, err) = run(&vars, &["reconcile", "--dry-run", "--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let r = json_of(&out);
    let rows = r["drift"].as_array().unwrap();
    let row = |id: &str, field: &str| rows.iter().find(|d| d["incidentId"] == id && d["field"] == field).cloned();
    let sev = row(edited, "severity").unwrap_or_else(|| panic!("severity drift of {edited}: {r}"));
    assert_eq!(sev["sentinel"], new_severity, "{sev}");
    assert_eq!(sev["action"], "write Defender", "{sev}");
    assert_ne!(sev["defender"], sev["sentinel"]);
    assert!(row(deleted, "mirror").is_some_and(|d| d["action"].as_str().unwrap().starts_with("recreate")), "{r}");
    assert!(row(&fresh, "mirror").is_some_and(|d| d["action"] == "create mirror"), "{r}");
    assert!(!rows.iter().any(|d| d["incidentId"] == untouched.as_str()), "{r}");
    assert_eq!(r["deletedMirrors"], json!([deleted]));
    assert_eq!(r["missingMirrors"], json!([fresh]));
    assert_eq!(r["enqueued"], json!([]));
    assert_eq!(s.queue.approximate_len(&s.config.queue_name).await.unwrap(), 0, "a dry run enqueues nothing");

    // The text table has the columns an operator reads.
    let (_, text, _) = run(&vars, &["reconcile", "--dry-run"]).await;
    let header = text.lines().find(|l| l.starts_with("incident")).unwrap_or_else(|| panic!("{text}"));
    for col in ["field", "Defender", "Sentinel", "base", "action"] {
        assert!(header.contains(col), "{header}");
    }
    assert!(text.contains("dry run: nothing enqueued"), "{text}");

    // --incident narrows the comparison to the ids named.
    let (_, out, _) = run(&vars, &["reconcile", "--dry-run", "--json", "--incident", edited]).await;
    assert_eq!(json_of(&out)["compared"], 1);

    // Bad input: a clear error, exit 2, nothing enqueued.
    let (code, _, err) = run(&vars, &["reconcile", "--since", "7 days"]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("ISO-8601") && err.contains("P7D"), "{err}");
    assert_eq!(s.queue.approximate_len(&s.config.queue_name).await.unwrap(), 0);

    // The fix: enqueue, let the workers run, and nothing drifts any more.
    let (code, out, err) = run(&vars, &["reconcile", "--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let mut enqueued: Vec<String> =
        json_of(&out)["enqueued"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    enqueued.sort();
    let mut want = vec![edited.clone(), deleted.clone(), fresh.clone()];
    want.sort();
    assert_eq!(enqueued, want);
    assert_eq!(drain(&s).await, 3);
    assert!(s.sentinel.get_incident(&sentinel_incident_name(&tenant, deleted)).await.unwrap().is_some(), "recreated");
    assert!(s.sentinel.get_incident(&sentinel_incident_name(&tenant, &fresh)).await.unwrap().is_some(), "mirrored");
    let d = s.defender.get_incident(edited).await.unwrap().unwrap();
    assert_eq!(format!("{:?}", d.severity).to_ascii_lowercase(), new_severity.to_ascii_lowercase());
    let (_, out, _) = run(&vars, &["reconcile", "--dry-run", "--json"]).await;
    let r = json_of(&out);
    assert_eq!(r["drift"], json!([]), "{r}");
    assert_eq!(r["inSync"], 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_mirrors_the_history_itself_and_resumes_where_it_stopped() {
    use xdrsync::ops::backfill::{self, BackfillRecord, LogLines, Options};
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let vars = settings(&sim, Some(&az.connection_string()));
    let ids = seed(&sim, SeedSpec { count: 12, history_days: 9, ..Default::default() });

    // Interrupted before the first window finished: nothing recorded as done.
    let s = ready(&vars).await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let opts = Options { since: time::Duration::days(10), restart: false };
    let r = backfill::run(&s, &opts, &LogLines::new(), stop).await.unwrap();
    assert!(r.interrupted && r.total == 12 && r.synced == 0, "{r:?}");
    let key = xdrsync::state::RowKey::new(&s.config.tenant_id, backfill::BACKFILL_ROW).unwrap();
    let rec: BackfillRecord =
        xdrsync::state::load(s.store.as_ref(), xdrsync::ports::Table::Cursors, &key).await.unwrap().unwrap().value;
    assert_eq!(rec.next_from, Some(rec.from), "the cursor stays at the start: {rec:?}");

    // A crash after some windows: the record says where to resume.
    let older: Vec<String> = {
        let w = sim.sim.world();
        let cut = rec.from + time::Duration::days(5);
        w.incidents.values().filter(|i| i.last_update_date_time < cut).map(|i| i.id.clone()).collect()
    };
    assert!(!older.is_empty() && older.len() < 12, "{older:?}");
    let resumed = BackfillRecord { next_from: Some(rec.from + time::Duration::days(5)), ..rec.clone() };
    xdrsync::state::put(s.store.as_ref(), xdrsync::ports::Table::Cursors, &key, &resumed, &[]).await.unwrap();

    let (code, out, err) = run(&vars, &["backfill", "--since", "P10D", "--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let r = json_of(&out);
    assert!(r["resumedAt"].is_string(), "{r}");
    assert_eq!(r["total"], 12 - older.len() as u64, "{r}");
    assert_eq!(r["synced"], r["total"]);
    assert_eq!(r["finished"], true);
    assert!(err.contains("backfill progress"), "log lines when stdout is not a terminal: {err}");
    let mirrored = |id: &str| {
        let name = sentinel_incident_name(&s.config.tenant_id, id);
        sim.sim.world().sentinel.contains_key(&name)
    };
    assert!(ids.iter().filter(|id| !older.contains(id)).all(|id| mirrored(id)));
    assert!(older.iter().all(|id| !mirrored(id)), "resumed after the recorded windows");

    // Finished: the next run starts over and mirrors everything (the rest already in sync).
    let (code, out, err) = run(&vars, &["backfill", "--since", "P10D"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("12 of 12 incident(s)") && out.contains("finished"), "{out}");
    assert!(ids.iter().all(|id| mirrored(id)));

    let (code, _, err) = run(&vars, &["backfill", "--since", "P3M"]).await;
    assert_eq!(code, 2);
    assert!(err.contains("years and months"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_checks_lists_and_disables_duplicating_rules_warns_and_polls() {
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let vars = settings(&sim, Some(&az.connection_string()));
    seed(&sim, SeedSpec { count: 2, ..Default::default() });
    let enabled = |product: &str| {
        let rules = sim.sim.rules.lock().unwrap();
        rules.alert_rules.values().find(|r| r.properties["productFilter"] == product).unwrap().properties["enabled"]
            == json!(true)
    };
    const MDE: &str = "Microsoft Defender Advanced Threat Protection";
    const MDO: &str = "Office 365 Advanced Threat Protection";
    const MDC: &str = "Azure Security Center";

    let (code, out, err) = run(&vars, &["connect", "--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let r = json_of(&out);
    assert!(r["checks"].as_array().unwrap().iter().all(|c| c["ok"] == true), "{r}");
    assert_eq!(r["storageError"], Value::Null);
    assert_eq!(r["xdrConnectorCreatesIncidents"], true);
    let warnings = r["warnings"].to_string();
    assert!(warnings.contains("Defender XDR data connector") && warnings.contains("--disable-duplicate-rules"), "{r}");
    let rules = r["incidentCreationRules"].as_array().unwrap();
    let action = |p: &str| rules.iter().find(|x| x["product"] == p).map(|x| x["action"].as_str().unwrap().to_string());
    assert!(action(MDE).unwrap().starts_with("left enabled"), "{r}");
    assert_eq!(action(MDC).unwrap(), "not a Defender XDR product");
    assert_eq!(action("Azure Advanced Threat Protection").unwrap(), "already disabled");
    assert!(!rules.iter().any(|x| x["product"].is_null() || x["product"] == ""), "scheduled rules are not listed: {r}");
    assert!(r["poll"].as_str().unwrap().contains("Defender 2 listed"), "{r}");
    assert!(enabled(MDE) && enabled(MDO), "nothing changed without the flag");

    // Disabling needs Microsoft Sentinel Contributor: without it, said so, the duplicates
    // warning kept, nothing changed, and the command fails (exit 1, not "connected").
    let (code, out, err) = run(&vars, &["connect", "--disable-duplicate-rules", "--json"]).await;
    assert_eq!(code, 1, "{out}{err}");
    let r = json_of(&out);
    assert_eq!(r["ok"], false, "{r}");
    let rules = r["incidentCreationRules"].as_array().unwrap();
    let mde = rules.iter().find(|x| x["product"] == MDE).unwrap();
    assert!(mde["action"].as_str().unwrap().contains("Microsoft Sentinel Contributor"), "{r}");
    assert!(r["workspaces"][0]["notDisabled"].to_string().contains("Microsoft Sentinel Contributor"), "{r}");
    assert!(r["warnings"].to_string().contains("each incident would appear twice"), "{r}");
    assert!(enabled(MDE));
    let (code, text, err) = run(&vars, &["connect", "--disable-duplicate-rules"]).await;
    assert_eq!(code, 1, "{text}{err}");
    assert!(text.contains("not disabled: ") && text.contains("Microsoft Sentinel Contributor"), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("warning:") && l.contains("appear twice") && l.contains("refused")),
        "{text}"
    );
    assert!(text.contains("not connected") && !text.lines().any(|l| l == "connected"), "{text}");

    let g = sim_post(&sim, "/_sim/permissions/grant", json!({"role": "Microsoft Sentinel Contributor"})).await;
    assert!(g.status().is_success());
    let (code, text, err) = run(&vars, &["connect", "--disable-duplicate-rules"]).await;
    assert_eq!(code, 0, "{text}{err}");
    assert!(text.lines().filter(|l| l.contains("disabled") && !l.contains("already")).count() >= 2, "{text}");
    assert!(!enabled(MDE) && !enabled(MDO), "{text}");
    assert!(enabled(MDC), "Defender for Cloud's rule is left alone");
    assert!(text.contains("warning: the Microsoft Defender XDR data connector"), "{text}");
    assert!(text.lines().any(|l| l == "connected"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_covers_every_workspace_xdrsync_writes_to_and_says_which_each_finding_is_in() {
    let (sims, ids) = start_two_workspaces(2).await;
    let az = Azurite::start();
    let vars = two_workspace_settings(&sims, Some(&az.connection_string()), &ids, &["Contoso", "Fabrikam"], 1);
    let second = sims.sims.workspaces[0].clone();
    const MDE: &str = "Microsoft Defender Advanced Threat Protection";
    let enabled = |sim: &xdrsync_sim::sim::Sim| {
        let rules = sim.rules.lock().unwrap();
        rules.alert_rules.values().find(|r| r.properties["productFilter"] == MDE).unwrap().properties["enabled"]
            == json!(true)
    };

    let (_, out, err) = run(&vars, &["connect", "--json"]).await;
    let r = json_of(&out);
    let workspaces = r["workspaces"].as_array().unwrap_or_else(|| panic!("{out}{err}"));
    let names: Vec<&str> = workspaces.iter().map(|w| w["workspace"].as_str().unwrap()).collect();
    assert_eq!(names, ["soc-workspace", "soc-emea"], "one entry per workspace, the default first");
    for w in workspaces {
        assert_eq!(w["xdrConnectorCreatesIncidents"], true, "{w}");
        let rules = w["incidentCreationRules"].as_array().unwrap();
        assert!(rules.iter().any(|x| x["product"] == MDE && x["action"].as_str().unwrap().starts_with("left enabled")));
        let name = w["workspace"].as_str().unwrap();
        assert!(w["warnings"].as_array().unwrap().iter().all(|x| x.as_str().unwrap().contains(name)), "{w}");
    }
    assert_eq!(r["warnings"].as_array().unwrap().len(), 4, "two per workspace: {r}");
    let probes: Vec<&Value> = r["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["what"].as_str().unwrap().starts_with("Log Analytics query"))
        .collect();
    assert_eq!(probes.len(), 2, "check probes the query API of each workspace: {r}");
    assert!(probes.iter().all(|c| c["ok"] == true), "{probes:?}");

    // Only the second workspace lets xdrsync edit analytics rules.
    second.permissions.lock().unwrap().workspace_roles.insert("Microsoft Sentinel Contributor".into());
    let (_, text, err) = run(&vars, &["connect", "--disable-duplicate-rules"]).await;
    assert!(!enabled(&second), "disabled in soc-emea: {text}{err}");
    assert!(enabled(&sims.sims.primary), "the default workspace refused: {text}");
    let emea_block = text.split("Microsoft incident-creation rules in workspace soc-emea").nth(1).expect(&text);
    let default_block = text
        .split("Microsoft incident-creation rules in workspace soc-workspace")
        .nth(1)
        .and_then(|b| b.split("Microsoft incident-creation rules in workspace").next())
        .expect(&text);
    assert!(emea_block.lines().any(|l| l.contains(MDE) && l.trim_end().ends_with("disabled")), "{text}");
    assert!(default_block.lines().any(|l| l.contains(MDE) && l.contains("Microsoft Sentinel Contributor")), "{text}");
    assert!(text.contains("Defender XDR connector in workspace soc-emea: creates incidents"), "{text}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A child `xdrsync run` whose standard error is collected (killed on drop).
struct Running {
    child: std::process::Child,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Running {
    fn start(vars: &HashMap<String, String>, dir: &std::path::Path) -> Self {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_xdrsync"))
            .env_clear()
            .envs(vars.iter())
            .current_dir(dir)
            .arg("run")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        Self { child, log }
    }

    fn text(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_logs_its_schedule_a_standby_instance_and_an_idle_poller_without_colours() {
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let mut vars = settings(&sim, Some(&az.connection_string()));
    vars.insert("XDRSYNC_POLL_SCHEDULE".into(), "*/1 * * * * *".into());
    vars.insert("XDRSYNC_HTTP_PORT".into(), free_port().to_string());
    vars.insert("RUST_LOG".into(), "info,xdrsync::usecase::poll=debug".into());
    let dir = tempfile::tempdir().unwrap();
    let first = Running::start(&vars, dir.path());
    eventually(30, "the first instance to poll", || first.text().contains("polled Defender: nothing new")).await;
    vars.insert("XDRSYNC_HTTP_PORT".into(), free_port().to_string());
    let second = Running::start(&vars, dir.path());
    eventually(30, "the second instance to go on standby", || second.text().contains("on standby")).await;
    // Several ticks after the standby: the first instance polls three more times.
    let polls = |log: &str| log.matches("polled Defender: nothing new").count();
    let before = polls(&first.text());
    eventually(30, "three more polls by the first instance", || polls(&first.text()) >= before + 3).await;
    let (a, b) = (first.text(), second.text());
    for log in [&a, &b] {
        let start = log.lines().find(|l| l.contains("standalone xdrsync started")).unwrap_or_else(|| panic!("{log}"));
        assert!(start.contains("poll.schedule=*/1 * * * * *"), "{start}");
        assert!(!log.contains('\u{1b}'), "no ANSI colours off a terminal: {log}");
    }
    assert_eq!(b.matches("on standby").count(), 1, "said once, not every tick: {b}");
    assert!(!a.contains("on standby"), "{a}");
    assert!(!b.contains("polled Defender"), "the standby instance does not poll: {b}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_stopped_by_ctrl_c_resumes_with_the_same_command() {
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let mut vars = settings(&sim, Some(&az.connection_string()));
    vars.insert("XDRSYNC_WORKERS".into(), "1".into());
    let ids = seed(&sim, SeedSpec { count: 16, history_days: 6, ..Default::default() });
    // Every Sentinel call answers late, so the backfill is still running when Ctrl-C comes.
    let slow = json!([{"api": "arm", "rate": 1.0, "kind": {"type": "slow", "millis": 150}}]);
    let r = reqwest::Client::new().put(format!("{}/_sim/faults", sim.base_url())).json(&slow).send().await.unwrap();
    assert!(r.status().is_success());
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_xdrsync"))
        .env_clear()
        .envs(vars.iter())
        .current_dir(dir.path())
        .args(["backfill", "--since", "P7D", "--json"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let name_of = |id: &String| sentinel_incident_name(&vars["XDRSYNC_TENANT_ID"], id);
    eventually(60, "the first mirrors", || {
        let w = sim.sim.world();
        ids.iter().filter(|id| w.sentinel.contains_key(&name_of(id))).count() >= 2
    })
    .await;
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let out = tokio::task::spawn_blocking(move || {
        let mut text = String::new();
        std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut text).unwrap();
        (child.wait().unwrap().code(), text)
    })
    .await
    .unwrap();
    assert_eq!(out.0, Some(130), "{}", out.1);
    let first = json_of(&out.1);
    assert_eq!(first["interrupted"], true, "{first}");
    let done_first = first["synced"].as_u64().unwrap();
    assert!(done_first < 16, "{first}");

    reqwest::Client::new().delete(format!("{}/_sim/faults", sim.base_url())).send().await.unwrap();
    let (code, out, err) = run(&vars, &["backfill", "--since", "P7D", "--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let second = json_of(&out);
    assert!(second["resumedAt"].is_string(), "{second}");
    assert_eq!(second["finished"], true);
    let w = sim.sim.world();
    assert!(ids.iter().all(|id| w.sentinel.contains_key(&name_of(id))), "every incident mirrored after the resume");
}
