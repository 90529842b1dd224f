//! The functional core: service models, mapping, the merge, cursors, batching and names.
//! Nothing here does I/O or reads a clock; time is passed in.

pub mod activity;
pub mod alert_claims;
pub mod alert_links;
pub mod alert_pacing;
pub mod alert_triggers;
pub mod alerts;
pub mod batching;
pub mod budget;
pub mod comments;
pub mod cursor;
pub mod defender;
pub mod drift;
pub mod entity_columns;
pub mod failures;
pub mod fields;
pub mod hunting;
pub mod iso_duration;
pub mod keys;
pub mod merge;
pub mod mirror;
pub mod names;
pub mod permissions;
pub mod plan;
pub mod portal;
pub mod redelivery;
pub mod schedule;
pub mod sentinel;
pub mod sync_state;
pub mod tenants;
pub mod time_fmt;
pub mod tolerant;
pub mod work;
pub mod workspace;
pub mod workspace_rules;
