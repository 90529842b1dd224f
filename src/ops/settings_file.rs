//! Settings files for the command line: the `Values` of a Functions `local.settings.json` and
//! `KEY=VALUE` env files. Parsing and precedence are pure; [`apply`] puts the result into the
//! process environment before anything reads it. Precedence: the environment, then
//! `--env-file`, then `local.settings.json` (`--settings FILE`, or the one in the current
//! directory).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A settings file that cannot be used, naming the file and the place.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{file}: {message}")]
pub struct SettingsFileError {
    pub file: String,
    pub message: String,
}

/// The `Values` of a `local.settings.json`. Values must be strings (numbers and booleans are
/// taken as their text, as the Functions tools do); anything else names the key.
pub fn parse_local_settings(text: &str) -> Result<BTreeMap<String, String>, String> {
    let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not valid JSON: {e}"))?;
    let Some(obj) = doc.as_object() else { return Err("must be a JSON object with a \"Values\" object".into()) };
    if obj.get("IsEncrypted").and_then(serde_json::Value::as_bool) == Some(true) {
        return Err("IsEncrypted is true: decrypt it first (func settings decrypt)".into());
    }
    let values = match obj.get("Values") {
        None => return Ok(BTreeMap::new()),
        Some(serde_json::Value::Object(v)) => v,
        Some(_) => return Err("\"Values\" must be an object of strings".into()),
    };
    values
        .iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => return Err(format!("Values.{k} must be a string")),
            };
            Ok((k.clone(), text))
        })
        .collect()
}

/// `KEY=VALUE` lines: blank lines and `#` comments skipped, an optional `export ` prefix, a value
/// in matching single or double quotes taken verbatim inside them (no escapes, no expansion).
pub fn parse_env_file(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").map(str::trim_start).unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!("line {}: expected KEY=VALUE", n + 1));
        };
        let key = key.trim();
        let valid_key = !key.is_empty()
            && !key.starts_with(|c: char| c.is_ascii_digit())
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_key {
            return Err(format!("line {}: '{key}' is not a setting name (letters, digits and _)", n + 1));
        }
        let value = value.trim();
        let value = match value.chars().next() {
            Some(q @ ('"' | '\'')) => match value[1..].strip_suffix(q) {
                Some(inner) => inner,
                None => return Err(format!("line {}: the value of {key} has no closing {q}", n + 1)),
            },
            _ => value,
        };
        out.insert(key.to_string(), value.to_string());
    }
    Ok(out)
}

/// Where settings come from besides the environment.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// `--settings FILE`; without it, `local.settings.json` in `cwd` when it exists.
    pub settings: Option<PathBuf>,
    /// `--env-file FILE`.
    pub env_file: Option<PathBuf>,
}

/// The settings the files add: each file's keys, the env file over `local.settings.json`, and
/// none that the environment already sets (`is_set`).
pub fn load(
    sources: &Sources,
    cwd: &Path,
    is_set: impl Fn(&str) -> bool,
) -> Result<BTreeMap<String, String>, SettingsFileError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path)
            .map_err(|e| SettingsFileError { file: path.display().to_string(), message: format!("cannot read: {e}") })
    };
    let mut merged = BTreeMap::new();
    let local = match &sources.settings {
        Some(p) => Some(p.clone()),
        None => Some(cwd.join("local.settings.json")).filter(|p| p.is_file()),
    };
    if let Some(path) = local {
        let values = parse_local_settings(&read(&path)?)
            .map_err(|message| SettingsFileError { file: path.display().to_string(), message })?;
        merged.extend(values);
    }
    if let Some(path) = &sources.env_file {
        let values = parse_env_file(&read(path)?)
            .map_err(|message| SettingsFileError { file: path.display().to_string(), message })?;
        merged.extend(values);
    }
    merged.retain(|k, _| !is_set(k));
    Ok(merged)
}

/// Loads the files and sets what they add in the process environment. Call before any thread
/// starts (setting the environment is not thread-safe).
pub fn apply(sources: &Sources) -> Result<Vec<String>, SettingsFileError> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let added = load(sources, &cwd, |k| std::env::var_os(k).is_some())?;
    for (k, v) in &added {
        std::env::set_var(k, v);
    }
    Ok(added.into_keys().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_settings_values_are_read_and_non_strings_named() {
        let v = parse_local_settings(
            r#"{"IsEncrypted": false, "Values": {"A": "1", "XDRSYNC_WORKERS": 4, "B": true}, "Host": {}}"#,
        )
        .unwrap();
        assert_eq!(v["A"], "1");
        assert_eq!(v["XDRSYNC_WORKERS"], "4");
        assert_eq!(v["B"], "true");
        assert!(parse_local_settings(r#"{"Values": {"A": {"x": 1}}}"#).unwrap_err().contains("Values.A"));
        assert!(parse_local_settings(r#"{"Values": ["A"]}"#).unwrap_err().contains("\"Values\""));
        assert!(parse_local_settings("{\"Values\": {").unwrap_err().contains("not valid JSON"));
        assert!(parse_local_settings(r#"{"IsEncrypted": true, "Values": {}}"#).unwrap_err().contains("decrypt"));
        assert!(parse_local_settings(r#"{"IsEncrypted": false}"#).unwrap().is_empty());
    }

    #[test]
    fn env_file_lines_comments_quotes_and_errors_with_line_numbers() {
        let v = parse_env_file(
            "# comment\n\nexport A=1\nB = 'two words'\nC=\"x=y\"\nD=\nE=a#b\nAzureWebJobsStorage=UseDevelopmentStorage=true\n",
        )
        .unwrap();
        assert_eq!(v["A"], "1");
        assert_eq!(v["B"], "two words");
        assert_eq!(v["C"], "x=y");
        assert_eq!(v["D"], "");
        assert_eq!(v["E"], "a#b");
        assert_eq!(v["AzureWebJobsStorage"], "UseDevelopmentStorage=true");
        assert_eq!(parse_env_file("A=1\nnot a setting\n").unwrap_err(), "line 2: expected KEY=VALUE");
        assert!(parse_env_file("1A=1").unwrap_err().contains("not a setting name"));
        assert!(parse_env_file("A='open").unwrap_err().contains("no closing '"));
    }

    #[test]
    fn environment_over_env_file_over_local_settings() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("local.settings.json"),
            r#"{"Values": {"A": "local", "B": "local", "C": "local"}}"#,
        )
        .unwrap();
        let env = dir.path().join("x.env");
        std::fs::write(&env, "B=envfile\nC=envfile\n").unwrap();
        let sources = Sources { settings: None, env_file: Some(env) };
        let got = load(&sources, dir.path(), |k| k == "C").unwrap();
        assert_eq!(got.get("A").map(String::as_str), Some("local"));
        assert_eq!(got.get("B").map(String::as_str), Some("envfile"));
        assert_eq!(got.get("C"), None, "the environment wins");
        // No file in the directory and no flag: nothing added.
        let empty = tempfile::tempdir().unwrap();
        assert!(load(&Sources::default(), empty.path(), |_| false).unwrap().is_empty());
        // A file named but missing is an error naming it.
        let missing = Sources { settings: Some(empty.path().join("nope.json")), env_file: None };
        let e = load(&missing, empty.path(), |_| false).unwrap_err();
        assert!(e.file.ends_with("nope.json") && e.message.contains("cannot read"), "{e}");
    }
}
