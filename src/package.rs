//! `xdrsync package --out DIR`: a deployable Functions app folder — `host.json` and one folder
//! per function at its root, plus the binary — as `func azure functionapp publish` expects. The
//! JSON files are the repository's own, embedded at build time, so what ships is what is tested.

use std::path::{Path, PathBuf};

/// `(relative path in the app, contents)` of every Functions file.
pub const APP_FILES: &[(&str, &str)] = &[
    ("host.json", include_str!("../host.json")),
    ("IncidentPoller/function.json", include_str!("../functions/IncidentPoller/function.json")),
    ("IncidentSync/function.json", include_str!("../functions/IncidentSync/function.json")),
    ("Health/function.json", include_str!("../functions/Health/function.json")),
    ("SentinelWebhook/function.json", include_str!("../functions/SentinelWebhook/function.json")),
    ("HuntingExport/function.json", include_str!("../functions/HuntingExport/function.json")),
    ("HuntingStorageExport/function.json", include_str!("../functions/HuntingStorageExport/function.json")),
];

/// The Event Hub function, shipped only with `package --event-hub`: its trigger needs
/// `XDRSYNC_HUNTING_EVENTHUB_NAME` and `XDRSYNC_HUNTING_EVENTHUB_CONNECTION`, which an app without
/// an Event Hub does not have.
pub const EVENT_HUB_FILE: (&str, &str) =
    ("HuntingEventHub/function.json", include_str!("../functions/HuntingEventHub/function.json"));

/// Name of the executable `host.json` starts.
pub const EXECUTABLE: &str = "xdrsync";

/// Writes the app into `out` (created if missing) with `binary` copied in as the executable.
pub fn write_app(out: &Path, binary: &Path) -> anyhow::Result<Vec<PathBuf>> {
    write_app_with(out, binary, false)
}

/// [`write_app`], with the Event Hub function when `event_hub`.
pub fn write_app_with(out: &Path, binary: &Path, event_hub: bool) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let extra = event_hub.then_some(&EVENT_HUB_FILE);
    for (rel, contents) in APP_FILES.iter().chain(extra) {
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

    #[test]
    fn app_has_host_json_and_function_folders_at_its_root() {
        let dir = tempfile::tempdir().unwrap();
        let fake_bin = dir.path().join("bin");
        std::fs::write(&fake_bin, b"#!/bin/sh\n").unwrap();
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
