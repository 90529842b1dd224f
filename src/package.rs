//! `xdrsync package --out DIR`: a deployable Functions app folder — `host.json` and one folder
//! per function at its root, plus the binary — as `func azure functionapp publish` expects. The
//! JSON files are the repository's own, embedded at build time, so what ships is what is tested.
//! The binary to ship is checked first: an ELF executable carrying xdrsync's marker (`main.rs`
//! keeps it in every build), so a stray `--binary` (another tool, a test harness, a script) is
//! refused before anything is written.

use std::path::{Path, PathBuf};

/// `(relative path in the app, contents)` of every Functions file.
pub const APP_FILES: &[(&str, &str)] = &[
    ("host.json", include_str!("../host.json")),
    ("IncidentPoller/function.json", include_str!("../functions/IncidentPoller/function.json")),
    ("IncidentSync/function.json", include_str!("../functions/IncidentSync/function.json")),
    ("Health/function.json", include_str!("../functions/Health/function.json")),
    ("SentinelWebhook/function.json", include_str!("../functions/SentinelWebhook/function.json")),
];

/// Name of the executable `host.json` starts.
pub const EXECUTABLE: &str = "xdrsync";

/// The marker `main.rs` embeds (`BINARY_MARKER`), in two parts and in reverse order: the check
/// assembles the needle at run time, so only a binary holding the marker itself matches, not one
/// that merely links this checker (its two literals can never sit in the marker's order).
pub const MARKER_PARTS: [&str; 2] = ["functions-custom-handler ", "xdrsync-binary-marker:"];

fn needle() -> Vec<u8> {
    [MARKER_PARTS[1], MARKER_PARTS[0]].concat().into_bytes()
}

/// The xdrsync version a binary carries, or why it is not an xdrsync binary the host can start.
pub fn identify(bytes: &[u8]) -> Result<String, String> {
    if !bytes.starts_with(b"\x7fELF") {
        return Err("is not an ELF executable (the Linux Functions host runs only those)".into());
    }
    let needle = needle();
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle.as_slice())
        .ok_or("is not xdrsync (its marker is missing: another program, a test harness or an old build)")?;
    let rest = &bytes[at + needle.len()..];
    let end = rest.iter().position(|b| *b == 0).unwrap_or(0).min(32);
    let version = std::str::from_utf8(&rest[..end]).unwrap_or("");
    Ok(if version.is_empty() { "unknown".into() } else { version.to_string() })
}

/// Reads `binary` and checks it is xdrsync; returns its version.
pub fn check_binary(binary: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(binary).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", binary.display()))?;
    identify(&bytes).map_err(|why| anyhow::anyhow!("{} {why}; refusing to package it", binary.display()))
}

/// Writes the app into `out` (created if missing) with `binary` copied in as the executable.
/// Refuses (writing nothing) a binary that is not xdrsync.
pub fn write_app(out: &Path, binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    check_binary(binary)?;
    let mut written = Vec::new();
    for (rel, contents) in APP_FILES {
        let path = out.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, contents)?;
        written.push(path);
    }
    let exe = out.join(EXECUTABLE);
    std::fs::copy(binary, &exe).map_err(|e| anyhow::anyhow!("copying {} failed: {e}", binary.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755))?;
    }
    written.push(exe);
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF header, some bytes, and the marker as `main.rs` embeds it.
    fn fake_elf(version: &str) -> Vec<u8> {
        let mut b = b"\x7fELF\x02\x01\x01\0padding".to_vec();
        b.extend_from_slice(format!("{}{}{version}\0tail", MARKER_PARTS[1], MARKER_PARTS[0]).as_bytes());
        b
    }

    #[test]
    fn only_an_elf_binary_with_the_marker_is_xdrsync() {
        assert_eq!(identify(&fake_elf("1.2.3")), Ok("1.2.3".into()));
        assert!(identify(b"#!/bin/sh\necho xdrsync-binary-marker:functions-custom-handler 1\n").is_err(), "a script");
        assert!(identify(b"\x7fELF\x02\x01\x01\0no marker here").unwrap_err().contains("not xdrsync"));
        // The checker's own parts, apart, are not the marker.
        let parts = format!("\x7fELF{}{}", MARKER_PARTS[0], MARKER_PARTS[1]);
        assert!(identify(parts.as_bytes()).is_err());
    }

    #[test]
    fn a_refused_binary_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("xdrsync");
        std::fs::write(&script, b"#!/bin/sh\n").unwrap();
        let out = dir.path().join("app");
        let e = write_app(&out, &script).unwrap_err().to_string();
        assert!(e.contains("refusing"), "{e}");
        assert!(!out.exists(), "nothing written");
    }

    #[test]
    fn app_has_host_json_and_function_folders_at_its_root() {
        let dir = tempfile::tempdir().unwrap();
        let fake_bin = dir.path().join("bin");
        std::fs::write(&fake_bin, fake_elf("0.9.0")).unwrap();
        let out = dir.path().join("app");
        write_app(&out, &fake_bin).unwrap();
        let host: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("host.json")).unwrap()).unwrap();
        assert_eq!(host["customHandler"]["description"]["defaultExecutablePath"], EXECUTABLE);
        assert_eq!(host["extensions"]["http"]["routePrefix"], "api");
        assert_eq!(host["extensions"]["queues"]["maxDequeueCount"], 5);
        for f in ["IncidentPoller", "IncidentSync", "Health", "SentinelWebhook"] {
            let fj: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(out.join(f).join("function.json")).unwrap()).unwrap();
            assert!(fj["bindings"].as_array().is_some_and(|b| !b.is_empty()), "{f}");
        }
        assert!(out.join(EXECUTABLE).exists());
    }
}
