//! Logging setup: JSON lines (for the Functions host and containers) or human-readable text,
//! filtered by `RUST_LOG` (default `info`). Secrets never reach a log line because config types
//! redact themselves and adapters never log bodies or headers.

use tracing_subscriber::EnvFilter;

pub fn init(json: bool) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = if json { builder.json().flatten_event(true).try_init() } else { builder.compact().try_init() };
}
