//! Mapping between Flink SQL column types and Arrow types.
//!
//! [`sql_type_to_arrow`] decides which Flink types a `CREATE TABLE` may use and what
//! Arrow type each becomes; [`arrow_to_sql_type`] goes back, rendering an Arrow type
//! with its Flink name for EXPLAIN and error messages.
//!
//! Deliberate choices:
//! - `DECIMAL` without arguments is `DECIMAL(10, 0)`, as in Flink. Money stays
//!   `Decimal128` end to end.
//! - Timestamps are stored with millisecond precision. `TIMESTAMP` and `TIMESTAMP(p)`
//!   with `p <= 3` become `Timestamp(Millisecond, None)`; higher precisions are
//!   rejected rather than silently truncated. (Flink's bare `TIMESTAMP` means
//!   `TIMESTAMP(6)`; Watershed reads it as `TIMESTAMP(3)`.)
//! - `TIMESTAMP_LTZ(p)` (also written `TIMESTAMP(p) WITH LOCAL TIME ZONE`) is an
//!   instant: `Timestamp(Millisecond, Some("UTC"))`.
//! - `VARCHAR(n)` / `CHAR(n)` lengths are accepted but not enforced: all strings are
//!   `Utf8`.

use std::sync::Arc;

use arrow::datatypes::{DataType, IntervalUnit, TimeUnit};
use datafusion::sql::sqlparser::ast::{self, ExactNumberInfo, TimezoneInfo};

/// Flink's default precision for `DECIMAL` without arguments.
const DEFAULT_DECIMAL_PRECISION: u8 = 10;
/// The largest precision `Decimal128` can hold.
const MAX_DECIMAL_PRECISION: u64 = 38;
/// The finest timestamp precision Watershed stores (milliseconds).
const MAX_TIMESTAMP_PRECISION: u64 = 3;
/// The time zone given to `TIMESTAMP_LTZ` columns.
const LTZ_TIME_ZONE: &str = "UTC";

