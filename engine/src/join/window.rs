//! Flink's window join, run a window at a time:
//!
//! ```sql
//! L JOIN R ON L.window_start = R.window_start AND L.window_end = R.window_end AND L.k = R.k
//! ```
//!
//! Rows of either input only ever match rows of their own window, and Flink
//! emits a window's pairs when the window fires. So nothing is indexed on
//! arrival: each row is appended, as part of its input batch, to its window's
//! list for its side. When the watermark reaches a window's last instant
//! (`window_end - 1 ms`, the time column plus [`super::JoinInput::time_offset_ms`]),
//! the window is joined as a batch hash join: the side with fewer rows is
//! indexed, the other probes it, and then both are dropped at once.
//!
//! - Rows whose window has fired (`window_end - 1 <= W`) are late: dropped and
//!   counted in `rows_late`, Flink's rule.
//! - A row with a NULL key or time never matches; an outer side emits it at
//!   once, padded with NULLs. Unmatched rows of an outer side come out when
//!   their window fires.
//! - The probe side hashes its keys and converts them to row format only for
//!   batches with a hash found in the index: a window whose small side has a
//!   handful of rows (Nexmark q7's window maximum) costs one hash per row of
//!   the big side.
//! - State costs the input batches alone; a checkpoint holds each side's rows
//!   in the interval join's format (the input columns and a match flag, false
//!   since nothing matches before its window fires).

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BooleanArray, RecordBatch, RecordBatchOptions, UInt32Array,
};
use datafusion::arrow::compute::{concat_batches, interleave, take_arrays, take_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::row::RowConverter;

use super::interval::{IntervalJoin, LEFT, OUTPUT_BATCH_ROWS, RIGHT, SIDE_NAMES};
use super::key_index::{KeyIndex, to_u32};
use super::side::{
    BatchKeys, MATCHED_COLUMN, SMALL_BATCH_ROWS, TAIL_MERGE_SLOTS, event_times, key_hashes,
    key_validity, state_schema,
};
use super::{JoinInput, join_side};
use crate::checkpoint::{OperatorState, Rescaled, StatePart, malformed_state};
use crate::error::{EngineError, Result};
use crate::operator::{Operator, Output};
use crate::time::{MAX_WATERMARK, MIN_WATERMARK, Timestamp};

/// The rows of one window, per side, as their input delivered them.
#[derive(Default)]
struct WindowRows {
    batches: [Vec<RecordBatch>; 2],
    /// Batches of fewer than [`SMALL_BATCH_ROWS`] rows not yet merged into
    /// one of `batches`.
    small: [Vec<RecordBatch>; 2],
    /// Rows in `small`.
    small_rows: [usize; 2],
    rows: [usize; 2],
}

impl WindowRows {
    /// Every batch of `side`, merged and not.
    fn all(&self, side: usize) -> impl Iterator<Item = &RecordBatch> {
        self.batches[side].iter().chain(&self.small[side])
    }
}

/// A running window join: the rows of the windows that have not fired.
pub struct WindowJoinOperator {
    join: Arc<IntervalJoin>,
    converter: RowConverter,
    /// Window's last instant (`window_end - 1 ms`) → its rows.
    windows: BTreeMap<Timestamp, WindowRows>,
    /// Rows held in `windows`.
    rows: usize,
    /// Bytes held in `windows` (the batches' Arrow memory).
    bytes: usize,
    /// The index of the smaller side of the window being joined; kept between
    /// windows so that its allocations are reused.
    index: KeyIndex,
    /// The last watermark seen (minimum over both inputs).
    watermark: Timestamp,
}

impl WindowJoinOperator {
    /// A window join with empty state; `join` is configured by
    /// [`IntervalJoin::window_join`].
    pub fn new(join: Arc<IntervalJoin>) -> Result<Self> {
        Ok(WindowJoinOperator {
            converter: RowConverter::new(join.key_fields.clone())?,
            join,
            windows: BTreeMap::new(),
            rows: 0,
            bytes: 0,
            index: KeyIndex::default(),
            watermark: MIN_WATERMARK,
        })
    }

    /// Rows held for windows that have not fired.
    pub fn state_rows(&self) -> usize {
        self.rows
    }

    /// Bytes held for windows that have not fired.
    pub fn state_size(&self) -> usize {
        self.bytes + self.index.memory_size()
    }

    fn input(&self, side: usize) -> &JoinInput {
        if side == LEFT {
            &self.join.left
        } else {
            &self.join.right
        }
    }

    fn is_outer(&self, side: usize) -> bool {
        if side == LEFT {
            self.join.kind.keeps_unmatched_left()
        } else {
            self.join.kind.keeps_unmatched_right()
        }
    }

    /// A batch of input `side`: drops late rows, emits unmatched at once the
    /// rows of an outer side that can never match, and files the others
    /// under their windows.
    fn accept(&mut self, side: usize, batch: RecordBatch, out: &mut Output<'_>) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let input = self.input(side);
        let time = batch.column(input.time);
        let ts = event_times(time, input.time_offset_ms)?;
        let valid = key_validity(&batch, &input.keys, Some(input.time));
        let time_nulls = time.logical_nulls();
        let watermark = self.watermark;
        let is_late =
            |i: usize| time_nulls.as_ref().is_none_or(|n| n.is_valid(i)) && ts[i] <= watermark;
        let first = ts[0];
        if valid.is_none() && first > watermark && ts.iter().all(|&t| t == first) {
            // The usual batch: one window, nothing late or NULL.
            return self.file(side, first, batch);
        }
        let mut late = 0;
        let mut unmatched: Vec<u32> = Vec::new();
        let mut by_window: BTreeMap<Timestamp, Vec<u32>> = BTreeMap::new();
        for i in 0..rows {
            if is_late(i) {
                late += 1;
            } else if valid.as_ref().is_none_or(|v| v.is_valid(i)) {
                by_window.entry(ts[i]).or_default().push(i as u32);
            } else {
                unmatched.push(i as u32);
            }
        }
        if late > 0 {
            let keep: BooleanArray = (0..rows).map(|i| Some(!is_late(i))).collect();
            let reason = if side == LEFT {
                "left row of a window that has fired"
            } else {
                "right row of a window that has fired"
            };
            out.drop_late(&batch, &keep, reason, watermark)?;
        }
        if self.is_outer(side) && !unmatched.is_empty() {
            self.join
                .emit_unmatched_rows(side, &batch, unmatched, out)?;
        }
        for (window, rows) in by_window {
            let part = if rows.len() == batch.num_rows() {
                batch.clone()
            } else {
                take_record_batch(&batch, &UInt32Array::from(rows))?
            };
            self.file(side, window, part)?;
        }
        Ok(())
    }

    /// Adds `batch` (rows of input `side`, all valid and of one window) to the
    /// rows of window `window`.
    /// Small batches (a slow input) are merged every [`SMALL_BATCH_ROWS`]
    /// rows or [`TAIL_MERGE_SLOTS`] batches, so that a window's rows do not
    /// sit in thousands of tiny batches.
    fn file(&mut self, side: usize, window: Timestamp, batch: RecordBatch) -> Result<()> {
        let n = batch.num_rows();
        self.rows += n;
        self.bytes += batch.get_array_memory_size();
        let rows = self.windows.entry(window).or_default();
        rows.rows[side] += n;
        if n >= SMALL_BATCH_ROWS {
            rows.batches[side].push(batch);
            return Ok(());
        }
        rows.small[side].push(batch);
        rows.small_rows[side] += n;
        if rows.small_rows[side] < SMALL_BATCH_ROWS && rows.small[side].len() < TAIL_MERGE_SLOTS {
            return Ok(());
        }
        let small = std::mem::take(&mut rows.small[side]);
        rows.small_rows[side] = 0;
        let schema = self.input(side).schema.clone();
        let merged = concat_batches(&schema, &small)?;
        let freed: usize = small.iter().map(RecordBatch::get_array_memory_size).sum();
        self.bytes = self.bytes.saturating_sub(freed) + merged.get_array_memory_size();
        if let Some(rows) = self.windows.get_mut(&window) {
            rows.batches[side].push(merged);
        }
        Ok(())
    }

    /// Joins and drops every window whose last instant is at or before
    /// `watermark`, oldest first.
    fn fire(&mut self, watermark: Timestamp, out: &mut Output<'_>) -> Result<()> {
        while let Some(entry) = self.windows.first_entry() {
            if *entry.key() > watermark {
                break;
            }
            let window = entry.remove();
            for side in [LEFT, RIGHT] {
                self.rows = self.rows.saturating_sub(window.rows[side]);
                for batch in window.all(side) {
                    self.bytes = self.bytes.saturating_sub(batch.get_array_memory_size());
                }
            }
            self.join_window(window, out)?;
        }
        Ok(())
    }

    /// Emits the pairs of one window, then the unmatched rows of its outer
    /// sides.
    fn join_window(&mut self, window: WindowRows, out: &mut Output<'_>) -> Result<()> {
        let WindowRows {
            mut batches,
            small,
            rows,
            ..
        } = window;
        for (side, small) in small.into_iter().enumerate() {
            batches[side].extend(small);
        }
        if rows[LEFT] == 0 || rows[RIGHT] == 0 {
            for side in [LEFT, RIGHT] {
                if self.is_outer(side) {
                    for batch in &batches[side] {
                        self.join
                            .emit_unmatched(side, batch.columns().to_vec(), out)?;
                    }
                }
            }
            return Ok(());
        }
        let build = if rows[RIGHT] <= rows[LEFT] {
            RIGHT
        } else {
            LEFT
        };
        let probe = 1 - build;
        let build_keys = self.input(build).keys.clone();
        let probe_keys = self.input(probe).keys.clone();
        self.index.clear();
        for (slot, batch) in batches[build].iter().enumerate() {
            let keys = BatchKeys::new(batch, &build_keys, None, &self.converter)?;
            let slot = to_u32(slot, "batches")?;
            for row in 0..batch.num_rows() {
                self.index
                    .insert(keys.hash(row), keys.bytes(row), 0, slot, row as u32)?;
            }
        }
        let mut build_matched: Vec<Vec<bool>> = if self.is_outer(build) {
            batches[build]
                .iter()
                .map(|b| vec![false; b.num_rows()])
                .collect()
        } else {
            Vec::new()
        };
        let build_columns: Vec<Vec<&dyn Array>> = (0..self.input(build).schema.fields().len())
            .map(|c| {
                batches[build]
                    .iter()
                    .map(|b| b.column(c).as_ref())
                    .collect()
            })
            .collect();
        let probe_outer = self.is_outer(probe);
        for batch in &batches[probe] {
            let hashes = key_hashes(batch, &probe_keys)?;
            let hits: Vec<u32> = (0..batch.num_rows())
                .filter(|&i| self.index.has_hash(hashes[i]))
                .map(|i| i as u32)
                .collect();
            let mut matched = if probe_outer {
                vec![false; batch.num_rows()]
            } else {
                Vec::new()
            };
            if !hits.is_empty() {
                let keys =
                    BatchKeys::with_hashes(batch, &probe_keys, None, hashes, &self.converter)?;
                let mut flush = |pairs: &Pairs| {
                    self.emit(
                        probe,
                        batch,
                        &build_columns,
                        pairs,
                        &mut matched,
                        &mut build_matched,
                        out,
                    )
                };
                let mut pairs = Pairs::default();
                for &i in &hits {
                    if let Some(key) = self
                        .index
                        .find(keys.hash(i as usize), keys.bytes(i as usize))
                    {
                        for e in self.index.chain(key) {
                            pairs.probe_rows.push(i);
                            pairs.refs.push((e.slot, e.row));
                            if pairs.probe_rows.len() >= OUTPUT_BATCH_ROWS {
                                flush(&pairs)?;
                                pairs = Pairs::default();
                            }
                        }
                    }
                }
                flush(&pairs)?;
            }
            if probe_outer {
                let unmatched: Vec<u32> = (0..batch.num_rows())
                    .filter(|&i| !matched[i])
                    .map(|i| i as u32)
                    .collect();
                self.join
                    .emit_unmatched_rows(probe, batch, unmatched, out)?;
            }
        }
        for (batch, matched) in batches[build].iter().zip(build_matched) {
            let unmatched: Vec<u32> = (0..batch.num_rows())
                .filter(|&i| !matched[i])
                .map(|i| i as u32)
                .collect();
            self.join
                .emit_unmatched_rows(build, batch, unmatched, out)?;
        }
        Ok(())
    }

    /// Emits the candidate pairs of `probe_batch` (of input `probe`) with rows
    /// of the build side (`build`: per column, that column of every build
    /// batch) and records which rows matched.
    #[allow(clippy::too_many_arguments)]
    fn emit(
        &self,
        probe: usize,
        probe_batch: &RecordBatch,
        build: &[Vec<&dyn Array>],
        pairs: &Pairs,
        probe_matched: &mut [bool],
        build_matched: &mut [Vec<bool>],
        out: &mut Output<'_>,
    ) -> Result<()> {
        let rows = pairs.probe_rows.len();
        if rows == 0 {
            return Ok(());
        }
        let indices = UInt32Array::from(pairs.probe_rows.clone());
        let this = take_arrays(probe_batch.columns(), &indices, None)?;
        let refs: Vec<(usize, usize)> = pairs
            .refs
            .iter()
            .map(|&(slot, row)| (slot as usize, row as usize))
            .collect();
        let other = build
            .iter()
            .map(|arrays| Ok(interleave(arrays, &refs)?))
            .collect::<Result<Vec<ArrayRef>>>()?;
        let kept = self.join.emit_candidates(probe, this, other, rows, out)?;
        if probe_matched.is_empty() && build_matched.is_empty() {
            return Ok(());
        }
        for (k, (&row, &(slot, build_row))) in pairs.probe_rows.iter().zip(&refs).enumerate() {
            if kept.as_ref().is_none_or(|m| m.value(k)) {
                if let Some(m) = probe_matched.get_mut(row as usize) {
                    *m = true;
                }
                if let Some(m) = build_matched
                    .get_mut(slot)
                    .and_then(|b| b.get_mut(build_row))
                {
                    *m = true;
                }
            }
        }
        Ok(())
    }

    /// Files again the rows of a checkpoint part of input `side`.
    fn restore_side(&mut self, side: usize, rows: &RecordBatch) -> Result<()> {
        let width = self.input(side).schema.fields().len();
        if rows.num_columns() != width + 1 {
            return Err(malformed_state(&format!(
                "window join rows with {} columns, expected {} and {MATCHED_COLUMN}",
                rows.num_columns(),
                width
            )));
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows.num_rows()));
        let batch = RecordBatch::try_new_with_options(
            self.input(side).schema.clone(),
            rows.columns()[..width].to_vec(),
            &options,
        )?;
        let input = self.input(side);
        if key_validity(&batch, &input.keys, Some(input.time)).is_some_and(|v| v.null_count() > 0) {
            return Err(malformed_state(
                "a buffered window join row has a NULL key or time",
            ));
        }
        let ts = event_times(batch.column(input.time), input.time_offset_ms)?;
        let mut by_window: BTreeMap<Timestamp, Vec<u32>> = BTreeMap::new();
        for (i, &t) in ts.iter().enumerate() {
            by_window.entry(t).or_default().push(to_u32(i, "rows")?);
        }
        for (window, rows) in by_window {
            let part = take_record_batch(&batch, &UInt32Array::from(rows))?;
            self.file(side, window, part)?;
        }
        Ok(())
    }

    fn record_state(&self, out: &Output<'_>) {
        out.metrics().record_state(self.state_size(), self.rows);
    }
}

