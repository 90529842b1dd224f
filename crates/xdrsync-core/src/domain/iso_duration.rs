//! ISO-8601 durations as operators type them on the command line (`P7D`, `PT12H`, `P1DT6H30M`,
//! `P2W`): days, hours, minutes and seconds, plus weeks. Years and months are refused (their
//! length depends on the calendar), as are fractions, signs and an empty `P`/`PT`.

use time::Duration;

/// Why a duration was refused, in words an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{input}' is not an ISO-8601 duration such as P7D, PT12H or P1DT6H: {why}")]
pub struct DurationError {
    pub input: String,
    pub why: &'static str,
}

/// Parses `P[nW][nD][T[nH][nM][nS]]` (case-insensitive) into a positive duration.
pub fn parse_iso_duration(input: &str) -> Result<Duration, DurationError> {
    let fail = |why| DurationError { input: input.to_string(), why };
    let upper = input.trim().to_ascii_uppercase();
    let rest = upper.strip_prefix('P').ok_or_else(|| fail("it must start with P"))?;
    let (date, time_part) = match rest.split_once('T') {
        Some((_, "")) => return Err(fail("nothing follows T")),
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let mut total = Duration::ZERO;
    let mut any = false;
    for (part, units) in [(date, "WD"), (time_part.unwrap_or(""), "HMS")] {
        let mut number = String::new();
        let mut last_unit = None::<usize>;
        for c in part.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let Some(pos) = units.find(c) else {
                return Err(fail(match c {
                    'Y' | 'M' => "years and months are not fixed lengths; use days (P30D)",
                    '.' | ',' => "fractions are not supported",
                    _ => "unknown unit (use W, D, H, M or S)",
                }));
            };
            if last_unit.is_some_and(|l| l >= pos) {
                return Err(fail("units must appear once each, largest first"));
            }
            last_unit = Some(pos);
            let n: i64 = number.parse().map_err(|_| fail("a number must precede each unit"))?;
            number.clear();
            let secs_per = match (units, c) {
                (_, 'W') => 7 * 86_400,
                (_, 'D') => 86_400,
                (_, 'H') => 3_600,
                ("HMS", 'M') => 60,
                _ => 1,
            };
            let add = n.checked_mul(secs_per).ok_or_else(|| fail("too large"))?;
            total = total.checked_add(Duration::seconds(add)).ok_or_else(|| fail("too large"))?;
            any = true;
        }
        if !number.is_empty() {
            return Err(fail("a number lacks its unit"));
        }
    }
    if !any {
        return Err(fail("no amount given"));
    }
    if total > Duration::days(3_650) {
        return Err(fail("more than ten years"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn common_forms() {
        assert_eq!(parse_iso_duration("P7D").unwrap(), Duration::days(7));
        assert_eq!(parse_iso_duration("PT12H").unwrap(), Duration::hours(12));
        assert_eq!(parse_iso_duration("p90d").unwrap(), Duration::days(90));
        assert_eq!(parse_iso_duration("P1DT6H30M15S").unwrap(), Duration::seconds(86_400 + 6 * 3_600 + 30 * 60 + 15));
        assert_eq!(parse_iso_duration("P2W").unwrap(), Duration::days(14));
        assert_eq!(parse_iso_duration("PT45M").unwrap(), Duration::minutes(45));
    }

    #[test]
    fn refuses_what_is_not_a_fixed_duration_with_a_reason() {
        for (bad, why) in [
            ("7D", "start with P"),
            ("P", "no amount"),
            ("PT", "nothing follows T"),
            ("P1M", "years and months"),
            ("P1Y", "years and months"),
            ("P1.5D", "fractions"),
            ("PD", "number must precede"),
            ("P7", "lacks its unit"),
            ("PT1H2H", "once each"),
            ("P1H", "unknown unit"),
            ("-P1D", "start with P"),
            ("P99999D", "ten years"),
            ("", "start with P"),
        ] {
            let e = parse_iso_duration(bad).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
            assert!(e.to_string().contains("P7D"), "names an example: {e}");
        }
    }

    proptest! {
        #[test]
        fn days_hours_minutes_round_trip(d in 0i64..3000, h in 0i64..24, m in 0i64..60) {
            prop_assume!(d + h + m > 0);
            let text = format!("P{d}DT{h}H{m}M");
            prop_assert_eq!(parse_iso_duration(&text).unwrap(), Duration::days(d) + Duration::hours(h) + Duration::minutes(m));
        }

        #[test]
        fn never_panics(s in "\\PC{0,12}") {
            let _ = parse_iso_duration(&s);
        }
    }
}
