//! Event-time watermarks derived from the data, in input order.
//!
//! Flink emits watermarks on a wall-clock timer, so which rows are late depends on
//! how fast a job runs. Watershed advances the watermark row by row instead: the
//! watermark in force before row `i` is the maximum of the table's `WATERMARK`
//! expression over rows `0..i`. A batch is split only where a row is at most one
//! millisecond ahead of the watermark in force before it (a session ending there
//! would fire), and that watermark is emitted just before the row. Downstream operators therefore judge lateness exactly as if rows came one
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

/// How the watermark is computed from a row.
#[derive(Debug, Clone)]
pub enum WatermarkStrategy {
    /// `WATERMARK FOR ts AS ts - INTERVAL ...`: the row's event time minus a fixed
    /// bound in milliseconds. Computed inline, without evaluating an expression.
    BoundedOutOfOrderness(i64),
    /// Any other expression over the row, evaluated with DataFusion.
    Expression(Arc<dyn PhysicalExpr>),
}

/// Assigns watermarks from a table's `WATERMARK FOR col AS expr` declaration.
#[derive(Debug, Clone)]
pub struct WatermarkAssigner {
    schema: SchemaRef,
    time_column: usize,
    strategy: WatermarkStrategy,
    expr_text: String,
    watermark: Timestamp,
}

impl WatermarkAssigner {
    /// An assigner reading event time from column `time_column` of `schema` and the
    /// watermark by `strategy`. `expr_text` is the SQL as written, for EXPLAIN.
    pub fn new(
        schema: SchemaRef,
        time_column: usize,
        strategy: WatermarkStrategy,
        expr_text: impl Into<String>,
    ) -> Self {
        WatermarkAssigner {
            schema,
            time_column,
            strategy,
            expr_text: expr_text.into(),
            watermark: MIN_WATERMARK,
        }
    }

    fn time_values(&self, batch: &RecordBatch) -> Result<Arc<dyn Array>> {
        Ok(cast(batch.column(self.time_column), &event_time_type())?)
    }
}

impl Operator for WatermarkAssigner {
    fn snapshot(&mut self) -> Result<Option<crate::checkpoint::OperatorState>> {
        // No state across batches.
        Ok(None)
    }

    fn restore(&mut self, _state: crate::checkpoint::OperatorState) -> Result<()> {
        Ok(())
    }

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
        let evaluated = match &self.strategy {
            WatermarkStrategy::BoundedOutOfOrderness(_) => None,
            WatermarkStrategy::Expression(expr) => Some(cast(
                &expr.evaluate(&batch)?.into_array(rows)?,
                &event_time_type(),
            )?),
        };
        let marks = evaluated
            .as_ref()
            .map(|m| {
                m.as_primitive_opt::<TimestampMillisecondType>()
                    .ok_or_else(|| {
                        EngineError::Config("watermark expression is not a timestamp".into())
                    })
            })
            .transpose()?;
        let bound = match &self.strategy {
            WatermarkStrategy::BoundedOutOfOrderness(bound) => Some(*bound),
            WatermarkStrategy::Expression(_) => None,
        };

        let mut emitted = self.watermark;
        let mut current = self.watermark;
        let mut start = 0;
        for (i, &t) in time.iter().enumerate() {
            // Cut before a row at or right after the watermark (`t <= wm + 1`): such a
            // row could extend a session window that this watermark fires.
            if t <= current.saturating_add(1) && current > emitted {
                out.batch(batch.slice(start, i - start));
                out.watermark(current);
                emitted = current;
                start = i;
            }
            let mark = match (bound, marks) {
                (Some(bound), _) => Some(t.saturating_sub(bound)),
                (None, Some(m)) => m.is_valid(i).then(|| m.value(i)),
                (None, None) => None,
            };
            if let Some(mark) = mark {
                current = current.max(mark);
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
        let strategy = match &self.strategy {
            WatermarkStrategy::BoundedOutOfOrderness(bound) => {
                format!("bounded out-of-orderness {bound} ms, per row")
            }
            WatermarkStrategy::Expression(_) => "expression, per row".to_string(),
        };
        vec![
            format!("rowtime: {}", self.schema.field(self.time_column).name()),
            format!("watermark: {} ({strategy})", self.expr_text),
        ]
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn create(&self) -> Result<Box<dyn Operator>> {
        Ok(Box::new(self.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use datafusion::arrow::array::TimestampMillisecondArray;
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::physical_expr::expressions::Column;

    fn run(times: &[i64]) -> Vec<String> {
        let schema = Arc::new(Schema::new(vec![Field::new("ts", event_time_type(), true)]));
        // Watermark = event time itself (a bound of zero).
        let mut assigner = WatermarkAssigner::new(
            schema.clone(),
            0,
            WatermarkStrategy::Expression(Arc::new(Column::new("ts", 0))),
            "ts",
        );
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(TimestampMillisecondArray::from(times.to_vec()))],
        )
        .unwrap();
        let metrics = NodeMetrics::default();
        let mut messages = Vec::new();
        let mut out = Output::new(&mut messages, &metrics);
        assigner.on_batch(batch, &mut out).unwrap();
        messages
            .iter()
            .map(|m| match m {
                Message::Batch(b) => {
                    let ts = b.column(0).as_primitive::<TimestampMillisecondType>();
                    format!("rows{:?}", ts.values().to_vec())
                }
                Message::Watermark(w) => format!("wm{w}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_batch_is_cut_only_before_rows_behind_the_watermark() {
        assert_eq!(run(&[10, 20, 30]), ["rows[10, 20, 30]", "wm30"]);
        assert_eq!(
            run(&[10, 20, 12, 25, 25]),
            ["rows[10, 20]", "wm20", "rows[12, 25]", "wm25", "rows[25]"]
        );
        // A row one millisecond past the watermark could touch a session that the
        // watermark fires, so it is cut too.
        assert_eq!(run(&[10, 11]), ["rows[10]", "wm10", "rows[11]", "wm11"]);
    }

    #[test]
    fn rows_without_event_time_are_rejected() {
        let schema = Arc::new(Schema::new(vec![Field::new("ts", event_time_type(), true)]));
        let mut assigner = WatermarkAssigner::new(
            schema.clone(),
            0,
            WatermarkStrategy::Expression(Arc::new(Column::new("ts", 0))),
            "ts",
        );
        let batch = RecordBatch::try_new(
            schema,
            vec![Arc::new(TimestampMillisecondArray::from(vec![
                Some(1),
                None,
                Some(2),
            ]))],
        )
        .unwrap();
        let metrics = NodeMetrics::default();
        let mut messages = Vec::new();
        assigner
            .on_batch(batch, &mut Output::new(&mut messages, &metrics))
            .unwrap();
        assert_eq!(metrics.snapshot().rows_rejected, 1);
        assert_eq!(metrics.snapshot().rows_out, 2);
    }
}
