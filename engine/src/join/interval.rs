//! The event-time interval join:
//!
//! ```sql
//! a JOIN b ON a.k = b.k AND b.ts BETWEEN a.ts - INTERVAL '5' SECOND AND a.ts + INTERVAL '15' MINUTE
//! ```
//!
//! In general a left row `a` and a right row `b` match when their keys are equal
//! (and not NULL), `a.ts + lower <= b.ts <= a.ts + upper` (bounds inclusive,
//! `lower` may be negative; the planner turns a strict `<`/`>` into an inclusive
//! bound 1 ms tighter), and the optional residual predicate over the joined row is
//! true.
//!
//! Semantics, as Flink's interval join, with lateness decided by the watermark:
//! - Each side buffers its rows keyed by the join key. A new row probes the other
//!   side's buffer, so every pair is emitted exactly once, when its second row
//!   arrives.
//! - `W` is the minimum of both inputs' watermarks. A row with `ts <= W` is late:
//!   it is dropped and counted in `rows_late`. Because every accepted row is
//!   ahead of the watermark, releasing state never loses a match: the output is
//!   exactly the join of the accepted rows.
//! - A left row is released when `W >= a.ts + upper` (no right row that can still
//!   arrive matches it), a right row when `W >= b.ts - lower`. An outer side emits
//!   its rows that matched nothing when they are released, padded with NULLs:
//!   "an authorization without a capture within 15 minutes" is emitted once the
//!   watermark passes `a.ts + 15 min`. A row that is already releasable when it
//!   arrives probes, is not buffered, and if unmatched is emitted at once.
//! - A row with a NULL key or time never matches; an outer side emits it at once.
//! - `on_end` releases everything: pending unmatched rows of outer sides are
//!   emitted.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, RecordBatchOptions, UInt32Array,
    new_null_array,
};
use datafusion::arrow::compute::{filter_record_batch, take_arrays};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::physical_expr::PhysicalExpr;

use super::side::{SideState, is_time_type};
use super::window::WindowJoinOperator;
use super::{JoinInput, JoinKind, join_side};
use crate::checkpoint::{OperatorState, Rescaled, StatePart};
use crate::error::{EngineError, Result};
use crate::metrics::NodeRole;
use crate::operator::{Operator, OperatorFactory, Output};
use crate::time::{MAX_WATERMARK, MIN_WATERMARK, Timestamp};

/// Output batches of matched pairs hold at most about this many rows.
pub(super) const OUTPUT_BATCH_ROWS: usize = 8192;

/// Index of the left input (`on_input_batch` input 0).
pub(super) const LEFT: usize = 0;

/// Index of the right input (`on_input_batch` input 1).
pub(super) const RIGHT: usize = 1;

/// The names of the sides' parts in a checkpoint, by input number.
pub(super) const SIDE_NAMES: [&str; 2] = ["left", "right"];

/// The description of an interval join, and the factory of its instances.
#[derive(Debug, Clone)]
pub struct IntervalJoin {
    pub(super) left: JoinInput,
    pub(super) right: JoinInput,
    lower_ms: i64,
    upper_ms: i64,
    pub(super) kind: JoinKind,
    residual: Option<Arc<dyn PhysicalExpr>>,
    output_schema: SchemaRef,
    pub(super) key_fields: Vec<SortField>,
    /// Configured as a window join: runs as a [`WindowJoinOperator`].
    window: bool,
}