/// Converts a column type as parsed by sqlparser to the Arrow type Watershed stores.
///
/// The error is a human-readable reason, e.g. `"TIMESTAMP(6): only millisecond
/// precision (TIMESTAMP(3)) is supported"`; the caller adds the position.
pub fn sql_type_to_arrow(sql_type: &ast::DataType) -> Result<DataType, String> {
    use ast::DataType as T;
    let written = sql_type_text(sql_type);
    match sql_type {
        T::BigInt(None) => Ok(DataType::Int64),
        T::Int(None) | T::Integer(None) => Ok(DataType::Int32),
        T::SmallInt(None) => Ok(DataType::Int16),
        T::TinyInt(None) => Ok(DataType::Int8),
        T::BigInt(Some(_))
        | T::Int(Some(_))
        | T::Integer(Some(_))
        | T::SmallInt(Some(_))
        | T::TinyInt(Some(_)) => Err(format!(
            "{written}: integer types take no length in Flink SQL"
        )),
        T::Double(ExactNumberInfo::None) | T::DoublePrecision => Ok(DataType::Float64),
        T::Float(ExactNumberInfo::None) | T::Real => Ok(DataType::Float32),
        T::Boolean | T::Bool => Ok(DataType::Boolean),
        T::String(None)
        | T::Text
        | T::Varchar(_)
        | T::Char(_)
        | T::Character(_)
        | T::CharVarying(_)
        | T::CharacterVarying(_) => Ok(DataType::Utf8),
        T::Decimal(info) | T::Numeric(info) | T::Dec(info) => decimal(info, &written),
        T::Timestamp(precision, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => {
            check_timestamp_precision(*precision, &written)?;
            Ok(DataType::Timestamp(TimeUnit::Millisecond, None))
        }
        T::Timestamp(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => Err(format!(
            "{written}: TIMESTAMP WITH TIME ZONE is not a Flink type; use TIMESTAMP_LTZ(3)"
        )),
        T::Custom(name, modifiers) if is_timestamp_ltz(name) => {
            let precision = match modifiers.as_slice() {
                [] => None,
                [p] => Some(
                    p.trim()
                        .parse::<u64>()
                        .map_err(|_| format!("{written}: invalid precision `{p}`"))?,
                ),
                _ => return Err(format!("{written}: expected TIMESTAMP_LTZ(p)")),
            };
            check_timestamp_precision(precision, &written)?;
            Ok(DataType::Timestamp(
                TimeUnit::Millisecond,
                Some(Arc::from(LTZ_TIME_ZONE)),
            ))
        }
        T::Date => Ok(DataType::Date32),
        T::Bytes(None) | T::Varbinary(_) | T::Binary(_) | T::Bytea => Ok(DataType::Binary),
        T::Custom(..) => Err(format!("unknown data type {written}")),
        _ => Err(format!("data type {written} is not supported")),
    }
}

/// Renders a parsed column type the way it was written, upper-cased and with a space
/// after each comma: `decimal(18,2)` becomes `DECIMAL(18, 2)`.
pub fn sql_type_text(sql_type: &ast::DataType) -> String {
    if let ast::DataType::Custom(name, modifiers) = sql_type
        && is_timestamp_ltz(name)
    {
        return match modifiers.as_slice() {
            [] => "TIMESTAMP_LTZ".to_string(),
            _ => format!("TIMESTAMP_LTZ({})", modifiers.join(", ")),
        };
    }
    let text = sql_type.to_string().to_uppercase();
    let mut normalized = String::with_capacity(text.len() + 4);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        normalized.push(c);
        if c == ',' && chars.peek().is_some_and(|next| !next.is_whitespace()) {
            normalized.push(' ');
        }
    }
    normalized
}

/// Renders an Arrow type with its Flink SQL name: `BIGINT`, `DECIMAL(38, 2)`,
/// `TIMESTAMP(3)`, `STRING`, ... Types without a Flink counterpart fall back to
/// Arrow's own name.
pub fn arrow_to_sql_type(data_type: &DataType) -> String {
    match data_type {
        DataType::Null => "NULL".to_string(),
        DataType::Boolean => "BOOLEAN".to_string(),
        DataType::Int8 => "TINYINT".to_string(),
        DataType::Int16 => "SMALLINT".to_string(),
        DataType::Int32 => "INT".to_string(),
        DataType::Int64 => "BIGINT".to_string(),
        DataType::Float32 => "FLOAT".to_string(),
        DataType::Float64 => "DOUBLE".to_string(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "STRING".to_string(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "BYTES".to_string(),
        DataType::FixedSizeBinary(n) => format!("BINARY({n})"),
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => format!("DECIMAL({p}, {s})"),
        DataType::Date32 | DataType::Date64 => "DATE".to_string(),
        DataType::Timestamp(unit, tz) => {
            let precision = time_unit_precision(unit);
            match tz {
                None => format!("TIMESTAMP({precision})"),
                Some(_) => format!("TIMESTAMP_LTZ({precision})"),
            }
        }
        DataType::Time32(unit) | DataType::Time64(unit) => {
            format!("TIME({})", time_unit_precision(unit))
        }
        DataType::Interval(IntervalUnit::YearMonth) => "INTERVAL YEAR TO MONTH".to_string(),
        DataType::Interval(IntervalUnit::DayTime | IntervalUnit::MonthDayNano) => {
            "INTERVAL DAY TO SECOND(3)".to_string()
        }
        DataType::List(field)
        | DataType::LargeList(field)
        | DataType::ListView(field)
        | DataType::LargeListView(field)
        | DataType::FixedSizeList(field, _) => {
            format!("ARRAY<{}>", field_type(field))
        }
        DataType::Map(entries, _) => match entries.data_type() {
            DataType::Struct(fields) if fields.len() == 2 => {
                format!(
                    "MAP<{}, {}>",
                    field_type(&fields[0]),
                    field_type(&fields[1])
                )
            }
            other => format!("MAP<{}>", arrow_to_sql_type(other)),
        },
        DataType::Struct(fields) => {
            let fields: Vec<String> = fields
                .iter()
                .map(|field| format!("`{}` {}", field.name(), field_type(field)))
                .collect();
            format!("ROW<{}>", fields.join(", "))
        }
        DataType::Dictionary(_, value) => arrow_to_sql_type(value),
        other => other.to_string().to_uppercase(),
    }
}

/// A field's type with ` NOT NULL` when the field is not nullable.
fn field_type(field: &arrow::datatypes::Field) -> String {
    let sql = arrow_to_sql_type(field.data_type());
    if field.is_nullable() {
        sql
    } else {
        format!("{sql} NOT NULL")
    }
}

/// Fractional-second digits of an Arrow time unit.
fn time_unit_precision(unit: &TimeUnit) -> u8 {
    match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 3,
        TimeUnit::Microsecond => 6,
        TimeUnit::Nanosecond => 9,
    }
}

/// Whether a custom type name is `TIMESTAMP_LTZ` (sqlparser has no keyword for it).
fn is_timestamp_ltz(name: &ast::ObjectName) -> bool {
    match name.0.as_slice() {
        [part] => part
            .as_ident()
            .is_some_and(|ident| ident.value.eq_ignore_ascii_case("TIMESTAMP_LTZ")),
        _ => false,
    }
}

/// Rejects timestamp precisions finer than milliseconds.
fn check_timestamp_precision(precision: Option<u64>, written: &str) -> Result<(), String> {
    match precision {
        Some(p) if p > MAX_TIMESTAMP_PRECISION => Err(format!(
            "{written}: only millisecond precision (TIMESTAMP(3)) is supported"
        )),
        _ => Ok(()),
    }
}

/// `DECIMAL` / `NUMERIC` with Flink's defaults and Decimal128's limits.
fn decimal(info: &ExactNumberInfo, written: &str) -> Result<DataType, String> {
    let (precision, scale) = match info {
        ExactNumberInfo::None => (u64::from(DEFAULT_DECIMAL_PRECISION), 0),
        ExactNumberInfo::Precision(p) => (*p, 0),
        ExactNumberInfo::PrecisionAndScale(p, s) => (*p, *s),
    };
    if !(1..=MAX_DECIMAL_PRECISION).contains(&precision) {
        return Err(format!(
            "{written}: precision must be between 1 and {MAX_DECIMAL_PRECISION}"
        ));
    }
    if scale < 0 || scale.unsigned_abs() > precision {
        return Err(format!(
            "{written}: scale must be between 0 and the precision ({precision})"
        ));
    }
    // Both bounds were checked above, so the conversions cannot fail.
    let precision = u8::try_from(precision).map_err(|e| format!("{written}: {e}"))?;
    let scale = i8::try_from(scale).map_err(|e| format!("{written}: {e}"))?;
    Ok(DataType::Decimal128(precision, scale))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn parse_type(text: &str) -> ast::DataType {
        let dialect = GenericDialect {};
        let mut parser = Parser::new(&dialect)
            .try_with_sql(text)
            .expect("tokenize type");
        parser.parse_data_type().expect("parse type")
    }

    fn arrow(text: &str) -> Result<DataType, String> {
        sql_type_to_arrow(&parse_type(text))
    }

    #[test]
    fn integer_and_float_types() {
        assert_eq!(arrow("BIGINT"), Ok(DataType::Int64));
        assert_eq!(arrow("INT"), Ok(DataType::Int32));
        assert_eq!(arrow("INTEGER"), Ok(DataType::Int32));
        assert_eq!(arrow("SMALLINT"), Ok(DataType::Int16));
        assert_eq!(arrow("TINYINT"), Ok(DataType::Int8));
        assert_eq!(arrow("DOUBLE"), Ok(DataType::Float64));
        assert_eq!(arrow("DOUBLE PRECISION"), Ok(DataType::Float64));
        assert_eq!(arrow("FLOAT"), Ok(DataType::Float32));
        assert_eq!(arrow("REAL"), Ok(DataType::Float32));
        assert_eq!(arrow("BOOLEAN"), Ok(DataType::Boolean));
        assert!(arrow("BIGINT(20)").is_err());
    }

    #[test]
    fn string_and_binary_types() {
        for text in ["STRING", "VARCHAR(10)", "CHAR(3)", "TEXT", "varchar"] {
            assert_eq!(arrow(text), Ok(DataType::Utf8), "{text}");
        }
        for text in ["BYTES", "VARBINARY(16)", "BINARY(4)"] {
            assert_eq!(arrow(text), Ok(DataType::Binary), "{text}");
        }
    }

    #[test]
    fn decimal_types() {
        assert_eq!(arrow("DECIMAL(18, 2)"), Ok(DataType::Decimal128(18, 2)));
        assert_eq!(arrow("NUMERIC(38,10)"), Ok(DataType::Decimal128(38, 10)));
        assert_eq!(arrow("DECIMAL"), Ok(DataType::Decimal128(10, 0)));
        assert_eq!(arrow("DECIMAL(5)"), Ok(DataType::Decimal128(5, 0)));
        let error = arrow("DECIMAL(39, 2)").unwrap_err();
        assert!(
            error.contains("precision must be between 1 and 38"),
            "{error}"
        );
        assert!(arrow("DECIMAL(0, 0)").is_err());
        assert!(arrow("DECIMAL(5, 6)").is_err());
    }

    #[test]
    fn temporal_types() {
        let ms = DataType::Timestamp(TimeUnit::Millisecond, None);
        assert_eq!(arrow("TIMESTAMP(3)"), Ok(ms.clone()));
        assert_eq!(arrow("TIMESTAMP"), Ok(ms.clone()));
        assert_eq!(arrow("TIMESTAMP(0)"), Ok(ms.clone()));
        assert_eq!(arrow("TIMESTAMP(3) WITHOUT TIME ZONE"), Ok(ms));
        let error = arrow("TIMESTAMP(6)").unwrap_err();
        assert!(error.contains("only millisecond precision"), "{error}");
        assert!(arrow("TIMESTAMP(9)").is_err());
        assert!(arrow("TIMESTAMP WITH TIME ZONE").is_err());
        assert_eq!(
            arrow("TIMESTAMP_LTZ(3)"),
            Ok(DataType::Timestamp(
                TimeUnit::Millisecond,
                Some(Arc::from("UTC"))
            ))
        );
        assert!(arrow("TIMESTAMP_LTZ(6)").is_err());
        assert_eq!(arrow("DATE"), Ok(DataType::Date32));
    }

    #[test]
    fn unknown_and_unsupported_types() {
        let error = arrow("BIGNT").unwrap_err();
        assert_eq!(error, "unknown data type BIGNT");
        let error = arrow("JSON").unwrap_err();
        assert_eq!(error, "data type JSON is not supported");
    }

    #[test]
    fn sql_type_text_is_normalized() {
        assert_eq!(
            sql_type_text(&parse_type("decimal(18,2)")),
            "DECIMAL(18, 2)"
        );
        assert_eq!(sql_type_text(&parse_type("timestamp(3)")), "TIMESTAMP(3)");
        assert_eq!(sql_type_text(&parse_type("string")), "STRING");
        assert_eq!(
            sql_type_text(&parse_type("TIMESTAMP_LTZ(3)")),
            "TIMESTAMP_LTZ(3)"
        );
    }

    #[test]
    fn arrow_types_render_with_flink_names() {
        assert_eq!(arrow_to_sql_type(&DataType::Int64), "BIGINT");
        assert_eq!(arrow_to_sql_type(&DataType::Int32), "INT");
        assert_eq!(arrow_to_sql_type(&DataType::Utf8), "STRING");
        assert_eq!(
            arrow_to_sql_type(&DataType::Decimal128(38, 2)),
            "DECIMAL(38, 2)"
        );
        assert_eq!(
            arrow_to_sql_type(&DataType::Timestamp(TimeUnit::Millisecond, None)),
            "TIMESTAMP(3)"
        );
        assert_eq!(
            arrow_to_sql_type(&DataType::Timestamp(
                TimeUnit::Millisecond,
                Some(Arc::from("UTC"))
            )),
            "TIMESTAMP_LTZ(3)"
        );
        assert_eq!(arrow_to_sql_type(&DataType::Date32), "DATE");
        assert_eq!(arrow_to_sql_type(&DataType::Binary), "BYTES");
        assert_eq!(arrow_to_sql_type(&DataType::Float64), "DOUBLE");
        assert_eq!(arrow_to_sql_type(&DataType::Boolean), "BOOLEAN");
    }

    #[test]
    fn round_trip_of_supported_types() {
        for text in [
            "BIGINT",
            "INT",
            "SMALLINT",
            "TINYINT",
            "DOUBLE",
            "FLOAT",
            "BOOLEAN",
            "STRING",
            "DECIMAL(18, 2)",
            "TIMESTAMP(3)",
            "TIMESTAMP_LTZ(3)",
            "DATE",
            "BYTES",
        ] {
            let data_type = arrow(text).expect("supported");
            assert_eq!(arrow_to_sql_type(&data_type), text);
        }
    }
}
