//! Sliced window aggregation for overlapping windows (`HOP`, `CUMULATE`, and
//! `TUMBLE` as the degenerate case), after Flink's `SliceSharedWindowAggProcessor`.
//!
//! A row is aggregated once, into its slice, whatever the number of windows it
//! belongs to; when a window fires, the partial aggregates of its slices are
//! merged (DataFusion's `GroupsAccumulator::state` / `merge_batch`) and
//! evaluated. The input carries the event-time column, not window columns.
//!
//! Lateness follows Flink: a row is late (dropped and counted) when every
//! window it belongs to has fired; a row some of whose windows are still open
//! counts only towards those. Windows fire in order of end, once each, when the
//! watermark reaches `window_end - 1`.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::compute::kernels::cmp::eq;
use datafusion::arrow::compute::{cast, filter, max, min, partition, sort_to_indices, take};
use datafusion::arrow::datatypes::{Int64Type, SchemaRef, TimestampMillisecondType};
use datafusion::arrow::record_batch::RecordBatch;

use crate::aggregate::{AggregateInput, AggregateSpec};
use crate::checkpoint::{OperatorState, Rescaled};
use crate::error::{EngineError, Result};
use crate::metrics::{NodeMetrics, NodeRole};
use crate::operator::{Operator, OperatorFactory, Output};
use crate::time::{MAX_WATERMARK, MIN_WATERMARK, Timestamp, event_time_type};
use crate::window::output::WindowOutput;
use crate::window::slice_store::SliceStore;
use crate::window::slicing::SliceSpec;
use crate::window::tumble::format_duration_ms;

/// Up to this many distinct slices in a batch, rows are split with one
/// comparison mask per slice; beyond it, by sorting on the slice end.
const MASK_SPLIT_MAX_SLICES: i64 = 4;

/// A window aggregate over slices: `GROUP BY window_start, window_end, <keys>`
/// of a `HOP`, `CUMULATE` or `TUMBLE` window TVF.
#[derive(Debug, Clone)]
pub struct SlicedWindowAggregate {
    spec: Arc<AggregateSpec>,
    slicing: SliceSpec,
    time_column: usize,
    output: Arc<WindowOutput>,
}

impl SlicedWindowAggregate {
    /// An aggregate whose `spec` groups by the non-window keys only, over
    /// windows cut by `slicing`, reading event time (`TIMESTAMP(3)`) from input
    /// column `time_column`, emitting `output`'s layout. The spec's own
    /// `output_schema` is not used.
    pub fn new(
        spec: AggregateSpec,
        slicing: SliceSpec,
        time_column: usize,
        output: WindowOutput,
    ) -> Result<Self> {
        Ok(SlicedWindowAggregate {
            spec: Arc::new(spec),
            slicing: slicing.validated()?,
            time_column,
            output: Arc::new(output),
        })
    }

    /// Creates a running instance (what [`OperatorFactory::create`] boxes).
    pub fn instance(&self) -> SlicedWindowAggregateOperator {
        SlicedWindowAggregateOperator {
            spec: Arc::clone(&self.spec),
            slicing: self.slicing,
            time_column: self.time_column,
            output: Arc::clone(&self.output),
            store: SliceStore::new(self.slicing, Arc::clone(&self.spec)),
            watermark: MIN_WATERMARK,
        }
    }
}

impl OperatorFactory for SlicedWindowAggregate {
    fn name(&self) -> String {
        "SlicedWindowAggregate".to_string()
    }

    fn explain(&self) -> Vec<String> {
        let keys = self.spec.key_names();
        let aggs = self.spec.aggregate_names();
        vec![
            format!("window: {}", self.slicing),
            format!("slice: {}", format_duration_ms(self.slicing.slice_width())),
            format!("group by: [{keys}]"),
            format!("aggregates: [{aggs}]"),
            "emit: once, when the watermark passes window_end".to_string(),
        ]
    }

    fn role(&self) -> NodeRole {
        NodeRole::Aggregate
    }

    fn output_schema(&self) -> SchemaRef {
        self.output.schema()
    }

    fn create(&self) -> Result<Box<dyn Operator>> {
        Ok(Box::new(self.instance()))
    }
}

/// The running instance of a [`SlicedWindowAggregate`].
pub struct SlicedWindowAggregateOperator {
    spec: Arc<AggregateSpec>,
    slicing: SliceSpec,
    time_column: usize,
    output: Arc<WindowOutput>,
    store: SliceStore,
    watermark: Timestamp,
}

impl SlicedWindowAggregateOperator {
    /// Bytes held by the state of all open slices.
    pub fn state_size(&self) -> usize {
        self.store.size()
    }

    /// Number of (slice, key) groups held.
    pub fn num_groups(&self) -> usize {
        self.store.num_groups()
    }

    /// Number of slices held.
    pub fn num_slices(&self) -> usize {
        self.store.num_slices()
    }

