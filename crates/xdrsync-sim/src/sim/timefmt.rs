//! Timestamps as the simulated services write them: RFC 3339 in UTC with seven fractional digits
//! (`2021-08-13T08:43:35.5533333Z`, the form of the Graph documentation examples; the Sentinel
//! examples use whole seconds, which is the same instant). The simulator keeps its own copy so
//! that it never formats or parses with the product's helpers.

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// `2024-01-02T03:04:05.1234567Z`.
pub fn format(t: OffsetDateTime) -> String {
    let t = t.to_offset(UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:07}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.nanosecond() / 100
    )
}

/// Any RFC 3339 date-time (any number of fractional digits, any offset).
pub fn parse(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("'{s}' is not an RFC 3339 date-time: {e}"))
}

/// `format` of an optional time, as JSON (`null` when absent).
pub fn json_opt(t: Option<OffsetDateTime>) -> serde_json::Value {
    t.map_or(serde_json::Value::Null, |t| serde_json::Value::String(format(t)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_at_100_ns() {
        let t = parse("2021-08-13T08:43:35.5533333Z").unwrap();
        assert_eq!(format(t), "2021-08-13T08:43:35.5533333Z");
        assert_eq!(format(parse("2019-01-01T13:15:30Z").unwrap()), "2019-01-01T13:15:30.0000000Z");
        assert_eq!(format(parse("2021-08-13T10:43:35.5+02:00").unwrap()), "2021-08-13T08:43:35.5000000Z");
        assert!(parse("yesterday").is_err());
    }
}