impl IntervalJoin {
    /// An interval join matching `left.ts + lower_ms <= right.ts <= left.ts +
    /// upper_ms` on equal keys. `residual`, when given, is a boolean predicate
    /// over the output schema (left columns then right columns) that a pair
    /// must also satisfy.
    ///
    /// Fails when the key lists differ in length or type, a column is out of
    /// range, a time column is not `TIMESTAMP(3)`/`BIGINT`, `lower_ms >
    /// upper_ms`, or the residual is not boolean.
    pub fn new(
        left: JoinInput,
        right: JoinInput,
        lower_ms: i64,
        upper_ms: i64,
        kind: JoinKind,
        residual: Option<Arc<dyn PhysicalExpr>>,
    ) -> Result<Self> {
        let config = |msg: String| EngineError::Config(format!("interval join: {msg}"));
        if left.keys.len() != right.keys.len() {
            return Err(config(format!(
                "{} left keys but {} right keys",
                left.keys.len(),
                right.keys.len()
            )));
        }
        if lower_ms > upper_ms {
            return Err(config(format!(
                "empty interval: lower bound {lower_ms} ms is above upper bound {upper_ms} ms"
            )));
        }
        let field = |input: &JoinInput, side: &str, i: usize| {
            input
                .schema
                .fields()
                .get(i)
                .cloned()
                .ok_or_else(|| config(format!("{side} column {i} does not exist")))
        };
        let mut key_fields = Vec::with_capacity(left.keys.len());
        for (&l, &r) in left.keys.iter().zip(&right.keys) {
            let (lf, rf) = (field(&left, "left", l)?, field(&right, "right", r)?);
            if lf.data_type() != rf.data_type() {
                return Err(config(format!(
                    "key {} is {} but {} is {}",
                    lf.name(),
                    lf.data_type(),
                    rf.name(),
                    rf.data_type()
                )));
            }
            key_fields.push(SortField::new(lf.data_type().clone()));
        }
        for (input, side) in [(&left, "left"), (&right, "right")] {
            let f = field(input, side, input.time)?;
            if !is_time_type(f.data_type()) {
                return Err(config(format!(
                    "time column {} is {}, not TIMESTAMP(3) or BIGINT milliseconds",
                    f.name(),
                    f.data_type()
                )));
            }
        }
        let output_schema = output_schema(&left.schema, &right.schema, kind);
        if let Some(residual) = &residual {
            let t = residual.data_type(&output_schema)?;
            if t != DataType::Boolean {
                return Err(config(format!(
                    "residual predicate {residual} is {t}, not BOOLEAN"
                )));
            }
        }
        // Fail now, not in `create`, if the key types have no row format.
        RowConverter::new(key_fields.clone())?;
        Ok(IntervalJoin {
            left,
            right,
            lower_ms,
            upper_ms,
            kind,
            residual,
            output_schema,
            key_fields,
            window: false,
        })
    }

    /// Flink's window join: rows of two inputs windowed alike match when their
    /// `window_start`, `window_end` and keys are equal. Each input's `time` is its
    /// `window_end` column and its `keys` include both window columns.
    ///
    /// Its event time is the window's last instant, `window_end - 1 ms`: a row
    /// is late once the watermark has reached it (its window has fired,
    /// Flink's rule). It runs as a [`WindowJoinOperator`], which joins a
    /// window's rows, and emits the unmatched rows of outer sides with NULLs,
    /// when the watermark reaches that instant.
    pub fn window_join(
        left: JoinInput,
        right: JoinInput,
        kind: JoinKind,
        residual: Option<Arc<dyn PhysicalExpr>>,
    ) -> Result<Self> {
        let mut join = IntervalJoin::new(
            left.with_time_offset(-1),
            right.with_time_offset(-1),
            0,
            0,
            kind,
            residual,
        )?;
        join.window = true;
        Ok(join)
    }

    /// A fresh instance with empty state (what [`OperatorFactory::create`] boxes).
    pub fn operator(&self) -> Result<IntervalJoinOperator> {
        let join = Arc::new(self.clone());
        Ok(IntervalJoinOperator {
            converter: RowConverter::new(self.key_fields.clone())?,
            sides: [
                SideState::new(
                    self.left.schema.clone(),
                    self.left.keys.clone(),
                    (self.left.time, self.left.time_offset_ms),
                    self.upper_ms,
                    self.kind.keeps_unmatched_left(),
                ),
                SideState::new(
                    self.right.schema.clone(),
                    self.right.keys.clone(),
                    (self.right.time, self.right.time_offset_ms),
                    self.lower_ms.saturating_neg(),
                    self.kind.keeps_unmatched_right(),
                ),
            ],
            watermark: MIN_WATERMARK,
            join,
        })
    }

    /// A fresh window join instance (for a join made by
    /// [`IntervalJoin::window_join`]).
    pub fn window_operator(&self) -> Result<WindowJoinOperator> {
        WindowJoinOperator::new(Arc::new(self.clone()))
    }

    /// The join type.
    pub fn kind(&self) -> JoinKind {
        self.kind
    }

    fn column_name(input: &JoinInput, side: &str, i: usize) -> String {
        match input.schema.fields().get(i) {
            Some(f) => format!("{side}.{}", f.name()),
            None => format!("{side}.#{i}"),
        }
    }

