//! xdrsync, the product: adapters to Microsoft's services and Azure Storage, the use cases that
//! run over them, the Azure Functions edge, the standalone runner and the command line. The pure
//! core (models, mappings, merge, cursors, names, keys, port traits) is the `xdrsync-core` crate,
//! re-exported here as [`domain`], [`ports`] and [`error`].
//!
//! # Layout
//! - [`adapters`]: the real implementations of the ports (Graph, ARM, Logs Ingestion, Tables,
//!   Queues, Entra tokens); the only place HTTP statuses become port errors.
//! - [`usecase`]: poll, reconcile, webhook, health: each reads through the ports, asks the core
//!   what to do, and writes.
//! - [`app`]: builds the concrete ports bundle from a [`config::Config`]; the only place that
//!   knows both.
//! - [`functions`]: the custom-handler edge (invocation envelopes); [`standalone`]: `xdrsync run`;
//!   [`http_api`]: the HTTP serving both share (timeouts, body limit, the public routes).
//! - [`state`], [`records`]: typed sync-state rows over the store port, ETag-guarded.
//! - [`config`]: settings, their audit and parsing, validated at startup.
//! - [`check`]: `xdrsync check`; [`cli`]: `xdrsync hunting` and `xdrsync package`.

pub use xdrsync_core::{domain, error, ports};

pub mod adapters;
pub mod app;
pub mod check;
pub mod check_access;
pub mod check_alerts;
pub mod check_hunting;
pub mod cli;
pub mod config;
pub mod functions;
pub mod http_api;
pub mod metrics;
pub mod ops;
pub mod records;
pub mod retry;
pub mod standalone;
pub mod state;
pub mod telemetry;
pub mod usecase;
