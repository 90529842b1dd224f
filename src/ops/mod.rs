//! The operator commands (`status`, `reconcile`, `backfill`, `connect`) and the settings files
//! every command reads. Each command is a use case over `usecase::Ports` plus its text form;
//! `main.rs` only parses arguments and prints. Tenant-specific work sits in one function per
//! command (`for_tenant` or `run`), so it can iterate tenants.

pub mod backfill;
pub mod connect;
pub mod connect_rule;
pub mod reconcile;
pub mod settings_file;
pub mod status;
