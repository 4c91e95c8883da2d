//! Instants as Unix milliseconds, written as RFC 3339 UTC with a `Z` and three fraction digits.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::OffsetDateTime;

/// A point in time with millisecond precision. Ordering follows time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, format = DateTime, example = "2026-11-22T10:15:30.000Z"))]
pub struct Timestamp(i64);

impl Timestamp {
    /// From milliseconds since 1970-01-01T00:00:00Z.
    pub const fn from_unix_millis(ms: i64) -> Self {
        Timestamp(ms)
    }

    /// Milliseconds since 1970-01-01T00:00:00Z.
    pub const fn unix_millis(self) -> i64 {
        self.0
    }

    /// Whole seconds since the epoch (rounded down).
    pub const fn unix_seconds(self) -> i64 {
        self.0.div_euclid(1000)
    }

    /// Parses any RFC 3339 instant that is in the years 0000 to 9999 in UTC (what
    /// [`Timestamp::to_rfc3339`] writes: `0000-01-01T00:00:00+00:01` is in year −1 in UTC, and
    /// is refused); sub-millisecond digits are dropped.
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let dt = OffsetDateTime::parse(s, &Rfc3339).ok()?;
        let nanos = dt.unix_timestamp_nanos();
        let utc = OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()?;
        if !(0..=9999).contains(&utc.year()) {
            return None;
        }
        i64::try_from(nanos.div_euclid(1_000_000))
            .ok()
            .map(Timestamp)
    }

    /// The UTC calendar day, `2026-11-22` (daily caps reset at its end).
    pub fn utc_day(self) -> String {
        let format = format_description!("[year]-[month]-[day]");
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .ok()
            .and_then(|dt| dt.format(&format).ok())
            .unwrap_or_else(|| "1970-01-01".to_owned())
    }

    /// `2026-11-22T10:15:30.123Z`.
    pub fn to_rfc3339(self) -> String {
        let format = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .ok()
            .and_then(|dt| dt.format(&format).ok())
            // Out of the representable range (years beyond ±9999): the epoch says "unknown"
            // rather than failing a request.
            .unwrap_or_else(|| "1970-01-01T00:00:00.000Z".to_owned())
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_rfc3339())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Timestamp::parse_rfc3339(&s)
            .ok_or_else(|| serde::de::Error::custom("expected an RFC 3339 timestamp"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_millis_and_z() {
        let t = Timestamp::from_unix_millis(1_795_000_000_123);
        assert_eq!(t.to_rfc3339(), "2026-11-18T11:06:40.123Z");
        assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Some(t));
    }

    #[test]
    fn parses_offsets_and_drops_sub_millis() {
        let t = Timestamp::parse_rfc3339("2026-11-18T12:06:40.123999+01:00");
        assert_eq!(t, Some(Timestamp::from_unix_millis(1_795_000_000_123)));
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), None);
    }

    /// Every instant read is one the timestamp can write back. Found by the `journal` fuzz
    /// target (a change must read back from the JSON the journal stores): an offset moved
    /// `0000-01-01T00:00:00+00:01` to year −1, written as text no parser reads, and
    /// `9999-12-31T23:59:59-00:01` to year 10000, written as the epoch.
    #[test]
    fn refuses_instants_it_cannot_write() {
        for outside in [
            "0000-01-01T00:00:00+00:01",
            "9999-12-31T23:59:59-00:01",
            "9999-12-31T23:30:00-23:59",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(outside), None, "{outside}");
        }
        for edge in [
            "0000-01-01T00:00:00Z",
            "0000-01-01T00:01:00+00:01",
            "9999-12-31T23:59:59.999Z",
            "9999-12-31T22:59:59.999-01:00",
        ] {
            let t = Timestamp::parse_rfc3339(edge).expect(edge);
            assert_eq!(Timestamp::parse_rfc3339(&t.to_rfc3339()), Some(t), "{edge}");
        }
        assert_eq!(
            Timestamp::parse_rfc3339("0000-01-01T00:00:00Z").map(Timestamp::to_rfc3339),
            Some("0000-01-01T00:00:00.000Z".to_owned())
        );
    }

    #[test]
    fn utc_days() {
        assert_eq!(Timestamp::from_unix_millis(0).utc_day(), "1970-01-01");
        let midnight = Timestamp::parse_rfc3339("2026-11-22T00:00:00Z").expect("parses");
        assert_eq!(midnight.utc_day(), "2026-11-22");
        let before = Timestamp::from_unix_millis(midnight.unix_millis() - 1);
        assert_eq!(before.utc_day(), "2026-11-21");
    }

    #[test]
    fn serde_round_trip() {
        let t = Timestamp::from_unix_millis(0);
        let json = serde_json::to_string(&t).unwrap_or_default();
        assert_eq!(json, "\"1970-01-01T00:00:00.000Z\"");
        let back: Timestamp = serde_json::from_str(&json).unwrap_or(Timestamp(1));
        assert_eq!(back, t);
    }
}
