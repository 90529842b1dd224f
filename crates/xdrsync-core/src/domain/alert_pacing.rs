//! Pacing and resending trigger rows (docs/native-alerts.md), pure: which pending trigger rows
//! may be sent now so that no rule's run sees more rows than it turns into single alerts, and
//! what to do with a row sent a while ago whose alert was never related.
//!
//! Documented (Learn, “Create near-real-time rules”, “Near-real-time rules”): an NRT rule runs
//! once a minute over the rows ingested in the preceding minute; with one alert per result it
//! makes single alerts for the first 29 results and a 30th alert summarising them all. Not
//! documented: how far apart the ingestion times of rows sent one after the other may fall (Learn
//! gives typical ingestion latency, not a bound). Rows sent within any [`WINDOW`] of each other
//! can meet in one run's one-minute window if their ingestion delays differ by up to
//! `WINDOW - 1 min` ([`JITTER`]); at most [`PER_SHARD_CAP`] per rule within any such window keeps
//! every run at or below 29 results. A run over the cap anyway (larger jitter) is detected from
//! the summary alert or the missing alerts and its rows are sent again ([`resend_decision`]).
//!
//! Ceiling: [`PER_SHARD_CAP`] rows per rule per [`WINDOW`], i.e. 14 alerts/min per rule: 140
//! per minute per workspace with the default 10 rules (`XDRSYNC_ALERT_RULES`), 560 with 40.

use std::collections::BTreeMap;

use time::{Duration, OffsetDateTime};

/// Results an NRT run turns into single alerts (documented: the first 29; a 30th summarises).
pub const NRT_SINGLE_ALERTS: usize = 29;
/// Rows one rule may receive within any [`WINDOW`]: one below 29, so a row resent by a second
/// instance racing this one still leaves the run below the summary.
pub const PER_SHARD_CAP: usize = 28;
/// Ingestion jitter the pacing absorbs (assumed; see the module doc).
pub const JITTER: Duration = Duration::minutes(1);
/// One run's window plus the jitter.
pub const WINDOW: Duration = Duration::minutes(2);
/// The most rules xdrsync deploys: 40 of the workspace's 50 NRT rules (documented limit), so
/// ten stay for the SOC's own.
pub const MAX_RULES: u16 = 40;
/// A sent row whose alert is not related after this long is sent again under a new TriggerId.
/// NRT alerts appear within minutes (documented run every minute; ingestion latency typically
/// under a few minutes, Learn “Log data ingestion time”); 15 minutes leaves room for a slow hour.
pub const RESEND_AFTER: Duration = Duration::minutes(15);
/// Sends of one row before it is recorded as a failure (status and health show it).
pub const MAX_ATTEMPTS: u32 = 5;
/// Health is degraded when the oldest pending trigger waited longer than this: at the ceiling a
/// backlog drains at 14 rows per rule per minute, so an hour means the backlog outgrows it.
pub const PENDING_DEGRADED_AFTER: Duration = Duration::hours(1);

/// Alerts per minute per workspace the pacing lets through with `rules` rules.
pub fn ceiling_per_minute(rules: u16) -> usize {
    usize::from(rules.clamp(1, MAX_RULES)) * PER_SHARD_CAP * 60 / WINDOW.whole_seconds() as usize
}

/// One send recorded for pacing: when, to which rule, how many rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sent {
    pub shard: u16,
    /// Unix seconds.
    pub at: i64,
    pub rows: u32,
}

/// The history entries still inside the window at `now` (older ones no longer count).
pub fn prune(history: &[Sent], now: OffsetDateTime) -> Vec<Sent> {
    let from = (now - WINDOW).unix_timestamp();
    history.iter().copied().filter(|s| s.at > from).collect()
}

/// Which of `pending` (each with its rule shard, oldest first) may be sent now, given what was
/// sent within the window: per shard, at most [`PER_SHARD_CAP`] within any [`WINDOW`]. Indices
/// into `pending`, in order; the rest wait for a later tick.
pub fn pace(history: &[Sent], pending: &[u16], now: OffsetDateTime) -> Vec<usize> {
    let mut used: BTreeMap<u16, usize> = BTreeMap::new();
    for s in prune(history, now) {
        *used.entry(s.shard).or_default() += s.rows as usize;
    }
    let mut out = Vec::new();
    for (i, shard) in pending.iter().enumerate() {
        let n = used.entry(*shard).or_default();
        if *n < PER_SHARD_CAP {
            *n += 1;
            out.push(i);
        }
    }
    out
}

