//! The functional core of xdrsync: what Defender and Sentinel incidents look like, how their
//! fields map, the three-way merge, cursor rules, batching, deterministic names and storage keys,
//! and the ports (traits) through which the product reaches every external system.
//!
//! Nothing in this crate does I/O or reads a clock: time is passed in, and its normal dependency
//! tree has no async runtime, HTTP client or Azure SDK, so I/O creeping in is a compile error.

pub mod domain;
pub mod error;
pub mod ports;
