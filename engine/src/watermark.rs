//! Event-time watermarks derived from the data, in input order.
//!
//! Flink emits watermarks on a wall-clock timer, so which rows are late depends on
//! how fast a job runs. Watershed advances the watermark row by row instead: the
//! watermark in force before row `i` is the maximum of the table's `WATERMARK`
//! expression over rows `0..i`. A batch is split only where a row is at or behind
//! the watermark in force before it, and that watermark is emitted just before the
//! row. Downstream operators therefore judge lateness exactly as if rows came one
//! at a time, whatever the batch boundaries or the speed of the job.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::{cast, filter_record_batch, is_not_null};
use datafusion::arrow::datatypes::{SchemaRef, TimestampMillisecondType};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{EngineError, Result};
use crate::metrics::NodeMetrics;
use crate::operator::{Operator, OperatorFactory, Output};
use crate::time::{MAX_WATERMARK, MIN_WATERMARK, Timestamp, event_time_type};

/// Assigns watermarks from a table's `WATERMARK FOR col AS expr` declaration.
#[derive(Debug, Clone)]
pub struct WatermarkAssigner {
    schema: SchemaRef,
    time_column: usize,
    expr: Arc<dyn PhysicalExpr>,
    expr_text: String,
    watermark: Timestamp,
}

impl WatermarkAssigner {
    /// An assigner reading event time from column `time_column` of `schema` and the
    /// watermark from `expr` (evaluated per row). `expr_text` is the SQL as written,
    /// for EXPLAIN.
    pub fn new(
        schema: SchemaRef,
        time_column: usize,
        expr: Arc<dyn PhysicalExpr>,
        expr_text: impl Into<String>,
    ) -> Self {
        WatermarkAssigner {
            schema,
            time_column,
            expr,
            expr_text: expr_text.into(),
            watermark: MIN_WATERMARK,
        }
    }

    fn time_values(&self, batch: &RecordBatch) -> Result<Arc<dyn Array>> {
        Ok(cast(batch.column(self.time_column), &event_time_type())?)
    }
}

impl Operator for WatermarkAssigner {
    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn on_batch(&mut self, batch: RecordBatch, out: &mut Output<'_>) -> Result<()> {
        // A row without event time cannot be placed in time: reject it whole.
        let time = self.time_values(&batch)?;
        let batch = if time.null_count() > 0 {
            let keep = is_not_null(&time)?;
            NodeMetrics::add(&out.metrics().rows_rejected, time.null_count());
            filter_record_batch(&batch, &keep)?
        } else {
            batch
        };
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let time = self.time_values(&batch)?;
        let time = time.as_primitive::<TimestampMillisecondType>().values();
        let marks = cast(
            &self.expr.evaluate(&batch)?.into_array(rows)?,
            &event_time_type(),
        )?;
        let marks = marks
            .as_primitive_opt::<TimestampMillisecondType>()
            .ok_or_else(|| EngineError::Config("watermark expression is not a timestamp".into()))?;

        let emitted_before = self.watermark;
        let mut emitted = emitted_before;
        let mut current = self.watermark;
        let mut start = 0;
        for i in 0..rows {
            if time[i] <= current && current > emitted {
                out.batch(batch.slice(start, i - start));
                out.watermark(current);
                emitted = current;
                start = i;
            }
            if marks.is_valid(i) {
                current = current.max(marks.value(i));
            }
        }
        out.batch(batch.slice(start, rows - start));
        if current > emitted {
            out.watermark(current);
        }
        self.watermark = current;
        Ok(())
    }

    fn on_watermark(&mut self, _watermark: Timestamp, _out: &mut Output<'_>) -> Result<()> {
        // Upstream watermarks are replaced by the ones derived from the data.
        Ok(())
    }

    fn on_end(&mut self, out: &mut Output<'_>) -> Result<()> {
        // A bounded input is complete: fire everything, as Flink does.
        self.watermark = MAX_WATERMARK;
        out.watermark(MAX_WATERMARK);
        Ok(())
    }
}

impl OperatorFactory for WatermarkAssigner {
    fn name(&self) -> String {
        "WatermarkAssigner".to_string()
    }

    fn explain(&self) -> Vec<String> {
        vec![
            format!("rowtime: {}", self.schema.field(self.time_column).name()),
            format!("watermark: {}", self.expr_text),
        ]
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn create(&self) -> Result<Box<dyn Operator>> {
        Ok(Box::new(self.clone()))
    }
}
