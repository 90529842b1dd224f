//! `xdrsync retry` says what it did not enqueue and exits 1 (README: “Health, failures and
//! check”), run as the binary against the simulator and Azurite.

mod support;

use std::collections::HashMap;
use std::process::Command;

use support::*;
use xdrsync_sim::sim::SimConfig;

fn xdrsync(vars: &HashMap<String, String>, args: &[&str]) -> (i32, String, String) {
    // Outside the repository: its local.settings.json would add settings (commands read it).
    let out = Command::new(env!("CARGO_BIN_EXE_xdrsync"))
        .env_clear()
        .envs(vars.iter())
        .current_dir(std::env::temp_dir())
        .args(args)
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).to_string();
    (out.status.code().unwrap_or(-1), text(&out.stdout), text(&out.stderr))
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

    let (code, out, err) = tokio::task::spawn_blocking({
        let vars = vars.clone();
        move || xdrsync(&vars, &["retry", "29", "31"])
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "part of the batch was not enqueued: {out}{err}");
    assert!(out.contains(&format!("enqueued 1 incident(s): {tenant}:29")), "{out}");
    assert!(err.contains("not enqueued: 31: no failure recorded for it in any tenant"), "{err}");
    assert_eq!(ports.queue.approximate_len(&ports.config.queue_name).await.unwrap(), 1);
}
