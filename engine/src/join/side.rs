//! One side of an interval join: its buffered rows, their key index, and their
//! release once event time has passed them.
//!
//! Rows are buffered as the input delivered them: append-only Arrow batches
//! ("slots"), each with its rows' order by event time and a cursor over that
//! order marking how many have expired. A row expires when the watermark reaches
//! `ts + expiry_offset`; since the offset is the same for every row of a side, a
//! batch's rows expire in time order, and one min-heap entry per batch (its next
//! expiry) finds the expiring rows without a per-row timer.
//!
//! Memory stays proportional to the live rows:
//! - a batch whose rows have all expired is freed at once;
//! - small batches are merged (every [`TAIL_MERGE_SLOTS`] of them) into one;
//! - when as many rows have expired as are still alive, the live rows are
//!   rewritten into a single batch and the key index is rebuilt from it, which
//!   drops expired entries. Each rebuild costs at most twice the rows that expired
//!   since the previous one.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use datafusion::arrow::array::BooleanBufferBuilder;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, RecordBatch, RecordBatchOptions, UInt32Array,
};
use datafusion::arrow::buffer::{NullBuffer, ScalarBuffer};
use datafusion::arrow::compute::{interleave, take_record_batch};
use datafusion::arrow::datatypes::{
    DataType, Field, FieldRef, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMillisecondType,
};
use datafusion::arrow::row::{RowConverter, Rows};
use datafusion::common::hash_utils::{RandomState, create_hashes};
use datafusion::error::DataFusionError;

use super::key_index::{KeyIndex, to_u32};
use crate::checkpoint::malformed_state;
use crate::error::{EngineError, Result};

/// Batches smaller than this are merged with their neighbours.
pub(super) const SMALL_BATCH_ROWS: usize = 1024;

/// How many small batches accumulate before they are merged into one.
pub(super) const TAIL_MERGE_SLOTS: usize = 32;

/// The index is rebuilt only once at least this many rows have expired.
pub(super) const REBUILD_MIN_ROWS: usize = 4096;

/// The column of a side's checkpoint rows that says whether the row matched.
pub(super) const MATCHED_COLUMN: &str = "__matched";

/// Marks an unused position in [`SideState::scratch`].
const UNUSED: usize = usize::MAX;

/// The event times of a time column: milliseconds as `TIMESTAMP(3)` or `BIGINT`.
pub(super) fn time_values(array: &ArrayRef) -> Result<ScalarBuffer<i64>> {
    let values = match array.data_type() {
        DataType::Timestamp(TimeUnit::Millisecond, _) => array
            .as_primitive_opt::<TimestampMillisecondType>()
            .map(|a| a.values().clone()),
        DataType::Int64 => array
            .as_primitive_opt::<Int64Type>()
            .map(|a| a.values().clone()),
        _ => None,
    };
    values.ok_or_else(|| {
        EngineError::Config(format!(
            "interval join time column must be TIMESTAMP(3) or BIGINT milliseconds, not {}",
            array.data_type()
        ))
    })
}

/// The event times of a time column shifted by `offset_ms` (see
/// [`super::JoinInput::time_offset_ms`]); without a shift, the column's own buffer.
pub(super) fn event_times(array: &ArrayRef, offset_ms: i64) -> Result<ScalarBuffer<i64>> {
    let values = time_values(array)?;
    if offset_ms == 0 {
        return Ok(values);
    }
    Ok(values.iter().map(|t| t.saturating_add(offset_ms)).collect())
}

/// True when `t` is an accepted interval-join time column type.
pub(super) fn is_time_type(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Timestamp(TimeUnit::Millisecond, _) | DataType::Int64
    )
}

/// The hashes of the equi-join keys of `batch` (`key_cols`), one per row;
/// both sides of a join hash alike, so equal keys have equal hashes.
pub(super) fn key_hashes(batch: &RecordBatch, key_cols: &[usize]) -> Result<Vec<u64>> {
    let keys: Vec<&ArrayRef> = key_cols.iter().map(|&c| batch.column(c)).collect();
    let mut hashes = vec![0; batch.num_rows()];
    create_hashes(keys, &RandomState::default(), &mut hashes)?;
    Ok(hashes)
}