    /// Assembles output columns: `this` are the columns of input `side`.
    fn assemble(
        &self,
        side: usize,
        this: Vec<ArrayRef>,
        other: Vec<ArrayRef>,
        rows: usize,
    ) -> Result<RecordBatch> {
        let (mut columns, right) = if side == LEFT {
            (this, other)
        } else {
            (other, this)
        };
        columns.extend(right);
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            self.output_schema.clone(),
            columns,
            &options,
        )?)
    }

    /// Emits rows `rows` (ascending) of `batch`, of input `side`, padded with
    /// NULLs; all of the batch without a copy when `rows` are all its rows.
    pub(super) fn emit_unmatched_rows(
        &self,
        side: usize,
        batch: &RecordBatch,
        rows: Vec<u32>,
        out: &mut Output<'_>,
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let columns = if rows.len() == batch.num_rows() {
            batch.columns().to_vec()
        } else {
            take_arrays(batch.columns(), &UInt32Array::from(rows), None)?
        };
        self.emit_unmatched(side, columns, out)
    }

    /// Emits rows of input `side` (given as its columns) padded with NULLs.
    pub(super) fn emit_unmatched(
        &self,
        side: usize,
        columns: Vec<ArrayRef>,
        out: &mut Output<'_>,
    ) -> Result<()> {
        let rows = columns.first().map_or(0, |c| c.len());
        if rows == 0 {
            return Ok(());
        }
        let other = if side == LEFT {
            &self.right.schema
        } else {
            &self.left.schema
        };
        let nulls = other
            .fields()
            .iter()
            .map(|f| new_null_array(f.data_type(), rows))
            .collect();
        let batch = self.assemble(side, columns, nulls, rows)?;
        let mut offset = 0;
        while offset < rows {
            let len = OUTPUT_BATCH_ROWS.min(rows - offset);
            out.batch(batch.slice(offset, len));
            offset += len;
        }
        Ok(())
    }

    /// Emits the candidate pairs `(probe_rows[k] of batch, refs[k] of other)`
    /// that satisfy the residual predicate, and records which rows matched.
    fn emit_pairs(
        &self,
        side: usize,
        batch: &RecordBatch,
        pairs: &Pairs,
        other: &mut SideState,
        matched: &mut [bool],
        out: &mut Output<'_>,
    ) -> Result<()> {
        let Pairs { probe_rows, refs } = pairs;
        if probe_rows.is_empty() {
            return Ok(());
        }
        let indices = UInt32Array::from(probe_rows.clone());
        let this_columns = take_arrays(batch.columns(), &indices, None)?;
        let other_columns = other.gather(refs)?;
        let kept =
            self.emit_candidates(side, this_columns, other_columns, probe_rows.len(), out)?;
        if !matched.is_empty() || other.is_outer() {
            for (k, (&row, &(slot, other_row))) in probe_rows.iter().zip(refs).enumerate() {
                if kept.as_ref().is_none_or(|m| m.value(k)) {
                    if let Some(m) = matched.get_mut(row as usize) {
                        *m = true;
                    }
                    other.mark_matched(slot, other_row);
                }
            }
        }
        Ok(())
    }

    /// Emits the `rows` candidate pairs whose columns are `this` (of input
    /// `side`) and `other` that satisfy the residual predicate; returns which
    /// candidates did (`None`: all of them), with NULL read as false.
    pub(super) fn emit_candidates(
        &self,
        side: usize,
        this: Vec<ArrayRef>,
        other: Vec<ArrayRef>,
        rows: usize,
        out: &mut Output<'_>,
    ) -> Result<Option<BooleanArray>> {
        let candidates = self.assemble(side, this, other, rows)?;
        let Some(predicate) = &self.residual else {
            out.batch(candidates);
            return Ok(None);
        };
        let mask = predicate.evaluate(&candidates)?.into_array(rows)?;
        let mask = mask.as_boolean_opt().ok_or_else(|| {
            EngineError::Config(format!(
                "interval join residual {predicate} is not boolean but {}",
                mask.data_type()
            ))
        })?;
        // NULL is not a match: fold the validity into the values.
        let kept = match mask.nulls() {
            Some(nulls) => BooleanArray::new(mask.values() & nulls.inner(), None),
            None => mask.clone(),
        };
        out.batch(filter_record_batch(&candidates, &kept)?);
        Ok(Some(kept))
    }
}

/// Candidate pairs of one probe: row `probe_rows[k]` of the new batch with the
/// buffered row `refs[k]` (`(slot, row)`) of the other side.
#[derive(Default)]
struct Pairs {
    probe_rows: Vec<u32>,
    refs: Vec<(u32, u32)>,
}

