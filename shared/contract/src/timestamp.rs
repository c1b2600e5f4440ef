//! Timestamps: parsing RFC 3339 and normalising to what storage keeps.

use chrono::{DateTime, Datelike, SubsecRound, TimeDelta, Timelike, Utc};

const NANOS_PER_SEC: u32 = 1_000_000_000;

/// Parses an RFC 3339 date-time that carries an offset (`Z` or `±HH:MM`),
/// normalised to UTC microseconds. `None` when it is not one, or when its
/// UTC form falls outside years 0000..=9999 (it would have no RFC 3339 form
/// to be written back in the record).
pub fn parse(text: &str) -> Option<DateTime<Utc>> {
    // chrono also takes U+2212 (a Unicode minus) in offsets; RFC 3339 is ASCII.
    if !text.is_ascii() {
        return None;
    }
    let utc = DateTime::parse_from_rfc3339(text).ok()?.with_timezone(&Utc);
    let normalised = normalise(utc);
    (0..=9999)
        .contains(&normalised.year())
        .then_some(normalised)
}

/// Moves a leap second (chrono keeps `:60` as second 59 with a nanosecond
/// field of one second or more) to the first instant of the next second, as
/// PostgreSQL does, then truncates to microseconds, the precision that
/// PostgreSQL `timestamptz` and Parquet µs timestamps keep.
pub(crate) fn normalise(t: DateTime<Utc>) -> DateTime<Utc> {
    let t = if t.nanosecond() >= NANOS_PER_SEC {
        t.with_nanosecond(0)
            .and_then(|start| start.checked_add_signed(TimeDelta::seconds(1)))
            // Only unreachable at chrono's last representable second.
            .unwrap_or(t)
    } else {
        t
    };
    t.trunc_subsecs(6)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("test timestamp")
            .with_timezone(&Utc)
    }

    #[test]
    fn offsets_are_normalised_to_utc() {
        assert_eq!(
            parse("2026-03-01T14:00:00+02:00"),
            Some(utc("2026-03-01T12:00:00Z"))
        );
        assert_eq!(
            parse("2026-03-01T06:30:00-05:30"),
            Some(utc("2026-03-01T12:00:00Z"))
        );
        assert_eq!(
            parse("2026-03-01t12:00:00z"),
            Some(utc("2026-03-01T12:00:00Z"))
        );
    }

    #[test]
    fn fractions_are_truncated_to_microseconds() {
        assert_eq!(
            parse("2026-03-01T12:00:00.5Z"),
            Some(utc("2026-03-01T12:00:00.500000Z"))
        );
        assert_eq!(
            parse("2026-03-01T12:00:00.123456789Z"),
            Some(utc("2026-03-01T12:00:00.123456Z"))
        );
        assert_eq!(
            parse("2026-03-01T12:00:00.1234567891234Z"),
            Some(utc("2026-03-01T12:00:00.123456Z"))
        );
    }

    #[test]
    fn leap_second_becomes_the_next_second() {
        assert_eq!(
            parse("2016-12-31T23:59:60Z"),
            Some(utc("2017-01-01T00:00:00Z"))
        );
        assert_eq!(
            parse("2016-12-31T23:59:60.999999Z"),
            Some(utc("2017-01-01T00:00:00Z"))
        );
        assert_eq!(
            parse("2017-01-01T00:59:60+01:00"),
            Some(utc("2017-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn rejects_non_rfc3339() {
        for text in [
            "2026-03-01T12:00:00",
            "2026-03-01",
            "2026-03-01T12:00Z",
            "2026-03-01T12:00:00+0200",
            "2026-03-01T12:00:00\u{2212}02:00",
            "2026-02-30T12:00:00Z",
            "2026-03-01T24:00:00Z",
            "2026-03-01T12:00:00+24:00",
            "1772366400",
            "2026-03-01T12:00:00.Z",
            " 2026-03-01T12:00:00Z",
            "2026-03-01T12:00:00Z ",
            "",
        ] {
            assert_eq!(parse(text), None, "{text}");
        }
    }

    #[test]
    fn keeps_to_four_digit_utc_years() {
        assert!(parse("0000-01-01T00:00:00Z").is_some());
        assert!(parse("9999-12-31T23:59:59.999999Z").is_some());
        assert_eq!(parse("0000-01-01T00:00:00+01:00"), None);
        assert_eq!(parse("9999-12-31T23:59:60Z"), None);
        assert_eq!(parse("9999-12-31T23:00:00-01:00"), None);
    }
}
