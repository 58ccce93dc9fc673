//! Flink's `DATE_FORMAT(timestamp, format)`: a timestamp as text, in a Java
//! date pattern (`'yyyy-MM-dd HH:mm:ss'`, Nexmark's `'yyyy-MM-dd'` and
//! `'HH:mm'`). Flink formats with `java.time`'s `DateTimeFormatter`, so the
//! letters mean what they mean there.
//!
//! A constant pattern is parsed once per batch into [`Piece`]s (a pattern
//! column once per change of pattern); each value is converted to its
//! calendar fields once (chrono) and its pieces written straight into the
//! result's buffer. The first argument is a `TIMESTAMP`
//! (any precision, no time zone), a `DATE`, or a string Arrow can cast to a
//! timestamp (`'2024-05-01 12:00:00'`), as Flink also accepts. A NULL argument
//! gives NULL.
//!
//! Pattern letters, as `DateTimeFormatter`'s: `y` and `u` year (`yy`, `uu`
//! two digits), `M` month (`MMM` `Jan`, `MMMM` `January`), `d` day, `D` day
//! of year, `H` hour 0-23, `k` hour 1-24, `K` hour 0-11, `h` hour 1-12, `m`
//! minute, `s` second, `S` fraction of the second (`SSS` milliseconds, `S`
//! tenths, `SSSSSS` microseconds), `a` AM/PM, `E` weekday (`EEE` `Mon`,
//! `EEEE` `Monday`). A numeric field is zero-padded to the number of letters. Text in single quotes is literal (`''` is a quote); other
//! letters (eras, week numbers, time zones) are refused, naming the letter.

use std::fmt::Write;
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDateTime, Timelike};
use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimeUnit, TimestampMillisecondType};
use datafusion::common::{DataFusionError, Result, plan_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

/// Month names, January first.
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

/// Weekday names, Monday first.
const WEEKDAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// A numeric calendar field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Number {
    Year,
    Month,
    Day,
    DayOfYear,
    Hour0To23,
    Hour1To24,
    Hour0To11,
    Hour1To12,
    Minute,
    Second,
}

impl Number {
    fn of(self, t: &NaiveDateTime) -> u32 {
        match self {
            Number::Year => t.year().unsigned_abs(),
            Number::Month => t.month(),
            Number::Day => t.day(),
            Number::DayOfYear => t.ordinal(),
            Number::Hour0To23 => t.hour(),
            Number::Hour1To24 => match t.hour() {
                0 => 24,
                h => h,
            },
            Number::Hour0To11 => t.hour() % 12,
            Number::Hour1To12 => match t.hour() % 12 {
                0 => 12,
                h => h,
            },
            Number::Minute => t.minute(),
            Number::Second => t.second(),
        }
    }
}

/// One piece of a parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    /// A number zero-padded to `width` digits.
    Number { field: Number, width: usize },
    /// The year's last two digits.
    TwoDigitYear,
    /// The first `digits` digits of the fraction of the second.
    Fraction { digits: usize },
    /// The month's name, cut to three letters when `short`.
    MonthName { short: bool },
    /// The weekday's name, cut to three letters when `short`.
    WeekdayName { short: bool },
    /// `AM` or `PM`.
    AmPm,
    /// Literal text.
    Text(String),
}

impl Piece {
    fn write(&self, t: &NaiveDateTime, out: &mut impl Write) -> std::fmt::Result {
        match self {
            Piece::Number { field, width } => {
                if *field == Number::Year && t.year() < 0 {
                    out.write_char('-')?;
                }
                write!(out, "{:0width$}", field.of(t))
            }
            Piece::TwoDigitYear => write!(out, "{:02}", t.year().rem_euclid(100)),
            Piece::Fraction { digits } => {
                let nanos = format!("{:09}", t.nanosecond() % 1_000_000_000);
                let shown = nanos.get(..(*digits).min(9)).unwrap_or(&nanos);
                write!(out, "{shown:0<digits$}")
            }
            Piece::MonthName { short } => out.write_str(cut(MONTHS[t.month0() as usize], *short)),
            Piece::WeekdayName { short } => out.write_str(cut(
                WEEKDAYS[t.weekday().num_days_from_monday() as usize],
                *short,
            )),
            Piece::AmPm => out.write_str(if t.hour() < 12 { "AM" } else { "PM" }),
            Piece::Text(text) => out.write_str(text),
        }
    }
}

