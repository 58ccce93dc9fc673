//! Window columns as scalar functions, for window TVFs over views.
//!
//! A TVF over a table gets a window assigner right after the table's source. A
//! TVF over a view (cascading windows: `TUMBLE(TABLE first_level, DESCRIPTOR(
//! window_time), ...)`) reads rows that only exist after the view's operators, so
//! its window columns are computed by these functions in a projection over the
//! view's plan; the planner recognises them as window columns.

use std::any::Any;
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray, TimestampMillisecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, TimestampMillisecondType};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use watershed_engine::time::event_time_type;
use watershed_engine::window::WINDOW_COLUMNS;

/// `window_start`, `window_end` or `window_time` of the tumbling window that
/// contains a timestamp.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TumbleColumn {
    /// 0 = window_start, 1 = window_end, 2 = window_time.
    pub column: usize,
    /// Window size in milliseconds.
    pub size_ms: i64,
    /// Alignment offset in milliseconds.
    pub offset_ms: i64,
    /// The window TVF, for EXPLAIN.
    pub window: String,
    signature: Signature,
}

impl TumbleColumn {
    /// The function computing window column `column` (0, 1 or 2).
    pub fn new(column: usize, size_ms: i64, offset_ms: i64, window: String) -> Self {
        TumbleColumn {
            column,
            size_ms,
            offset_ms,
            window,
            signature: Signature::any(1, Volatility::Immutable),
        }
    }

    /// A call of this function on `time`.
    pub fn call(self, time: Expr) -> Expr {
        ScalarUDF::new_from_impl(self).call(vec![time])
    }

    /// The window-column function behind an expression, if it is one.
    pub fn of(expr: &Expr) -> Option<&TumbleColumn> {
        match expr {
            Expr::ScalarFunction(f) => (f.func.inner().as_ref() as &dyn Any).downcast_ref(),
            Expr::Alias(alias) => TumbleColumn::of(&alias.expr),
            _ => None,
        }
    }

    fn value(&self, ts: i64) -> i64 {
        let start = ts - (ts - self.offset_ms).rem_euclid(self.size_ms);
        match self.column {
            0 => start,
            1 => start + self.size_ms,
            _ => start + self.size_ms - 1,
        }
    }
}

impl ScalarUDFImpl for TumbleColumn {
    fn name(&self) -> &str {
        WINDOW_COLUMNS
            .get(self.column)
            .copied()
            .unwrap_or("window_time")
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(event_time_type())
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let time = match args.args.first() {
            Some(value) => value.to_array(args.number_rows)?,
            None => {
                return Err(datafusion::error::DataFusionError::Plan(
                    "a window column needs a time argument".into(),
                ));
            }
        };
        let time = cast(&time, &event_time_type())?;
        let values: TimestampMillisecondArray = time
            .as_primitive::<TimestampMillisecondType>()
            .unary(|ts| self.value(ts));
        Ok(ColumnarValue::Array(Arc::new(values) as Arc<dyn Array>))
    }
}