/// Which rows of `batch` have a non-NULL key and time (`None`: all of them);
/// only those can ever match.
pub(super) fn key_validity(
    batch: &RecordBatch,
    key_cols: &[usize],
    time_col: Option<usize>,
) -> Option<NullBuffer> {
    let nulls: Vec<Option<NullBuffer>> = key_cols
        .iter()
        .chain(time_col.as_ref())
        .map(|&c| batch.column(c).logical_nulls())
        .collect();
    NullBuffer::union_many(nulls.iter().map(Option::as_ref))
}

/// The schema of a join side's rows in a checkpoint: the input's columns
/// (`schema`), then [`MATCHED_COLUMN`].
pub(super) fn state_schema(schema: &Schema) -> SchemaRef {
    let mut fields: Vec<FieldRef> = schema.fields().iter().cloned().collect();
    fields.push(Arc::new(Field::new(
        MATCHED_COLUMN,
        DataType::Boolean,
        false,
    )));
    Arc::new(Schema::new(fields))
}

/// The equi-join keys of one batch: hashes, row-format bytes, and which rows have
/// a non-NULL key (and time, when there is one): the only rows that can ever match.
pub(super) struct BatchKeys {
    hashes: Vec<u64>,
    /// `None` when the join has no equi-join key: every row has the empty key.
    rows: Option<Rows>,
    valid: Option<NullBuffer>,
}

impl BatchKeys {
    /// Computes the keys of `batch` on the given key columns; a row whose time
    /// (`time_col`, when given) is NULL is invalid too.
    pub fn new(
        batch: &RecordBatch,
        key_cols: &[usize],
        time_col: Option<usize>,
        converter: &RowConverter,
    ) -> Result<Self> {
        let hashes = key_hashes(batch, key_cols)?;
        Self::with_hashes(batch, key_cols, time_col, hashes, converter)
    }

    /// [`BatchKeys::new`] for keys whose [`key_hashes`] are already known.
    pub fn with_hashes(
        batch: &RecordBatch,
        key_cols: &[usize],
        time_col: Option<usize>,
        hashes: Vec<u64>,
        converter: &RowConverter,
    ) -> Result<Self> {
        let rows = if key_cols.is_empty() {
            None
        } else {
            let keys: Vec<ArrayRef> = key_cols.iter().map(|&c| batch.column(c).clone()).collect();
            Some(converter.convert_columns(&keys)?)
        };
        Ok(BatchKeys {
            hashes,
            rows,
            valid: key_validity(batch, key_cols, time_col),
        })
    }

    /// True when row `i` has a non-NULL key and time.
    pub fn is_valid(&self, i: usize) -> bool {
        self.valid.as_ref().is_none_or(|v| v.is_valid(i))
    }

    /// The hash of row `i`'s key.
    pub fn hash(&self, i: usize) -> u64 {
        self.hashes[i]
    }

    /// The row-format bytes of row `i`'s key.
    pub fn bytes(&self, i: usize) -> &[u8] {
        match &self.rows {
            Some(rows) => rows.row(i).data(),
            None => &[],
        }
    }
}

/// One buffered batch.
struct Stored {
    batch: RecordBatch,
    ts: ScalarBuffer<i64>,
    /// Row numbers in ascending event time.
    order: Vec<u32>,
    /// `order[..cursor]` have expired.
    cursor: usize,
    /// Per row: did it match (kept for outer sides only, else empty).
    matched: BooleanBufferBuilder,
}

impl Stored {
    fn live_rows(&self) -> &[u32] {
        self.order.get(self.cursor..).unwrap_or(&[])
    }

    /// Bytes held: the batch, its times, its order and its match flags.
    fn size(&self) -> usize {
        self.batch.get_array_memory_size()
            + self.ts.inner().len()
            + self.order.capacity() * std::mem::size_of::<u32>()
            + self.matched.capacity() / 8
    }
}

