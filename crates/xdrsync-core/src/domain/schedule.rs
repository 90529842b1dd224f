//! NCRONTAB schedules (`{second} {minute} {hour} {day} {month} {day-of-week}`, UTC), the form
//! Functions timer triggers use, so one `XDRSYNC_POLL_SCHEDULE` serves both modes. [`Schedule::parse`]
//! is the one validator `check`, `run` and `serve` use (through the settings): it accepts the
//! Functions syntax only and refuses a schedule that never fires.
//!
//! The grammar is that of NCrontab, the library the Functions timer trigger parses schedules
//! with (documented: six fields, `*`, `,` lists, `-` ranges, `/` steps, month and day names;
//! day-of-week 0–6 with 0 = Sunday). Checked against NCrontab's source: a name is any prefix
//! of the English name (`Mon`, `Monday`), a reversed range is swapped, `a/n` runs from `a` to
//! the field's maximum, and the day and the day-of-week must both match. Quartz extensions
//! (`L`, `W`, `?`, `#`) and day-of-week `7` are not NCRONTAB, so they are refused here rather
//! than accepted by one mode and rejected by the host. The expression is rewritten to plain
//! value lists before `croner` evaluates it, so croner's wider syntax never leaks through.

use std::time::Duration;
use time::OffsetDateTime;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];

/// One field: its name in messages, its range and its value names.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const FIELDS: [Field; 6] = [
    Field { name: "second", min: 0, max: 59, names: &[] },
    Field { name: "minute", min: 0, max: 59, names: &[] },
    Field { name: "hour", min: 0, max: 23, names: &[] },
    Field { name: "day", min: 1, max: 31, names: &[] },
    Field { name: "month", min: 1, max: 12, names: &MONTHS },
    Field { name: "day-of-week", min: 0, max: 6, names: &DAYS },
];

#[derive(Debug, Clone)]
pub struct Schedule {
    cron: croner::Cron,
}