/// Left fields then right fields; the side an outer join pads becomes nullable.
pub(super) fn output_schema(left: &Schema, right: &Schema, kind: JoinKind) -> SchemaRef {
    fn pad(schema: &Schema, nullable: bool) -> impl Iterator<Item = Arc<Field>> + '_ {
        schema.fields().iter().map(move |f| {
            if nullable && !f.is_nullable() {
                Arc::new(f.as_ref().clone().with_nullable(true))
            } else {
                f.clone()
            }
        })
    }
    let fields: Vec<Arc<Field>> = pad(left, kind.keeps_unmatched_right())
        .chain(pad(right, kind.keeps_unmatched_left()))
        .collect();
    Arc::new(Schema::new(fields))
}

/// `col`, `col + 15 min` or `col - 5 s`.
fn offset_text(col: &str, ms: i64) -> String {
    match ms {
        0 => col.to_string(),
        ms if ms > 0 => format!("{col} + {}", duration_text(ms.unsigned_abs())),
        ms => format!("{col} - {}", duration_text(ms.unsigned_abs())),
    }
}

/// A duration in the largest unit that divides it: `15 min`, `5 s`, `1500 ms`.
fn duration_text(ms: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "min"),
        (1_000, "s"),
    ];
    UNITS
        .iter()
        .find(|(unit, _)| ms.is_multiple_of(*unit))
        .map_or_else(
            || format!("{ms} ms"),
            |(unit, name)| format!("{} {name}", ms / unit),
        )
}

impl OperatorFactory for IntervalJoin {
    fn name(&self) -> String {
        if self.window {
            "WindowJoin".to_string()
        } else {
            "IntervalJoin".to_string()
        }
    }

    fn role(&self) -> NodeRole {
        NodeRole::Join
    }

