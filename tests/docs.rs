//! The repository's documentation stays true and self-contained:
//!
//! - no tracked file points outside the repository (at the original design brief or its
//!   reference notes, which are not part of it);
//! - every section of `docs/ARCHITECTURE.md` that a Rust source cites exists as a `## ` heading;
//! - every `scripts/*.sh` the README tells people to run exists (and is executable).
//!
//! The checks scan whatever is tracked when they run, so they hold for code added later too.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every tracked file (relative path), from `git ls-files` at the repository root.
fn tracked_files() -> Vec<PathBuf> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo())
        .args(["ls-files", "-z"])
        .output()
        .expect("git must be installed to list the repository's files");
    assert!(out.status.success(), "git ls-files failed: {}", String::from_utf8_lossy(&out.stderr));
    let files: Vec<PathBuf> = out
        .stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
        .collect();
    assert!(!files.is_empty(), "git ls-files listed nothing; is {} a git checkout?", repo().display());
    files
}

/// Reads a tracked file; `None` when it is deleted in the working tree or not a regular file.
fn read(rel: &Path) -> Option<Vec<u8>> {
    std::fs::read(repo().join(rel)).ok()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    let n = needle.as_bytes();
    haystack.windows(n.len()).any(|w| w == n)
}

/// Strings that mean "look outside this repository". Assembled from pieces so that this file
/// does not contain them itself.
fn outside_pointers() -> Vec<String> {
    vec![
        ["..", "/shared"].concat(),
        ["shared", "/reference"].concat(),
        ["DESIGN", ".md"].concat(),
        ["DESIGN", " §"].concat(),
        ["api", "-facts"].concat(),
    ]
}

