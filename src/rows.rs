//! Reading result rows into Rust values. Money comes out as
//! `rust_decimal::Decimal`, never as a float.
//!
//! ```
//! # use std::sync::Arc;
//! # use datafusion::arrow::array::{Decimal128Array, Int64Array};
//! # use datafusion::arrow::datatypes::{DataType, Field, Schema};
//! # use datafusion::arrow::record_batch::RecordBatch;
//! # let schema = Arc::new(Schema::new(vec![
//! #     Field::new("card_id", DataType::Int64, false),
//! #     Field::new("total", DataType::Decimal128(38, 2), true),
//! # ]));
//! # let batch = RecordBatch::try_new(schema, vec![
//! #     Arc::new(Int64Array::from(vec![7])),
//! #     Arc::new(Decimal128Array::from(vec![1250]).with_precision_and_scale(38, 2).unwrap()),
//! # ]).unwrap();
//! use rust_decimal::Decimal;
//! for row in watershed::rows::rows(&batch) {
//!     let card: Option<i64> = row.get("card_id")?;
//!     let total: Option<Decimal> = row.get("total")?;
//!     assert_eq!((card, total), (Some(7), Some(Decimal::new(1250, 2))));
//! }
//! # Ok::<(), watershed::WatershedError>(())
//! ```

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{
    DataType, Decimal128Type, Float64Type, Int32Type, Int64Type, TimeUnit, TimestampMillisecondType,
};
use datafusion::arrow::record_batch::RecordBatch;
use rust_decimal::Decimal;

use crate::error::{Result, WatershedError};

/// One row of a batch.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    batch: &'a RecordBatch,
    index: usize,
}

/// The rows of a batch, in order.
pub fn rows(batch: &RecordBatch) -> impl Iterator<Item = Row<'_>> {
    (0..batch.num_rows()).map(move |index| Row { batch, index })
}

impl<'a> Row<'a> {
    /// The value of column `name`, `None` for NULL.
    pub fn get<T: FromArrow>(&self, name: &str) -> Result<Option<T>> {
        let column = self
            .batch
            .column_by_name(name)
            .ok_or_else(|| WatershedError::Usage(format!("the result has no column '{name}'")))?;
        if column.is_null(self.index) {
            return Ok(None);
        }
        T::from_arrow(column.as_ref(), self.index)
            .map(Some)
            .map_err(|e| WatershedError::Usage(format!("column '{name}': {e}")))
    }
}

/// Rust types a non-NULL Arrow value can be read as.
pub trait FromArrow: Sized {
    /// Reads row `index` of `array`, which is not NULL there.
    fn from_arrow(array: &dyn Array, index: usize) -> std::result::Result<Self, String>;
}

fn mismatch(array: &dyn Array, wanted: &str) -> String {
    format!("a {} value cannot be read as {wanted}", array.data_type())
}

impl FromArrow for i64 {
    fn from_arrow(array: &dyn Array, index: usize) -> std::result::Result<Self, String> {
        match array.data_type() {
            DataType::Int64 => Ok(array.as_primitive::<Int64Type>().value(index)),
            DataType::Int32 => Ok(array.as_primitive::<Int32Type>().value(index) as i64),
            DataType::Timestamp(TimeUnit::Millisecond, _) => Ok(array
                .as_primitive::<TimestampMillisecondType>()
                .value(index)),
            _ => Err(mismatch(array, "i64")),
        }
    }
}

impl FromArrow for f64 {
    fn from_arrow(array: &dyn Array, index: usize) -> std::result::Result<Self, String> {
        match array.data_type() {
            DataType::Float64 => Ok(array.as_primitive::<Float64Type>().value(index)),
            _ => Err(mismatch(array, "f64")),
        }
    }
}

impl FromArrow for String {
    fn from_arrow(array: &dyn Array, index: usize) -> std::result::Result<Self, String> {
        match array.data_type() {
            DataType::Utf8 => Ok(array.as_string::<i32>().value(index).to_string()),
            DataType::LargeUtf8 => Ok(array.as_string::<i64>().value(index).to_string()),
            DataType::Utf8View => Ok(array.as_string_view().value(index).to_string()),
            _ => Err(mismatch(array, "String")),
        }
    }
}

impl FromArrow for bool {
    fn from_arrow(array: &dyn Array, index: usize) -> std::result::Result<Self, String> {
        match array.data_type() {
            DataType::Boolean => Ok(array.as_boolean().value(index)),
            _ => Err(mismatch(array, "bool")),
        }
    }
}

impl FromArrow for Decimal {
    fn from_arrow(array: &dyn Array, index: usize) -> std::result::Result<Self, String> {
        match array.data_type() {
            DataType::Decimal128(_, scale) => {
                let value = array.as_primitive::<Decimal128Type>().value(index);
                let scale = u32::try_from(*scale).map_err(|_| "negative scale".to_string())?;
                Decimal::try_from_i128_with_scale(value, scale)
                    .map_err(|e| format!("{value} at scale {scale} does not fit rust_decimal: {e}"))
            }
            _ => Err(mismatch(array, "Decimal")),
        }
    }
}