impl Schedule {
    /// Parses a 6-field NCRONTAB expression; the error says what is wrong (the caller names
    /// the setting).
    pub fn parse(expr: &str) -> Result<Self, String> {
        let parts: Vec<&str> = expr.split_whitespace().collect();
        if parts.len() != 6 {
            return Err(format!(
                "'{expr}' must have 6 fields: second minute hour day month day-of-week (e.g. */30 * * * * * for every 30 s)"
            ));
        }
        let mut sets = [0u64; 6];
        for (i, (raw, field)) in parts.iter().zip(FIELDS.iter()).enumerate() {
            sets[i] = field_values(raw, field).map_err(|p| {
                format!("'{expr}' is not a valid NCRONTAB expression: {} field '{raw}': {p}", field.name)
            })?;
        }
        if !fires(sets[3], sets[4]) {
            return Err(format!("'{expr}' never fires: none of its months has that day"));
        }
        let plain: Vec<String> = sets.iter().zip(FIELDS.iter()).map(|(set, f)| value_list(*set, f)).collect();
        let cron = croner::Cron::new(&plain.join(" "))
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

    /// The last occurrence strictly before `before`: looks back over a window that doubles
    /// until it holds one (croner only searches forward).
    pub fn prev_before(&self, before: OffsetDateTime) -> Option<OffsetDateTime> {
        let mut window = time::Duration::seconds(1);
        // 2^35 s is over a thousand years: beyond that the schedule has no past.
        for _ in 0..36 {
            if let Some(first) = self.next_after(before - window).filter(|t| *t < before) {
                let mut last = first;
                while let Some(n) = self.next_after(last).filter(|t| *t < before) {
                    last = n;
                }
                return Some(last);
            }
            window *= 2;
        }
        None
    }

    /// How often the schedule fires around `now`: the longer of the gap that ends at the last
    /// occurrence at or before `now` and the gap that starts there. A run that is on time has
    /// succeeded within that gap (plus its own duration), also across an irregular schedule's
    /// long pause (`0 0 9-17 * * *` at 09:00:30 is judged on the night's 16 hours). `None` for
    /// a schedule without two occurrences.
    pub fn interval_around(&self, now: OffsetDateTime) -> Option<time::Duration> {
        let Some(prev) = self.prev_before(now + time::Duration::nanoseconds(1)) else {
            let next = self.next_after(now)?;
            return Some(self.next_after(next)? - next);
        };
        let after = self.next_after(prev).map(|n| n - prev);
        let before = self.prev_before(prev).map(|p| prev - p);
        after.into_iter().chain(before).max()
    }

    /// How long to sleep from `now` until the next occurrence (a day when the next one is
    /// beyond croner's search, then the schedule is asked again).
    pub fn wait_from(&self, now: OffsetDateTime) -> Duration {
        self.next_after(now)
            .map(|n| Duration::try_from(n - now).unwrap_or(Duration::ZERO))
            .unwrap_or(Duration::from_secs(24 * 3600))
    }
}

/// The values of one field as a bit set (bit `v` for value `v`).
fn field_values(raw: &str, f: &Field) -> Result<u64, String> {
    let mut set = 0u64;
    for item in raw.split(',') {
        let (base, step) = match item.split_once('/') {
            Some((b, s)) => {
                let step: u32 = s.parse().map_err(|_| format!("'{s}' is not a step (a whole number)"))?;
                if step == 0 {
                    return Err("a step must be at least 1".into());
                }
                (b, step)
            }
            None => (item, 1),
        };
        let (from, to) = if base == "*" {
            (f.min, f.max)
        } else if let Some((a, b)) = base.split_once('-') {
            let (a, b) = (value(a, f)?, value(b, f)?);
            (a.min(b), a.max(b))
        } else {
            let v = value(base, f)?;
            // `a/n` runs from a to the field's end, as in NCrontab.
            (v, if item.contains('/') { f.max } else { v })
        };
        let mut v = from;
        while v <= to {
            set |= 1 << v;
            v += step;
        }
    }
    Ok(set)
}

/// One value: a number in the field's range, or a prefix of a value's English name.
fn value(raw: &str, f: &Field) -> Result<u32, String> {
    let range = || format!("use {}-{}", f.min, f.max);
    if raw.starts_with(|c: char| c.is_ascii_digit()) {
        let v: u32 = raw.parse().map_err(|_| format!("'{raw}' is not a number; {}", range()))?;
        if !(f.min..=f.max).contains(&v) {
            let sunday = if f.name == "day-of-week" { " (Sunday is 0)" } else { "" };
            return Err(format!("{v} is out of range; {}{sunday}", range()));
        }
        return Ok(v);
    }
    if !raw.is_empty() && raw.chars().all(|c| c.is_ascii_alphabetic()) {
        let lower = raw.to_ascii_lowercase();
        if let Some(i) = f.names.iter().position(|n| n.to_ascii_lowercase().starts_with(&lower)) {
            return Ok(f.min + i as u32);
        }
    }
    let names = if f.names.is_empty() { String::new() } else { format!(" or a name ({})", f.names.join(", ")) };
    Err(format!("'{raw}' is not NCRONTAB (L, W, ?, # are not supported); {}{names}", range()))
}

/// Whether a day of the day field exists in a month of the month field (Feb 29 counts: it
/// comes, and meets every day of the week, within 28 years).
fn fires(days: u64, months: u64) -> bool {
    const LONGEST: [u32; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    (1..=12u32).filter(|m| months & (1 << m) != 0).any(|m| (1..=LONGEST[m as usize - 1]).any(|d| days & (1 << d) != 0))
}

/// A field's values as croner reads them: `*` for all, else a plain list.
fn value_list(set: u64, f: &Field) -> String {
    let values: Vec<String> = (f.min..=f.max).filter(|v| set & (1 << v) != 0).map(|v| v.to_string()).collect();
    if values.len() as u32 == f.max - f.min + 1 {
        "*".into()
    } else {
        values.join(",")
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
        assert_eq!(s.prev_before(datetime!(2026-01-01 0:00:30 UTC)), Some(datetime!(2026-01-01 0:00:00 UTC)));
    }

    #[test]
    fn five_field_cron_is_rejected_with_a_hint() {
        let e = Schedule::parse("*/5 * * * *").unwrap_err();
        assert!(e.contains("6 fields"));
        assert!(Schedule::parse("0 */5 * * * *").is_ok());
        assert!(Schedule::parse("0 61 * * * *").is_err());
    }

    #[test]
    fn quartz_extensions_and_day_seven_are_not_ncrontab() {
        for (expr, says) in [
            ("0 0 0 L * *", "'L' is not NCRONTAB"),
            ("0 0 0 ? * 1", "'?' is not NCRONTAB"),
            ("0 0 0 * * 1#2", "is not a number"),
            ("0 0 0 * * 7", "7 is out of range; use 0-6 (Sunday is 0)"),
            ("0 0 0 15W * *", "is not a number"),
            ("*/0 * * * * *", "at least 1"),
            ("0 0 0 * Foo *", "'Foo' is not NCRONTAB"),
        ] {
            let e = Schedule::parse(expr).unwrap_err();
            assert!(e.contains(says), "{expr}: {e}");
        }
    }

    #[test]
    fn ncrontab_forms_are_accepted_as_the_host_reads_them() {
        let at = datetime!(2026-01-01 0:00 UTC); // a Thursday
        let next = |e: &str| Schedule::parse(e).unwrap().next_after(at).unwrap();
        assert_eq!(next("0 30 9 * Jan Mon"), datetime!(2026-01-05 9:30 UTC));
        assert_eq!(next("0 30 9 * January Monday"), datetime!(2026-01-05 9:30 UTC));
        assert_eq!(next("0 0 0 * * 0"), datetime!(2026-01-04 0:00 UTC), "0 is Sunday");
        assert_eq!(next("0 0 17-9 * * *"), datetime!(2026-01-01 9:00 UTC), "a reversed range is swapped");
        assert_eq!(next("50/5 * * * * *"), datetime!(2026-01-01 0:00:50 UTC), "a/n runs to the end");
        assert_eq!(next("0 0 0 29 2 *"), datetime!(2028-02-29 0:00 UTC));
    }

    #[test]
    fn a_schedule_that_never_fires_is_refused() {
        for expr in ["0 0 0 30 2 *", "0 0 0 31 4,6,9,11 *", "0 0 0 31 Feb Mon"] {
            let e = Schedule::parse(expr).unwrap_err();
            assert!(e.contains("never fires"), "{expr}: {e}");
        }
    }

    #[test]
    fn the_interval_is_the_gap_between_occurrences_not_the_wait() {
        let every = |e: &str, at: OffsetDateTime| Schedule::parse(e).unwrap().interval_around(at).unwrap();
        let at = datetime!(2026-03-04 10:00:29 UTC);
        assert_eq!(every("*/2 * * * * *", at), time::Duration::seconds(2));
        assert_eq!(every("*/30 * * * * *", at), time::Duration::seconds(30));
        assert_eq!(every("0 */2 * * * *", at), time::Duration::minutes(2));
        assert_eq!(every("0 */5 * * * *", at), time::Duration::minutes(5));
        assert_eq!(every("0 0 * * * *", at), time::Duration::hours(1));
        assert_eq!(every("0 0 * * * *", datetime!(2026-03-04 10:00 UTC)), time::Duration::hours(1));
        // Office hours: at the first tick of the day the gap before it is the night's.
        let office = "0 0 9-17 * * *";
        assert_eq!(every(office, datetime!(2026-03-04 9:00:30 UTC)), time::Duration::hours(16));
        assert_eq!(every(office, datetime!(2026-03-04 12:30 UTC)), time::Duration::hours(1));
        assert_eq!(every(office, datetime!(2026-03-04 17:00:30 UTC)), time::Duration::hours(16));
    }
}