/// Candidate pairs: row `probe_rows[k]` of a probe batch with row `refs[k]`
/// (`(batch, row)`) of the build side.
#[derive(Default)]
struct Pairs {
    probe_rows: Vec<u32>,
    refs: Vec<(u32, u32)>,
}

impl Operator for WindowJoinOperator {
    fn output_schema(&self) -> SchemaRef {
        use crate::operator::OperatorFactory;
        self.join.output_schema()
    }

    fn on_batch(&mut self, _batch: RecordBatch, _out: &mut Output<'_>) -> Result<()> {
        Err(EngineError::InvalidGraph(
            "a window join has two inputs; batches must say which one".to_string(),
        ))
    }

    fn on_input_batch(
        &mut self,
        input: usize,
        batch: RecordBatch,
        out: &mut Output<'_>,
    ) -> Result<()> {
        let side = join_side(input, "a window join")?;
        self.accept(side, batch, out)?;
        self.record_state(out);
        Ok(())
    }

    /// Fires the windows the watermark has reached, then forwards it. After a
    /// restore at another parallelism, `self.watermark` (the highest of the
    /// old instances') can be ahead of windows restored from an instance that
    /// was behind: they fire here, before that watermark goes downstream.
    fn on_watermark(&mut self, watermark: Timestamp, out: &mut Output<'_>) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        self.fire(self.watermark, out)?;
        out.watermark(self.watermark);
        Ok(())
    }

