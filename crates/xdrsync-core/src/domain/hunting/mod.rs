//! Advanced-hunting export (ARCHITECTURE.md: “Advanced hunting”), pure: the tables and their
//! columns, the filter language users write, the KQL xdrsync sends, the row mapping into
//! `<Table>_CL`, the cursor rules of the query source and the Streaming API record format.

pub mod cursor;
pub mod filter;
mod filter_eval;
pub mod kql;
pub mod rows;
pub mod schema;
pub mod streaming;
pub mod tables;
