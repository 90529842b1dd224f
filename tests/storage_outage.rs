//! A storage outage in both modes (the real binaries, Azurite paused with SIGSTOP for 45 s, then
//! resumed): every process stays up, health answers `unhealthy` within 2 s meanwhile (after the
//! first 10 s, the age a cached assessment may have), and afterwards every change made before,
//! during and after the pause is synced exactly once.

use std::time::Duration;

use xdrsync_sim::bench_soak::{run, Scenario, SoakMode, SoakOptions};

/// One pause at a time: the 2-second health bound is measured, and the machine is shared.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn outage(mode: SoakMode) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let opts = SoakOptions {
        instances: 2,
        duration: Duration::from_secs(60),
        changes_per_minute: 30,
        initial_incidents: 4,
        settle: Duration::from_secs(150),
        seed: 23,
        ..SoakOptions::full(
            mode,
            Scenario::StorageOutage,
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            std::path::PathBuf::from(env!("CARGO_BIN_EXE_xdrsync")),
        )
    };
    let r = run(opts).await.expect("the outage run");
    let report = serde_json::to_string_pretty(&r).expect("report serialises");
    let o = r.outage.as_ref().expect("an outage report");
    assert!(o.paused_seconds >= 45.0, "{report}");
    assert!(o.processes_stayed_up, "every process stays up: {report}");
    assert_eq!(o.wrong_after_grace, 0, "health says unhealthy within 2 s while storage is unreachable: {report}");
    assert!(o.probes >= 20, "health was asked every 2 s throughout the pause: {report}");
    assert!(o.converged_seconds_after_resume.is_some(), "everything converges after: {report}");
    assert_eq!((r.extra_mirrors, r.comments_copied_twice), (0, 0), "nothing duplicated: {report}");
    assert!(r.lost.is_empty(), "nothing lost: {report}");
    assert!(r.ok, "{report}");
}

#[tokio::test]
async fn standalone_survives_a_45_second_storage_outage_says_unhealthy_and_converges() {
    outage(SoakMode::Standalone).await;
}

#[tokio::test]
async fn functions_mode_survives_a_45_second_storage_outage_says_unhealthy_and_converges() {
    outage(SoakMode::Functions).await;
}
