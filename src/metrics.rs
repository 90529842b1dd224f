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
    /// Poller ticks run by this process, and the last and longest one's duration (ms).
    pub poll_ticks: AtomicU64,
    pub poll_last_ms: AtomicU64,
    pub poll_max_ms: AtomicU64,
}

/// The poller's ticks in this process (health details, the tenants benchmark).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PollerCounts {
    pub ticks: u64,
    pub last_tick_ms: u64,
    pub max_tick_ms: u64,
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

    /// Records one finished poller tick.
    pub fn tick(&self, took: std::time::Duration) {
        let ms = took.as_millis() as u64;
        self.poll_ticks.fetch_add(1, Ordering::Relaxed);
        self.poll_last_ms.store(ms, Ordering::Relaxed);
        self.poll_max_ms.fetch_max(ms, Ordering::Relaxed);
    }

    pub fn poller(&self) -> PollerCounts {
        PollerCounts {
            ticks: self.poll_ticks.load(Ordering::Relaxed),
            last_tick_ms: self.poll_last_ms.load(Ordering::Relaxed),
            max_tick_ms: self.poll_max_ms.load(Ordering::Relaxed),
        }
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
