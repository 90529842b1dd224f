//! The command line, run as a user runs it: `check` reports each problem in plain words (naming
//! the setting, never printing a secret), `package` lays out a Functions app, every command has
//! a useful `--help`.

mod support;

use std::collections::HashMap;
use std::process::Command;

use support::*;
use xdrsync_sim::sim::SimConfig;

fn xdrsync(vars: &HashMap<String, String>, args: &[&str]) -> (i32, String) {
    // Outside the repository: its local.settings.json would add settings (commands read it).
    let out = Command::new(env!("CARGO_BIN_EXE_xdrsync"))
        .env_clear()
        .envs(vars.iter())
        .current_dir(std::env::temp_dir())
        .args(args)
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_passes_against_the_simulator_and_azurite_and_explains_failures() {
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let vars = settings(&sim, Some(&az.connection_string()));
    let (code, text) = tokio::task::spawn_blocking({
        let vars = vars.clone();
        move || xdrsync(&vars, &["check"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{text}");
    for what in [
        "token for Graph",
        "token for ARM (Sentinel)",
        "token for Monitor (Logs Ingestion)",
        "table storage",
        "queue storage",
        "Defender incidents",
        "directory users",
        "Sentinel incidents",
        "workspace role assignments",
        "Logs Ingestion",
    ] {
        assert!(text.lines().any(|l| l.starts_with("ok") && l.contains(what)), "{what}: {text}");
    }

    let mut wrong = vars.clone();
    wrong.insert("XDRSYNC_CLIENT_SECRET".into(), "this-is-the-wrong-secret".into());
    let (code, text) = tokio::task::spawn_blocking(move || xdrsync(&wrong, &["check"])).await.unwrap();
    assert_eq!(code, 1, "{text}");
    assert!(
        text.contains("FAIL") && text.contains("AADSTS7000215") && text.contains("XDRSYNC_CLIENT_SECRET"),
        "{text}"
    );
    assert!(!text.contains("this-is-the-wrong-secret"), "the secret leaked: {text}");

    let mut broken = vars.clone();
    broken.insert("XDRSYNC_GRAPH_ENDPOINT".into(), "http://graph.example.com".into());
    let (code, text) = tokio::task::spawn_blocking(move || xdrsync(&broken, &["check"])).await.unwrap();
    assert_eq!(code, 2);
    assert!(text.contains("XDRSYNC_GRAPH_ENDPOINT") && text.contains("https"), "{text}");
}

#[test]
fn package_lays_out_a_functions_app() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app");
    // This build's own binary may need a newer glibc than the hosts have (a test build is no
    // release built by scripts/package.sh): shipped anyway with the flag.
    let (code, text) = xdrsync(&HashMap::new(), &["package", "--allow-newer-glibc", "--out", out.to_str().unwrap()]);
    assert_eq!(code, 0, "{text}");
    for f in [
        "host.json",
        "IncidentPoller/function.json",
        "IncidentSync/function.json",
        "Health/function.json",
        "SentinelWebhook/function.json",
        "xdrsync",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let repo_host =
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("host.json")).unwrap();
    assert_eq!(std::fs::read_to_string(out.join("host.json")).unwrap(), repo_host, "ships the tested host.json");
}

#[test]
fn every_command_has_help_and_no_command_outside_a_host_shows_usage() {
    for cmd in ["check", "serve", "run", "package", "failures", "retry", "status", "reconcile", "backfill", "connect"] {
        let (code, text) = xdrsync(&HashMap::new(), &[cmd, "--help"]);
        assert_eq!(code, 0, "{cmd}");
        assert!(text.len() > 200 && text.contains("Usage"), "{cmd}: {text}");
    }
    let (code, text) = xdrsync(&HashMap::new(), &[]);
    assert_eq!(code, 2);
    assert!(text.contains("FUNCTIONS_CUSTOMHANDLER_PORT"), "{text}");
}

#[test]
fn the_production_binary_carries_no_development_command() {
    let (code, help) = xdrsync(&HashMap::new(), &["--help"]);
    assert_eq!(code, 0, "{help}");
    let commands: Vec<&str> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(commands.contains(&"run") && commands.contains(&"serve"), "{help}");
    for dev in ["sim", "demo", "bench", "serve-sim", "azurite"] {
        assert!(!commands.contains(&dev), "production --help lists {dev}: {help}");
        let (code, _) = xdrsync(&HashMap::new(), &[dev, "--help"]);
        assert_ne!(code, 0, "`xdrsync {dev}` exists in the production binary");
    }
    let binary = std::fs::read(env!("CARGO_BIN_EXE_xdrsync")).unwrap();
    let needle = b"/_sim/";
    assert!(!binary.windows(needle.len()).any(|w| w == needle), "the simulator's control API is linked into xdrsync");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_lists_what_did_not_sync_and_retry_enqueues_it() {
    use xdrsync::usecase::failures::{self, FailureClass};
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let vars = settings(&sim, Some(&az.connection_string()));
    let ports = xdrsync::app::build(config(&vars));
    ports.store.ensure_tables().await.unwrap();
    ports.queue.ensure_queue(&ports.config.queue_name).await.unwrap();
    failures::note(
        &ports,
        "29",
        FailureClass::Forbidden,
        Some("sentinel"),
        "sentinel denied the call: AuthorizationFailed",
    )
    .await;
    let run = |args: &'static [&'static str]| {
        let vars = vars.clone();
        tokio::task::spawn_blocking(move || xdrsync(&vars, args))
    };
    let (code, text) = run(&["failures", "--json"]).await.unwrap();
    assert_eq!(code, 0, "{text}");
    let listed: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(listed[0]["incidentId"], "29");
    assert_eq!(listed[0]["class"], "forbidden");
    assert_eq!(listed[0]["attempts"], 1);
    let (code, text) = run(&["failures"]).await.unwrap();
    assert!(code == 0 && text.contains("incident 29") && text.contains("AuthorizationFailed"), "{text}");
    let (code, text) = run(&["retry", "--all"]).await.unwrap();
    assert!(code == 0 && text.contains("enqueued 1"), "{text}");
    assert_eq!(ports.queue.approximate_len(&ports.config.queue_name).await.unwrap(), 1);
    let (code, _) = run(&["retry"]).await.unwrap();
    assert_eq!(code, 2, "retry needs ids or --all");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_credential_reaches_a_log_line_even_at_trace() {
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let mut vars = settings(&sim, Some(&az.connection_string()));
    vars.insert("RUST_LOG".into(), "trace".into());
    let secret = vars["XDRSYNC_CLIENT_SECRET"].clone();
    let account_key =
        az.connection_string().split("AccountKey=").nth(1).unwrap().split(';').next().unwrap().to_string();
    let (code, text) = tokio::task::spawn_blocking(move || xdrsync(&vars, &["check"])).await.unwrap();
    assert_eq!(code, 0, "{}", &text[text.len().saturating_sub(2000)..]);
    // azure_core prints each Storage request, Authorization header included, at debug.
    assert!(text.contains("SharedKey [redacted]"), "the request logging this guards against is there");
    assert!(!text.contains("SharedKey devstoreaccount1:"), "a SharedKey signature was logged");
    assert!(!text.contains(&secret), "the client secret was logged");
    assert!(!text.contains(&account_key), "the account key was logged");
    assert!(!text.contains("Bearer ey"), "a bearer token was logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_each_missing_role_and_every_configuration_problem_in_one_run() {
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let vars = settings(&sim, Some(&az.connection_string()));
    for role in ["Microsoft Sentinel Responder", "User.Read.All"] {
        let r = sim_post(&sim, "/_sim/permissions/withhold", serde_json::json!({"role": role})).await;
        assert!(r.status().is_success(), "{role}");
    }
    let run = |vars: HashMap<String, String>| tokio::task::spawn_blocking(move || xdrsync(&vars, &["check"]));
    let (code, text) = run(vars.clone()).await.unwrap();
    assert_eq!(code, 1, "{text}");
    let fail = |what: &str| text.lines().find(|l| l.starts_with("FAIL") && l.contains(what)).map(str::to_string);
    assert!(fail("Sentinel incidents").is_some_and(|l| l.contains("Microsoft Sentinel Responder")), "{text}");
    assert!(fail("directory users").is_some_and(|l| l.contains("User.Read.All")), "{text}");
    assert!(fail("workspace role assignments").is_some_and(|l| l.contains("Microsoft Sentinel Responder")), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("ok") && l.contains("Defender incidents")),
        "the rest still runs: {text}"
    );

    // An endpoint that refuses connections is reported as such, not as refused credentials.
    let mut closed = vars.clone();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    closed.insert("XDRSYNC_GRAPH_ENDPOINT".into(), format!("http://127.0.0.1:{port}"));
    let (_, text) = run(closed).await.unwrap();
    let line = text.lines().find(|l| l.contains("Defender incidents")).unwrap_or_default().to_string();
    assert!(line.starts_with("FAIL") && line.contains("did not answer") && !line.contains("credentials"), "{text}");

    // Several configuration problems: all reported, with the exit code of a configuration error.
    let mut bad = vars.clone();
    bad.insert("XDRSYNC_TENANT_ID".into(), "nope".into());
    bad.insert("XDRSYNC_HTTP_PORT".into(), "0".into());
    bad.insert("XDRSYNC_CONFLICT_POLICY".into(), "coin-toss".into());
    bad.insert("XDRSYNC_WORKER".into(), "4".into());
    let (code, text) = run(bad).await.unwrap();
    assert_eq!(code, 2, "{text}");
    for setting in ["XDRSYNC_TENANT_ID", "XDRSYNC_HTTP_PORT", "XDRSYNC_CONFLICT_POLICY"] {
        assert!(text.lines().any(|l| l.starts_with("FAIL") && l.contains(setting)), "{setting}: {text}");
    }
    assert!(
        text.lines().any(|l| l.starts_with("warn") && l.contains("XDRSYNC_WORKER") && l.contains("XDRSYNC_WORKERS")),
        "{text}"
    );
}

/// README's exit-code rule, command by command: bad input (a bad setting, argument, file or
/// binary) exits 2 and changes nothing: no call reaches any simulated service, the queue and the
/// `Failures` table keep what they held, no file is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_exits_2_on_bad_input_and_changes_nothing() {
    use xdrsync::usecase::failures::{self, FailureClass};
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let vars = settings(&sim, Some(&az.connection_string()));
    seed(&sim, xdrsync_sim::sim::seed::SeedSpec { count: 2, ..Default::default() });
    let ports = xdrsync::app::build(config(&vars));
    ports.store.ensure_tables().await.unwrap();
    ports.queue.ensure_queue(&ports.config.queue_name).await.unwrap();
    failures::note(&ports, "29", FailureClass::Forbidden, Some("sentinel"), "denied").await;
    ports.queue.send(&ports.config.queue_name, r#"{"incidentId":"7"}"#).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh");
    let full = dir.path().join("full");
    std::fs::create_dir_all(full.join("OldFunction")).unwrap();
    let deep_filter = dir.path().join("deep.env");
    let depth = 100_000;
    std::fs::write(
        &deep_filter,
        format!(
            "XDRSYNC_HUNTING_FILTER_DEVICEPROCESSEVENTS={}FileName == 'a'{}\n",
            "(".repeat(depth),
            ")".repeat(depth)
        ),
    )
    .unwrap();
    let mut bad_cfg = vars.clone();
    bad_cfg.insert("XDRSYNC_TENANT_ID".into(), "nope".into());
    let mut long_queue = vars.clone();
    long_queue.insert("XDRSYNC_QUEUE_NAME".into(), "q".repeat(60));
    let path = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let sample = |window: &str| -> Vec<String> {
        ["hunting", "estimate", "--tables", "EmailEvents", "--sample", window].map(String::from).to_vec()
    };
    let none = HashMap::new();
    // (what, settings, arguments, a text the output must hold)
    type Row<'a> = (&'a str, &'a HashMap<String, String>, Vec<String>, &'a str);
    let table: Vec<Row> = vec![
        ("check: a bad setting", &bad_cfg, vec!["check".into()], "XDRSYNC_TENANT_ID"),
        ("check: a queue name whose poison queue is invalid", &long_queue, vec!["check".into()], "XDRSYNC_QUEUE_NAME"),
        (
            "check: a hunting filter 100,000 levels deep",
            &vars,
            vec!["check".into(), "--env-file".into(), path(&deep_filter)],
            "XDRSYNC_HUNTING_FILTER_DEVICEPROCESSEVENTS",
        ),
        ("serve: a bad setting", &bad_cfg, vec!["serve".into(), "--port".into(), "0".into()], "XDRSYNC_TENANT_ID"),
        ("serve: a bad port", &vars, vec!["serve".into(), "--port".into(), "http".into()], "--port"),
        ("run: a bad setting", &bad_cfg, vec!["run".into()], "XDRSYNC_TENANT_ID"),
        ("run: a queue name whose poison queue is invalid", &long_queue, vec!["run".into()], "XDRSYNC_QUEUE_NAME"),
        ("failures: a bad setting", &bad_cfg, vec!["failures".into()], "XDRSYNC_TENANT_ID"),
        ("retry: no id", &vars, vec!["retry".into()], "<IDS>"),
        ("retry: a bad setting", &bad_cfg, vec!["retry".into(), "--all".into()], "XDRSYNC_TENANT_ID"),
        ("status: a bad setting", &bad_cfg, vec!["status".into()], "XDRSYNC_TENANT_ID"),
        (
            "status: a missing settings file",
            &vars,
            vec!["status".into(), "--env-file".into(), "/nonexistent.env".into()],
            "nonexistent.env",
        ),
        ("reconcile: a bad window", &vars, vec!["reconcile".into(), "--since".into(), "P3M".into()], "--since"),
        ("reconcile: a bad setting", &bad_cfg, vec!["reconcile".into()], "XDRSYNC_TENANT_ID"),
        ("backfill: a bad window", &vars, vec!["backfill".into(), "--since".into(), "yesterday".into()], "--since"),
        (
            "backfill: a bad setting",
            &bad_cfg,
            vec!["backfill".into(), "--since".into(), "P1D".into()],
            "XDRSYNC_TENANT_ID",
        ),
        (
            "connect: a bad setting",
            &bad_cfg,
            vec!["connect".into(), "--disable-duplicate-rules".into()],
            "XDRSYNC_TENANT_ID",
        ),
        ("connect: an unknown option", &vars, vec!["connect".into(), "--disable-all".into()], "--disable-all"),
        (
            "hunting schema: an unknown table",
            &vars,
            vec!["hunting".into(), "schema".into(), "NoSuchTable".into()],
            "NoSuchTable",
        ),
        (
            "hunting estimate: an unknown table",
            &vars,
            vec!["hunting".into(), "estimate".into(), "--tables".into(), "NoSuchTable".into()],
            "NoSuchTable",
        ),
        ("hunting estimate: a bad sample window", &vars, sample("an hour"), "--sample"),
        ("hunting estimate: a window past the 30 days advanced hunting keeps", &vars, sample("P31D"), "30 days"),
        (
            "hunting estimate: a bad setting",
            &bad_cfg,
            vec!["hunting".into(), "estimate".into(), "--tables".into(), "EmailEvents".into()],
            "XDRSYNC_TENANT_ID",
        ),
        (
            "package: a binary that is not xdrsync",
            &none,
            vec!["package".into(), "--out".into(), path(&fresh), "--binary".into(), "/bin/sh".into()],
            "refusing",
        ),
        (
            "package: a non-empty folder",
            &none,
            vec!["package".into(), "--allow-newer-glibc".into(), "--out".into(), path(&full)],
            "--force",
        ),
        ("no command outside a host", &none, vec![], "FUNCTIONS_CUSTOMHANDLER_PORT"),
    ];
    let calls_before = sim.sim.stats.snapshot();
    for (what, vars, args, says) in table {
        let vars = vars.clone();
        let (code, text) = tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            xdrsync(&vars, &args)
        })
        .await
        .unwrap();
        assert_eq!(code, 2, "{what}: {text}");
        assert!(text.contains(says), "{what}: the output names {says}: {text}");
    }
    assert_eq!(sim.sim.stats.snapshot(), calls_before, "no service was called");
    assert_eq!(ports.queue.approximate_len(&ports.config.queue_name).await.unwrap(), 1, "the queue is unchanged");
    let recorded: Vec<String> = failures::list_all(&ports).await.unwrap().into_iter().map(|r| r.incident_id).collect();
    assert_eq!(recorded, ["29"], "the Failures table is unchanged");
    assert!(!fresh.exists(), "no package written");
    let left: Vec<_> = std::fs::read_dir(&full).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(left, ["OldFunction"], "the non-empty folder is untouched");
}

/// One schedule validator for every command: `check`, `run` and `serve` refuse the same
/// schedules (not the Functions NCRONTAB syntax, or never firing) with exit code 2, naming the
/// setting, before doing anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_run_and_serve_refuse_the_same_schedules_naming_the_setting() {
    let sim = start_sim(SimConfig::demo()).await;
    let mut vars = settings(&sim, None);
    vars.insert("XDRSYNC_HUNTING_TABLES".into(), "DeviceProcessEvents".into());
    for (setting, expr, says) in [
        ("XDRSYNC_POLL_SCHEDULE", "0 0 0 30 2 *", "never fires"),
        ("XDRSYNC_POLL_SCHEDULE", "0 0 0 L * *", "not NCRONTAB"),
        ("XDRSYNC_POLL_SCHEDULE", "0 0 0 * * 7", "out of range"),
        ("XDRSYNC_HUNTING_SCHEDULE", "0 0 0 31 Apr *", "never fires"),
        ("XDRSYNC_HUNTING_SCHEDULE", "0 0 12 ? * 1#2", "not NCRONTAB"),
    ] {
        let mut bad = vars.clone();
        bad.insert(setting.into(), expr.into());
        for args in [&["check"][..], &["run"], &["serve", "--port", "0"]] {
            let (code, text) = tokio::task::spawn_blocking({
                let bad = bad.clone();
                move || xdrsync(&bad, args)
            })
            .await
            .unwrap();
            assert_eq!(code, 2, "{args:?} with {setting}={expr}: {text}");
            assert!(text.contains(setting) && text.contains(says), "{args:?} with {setting}={expr}: {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_names_what_it_did_not_enqueue_and_exits_1() {
    use xdrsync::usecase::failures::{self, FailureClass};
    let sim = start_sim(SimConfig::demo()).await;
    let az = Azurite::start();
    let mut vars = settings(&sim, Some(&az.connection_string()));
    let tenant = sim.sim.config.tenant_id.clone();
    vars.insert("XDRSYNC_DEFENDER_TENANTS".into(), format!("{tenant}=Contoso"));
    let ports = xdrsync::app::build(config(&vars));
    ports.store.ensure_tables().await.unwrap();
    ports.queue.ensure_queue(&ports.config.queue_name).await.unwrap();
    let scoped = ports.for_tenant(&tenant).unwrap();
    failures::note(&scoped, "29", FailureClass::Unavailable, Some("sentinel"), "503").await;
    let (code, text) = tokio::task::spawn_blocking({
        let vars = vars.clone();
        move || xdrsync(&vars, &["retry", "29", "31"])
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "part of the batch was not enqueued: {text}");
    assert!(text.contains(&format!("enqueued 1 incident(s): {tenant}:29")), "{text}");
    assert!(text.contains("not enqueued: 31: no failure recorded for it in any tenant"), "{text}");
    assert_eq!(ports.queue.approximate_len(&ports.config.queue_name).await.unwrap(), 1);
}