/// `name`, or its first three letters when `short`.
fn cut(name: &str, short: bool) -> &str {
    if short {
        name.get(..3).unwrap_or(name)
    } else {
        name
    }
}

/// Parses a `SimpleDateFormat` pattern.
fn parse(pattern: &str) -> Result<Vec<Piece>> {
    let mut pieces: Vec<Piece> = Vec::new();
    let mut literal = String::new();
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // '' is a quote; 'text' is literal text.
            if chars.get(i + 1) == Some(&'\'') {
                literal.push('\'');
                i += 2;
                continue;
            }
            let mut j = i + 1;
            loop {
                match chars.get(j) {
                    None => {
                        return plan_err!(
                            "DATE_FORMAT pattern '{pattern}': unterminated quote at position {i}"
                        );
                    }
                    Some('\'') if chars.get(j + 1) == Some(&'\'') => {
                        literal.push('\'');
                        j += 2;
                    }
                    Some('\'') => break,
                    Some(&ch) => {
                        literal.push(ch);
                        j += 1;
                    }
                }
            }
            i = j + 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            literal.push(c);
            i += 1;
            continue;
        }
        let mut count = 1;
        while chars.get(i + count) == Some(&c) {
            count += 1;
        }
        let number = |field| Piece::Number {
            field,
            width: count,
        };
        let piece = match c {
            'y' | 'u' if count == 2 => Piece::TwoDigitYear,
            'y' | 'u' => number(Number::Year),
            'M' if count >= 4 => Piece::MonthName { short: false },
            'M' if count == 3 => Piece::MonthName { short: true },
            'M' => number(Number::Month),
            'd' => number(Number::Day),
            'D' => number(Number::DayOfYear),
            'H' => number(Number::Hour0To23),
            'k' => number(Number::Hour1To24),
            'K' => number(Number::Hour0To11),
            'h' => number(Number::Hour1To12),
            'm' => number(Number::Minute),
            's' => number(Number::Second),
            'S' => Piece::Fraction { digits: count },
            'E' => Piece::WeekdayName { short: count < 4 },
            'a' => Piece::AmPm,
            other => {
                return plan_err!(
                    "DATE_FORMAT pattern '{pattern}': letter '{other}' is not supported \
                     (supported: y u M d D H k K h m s S E a; quote literal text as 'text')"
                );
            }
        };
        if !literal.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut literal)));
        }
        pieces.push(piece);
        i += count;
    }
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

/// Flink's `DATE_FORMAT(timestamp, format)`.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct DateFormat {
    signature: Signature,
}

impl DateFormat {
    /// The function.
    pub fn new() -> Self {
        DateFormat {
            signature: Signature::user_defined(Volatility::Immutable),
        }
    }
}

impl Default for DateFormat {
    fn default() -> Self {
        Self::new()
    }
}

/// The type the first argument is read as.
const TIMESTAMP_MS: DataType = DataType::Timestamp(TimeUnit::Millisecond, None);