#[test]
fn no_tracked_file_points_outside_the_repository() {
    let skipped = ["package-lock.json", "Cargo.lock"];
    let needles = outside_pointers();
    let mut found = Vec::new();
    for rel in tracked_files() {
        if rel.file_name().and_then(|n| n.to_str()).is_some_and(|n| skipped.contains(&n)) {
            continue;
        }
        let Some(bytes) = read(&rel) else { continue };
        for n in &needles {
            if contains(&bytes, n) {
                found.push(format!("{}: contains `{n}`", rel.display()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the repository must be self-contained; write the fact into docs/ARCHITECTURE.md and point there:\n{}",
        found.join("\n")
    );
}

/// The prefix of a citation in a source comment, assembled so this file cites nothing itself.
fn citation_prefix() -> String {
    ["ARCHITECTURE", ".md: "].concat()
}

const OPEN: char = '\u{201C}'; // “
const CLOSE: char = '\u{201D}'; // ”

/// Joins a title that a comment wrapped over lines: drops the line break, the next line's comment
/// marker and surrounding blanks, and collapses runs of whitespace.
fn normalize_title(raw: &str) -> String {
    raw.lines()
        .map(|l| l.trim().trim_start_matches("//!").trim_start_matches("///").trim_start_matches("//").trim())
        .collect::<Vec<_>>()
        .join(" ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Section titles cited in `text`: after each citation prefix, every “…” in a list like
/// `“A”, “B” and “C”` (the list may wrap over comment lines).
fn cited_titles(text: &str) -> Vec<String> {
    let prefix = citation_prefix();
    let mut titles = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(&prefix) {
        rest = &rest[at + prefix.len()..];
        let mut cursor = rest;
        while let Some((body, end)) = cursor.strip_prefix(OPEN).and_then(|b| b.find(CLOSE).map(|e| (b, e))) {
            titles.push(normalize_title(&body[..end]));
            cursor = &body[end + CLOSE.len_utf8()..];
            // Between two titles of one citation: commas, "and", blanks, line breaks, comment markers.
            let gap = |s: &'_ str| -> usize {
                s.len() - s.trim_start_matches(|c: char| c == ',' || c.is_whitespace() || c == '/' || c == '!').len()
            };
            let mut next = &cursor[gap(cursor)..];
            if let Some(after_and) = next.strip_prefix("and").filter(|a| a.starts_with(char::is_whitespace)) {
                next = &after_and[gap(after_and)..];
            }
            if !next.starts_with(OPEN) {
                break;
            }
            cursor = next;
        }
    }
    titles
}

fn architecture_headings() -> BTreeSet<String> {
    let path = repo().join("docs/ARCHITECTURE.md");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    text.lines().filter_map(|l| l.strip_prefix("## ")).map(|t| t.trim().to_string()).collect()
}

#[test]
fn citation_parser_reads_lists_and_wrapped_titles() {
    let p = citation_prefix();
    let src = format!(
        "//! a ({p}{OPEN}One{CLOSE}, {OPEN}Two{CLOSE}) x\n//! b {p}{OPEN}Three{CLOSE} and\n//! {OPEN}Four\n//! words{CLOSE}: y {OPEN}not cited{CLOSE}\n"
    );
    assert_eq!(cited_titles(&src), ["One", "Two", "Three", "Four words"]);
    assert!(cited_titles("ARCHITECTURE.md without a colon").is_empty());
}

#[test]
fn every_cited_architecture_section_exists() {
    let headings = architecture_headings();
    assert!(!headings.is_empty(), "docs/ARCHITECTURE.md has no `## ` headings");
    let mut missing = Vec::new();
    for rel in tracked_files() {
        if rel.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let Some(bytes) = read(&rel) else { continue };
        let text = String::from_utf8_lossy(&bytes);
        for title in cited_titles(&text) {
            if !headings.contains(&title) {
                missing.push(format!("{}: cites {OPEN}{title}{CLOSE}", rel.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "citations of sections docs/ARCHITECTURE.md does not have (its `## ` headings are: {}):\n{}",
        headings.iter().map(|h| format!("{OPEN}{h}{CLOSE}")).collect::<Vec<_>>().join(", "),
        missing.join("\n")
    );
}

/// `scripts/<name>.sh` paths mentioned in `text` (with or without a leading `./`).
fn script_paths(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("scripts/") {
        let tail = &rest[at + "scripts/".len()..];
        let name: String =
            tail.chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')).collect();
        if let Some(stem) = name.strip_suffix(".sh").filter(|s| !s.is_empty()) {
            out.insert(format!("scripts/{stem}.sh"));
        }
        rest = tail;
    }
    out
}

#[test]
fn every_script_the_readme_names_exists() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md is readable");
    let scripts = script_paths(&readme);
    assert!(!scripts.is_empty(), "the README names no ./scripts/*.sh; its commands are scripts");
    let mut problems = Vec::new();
    for s in &scripts {
        let path = repo().join(s);
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    if m.permissions().mode() & 0o111 == 0 {
                        problems.push(format!("./{s} is not executable"));
                    }
                }
            }
            _ => problems.push(format!("./{s} does not exist")),
        }
    }
    assert!(problems.is_empty(), "README.md names scripts that cannot run:\n{}", problems.join("\n"));
}

#[test]
fn script_path_finder_reads_readme_forms() {
    let found = script_paths("run `./scripts/demo.sh`, then ./scripts/sim.sh serve; not scripts/ or scripts/x.txt");
    assert_eq!(found.into_iter().collect::<Vec<_>>(), ["scripts/demo.sh", "scripts/sim.sh"]);
}

/// Relative link targets of Markdown `text`: `](target)` with the `#anchor` dropped; web
/// addresses and pure anchors are left out (they do not name a file of the repository).
fn relative_links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = rest[..end].trim();
        let path = target.split('#').next().unwrap_or_default();
        if !path.is_empty() && !path.contains("://") && !path.starts_with("mailto:") {
            out.push(path.to_string());
        }
    }
    out
}

#[test]
fn relative_link_finder_keeps_files_and_drops_web_addresses_and_anchors() {
    let found = relative_links("see [a](docs/a.md#x), [b](https://learn.microsoft.com/x), [c](#here), [d](../d.md)");
    assert_eq!(found, ["docs/a.md", "../d.md"]);
}

/// Every relative link of every tracked Markdown file names a tracked file of this repository:
/// a moved page or a link to a file beside the repository fails here.
#[test]
fn every_markdown_link_resolves_inside_the_repository() {
    let tracked: BTreeSet<PathBuf> = tracked_files().into_iter().collect();
    let mut broken = Vec::new();
    for rel in &tracked {
        if rel.extension().and_then(|e| e.to_str()) != Some("md") {
            continue;
        }
        let Some(bytes) = read(rel) else { continue };
        let dir = rel.parent().unwrap_or(Path::new(""));
        for link in relative_links(&String::from_utf8_lossy(&bytes)) {
            // Resolve `..` lexically: a link may not climb above the repository root.
            let mut parts: Vec<std::ffi::OsString> = Vec::new();
            let mut escapes = false;
            for c in dir.join(&link).components() {
                match c {
                    std::path::Component::ParentDir => escapes |= parts.pop().is_none(),
                    std::path::Component::Normal(p) => parts.push(p.to_os_string()),
                    _ => {}
                }
            }
            let target: PathBuf = parts.iter().collect();
            let is_dir = tracked.iter().any(|t| t.starts_with(&target) && t != &target);
            if escapes || !(tracked.contains(&target) || is_dir) {
                broken.push(format!("{}: ({link})", rel.display()));
            }
        }
    }
    assert!(broken.is_empty(), "Markdown links that name no file of the repository:\n{}", broken.join("\n"));
}
