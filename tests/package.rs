//! Packaging, as an operator runs it: `xdrsync package --binary` ships only an xdrsync binary, and
//! `scripts/package.sh` refuses a non-empty folder (stale function folders would be published), a
//! binary needing a glibc newer than 2.28, and a binary that is not xdrsync. The zig build itself
//! is too slow for the suite: these tests hand the script the binary under test
//! (`XDRSYNC_PACKAGE_BINARY`) and, where the glibc verdict matters, a stand-in `readelf` on PATH
//! that reports a chosen symbol version.

use std::path::{Path, PathBuf};
use std::process::Command;

const XDRSYNC: &str = env!("CARGO_BIN_EXE_xdrsync");

fn run(cmd: &mut Command) -> (i32, String) {
    let out = cmd.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/package.sh")
}

/// A `bin/` dir with a `readelf` that reports `GLIBC_<version>` as the highest symbol version.
fn fake_readelf(dir: &Path, version: &str) -> PathBuf {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let path = bin.join("readelf");
    std::fs::write(&path, format!("#!/bin/sh\necho '  0x0010: Name: GLIBC_2.2.5  Flags: none'\necho '  0x0020: Name: GLIBC_{version}  Flags: none'\n")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

fn package_sh(args: &[&Path], binary: &Path, path_first: Option<&Path>) -> (i32, String) {
    let mut cmd = Command::new("bash");
    cmd.arg(script()).args(args).env("XDRSYNC_PACKAGE_BINARY", binary);
    if let Some(p) = path_first {
        cmd.env("PATH", format!("{}:{}", p.display(), std::env::var("PATH").unwrap_or_default()));
    }
    run(&mut cmd)
}

#[test]
fn package_ships_the_xdrsync_binary_and_refuses_any_other() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app");
    let (code, text) = run(Command::new(XDRSYNC).args([
        "package",
        "--allow-newer-glibc",
        "--out",
        out.to_str().unwrap(),
        "--binary",
        XDRSYNC,
    ]));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(&format!("packaged xdrsync {}", env!("CARGO_PKG_VERSION"))), "{text}");
    assert!(out.join("xdrsync").exists() && out.join("host.json").exists());

    // This test's own executable: an ELF binary, but not xdrsync.
    let me = std::env::current_exe().unwrap();
    let script = dir.path().join("xdrsync.sh");
    std::fs::write(&script, "#!/bin/sh\necho xdrsync\n").unwrap();
    for other in [me.as_path(), script.as_path(), Path::new("/nonexistent/xdrsync")] {
        let out = dir.path().join("refused");
        let (code, text) =
            run(Command::new(XDRSYNC).args(["package", "--out", out.to_str().unwrap(), "--binary"]).arg(other));
        assert_eq!(code, 2, "{}: {text}", other.display());
        assert!(text.contains("refusing") || text.contains("cannot read"), "{text}");
        assert!(!out.exists(), "nothing written for {}", other.display());
    }
}

#[test]
fn the_script_refuses_a_non_empty_folder_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app");
    std::fs::create_dir_all(out.join("OldFunction")).unwrap();
    std::fs::write(out.join("OldFunction/function.json"), "{}").unwrap();
    let bin = fake_readelf(dir.path(), "2.28");

    let (code, text) = package_sh(&[&out], Path::new(XDRSYNC), Some(&bin));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("not empty") && text.contains("--force"), "{text}");
    assert!(out.join("OldFunction/function.json").exists(), "left untouched");

    let (code, text) = package_sh(&[&out, Path::new("--force")], Path::new(XDRSYNC), Some(&bin));
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("needs glibc 2.28"), "{text}");
    assert!(!out.join("OldFunction").exists(), "the stale function folder is gone");
    for f in ["host.json", "IncidentSync/function.json", "SentinelWebhook/function.json", "xdrsync"] {
        assert!(out.join(f).exists(), "{f}: {text}");
    }

    // An empty existing folder is fine without --force.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let (code, text) = package_sh(&[&empty], Path::new(XDRSYNC), Some(&bin));
    assert_eq!(code, 0, "{text}");
}

