//! A small Bicep reader for the static tests over `infra/` (tests/infra.rs, tests/infra_deploy.rs):
//! there is no Bicep compiler here, so files are read with a scanner that knows strings,
//! interpolation, comments and nesting, into top-level declarations and their dotted properties.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

/// One source line: the code before any `//` comment, the comment, and the nesting depth
/// (`{`, `[`, `(`) at its start. `depth` is `None` for a line that starts inside a string.
#[derive(Debug)]
pub struct Line {
    pub code: String,
    pub comment: String,
    pub depth: Option<usize>,
}

pub fn scan(src: &str) -> Vec<Line> {
    #[derive(Clone, Copy, PartialEq)]
    enum Frame {
        Str,
        Interp(usize),
        MultiStr,
        BlockComment,
    }
    let chars: Vec<char> = src.chars().collect();
    let mut stack: Vec<Frame> = Vec::new();
    let mut depth = 0usize;
    let mut lines = Vec::new();
    let mut cur = Line { code: String::new(), comment: String::new(), depth: Some(0) };
    let mut in_line_comment = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            lines.push(cur);
            in_line_comment = false;
            let in_code = matches!(stack.last(), None | Some(Frame::Interp(_)));
            cur = Line { code: String::new(), comment: String::new(), depth: in_code.then_some(depth) };
            i += 1;
            continue;
        }
        if in_line_comment {
            cur.comment.push(c);
            i += 1;
            continue;
        }
        match stack.last().copied() {
            Some(Frame::Str) => {
                cur.code.push(c);
                if c == '\\' {
                    if let Some(n) = next {
                        cur.code.push(n);
                    }
                    i += 2;
                    continue;
                }
                if c == '\'' {
                    stack.pop();
                } else if c == '$' && next == Some('{') {
                    cur.code.push('{');
                    stack.push(Frame::Interp(depth));
                    i += 2;
                    continue;
                }
            }
            Some(Frame::MultiStr) => {
                cur.code.push(c);
                if src[char_offset(&chars, i)..].starts_with("'''") {
                    cur.code.push_str("''");
                    stack.pop();
                    i += 3;
                    continue;
                }
            }
            Some(Frame::BlockComment) => {
                if c == '*' && next == Some('/') {
                    stack.pop();
                    i += 2;
                    continue;
                }
            }
            None | Some(Frame::Interp(_)) => {
                if c == '/' && next == Some('/') {
                    in_line_comment = true;
                    i += 2;
                    continue;
                }
                if c == '/' && next == Some('*') {
                    stack.push(Frame::BlockComment);
                    i += 2;
                    continue;
                }
                cur.code.push(c);
                match c {
                    '\'' if src[char_offset(&chars, i)..].starts_with("'''") => {
                        cur.code.push_str("''");
                        stack.push(Frame::MultiStr);
                        i += 3;
                        continue;
                    }
                    '\'' => stack.push(Frame::Str),
                    '{' | '[' | '(' => depth += 1,
                    '}' if stack.last() == Some(&Frame::Interp(depth)) => {
                        stack.pop();
                    }
                    '}' | ']' | ')' => depth = depth.saturating_sub(1),
                    _ => {}
                }
            }
        }
        i += 1;
    }
    lines.push(cur);
    for l in &mut lines {
        l.comment = l.comment.trim().to_string();
    }
    lines
}

pub fn char_offset(chars: &[char], i: usize) -> usize {
    chars[..i].iter().map(|c| c.len_utf8()).sum()
}

#[derive(Debug, Default)]
pub struct Decl {
    /// `resource`, `module`, `param`, `var` or `output`.
    pub kind: String,
    pub name: String,
    /// Resource type without the API version, module path, or param type.
    pub target: String,
    pub existing: bool,
    /// The part after `=` on the header line (a param's default, a var's value).
    pub value: String,
    /// Properties of the body by dotted key path (`location`, `params.location`).
    pub props: Vec<(String, String)>,
}

impl Decl {
    pub fn prop(&self, path: &str) -> Option<&str> {
        self.props.iter().find(|(k, _)| k == path).map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Default)]
pub struct Bicep {
    pub lines: Vec<Line>,
    pub decls: Vec<Decl>,
}

impl Bicep {
    pub fn parse(src: &str) -> Bicep {
        let lines = scan(src);
        let mut decls: Vec<Decl> = Vec::new();
        let mut keys: Vec<String> = Vec::new();
        for line in &lines {
            let code = line.code.trim();
            let Some(depth) = line.depth else { continue };
            if code.is_empty() {
                continue;
            }
            if depth == 0 {
                keys.clear();
                let mut words = code.split_whitespace();
                let kind = words.next().unwrap_or_default();
                if !["resource", "module", "param", "var", "output"].contains(&kind) {
                    continue;
                }
                let name = words.next().unwrap_or_default().to_string();
                let target = match kind {
                    "var" => String::new(),
                    _ => {
                        words.next().unwrap_or_default().trim_matches('\'').split('@').next().unwrap_or_default().into()
                    }
                };
                let value = code.split_once('=').map(|(_, v)| v.trim().to_string()).unwrap_or_default();
                let existing = code.split_whitespace().any(|w| w == "existing");
                decls.push(Decl { kind: kind.into(), name, target, existing, value, props: Vec::new() });
                continue;
            }
            keys.truncate(depth - 1);
            while keys.len() < depth - 1 {
                keys.push(String::new());
            }
            let Some(decl) = decls.last_mut() else { continue };
            match property(code) {
                Some((key, value)) => {
                    keys.push(key.to_string());
                    let path = keys.iter().filter(|k| !k.is_empty()).cloned().collect::<Vec<_>>().join(".");
                    decl.props.push((path, value.to_string()));
                }
                None => keys.push(String::new()),
            }
        }
        Bicep { lines, decls }
    }

    pub fn decl(&self, kind: &str, name: &str) -> Option<&Decl> {
        self.decls.iter().find(|d| d.kind == kind && d.name == name)
    }
}

/// `key: value` (the key an identifier or a quoted name).
pub fn property(code: &str) -> Option<(&str, &str)> {
    let (key, value) = code.split_once(':')?;
    let key = key.trim();
    let bare = key.trim_matches('\'');
    (!bare.is_empty()
        && bare.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$' || c == '{' || c == '}'))
    .then_some((bare, value.trim()))
}

pub fn infra() -> BTreeMap<String, Bicep> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("infra");
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "bicep") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            files.insert(name, Bicep::parse(&std::fs::read_to_string(&path).unwrap()));
        }
    }
    assert!(files.contains_key("main.bicep"), "infra/main.bicep not found in {}", dir.display());
    files
}
