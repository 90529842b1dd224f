//! The query source's cursor (ARCHITECTURE.md: “Advanced hunting”), pure. A table's cursor is
//! the newest `Timestamp` exported plus the keys of the rows exported *at* that timestamp. The
//! next query asks for `Timestamp >= cursor` (ordered by `Timestamp`, first `take` rows) and drops
//! the rows whose keys it holds, so rows sharing the boundary timestamp are neither lost nor
//! sent twice, however the service orders ties. A page that comes back full may have been cut
//! inside a run of equal timestamps: the next page starts at its last timestamp again. When one
//! timestamp alone fills a page (or holds more keys than a cursor row stores), that timestamp is
//! read whole (`Timestamp == t`, no `take`) and the cursor moves past it. The cursor moves only
//! after the page's rows are accepted, so a crash re-sends at most one page.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::kql::Range;
use crate::domain::time_fmt::rfc3339;

/// Most boundary keys a cursor keeps (16 hex digits each: ~25 KB, inside a Table Storage string).
pub const MAX_BOUNDARY_KEYS: usize = 1_500;

/// Where a table's export stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HuntingCursor {
    #[serde(with = "rfc3339")]
    pub at: OffsetDateTime,
    /// Short keys ([`short`]) of the rows at `at` already exported.
    #[serde(default)]
    pub keys: Vec<String>,
    /// Every row at `at` is exported: the next query starts after `at`.
    #[serde(default)]
    pub past: bool,
}

/// The first 16 hex digits of a row key (enough to tell rows of one timestamp apart).
pub fn short(key: &str) -> &str {
    &key[..key.len().min(16)]
}

/// One row of a page: its `Timestamp` and key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRow {
    pub at: OffsetDateTime,
    pub key: String,
}

/// What to do after a page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The window is exported.
    Done,
    /// Ask for the next page.
    More,
    /// Read every row at this timestamp in one query.
    Sweep(OffsetDateTime),
}

/// A page's verdict: which rows to send (positions in the page), the cursor once they are
/// accepted, and what comes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub fresh: Vec<usize>,
    pub cursor: HuntingCursor,
    pub next: Next,
}

impl HuntingCursor {
    /// A cursor that exports from `at` on.
    pub fn start(at: OffsetDateTime) -> Self {
        Self { at, keys: Vec::new(), past: false }
    }

    /// The next page's range up to `until`; `None` when nothing is left before `until`.
    pub fn range(&self, until: OffsetDateTime, take: usize) -> Option<Range> {
        if self.at > until || (self.past && self.at >= until) {
            return None;
        }
        Some(Range::Window { from: self.at, from_inclusive: !self.past, until, take })
    }

    fn already_sent(&self, row: &PageRow) -> bool {
        row.at < self.at || (row.at == self.at && (self.past || self.keys.iter().any(|k| k == short(&row.key))))
    }
}

fn fresh_rows(cursor: &HuntingCursor, rows: &[PageRow]) -> Vec<usize> {
    let mut seen = std::collections::HashSet::new();
    (0..rows.len()).filter(|&i| !cursor.already_sent(&rows[i]) && seen.insert(rows[i].key.as_str())).collect()
}

/// The verdict on a page of a [`Range::Window`] query; `full` when it holds `take` rows.
pub fn after_page(cursor: &HuntingCursor, rows: &[PageRow], full: bool) -> Step {
    let fresh = fresh_rows(cursor, rows);
    let (Some(min), Some(max)) = (rows.iter().map(|r| r.at).min(), rows.iter().map(|r| r.at).max()) else {
        return Step { fresh, cursor: cursor.clone(), next: Next::Done };
    };
    let mut next_cursor =
        if max == cursor.at { cursor.clone() } else { HuntingCursor { at: max, keys: Vec::new(), past: false } };
    for r in rows.iter().filter(|r| r.at == max) {
        let k = short(&r.key).to_string();
        if !next_cursor.keys.contains(&k) {
            next_cursor.keys.push(k);
        }
    }
    let next = if !full {
        Next::Done
    } else if min == max || next_cursor.keys.len() > MAX_BOUNDARY_KEYS {
        // One timestamp filled the page (or its keys would overflow the row): read it whole.
        Next::Sweep(max)
    } else {
        Next::More
    };
    if matches!(next, Next::Sweep(_)) {
        // The sweep sends the rest of `max`; until it is accepted the old boundary still holds.
        next_cursor.keys.truncate(MAX_BOUNDARY_KEYS);
    }
    Step { fresh, cursor: next_cursor, next }
}