    fn explain(&self) -> Vec<String> {
        let keys = if self.left.keys.is_empty() {
            "none".to_string()
        } else {
            self.left
                .keys
                .iter()
                .zip(&self.right.keys)
                .map(|(&l, &r)| {
                    format!(
                        "{} = {}",
                        Self::column_name(&self.left, "left", l),
                        Self::column_name(&self.right, "right", r)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let padded = match self.kind {
            JoinKind::Inner => None,
            JoinKind::Left => Some("left rows"),
            JoinKind::Right => Some("right rows"),
            JoinKind::Full => Some("rows"),
        };
        let time = |input: &JoinInput, side: &str| {
            offset_text(
                &Self::column_name(input, side, input.time),
                input.time_offset_ms,
            )
        };
        let (lt, rt) = (time(&self.left, "left"), time(&self.right, "right"));
        let mut lines = vec![format!("type: {}", self.kind), format!("keys: {keys}")];
        if self.window {
            if let Some(residual) = &self.residual {
                lines.push(format!("residual: {residual}"));
            }
            let end = match self.left.schema.fields().get(self.left.time) {
                Some(f) => offset_text(f.name(), self.left.time_offset_ms),
                None => lt.clone(),
            };
            let mut state = format!(
                "state: a window's rows until the watermark reaches their {end} (the window \
                 fires): then its pairs are emitted and its rows dropped; rows of fired windows \
                 are late"
            );
            if let Some(padded) = padded {
                state.push_str(&format!(
                    "; unmatched {padded} are emitted with NULLs when their window fires"
                ));
            }
            lines.push(state);
            return lines;
        }
        lines.push(format!(
            "interval: {rt} BETWEEN {} AND {}",
            offset_text(&lt, self.lower_ms),
            offset_text(&lt, self.upper_ms)
        ));
        if let Some(residual) = &self.residual {
            lines.push(format!("residual: {residual}"));
        }
        let mut state = format!(
            "state: left row until watermark >= {}, right row until watermark >= {}; rows at or behind the watermark are late",
            offset_text(&lt, self.upper_ms),
            offset_text(&rt, self.lower_ms.saturating_neg())
        );
        if let Some(padded) = padded {
            state.push_str(&format!(
                "; unmatched {padded} are emitted with NULLs when released"
            ));
        }
        lines.push(state);
        lines
    }

    fn output_schema(&self) -> SchemaRef {
        self.output_schema.clone()
    }

    fn create(&self) -> Result<Box<dyn Operator>> {
        if self.window {
            return Ok(Box::new(self.window_operator()?));
        }
        Ok(Box::new(self.operator()?))
    }
}

/// A running interval join: both sides' buffered rows.
pub struct IntervalJoinOperator {
    join: Arc<IntervalJoin>,
    converter: RowConverter,
    /// Left and right state.
    sides: [SideState; 2],
    /// The last watermark seen (minimum over both inputs).
    watermark: Timestamp,
}

impl IntervalJoinOperator {
    /// Rows buffered on both sides (not yet released by the watermark).
    pub fn state_rows(&self) -> usize {
        self.sides[LEFT].rows() + self.sides[RIGHT].rows()
    }

    /// Bytes held by both sides (see [`SideState::state_size`]).
    pub fn state_size(&self) -> usize {
        self.sides[LEFT].state_size() + self.sides[RIGHT].state_size()
    }

    /// Bytes of both sides' stored batches.
    #[cfg(test)]
    pub(super) fn stored_bytes(&self) -> usize {
        self.sides[LEFT].stored_bytes() + self.sides[RIGHT].stored_bytes()
    }

    /// [`IntervalJoinOperator::state_size`] counted again from scratch.
    #[cfg(test)]
    pub(super) fn recounted_state_size(&self) -> usize {
        self.sides[LEFT].recounted_state_size() + self.sides[RIGHT].recounted_state_size()
    }

    /// Records the state's size in the node's metrics.
    fn record_state(&self, out: &Output<'_>) {
        out.metrics()
            .record_state(self.state_size(), self.state_rows());
    }

    /// Lowers the row count that triggers an index rebuild, to exercise it.
    #[cfg(test)]
    pub(super) fn set_rebuild_min_rows(&mut self, rows: usize) {
        for side in &mut self.sides {
            side.rebuild_min_rows = rows;
        }
    }

    /// A batch of input `side`: drop late rows, probe the other side, emit
    /// pairs, buffer what can still match, emit unmatched rows that cannot.
    fn process(&mut self, side: usize, batch: RecordBatch, out: &mut Output<'_>) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let watermark = self.watermark;
        let join = self.join.clone();
        let (lower, upper) = (join.lower_ms, join.upper_ms);
        let converter = &self.converter;
        let [left, right] = &mut self.sides;
        let (this, other) = if side == LEFT {
            (left, right)
        } else {
            (right, left)
        };
        let ts = this.event_times(&batch)?;
        let ts_nulls = batch.column(this.time_col()).logical_nulls();
        let keys = this.keys(&batch, converter)?;

        // Rows that can match (non-NULL key and time, not late); the others,
        // unless late, are unmatched now.
        let mut candidates: Vec<u32> = Vec::with_capacity(rows);
        let mut unmatched: Vec<u32> = Vec::new();
        let mut late = 0;
        for i in 0..rows {
            let has_time = ts_nulls.as_ref().is_none_or(|n| n.is_valid(i));
            if has_time && ts[i] <= watermark {
                late += 1;
            } else if keys.is_valid(i) {
                candidates.push(i as u32);
            } else if this.is_outer() {
                unmatched.push(i as u32);
            }
        }
        if late > 0 {
            let keep: BooleanArray = (0..rows)
                .map(|i| {
                    let has_time = ts_nulls.as_ref().is_none_or(|n| n.is_valid(i));
                    Some(!(has_time && ts[i] <= watermark))
                })
                .collect();
            let reason = if side == LEFT {
                "left row at or behind the watermark"
            } else {
                "right row at or behind the watermark"
            };
            out.drop_late(&batch, &keep, reason, watermark)?;
        }

        let mut matched = if this.is_outer() {
            vec![false; rows]
        } else {
            Vec::new()
        };
        let mut pairs = Pairs::default();
        for &i in &candidates {
            let t = ts[i as usize];
            let (lo, hi) = if side == LEFT {
                (t.saturating_add(lower), t.saturating_add(upper))
            } else {
                (t.saturating_sub(upper), t.saturating_sub(lower))
            };
            other.probe(&keys, i as usize, lo, hi, |slot, row| {
                pairs.probe_rows.push(i);
                pairs.refs.push((slot, row));
            });
            if pairs.probe_rows.len() >= OUTPUT_BATCH_ROWS {
                join.emit_pairs(side, &batch, &pairs, other, &mut matched, out)?;
                pairs.probe_rows.clear();
                pairs.refs.clear();
            }
        }
        join.emit_pairs(side, &batch, &pairs, other, &mut matched, out)?;

        // Buffer the rows that rows still to come can match.
        let mut keep: Vec<u32> = Vec::with_capacity(candidates.len());
        for &i in &candidates {
            if this.expiry(ts[i as usize]) > watermark {
                keep.push(i);
            } else if this.is_outer() && !matched[i as usize] {
                unmatched.push(i);
            }
        }
        this.insert(&batch, &keep, &keys, &matched, converter)?;
        unmatched.sort_unstable();
        join.emit_unmatched_rows(side, &batch, unmatched, out)
    }

    /// Releases what `watermark` expires on both sides.
    fn release(&mut self, watermark: Timestamp, out: &mut Output<'_>) -> Result<()> {
        let join = self.join.clone();
        for side in [LEFT, RIGHT] {
            let converter = &self.converter;
            let state = &mut self.sides[side];
            if let Some(columns) = state.expire(watermark, converter)? {
                join.emit_unmatched(side, columns, out)?;
            }
        }
        Ok(())
    }
}

impl Operator for IntervalJoinOperator {
    fn output_schema(&self) -> SchemaRef {
        self.join.output_schema.clone()
    }

    fn on_batch(&mut self, _batch: RecordBatch, _out: &mut Output<'_>) -> Result<()> {
        Err(EngineError::InvalidGraph(
            "an interval join has two inputs; batches must say which one".to_string(),
        ))
    }

    fn on_input_batch(
        &mut self,
        input: usize,
        batch: RecordBatch,
        out: &mut Output<'_>,
    ) -> Result<()> {
        let side = join_side(input, "an interval join")?;
        self.process(side, batch, out)?;
        self.record_state(out);
        Ok(())
    }

    /// Releases what the watermark expires, then forwards it. After a restore
    /// at another parallelism, `self.watermark` (the highest of the old
    /// instances') can be ahead of rows restored from an instance that was
    /// behind: they are released here, before that watermark goes downstream.
    fn on_watermark(&mut self, watermark: Timestamp, out: &mut Output<'_>) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        self.release(self.watermark, out)?;
        out.watermark(self.watermark);
        Ok(())
    }

    fn on_end(&mut self, out: &mut Output<'_>) -> Result<()> {
        self.release(MAX_WATERMARK, out)
    }

    /// Both sides' buffered rows with their match flags, as the parts `left`
    /// and `right` of one state (see [`OperatorState::from_parts`]), and the
    /// watermark.
    fn snapshot(&mut self) -> Result<Option<OperatorState>> {
        let mut parts = Vec::with_capacity(2);
        for (name, side) in SIDE_NAMES.iter().zip(&mut self.sides) {
            parts.push(StatePart {
                name: (*name).to_string(),
                schema: side.state_schema(),
                batches: side.snapshot()?.into_iter().collect(),
            });
        }
        Ok(Some(
            OperatorState::from_parts(parts)?.with_watermark(self.watermark)?,
        ))
    }

    fn restore(&mut self, state: OperatorState) -> Result<()> {
        self.watermark = self.watermark.max(state.watermark()?);
        let expected = [
            (SIDE_NAMES[LEFT], self.sides[LEFT].state_schema()),
            (SIDE_NAMES[RIGHT], self.sides[RIGHT].state_schema()),
        ];
        let parts = state.parts(&expected)?;
        for (side, batches) in self.sides.iter_mut().zip(&parts) {
            for batch in batches {
                side.restore(batch, &self.converter)?;
            }
        }
        Ok(())
    }

    /// Each side's buffered rows are that side's input rows: they are split
    /// by the side's own hash keys.
    fn restore_rescaled(&mut self, rescaled: Rescaled) -> Result<()> {
        let keys = [
            rescaled.keys_of_input(LEFT, "an interval join")?,
            rescaled.keys_of_input(RIGHT, "an interval join")?,
        ];
        let expected = [
            (SIDE_NAMES[LEFT], self.sides[LEFT].state_schema()),
            (SIDE_NAMES[RIGHT], self.sides[RIGHT].state_schema()),
        ];
        for (_, state) in &rescaled.states {
            self.watermark = self.watermark.max(state.watermark()?);
            let parts = state.parts(&expected)?;
            for ((side, batches), keys) in self.sides.iter_mut().zip(&parts).zip(keys) {
                for batch in batches {
                    side.restore(&rescaled.owned_rows(batch, keys)?, &self.converter)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_durations() {
        assert_eq!(offset_text("left.ts", -5_000), "left.ts - 5 s");
        assert_eq!(offset_text("left.ts", 900_000), "left.ts + 15 min");
        assert_eq!(offset_text("left.ts", 0), "left.ts");
        assert_eq!(offset_text("left.ts", 1_500), "left.ts + 1500 ms");
        assert_eq!(offset_text("left.ts", 7_200_000), "left.ts + 2 h");
        assert_eq!(offset_text("left.ts", -86_400_000), "left.ts - 1 d");
    }
}
