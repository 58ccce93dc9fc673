//! Window aggregation: groups rows by window and key, and emits each window's
//! groups once, when the watermark passes the window's end.
//!
//! State is one [`GroupedAggregates`] per open window, ordered by window end, so
//! firing is a walk from the front of a B-tree and a fired window's memory is
//! released at once.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{AsArray, BooleanArray};
use datafusion::arrow::array::{Scalar, TimestampMillisecondArray};
use datafusion::arrow::compute::kernels::cmp::eq;
use datafusion::arrow::compute::{cast, max, min};
use datafusion::arrow::datatypes::{SchemaRef, TimestampMillisecondType};
use datafusion::arrow::record_batch::RecordBatch;

use crate::aggregate::{AggregateInput, AggregateSpec, GroupedAggregates, StateBatch};
use crate::checkpoint::{OperatorState, Rescaled};
use crate::error::{EngineError, Result};
use crate::metrics::{NodeMetrics, NodeRole};
use crate::operator::{Operator, OperatorFactory, Output};
use crate::time::{MIN_WATERMARK, Timestamp, event_time_type};
use crate::window::window_fired;

/// A window aggregate: `GROUP BY window_start, window_end, <keys>`.
#[derive(Debug, Clone)]
pub struct WindowAggregate {
    spec: Arc<AggregateSpec>,
    window_end_key: usize,
    window_description: String,
}

impl WindowAggregate {
    /// An aggregate whose group key number `window_end_key` is the window end.
    /// `window_description` names the window for EXPLAIN (e.g. `TUMBLE(1 min)`).
    pub fn new(spec: AggregateSpec, window_end_key: usize, window_description: String) -> Self {
        WindowAggregate {
            spec: Arc::new(spec),
            window_end_key,
            window_description,
        }
    }
}

impl OperatorFactory for WindowAggregate {
    fn name(&self) -> String {
        "WindowAggregate".to_string()
    }

    fn explain(&self) -> Vec<String> {
        let keys = self.spec.key_names();
        let aggs = self.spec.aggregate_names();
        vec![
            format!("window: {}", self.window_description),
            format!("group by: [{keys}]"),
            format!("aggregates: [{aggs}]"),
            "emit: once, when the watermark passes window_end".to_string(),
        ]
    }

    fn role(&self) -> NodeRole {
        NodeRole::Aggregate
    }

    fn output_schema(&self) -> SchemaRef {
        self.spec.output_schema.clone()
    }

    fn create(&self) -> Result<Box<dyn Operator>> {
        Ok(Box::new(WindowAggregateOperator {
            spec: self.spec.clone(),
            window_end_key: self.window_end_key,
            windows: BTreeMap::new(),
            watermark: MIN_WATERMARK,
        }))
    }
}

/// The running instance of a [`WindowAggregate`].
pub struct WindowAggregateOperator {
    spec: Arc<AggregateSpec>,
    window_end_key: usize,
    windows: BTreeMap<Timestamp, GroupedAggregates>,
    watermark: Timestamp,
}

impl WindowAggregateOperator {
    /// Bytes held by the state of all open windows.
    pub fn state_size(&self) -> usize {
        self.windows.values().map(|w| w.size()).sum()
    }

    /// Number of (window, key) groups held.
    pub fn num_groups(&self) -> usize {
        self.windows.values().map(|w| w.num_groups()).sum()
    }

    fn update_window(&mut self, end: Timestamp, input: &AggregateInput) -> Result<()> {
        let state = match self.windows.entry(end) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => v.insert(self.spec.new_state()?),
        };
        state.update(input)
    }

    fn fire_until(&mut self, watermark: Timestamp, out: &mut Output<'_>) -> Result<()> {
        while let Some(entry) = self.windows.first_entry() {
            if !window_fired(*entry.key(), watermark) {
                break;
            }
            let mut state = entry.remove();
            out.batch(state.emit(&self.spec.output_schema)?);
        }
        Ok(())
    }
}

