//! Text forms of `DATE` and `TIMESTAMP(3)`: strict parsing and fast formatting.
//!
//! Parsing follows Flink's SQL format: `yyyy-MM-dd` for dates and
//! `yyyy-MM-dd HH:mm[:ss[.S...]]` for timestamps, with up to nine fractional digits
//! truncated to milliseconds. The ISO-8601 `T` separator is rejected unless the
//! ISO-8601 standard is selected (JSON's `json.timestamp-format.standard`).
//! Both directions are hand-written over the proleptic Gregorian calendar, so they
//! allocate nothing and do not depend on locale or platform.

use std::fmt::Write as _;

const MILLIS_PER_DAY: i64 = 86_400_000;

/// Which textual timestamp standard a format uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampStandard {
    /// `yyyy-MM-dd HH:mm:ss.SSS` (Flink's `'SQL'`, the default).
    #[default]
    Sql,
    /// `yyyy-MM-ddTHH:mm:ss.SSS` (Flink's `'ISO-8601'`); a trailing `Z` is accepted.
    Iso8601,
}

impl TimestampStandard {
    /// The byte separating date and time.
    fn separator(self) -> u8 {
        match self {
            TimestampStandard::Sql => b' ',
            TimestampStandard::Iso8601 => b'T',
        }
    }

