//! Event-time watermarks derived from the data, in input order.
//!
//! Flink emits watermarks on a wall-clock timer, so which rows are late depends on
//! how fast a job runs. Watershed advances the watermark row by row instead: the
//! watermark in force before row `i` is the maximum of the table's `WATERMARK`
//! expression over rows `0..i`. A batch is split only where a row is at most one
//! millisecond ahead of the watermark in force before it (a session ending there
//! would fire), and that watermark is emitted just before the row. Downstream operators therefore judge lateness exactly as if rows came one
//! at a time, whatever the batch boundaries or the speed of the job.
//!
//! A split that reads several partitions (a Kafka split owning partitions 0
//! and 2, say) tags each batch with the one partition its rows come from
//! ([`tag_partition`]). The assigner then keeps one watermark per partition and
//! emits their minimum, as Flink's per-partition watermarks do: a partition
//! read ahead of another does not make the other's rows late. A partition that
//! has sent nothing yet holds the split's watermark back, unless the source
//! leaves it out of the tag's list (idle for the table's idle timeout, or read
//! to its end).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::{cast, filter_record_batch, is_not_null};
use datafusion::arrow::datatypes::{Schema, SchemaRef, TimestampMillisecondType};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{EngineError, Result};
use crate::metrics::NodeMetrics;
use crate::operator::{Operator, OperatorFactory, Output};
use crate::time::{MAX_WATERMARK, MIN_WATERMARK, Timestamp, event_time_type};

/// Schema metadata key of a batch whose rows all come from one partition of
/// the split: the partition's name.
pub const PARTITION_METADATA: &str = "watershed.source.partition";
/// Schema metadata key naming the partitions of the split that count toward
/// its watermark (`,`-separated): those still open and not idle.
pub const SPLIT_PARTITIONS_METADATA: &str = "watershed.source.split-partitions";

/// Tags `batch` as holding rows of partition `partition` only, of a split
/// whose watermark is the minimum over `partitions` (its open partitions that
/// are not idle); the watermark assigner then tracks the partitions'
/// watermarks apart.
pub fn tag_partition(
    batch: RecordBatch,
    partition: &str,
    partitions: &[String],
) -> Result<RecordBatch> {
    let metadata = HashMap::from([
        (PARTITION_METADATA.to_string(), partition.to_string()),
        (SPLIT_PARTITIONS_METADATA.to_string(), partitions.join(",")),
    ]);
    let schema = Arc::new(Schema::new_with_metadata(
        batch.schema().fields().clone(),
        metadata,
    ));
    Ok(RecordBatch::try_new(schema, batch.columns().to_vec())?)
}

