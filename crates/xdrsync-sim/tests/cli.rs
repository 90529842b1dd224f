//! The development binary's commands exist and explain themselves.

use std::process::Command;

#[test]
fn serve_demo_and_bench_have_help() {
    for cmd in ["serve", "demo", "bench"] {
        let out = Command::new(env!("CARGO_BIN_EXE_xdrsync-sim")).args([cmd, "--help"]).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{cmd}");
        assert!(text.len() > 200 && text.contains("Usage"), "{cmd}: {text}");
    }
}

/// `serve` prints every setting `xdrsync check` needs (storage and webhook key included) and
/// writes them as an env file; SIGTERM stops it with a clear line.
#[test]
fn serve_prints_every_setting_and_writes_the_env_file() {
    use std::io::BufRead;
    let env_file = std::env::temp_dir().join(format!("xdrsync-sim-serve-{}.env", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_xdrsync-sim"))
        .args(["serve", "--port", "0", "--env-file", env_file.to_str().unwrap()])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.starts_with("# written to");
        printed.push(line);
        if done {
            break;
        }
    }
    let exports: Vec<&String> = printed.iter().filter(|l| l.starts_with("export ")).collect();
    for name in ["AzureWebJobsStorage", "XDRSYNC_WEBHOOK_KEY", "XDRSYNC_TENANT_ID", "XDRSYNC_GRAPH_ENDPOINT"] {
        assert!(exports.iter().any(|l| l.starts_with(&format!("export {name}='"))), "{name}: {printed:?}");
    }
    let file = std::fs::read_to_string(&env_file).unwrap();
    for l in &exports {
        assert!(file.lines().any(|f| f == l.as_str()), "the file holds what was printed: {l}");
    }
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let code = child.wait().unwrap().code();
    assert_eq!(code, Some(130), "stopped by SIGTERM");
    let _ = std::fs::remove_file(&env_file);
}

/// A demo whose xdrsync cannot start says why, and stops what it started.
#[test]
fn demo_reports_why_xdrsync_did_not_start() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(env!("CARGO_BIN_EXE_xdrsync-sim"))
        .args(["demo", "--incidents", "1", "--json", "--xdrsync", "/bin/false", "--repo", root.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("xdrsync did not start: xdrsync exited with exit status: 1"), "{err}");
}