/// The verdict on a [`Range::Exact`] sweep of `at`: the rows not yet sent, and a cursor past `at`.
pub fn after_sweep(cursor: &HuntingCursor, at: OffsetDateTime, rows: &[PageRow]) -> Step {
    let fresh = fresh_rows(cursor, rows);
    Step { fresh, cursor: HuntingCursor { at, keys: Vec::new(), past: true }, next: Next::More }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2024-05-01 10:00 UTC);

    fn at(ms: i64) -> OffsetDateTime {
        T0 + time::Duration::milliseconds(ms)
    }

    fn row(ms: i64, key: &str) -> PageRow {
        PageRow { at: at(ms), key: format!("{key:x<32}") }
    }

    #[test]
    fn ties_at_the_boundary_are_sent_once() {
        let c = HuntingCursor::start(at(0));
        // A full page cut inside the run at 5 ms.
        let s = after_page(&c, &[row(1, "a"), row(5, "b"), row(5, "c")], true);
        assert_eq!((s.fresh.clone(), s.next), (vec![0, 1, 2], Next::More));
        assert_eq!(s.cursor.at, at(5));
        assert_eq!(s.cursor.keys.len(), 2);
        // The next page starts at 5 ms again, ties in another order: b and c are not re-sent.
        let s2 = after_page(&s.cursor, &[row(5, "c"), row(5, "d"), row(5, "b"), row(9, "e")], false);
        assert_eq!(s2.fresh, vec![1, 3]);
        assert_eq!(s2.next, Next::Done);
        assert_eq!(s2.cursor, HuntingCursor { at: at(9), keys: vec![format!("{:x<16}", "e")], past: false });
    }

    #[test]
    fn a_page_of_one_timestamp_is_swept_whole_then_passed() {
        let c = HuntingCursor::start(at(0));
        let s = after_page(&c, &[row(3, "a"), row(3, "b")], true);
        assert_eq!(s.next, Next::Sweep(at(3)));
        let sw = after_sweep(&s.cursor, at(3), &[row(3, "b"), row(3, "x"), row(3, "a")]);
        assert_eq!(sw.fresh, vec![1]);
        assert!(sw.cursor.past);
        assert_eq!(
            sw.cursor.range(at(10), 2),
            Some(Range::Window { from: at(3), from_inclusive: false, until: at(10), take: 2 })
        );
        assert_eq!(HuntingCursor::start(at(11)).range(at(10), 2), None);
    }

    #[test]
    fn an_empty_page_keeps_the_cursor() {
        let c = HuntingCursor { at: at(4), keys: vec!["k".into()], past: false };
        assert_eq!(after_page(&c, &[], false), Step { fresh: vec![], cursor: c.clone(), next: Next::Done });
    }

    /// A fake service: rows in `[from, until]` sorted by time, ties in an order that changes
    /// with every call, first `take`.
    fn serve(all: &[PageRow], range: Range, call: u64) -> (Vec<PageRow>, bool) {
        let mut hits: Vec<(u64, PageRow)> = all
            .iter()
            .filter(|r| match range {
                Range::Window { from, from_inclusive, until, .. } => {
                    (r.at > from || (from_inclusive && r.at == from)) && r.at <= until
                }
                Range::Exact { at } => r.at == at,
            })
            .map(|r| {
                let h = r
                    .key
                    .bytes()
                    .fold(call.wrapping_mul(0x9e37_79b9), |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
                (h, r.clone())
            })
            .collect();
        hits.sort_by_key(|(h, r)| (r.at, *h));
        let rows: Vec<PageRow> = hits.into_iter().map(|(_, r)| r).collect();
        match range {
            Range::Window { take, .. } => {
                let full = rows.len() >= take;
                (rows.into_iter().take(take).collect(), full)
            }
            Range::Exact { .. } => (rows, false),
        }
    }

    /// Runs the export to the end, crashing (losing the last step's cursor) at the given calls.
    fn export(all: &[PageRow], until: OffsetDateTime, take: usize, crash_at: &[u64]) -> (HashMap<String, usize>, u64) {
        let mut sent: HashMap<String, usize> = HashMap::new();
        let mut cursor = HuntingCursor::start(at(-1));
        let mut sweep = None;
        let mut call = 0;
        loop {
            call += 1;
            assert!(call < 10_000, "the export must end");
            let (range, step) = match sweep.take() {
                Some(t) => {
                    let (rows, _) = serve(all, Range::Exact { at: t }, call);
                    let s = after_sweep(&cursor, t, &rows);
                    (rows, s)
                }
                None => {
                    let Some(r) = cursor.range(until, take) else { break };
                    let (rows, full) = serve(all, r, call);
                    let s = after_page(&cursor, &rows, full);
                    (rows, s)
                }
            };
            for i in &step.fresh {
                *sent.entry(range[*i].key.clone()).or_default() += 1;
            }
            if crash_at.contains(&call) {
                continue; // rows accepted, cursor not saved: the page is re-read
            }
            cursor = step.cursor;
            match step.next {
                Next::Done => break,
                Next::More => {}
                Next::Sweep(t) => sweep = Some(t),
            }
        }
        (sent, call)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// Whatever the timestamps (many ties), page size and tie order, every row up to `until`
        /// is sent exactly once and none after it.
        #[test]
        fn every_row_once(times in proptest::collection::vec(0i64..40, 0..300), take in 1usize..50) {
            let all: Vec<PageRow> = times.iter().enumerate().map(|(i, t)| row(*t, &format!("r{i}"))).collect();
            let until = at(30);
            let (sent, _) = export(&all, until, take, &[]);
            for r in &all {
                let n = sent.get(&r.key).copied().unwrap_or(0);
                prop_assert_eq!(n, usize::from(r.at <= until), "row at {} sent {} times", r.at, n);
            }
        }

        /// A crash after a page was accepted but before its cursor was saved re-sends at most
        /// that page's rows, and loses nothing.
        #[test]
        fn a_crash_resends_at_most_one_page(times in proptest::collection::vec(0i64..40, 1..200), take in 2usize..30, crash in 1u64..8) {
            let all: Vec<PageRow> = times.iter().enumerate().map(|(i, t)| row(*t, &format!("r{i}"))).collect();
            let (sent, _) = export(&all, at(45), take, &[crash]);
            let resent: usize = sent.values().map(|n| n - 1).sum();
            prop_assert!(sent.len() == all.len(), "nothing lost");
            let largest_tie = times.iter().map(|t| times.iter().filter(|u| *u == t).count()).max().unwrap_or(0);
            prop_assert!(resent <= take.max(largest_tie), "{} re-sent with pages of {}", resent, take);
        }
    }
}
