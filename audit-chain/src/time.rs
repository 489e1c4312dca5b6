//! Microsecond UTC timestamps, written as RFC 3339 with exactly six fractional digits.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A point in time with microsecond precision, in UTC.
///
/// Its text form is always `YYYY-MM-DDTHH:MM:SS.ffffffZ` (27 bytes), so records sort and
/// compare as text and outside tools parse them with any RFC 3339 parser.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// Length of the text form.
pub const TIMESTAMP_LEN: usize = 27;

impl Timestamp {
    /// The current time. Costs one clock read; formatting happens on the writer.
    pub fn now() -> Self {
        let micros = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => d.as_micros() as i64,
            Err(e) => -(e.duration().as_micros() as i64),
        };
        Timestamp(micros)
    }

    /// From microseconds since the Unix epoch.
    pub const fn from_unix_micros(micros: i64) -> Self {
        Timestamp(micros)
    }

    /// Microseconds since the Unix epoch.
    pub const fn unix_micros(self) -> i64 {
        self.0
    }

    /// Parses RFC 3339 (any offset, any precision; truncated to microseconds), or a bare
    /// date `YYYY-MM-DD` meaning its midnight UTC.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
            return Ok(Timestamp(dt.timestamp_micros()));
        }
        if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            let dt = date.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();
            return Ok(Timestamp(dt.timestamp_micros()));
        }
        Err(format!(
            "`{text}` is not a time: expected RFC 3339 (2026-11-26T07:16:51.123456Z) or a date (2026-11-26)"
        ))
    }

    /// Writes the 27-byte text form.
    pub fn format(self) -> [u8; TIMESTAMP_LEN] {
        let dt = DateTime::<Utc>::from_timestamp_micros(self.0).unwrap_or_default();
        let mut out = *b"0000-00-00T00:00:00.000000Z";
        let year = dt.year().clamp(0, 9999) as u32;
        put(&mut out[0..4], year);
        put(&mut out[5..7], dt.month());
        put(&mut out[8..10], dt.day());
        put(&mut out[11..13], dt.hour());
        put(&mut out[14..16], dt.minute());
        put(&mut out[17..19], dt.second());
        put(&mut out[20..26], self.0.rem_euclid(1_000_000) as u32);
        out
    }
}

impl Default for Timestamp {
    /// The Unix epoch.
    fn default() -> Self {
        Timestamp(0)
    }
}

fn put(slot: &mut [u8], mut value: u32) {
    for byte in slot.iter_mut().rev() {
        *byte = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.format();
        f.write_str(std::str::from_utf8(&text).expect("ascii"))
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let text = self.format();
        serializer.serialize_str(std::str::from_utf8(&text).expect("ascii"))
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn six_fraction_digits_and_z() {
        let t = Timestamp::from_unix_micros(1_795_677_411_123_456);
        assert_eq!(t.to_string(), "2026-11-26T07:16:51.123456Z");
        assert_eq!(
            Timestamp::from_unix_micros(0).to_string(),
            "1970-01-01T00:00:00.000000Z"
        );
        assert_eq!(Timestamp::parse(&t.to_string()).unwrap(), t);
    }

    #[test]
    fn parses_offsets_and_dates() {
        let t = Timestamp::parse("2026-11-26T08:16:51.123456+01:00").unwrap();
        assert_eq!(t.to_string(), "2026-11-26T07:16:51.123456Z");
        let d = Timestamp::parse("2026-11-26").unwrap();
        assert_eq!(d.to_string(), "2026-11-26T00:00:00.000000Z");
        assert!(Timestamp::parse("yesterday").unwrap_err().contains("yesterday"));
    }
}
