//! The soak of `xdrsync-sim bench soak`, scaled down for CI (3 SIGKILLs in about 40 s, a few
//! incidents), on the real binaries: three `xdrsync run` instances on one Azurite storage
//! account, and three `xdrsync serve` custom handlers each behind the Functions host emulator.
//! New incidents, Defender updates and Sentinel edits flow meanwhile; every change must show on
//! the other side exactly once (no second mirror, no comment copied twice, nothing lost).

use std::time::Duration;

use xdrsync_sim::bench_soak::{run, Scenario, SoakMode, SoakOptions};

/// The soaks run one at a time: each starts three instances, and the machine's two cores are shared.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn soak(mode: SoakMode) {
    let _turn = ONE_AT_A_TIME.lock().await;
    let opts = SoakOptions {
        kills: 3,
        duration: Duration::from_secs(40),
        changes_per_minute: 45,
        initial_incidents: 4,
        settle: Duration::from_secs(150),
        ..SoakOptions::full(
            mode,
            Scenario::Kills,
            std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")),
            std::path::PathBuf::from(env!("CARGO_BIN_EXE_xdrsync")),
        )
    };
    let r = run(opts).await.expect("the soak runs");
    let report = serde_json::to_string_pretty(&r).expect("report serialises");
    assert_eq!(r.kills, 3, "{report}");
    assert!(r.new_incidents + r.defender_updates + r.sentinel_edits >= 20, "changes flowed: {report}");
    assert_eq!((r.extra_mirrors, r.comments_copied_twice), (0, 0), "nothing duplicated: {report}");
    assert!(r.lost.is_empty(), "nothing lost: {report}");
    assert!(r.unexpected_exits.is_empty(), "no instance died on its own: {report}");
    assert!(r.ok, "{report}");
}

#[tokio::test]
async fn three_standalone_instances_killed_three_times_lose_and_duplicate_nothing() {
    soak(SoakMode::Standalone).await;
}

#[tokio::test]
async fn three_custom_handlers_behind_the_functions_host_killed_three_times_lose_and_duplicate_nothing() {
    soak(SoakMode::Functions).await;
}
