//! Window columns as scalar functions, for window TVFs over views.
//!
//! A TVF over a table gets a window assigner right after the table's source. A
//! TVF over a view (cascading windows: `TUMBLE(TABLE first_level, DESCRIPTOR(
//! window_time), ...)`, or any window over a view that filters a table) reads rows
//! that only exist after the view's operators, so its window columns are computed
//! by these functions in a projection over the view's plan; the planner
//! recognises them as window columns. For HOP, CUMULATE and SESSION they hold
//! what the table path's slice assigner would: the row's slice (one millisecond
//! wide for sessions), marked deferred so the aggregate computes the windows.

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

use crate::window_tvf::{DeferredWindow, WindowTvf};

/// `window_start`, `window_end` or `window_time` of the tumbling window (for
/// HOP, CUMULATE and SESSION: the slice) that contains a timestamp.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct TumbleColumn {
    /// 0 = window_start, 1 = window_end, 2 = window_time.
    pub column: usize,
    /// Window (or slice) width in milliseconds.
    pub size_ms: i64,
    /// Alignment offset in milliseconds.
    pub offset_ms: i64,
    /// The window TVF, for EXPLAIN and error messages.
    pub window: String,
    /// Line and column of the TVF call in the SQL text, for error messages.
    pub position: (u64, u64),
    /// The function's name: `window_start`, ... for TUMBLE; `slice_start`, ...
    /// for the slices of HOP, CUMULATE and SESSION, so EXPLAIN tells them apart.
    name: String,
    /// For HOP, CUMULATE and SESSION: how the aggregate turns the slice this
    /// column holds into windows; `None` for TUMBLE, whose column is the window.
    pub deferred: Option<DeferredWindow>,
    signature: Signature,
}

impl TumbleColumn {
    /// The function computing window column `column` (0, 1 or 2) of a TUMBLE,
    /// without a position; [`TumbleColumn::for_tvf`] is the public constructor.
    fn new(column: usize, size_ms: i64, offset_ms: i64, window: String) -> Self {
        TumbleColumn {
            column,
            size_ms,
            offset_ms,
            window,
            position: (0, 0),
            deferred: None,
            name: WINDOW_COLUMNS
                .get(column)
                .copied()
                .unwrap_or("window_time")
                .to_string(),
            signature: Signature::any(1, Volatility::Immutable),
        }
    }

    /// The function computing window column `column` (0, 1 or 2) of `tvf`: the
    /// window for TUMBLE, the row's slice for HOP, CUMULATE and SESSION.
    pub fn for_tvf(column: usize, tvf: &WindowTvf) -> crate::error::Result<Self> {
        let (size_ms, offset_ms) = tvf.kind.assigned_grid()?;
        let function = TumbleColumn {
            position: (tvf.line, tvf.column),
            ..TumbleColumn::new(column, size_ms, offset_ms, tvf.describe())
        };
        Ok(match tvf.kind.deferred() {
            None => function,
            deferred => TumbleColumn {
                deferred,
                name: function.name.replacen("window", "slice", 1),
                ..function
            },
        })
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

    /// The time argument of a window-column function call, if `expr` is one.
    pub fn time_argument(expr: &Expr) -> Option<&Expr> {
        match expr {
            Expr::ScalarFunction(f) if TumbleColumn::of(expr).is_some() => f.args.first(),
            Expr::Alias(alias) => TumbleColumn::time_argument(&alias.expr),
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
        &self.name
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