impl Operator for WindowAggregateOperator {
    fn output_schema(&self) -> SchemaRef {
        self.spec.output_schema.clone()
    }

    fn on_batch(&mut self, batch: RecordBatch, out: &mut Output<'_>) -> Result<()> {
        let mut input = self.spec.evaluate(&batch)?;
        let ends = cast(&input.groups[self.window_end_key], &event_time_type())?;
        let ends = ends.as_primitive::<TimestampMillisecondType>().clone();
        let (Some(lo), Some(hi)) = (min(&ends), max(&ends)) else {
            return Err(EngineError::Config("window_end must not be NULL".into()));
        };

        // Rows of windows that already fired are late: drop and count them.
        let mut ends = ends;
        if window_fired(lo, self.watermark) {
            let wm = self.watermark;
            let keep: BooleanArray = ends
                .values()
                .iter()
                .map(|&e| Some(!window_fired(e, wm)))
                .collect();
            let late = keep.false_count();
            out.drop_late(&batch, &keep, "window already fired", wm)?;
            if late == ends.len() {
                return Ok(());
            }
            input = input.filter(&keep)?;
            ends = datafusion::arrow::compute::filter(&ends, &keep)?
                .as_primitive::<TimestampMillisecondType>()
                .clone();
        }
        NodeMetrics::add(&out.metrics().rows_aggregated, input.num_rows());

        if lo == hi {
            self.update_window(hi, &input)?;
            out.metrics()
                .record_state(self.state_size(), self.num_groups());
            return Ok(());
        }
        // Rows of several windows: split by window end (few distinct values per batch).
        let mut distinct: Vec<Timestamp> = Vec::new();
        for &e in ends.values().iter() {
            if !distinct.contains(&e) {
                distinct.push(e);
            }
        }
        for end in distinct {
            let key = TimestampMillisecondArray::new_scalar(end);
            let mask = eq(&ends, &Scalar::new(key.into_inner()))?;
            self.update_window(end, &input.filter(&mask)?)?;
        }
        out.metrics()
            .record_state(self.state_size(), self.num_groups());
        Ok(())
    }

    fn on_watermark(&mut self, watermark: Timestamp, out: &mut Output<'_>) -> Result<()> {
        if watermark > self.watermark {
            self.watermark = watermark;
            self.fire_until(watermark, out)?;
        }
        out.watermark(watermark);
        Ok(())
    }

    fn on_end(&mut self, out: &mut Output<'_>) -> Result<()> {
        self.fire_until(Timestamp::MAX, out)
    }

    /// One batch per open window, tagged with the window's end, and the
    /// watermark: unlike Flink, a restored operator keeps dropping the rows
    /// that were late before the checkpoint, so a restore replays the
    /// uninterrupted run exactly.
    fn snapshot(&mut self) -> Result<Option<OperatorState>> {
        let mut states = Vec::with_capacity(self.windows.len());
        for (&end, state) in &mut self.windows {
            states.push((end, state.snapshot(&self.spec)?));
        }
        Ok(Some(StateBatch::write_tagged(
            states.iter().map(|(end, s)| (*end, s)),
            self.watermark,
        )?))
    }

    fn restore(&mut self, state: OperatorState) -> Result<()> {
        self.watermark = self.watermark.max(state.watermark()?);
        for (end, windowed) in StateBatch::read_tagged(&state, &self.spec)? {
            let window = match self.windows.entry(end) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => v.insert(self.spec.new_state()?),
            };
            window.merge_state(&windowed)?;
        }
        Ok(())
    }

    fn restore_rescaled(&mut self, rescaled: Rescaled) -> Result<()> {
        let keys = self
            .spec
            .state_key_names(rescaled.keys_of_input(0, "a window aggregate")?)?;
        self.restore(rescaled.owned_state(&keys)?)
    }
}
