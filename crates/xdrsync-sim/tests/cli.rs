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
