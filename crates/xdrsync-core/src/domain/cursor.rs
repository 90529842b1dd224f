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

    const OVERLAP: i64 = 5;

    /// A small deterministic generator for shuffles and page cuts (the seed comes from proptest).
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n.max(1) as u64) as usize
        }
    }

    /// What a list call returns: `items` ordered by time (either direction) with ties in any
    /// order, cut into pages at random points, and at some cuts the last item of a page repeated
    /// at the top of the next (newer items pushed it down while paging).
    fn pages(mut items: Vec<Mark>, rng: &mut Rng) -> Vec<Mark> {
        for i in (1..items.len()).rev() {
            items.swap(i, rng.below(i + 1));
        }
        let descending = rng.below(2) == 0;
        // A stable sort: ties keep the shuffled order.
        items.sort_by(|a, b| if descending { b.at.cmp(&a.at) } else { a.at.cmp(&b.at) });
        let mut out = Vec::new();
        let mut page_start = false;
        for (i, m) in items.iter().enumerate() {
            if page_start && rng.below(2) == 0 {
                out.push(items[i - 1].clone());
            }
            out.push(m.clone());
            page_start = rng.below(3) == 0;
        }
        out
    }

    proptest! {
        /// A feed of versions `(id, lastUpdate)` with many shared timestamps, each visible to the
        /// list API only some time (up to the overlap) after its timestamp, polled at random
        /// times (some polls repeated: re-reads of the overlap), each answer shuffled among ties
        /// and split into pages with repeats. After every poll, every version the service shows
        /// has been emitted (nothing that became visible late, behind the watermark or tied with
        /// it, is skipped), and no version is ever emitted twice. `latest_only` lists only each
        /// id's newest version, as Graph lists incidents; otherwise every version, as a log table.
        #[test]
        fn every_version_is_emitted_exactly_once_and_none_is_skipped(
            raw in proptest::collection::vec((0u8..8, 0i64..30, 0..=OVERLAP), 1..80),
            poll_at in proptest::collection::vec(0i64..45, 1..12),
            latest_only in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let overlap = Duration::seconds(OVERLAP);
            let t0 = datetime!(2026-01-01 0:00 UTC);
            // (version, visible from); one visibility per (id, at).
            let mut versions: Vec<(Mark, i64)> = Vec::new();
            for (id, at, lag) in raw {
                let m = mark(&format!("inc{id}"), at);
                if !versions.iter().any(|(v, _)| *v == m) {
                    versions.push((m, at + lag));
                }
            }
            let mut polls = poll_at;
            polls.sort();
            let last = versions.iter().map(|(_, vis)| *vis).max().unwrap();
            polls.extend([last, last + 1, last + 1]);

            let mut rng = Rng(seed | 1);
            let mut cursor: Option<Cursor> = None;
            let mut emitted: Vec<Mark> = Vec::new();
            for p in polls {
                let now = t0 + Duration::seconds(p);
                let since = poll_since(cursor.as_ref(), now, Duration::hours(1), overlap);
                let visible: Vec<&Mark> = versions.iter().filter(|(_, vis)| *vis <= p).map(|(m, _)| m).collect();
                let shown: Vec<&Mark> = visible
                    .iter()
                    .copied()
                    .filter(|m| !latest_only || !visible.iter().any(|n| n.id == m.id && n.at > m.at))
                    .collect();
                let answer: Vec<Mark> = shown.iter().filter(|m| m.at >= since).map(|m| (*m).clone()).collect();
                let observed = pages(answer, &mut rng);
                emitted.extend(select_new(cursor.as_ref(), &observed).into_iter().cloned());
                cursor = Some(advance(cursor.as_ref(), since, &observed, overlap));
                let watermark = cursor.as_ref().map(|c| c.watermark);
                for m in &shown {
                    prop_assert!(emitted.contains(m), "poll at {}: {:?} was skipped (watermark {:?})", p, m, watermark);
                }
            }
            let mut unique = emitted.clone();
            unique.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
            unique.dedup();
            prop_assert_eq!(unique.len(), emitted.len(), "a version was emitted twice: {:?}", emitted);
        }
    }
}
