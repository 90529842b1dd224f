//! Poll cursor rules (ARCHITECTURE.md: “Cursors”), pure.
//!
//! The watermark is the newest modification time we have enqueued, taken from the service's own
//! timestamps (never our clock). Each poll re-reads `overlap` before it to catch late-visible
//! writes, and drops what it already enqueued by remembering marks of `(id, modification time)`
//! inside the overlap. The watermark never moves back; the caller saves the advanced cursor only
//! after every message of the window is enqueued.
//!
//! Bounded by construction: a mark is 12 bytes (an 8-byte digest of id and time, and its age
//! before the watermark in seconds), stored base64 in one string, at most [`MAX_SEEN`] of them, so
//! a cursor row never outgrows Table Storage's 32,768-character property however many incidents
//! an analyst closes at once. Past the cap, the oldest marks go first: an item re-read inside the
//! overlap may then be enqueued again (harmless: the reconcile is idempotent).
//!
//! A first run (or a cursor far behind) catches up in time windows `[since, until)` of
//! [`BACKFILL_WINDOW`], each saved when done, so a backfill resumes where it stopped.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use time::{Duration, OffsetDateTime};

use super::time_fmt::{rfc3339, rfc3339_opt};

/// An item seen by a poll: its id and the modification time it had.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Mark {
    pub id: String,
    #[serde(with = "rfc3339")]
    pub at: OffsetDateTime,
}

impl Mark {
    fn digest(&self) -> u64 {
        let mut h = Sha256::new();
        h.update(self.id.as_bytes());
        h.update([0]);
        h.update(self.at.unix_timestamp_nanos().to_be_bytes());
        let d = h.finalize();
        u64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
    }
}

/// The stored cursor of one feed (`incidents`, `sentinel`, `hunting:<Table>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cursor {
    #[serde(with = "rfc3339")]
    pub watermark: OffsetDateTime,
    /// Compact marks (see the module note).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    marks: String,
    /// Marks as versions before the compact form stored them; folded in at the next advance.
    #[serde(default, rename = "seen", skip_serializing)]
    legacy: Vec<Mark>,
    /// While catching up: where the next window starts.
    #[serde(default, with = "rfc3339_opt", skip_serializing_if = "Option::is_none")]
    pub backfill_from: Option<OffsetDateTime>,
}

/// Most marks a cursor keeps (16 base64 characters each: 24,000 characters at most).
pub const MAX_SEEN: usize = 1500;

/// The width of one catch-up window.
pub const BACKFILL_WINDOW: Duration = Duration::days(1);

/// One listing's time range: `since <= t` and, when set, `t < until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub since: OffsetDateTime,
    pub until: Option<OffsetDateTime>,
}

impl Cursor {
    /// How many marks the cursor holds.
    pub fn marks_len(&self) -> usize {
        self.marks.len() / 16 + self.legacy.len()
    }

    /// `(digest, approximate time)` of every mark; the time is never earlier than the real one.
    fn decoded(&self) -> Vec<(u64, OffsetDateTime)> {
        let bytes = base64::engine::general_purpose::STANDARD_NO_PAD.decode(&self.marks).unwrap_or_default();
        let compact = bytes.chunks_exact(12).map(|c| {
            let digest = u64::from_be_bytes(c[..8].try_into().expect("8 bytes"));
            let age = u32::from_be_bytes(c[8..].try_into().expect("4 bytes"));
            (digest, self.watermark - Duration::seconds(i64::from(age)))
        });
        compact.chain(self.legacy.iter().map(|m| (m.digest(), m.at))).collect()
    }
}

fn encode(watermark: OffsetDateTime, marks: &[(u64, OffsetDateTime)]) -> String {
    let mut bytes = Vec::with_capacity(marks.len() * 12);
    for (digest, at) in marks {
        // Rounded down, so a mark is kept at least as long as its real time asks.
        let age = (watermark - *at).whole_seconds().clamp(0, i64::from(u32::MAX)) as u32;
        bytes.extend_from_slice(&digest.to_be_bytes());
        bytes.extend_from_slice(&age.to_be_bytes());
    }
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes)
}

/// The next listing of a feed: the cursor's watermark less the overlap, open-ended; or, while
/// catching up (a first run reaching back `initial_lookback`, or an unfinished backfill), the next
/// closed window of [`BACKFILL_WINDOW`] — the last one open-ended once it reaches the present.
pub fn next_window(
    cursor: Option<&Cursor>,
    now: OffsetDateTime,
    initial_lookback: Duration,
    overlap: Duration,
) -> Window {
    let start = match cursor {
        None => now - initial_lookback,
        Some(Cursor { backfill_from: Some(from), .. }) => *from,
        Some(c) => return Window { since: c.watermark - overlap, until: None },
    };
    let end = start + BACKFILL_WINDOW;
    Window { since: start, until: (end < now - overlap).then_some(end) }
}

/// Lower bound for the next poll (the start of [`next_window`]).
pub fn poll_since(
    cursor: Option<&Cursor>,
    now: OffsetDateTime,
    initial_lookback: Duration,
    overlap: Duration,
) -> OffsetDateTime {
    next_window(cursor, now, initial_lookback, overlap).since
}

