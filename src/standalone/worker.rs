//! A standalone queue worker, with the Functions host's queue semantics: a received message stays
//! invisible while it is processed; success or a permanent failure deletes it; a retryable
//! failure makes it visible again after the retry delay (`XDRSYNC_QUEUE_VISIBILITY_SECONDS`,
//! host.json `visibilityTimeout`); after the 5th failed dequeue it moves to `<queue>-poison`.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::RunnerStats;
use crate::ports::QueueMessage;
use crate::usecase::jobs::{self, QueueVerdict};
use crate::usecase::Ports;

/// The host's default `maxDequeueCount`.
pub const MAX_DEQUEUE_COUNT: u32 = 5;
/// Longest idle wait between receives (host.json `maxPollingInterval`).
const MAX_IDLE: Duration = Duration::from_secs(2);
/// How long a message stays invisible while one attempt runs (longer than any attempt takes:
/// every call inside is bounded by timeouts and retry limits).
const PROCESSING_LEASE: Duration = Duration::from_secs(600);

pub async fn run(s: Arc<Ports>, n: usize, stats: Arc<RunnerStats>, mut stopped: watch::Receiver<bool>) {
    let queue = s.config.queue_name.clone();
    let mut idle = Duration::from_millis(100);
    loop {
        if *stopped.borrow() {
            return;
        }
        let received = s.queue.receive(&queue, 1, PROCESSING_LEASE).await;
        match received {
            Ok(messages) if !messages.is_empty() => {
                idle = Duration::from_millis(100);
                for m in messages {
                    handle(&s, &queue, m, &stats).await;
                }
            }
            Ok(_) => {
                tokio::select! {
                    _ = tokio::time::sleep(idle) => {}
                    _ = stopped.wait_for(|v| *v) => return,
                }
                idle = (idle * 2).min(MAX_IDLE);
            }
            Err(e) => {
                tracing::warn!(worker = n, error.message = %e, "queue receive failed");
                tokio::time::sleep(MAX_IDLE).await;
            }
        }
    }
}

async fn handle(s: &Ports, queue: &str, m: QueueMessage, stats: &RunnerStats) {
    let verdict = jobs::sync_message(s, &m.text, u64::from(m.dequeue_count), &m.id).await;
    let result = match verdict {
        QueueVerdict::Done(_) | QueueVerdict::Deferred(_) | QueueVerdict::Drop(_) => {
            stats.messages_done.fetch_add(1, Ordering::Relaxed);
            s.queue.delete(queue, &m).await
        }
        QueueVerdict::Retry(_) if m.dequeue_count >= MAX_DEQUEUE_COUNT => {
            stats.messages_poisoned.fetch_add(1, Ordering::Relaxed);
            tracing::error!(queue.message.id = %m.id, queue.dequeue_count = m.dequeue_count, "moving message to the poison queue");
            match s.queue.send(&format!("{queue}-poison"), &m.text).await {
                Ok(()) => s.queue.delete(queue, &m).await,
                Err(e) => Err(e),
            }
        }
        QueueVerdict::Retry(_) => {
            stats.messages_failed.fetch_add(1, Ordering::Relaxed);
            s.queue.release(queue, &m, s.config.queue_visibility).await
        }
    };
    if let Err(e) = result {
        tracing::warn!(queue.message.id = %m.id, error.message = %e, "could not settle the message; it will reappear");
    }
}
