//! Real adapters for the ports: Graph, ARM, Logs Ingestion (reqwest), Table and Queue storage
//! (azure_* 0.21 crates) and tokens (managed identity, app registration). Each owns its wire
//! details; nothing outside `adapters` names reqwest or an azure_* crate.

pub mod auth;
mod azure_err;
pub mod blobs;
pub mod budget;
pub mod cert_assertion;
pub mod clock;
pub mod graph;
pub mod http;
pub mod hunting;
pub mod log_analytics;
pub mod logs;
pub mod odata;
pub mod queue;
pub mod sentinel;
pub mod status;
pub mod storage_auth;
pub mod tables;
pub mod token_refresh;
