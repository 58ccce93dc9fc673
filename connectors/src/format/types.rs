//! The column types connectors read and write, and their Flink SQL names.
//!
//! Tables use a fixed set of Arrow types (see the crate docs); [`ColumnType`] is
//! that set as an enum, so decoders and generators match on it once per column
//! instead of on Arrow's open-ended `DataType` per value.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Schema, TimeUnit};
use watershed_engine::EngineError;

/// A column type supported by the text formats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnType {
    /// `TINYINT` (Arrow `Int8`).
    TinyInt,
    /// `SMALLINT` (Arrow `Int16`).
    SmallInt,
    /// `INT` (Arrow `Int32`).
    Int,
    /// `BIGINT` (Arrow `Int64`).
    BigInt,
    /// `FLOAT` (Arrow `Float32`).
    Float,
    /// `DOUBLE` (Arrow `Float64`).
    Double,
    /// `BOOLEAN` (Arrow `Boolean`).
    Boolean,
    /// `STRING` / `VARCHAR` (Arrow `Utf8`).
    String,
    /// `DECIMAL(p, s)` (Arrow `Decimal128(p, s)`).
    Decimal {
        /// Total number of digits.
        precision: u8,
        /// Digits after the decimal point.
        scale: i8,
    },
    /// `TIMESTAMP(3)` (Arrow `Timestamp(Millisecond, tz)`).
    Timestamp {
        /// Arrow's time zone annotation, kept as is.
        tz: Option<Arc<str>>,
    },
    /// `DATE` (Arrow `Date32`).
    Date,
}

impl ColumnType {
    /// The supported type for an Arrow type, if any.
    pub fn from_arrow(data_type: &DataType) -> Option<ColumnType> {
        Some(match data_type {
            DataType::Int8 => ColumnType::TinyInt,
            DataType::Int16 => ColumnType::SmallInt,
            DataType::Int32 => ColumnType::Int,
            DataType::Int64 => ColumnType::BigInt,
            DataType::Float32 => ColumnType::Float,
            DataType::Float64 => ColumnType::Double,
            DataType::Boolean => ColumnType::Boolean,
            DataType::Utf8 => ColumnType::String,
            DataType::Decimal128(precision, scale) if *scale >= 0 && *scale as u8 <= *precision => {
                ColumnType::Decimal {
                    precision: *precision,
                    scale: *scale,
                }
            }
            DataType::Timestamp(TimeUnit::Millisecond, tz) => {
                ColumnType::Timestamp { tz: tz.clone() }
            }
            DataType::Date32 => ColumnType::Date,
            _ => return None,
        })
    }

    /// The types of every column of `schema`, or a configuration error naming the
    /// table and the first unsupported column.
    pub fn for_schema(table: &str, schema: &Schema) -> Result<Vec<ColumnType>, EngineError> {
        schema
            .fields()
            .iter()
            .map(|field| {
                ColumnType::from_arrow(field.data_type()).ok_or_else(|| {
                    EngineError::Config(format!(
                        "table '{table}': column '{}' has type {} which this connector does not \
                         support; supported: {SUPPORTED_TYPES}",
                        field.name(),
                        sql_type_name(field.data_type())
                    ))
                })
            })
            .collect()
    }

    /// True for the integer, floating-point and decimal types.
    pub fn is_numeric(&self) -> bool {
        matches!(
            self,
            ColumnType::TinyInt
                | ColumnType::SmallInt
                | ColumnType::Int
                | ColumnType::BigInt
                | ColumnType::Float
                | ColumnType::Double
                | ColumnType::Decimal { .. }
        )
    }
}

/// The supported types, for error messages.
pub const SUPPORTED_TYPES: &str = "TINYINT, SMALLINT, INT, BIGINT, FLOAT, DOUBLE, BOOLEAN, \
                                   STRING, DECIMAL(p, s), TIMESTAMP(3), DATE";

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::TinyInt => f.write_str("TINYINT"),
            ColumnType::SmallInt => f.write_str("SMALLINT"),
            ColumnType::Int => f.write_str("INT"),
            ColumnType::BigInt => f.write_str("BIGINT"),
            ColumnType::Float => f.write_str("FLOAT"),
            ColumnType::Double => f.write_str("DOUBLE"),
            ColumnType::Boolean => f.write_str("BOOLEAN"),
            ColumnType::String => f.write_str("STRING"),
            ColumnType::Decimal { precision, scale } => write!(f, "DECIMAL({precision}, {scale})"),
            ColumnType::Timestamp { tz: None } => f.write_str("TIMESTAMP(3)"),
            ColumnType::Timestamp { tz: Some(_) } => f.write_str("TIMESTAMP_LTZ(3)"),
            ColumnType::Date => f.write_str("DATE"),
        }
    }
}

/// The Flink SQL name of an Arrow type, falling back to Arrow's own name for types
/// without a SQL counterpart here.
pub fn sql_type_name(data_type: &DataType) -> String {
    match ColumnType::from_arrow(data_type) {
        Some(t) => t.to_string(),
        None => data_type.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::datatypes::Field;

    #[test]
    fn names_follow_flink_sql() {
        assert_eq!(
            sql_type_name(&DataType::Decimal128(18, 2)),
            "DECIMAL(18, 2)"
        );
        assert_eq!(
            sql_type_name(&DataType::Timestamp(TimeUnit::Millisecond, None)),
            "TIMESTAMP(3)"
        );
        assert_eq!(sql_type_name(&DataType::Int64), "BIGINT");
    }

    #[test]
    fn unsupported_type_is_a_config_error_naming_the_column() {
        let schema = Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("b", DataType::UInt32, true),
        ]);
        let err = ColumnType::for_schema("t", &schema)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("table 't': column 'b' has type UInt32"),
            "{err}"
        );
    }
}
