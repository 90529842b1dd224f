//! `xdrsync package --out DIR`: a deployable Functions app folder — `host.json` and one folder
//! per function at its root, plus the binary — as `func azure functionapp publish` expects. The
//! JSON files are the repository's own, embedded at build time, so what ships is what is tested.
//! The binary to ship is checked first: an ELF executable carrying xdrsync's marker (`main.rs`
//! keeps it in every build), so a stray `--binary` (another tool, a test harness, a script) is
//! refused before anything is written. So are a binary needing a glibc newer than the Functions
//! hosts provide (`glibc.rs`, unless `allow_newer_glibc`) and a non-empty output folder (its stale
//! function folders would be published with the app; `force` empties it first), as
//! `scripts/package.sh` does.

use std::path::{Path, PathBuf};

pub mod glibc;

/// What `xdrsync package` may do beyond the safe default.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Ship the `HuntingEventHub` function too.
    pub event_hub: bool,
    /// Empty a non-empty output folder first.
    pub force: bool,
    /// Ship a binary needing a glibc newer than [`glibc::MAX_GLIBC`] (a warning, not a refusal).
    pub allow_newer_glibc: bool,
}

/// Why packaging stopped: a refusal (bad input; nothing written) or a failed write.
#[derive(Debug)]
pub enum PackageError {
    Refused(String),
    Failed(anyhow::Error),
}

impl std::fmt::Display for PackageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PackageError::Refused(why) => f.write_str(why),
            PackageError::Failed(e) => write!(f, "{e:#}"),
        }
    }
}

impl From<std::io::Error> for PackageError {
    fn from(e: std::io::Error) -> Self {
        PackageError::Failed(e.into())
    }
}

/// What was packaged: the version, the glibc the binary needs, a warning to print, the files.
#[derive(Debug)]
pub struct Packaged {
    pub version: String,
    pub glibc: Option<glibc::Version>,
    pub warning: Option<String>,
    pub files: Vec<PathBuf>,
}

/// `(relative path in the app, contents)` of every Functions file.
pub const APP_FILES: &[(&str, &str)] = &[
    ("host.json", include_str!("../../host.json")),
    ("IncidentPoller/function.json", include_str!("../../functions/IncidentPoller/function.json")),
    ("IncidentSync/function.json", include_str!("../../functions/IncidentSync/function.json")),
    ("Health/function.json", include_str!("../../functions/Health/function.json")),
    ("SentinelWebhook/function.json", include_str!("../../functions/SentinelWebhook/function.json")),
    ("HuntingExport/function.json", include_str!("../../functions/HuntingExport/function.json")),
    ("HuntingStorageExport/function.json", include_str!("../../functions/HuntingStorageExport/function.json")),
];

/// The Event Hub function, shipped only with `package --event-hub`: its trigger needs
/// `XDRSYNC_HUNTING_EVENTHUB_NAME` and `XDRSYNC_HUNTING_EVENTHUB_CONNECTION`, which an app without
/// an Event Hub does not have.
pub const EVENT_HUB_FILE: (&str, &str) =
    ("HuntingEventHub/function.json", include_str!("../../functions/HuntingEventHub/function.json"));

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

