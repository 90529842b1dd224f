//! Logging setup: JSON lines (for the Functions host and containers) or human-readable text,
//! filtered by `RUST_LOG` (default `info`), without ANSI colours unless writing to a terminal.
//!
//! Secrets never reach a log line: config types redact themselves, our adapters never log bodies
//! or headers, and every line passes through [`redact`] on its way out, because dependencies do
//! log headers at debug/trace (azure_core prints a Storage request's `Authorization: SharedKey
//! account:signature`).
//!
//! Text lines are one event each: control characters inside an event (a newline in an incident
//! title, a carriage return in an error from a service) are written escaped (`\n`, `\u{1b}`), so
//! no value can forge or hide a log line. JSON lines are escaped by JSON itself.

use std::io::{IsTerminal, Write};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = !json && std::io::stderr().is_terminal();
    let escape = match (json, ansi) {
        (true, _) => Escape::None,
        (false, false) => Escape::Controls,
        // On a terminal the formatter's own colour codes must pass.
        (false, true) => Escape::ControlsButEsc,
    };
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(RedactingStderr { escape });
    let _ = if json { builder.json().flatten_event(true).try_init() } else { builder.compact().try_init() };
}

/// Credential schemes whose value must never be printed.
const SCHEMES: [&str; 4] = ["SharedKey ", "SharedKeyLite ", "Bearer ", "Basic "];
/// Query parameters that carry a credential (SAS signatures, codes).
const SECRET_PARAMS: [&str; 3] = ["sig=", "client_secret=", "code="];

/// Masks the value after every credential scheme and secret parameter in `line`.
pub fn redact(line: &str) -> String {
    let mut out = line.to_string();
    for marker in SCHEMES.iter().chain(SECRET_PARAMS.iter()) {
        let mut from = 0;
        while let Some(at) = out[from..].find(marker).map(|i| i + from) {
            let start = at + marker.len();
            let end = out[start..]
                .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | ',' | '}' | ']' | '&' | '\\'))
                .map_or(out.len(), |i| i + start);
            if end > start {
                out.replace_range(start..end, "[redacted]");
            }
            from = start + "[redacted]".len().min(out.len() - start);
        }
    }
    out
}

/// Which characters of a text event are written escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escape {
    /// None (JSON lines escape their own).
    None,
    /// Every control character but a tab, and the Unicode line and paragraph separators.
    Controls,
    /// As [`Escape::Controls`], but ESC passes (the formatter's colours on a terminal).
    ControlsButEsc,
}

/// One event's text with its control characters escaped; its final newline stays.
pub fn escape_controls(event: &str, escape: Escape) -> String {
    if escape == Escape::None {
        return event.to_string();
    }
    let (body, end) = match event.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (event, ""),
    };
    let mut out = String::with_capacity(event.len());
    for c in body.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push(c),
            '\u{1b}' if escape == Escape::ControlsButEsc => out.push(c),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') => {
                out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push_str(end);
    out
}

/// Standard error, one redacted (and, for text, escaped) event at a time.
struct RedactingStderr {
    escape: Escape,
}

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = Redacting<std::io::Stderr>;
    fn make_writer(&'a self) -> Self::Writer {
        Redacting { inner: std::io::stderr(), buf: Vec::new(), escape: self.escape }
    }
}

/// Buffers one formatted event and writes it redacted when dropped (the formatter writes each
/// event through its own writer).
pub struct Redacting<W: Write> {
    inner: W,
    buf: Vec<u8>,
    escape: Escape,
}

impl<W: Write> Redacting<W> {
    pub fn new(inner: W, escape: Escape) -> Self {
        Self { inner, buf: Vec::new(), escape }
    }
}

impl<W: Write> Write for Redacting<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let text = redact(&escape_controls(&String::from_utf8_lossy(&self.buf), self.escape));
            self.inner.write_all(text.as_bytes())?;
            self.buf.clear();
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for Redacting<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_headers_and_urls_are_masked() {
        let line = r#"DEBUG azure_core: request headers={"authorization": "SharedKey devstoreaccount1:Zm9vYmFy+/=", "x-ms-date": "Sun"} url=https://a.blob.core.windows.net/c?sv=1&sig=abc%2Fdef&se=2"#;
        let out = redact(line);
        assert!(!out.contains("Zm9vYmFy") && !out.contains("abc%2Fdef"), "{out}");
        assert!(out.contains("SharedKey [redacted]") && out.contains("sig=[redacted]&se=2"), "{out}");
        assert!(out.contains("x-ms-date"), "the rest of the line stays");
        let bearer = redact("authorization: Bearer eyJ0eXAi.eyJhdWQi.c2ln, next");
        assert_eq!(bearer, "authorization: Bearer [redacted], next");
        assert_eq!(redact("nothing secret here"), "nothing secret here");
    }

    #[test]
    fn the_writer_redacts_each_event() {
        let mut sink = Vec::new();
        {
            let mut w = Redacting::new(&mut sink, Escape::Controls);
            w.write_all(b"TRACE header Authorization: SharedKey acct:c2VjcmV0\n").unwrap();
        }
        let text = String::from_utf8(sink).unwrap();
        assert_eq!(text, "TRACE header Authorization: SharedKey [redacted]\n");
    }

    #[test]
    fn a_value_with_line_breaks_cannot_forge_a_text_line() {
        let forged = " INFO xdrsync: polled\n ERROR xdrsync: forged\r\u{1b}[2K\u{2028}x\ttab\n";
        let out = escape_controls(forged, Escape::Controls);
        assert_eq!(out, " INFO xdrsync: polled\\n ERROR xdrsync: forged\\r\\u{1b}[2K\\u{2028}x\ttab\n");
        assert_eq!(out.lines().count(), 1, "{out}");
        let coloured = escape_controls("\u{1b}[32m INFO\u{1b}[0m a\nb\n", Escape::ControlsButEsc);
        assert_eq!(coloured, "\u{1b}[32m INFO\u{1b}[0m a\\nb\n");
        assert_eq!(escape_controls("{\"a\":\"b\\n\"}\n", Escape::None), "{\"a\":\"b\\n\"}\n");
        // Through the writer, as every event goes out.
        let mut sink = Vec::new();
        {
            let mut w = Redacting::new(&mut sink, Escape::Controls);
            w.write_all(b"WARN title=a\nERROR fake\n").unwrap();
        }
        assert_eq!(String::from_utf8(sink).unwrap(), "WARN title=a\\nERROR fake\n");
    }
}
