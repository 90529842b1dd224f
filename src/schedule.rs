//! NCRONTAB schedules (`{second} {minute} {hour} {day} {month} {day-of-week}`, UTC), the form
//! Functions timer triggers use, so one `XDRSYNC_POLL_SCHEDULE` serves both modes.

use std::time::Duration;
use time::OffsetDateTime;

#[derive(Debug, Clone)]
pub struct Schedule {
    cron: croner::Cron,
}

impl Schedule {
    /// Parses a 6-field NCRONTAB expression.
    pub fn parse(expr: &str) -> Result<Self, String> {
        if expr.split_whitespace().count() != 6 {
            return Err(format!(
                "'{expr}' must have 6 fields: second minute hour day month day-of-week (e.g. */30 * * * * * for every 30 s)"
            ));
        }
        let cron = croner::Cron::new(expr)
            .with_seconds_required()
            .with_dom_and_dow()
            .parse()
            .map_err(|e| format!("'{expr}' is not a valid NCRONTAB expression: {e}"))?;
        Ok(Self { cron })
    }

    /// The first occurrence strictly after `after`.
    pub fn next_after(&self, after: OffsetDateTime) -> Option<OffsetDateTime> {
        let ts = chrono::DateTime::<chrono::Utc>::from_timestamp(after.unix_timestamp(), after.nanosecond())?;
        let next = self.cron.find_next_occurrence(&ts, false).ok()?;
        OffsetDateTime::from_unix_timestamp_nanos(next.timestamp_nanos_opt()? as i128).ok()
    }

    /// How long to sleep from `now` until the next occurrence.
    pub fn wait_from(&self, now: OffsetDateTime) -> Duration {
        self.next_after(now)
            .map(|n| Duration::try_from(n - now).unwrap_or(Duration::ZERO))
            .unwrap_or(Duration::from_secs(60))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn every_thirty_seconds() {
        let s = Schedule::parse("*/30 * * * * *").unwrap();
        assert_eq!(s.next_after(datetime!(2026-01-01 0:00:05 UTC)), Some(datetime!(2026-01-01 0:00:30 UTC)));
        assert_eq!(s.next_after(datetime!(2026-01-01 0:00:30 UTC)), Some(datetime!(2026-01-01 0:01:00 UTC)));
        assert_eq!(s.wait_from(datetime!(2026-01-01 0:00:29 UTC)), Duration::from_secs(1));
    }

    #[test]
    fn five_field_cron_is_rejected_with_a_hint() {
        let e = Schedule::parse("*/5 * * * *").unwrap_err();
        assert!(e.contains("6 fields"));
        assert!(Schedule::parse("0 */5 * * * *").is_ok());
        assert!(Schedule::parse("0 61 * * * *").is_err());
    }
}