#[test]
fn the_script_refuses_a_binary_needing_a_newer_glibc_or_not_xdrsync() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app");
    for newer in ["2.34", "2.29", "3.0"] {
        let bin = fake_readelf(&dir.path().join(newer), newer);
        let (code, text) = package_sh(&[&out], Path::new(XDRSYNC), Some(&bin));
        assert_eq!(code, 1, "{newer}: {text}");
        assert!(text.contains(&format!("needs GLIBC_{newer}, newer than 2.28")), "{text}");
        assert!(!out.exists(), "nothing written");
    }
    // 2.17 < 2.28 numerically, although "2.17" > "2.1" and "2.9" > "2.28" as text.
    let bin = fake_readelf(&dir.path().join("old"), "2.17");
    let me = std::env::current_exe().unwrap();
    let (code, text) = package_sh(&[&out], &me, Some(&bin));
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("is not xdrsync"), "{text}");
    assert!(!out.exists(), "nothing written");

    // With the real readelf, a file with no GLIBC symbol versions is no binary for the host.
    // package.sh needs binutils' readelf, as the machine that packages does: not skipped without it.
    let readelf = Command::new("readelf").arg("--version").output();
    assert!(readelf.is_ok_and(|o| o.status.success()), "readelf (binutils) is needed to package and to run this test");
    let script = dir.path().join("not-elf");
    std::fs::write(&script, "#!/bin/sh\n").unwrap();
    let (code, text) = package_sh(&[&out], &script, None);
    assert_eq!(code, 1, "{text}");
    assert!(!out.exists());
}

/// An ELF carrying xdrsync's marker that needs `glibc` (e.g. "GLIBC_2.34").
fn marked_elf(dir: &Path, glibc: &str) -> PathBuf {
    let parts = xdrsync::cli::package::MARKER_PARTS;
    let marker = format!("{}{}9.9.9\0", parts[1], parts[0]);
    let path = dir.join(format!("xdrsync-{glibc}"));
    std::fs::write(&path, xdrsync::cli::package::glibc::test_elf(&["GLIBC_2.2.5", glibc], marker.as_bytes())).unwrap();
    path
}

#[test]
fn package_refuses_a_newer_glibc_and_a_non_empty_folder_with_exit_2_writing_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("app");
    let package = |binary: &Path, extra: &[&str]| {
        run(Command::new(XDRSYNC).args(["package", "--out", out.to_str().unwrap(), "--binary"]).arg(binary).args(extra))
    };
    let new = marked_elf(dir.path(), "GLIBC_2.34");
    let (code, text) = package(&new, &[]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("needs GLIBC_2.34, newer than 2.28") && text.contains("--allow-newer-glibc"), "{text}");
    assert!(!out.exists(), "nothing written");
    let (code, text) = package(&new, &["--allow-newer-glibc"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("WARNING") && text.contains("GLIBC_2.34"), "a loud warning: {text}");

    // A folder holding an app (and a stale function): refused, untouched; --force empties it.
    std::fs::create_dir_all(out.join("OldFunction")).unwrap();
    std::fs::write(out.join("OldFunction/function.json"), "{}").unwrap();
    let ok = marked_elf(dir.path(), "GLIBC_2.28");
    let (code, text) = package(&ok, &[]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("not empty") && text.contains("--force"), "{text}");
    assert!(out.join("OldFunction/function.json").exists(), "left untouched");
    let (code, text) = package(&ok, &["--force"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("needs glibc 2.28") && !text.contains("WARNING"), "{text}");
    assert!(!out.join("OldFunction").exists() && out.join("IncidentSync/function.json").exists(), "{text}");
}

#[test]
fn package_help_points_to_the_glibc_2_28_build() {
    let (code, text) = run(Command::new(XDRSYNC).args(["package", "--help"]));
    assert_eq!(code, 0);
    assert!(
        text.contains("scripts/package.sh") && text.contains("2.28") && !text.contains("build with --release first"),
        "{text}"
    );
}