    fn on_end(&mut self, out: &mut Output<'_>) -> Result<()> {
        self.fire(MAX_WATERMARK, out)
    }

    /// Each side's rows of the windows that have not fired, oldest window
    /// first, as the parts `left` and `right` (the interval join's format:
    /// the input columns and a match flag, here always false), and the
    /// watermark.
    fn snapshot(&mut self) -> Result<Option<OperatorState>> {
        let mut parts = Vec::with_capacity(2);
        for side in [LEFT, RIGHT] {
            let schema = state_schema(&self.input(side).schema);
            let mut batches = Vec::new();
            for window in self.windows.values() {
                for batch in window.all(side) {
                    let mut columns = batch.columns().to_vec();
                    columns.push(Arc::new(BooleanArray::from(vec![false; batch.num_rows()])));
                    batches.push(RecordBatch::try_new(schema.clone(), columns)?);
                }
            }
            parts.push(StatePart {
                name: SIDE_NAMES[side].to_string(),
                schema,
                batches,
            });
        }
        Ok(Some(
            OperatorState::from_parts(parts)?.with_watermark(self.watermark)?,
        ))
    }

    fn restore(&mut self, state: OperatorState) -> Result<()> {
        self.watermark = self.watermark.max(state.watermark()?);
        let expected =
            [LEFT, RIGHT].map(|side| (SIDE_NAMES[side], state_schema(&self.input(side).schema)));
        let parts = state.parts(&expected)?;
        for (side, batches) in parts.iter().enumerate() {
            for batch in batches {
                self.restore_side(side, batch)?;
            }
        }
        Ok(())
    }