/// True when `batch` carries a partition tag ([`tag_partition`]); an empty
/// tagged batch still goes to the watermark assigner.
pub fn is_partition_tagged(batch: &RecordBatch) -> bool {
    batch
        .schema_ref()
        .metadata()
        .contains_key(PARTITION_METADATA)
}

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
    /// Per partition of a split that tags its batches, the partition's own
    /// watermark.
    partitions: BTreeMap<String, Timestamp>,
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
            partitions: BTreeMap::new(),
        }
    }

    fn time_values(&self, batch: &RecordBatch) -> Result<Arc<dyn Array>> {
        Ok(cast(batch.column(self.time_column), &event_time_type())?)
    }

    /// For a tagged batch: its partition, and the minimum of the watermarks
    /// of the other partitions the tag lists (partitions not seen yet count as
    /// [`MIN_WATERMARK`]). `None` for an untagged batch.
    fn partition_of(&self, batch: &RecordBatch) -> Option<(String, Timestamp)> {
        let metadata = batch.schema_ref().metadata();
        let partition = metadata.get(PARTITION_METADATA)?.clone();
        let others = metadata
            .get(SPLIT_PARTITIONS_METADATA)
            .map(String::as_str)
            .unwrap_or_default()
            .split(',')
            .filter(|name| !name.is_empty() && *name != partition)
            .map(|name| self.partitions.get(name).copied().unwrap_or(MIN_WATERMARK))
            .min()
            .unwrap_or(MAX_WATERMARK);
        Some((partition, others))
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
        let partition = self.partition_of(&batch);
        // Downstream sees the table's schema, without the split's tags.
        let batch = if partition.is_some() {
            RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec())?
        } else {
            batch
        };
        // The watermark of the batch's partition; the split's is the minimum
        // of it and the other partitions' (`others`).
        let (mut own, others) = match &partition {
            Some((name, others)) => (
                self.partitions.get(name).copied().unwrap_or(MIN_WATERMARK),
                *others,
            ),
            None => (self.watermark, MAX_WATERMARK),
        };
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
            // A tagged batch without rows: the counted partitions changed
            // (one went idle or ended), which can move the split's watermark.
            let combined = self.watermark.max(own.min(others));
            if partition.is_some() && combined > self.watermark {
                out.watermark(combined);
                self.watermark = combined;
            }
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
                own = own.max(mark);
                current = current.max(own.min(others));
            }
        }
        out.batch(batch.slice(start, rows - start));
        if current > emitted {
            out.watermark(current);
        }
        self.watermark = current;
        if let Some((name, _)) = partition {
            self.partitions.insert(name, own);
        }
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
        describe(&messages)
    }

    /// Messages as `rows[...]` (the time column) and `wm<t>`.
    fn describe(messages: &[Message]) -> Vec<String> {
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

    /// Feeds `(partition, times)` batches of a split over partitions `a` and
    /// `b` (bound zero); returns the messages, as in [`run`].
    fn run_partitions(batches: &[(&str, &str, &[i64])]) -> Vec<String> {
        let schema = Arc::new(Schema::new(vec![Field::new("ts", event_time_type(), true)]));
        let mut assigner = WatermarkAssigner::new(
            schema.clone(),
            0,
            WatermarkStrategy::BoundedOutOfOrderness(0),
            "ts",
        );
        let metrics = NodeMetrics::default();
        let mut messages = Vec::new();
        for (partition, counted, times) in batches {
            let split: Vec<String> = counted.split(',').map(str::to_string).collect();
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(TimestampMillisecondArray::from(times.to_vec()))],
            )
            .unwrap();
            let batch = tag_partition(batch, partition, &split).unwrap();
            let mut out = Output::new(&mut messages, &metrics);
            assigner.on_batch(batch, &mut out).unwrap();
        }
        assert!(
            messages.iter().all(|m| match m {
                Message::Batch(b) => b.schema().metadata().is_empty(),
                _ => true,
            }),
            "tags are removed"
        );
        describe(&messages)
    }

    #[test]
    fn a_split_of_several_partitions_emits_the_minimum_of_their_watermarks() {
        assert_eq!(
            run_partitions(&[
                ("a", "a,b", &[10, 50]),
                ("b", "a,b", &[20]),
                ("a", "a,b", &[60]),
                ("b", "a,b", &[40, 70])
            ]),
            // Nothing until b has sent; then min(a, b) as each advances. The
            // rows of b behind a's 50 are not behind the split's watermark (20,
            // then 40), so the batch is not cut.
            [
                "rows[10, 50]",
                "rows[20]",
                "wm20",
                "rows[60]",
                "rows[40, 70]",
                "wm60"
            ]
        );
    }

    #[test]
    fn a_partition_left_out_of_the_tag_does_not_hold_the_watermark_back() {
        assert_eq!(
            run_partitions(&[
                ("a", "a,b", &[10]),
                // b is idle (or ended): a alone counts.
                ("a", "a", &[20]),
                ("b", "a,b", &[15])
            ]),
            ["rows[10]", "rows[20]", "wm20", "rows[15]"]
        );
    }

    #[test]
    fn an_empty_tagged_batch_moves_the_watermark_past_a_partition_gone_idle() {
        assert_eq!(
            run_partitions(&[("a", "a,b", &[10, 30]), ("a", "a", &[])]),
            ["rows[10, 30]", "wm30"]
        );
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
