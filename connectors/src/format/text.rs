//! The text form of Arrow values, shared by the CSV, JSON and print encoders.
//!
//! A [`ColumnText`] resolves a column's concrete array type once per batch, then
//! renders values row by row without per-value dynamic dispatch: integers and
//! floats in Rust's shortest round-trip form, decimals in plain notation with
//! exactly the column's scale, timestamps as `yyyy-MM-dd HH:mm:ss.SSS`, dates as
//! `yyyy-MM-dd`. Types outside the table types fall back to Arrow's display
//! formatter, so a sink never refuses a query's output.

use std::fmt::Write as _;

use datafusion::arrow::array::{
    Array, AsArray, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int8Array, Int16Array, Int32Array, Int64Array, LargeStringArray, StringArray, StringViewArray,
    TimestampMillisecondArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, TimeUnit, TimestampMillisecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use watershed_engine::EngineError;

use super::datetime::{TimestampStandard, write_date, write_timestamp_millis};
use super::decimal::write_decimal;

/// How a value's text is embedded in JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    /// An exact number (integer or decimal): written bare.
    Number,
    /// A float: written bare when finite, else as `null`.
    Float,
    /// `true` / `false`: written bare.
    Boolean,
    /// Anything else: written as a JSON string.
    Text,
}

enum Render<'a> {
    I8(&'a Int8Array),
    I16(&'a Int16Array),
    I32(&'a Int32Array),
    I64(&'a Int64Array),
    U8(&'a UInt8Array),
    U16(&'a UInt16Array),
    U32(&'a UInt32Array),
    U64(&'a UInt64Array),
    F32(&'a Float32Array),
    F64(&'a Float64Array),
    Bool(&'a BooleanArray),
    Str(&'a StringArray),
    LargeStr(&'a LargeStringArray),
    StrView(&'a StringViewArray),
    Decimal(&'a Decimal128Array, i8),
    TimestampMs(&'a TimestampMillisecondArray),
    Date(&'a Date32Array),
    Other(ArrayFormatter<'a>),
}

const FALLBACK_OPTIONS: FormatOptions<'static> = FormatOptions::new()
    .with_null("")
    .with_timestamp_format(Some("%Y-%m-%d %H:%M:%S%.3f"))
    .with_date_format(Some("%Y-%m-%d"));

/// Renders the values of one column as text.
pub struct ColumnText<'a> {
    array: &'a dyn Array,
    render: Render<'a>,
    standard: TimestampStandard,
}

impl<'a> ColumnText<'a> {
    /// Prepares `array` for rendering; timestamps use `standard`'s separator.
    pub fn new(array: &'a dyn Array, standard: TimestampStandard) -> Result<Self, EngineError> {
        let render = match array.data_type() {
            DataType::Int8 => array.as_primitive_opt::<Int8Type>().map(Render::I8),
            DataType::Int16 => array.as_primitive_opt::<Int16Type>().map(Render::I16),
            DataType::Int32 => array.as_primitive_opt::<Int32Type>().map(Render::I32),
            DataType::Int64 => array.as_primitive_opt::<Int64Type>().map(Render::I64),
            DataType::UInt8 => array.as_primitive_opt::<UInt8Type>().map(Render::U8),
            DataType::UInt16 => array.as_primitive_opt::<UInt16Type>().map(Render::U16),
            DataType::UInt32 => array.as_primitive_opt::<UInt32Type>().map(Render::U32),
            DataType::UInt64 => array.as_primitive_opt::<UInt64Type>().map(Render::U64),
            DataType::Float32 => array.as_primitive_opt::<Float32Type>().map(Render::F32),
            DataType::Float64 => array.as_primitive_opt::<Float64Type>().map(Render::F64),
            DataType::Boolean => array.as_boolean_opt().map(Render::Bool),
            DataType::Utf8 => array.as_string_opt::<i32>().map(Render::Str),
            DataType::LargeUtf8 => array.as_string_opt::<i64>().map(Render::LargeStr),
            DataType::Utf8View => array.as_string_view_opt().map(Render::StrView),
            DataType::Decimal128(_, scale) => array
                .as_primitive_opt::<Decimal128Type>()
                .map(|a| Render::Decimal(a, *scale)),
            DataType::Timestamp(TimeUnit::Millisecond, _) => array
                .as_primitive_opt::<TimestampMillisecondType>()
                .map(Render::TimestampMs),
            DataType::Date32 => array.as_primitive_opt::<Date32Type>().map(Render::Date),
            _ => None,
        };
        let render = match render {
            Some(r) => r,
            None => Render::Other(ArrayFormatter::try_new(array, &FALLBACK_OPTIONS)?),
        };
        Ok(ColumnText {
            array,
            render,
            standard,
        })
    }

    /// True when the value at `row` is NULL.
    pub fn is_null(&self, row: usize) -> bool {
        self.array.is_null(row)
    }

    /// How the column's values embed in JSON.
    pub fn kind(&self) -> TextKind {
        match self.render {
            Render::I8(_)
            | Render::I16(_)
            | Render::I32(_)
            | Render::I64(_)
            | Render::U8(_)
            | Render::U16(_)
            | Render::U32(_)
            | Render::U64(_)
            | Render::Decimal(..) => TextKind::Number,
            Render::F32(_) | Render::F64(_) => TextKind::Float,
            Render::Bool(_) => TextKind::Boolean,
            _ => TextKind::Text,
        }
    }

    /// True when the value at `row` is a float that is NaN or infinite.
    pub fn is_non_finite(&self, row: usize) -> bool {
        match self.render {
            Render::F32(a) => !a.value(row).is_finite(),
            Render::F64(a) => !a.value(row).is_finite(),
            _ => false,
        }
    }

    /// The text of the (non-NULL) value at `row`: borrowed from the array for
    /// strings, otherwise written into `scratch` (which is cleared first).
    pub fn text<'s>(&'s self, row: usize, scratch: &'s mut String) -> &'s str {
        scratch.clear();
        let out = scratch;
        // Writing to a String cannot fail; the results are ignored.
        match &self.render {
            Render::Str(a) => return a.value(row),
            Render::LargeStr(a) => return a.value(row),
            Render::StrView(a) => return a.value(row),
            Render::I8(a) => {
                let _ = write!(out, "{}", a.value(row));
            }
            Render::I16(a) => {
                let _ = write!(out, "{}", a.value(row));
            }
            Render::I32(a) => {
                let _ = write!(out, "{}", a.value(row));
            }
            Render::I64(a) => {
                let _ = write!(out, "{}", a.value(row));
            }
            Render::U8(a) => {
                let _ = write!(out, "{}", a.value(row));
            }
            Render::U16(a) => {
                let _ = write!(out, "{}", a.value(row));
            }
            Render::U32(a) => {
                let _ = write!(out, "{}", a.value(row));
            }
            Render::U64(a) => {
                let _ = write!(out, "{}", a.value(row));
            }
            Render::F32(a) => {
                let _ = write!(out, "{:?}", a.value(row));
            }
            Render::F64(a) => {
                let _ = write!(out, "{:?}", a.value(row));
            }
            Render::Bool(a) => out.push_str(if a.value(row) { "true" } else { "false" }),
            Render::Decimal(a, scale) => write_decimal(a.value(row), *scale, out),
            Render::TimestampMs(a) => write_timestamp_millis(a.value(row), self.standard, out),
            Render::Date(a) => write_date(i64::from(a.value(row)), out),
            Render::Other(f) => {
                let _ = write!(out, "{}", f.value(row));
            }
        }
        out.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Time32SecondArray};
    use std::sync::Arc;

    fn render(array: ArrayRef) -> Vec<Option<String>> {
        let t = ColumnText::new(array.as_ref(), TimestampStandard::Sql).unwrap();
        let mut scratch = String::new();
        (0..array.len())
            .map(|i| (!t.is_null(i)).then(|| t.text(i, &mut scratch).to_string()))
            .collect()
    }

    #[test]
    fn renders_table_types() {
        let dec: ArrayRef = Arc::new(
            Decimal128Array::from(vec![Some(1250), None, Some(-5)])
                .with_precision_and_scale(18, 2)
                .unwrap(),
        );
        assert_eq!(
            render(dec),
            vec![Some("12.50".into()), None, Some("-0.05".into())]
        );
        let ts: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![1_700_000_000_123]));
        assert_eq!(render(ts), vec![Some("2023-11-14 22:13:20.123".into())]);
        let f: ArrayRef = Arc::new(Float64Array::from(vec![1.0, 0.1, f64::NAN]));
        assert_eq!(
            render(f),
            vec![Some("1.0".into()), Some("0.1".into()), Some("NaN".into())]
        );
        let d: ArrayRef = Arc::new(Date32Array::from(vec![19_782]));
        assert_eq!(render(d), vec![Some("2024-02-29".into())]);
        let s: ArrayRef = Arc::new(StringViewArray::from(vec!["a,b"]));
        assert_eq!(render(s), vec![Some("a,b".into())]);
    }

    #[test]
    fn other_types_fall_back_to_arrow_display() {
        let t: ArrayRef = Arc::new(Time32SecondArray::from(vec![3661]));
        assert_eq!(render(t.clone()), vec![Some("01:01:01".into())]);
        let ct = ColumnText::new(t.as_ref(), TimestampStandard::Sql).unwrap();
        assert_eq!(ct.kind(), TextKind::Text);
    }
}