/// The buffered rows of one side of an interval join.
pub(super) struct SideState {
    schema: SchemaRef,
    key_cols: Vec<usize>,
    time_col: usize,
    /// Added to the time column to give event time.
    time_offset: i64,
    /// A row expires when the watermark reaches `ts + expiry_offset`.
    expiry_offset: i64,
    /// Keep per-row match flags and report unmatched rows when they expire.
    outer: bool,
    slots: Vec<Option<Stored>>,
    /// `(next expiry, slot)`, one entry per live slot.
    heap: BinaryHeap<Reverse<(i64, u32)>>,
    index: KeyIndex,
    /// Rows buffered and not yet expired.
    alive: usize,
    /// Bytes held by the stored batches (see [`Stored::size`]).
    stored_bytes: usize,
    /// Rows expired since the index was last rebuilt (their entries are dead).
    expired_since_rebuild: usize,
    /// Small slots not yet merged.
    tail: Vec<u32>,
    /// Index entries from this position on may point into `tail`.
    tail_entries_start: usize,
    /// Per slot, a position while gathering or merging; [`UNUSED`] otherwise.
    scratch: Vec<usize>,
    /// See [`REBUILD_MIN_ROWS`]; lowered by tests.
    pub(super) rebuild_min_rows: usize,
}

impl SideState {
    /// An empty side; event time is `time_col + time_offset`.
    pub fn new(
        schema: SchemaRef,
        key_cols: Vec<usize>,
        (time_col, time_offset): (usize, i64),
        expiry_offset: i64,
        outer: bool,
    ) -> Self {
        SideState {
            schema,
            key_cols,
            time_col,
            time_offset,
            expiry_offset,
            outer,
            slots: Vec::new(),
            heap: BinaryHeap::new(),
            index: KeyIndex::default(),
            alive: 0,
            stored_bytes: 0,
            expired_since_rebuild: 0,
            tail: Vec::new(),
            tail_entries_start: 0,
            scratch: Vec::new(),
            rebuild_min_rows: REBUILD_MIN_ROWS,
        }
    }

    /// The column holding event time.
    pub fn time_col(&self) -> usize {
        self.time_col
    }

    /// The event times of a batch of this side.
    pub fn event_times(&self, batch: &RecordBatch) -> Result<ScalarBuffer<i64>> {
        event_times(batch.column(self.time_col), self.time_offset)
    }

    /// True when unmatched rows of this side are emitted (outer side).
    pub fn is_outer(&self) -> bool {
        self.outer
    }

    /// The watermark at which a row with time `ts` expires.
    pub fn expiry(&self, ts: i64) -> i64 {
        ts.saturating_add(self.expiry_offset)
    }

    /// Rows buffered and not expired.
    pub fn rows(&self) -> usize {
        self.alive
    }

    /// Bytes held by the buffered batches and the key index (an estimate
    /// for state metrics; expired rows count until their batch is released).
    pub fn state_size(&self) -> usize {
        self.stored_bytes + self.index.memory_size()
    }

    /// Bytes of the stored batches alone (the index keeps its allocations).
    #[cfg(test)]
    pub fn stored_bytes(&self) -> usize {
        self.stored_bytes
    }

    /// [`SideState::state_size`] counted again from the stored batches (the
    /// running count must equal it).
    #[cfg(test)]
    pub fn recounted_state_size(&self) -> usize {
        self.slots.iter().flatten().map(Stored::size).sum::<usize>() + self.index.memory_size()
    }

    /// The keys of a batch of this side.
    pub fn keys(&self, batch: &RecordBatch, converter: &RowConverter) -> Result<BatchKeys> {
        BatchKeys::new(batch, &self.key_cols, Some(self.time_col), converter)
    }

    /// Calls `f(slot, row)` for each buffered row whose key is row `i` of `keys`
    /// and whose time lies in `[lo, hi]`.
    pub fn probe(&self, keys: &BatchKeys, i: usize, lo: i64, hi: i64, mut f: impl FnMut(u32, u32)) {
        if let Some(key) = self.index.find(keys.hash(i), keys.bytes(i)) {
            for e in self.index.chain(key) {
                if e.ts >= lo && e.ts <= hi {
                    f(e.slot, e.row);
                }
            }
        }
    }

    /// Records that a buffered row matched.
    pub fn mark_matched(&mut self, slot: u32, row: u32) {
        if let Some(Some(stored)) = self.slots.get_mut(slot as usize)
            && (row as usize) < stored.matched.len()
        {
            stored.matched.set_bit(row as usize, true);
        }
    }