    /// Each side's rows are that side's input rows: they are split by the
    /// side's own hash keys.
    fn restore_rescaled(&mut self, rescaled: Rescaled) -> Result<()> {
        let keys = [
            rescaled.keys_of_input(LEFT, "a window join")?.to_vec(),
            rescaled.keys_of_input(RIGHT, "a window join")?.to_vec(),
        ];
        let expected =
            [LEFT, RIGHT].map(|side| (SIDE_NAMES[side], state_schema(&self.input(side).schema)));
        for (_, state) in &rescaled.states {
            self.watermark = self.watermark.max(state.watermark()?);
            let parts = state.parts(&expected)?;
            for (side, batches) in parts.iter().enumerate() {
                for batch in batches {
                    self.restore_side(side, &rescaled.owned_rows(batch, &keys[side])?)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
impl WindowJoinOperator {
    /// The windows held, by last instant, with their rows per side.
    pub(super) fn windows(&self) -> Vec<(Timestamp, [usize; 2])> {
        self.windows.iter().map(|(&w, r)| (w, r.rows)).collect()
    }

    /// The bytes held, counted again from the batches (the running count
    /// must equal it), and the number of batches held.
    pub(super) fn recounted(&self) -> (usize, usize) {
        let batches = self
            .windows
            .values()
            .flat_map(|w| w.all(LEFT).chain(w.all(RIGHT)));
        batches.fold((0, 0), |(bytes, n), b| {
            (bytes + b.get_array_memory_size(), n + 1)
        })
    }

    /// Bytes held in windows, by the running count.
    pub(super) fn held_bytes(&self) -> usize {
        self.bytes
    }
}
