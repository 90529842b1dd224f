//! xdrsync keeps Microsoft Defender XDR and Microsoft Sentinel incidents in one state.
//!
//! # Layout
//! - [`domain`]: the functional core (service models, names, cursors, batching, work items);
//!   pure, no I/O, no clock.
//! - [`ports`]: one trait per external system; [`adapters`] hold the real implementations and
//!   [`fakes`] the in-memory ones.
//! - [`state`]: typed sync-state records over the store port, with ETag-guarded updates.
//! - [`error`] and [`retry`]: the one status classification and the one retry policy.
//! - [`config`], [`storage_conn`], [`schedule`]: settings, validated at startup.
//! - [`sim`]: the simulator of Entra, Graph, Sentinel (ARM) and Logs Ingestion.
//! - [`check`]: `xdrsync check`, configuration and token diagnostics.

pub mod adapters;
pub mod app;
pub mod bench;
pub mod check;
pub mod config;
pub mod demo;
pub mod devtools;
pub mod domain;
pub mod error;
pub mod fakes;
pub mod functions;
pub mod metrics;
pub mod package;
pub mod ports;
pub mod records;
pub mod retry;
pub mod schedule;
pub mod sim;
pub mod standalone;
pub mod state;
pub mod storage_conn;
pub mod telemetry;
pub mod usecase;
