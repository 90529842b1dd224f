//! What is published is the repository's host.json: `xdrsync package` writes the copy embedded at
//! build time, and `scripts/package.sh` goes through it, so the Event Hubs batch bound
//! (`extensions.eventHubs.maxEventBatchSize`, tests/infra_event_hub_batch.rs) and the queue
//! settings reach the Function App byte for byte. Checked for both entry points, with the binary
//! under test (no zig build; a stand-in `readelf` reports glibc 2.28 to the script).

use std::path::{Path, PathBuf};
use std::process::Command;

const XDRSYNC: &str = env!("CARGO_BIN_EXE_xdrsync");

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    text
}

/// Every packaged file equals the repository's, host.json first.
fn assert_same_as_repository(app: &Path) {
    let host = std::fs::read(app.join("host.json")).unwrap();
    assert_eq!(host, std::fs::read(repo("host.json")).unwrap(), "the packaged host.json is the repository's");
    let parsed: serde_json::Value = serde_json::from_slice(&host).unwrap();
    assert!(
        parsed["extensions"]["eventHubs"]["maxEventBatchSize"].as_u64().is_some_and(|n| n >= 1),
        "the bounded Event Hubs batch ships: {parsed}"
    );
    for (path, _) in xdrsync::cli::package::APP_FILES.iter().skip(1) {
        assert_eq!(
            std::fs::read(app.join(path)).unwrap(),
            std::fs::read(repo(&format!("functions/{path}"))).unwrap(),
            "{path}"
        );
    }
}

#[test]
fn xdrsync_package_writes_the_repositorys_host_json() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("app");
    // This machine's debug build may need a newer glibc than the hosts: what is checked here is
    // the files written, not the binary.
    run(Command::new(XDRSYNC).args([
        "package",
        "--out",
        app.to_str().unwrap(),
        "--binary",
        XDRSYNC,
        "--allow-newer-glibc",
    ]));
    assert_same_as_repository(&app);
    assert_eq!(xdrsync::cli::package::APP_FILES[0].0, "host.json");
}

#[test]
fn package_sh_publishes_the_repositorys_host_json() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let readelf = bin.join("readelf");
    std::fs::write(&readelf, "#!/bin/sh\necho '  0x0020: Name: GLIBC_2.28  Flags: none'\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&readelf, std::fs::Permissions::from_mode(0o755)).unwrap();
    let app = dir.path().join("app");
    run(Command::new("bash")
        .arg(repo("scripts/package.sh"))
        .arg(&app)
        .env("XDRSYNC_PACKAGE_BINARY", XDRSYNC)
        .env("PATH", format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default())));
    assert_same_as_repository(&app);
}
