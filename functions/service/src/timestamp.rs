//! Timestamps as stored: RFC 3339 UTC with exactly six fractional digits.
//!
//! A fixed width matters: DynamoDB compares `scored_at` strings in the
//! condition that stops a stale score overwriting a newer one, and SQLite does
//! the same in SQL. With a fixed format (always `Z`, always microseconds) the
//! lexicographic order of the strings is the chronological order.

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

const STORED: &[time::format_description::FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");

/// Formats `t` (converted to UTC, truncated to microseconds) in the stored form.
pub fn format(t: OffsetDateTime) -> String {
    let utc = t.to_offset(UtcOffset::UTC);
    // Formatting a valid date with this description cannot fail for years
    // 0..=9999; outside that range fall back to plain RFC 3339.
    utc.format(STORED)
        .or_else(|_| utc.format(&Rfc3339))
        .unwrap_or_else(|_| utc.unix_timestamp().to_string())
}

/// Parses any RFC 3339 timestamp (the stored form included).
///
/// # Errors
/// Returns the parse error message when `s` is not RFC 3339.
pub fn parse(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339)
        .map_err(|e| format!("{s:?} is not an RFC 3339 timestamp: {e}"))
}

/// The current time truncated to what the stored form keeps, so a value
/// round-trips through storage unchanged.
pub fn now() -> OffsetDateTime {
    truncate(OffsetDateTime::now_utc())
}

/// `t` in UTC truncated to microseconds.
pub fn truncate(t: OffsetDateTime) -> OffsetDateTime {
    let utc = t.to_offset(UtcOffset::UTC);
    let micros = utc.microsecond();
    utc.replace_microsecond(micros).unwrap_or(utc)
}

/// Serde adapter: `#[serde(with = "crate::timestamp::serde_rfc3339")]`.
pub mod serde_rfc3339 {
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

/// Serde adapter for `Option<OffsetDateTime>`.
pub mod serde_rfc3339_option {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    pub fn serialize<S: Serializer>(t: &Option<OffsetDateTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::format(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        let s = Option::<String>::deserialize(d)?;
        s.map(|s| super::parse(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn stored_form_is_fixed_width_and_orders_like_time() {
        let a = datetime!(2024-05-01 10:00:00.5 UTC);
        let b = datetime!(2024-05-01 10:00:00.123456789 +02:00);
        assert_eq!(format(a), "2024-05-01T10:00:00.500000Z");
        assert_eq!(format(b), "2024-05-01T08:00:00.123456Z");
        assert!(format(b) < format(a));
        assert_eq!(parse(&format(a)).unwrap(), a);
    }

    #[test]
    fn parse_rejects_garbage() {
        assert!(parse("yesterday").is_err());
    }
}