    /// Buffers `rows` of `batch` (whose keys are `keys`); `matched[i]` says whether
    /// row `i` already matched (read for outer sides only).
    pub fn insert(
        &mut self,
        batch: &RecordBatch,
        rows: &[u32],
        keys: &BatchKeys,
        matched: &[bool],
        converter: &RowConverter,
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let all = rows.len() == batch.num_rows();
        let stored = if all {
            batch.clone()
        } else {
            take_record_batch(batch, &UInt32Array::from(rows.to_vec()))?
        };
        let ts = self.event_times(&stored)?;
        let mut order: Vec<u32> = (0..to_u32(rows.len(), "rows")?).collect();
        if !ts.is_sorted() {
            order.sort_unstable_by_key(|&r| ts[r as usize]);
        }
        let mut flags = BooleanBufferBuilder::new(if self.outer { rows.len() } else { 0 });
        if self.outer {
            for &i in rows {
                flags.append(matched.get(i as usize).copied().unwrap_or(false));
            }
        }
        let slot = to_u32(self.slots.len(), "batches")?;
        for (row, &i) in rows.iter().enumerate() {
            let i = i as usize;
            self.index
                .insert(keys.hash(i), keys.bytes(i), ts[row], slot, row as u32)?;
        }
        if let Some(&first) = order.first() {
            self.heap
                .push(Reverse((self.expiry(ts[first as usize]), slot)));
        }
        self.alive += rows.len();
        self.store(Stored {
            batch: stored,
            ts,
            order,
            cursor: 0,
            matched: flags,
        });
        if rows.len() < SMALL_BATCH_ROWS {
            self.tail.push(slot);
            if self.tail.len() >= TAIL_MERGE_SLOTS {
                self.merge_tail()?;
            }
        }
        self.maybe_rebuild(converter)
    }

    /// Gathers the buffered rows `refs` (`(slot, row)`) as columns of this side.
    pub fn gather(&mut self, refs: &[(u32, u32)]) -> Result<Vec<ArrayRef>> {
        let SideState {
            slots,
            scratch,
            schema,
            ..
        } = self;
        if scratch.len() < slots.len() {
            scratch.resize(slots.len(), UNUSED);
        }
        let mut batches: Vec<&RecordBatch> = Vec::new();
        let mut used: Vec<usize> = Vec::new();
        let mut indices = Vec::with_capacity(refs.len());
        let mut missing = None;
        for &(slot, row) in refs {
            let s = slot as usize;
            let pos = match (
                scratch.get(s).copied(),
                slots.get(s).and_then(Option::as_ref),
            ) {
                (Some(pos), Some(_)) if pos != UNUSED => pos,
                (Some(_), Some(stored)) => {
                    let pos = batches.len();
                    batches.push(&stored.batch);
                    scratch[s] = pos;
                    used.push(s);
                    pos
                }
                _ => {
                    missing = Some(slot);
                    break;
                }
            };
            indices.push((pos, row as usize));
        }
        for s in used {
            scratch[s] = UNUSED;
        }
        if let Some(slot) = missing {
            return Err(EngineError::DataFusion(DataFusionError::Internal(format!(
                "interval join: a probe reached released batch {slot}"
            ))));
        }
        (0..schema.fields().len())
            .map(|c| {
                let arrays: Vec<&dyn Array> =
                    batches.iter().map(|b| b.column(c).as_ref()).collect();
                Ok(interleave(&arrays, &indices)?)
            })
            .collect()
    }