/// What to do with a trigger row already sent whose alert is not related yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resend {
    /// Not due yet: its alert may still come.
    Wait,
    /// Send again under a new TriggerId (summarised, dropped, or never raised).
    Resend,
    /// Sent [`MAX_ATTEMPTS`] times without an alert: record it as a failure.
    GiveUp,
}

/// `summarised`: a summary alert named this row's TriggerId, or several alerts claimed it; then
/// the row is resent at once instead of after [`RESEND_AFTER`].
pub fn resend_decision(sent_at: OffsetDateTime, attempts: u32, summarised: bool, now: OffsetDateTime) -> Resend {
    if !summarised && now - sent_at < RESEND_AFTER {
        Resend::Wait
    } else if attempts >= MAX_ATTEMPTS {
        Resend::GiveUp
    } else {
        Resend::Resend
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(secs: i64) -> OffsetDateTime {
        OffsetDateTime::UNIX_EPOCH + Duration::days(20_000) + Duration::seconds(secs)
    }

    #[test]
    fn a_shard_gets_at_most_its_cap_per_window_and_others_are_not_held_up() {
        let pending: Vec<u16> = std::iter::repeat_n(3, 40).chain(std::iter::repeat_n(5, 4)).collect();
        let now = t(0);
        let go = pace(&[], &pending, now);
        assert_eq!(go.iter().filter(|i| pending[**i] == 3).count(), PER_SHARD_CAP);
        assert_eq!(go.iter().filter(|i| pending[**i] == 5).count(), 4, "shard 5 is not behind shard 3");
        let history = vec![Sent { shard: 3, at: now.unix_timestamp(), rows: PER_SHARD_CAP as u32 }];
        assert!(pace(&history, &[3], now + Duration::seconds(119)).is_empty(), "still inside the window");
        assert_eq!(pace(&history, &[3], now + WINDOW), vec![0], "the window has passed");
    }

    #[test]
    fn resend_waits_then_resends_then_gives_up() {
        let sent = t(0);
        assert_eq!(resend_decision(sent, 1, false, sent + Duration::minutes(5)), Resend::Wait);
        assert_eq!(resend_decision(sent, 1, true, sent + Duration::minutes(1)), Resend::Resend, "a summary: at once");
        assert_eq!(resend_decision(sent, 1, false, sent + RESEND_AFTER), Resend::Resend);
        assert_eq!(resend_decision(sent, MAX_ATTEMPTS, false, sent + RESEND_AFTER), Resend::GiveUp, "never silent");
    }

    #[test]
    fn the_ceiling_is_what_the_docs_say() {
        assert_eq!(ceiling_per_minute(10), 140);
        assert_eq!(ceiling_per_minute(40), 560);
        assert_eq!(ceiling_per_minute(200), 560, "never more than 40 rules");
    }

    proptest! {
        /// Ticks at arbitrary times, rows ingested with any delay in [d, d + JITTER]: no
        /// one-minute ingestion window of any shard ever holds more than 29 rows.
        #[test]
        fn no_run_window_exceeds_29_rows_with_jitter(
            ticks in proptest::collection::vec(1i64..90, 1..60),
            shards in proptest::collection::vec(0u16..3, 1..400),
            delays in proptest::collection::vec(0i64..=60, 400),
        ) {
            let mut history: Vec<Sent> = Vec::new();
            let mut pending: Vec<u16> = shards.clone();
            let mut ingested: Vec<(u16, i64)> = Vec::new();
            let mut now = 0i64;
            let mut k = 0usize;
            for step in ticks {
                now += step;
                let go = pace(&history, &pending, t(now));
                for &i in &go {
                    history.push(Sent { shard: pending[i], at: t(now).unix_timestamp(), rows: 1 });
                    ingested.push((pending[i], now + 30 + delays[k % delays.len()]));
                    k += 1;
                }
                let gone: std::collections::BTreeSet<usize> = go.into_iter().collect();
                pending = pending.into_iter().enumerate().filter(|(i, _)| !gone.contains(i)).map(|(_, s)| s).collect();
                history = prune(&history, t(now));
            }
            for &(shard, start) in &ingested {
                for from in [start - 59, start] {
                    let n = ingested.iter().filter(|(s, at)| *s == shard && *at >= from && *at < from + 60).count();
                    prop_assert!(n <= NRT_SINGLE_ALERTS, "shard {shard}: {n} rows in one run");
                }
            }
        }
    }
}
