//! Logging setup: JSON lines (for the Functions host and containers) or human-readable text,
//! filtered by `RUST_LOG` (default `info`), without ANSI colours unless writing to a terminal.
//!
//! Secrets never reach a log line: config types redact themselves, our adapters never log bodies
//! or headers, and every line passes through [`redact`] on its way out, because dependencies do
//! log headers at debug/trace (azure_core prints a Storage request's `Authorization: SharedKey
//! account:signature`).

use std::io::{IsTerminal, Write};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = !json && std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(RedactingStderr);
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

/// Standard error, one redacted line at a time.
struct RedactingStderr;

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = Redacting<std::io::Stderr>;
    fn make_writer(&'a self) -> Self::Writer {
        Redacting { inner: std::io::stderr(), buf: Vec::new() }
    }
}

/// Buffers one formatted event and writes it redacted when dropped (the formatter writes each
/// event through its own writer).
pub struct Redacting<W: Write> {
    inner: W,
    buf: Vec<u8>,
}

impl<W: Write> Redacting<W> {
    pub fn new(inner: W) -> Self {
        Self { inner, buf: Vec::new() }
    }
}

impl<W: Write> Write for Redacting<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let text = redact(&String::from_utf8_lossy(&self.buf));
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
            let mut w = Redacting::new(&mut sink);
            w.write_all(b"TRACE header Authorization: SharedKey acct:c2VjcmV0\n").unwrap();
        }
        let text = String::from_utf8(sink).unwrap();
        assert_eq!(text, "TRACE header Authorization: SharedKey [redacted]\n");
    }
}
