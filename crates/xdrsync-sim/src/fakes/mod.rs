//! In-memory fakes of the storage ports, with the real services' concurrency rules (ETag
//! mismatch → conflict, insert of an existing key → conflict, invisible-until-timeout queue
//! messages with dequeue counts), so use-case tests exercise the same branches.

mod memory_queue;
mod memory_store;

pub use memory_queue::MemoryQueue;
pub use memory_store::MemoryStore;
