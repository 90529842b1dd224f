//! What the reconciles did, counted per hour (`Cursors` rows `activity:<hour>`), for `xdrsync
//! status`: mirrors created, incidents redirected (merged away in Defender), conflicts resolved.
//! Only those events write a count, so a quiet reconcile costs nothing; the hour rows make "the
//! last 24 hours" 25 point reads.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// Counts of one hour (or summed over several).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityCounts {
    #[serde(default)]
    pub mirrored: u64,
    #[serde(default)]
    pub redirected: u64,
    #[serde(default)]
    pub conflicted: u64,
}

impl ActivityCounts {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    pub fn add(&mut self, other: &ActivityCounts) {
        self.mirrored += other.mirrored;
        self.redirected += other.redirected;
        self.conflicted += other.conflicted;
    }
}

/// The row key of the hour holding `t` (UTC): `activity:2026-11-29T19`.
pub fn hour_key(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("activity:{:04}-{:02}-{:02}T{:02}", t.year(), u8::from(t.month()), t.day(), t.hour())
}

/// The keys of the hours that overlap the `hours` hours before `now` (`hours + 1` keys, the
/// current hour included), newest first.
pub fn recent_hour_keys(now: OffsetDateTime, hours: i64) -> Vec<String> {
    (0..=hours).map(|h| hour_key(now - Duration::hours(h))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn hour_keys_are_utc_and_cover_the_window() {
        assert_eq!(hour_key(datetime!(2026-11-29 19:59:59 +02:00)), "activity:2026-11-29T17");
        let keys = recent_hour_keys(datetime!(2026-03-01 00:30 UTC), 24);
        assert_eq!(keys.len(), 25);
        assert_eq!(keys[0], "activity:2026-03-01T00");
        assert_eq!(keys[1], "activity:2026-02-28T23");
        assert_eq!(keys[24], "activity:2026-02-28T00");
    }

    #[test]
    fn counts_add_up() {
        let mut total = ActivityCounts::default();
        assert!(total.is_empty());
        total.add(&ActivityCounts { mirrored: 2, redirected: 1, conflicted: 0 });
        total.add(&ActivityCounts { mirrored: 1, redirected: 0, conflicted: 3 });
        assert_eq!(total, ActivityCounts { mirrored: 3, redirected: 1, conflicted: 3 });
    }
}
