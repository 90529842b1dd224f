//! Served health (`GET /api/health`, the Functions `Health` function): one assessment per
//! [`TTL`] however many requests arrive (anonymous traffic costs storage nothing extra);
//! concurrent requests wait for the one assessment in flight rather than starting their own.
//! While storage does not answer, the answer comes within 2 s (each storage call is bounded)
//! and is `unhealthy` with the last facts gathered while it did (`factsFrom` says when).
//! `serve` adds what it knows at start: enabled features the Functions host has no timer for.

use std::sync::Mutex;

use time::OffsetDateTime;
use tokio::time::{Duration, Instant};

use crate::usecase::health::{assess_now, Health};
use crate::usecase::Ports;

/// How long one assessment answers health requests.
pub const TTL: Duration = Duration::from_secs(5);

pub struct HealthCache {
    ttl: Duration,
    entry: tokio::sync::Mutex<Entry>,
    /// Reasons known at start that make the service `unhealthy` (`host_timers`).
    notes: Mutex<Vec<String>>,
}

#[derive(Default)]
struct Entry {
    /// The last assessment (with details) and when it was made.
    last: Option<(Instant, Health)>,
    /// The last assessment made while storage answered, and its time.
    last_known: Option<(OffsetDateTime, Health)>,
}

impl Default for HealthCache {
    fn default() -> Self {
        Self::with_ttl(TTL)
    }
}

impl HealthCache {
    /// A cache whose assessments answer for `ttl` (tests pass less than [`TTL`]).
    pub fn with_ttl(ttl: Duration) -> Self {
        Self { ttl, entry: Default::default(), notes: Mutex::new(Vec::new()) }
    }

    /// Reasons that hold for the life of the process (set once by `serve`).
    pub fn set_notes(&self, notes: Vec<String>) {
        *self.notes.lock().expect("lock") = notes;
    }
}

/// The served health report; `with_details` for callers that presented the webhook key.
pub async fn current(s: &Ports, with_details: bool) -> Health {
    let cache = &s.health_cache;
    let mut health = {
        let mut entry = cache.entry.lock().await;
        match &entry.last {
            Some((at, h)) if at.elapsed() < cache.ttl => h.clone(),
            _ => {
                let (fresh, facts) = assess_now(s, true).await;
                let now = s.clock.now();
                let h = if facts.storage_reachable {
                    entry.last_known = Some((now, fresh.clone()));
                    fresh
                } else {
                    match &entry.last_known {
                        Some((at, known)) => unreachable_with(known, *at),
                        None => fresh,
                    }
                };
                entry.last = Some((Instant::now(), h.clone()));
                h
            }
        }
    };
    let notes = cache.notes.lock().expect("lock").clone();
    if !notes.is_empty() {
        health.status = "unhealthy";
        health.reasons.splice(0..0, notes);
    }
    if !with_details {
        health.details = None;
    }
    health
}

/// The last known report, `unhealthy` because storage does not answer now.
fn unreachable_with(known: &Health, at: OffsetDateTime) -> Health {
    let mut h = known.clone();
    h.status = "unhealthy";
    h.reasons.retain(|r| r != UNREACHABLE);
    h.reasons.insert(0, UNREACHABLE.into());
    if let Some(d) = h.details.as_mut() {
        d.storage_reachable = false;
    }
    h.facts_from = Some(at);
    h
}

const UNREACHABLE: &str = "storage is unreachable";
