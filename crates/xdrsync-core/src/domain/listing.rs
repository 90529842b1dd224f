//! How deep one Defender poll pages (docs/sync.md, “Reconcile from the list page”). Graph lists
//! incidents newest first, so once a page holds nothing new the rest of the window was listed
//! before; the overlap re-read (for changes that surface late with an older time) is still done
//! in full, but once per [`FULL_PASS_EVERY`] rather than at every tick.

use time::{Duration, OffsetDateTime};

/// A caught-up poll lists the whole overlap window at least this often.
pub const FULL_PASS_EVERY: Duration = Duration::seconds(60);

/// Whether this poll lists its whole window: always in a backfill window (`bounded`), on the
/// first poll, and when the last full pass is [`FULL_PASS_EVERY`] old.
pub fn full_pass_due(bounded: bool, last_full: Option<OffsetDateTime>, now: OffsetDateTime) -> bool {
    bounded || last_full.is_none_or(|at| now - at >= FULL_PASS_EVERY || now < at)
}

/// Whether the poll reads the next page: on a full pass always, otherwise only while pages
/// still bring something new.
pub fn read_next_page(full_pass: bool, page_had_new: bool) -> bool {
    full_pass || page_had_new
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn the_whole_window_is_listed_on_backfills_first_polls_and_once_a_minute() {
        let now = datetime!(2026-12-01 10:00 UTC);
        assert!(full_pass_due(true, Some(now), now), "a backfill window");
        assert!(full_pass_due(false, None, now), "first poll of this process state");
        assert!(!full_pass_due(false, Some(now - Duration::seconds(59)), now));
        assert!(full_pass_due(false, Some(now - FULL_PASS_EVERY), now));
        assert!(full_pass_due(false, Some(now + Duration::seconds(5)), now), "a clock that went back");
    }

    #[test]
    fn between_full_passes_paging_stops_at_the_first_page_with_nothing_new() {
        assert!(read_next_page(true, false));
        assert!(read_next_page(false, true));
        assert!(!read_next_page(false, false));
    }
}
