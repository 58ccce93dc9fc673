//! Decoding one text field into a typed value, following Flink's CSV/JSON rules.
//!
//! An empty field is NULL for every type except `STRING`, where it is the empty
//! string. Integers are range-checked against their column width, decimals are
//! parsed exactly (see [`super::decimal`]), timestamps and dates strictly (see
//! [`super::datetime`]). On failure the caller gets a reason that names the bad
//! text, never a panic.

use super::datetime::{TimestampStandard, parse_date, parse_timestamp_millis};
use super::decimal::parse_decimal;
use super::types::ColumnType;

/// One decoded value, staged before a whole row is committed to the builders.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// Any integer type, a timestamp in milliseconds or a date in days.
    Int(i64),
    /// `FLOAT`.
    F32(f32),
    /// `DOUBLE`.
    F64(f64),
    /// `BOOLEAN`.
    Bool(bool),
    /// A `DECIMAL` mantissa at the column's scale.
    Decimal(i128),
    /// A `STRING`: the byte range of the text in the row's string arena.
    Text {
        /// Start offset in the arena.
        start: usize,
        /// End offset in the arena.
        end: usize,
    },
}

fn parse_integer(text: &str, min: i64, max: i64, ty: &ColumnType) -> Result<Cell, String> {
    let trimmed = text.trim();
    match trimmed.parse::<i64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(Cell::Int(v)),
        Ok(_) => Err(format!("value {trimmed} is out of range for {ty}")),
        Err(e) => match e.kind() {
            std::num::IntErrorKind::PosOverflow | std::num::IntErrorKind::NegOverflow => {
                Err(format!("value {trimmed} is out of range for {ty}"))
            }
            _ => Err(format!("invalid integer '{text}'")),
        },
    }
}

fn parse_bool(text: &str) -> Result<Cell, String> {
    let trimmed = text.trim();
    if trimmed.eq_ignore_ascii_case("true") {
        Ok(Cell::Bool(true))
    } else if trimmed.eq_ignore_ascii_case("false") {
        Ok(Cell::Bool(false))
    } else {
        Err(format!(
            "invalid boolean '{text}'; expected 'true' or 'false'"
        ))
    }
}

/// Decodes `text` as a value of type `ty`. `STRING` text is copied into `arena`.
pub fn decode_text(
    ty: &ColumnType,
    text: &str,
    standard: TimestampStandard,
    arena: &mut String,
) -> Result<Cell, String> {
    if let ColumnType::String = ty {
        let start = arena.len();
        arena.push_str(text);
        return Ok(Cell::Text {
            start,
            end: arena.len(),
        });
    }
    if text.trim().is_empty() {
        return Ok(Cell::Null);
    }
    match ty {
        ColumnType::TinyInt => parse_integer(text, i64::from(i8::MIN), i64::from(i8::MAX), ty),
        ColumnType::SmallInt => parse_integer(text, i64::from(i16::MIN), i64::from(i16::MAX), ty),
        ColumnType::Int => parse_integer(text, i64::from(i32::MIN), i64::from(i32::MAX), ty),
        ColumnType::BigInt => parse_integer(text, i64::MIN, i64::MAX, ty),
        ColumnType::Float => text
            .trim()
            .parse::<f32>()
            .map(Cell::F32)
            .map_err(|_| format!("invalid float '{text}'")),
        ColumnType::Double => text
            .trim()
            .parse::<f64>()
            .map(Cell::F64)
            .map_err(|_| format!("invalid double '{text}'")),
        ColumnType::Boolean => parse_bool(text),
        ColumnType::Decimal { precision, scale } => {
            parse_decimal(text, *precision, *scale).map(Cell::Decimal)
        }
        ColumnType::Timestamp { .. } => {
            parse_timestamp_millis(text.trim(), standard).map(Cell::Int)
        }
        ColumnType::Date => parse_date(text.trim()).map(|d| Cell::Int(i64::from(d))),
        ColumnType::String => Ok(Cell::Null),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(ty: ColumnType, text: &str) -> Result<Cell, String> {
        decode_text(&ty, text, TimestampStandard::Sql, &mut String::new())
    }

    #[test]
    fn integers_are_range_checked() {
        assert_eq!(dec(ColumnType::TinyInt, "127"), Ok(Cell::Int(127)));
        assert_eq!(
            dec(ColumnType::TinyInt, "128").unwrap_err(),
            "value 128 is out of range for TINYINT"
        );
        assert_eq!(dec(ColumnType::SmallInt, "-32768"), Ok(Cell::Int(-32768)));
        assert!(dec(ColumnType::SmallInt, "40000").is_err());
        assert_eq!(dec(ColumnType::Int, " 7 "), Ok(Cell::Int(7)));
        assert!(dec(ColumnType::Int, "3000000000").is_err());
        assert_eq!(
            dec(ColumnType::BigInt, "9223372036854775808").unwrap_err(),
            "value 9223372036854775808 is out of range for BIGINT"
        );
        assert_eq!(
            dec(ColumnType::BigInt, "1.5").unwrap_err(),
            "invalid integer '1.5'"
        );
    }

    #[test]
    fn empty_is_null_except_for_strings() {
        assert_eq!(dec(ColumnType::BigInt, ""), Ok(Cell::Null));
        assert_eq!(dec(ColumnType::Date, ""), Ok(Cell::Null));
        let mut arena = String::from("xy");
        let cell = decode_text(&ColumnType::String, "", TimestampStandard::Sql, &mut arena);
        assert_eq!(cell, Ok(Cell::Text { start: 2, end: 2 }));
    }

    #[test]
    fn floats_booleans_dates_timestamps_and_decimals() {
        assert_eq!(dec(ColumnType::Double, "1.5e3"), Ok(Cell::F64(1500.0)));
        assert_eq!(dec(ColumnType::Float, "0.25"), Ok(Cell::F32(0.25)));
        assert!(dec(ColumnType::Double, "one").is_err());
        assert_eq!(dec(ColumnType::Boolean, "TRUE"), Ok(Cell::Bool(true)));
        assert_eq!(dec(ColumnType::Boolean, "False"), Ok(Cell::Bool(false)));
        assert!(dec(ColumnType::Boolean, "yes").is_err());
        assert_eq!(dec(ColumnType::Date, "1970-01-11"), Ok(Cell::Int(10)));
        assert_eq!(
            dec(ColumnType::Timestamp { tz: None }, "1970-01-01 00:00:01.5"),
            Ok(Cell::Int(1500))
        );
        let iso = dec(ColumnType::Timestamp { tz: None }, "1970-01-01T00:00:01").unwrap_err();
        assert!(iso.contains("'T' separator"), "{iso}");
        let d = ColumnType::Decimal {
            precision: 18,
            scale: 2,
        };
        assert_eq!(dec(d.clone(), "1.555"), Ok(Cell::Decimal(156)));
        assert_eq!(dec(d.clone(), "1e3"), Ok(Cell::Decimal(100_000)));
        assert_eq!(dec(d, "abc").unwrap_err(), "invalid decimal 'abc'");
    }
}