    /// The slice end of every row, computed from the event-time column.
    fn slice_ends(&self, batch: &RecordBatch) -> Result<Int64Array> {
        let column = batch.columns().get(self.time_column).ok_or_else(|| {
            EngineError::Config(format!(
                "window aggregate: no event-time column {} in a batch of {} columns",
                self.time_column,
                batch.num_columns()
            ))
        })?;
        let time = cast(column, &event_time_type())?;
        let time = time.as_primitive::<TimestampMillisecondType>();
        if time.null_count() > 0 {
            return Err(EngineError::Config(
                "window aggregate: event time must not be NULL".into(),
            ));
        }
        let slicing = self.slicing;
        Ok(time.unary::<_, Int64Type>(|ts| slicing.slice_end(ts)))
    }

    /// Splits rows by slice (few distinct slices per batch) and folds each part
    /// into its slice.
    fn update_slices(&mut self, ends: &Int64Array, input: &AggregateInput) -> Result<()> {
        let (Some(lo), Some(hi)) = (min(ends), max(ends)) else {
            return Ok(());
        };
        if lo == hi {
            return self.store.update(lo, input);
        }
        let width = self.slicing.slice_width();
        let slices = hi.saturating_sub(lo) / width + 1;
        if slices <= MASK_SPLIT_MAX_SLICES {
            for i in 0..slices {
                let end = lo + i * width;
                let mask = eq(ends, &Int64Array::new_scalar(end))?;
                if mask.true_count() > 0 {
                    self.store.update(end, &input.filter(&mask)?)?;
                }
            }
            return Ok(());
        }
        let indices = sort_to_indices(ends, None, None)?;
        let sorted: ArrayRef = take(ends, &indices, None)?;
        let input = input.take(&indices)?;
        let values = sorted.as_primitive::<Int64Type>();
        for range in partition(&[Arc::clone(&sorted)])?.ranges() {
            let end = values.value(range.start);
            self.store
                .update(end, &input.slice(range.start, range.len()))?;
        }
        Ok(())
    }

    /// Fires, in order, every window that the watermark moving to `watermark`
    /// completes, then releases the slices no open window needs.
    fn fire(&mut self, watermark: Timestamp, out: &mut Output<'_>) -> Result<()> {
        let previous = self.watermark;
        self.watermark = self.watermark.max(watermark);
        for end in self.store.windows_firing(previous, watermark) {
            let Some(mut window) = self.store.fire(end)? else {
                continue;
            };
            let rows = window.num_groups();
            let (keys, aggregates) = window.evaluate()?;
            let start = self.slicing.window_start(end);
            out.batch(self.output.batch(start, end, rows, &keys, &aggregates)?);
        }
        self.store.release_fired(watermark);
        Ok(())
    }
}

impl Operator for SlicedWindowAggregateOperator {
    fn output_schema(&self) -> SchemaRef {
        self.output.schema()
    }

    fn on_batch(&mut self, batch: RecordBatch, out: &mut Output<'_>) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let mut ends = self.slice_ends(&batch)?;
        let mut input = self.spec.evaluate(&batch)?;

        // Rows all of whose windows have fired are late: drop and count them.
        // The last window end grows with the slice end, so the earliest slice decides.
        let earliest = min(&ends).unwrap_or(Timestamp::MAX);
        if !self.store.accepts(earliest, self.watermark) {
            let (store, wm) = (&self.store, self.watermark);
            let values = ends.values();
            let keep = BooleanArray::from(BooleanBuffer::collect_bool(ends.len(), |i| {
                store.accepts(values[i], wm)
            }));
            let late = keep.false_count();
            out.drop_late(&batch, &keep, "every window of the row already fired", wm)?;
            if late == ends.len() {
                return Ok(());
            }
            input = input.filter(&keep)?;
            ends = filter(&ends, &keep)?.as_primitive::<Int64Type>().clone();
        }
        NodeMetrics::add(&out.metrics().rows_aggregated, input.num_rows());
        self.update_slices(&ends, &input)?;
        out.metrics()
            .record_state(self.state_size(), self.num_groups());
        Ok(())
    }

    fn on_watermark(&mut self, watermark: Timestamp, out: &mut Output<'_>) -> Result<()> {
        if watermark > self.watermark {
            self.fire(watermark, out)?;
        }
        out.watermark(watermark);
        Ok(())
    }

    fn on_end(&mut self, out: &mut Output<'_>) -> Result<()> {
        self.fire(MAX_WATERMARK, out)
    }

    /// One batch per slice, tagged with its end, and the watermark (which
    /// windows have fired, and which rows are late, follows from it).
    fn snapshot(&mut self) -> Result<Option<OperatorState>> {
        self.store.snapshot(self.watermark).map(Some)
    }

    fn restore(&mut self, state: OperatorState) -> Result<()> {
        self.watermark = self.watermark.max(state.watermark()?);
        self.store.restore(&state)
    }

    fn restore_rescaled(&mut self, rescaled: Rescaled) -> Result<()> {
        let keys = self
            .spec
            .state_key_names(rescaled.keys_of_input(0, "a window aggregate")?)?;
        self.restore(rescaled.owned_state(&keys)?)
    }
}

#[cfg(test)]
#[path = "slice_aggregate_tests.rs"]
mod tests;
