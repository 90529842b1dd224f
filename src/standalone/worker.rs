//! A standalone queue worker, with the Functions host's queue semantics: a received message stays
//! invisible while it is processed; success or a permanent failure deletes it; a retryable
//! failure makes it visible again after the retry delay (`XDRSYNC_QUEUE_VISIBILITY_SECONDS`,
//! host.json `visibilityTimeout`); after the 5th failed dequeue it moves to `<queue>-poison`.
//!
//! A message is received invisible for [`PROCESSING_LEASE`] only, and that is renewed every
//! [`RENEW_EVERY`] while its reconcile runs (Update Message with the pop receipt), so a worker
//! that dies (`kill -9`) delays its messages by at most [`PROCESSING_LEASE`], however long a
//! reconcile may take. On stop, the message in hand gets [`super::STOP_GRACE`] to finish and is
//! otherwise made visible again at once.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::timers::stop_then;
use super::RunnerStats;
use crate::ports::QueueMessage;
use crate::usecase::jobs::{self, QueueVerdict};
use crate::usecase::Ports;

/// The host's default `maxDequeueCount`.
pub const MAX_DEQUEUE_COUNT: u32 = 5;
/// Longest idle wait between receives (host.json `maxPollingInterval`).
const MAX_IDLE: Duration = Duration::from_secs(2);
/// How long a received message stays invisible without a renewal: how long a crash delays it.
pub const PROCESSING_LEASE: Duration = Duration::from_secs(30);
/// How often the invisibility of a message being processed is renewed: three chances before
/// [`PROCESSING_LEASE`] runs out.
pub const RENEW_EVERY: Duration = Duration::from_secs(10);

pub async fn run(s: Arc<Ports>, n: usize, stats: Arc<RunnerStats>, mut stopped: watch::Receiver<bool>) {
    let queue = s.config.queue_name.clone();
    let mut idle = Duration::from_millis(100);
    loop {
        if *stopped.borrow() {
            return;
        }
        let received = tokio::select! {
            r = s.queue.receive(&queue, 1, PROCESSING_LEASE) => r,
            _ = stopped.wait_for(|v| *v) => return,
        };
        match received {
            Ok(messages) if !messages.is_empty() => {
                idle = Duration::from_millis(100);
                for m in messages {
                    if *stopped.borrow() {
                        give_back(&s, &queue, &m).await;
                        continue;
                    }
                    handle(&s, &queue, m, &stats, &mut stopped).await;
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
                tokio::select! {
                    _ = tokio::time::sleep(MAX_IDLE) => {}
                    _ = stopped.wait_for(|v| *v) => return,
                }
            }
        }
    }
}

/// Keeps `m` invisible while it is processed: every [`RENEW_EVERY`], another
/// [`PROCESSING_LEASE`] (the answer's new pop receipt replaces the old one, which Update Message
/// invalidates). Never returns; after a failed renewal it stops renewing (the message may
/// reappear and be processed twice, which reconciling allows).
async fn keep_invisible(s: &Ports, queue: &str, m: &mut QueueMessage) {
    loop {
        tokio::time::sleep(RENEW_EVERY).await;
        match s.queue.extend_visibility(queue, m, PROCESSING_LEASE).await {
            Ok(receipt) => m.pop_receipt = receipt,
            Err(e) => {
                tracing::warn!(queue.message.id = %m.id, error.message = %e, "could not keep the message invisible; it may be processed twice");
                return std::future::pending().await;
            }
        }
    }
}

/// Makes `m` visible again at once (a stopping worker's message in hand).
async fn give_back(s: &Ports, queue: &str, m: &QueueMessage) {
    match tokio::time::timeout(super::CLEANUP_BOUND, s.queue.release(queue, m, Duration::ZERO)).await {
        Ok(Ok(())) => tracing::info!(queue.message.id = %m.id, "stopping: gave the message back to the queue"),
        Ok(Err(e)) => {
            tracing::warn!(queue.message.id = %m.id, error.message = %e, "stopping: could not give the message back; it reappears within {} s", PROCESSING_LEASE.as_secs())
        }
        Err(_) => {
            tracing::warn!(queue.message.id = %m.id, "stopping: storage did not answer; the message reappears within {} s", PROCESSING_LEASE.as_secs())
        }
    }
}

async fn handle(s: &Ports, queue: &str, mut m: QueueMessage, stats: &RunnerStats, stopped: &mut watch::Receiver<bool>) {
    let (text, id, dequeue_count) = (m.text.clone(), m.id.clone(), u64::from(m.dequeue_count));
    let verdict = {
        let work = jobs::sync_message(s, &text, dequeue_count, &id);
        tokio::select! {
            v = work => Some(v),
            () = keep_invisible(s, queue, &mut m) => None,
            () = stop_then(stopped, super::STOP_GRACE) => None,
        }
    };
    let Some(verdict) = verdict else {
        give_back(s, queue, &m).await;
        return;
    };
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