    fn pattern(self) -> &'static str {
        match self {
            TimestampStandard::Sql => "yyyy-MM-dd HH:mm:ss[.SSS]",
            TimestampStandard::Iso8601 => "yyyy-MM-ddTHH:mm:ss[.SSS]",
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day count since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Parses exactly `n` ASCII digits at the start of `bytes`.
fn digits(bytes: &[u8], n: usize) -> Option<u32> {
    let part = bytes.get(..n)?;
    part.iter().try_fold(0u32, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

/// Parses `yyyy-MM-dd` at the start of `bytes` into days since the epoch.
fn parse_date_prefix(bytes: &[u8]) -> Option<i64> {
    let year = digits(bytes, 4)?;
    if bytes.get(4) != Some(&b'-') || bytes.get(7) != Some(&b'-') {
        return None;
    }
    let month = digits(&bytes[5..], 2)?;
    let day = digits(&bytes[8..], 2)?;
    let year = i64::from(year);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// Parses a `DATE` in `yyyy-MM-dd` form into days since 1970-01-01.
pub fn parse_date(text: &str) -> Result<i32, String> {
    let bytes = text.as_bytes();
    match parse_date_prefix(bytes) {
        Some(days) if bytes.len() == 10 => {
            i32::try_from(days).map_err(|_| format!("date '{text}' is out of range"))
        }
        _ => Err(format!("invalid date '{text}'; expected 'yyyy-MM-dd'")),
    }
}

/// Parses a `TIMESTAMP(3)` into milliseconds since the epoch (UTC, no zone shift).
pub fn parse_timestamp_millis(text: &str, standard: TimestampStandard) -> Result<i64, String> {
    let bytes = text.as_bytes();
    let invalid = || {
        format!(
            "invalid timestamp '{text}'; expected '{}'",
            standard.pattern()
        )
    };
    let days = parse_date_prefix(bytes).ok_or_else(invalid)?;
    match (bytes.get(10), standard) {
        (Some(b'T'), TimestampStandard::Sql) => {
            return Err(format!(
                "invalid timestamp '{text}': the ISO-8601 'T' separator is not accepted; \
                 expected '{}'",
                standard.pattern()
            ));
        }
        (Some(b' '), TimestampStandard::Iso8601) => {
            return Err(format!(
                "invalid timestamp '{text}': expected the ISO-8601 'T' separator ('{}')",
                standard.pattern()
            ));
        }
        (Some(sep), _) if *sep == standard.separator() => {}
        _ => return Err(invalid()),
    }
    let mut rest = &bytes[11..];
    if standard == TimestampStandard::Iso8601
        && let Some(stripped) = rest.strip_suffix(b"Z")
    {
        rest = stripped;
    }
    let hour = digits(rest, 2).ok_or_else(invalid)?;
    if rest.get(2) != Some(&b':') {
        return Err(invalid());
    }
    let minute = digits(&rest[3..], 2).ok_or_else(invalid)?;
    let mut second = 0;
    let mut millis = 0;
    let mut pos = 5;
    if rest.get(pos) == Some(&b':') {
        second = digits(&rest[pos + 1..], 2).ok_or_else(invalid)?;
        pos += 3;
        if rest.get(pos) == Some(&b'.') {
            let fraction = &rest[pos + 1..];
            if fraction.is_empty() || fraction.len() > 9 || !fraction.iter().all(u8::is_ascii_digit)
            {
                return Err(invalid());
            }
            for (i, b) in fraction.iter().take(3).enumerate() {
                millis += u32::from(b - b'0') * [100, 10, 1][i];
            }
            pos = rest.len();
        }
    }
    if pos != rest.len() || hour > 23 || minute > 59 || second > 59 {
        return Err(invalid());
    }
    let time = i64::from(hour) * 3_600_000
        + i64::from(minute) * 60_000
        + i64::from(second) * 1_000
        + i64::from(millis);
    Ok(days * MILLIS_PER_DAY + time)
}

/// Appends `yyyy-MM-dd`.
pub fn write_date(days: i64, out: &mut String) {
    let (year, month, day) = civil_from_days(days);
    // Writing to a String cannot fail.
    let _ = write!(out, "{year:04}-{month:02}-{day:02}");
}

/// Appends `yyyy-MM-dd HH:mm:ss.SSS` (or with `T` for ISO-8601).
pub fn write_timestamp_millis(millis: i64, standard: TimestampStandard, out: &mut String) {
    let days = millis.div_euclid(MILLIS_PER_DAY);
    let time = millis.rem_euclid(MILLIS_PER_DAY);
    write_date(days, out);
    out.push(char::from(standard.separator()));
    let _ = write!(
        out,
        "{:02}:{:02}:{:02}.{:03}",
        time / 3_600_000,
        time / 60_000 % 60,
        time / 1_000 % 60,
        time % 1_000
    );
}

/// `yyyy-MM-dd HH:mm:ss.SSS` as a new string.
pub fn format_timestamp_millis(millis: i64) -> String {
    let mut s = String::with_capacity(23);
    write_timestamp_millis(millis, TimestampStandard::Sql, &mut s);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQL: TimestampStandard = TimestampStandard::Sql;
    const ISO: TimestampStandard = TimestampStandard::Iso8601;

    #[test]
    fn civil_round_trip() {
        for days in [-1_000_000i64, -719_468, -1, 0, 1, 19_723, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(days_from_civil(2024, 1, 1), 19_723);
    }

    #[test]
    fn parses_sql_timestamps() {
        assert_eq!(parse_timestamp_millis("1970-01-01 00:00:00", SQL), Ok(0));
        assert_eq!(
            parse_timestamp_millis("2023-11-14 22:13:20.123", SQL),
            Ok(1_700_000_000_123)
        );
        assert_eq!(
            parse_timestamp_millis("2023-11-14 22:13:20.1", SQL),
            Ok(1_700_000_000_100)
        );
        assert_eq!(
            parse_timestamp_millis("2023-11-14 22:13:20.123999999", SQL),
            Ok(1_700_000_000_123)
        );
        assert_eq!(
            parse_timestamp_millis("2023-11-14 22:13", SQL),
            Ok(1_700_000_000_000 - 20_000)
        );
        assert_eq!(
            parse_timestamp_millis("1969-12-31 23:59:59.999", SQL),
            Ok(-1)
        );
    }

    #[test]
    fn rejects_bad_timestamps() {
        let err = parse_timestamp_millis("2024-01-01T00:00:00", SQL).unwrap_err();
        assert!(err.contains("'T' separator is not accepted"), "{err}");
        for bad in [
            "",
            "2024-01-01",
            "2024-13-01 00:00:00",
            "2024-02-30 00:00:00",
            "2024-01-01 24:00:00",
            "2024-01-01 00:00:00.",
            "2024-01-01 00:00:00.1234567890",
            "2024-01-01 00:00:00 ",
            "2024-1-01 00:00:00",
            "2024-01-01 00:00:00Z",
        ] {
            assert!(parse_timestamp_millis(bad, SQL).is_err(), "{bad}");
        }
    }

    #[test]
    fn iso_standard_accepts_t_and_z() {
        assert_eq!(
            parse_timestamp_millis("2023-11-14T22:13:20.123", ISO),
            Ok(1_700_000_000_123)
        );
        assert_eq!(
            parse_timestamp_millis("2023-11-14T22:13:20.123Z", ISO),
            Ok(1_700_000_000_123)
        );
        assert!(parse_timestamp_millis("2023-11-14 22:13:20", ISO).is_err());
    }

    #[test]
    fn parses_dates() {
        assert_eq!(parse_date("1970-01-02"), Ok(1));
        assert_eq!(parse_date("2024-02-29"), Ok(19_782));
        assert!(parse_date("2023-02-29").is_err());
        assert!(parse_date("2024-01-01 00:00:00").is_err());
    }

    #[test]
    fn formats_timestamps_and_dates() {
        assert_eq!(
            format_timestamp_millis(1_700_000_000_123),
            "2023-11-14 22:13:20.123"
        );
        assert_eq!(format_timestamp_millis(-1), "1969-12-31 23:59:59.999");
        let mut s = String::new();
        write_timestamp_millis(0, ISO, &mut s);
        assert_eq!(s, "1970-01-01T00:00:00.000");
        let mut s = String::new();
        write_date(19_782, &mut s);
        assert_eq!(s, "2024-02-29");
    }
}