/// Writes the app into `out` (created if missing) with `binary` copied in as the executable.
/// Refuses (writing nothing) a binary that is not xdrsync.
pub fn write_app(out: &Path, binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let opts = Options { allow_newer_glibc: true, force: false, event_hub: false };
    package(out, binary, opts).map(|p| p.files).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The glibc `bytes` needs, or why it cannot be shipped (a newer one than the hosts have, unless
/// `allow_newer`, then with the warning to print).
fn glibc_verdict(
    binary: &Path,
    bytes: &[u8],
    allow_newer: bool,
) -> Result<(Option<glibc::Version>, Option<String>), String> {
    let max = glibc::MAX_GLIBC.map(|p| p.to_string()).join(".");
    let v = glibc::max_glibc(bytes).map_err(|why| format!("{} {why}; refusing to package it", binary.display()))?;
    match v {
        Some(v) if v.too_new() => {
            let problem = format!(
                "{} needs GLIBC_{v}, newer than {max}: it would not start on older Functions host images",
                binary.display()
            );
            if allow_newer {
                Ok((Some(v), Some(format!("{problem} (shipped anyway: --allow-newer-glibc)"))))
            } else {
                Err(format!("{problem}. Build it with ./scripts/package.sh DIR (glibc <= {max}), or pass --allow-newer-glibc if every host you deploy to has glibc {v}; refusing to package it"))
            }
        }
        v => Ok((v, None)),
    }
}

/// Empties `out` when `force`, or refuses it when it holds anything.
fn prepare_folder(out: &Path, force: bool) -> Result<(), PackageError> {
    if out.exists() && !out.is_dir() {
        return Err(PackageError::Refused(format!("{} exists and is not a directory", out.display())));
    }
    let Ok(mut entries) = std::fs::read_dir(out) else { return Ok(()) };
    if entries.next().is_none() {
        return Ok(());
    }
    if !force {
        return Err(PackageError::Refused(format!(
            "{} is not empty; stale function folders in it would be published with the app. Use an empty or new directory, or --force to empty it first",
            out.display()
        )));
    }
    // Never empty a folder holding the work at hand: the root, home, the current directory or
    // one of its parents, a repository.
    let canon = out.canonicalize()?;
    let cwd = std::env::current_dir().ok().and_then(|c| c.canonicalize().ok());
    let home = std::env::var_os("HOME").and_then(|h| Path::new(&h).canonicalize().ok());
    if canon.parent().is_none()
        || home.as_deref() == Some(canon.as_path())
        || cwd.as_ref().is_some_and(|c| c.starts_with(&canon))
        || canon.join(".git").exists()
    {
        return Err(PackageError::Refused(format!("refusing to empty {}", out.display())));
    }
    for entry in std::fs::read_dir(out)? {
        let path = entry?.path();
        if path.is_dir() && !path.is_symlink() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Checks `binary` (xdrsync, glibc) and `out` (empty, or emptied with `force`), then writes the app.
pub fn package(out: &Path, binary: &Path, opts: Options) -> Result<Packaged, PackageError> {
    let bytes = std::fs::read(binary)
        .map_err(|e| PackageError::Refused(format!("cannot read {}: {e}; refusing to package it", binary.display())))?;
    let version = identify(&bytes)
        .map_err(|why| PackageError::Refused(format!("{} {why}; refusing to package it", binary.display())))?;
    let (glibc, warning) = glibc_verdict(binary, &bytes, opts.allow_newer_glibc).map_err(PackageError::Refused)?;
    prepare_folder(out, opts.force)?;
    let mut files = Vec::new();
    let extra = opts.event_hub.then_some(&EVENT_HUB_FILE);
    for (rel, contents) in APP_FILES.iter().chain(extra) {
        let path = out.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, contents)?;
        files.push(path);
    }
    let exe = out.join(EXECUTABLE);
    std::fs::copy(binary, &exe)
        .map_err(|e| PackageError::Failed(anyhow::anyhow!("copying {} failed: {e}", binary.display())))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755))?;
    }
    files.push(exe);
    Ok(Packaged { version, glibc, warning, files })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ELF needing glibc 2.17, and the marker as `main.rs` embeds it.
    fn fake_elf(version: &str) -> Vec<u8> {
        let marker = format!("{}{}{version}\0tail", MARKER_PARTS[1], MARKER_PARTS[0]);
        glibc::test_elf(&["GLIBC_2.17"], marker.as_bytes())
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
    fn a_newer_glibc_or_a_non_empty_folder_is_refused_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let marker = format!("{}{}1.0.0\0", MARKER_PARTS[1], MARKER_PARTS[0]);
        let new = dir.path().join("new");
        std::fs::write(&new, glibc::test_elf(&["GLIBC_2.2.5", "GLIBC_2.34"], marker.as_bytes())).unwrap();
        let out = dir.path().join("app");
        let e = package(&out, &new, Options::default()).unwrap_err();
        assert!(matches!(e, PackageError::Refused(_)), "{e}");
        assert!(e.to_string().contains("needs GLIBC_2.34, newer than 2.28"), "{e}");
        assert!(!out.exists());
        let p = package(&out, &new, Options { allow_newer_glibc: true, ..Default::default() }).unwrap();
        assert!(p.warning.unwrap().contains("GLIBC_2.34"));

        // `out` now holds an app: refused without --force (the stale folder stays) ...
        std::fs::create_dir_all(out.join("OldFunction")).unwrap();
        let old = dir.path().join("old");
        std::fs::write(&old, fake_elf("1.0.0")).unwrap();
        let e = package(&out, &old, Options::default()).unwrap_err();
        assert!(matches!(e, PackageError::Refused(_)) && e.to_string().contains("--force"), "{e}");
        assert!(out.join("OldFunction").exists());
        // ... emptied with it.
        let p = package(&out, &old, Options { force: true, ..Default::default() }).unwrap();
        assert_eq!(p.glibc.unwrap().to_string(), "2.17");
        assert!(p.warning.is_none());
        assert!(!out.join("OldFunction").exists() && out.join("host.json").exists());
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
