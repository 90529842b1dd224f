//! Call counters per external service, shared by the adapters, read by health and the demo
//! report ("API calls per incident").

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

#[derive(Debug, Default)]
pub struct CallCounters {
    pub graph: AtomicU64,
    pub arm: AtomicU64,
    pub logs: AtomicU64,
    pub entra: AtomicU64,
    pub table: AtomicU64,
    pub queue: AtomicU64,
    /// Log Analytics queries (“Native alerts”).
    pub log_query: AtomicU64,
    /// Not a call: incidents left unmirrored because Microsoft Sentinel created them.
    pub incidents_not_mirrored: AtomicU64,
}

/// A snapshot of [`CallCounters`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallCounts {
    pub graph: u64,
    pub arm: u64,
    pub logs: u64,
    pub entra: u64,
    pub table: u64,
    pub queue: u64,
}

impl CallCounters {
    pub fn shared() -> Arc<Self> {
        Arc::new(Self::default())
    }

    pub fn snapshot(&self) -> CallCounts {
        CallCounts {
            graph: self.graph.load(Ordering::Relaxed),
            arm: self.arm.load(Ordering::Relaxed),
            logs: self.logs.load(Ordering::Relaxed),
            entra: self.entra.load(Ordering::Relaxed),
            table: self.table.load(Ordering::Relaxed),
            queue: self.queue.load(Ordering::Relaxed),
        }
    }
}

/// Increments a counter by one.
pub fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}
