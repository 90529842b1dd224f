//! Poll cursor rules (ARCHITECTURE.md: “Cursors”), pure.
//!
//! The watermark is the newest `lastUpdateDateTime` we have enqueued, taken from the service's own
//! timestamps (never our clock). Each poll re-reads `overlap` before it to catch late-visible
//! writes, and drops what it already enqueued by remembering `(id, lastUpdate)` marks inside the
//! overlap. The watermark never moves back; the caller saves the advanced cursor only after
//! every message for the poll is enqueued.

use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use time::{Duration, OffsetDateTime};

use super::time_fmt::rfc3339;

/// An item seen by a poll: its id and the modification time it had.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Mark {
    pub id: String,
    #[serde(with = "rfc3339")]
    pub at: OffsetDateTime,
}

/// The stored cursor of one feed (`incidents`, `sentinel`, `hunting:<Table>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    #[serde(with = "rfc3339")]
    pub watermark: OffsetDateTime,
    /// Marks with `at >= watermark - overlap`, so a re-read of the overlap enqueues nothing twice.
    #[serde(default)]
    pub seen: Vec<Mark>,
}

/// Most marks a cursor keeps; past this, dedupe degrades to re-enqueueing (harmless: reconcile
/// is idempotent) rather than growing the row past Table Storage's property limit.
pub const MAX_SEEN: usize = 2000;

/// Lower bound for the next poll: `watermark - overlap`, or `now - initial_lookback` on first run.
pub fn poll_since(
    cursor: Option<&Cursor>,
    now: OffsetDateTime,
    initial_lookback: Duration,
    overlap: Duration,
) -> OffsetDateTime {
    match cursor {
        Some(c) => c.watermark - overlap,
        None => now - initial_lookback,
    }
}

/// The items of a poll that still need a message: not already marked in the cursor, and each
/// `(id, at)` once (paging can return an item twice when newer items push pages down).
pub fn select_new<'a>(cursor: Option<&Cursor>, observed: &'a [Mark]) -> Vec<&'a Mark> {
    let mut known: HashSet<(&str, OffsetDateTime)> =
        cursor.map(|c| c.seen.iter().map(|m| (m.id.as_str(), m.at)).collect()).unwrap_or_default();
    observed.iter().filter(|m| known.insert((m.id.as_str(), m.at))).collect()
}

/// The cursor after a poll whose items were all enqueued.
pub fn advance(cursor: Option<&Cursor>, since: OffsetDateTime, observed: &[Mark], overlap: Duration) -> Cursor {
    let old = cursor.map(|c| c.watermark).unwrap_or(since);
    let newest = observed.iter().map(|m| m.at).max();
    let watermark = newest.map_or(old, |n| n.max(old));
    let keep_from = watermark - overlap;
    let mut seen: Vec<Mark> = cursor
        .map(|c| c.seen.clone())
        .unwrap_or_default()
        .into_iter()
        .chain(observed.iter().cloned())
        .filter(|m| m.at >= keep_from)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    seen.sort_by(|a, b| b.at.cmp(&a.at).then_with(|| a.id.cmp(&b.id)));
    seen.truncate(MAX_SEEN);
    Cursor { watermark, seen }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use time::macros::datetime;

    fn mark(id: &str, secs: i64) -> Mark {
        Mark { id: id.into(), at: datetime!(2026-01-01 0:00 UTC) + Duration::seconds(secs) }
    }

    #[test]
    fn first_poll_looks_back_then_overlaps_the_watermark() {
        let now = datetime!(2026-01-02 0:00 UTC);
        let since = poll_since(None, now, Duration::hours(24), Duration::minutes(2));
        assert_eq!(since, datetime!(2026-01-01 0:00 UTC));
        let c = advance(None, since, &[mark("1", 600)], Duration::minutes(2));
        assert_eq!(c.watermark, datetime!(2026-01-01 0:10 UTC));
        assert_eq!(
            poll_since(Some(&c), now, Duration::hours(24), Duration::minutes(2)),
            datetime!(2026-01-01 0:08 UTC)
        );
    }

    #[test]
    fn overlap_re_read_enqueues_nothing_twice_but_a_newer_version_again() {
        let overlap = Duration::minutes(2);
        let first = [mark("1", 100), mark("2", 100)];
        let c = advance(None, mark("x", 0).at, &first, overlap);
        let second = [mark("1", 100), mark("2", 100), mark("2", 130)];
        let new: Vec<_> = select_new(Some(&c), &second).into_iter().cloned().collect();
        assert_eq!(new, vec![mark("2", 130)]);
    }

    #[test]
    fn duplicates_within_one_poll_are_dropped() {
        let obs = [mark("1", 5), mark("1", 5), mark("2", 5)];
        assert_eq!(select_new(None, &obs).len(), 2);
    }

    proptest! {
        #[test]
        fn watermark_never_moves_back(
            start in 0i64..1000,
            polls in proptest::collection::vec(proptest::collection::vec((0u8..20, 0i64..2000), 0..30), 1..8)
        ) {
            let overlap = Duration::seconds(60);
            let mut cursor: Option<Cursor> = None;
            let mut last = mark("x", start).at;
            for poll in polls {
                let obs: Vec<Mark> = poll.iter().map(|(id, s)| mark(&id.to_string(), *s)).collect();
                let c = advance(cursor.as_ref(), mark("x", start).at, &obs, overlap);
                prop_assert!(c.watermark >= last);
                prop_assert!(c.seen.len() <= MAX_SEEN);
                last = c.watermark;
                cursor = Some(c);
            }
        }

        /// Many items sharing one timestamp, split across pages and polls in any way, are each
        /// selected exactly once per version.
        #[test]
        fn no_loss_or_repeat_when_many_items_share_a_timestamp(
            n in 1usize..300,
            cut in proptest::collection::vec(0usize..300, 0..5),
        ) {
            let overlap = Duration::seconds(120);
            let all: Vec<Mark> = (0..n).map(|i| mark(&format!("inc{i}"), 500)).collect();
            // Each poll sees a prefix of the list (as if more items became visible over time),
            // re-reading everything since the overlap.
            let mut cuts: Vec<usize> = cut.into_iter().map(|c| c % (n + 1)).collect();
            cuts.push(n);
            cuts.sort();
            let mut cursor: Option<Cursor> = None;
            let mut enqueued: Vec<Mark> = Vec::new();
            for c in cuts {
                let visible = &all[..c];
                let new: Vec<Mark> = select_new(cursor.as_ref(), visible).into_iter().cloned().collect();
                enqueued.extend(new);
                cursor = Some(advance(cursor.as_ref(), mark("x", 0).at, visible, overlap));
            }
            let mut ids: Vec<_> = enqueued.iter().map(|m| m.id.clone()).collect();
            ids.sort();
            let mut want: Vec<_> = all.iter().map(|m| m.id.clone()).collect();
            want.sort();
            prop_assert_eq!(ids, want);
        }
    }
}
