//! Timestamps as the services write them: RFC 3339, UTC, up to 7 fractional digits.
//!
//! Graph filters compare at 100 ns precision, so we keep what the service sent and format
//! cursors with all 7 digits; `serde` helpers for `OffsetDateTime` fields live here.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Formats as `2024-01-02T03:04:05.1234567Z` (always 7 fractional digits, UTC).
pub fn format(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
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

/// Parses RFC 3339 with any number of fractional digits.
pub fn parse(s: &str) -> Result<OffsetDateTime, time::error::Parse> {
    OffsetDateTime::parse(s, &Rfc3339)
}

/// `#[serde(with = "crate::domain::time_fmt::rfc3339")]`
pub mod rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(t: &OffsetDateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format(*t))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<OffsetDateTime, D::Error> {
        let s = String::deserialize(d)?;
        super::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(default, with = "crate::domain::time_fmt::rfc3339_opt")]`
pub mod rfc3339_opt {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::format(*t)),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<OffsetDateTime>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => super::parse(&s).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_seven_fractional_digits() {
        let t = parse("2021-08-13T08:43:35.5533333Z").unwrap();
        assert_eq!(format(t), "2021-08-13T08:43:35.5533333Z");
    }

    #[test]
    fn accepts_offsets_and_short_fractions() {
        let t = parse("2021-08-13T10:43:35.5+02:00").unwrap();
        assert_eq!(format(t), "2021-08-13T08:43:35.5000000Z");
    }
}
