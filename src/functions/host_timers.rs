//! Which enabled feature has no timer in Functions mode. The host resolves a timer's
//! `%SETTING%` schedule from the app settings only (documented for binding expressions; an
//! unset one fails the function's indexing, and the host runs the app without that function).
//! xdrsync's own defaults (`*/30 * * * * *`, `0 */5 * * * *`) never reach the host, so a
//! feature documented as "optional with a default" would silently not run. `serve` reads the
//! function folders it was given and says so at start and in health; `check` says so too.

use std::path::Path;

use crate::config::Config;

/// A timer the host will not run for a feature that is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerGap {
    pub feature: &'static str,
    pub function: &'static str,
    pub setting: &'static str,
    /// The function folder is there but its `%SETTING%` is unset (else: no such folder).
    pub unset: bool,
}

impl std::fmt::Display for TimerGap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.unset {
            write!(
                f,
                "{} does not run in Functions mode: {} is not set, and the host disables the {} timer whose schedule is %{}% (set it in the app settings)",
                self.feature, self.setting, self.function, self.setting
            )
        } else {
            write!(
                f,
                "{} does not run in Functions mode: the app has no {} function (package the app again with this version)",
                self.feature, self.function
            )
        }
    }
}

/// The timers each enabled feature needs: feature, function, schedule setting.
fn needed(cfg: &Config) -> Vec<(&'static str, &'static str, &'static str)> {
    let mut out = vec![("The incident poller", crate::functions::INCIDENT_POLLER, "XDRSYNC_POLL_SCHEDULE")];
    if !cfg.hunting.tables.is_empty() {
        out.push(("The hunting export", crate::functions::HUNTING_EXPORT, "XDRSYNC_HUNTING_SCHEDULE"));
    }
    if !cfg.hunting.storage_tables.is_empty() {
        out.push(("The hunting storage export", crate::functions::HUNTING_STORAGE, "XDRSYNC_HUNTING_SCHEDULE"));
    }
    out
}

/// The gaps, from the settings (`is_set`) and, when known, the functions the host was given
/// (`given`: each function's name and its timer's schedule text).
pub fn gaps(cfg: &Config, is_set: impl Fn(&str) -> bool, given: Option<&[(String, String)]>) -> Vec<TimerGap> {
    let mut out = Vec::new();
    for (feature, function, setting) in needed(cfg) {
        let schedule = given.map(|g| g.iter().find(|(name, _)| name == function).map(|(_, s)| s.as_str()));
        let gap = match schedule {
            // Not shipped: the host knows no such function.
            Some(None) => Some(false),
            // Shipped with a `%SETTING%` schedule (the package's), or unknown: the setting decides.
            Some(Some(s)) if s.trim() != format!("%{setting}%") => None,
            _ => (!is_set(setting)).then_some(true),
        };
        if let Some(unset) = gap {
            out.push(TimerGap { feature, function, setting, unset });
        }
    }
    out
}

/// The timer functions in the host's script root (`AzureWebJobsScriptRoot`, else the working
/// directory the host starts the handler in): each `<Name>/function.json` with a
/// `timerTrigger`, and its schedule. `None` when the root holds no function at all (not run by
/// the host).
pub fn given_functions(root: &Path) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut any = false;
    for entry in std::fs::read_dir(root).ok()?.flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path().join("function.json")) else { continue };
        any = true;
        let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else { continue };
        let timer = json["bindings"].as_array().into_iter().flatten().find(|b| b["type"] == "timerTrigger");
        if let Some(schedule) = timer.and_then(|b| b["schedule"].as_str()) {
            out.push((entry.file_name().to_string_lossy().into_owned(), schedule.to_string()));
        } else {
            out.push((entry.file_name().to_string_lossy().into_owned(), String::new()));
        }
    }
    any.then_some(out)
}

/// The script root `serve` runs in.
pub fn script_root() -> std::path::PathBuf {
    std::env::var_os("AzureWebJobsScriptRoot").map(Into::into).unwrap_or_else(|| ".".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(hunting: bool) -> Config {
        let mut vars = crate::config::tests::base_vars();
        if hunting {
            vars.insert("XDRSYNC_HUNTING_TABLES".into(), "DeviceProcessEvents".into());
        }
        Config::from_vars(&vars).unwrap()
    }

    fn shipped() -> Vec<(String, String)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("functions");
        given_functions(&root).expect("the repository's function folders")
    }

    #[test]
    fn a_hunting_export_without_its_schedule_setting_is_named() {
        let g = gaps(&cfg(true), |k| k == "XDRSYNC_POLL_SCHEDULE", Some(&shipped()));
        assert_eq!(g.len(), 1, "{g:?}");
        assert_eq!((g[0].function, g[0].setting, g[0].unset), ("HuntingExport", "XDRSYNC_HUNTING_SCHEDULE", true));
        assert!(g[0].to_string().contains("XDRSYNC_HUNTING_SCHEDULE is not set"), "{}", g[0]);
        // Set: no gap. Hunting off: its timer is not needed.
        assert!(gaps(&cfg(true), |_| true, Some(&shipped())).is_empty());
        assert!(gaps(&cfg(false), |k| k == "XDRSYNC_POLL_SCHEDULE", Some(&shipped())).is_empty());
    }

    #[test]
    fn the_poller_without_its_setting_and_a_missing_function_are_named() {
        let g = gaps(&cfg(false), |_| false, None);
        assert_eq!(g.len(), 1);
        assert_eq!((g[0].function, g[0].setting), ("IncidentPoller", "XDRSYNC_POLL_SCHEDULE"));
        let without: Vec<(String, String)> = shipped().into_iter().filter(|(n, _)| n != "HuntingExport").collect();
        let g = gaps(&cfg(true), |_| true, Some(&without));
        assert_eq!(g.len(), 1);
        assert!(!g[0].unset && g[0].to_string().contains("no HuntingExport function"), "{}", g[0]);
        // A literal schedule in function.json needs no setting.
        let literal = vec![("IncidentPoller".to_string(), "*/30 * * * * *".to_string())];
        assert!(gaps(&cfg(false), |_| false, Some(&literal)).is_empty());
    }
}
