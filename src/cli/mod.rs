//! The command line's own work: what `xdrsync hunting` prints and what `xdrsync package`
//! assembles. The operator commands that are use cases live in `ops/`; the binary's dispatch and
//! output are `main.rs` and `cli/commands.rs`.

pub mod hunting;
pub mod package;