    /// Releases the rows that expire at `watermark` and returns the unmatched
    /// ones of an outer side as columns (`None` when there are none).
    pub fn expire(
        &mut self,
        watermark: i64,
        converter: &RowConverter,
    ) -> Result<Option<Vec<ArrayRef>>> {
        let mut unmatched: Vec<(u32, u32)> = Vec::new();
        let mut dead: Vec<u32> = Vec::new();
        let mut expired = 0;
        while let Some(&Reverse((next, slot))) = self.heap.peek() {
            if next > watermark {
                break;
            }
            self.heap.pop();
            let offset = self.expiry_offset;
            let Some(Some(stored)) = self.slots.get_mut(slot as usize) else {
                continue;
            };
            let start = stored.cursor;
            while let Some(&row) = stored.order.get(stored.cursor) {
                if stored.ts[row as usize].saturating_add(offset) > watermark {
                    break;
                }
                if self.outer && !stored.matched.get_bit(row as usize) {
                    unmatched.push((slot, row));
                }
                stored.cursor += 1;
            }
            expired += stored.cursor - start;
            match stored.order.get(stored.cursor) {
                Some(&row) => {
                    let next = stored.ts[row as usize].saturating_add(offset);
                    self.heap.push(Reverse((next, slot)));
                }
                None => dead.push(slot),
            }
        }
        let columns = if unmatched.is_empty() {
            None
        } else {
            Some(self.gather(&unmatched)?)
        };
        for slot in dead {
            self.release_slot(slot);
        }
        self.alive -= expired.min(self.alive);
        self.expired_since_rebuild += expired;
        self.maybe_rebuild(converter)?;
        Ok(columns)
    }

    /// The schema of this side's rows in a checkpoint: the input's columns,
    /// then [`MATCHED_COLUMN`].
    pub fn state_schema(&self) -> SchemaRef {
        state_schema(&self.schema)
    }

    /// The buffered rows that have not expired, in event-time order, each with
    /// whether it matched (always false on an inner side), as a batch of
    /// [`SideState::state_schema`]; `None` when there are none. The side is
    /// unchanged.
    pub fn snapshot(&mut self) -> Result<Option<RecordBatch>> {
        let rows = self.live_rows_of(0..to_u32(self.slots.len(), "batches")?);
        if rows.is_empty() {
            return Ok(None);
        }
        let mut matched = self.matched_of(&rows);
        matched.resize(rows.len(), false);
        let mut columns = self.merged_batch(&rows)?.columns().to_vec();
        columns.push(Arc::new(BooleanArray::from(matched)));
        Ok(Some(RecordBatch::try_new(self.state_schema(), columns)?))
    }

    /// Buffers again the rows of a [`SideState::snapshot`] (a batch of
    /// [`SideState::state_schema`]) with their match flags.
    pub fn restore(&mut self, rows: &RecordBatch, converter: &RowConverter) -> Result<()> {
        let width = self.schema.fields().len();
        let matched = rows
            .columns()
            .get(width)
            .and_then(|c| c.as_boolean_opt())
            .filter(|c| c.null_count() == 0)
            .ok_or_else(|| malformed_state("join rows without their match flags"))?;
        let matched: Vec<bool> = matched.iter().map(|m| m == Some(true)).collect();
        let options = RecordBatchOptions::new().with_row_count(Some(rows.num_rows()));
        let batch = RecordBatch::try_new_with_options(
            self.schema.clone(),
            rows.columns()[..width].to_vec(),
            &options,
        )?;
        let keys = self.keys(&batch, converter)?;
        if let Some(bad) = (0..batch.num_rows()).find(|&i| !keys.is_valid(i)) {
            return Err(malformed_state(&format!(
                "buffered join row {bad} has a NULL key or time"
            )));
        }
        let all: Vec<u32> = (0..to_u32(batch.num_rows(), "rows")?).collect();
        self.insert(&batch, &all, &keys, &matched, converter)
    }

    /// Drops everything.
    fn clear(&mut self) {
        self.slots.clear();
        self.heap.clear();
        self.index.clear();
        self.alive = 0;
        self.stored_bytes = 0;
        self.expired_since_rebuild = 0;
        self.tail.clear();
        self.tail_entries_start = 0;
        self.scratch.clear();
    }

    /// Appends `stored` as a new slot.
    fn store(&mut self, stored: Stored) {
        self.stored_bytes += stored.size();
        self.slots.push(Some(stored));
    }

    /// Frees slot `slot` (no-op when already free).
    fn release_slot(&mut self, slot: u32) {
        if let Some(stored) = self.slots.get_mut(slot as usize).and_then(Option::take) {
            self.stored_bytes = self.stored_bytes.saturating_sub(stored.size());
        }
    }

