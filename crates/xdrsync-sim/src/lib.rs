//! Development only, never shipped: everything xdrsync's tests and demo need that production does
//! not.
//!
//! - [`sim`]: one loopback server standing in for Entra ID, Defender (Graph), Sentinel (ARM) and
//!   Logs Ingestion, strict where the real services are, with a control API.
//! - [`fakes`]: in-memory implementations of the storage ports, for unit tests.
//! - [`functions_host`]: the Azure Functions host's side of the custom-handler protocol (queue
//!   trigger with host.json's semantics, timer invocations), driving `xdrsync serve`'s router.
//! - [`azurite`]: Azurite (Microsoft's Storage emulator) as a child process on free ports.
//! - [`demo`], [`bench`] and [`bench_tenants`]: the whole product on one machine, with its figures.

pub mod azurite;
pub mod bench;
pub mod bench_edits;
pub mod bench_hunting;
pub mod bench_soak;
pub mod bench_tenants;
pub mod call_kinds;
pub mod demo;
pub mod fakes;
pub mod functions_host;
pub mod sim;
pub mod streaming;

/// Initialises text logging for the simulator's own commands and tests (`RUST_LOG`, default warn).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}
