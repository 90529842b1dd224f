//! One schedule validator for every command: `check`, `run` and `serve` refuse the same
//! schedules (not the Functions NCRONTAB syntax, or never firing) with exit code 2, naming the
//! setting, before doing anything; `check` warns about a timer setting the Functions host needs.

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