/// The items of a poll that still need a message: not already marked in the cursor, and each
/// `(id, at)` once (paging can return an item twice when newer items push pages down).
pub fn select_new<'a>(cursor: Option<&Cursor>, observed: &'a [Mark]) -> Vec<&'a Mark> {
    let mut known: HashSet<u64> = cursor.map(|c| c.decoded().into_iter().map(|(d, _)| d).collect()).unwrap_or_default();
    observed.iter().filter(|m| known.insert(m.digest())).collect()
}

/// The cursor after a poll of `window` whose items were all enqueued.
pub fn advance_window(cursor: Option<&Cursor>, window: Window, observed: &[Mark], overlap: Duration) -> Cursor {
    let old = cursor.map(|c| c.watermark).unwrap_or(window.since);
    let newest = observed.iter().map(|m| m.at).max();
    let watermark = newest.map_or(old, |n| n.max(old));
    let keep_from = watermark - overlap;
    let mut seen: Vec<(u64, OffsetDateTime)> = cursor
        .map(Cursor::decoded)
        .unwrap_or_default()
        .into_iter()
        .chain(observed.iter().map(|m| (m.digest(), m.at)))
        .filter(|(_, at)| *at >= keep_from)
        .collect();
    // Newest first, one entry per digest, then the cap.
    seen.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut unique = HashSet::new();
    seen.retain(|(d, _)| unique.insert(*d));
    seen.truncate(MAX_SEEN);
    Cursor { watermark, marks: encode(watermark, &seen), legacy: Vec::new(), backfill_from: window.until }
}

/// [`advance_window`] for an open-ended listing from `since`.
pub fn advance(cursor: Option<&Cursor>, since: OffsetDateTime, observed: &[Mark], overlap: Duration) -> Cursor {
    advance_window(cursor, Window { since, until: None }, observed, overlap)
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

    #[test]
    fn a_bulk_edit_of_thousands_fits_the_row_and_every_mark_of_the_overlap_is_kept() {
        let overlap = Duration::minutes(2);
        let bulk: Vec<Mark> =
            (0..1000).map(|i| mark(&format!("{i:08x}-aaaa-bbbb-cccc-{i:012x}"), 100 + i % 60)).collect();
        let c = advance(None, mark("x", 0).at, &bulk, overlap);
        assert_eq!(c.marks_len(), 1000);
        assert!(select_new(Some(&c), &bulk).is_empty(), "a re-read of the overlap enqueues nothing");
        let huge: Vec<Mark> = (0..10_000).map(|i| mark(&format!("id-{i}"), 100)).collect();
        let c = advance(Some(&c), mark("x", 0).at, &huge, overlap);
        let row = serde_json::to_string(&c).unwrap();
        assert!(row.encode_utf16().count() < 25_000, "{} characters", row.len());
        assert_eq!(c.marks_len(), MAX_SEEN);
    }

    #[test]
    fn a_first_run_catches_up_in_windows_then_polls_open_ended() {
        let now = datetime!(2026-01-02 0:00 UTC);
        let overlap = Duration::minutes(2);
        let w = next_window(None, now, Duration::days(4), overlap);
        assert_eq!(w, Window { since: datetime!(2025-12-29 0:00 UTC), until: Some(datetime!(2025-12-30 0:00 UTC)) });
        let c = advance_window(None, w, &[Mark { id: "1".into(), at: datetime!(2025-12-29 0:10 UTC) }], overlap);
        assert_eq!(c.backfill_from, Some(datetime!(2025-12-30 0:00 UTC)));
        assert_eq!(c.watermark, datetime!(2025-12-29 0:10 UTC));
        let w2 = next_window(Some(&c), now, Duration::days(4), overlap);
        assert_eq!(w2.since, datetime!(2025-12-30 0:00 UTC), "no window is listed twice");
        let mut c = c;
        for _ in 0..2 {
            let w = next_window(Some(&c), now, Duration::days(4), overlap);
            c = advance_window(Some(&c), w, &[], overlap);
        }
        let last = next_window(Some(&c), now, Duration::days(4), overlap);
        assert_eq!(last.until, None, "the window reaching the present is open-ended");
        let done = advance_window(Some(&c), last, &[], overlap);
        assert_eq!(done.backfill_from, None);
        assert_eq!(next_window(Some(&done), now, Duration::days(4), overlap).since, done.watermark - overlap);
    }

    #[test]
    fn cursors_stored_by_earlier_versions_still_dedupe() {
        let old = serde_json::json!({"watermark": "2026-01-01T00:01:40Z", "seen": [{"id": "1", "at": "2026-01-01T00:01:40Z"}]});
        let c: Cursor = serde_json::from_value(old).unwrap();
        assert!(select_new(Some(&c), &[mark("1", 100)]).is_empty());
        let next = advance(Some(&c), mark("x", 0).at, &[], Duration::minutes(2));
        assert!(select_new(Some(&next), &[mark("1", 100)]).is_empty(), "folded into the compact marks");
        assert!(serde_json::to_value(&next).unwrap().get("seen").is_none());
    }
}