impl ScalarUDFImpl for DateFormat {
    fn name(&self) -> &str {
        "date_format"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        let [value, format] = arg_types else {
            return plan_err!(
                "DATE_FORMAT takes a timestamp and a format, not {} arguments",
                arg_types.len()
            );
        };
        let value = match value {
            DataType::Timestamp(_, None)
            | DataType::Date32
            | DataType::Date64
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Utf8View
            | DataType::Null => TIMESTAMP_MS,
            DataType::Timestamp(_, Some(tz)) => {
                return plan_err!(
                    "DATE_FORMAT of a timestamp with time zone {tz} is not supported yet; \
                     CAST it to TIMESTAMP(3) first"
                );
            }
            other => return plan_err!("DATE_FORMAT formats a TIMESTAMP, not {other}"),
        };
        let format = match format {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Null => {
                DataType::Utf8
            }
            other => return plan_err!("DATE_FORMAT's format is a STRING, not {other}"),
        };
        Ok(vec![value, format])
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let [value, format] = args.args.as_slice() else {
            return plan_err!("DATE_FORMAT takes a timestamp and a format");
        };
        let value = cast(&value.to_array(rows)?, &TIMESTAMP_MS)?;
        let times = value.as_primitive::<TimestampMillisecondType>();
        let format: ArrayRef = format.to_array(rows)?;
        let format = format.as_string::<i32>();
        let width = if format.is_empty() || format.is_null(0) {
            0
        } else {
            format.value(0).len()
        };
        let mut out = StringBuilder::with_capacity(rows, rows * width);
        // The pattern last parsed (a constant pattern: once per batch).
        let mut parsed: Option<(&str, Vec<Piece>)> = None;
        for i in 0..rows {
            if times.is_null(i) || format.is_null(i) {
                out.append_null();
                continue;
            }
            let ms = times.value(i);
            let time = DateTime::from_timestamp_millis(ms)
                .map(|t| t.naive_utc())
                .ok_or_else(|| {
                    DataFusionError::Execution(format!(
                        "DATE_FORMAT: timestamp {ms} ms is out of range"
                    ))
                })?;
            let pattern = format.value(i);
            if parsed.as_ref().is_none_or(|(p, _)| *p != pattern) {
                parsed = Some((pattern, parse(pattern)?));
            }
            let pieces = parsed
                .as_ref()
                .map_or(&[][..], |(_, pieces)| pieces.as_slice());
            for piece in pieces {
                piece
                    .write(&time, &mut out)
                    .map_err(|e| DataFusionError::Execution(format!("DATE_FORMAT: {e}")))?;
            }
            out.append_value("");
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `ms` formatted by `pattern` with this module.
    fn format(ms: i64, pattern: &str) -> String {
        let time = DateTime::from_timestamp_millis(ms).unwrap().naive_utc();
        let mut out = String::new();
        for piece in parse(pattern).unwrap() {
            piece.write(&time, &mut out).unwrap();
        }
        out
    }

    /// Every supported letter against chrono's own strftime formatting of the
    /// same instants (an independent implementation).
    #[test]
    fn matches_strftime_over_many_instants() {
        let cases = [
            ("yyyy-MM-dd HH:mm:ss", "%Y-%m-%d %H:%M:%S"),
            ("yyyy-MM-dd", "%Y-%m-%d"),
            ("HH:mm", "%H:%M"),
            ("yy/M/d h:m a", "%y/%-m/%-d %-I:%-M %p"),
            ("EEE, d MMM yyyy", "%a, %-d %b %Y"),
            ("EEEE MMMM dd", "%A %B %d"),
            ("DDD k K s", "%j %k %l %-S"),
            ("uuuu/uu", "%Y/%y"),
        ];
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..2_000 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // 1970 to about 2100.
            let ms = (state >> 20) as i64 % 4_102_444_800_000;
            let time = DateTime::from_timestamp_millis(ms).unwrap().naive_utc();
            for (pattern, strftime) in cases {
                let mut expected = time.format(strftime).to_string();
                if pattern == "DDD k K s" {
                    // chrono pads %k and %l with spaces and counts %l from
                    // 1; Java's k is unpadded 1-24 and K unpadded 0-11.
                    let h = time.hour();
                    expected = format!(
                        "{} {} {} {}",
                        time.format("%j"),
                        if h == 0 { 24 } else { h },
                        h % 12,
                        time.second()
                    );
                }
                assert_eq!(format(ms, pattern), expected, "{ms} ms as {pattern}");
            }
        }
    }

    #[test]
    fn milliseconds_quotes_and_literals() {
        // 2024-02-29 13:05:09.042 UTC
        let ms = 1_709_211_909_042;
        assert_eq!(format(ms, "HH:mm:ss.SSS"), "13:05:09.042");
        assert_eq!(format(ms, "yyyy'T'HH 'o''clock' ''"), "2024T13 o'clock '");
        // S is a fraction of the second (java.time), not a count of ms.
        assert_eq!(format(ms, "s.S|s.SS|s.SSSSSS"), "9.0|9.04|9.042000");
        assert_eq!(format(0, "yyyyMMddHHmmss"), "19700101000000");
    }

    #[test]
    fn unsupported_letters_and_open_quotes_are_errors() {
        let err = parse("yyyy-MM-dd G").unwrap_err().to_string();
        assert!(err.contains("letter 'G' is not supported"), "{err}");
        let err = parse("HH 'o clock").unwrap_err().to_string();
        assert!(err.contains("unterminated quote"), "{err}");
    }
}
