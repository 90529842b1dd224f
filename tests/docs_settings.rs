//! The reference cannot drift from the binary: every `XDRSYNC_*` setting the product's code reads
//! is in the typo check's list (`config::audit::KNOWN_SETTINGS`) and documented in
//! docs/configuration.md, every listed or documented one is read, and docs/commands.md documents
//! exactly the commands `xdrsync --help` offers.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use xdrsync::config::audit::{KNOWN_PREFIXES, KNOWN_SETTINGS};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `XDRSYNC_` names quoted in `text` (a setting name is an upper-case identifier).
fn quoted_settings(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (at, _) in text.match_indices("\"XDRSYNC_") {
        let rest = &text[at + 1..];
        let end =
            rest.find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')).unwrap_or(rest.len());
        if rest[end..].starts_with('"') {
            names.insert(rest[..end].to_string());
        }
    }
    names
}

/// Setting names in backquotes in `text`.
fn documented_settings(text: &str) -> BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("XDRSYNC_"))
        .map(|s| s.split(['=', ' ', '<']).next().unwrap_or(s).to_string())
        .collect()
}

/// The quoted names of the product's non-test code (`src/`, up to each file's test module) and of
/// the function bindings.
fn read_by_code() -> BTreeSet<String> {
    let mut files = Vec::new();
    rust_files(&repo().join("src"), &mut files);
    let mut names = BTreeSet::new();
    for f in files.iter().filter(|f| !f.ends_with("config/audit.rs") && !f.to_string_lossy().ends_with("_tests.rs")) {
        let text = std::fs::read_to_string(f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        names.extend(quoted_settings(code));
    }
    // Settings the Functions host reads for xdrsync: a binding's `%NAME%` and `connection`.
    for dir in std::fs::read_dir(repo().join("functions")).unwrap() {
        let text = std::fs::read_to_string(dir.unwrap().path().join("function.json")).unwrap_or_default();
        names.extend(quoted_settings(&text.replace("\"%XDRSYNC_", "\"XDRSYNC_").replace("%\"", "\"")));
    }
    names
}

fn known(name: &str) -> bool {
    KNOWN_SETTINGS.contains(&name) || KNOWN_PREFIXES.iter().any(|p| name.starts_with(p))
}

#[test]
fn the_finders_read_quoted_and_documented_names_only() {
    let code = r#"v.get("XDRSYNC_A_B") "XDRSYNC_" x "XDRSYNC_LOWER_x" "#;
    assert_eq!(quoted_settings(code), BTreeSet::from(["XDRSYNC_A_B".to_string(), "XDRSYNC_".to_string()]));
    let doc = "| `XDRSYNC_X` | … `XDRSYNC_Y=1` and `XDRSYNC_Z <n>`, not XDRSYNC_W |";
    assert_eq!(documented_settings(doc), BTreeSet::from(["XDRSYNC_X", "XDRSYNC_Y", "XDRSYNC_Z"].map(String::from)));
}

#[test]
fn every_setting_read_is_known_documented_and_every_known_one_is_read() {
    let read = read_by_code();
    let doc = std::fs::read_to_string(repo().join("docs/configuration.md")).unwrap();
    let documented = documented_settings(&doc);
    let mut problems = Vec::new();
    for name in read.iter().filter(|n| n.as_str() != "XDRSYNC_" && !KNOWN_PREFIXES.contains(&n.as_str())) {
        if !known(name) {
            problems.push(format!(
                "{name} is read but not in config::audit::KNOWN_SETTINGS (the typo check would flag it)"
            ));
        }
        if !known(name) || KNOWN_SETTINGS.contains(&name.as_str()) && !documented.contains(name) {
            problems.push(format!("{name} is read but not documented in docs/configuration.md"));
        }
    }
    for name in KNOWN_SETTINGS {
        if !read.contains(*name) {
            problems.push(format!("{name} is in KNOWN_SETTINGS but no code reads it"));
        }
    }
    for name in &documented {
        if !known(name) && !KNOWN_PREFIXES.iter().any(|p| p.starts_with(name.as_str())) {
            problems.push(format!("docs/configuration.md documents {name}, which xdrsync does not read"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_commands_documented_are_the_commands_the_binary_offers() {
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_xdrsync")).arg("--help").output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let offered: BTreeSet<String> = help
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(String::from)
        .collect();
    assert!(offered.len() >= 10, "read the command list from --help: {help}");
    let doc = std::fs::read_to_string(repo().join("docs/commands.md")).unwrap();
    let documented: BTreeSet<String> = doc
        .split("`xdrsync ")
        .skip(1)
        .filter_map(|s| s.split(|c: char| !c.is_ascii_lowercase()).next())
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect();
    let table: BTreeSet<String> = doc
        .lines()
        .filter(|l| l.starts_with("| `xdrsync "))
        .filter_map(|l| l["| `xdrsync ".len()..].split(|c: char| !c.is_ascii_lowercase()).next())
        .map(String::from)
        .collect();
    let undocumented: Vec<&String> = offered.difference(&table).collect();
    assert!(undocumented.is_empty(), "commands without a row in docs/commands.md: {undocumented:?}");
    let unknown: Vec<&String> = documented.difference(&offered).collect();
    assert!(unknown.is_empty(), "docs/commands.md names commands the binary does not have: {unknown:?}");
}