    /// The live rows of `slots` as `(ts, slot, row)`, in time order.
    fn live_rows_of(&self, slots: impl Iterator<Item = u32>) -> Vec<(i64, u32, u32)> {
        let mut rows = Vec::new();
        for slot in slots {
            if let Some(Some(stored)) = self.slots.get(slot as usize) {
                rows.extend(
                    stored
                        .live_rows()
                        .iter()
                        .map(|&r| (stored.ts[r as usize], slot, r)),
                );
            }
        }
        rows.sort_unstable();
        rows
    }

    /// The match flags of `rows`.
    fn matched_of(&self, rows: &[(i64, u32, u32)]) -> Vec<bool> {
        if !self.outer {
            return Vec::new();
        }
        rows.iter()
            .map(|&(_, slot, row)| match self.slots.get(slot as usize) {
                Some(Some(stored)) if (row as usize) < stored.matched.len() => {
                    stored.matched.get_bit(row as usize)
                }
                _ => false,
            })
            .collect()
    }

    /// Copies the rows `rows` (from [`Self::live_rows_of`]) into one new batch.
    fn merged_batch(&mut self, rows: &[(i64, u32, u32)]) -> Result<RecordBatch> {
        let refs: Vec<(u32, u32)> = rows.iter().map(|&(_, s, r)| (s, r)).collect();
        let columns = self.gather(&refs)?;
        let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &options,
        )?)
    }

    /// Merges the small batches of the tail into one, moving their index entries.
    fn merge_tail(&mut self) -> Result<()> {
        let tail = std::mem::take(&mut self.tail);
        let entries_start = self.tail_entries_start;
        let rows = self.live_rows_of(tail.iter().copied());
        if !rows.is_empty() {
            let matched = self.matched_of(&rows);
            let batch = self.merged_batch(&rows)?;
            let slot = to_u32(self.slots.len(), "batches")?;
            // Where each tail row went: flat[base(slot) + row] = new row.
            let mut flat: Vec<u32> = Vec::new();
            if self.scratch.len() < self.slots.len() {
                self.scratch.resize(self.slots.len(), UNUSED);
            }
            for &s in &tail {
                if let Some(Some(stored)) = self.slots.get(s as usize) {
                    self.scratch[s as usize] = flat.len();
                    flat.resize(flat.len() + stored.batch.num_rows(), u32::MAX);
                }
            }
            for (new_row, &(_, s, r)) in rows.iter().enumerate() {
                flat[self.scratch[s as usize] + r as usize] = new_row as u32;
            }
            for e in self.index.entries_from_mut(entries_start) {
                let base = self.scratch.get(e.slot as usize).copied().unwrap_or(UNUSED);
                if base != UNUSED
                    && let Some(&new_row) = flat.get(base + e.row as usize)
                    && new_row != u32::MAX
                {
                    e.slot = slot;
                    e.row = new_row;
                }
            }
            for &s in &tail {
                if let Some(p) = self.scratch.get_mut(s as usize) {
                    *p = UNUSED;
                }
            }
            let ts = self.event_times(&batch)?;
            self.heap.push(Reverse((self.expiry(rows[0].0), slot)));
            let mut flags = BooleanBufferBuilder::new(matched.len());
            for m in matched {
                flags.append(m);
            }
            self.store(Stored {
                batch,
                ts,
                order: (0..to_u32(rows.len(), "rows")?).collect(),
                cursor: 0,
                matched: flags,
            });
        }
        for s in tail {
            self.release_slot(s);
        }
        self.tail_entries_start = self.index.len();
        Ok(())
    }

    /// Rewrites the live rows into one batch with a fresh index when as many
    /// rows have expired as are alive; frees everything when none are alive.
    fn maybe_rebuild(&mut self, converter: &RowConverter) -> Result<()> {
        if self.alive == 0 {
            if !self.slots.is_empty() {
                self.clear();
            }
            return Ok(());
        }
        if self.expired_since_rebuild < self.alive.max(self.rebuild_min_rows) {
            return Ok(());
        }
        let rows = self.live_rows_of(0..to_u32(self.slots.len(), "batches")?);
        let matched = self.matched_of(&rows);
        let batch = self.merged_batch(&rows)?;
        self.clear();
        let keys = self.keys(&batch, converter)?;
        let all: Vec<u32> = (0..to_u32(batch.num_rows(), "rows")?).collect();
        self.insert(&batch, &all, &keys, &matched, converter)
    }
}
