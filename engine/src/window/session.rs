//! Session window aggregation: `SESSION(TABLE t PARTITION BY k, DESCRIPTOR(ts),
//! gap)` grouped by `window_start, window_end, k...`, after Flink's
//! `UnsliceWindowAggProcessor` with its `MergingWindowProcessFunction`.
//!
//! # Semantics
//!
//! - Each row opens `[ts, ts + gap)`. Sessions of the same partition key that
//!   overlap **or touch** merge, so two rows exactly `gap` apart share a session.
//!   `window_start` is the first row's time, `window_end` the last row's time +
//!   gap, `window_time = window_end - 1`.
//! - A session fires once, when the watermark reaches `window_end - 1`
//!   ([`window_fired`]), and is then gone: like Flink, which retires a fired
//!   window from its merging set, a later row never merges into a fired session.
//! - A row is merged with the *open* sessions of its key it overlaps or touches.
//!   It is late (dropped, counted in `rows_late`) when the resulting session has
//!   already fired, i.e. when it touches no open session and its own window
//!   `[ts, ts + gap)` has fired. A row whose own window has fired but which
//!   touches an open session is absorbed (the session's start moves back); a
//!   row that touches only fired sessions but whose own window is open starts a
//!   new session. Rows less late than the `WATERMARK` bound are never dropped.
//! - With no partition keys, all rows share one sequence of sessions.
//!
//! Decisions are made with the last watermark received. They equal a
//! row-at-a-time engine's only if the upstream cuts batches before every row at
//! `ts <= watermark + 1` (not only `ts <= watermark`): a row exactly one
//! millisecond ahead of the watermark can touch a session that the watermark
//! in force before it has just fired.
//!
//! # State and memory
//!
//! Rows are aggregated as they arrive, with DataFusion `GroupsAccumulator`s, one
//! group per session. Because a group cannot be moved into another, merging two
//! sessions only concatenates their lists of *parts*: partial states, each one
//! row of a frozen *chunk* (the accumulators' `state()` arrays plus the key
//! columns). Rows of the current epoch go to the *young* accumulators; the
//! young epoch is frozen into a chunk when a session with a part in it fires,
//! or before compaction. When a session fires, its parts are gathered across
//! chunks (`interleave`), merged (`merge_batch`) into one group per fired
//! session and evaluated; all sessions firing at one watermark make one batch.
//!
//! Memory is proportional to open sessions, not rows: the keys and partial
//! states of open sessions, at most about twice as many state rows as open
//! sessions (beyond that, all parts are re-merged into one row per session),
//! dead rows of fired sessions until their chunk is dropped or compacted, and
//! the interned partition keys (rebuilt with only the keys that have open
//! sessions once more than half are idle). `COUNT(DISTINCT)` state still holds
//! every distinct value of an open session.

use std::cmp::Reverse;
use std::collections::hash_map::Entry as HashEntry;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, TimestampMillisecondArray, UInt32Array,
};
use datafusion::arrow::compute::{cast, concat, interleave, take};
use datafusion::arrow::datatypes::{
    DataType, Field, Int64Type, Schema, SchemaRef, TimestampMillisecondType,
};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::logical_expr::{EmitTo, GroupsAccumulator};
use datafusion::physical_plan::aggregates::group_values::{GroupValues, new_group_values};
use datafusion::physical_plan::aggregates::order::GroupOrdering;

use crate::aggregate::{AggregateInput, AggregateSpec, StateBatch};
use crate::checkpoint::{OperatorState, Rescaled, malformed_state, state_column};
use crate::error::{EngineError, Result};
use crate::metrics::{NodeMetrics, NodeRole};
use crate::operator::{Operator, OperatorFactory, Output};
use crate::time::{MAX_WATERMARK, MIN_WATERMARK, Timestamp, event_time_type};
use crate::window::output::{WindowOutput, WindowOutputColumn};
use crate::window::tumble::format_duration_ms;
use crate::window::window_fired;

/// The checkpoint column with each open session's start.
const SESSION_START: &str = "session_start";

/// The checkpoint column with each open session's end.
const SESSION_END: &str = "session_end";

/// Partial-state rows allowed beyond twice the number of open sessions before
/// they are re-merged into one row per session.
const COMPACT_MIN_ROWS: usize = 4096;

/// Interned partition keys allowed beyond twice the number of keys with open
/// sessions before the key table is rebuilt.
const KEY_GC_MIN_KEYS: usize = 4096;

/// A session window aggregate: `GROUP BY window_start, window_end, <keys>` of a
/// `SESSION` window TVF partitioned by those keys.
#[derive(Debug, Clone)]
pub struct SessionWindowAggregate {
    spec: Arc<AggregateSpec>,
    gap_ms: i64,
    time_column: usize,
    output: Arc<WindowOutput>,
}

impl SessionWindowAggregate {
    /// An aggregate whose `spec` groups by the partition keys only (empty for a
    /// global session), over sessions with inactivity gap `gap_ms` (> 0),
    /// reading event time (`TIMESTAMP(3)`) from input column `time_column`,
    /// emitting `output`'s layout. The spec's own `output_schema` is not used.
    pub fn new(
        spec: AggregateSpec,
        gap_ms: i64,
        time_column: usize,
        output: WindowOutput,
    ) -> Result<Self> {
        if gap_ms <= 0 {
            return Err(EngineError::Config(format!(
                "SESSION window gap must be positive, got {gap_ms} ms"
            )));
        }
        Ok(SessionWindowAggregate {
            spec: Arc::new(spec),
            gap_ms,
            time_column,
            output: Arc::new(output),
        })
    }

    /// The session gap in milliseconds.
    pub fn gap_ms(&self) -> i64 {
        self.gap_ms
    }

    /// Creates a running instance (what [`OperatorFactory::create`] boxes).
    pub fn instance(&self) -> Result<SessionWindowAggregateOperator> {
        let keyed = !self.spec.group_exprs.is_empty();
        let keys = if keyed {
            Some(new_group_values(
                self.spec.group_schema.clone(),
                &GroupOrdering::None,
            )?)
        } else {
            None
        };
        Ok(SessionWindowAggregateOperator {
            spec: Arc::clone(&self.spec),
            gap_ms: self.gap_ms,
            time_column: self.time_column,
            output: Arc::clone(&self.output),
            watermark: MIN_WATERMARK,
            keys,
            // Without keys, the one sequence of sessions is key 0.
            by_key: if keyed { Vec::new() } else { vec![Vec::new()] },
            live_keys: 0,
            table: SessionTable::default(),
            deadlines: BinaryHeap::new(),
            chunks: BTreeMap::new(),
            chunk_rows: 0,
            young: Young {
                id: 0,
                accumulators: self.spec.new_accumulators()?,
                groups: 0,
                keys: Vec::new(),
            },
            compact_min_rows: COMPACT_MIN_ROWS,
            key_gc_min_keys: KEY_GC_MIN_KEYS,
            key_ids: Vec::new(),
        })
    }
}

impl OperatorFactory for SessionWindowAggregate {
    fn name(&self) -> String {
        "SessionWindowAggregate".to_string()
    }

    fn explain(&self) -> Vec<String> {
        let keys = self.spec.key_names();
        let aggs = self.spec.aggregate_names();
        vec![
            format!("window: SESSION(gap {})", format_duration_ms(self.gap_ms)),
            format!("partition by: [{keys}]"),
            format!("aggregates: [{aggs}]"),
            "emit: once per session, when the watermark passes its end".to_string(),
        ]
    }

    fn role(&self) -> NodeRole {
        NodeRole::Aggregate
    }

    fn output_schema(&self) -> SchemaRef {
        self.output.schema()
    }

    fn create(&self) -> Result<Box<dyn Operator>> {
        Ok(Box::new(self.instance()?))
    }
}

/// Where one partial state of a session is: `(chunk id, row)`.
type Part = (u64, u32);

/// An open session of a key, as listed per key (sorted by start, hence by end:
/// open sessions of a key neither overlap nor touch).
#[derive(Debug, Clone, Copy)]
struct Entry {
    start: Timestamp,
    end: Timestamp,
    slot: u32,
}

/// An open session.
#[derive(Debug)]
struct Session {
    /// Creation order; orders output and tells a reused slot from its past.
    serial: u64,
    key: usize,
    start: Timestamp,
    end: Timestamp,
    /// The partial states to merge when the session fires.
    parts: Vec<Part>,
    /// The session's group in the young accumulators, when the part is young.
    young: Option<Part>,
}

/// Open sessions by slot, with free slots reused.
#[derive(Debug, Default)]
struct SessionTable {
    slots: Vec<Option<Session>>,
    free: Vec<u32>,
    open: usize,
    next_serial: u64,
}

impl SessionTable {
    fn insert(&mut self, key: usize, start: Timestamp, end: Timestamp) -> Result<(u32, u64)> {
        let serial = self.next_serial;
        self.next_serial += 1;
        let session = Session {
            serial,
            key,
            start,
            end,
            parts: Vec::new(),
            young: None,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                if let Some(place) = self.slots.get_mut(slot as usize) {
                    *place = Some(session);
                }
                slot
            }
            None => {
                let slot = u32::try_from(self.slots.len()).map_err(|_| {
                    EngineError::Config("session window: too many open sessions".into())
                })?;
                self.slots.push(Some(session));
                slot
            }
        };
        self.open += 1;
        Ok((slot, serial))
    }

    fn get(&self, slot: u32) -> Option<&Session> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    fn get_mut(&mut self, slot: u32) -> Result<&mut Session> {
        self.slots
            .get_mut(slot as usize)
            .and_then(Option::as_mut)
            .ok_or_else(|| internal("open session missing"))
    }

    fn remove(&mut self, slot: u32) -> Result<Session> {
        let session = self
            .slots
            .get_mut(slot as usize)
            .and_then(Option::take)
            .ok_or_else(|| internal("open session missing"))?;
        self.free.push(slot);
        self.open -= 1;
        Ok(session)
    }

    /// Open sessions, in slot order.
    fn iter(&self) -> impl Iterator<Item = &Session> {
        self.slots.iter().flatten()
    }
}

/// Frozen partial states: one row per (session, epoch).
struct Chunk {
    /// Partition key columns.
    keys: Vec<ArrayRef>,
    /// `GroupsAccumulator::state` arrays, per aggregate call.
    states: Vec<Vec<ArrayRef>>,
    rows: usize,
    /// Rows belonging to sessions that have fired.
    dead: usize,
}

impl Chunk {
    fn size(&self) -> usize {
        self.keys
            .iter()
            .chain(self.states.iter().flatten())
            .map(|a| a.get_array_memory_size())
            .sum()
    }
}

/// The accumulators rows update, until frozen into chunk `id`.
struct Young {
    id: u64,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    groups: usize,
    /// Key columns of the groups, in group order, in pieces.
    keys: Vec<Vec<ArrayRef>>,
}

/// The running instance of a [`SessionWindowAggregate`].
pub struct SessionWindowAggregateOperator {
    spec: Arc<AggregateSpec>,
    gap_ms: i64,
    time_column: usize,
    output: Arc<WindowOutput>,
    watermark: Timestamp,
    /// Interned partition keys; `None` without partition keys.
    keys: Option<Box<dyn GroupValues>>,
    /// Open sessions per key id, sorted by start.
    by_key: Vec<Vec<Entry>>,
    /// Keys with at least one open session.
    live_keys: usize,
    table: SessionTable,
    /// `(end, serial, slot)` of open sessions, earliest first. Entries are
    /// not updated when a session grows or is absorbed; stale ones are
    /// re-queued or skipped when they come up.
    deadlines: BinaryHeap<Reverse<(Timestamp, u64, u32)>>,
    chunks: BTreeMap<u64, Chunk>,
    /// Rows of all chunks, dead ones included.
    chunk_rows: usize,
    young: Young,
    compact_min_rows: usize,
    key_gc_min_keys: usize,
    /// Scratch: key id per input row.
    key_ids: Vec<usize>,
}

fn internal(what: &str) -> EngineError {
    EngineError::Config(format!("session window aggregate: internal error: {what}"))
}

/// Parts found in chunks: the chunks involved and, per part, `(position in
/// `chunks`, row)`, as Arrow's `interleave` takes them.
struct Located<'a> {
    chunks: Vec<&'a Chunk>,
    indices: Vec<(usize, usize)>,
}

/// What [`SessionWindowAggregateOperator::assign`] decided for a batch.
#[derive(Default)]
struct Assignment {
    /// Per row: kept (not late).
    keep: Vec<bool>,
    /// Young group of each kept row.
    groups: Vec<usize>,
    /// The row that created each new young group, in group order.
    new_group_rows: Vec<u32>,
}

impl SessionWindowAggregateOperator {
    /// Number of open sessions.
    pub fn num_sessions(&self) -> usize {
        self.table.open
    }

    /// Number of partial-state rows held (frozen rows, dead ones included, plus
    /// young groups).
    pub fn num_state_rows(&self) -> usize {
        self.chunk_rows + self.young.groups
    }

    /// Number of partition keys interned (with or without open sessions).
    pub fn num_keys(&self) -> usize {
        self.keys.as_ref().map_or(0, |k| k.len())
    }

    /// Bytes held by keys, partial states and accumulators (session
    /// bookkeeping excluded).
    pub fn state_size(&self) -> usize {
        self.keys.as_ref().map_or(0, |k| k.size())
            + self.chunks.values().map(Chunk::size).sum::<usize>()
            + self
                .young
                .accumulators
                .iter()
                .map(|a| a.size())
                .sum::<usize>()
    }

    /// Overrides the compaction thresholds (tests exercise them with few rows).
    #[cfg(test)]
    fn set_gc_thresholds(&mut self, rows: usize, keys: usize) {
        self.compact_min_rows = rows;
        self.key_gc_min_keys = keys;
    }

    /// The event time of every row.
    fn event_times(&self, batch: &RecordBatch) -> Result<ArrayRef> {
        let column = batch.columns().get(self.time_column).ok_or_else(|| {
            EngineError::Config(format!(
                "session window aggregate: no event-time column {} in a batch of {} columns",
                self.time_column,
                batch.num_columns()
            ))
        })?;
        let time = cast(column, &event_time_type())?;
        if time.null_count() > 0 {
            return Err(EngineError::Config(
                "session window aggregate: event time must not be NULL".into(),
            ));
        }
        Ok(time)
    }

    /// Fills `key_ids` with each row's key id.
    fn intern_keys(&mut self, input: &AggregateInput, key_ids: &mut Vec<usize>) -> Result<()> {
        match &mut self.keys {
            None => {
                key_ids.clear();
                key_ids.resize(input.num_rows(), 0);
            }
            Some(values) => {
                values.intern(&input.groups, key_ids)?;
                if values.len() > self.by_key.len() {
                    self.by_key.resize_with(values.len(), Vec::new);
                }
            }
        }
        Ok(())
    }

    /// Places every row, in order, in a session of its key (creating and
    /// merging sessions), or finds it late.
    fn assign(&mut self, times: &[Timestamp], key_ids: &[usize]) -> Result<Assignment> {
        let mut plan = Assignment {
            keep: Vec::with_capacity(times.len()),
            groups: Vec::with_capacity(times.len()),
            new_group_rows: Vec::new(),
        };
        let (gap, watermark, young_id) = (self.gap_ms, self.watermark, self.young.id);
        for (row, (&ts, &key)) in times.iter().zip(key_ids).enumerate() {
            let end = ts.saturating_add(gap);
            let entries = self
                .by_key
                .get_mut(key)
                .ok_or_else(|| internal("key id out of range"))?;
            // Sessions [s, e) touching [ts, end): s <= end && e >= ts.
            let first = entries.partition_point(|e| e.end < ts);
            let last = first + entries[first..].partition_point(|e| e.start <= end);
            let slot = if first == last {
                if window_fired(end, watermark) {
                    plan.keep.push(false);
                    continue;
                }
                let (slot, serial) = self.table.insert(key, ts, end)?;
                if entries.is_empty() {
                    self.live_keys += 1;
                }
                entries.insert(
                    first,
                    Entry {
                        start: ts,
                        end,
                        slot,
                    },
                );
                self.deadlines.push(Reverse((end, serial, slot)));
                slot
            } else {
                let survivor = entries[first];
                let start = survivor.start.min(ts);
                let end = entries[last - 1].end.max(end);
                for absorbed in entries.drain(first + 1..last) {
                    let absorbed = self.table.remove(absorbed.slot)?;
                    let session = self.table.get_mut(survivor.slot)?;
                    session.parts.extend(absorbed.parts);
                    if session.young.is_none_or(|(id, _)| id != young_id) {
                        session.young = absorbed.young;
                    }
                }
                entries[first] = Entry {
                    start,
                    end,
                    slot: survivor.slot,
                };
                let session = self.table.get_mut(survivor.slot)?;
                session.start = start;
                session.end = end;
                survivor.slot
            };
            let session = self.table.get_mut(slot)?;
            let group = match session.young {
                Some((id, group)) if id == young_id => group as usize,
                _ => {
                    let group = self.young.groups;
                    let part = (
                        young_id,
                        u32::try_from(group)
                            .map_err(|_| internal("too many groups in one epoch"))?,
                    );
                    session.parts.push(part);
                    session.young = Some(part);
                    self.young.groups += 1;
                    plan.new_group_rows.push(row as u32);
                    group
                }
            };
            plan.keep.push(true);
            plan.groups.push(group);
        }
        Ok(plan)
    }

    /// Freezes the young accumulators into a chunk.
    fn freeze(&mut self) -> Result<()> {
        if self.young.groups == 0 {
            return Ok(());
        }
        let states = self
            .young
            .accumulators
            .iter_mut()
            .map(|acc| acc.state(EmitTo::All))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        let keys = (0..self.spec.group_exprs.len())
            .map(|k| {
                let pieces = self
                    .young
                    .keys
                    .iter()
                    .filter_map(|piece| piece.get(k).map(|a| a.as_ref()))
                    .collect::<Vec<_>>();
                concat(&pieces)
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.add_chunk(self.young.id, keys, states, self.young.groups);
        self.young = Young {
            id: self.young.id + 1,
            accumulators: self.spec.new_accumulators()?,
            groups: 0,
            keys: Vec::new(),
        };
        Ok(())
    }

    /// Adds chunk `id` of `rows` partial states (none of them dead).
    fn add_chunk(&mut self, id: u64, keys: Vec<ArrayRef>, states: Vec<Vec<ArrayRef>>, rows: usize) {
        self.chunks.insert(
            id,
            Chunk {
                keys,
                states,
                rows,
                dead: 0,
            },
        );
        self.chunk_rows += rows;
    }

    /// The chunks holding `parts` and, per part, `(position in that list, row)`.
    fn locate(&self, parts: impl Iterator<Item = Part>) -> Result<Located<'_>> {
        let mut positions: HashMap<u64, usize> = HashMap::new();
        let mut used = Vec::new();
        let mut indices = Vec::new();
        for (chunk, row) in parts {
            let position = match positions.entry(chunk) {
                HashEntry::Occupied(e) => *e.get(),
                HashEntry::Vacant(e) => {
                    let found = self
                        .chunks
                        .get(&chunk)
                        .ok_or_else(|| internal("partial state missing"))?;
                    used.push(found);
                    *e.insert(used.len() - 1)
                }
            };
            indices.push((position, row as usize));
        }
        Ok(Located {
            chunks: used,
            indices,
        })
    }

    /// The partition key columns of `sessions`' first parts.
    fn gather_keys(&self, sessions: &[&[Part]]) -> Result<Vec<ArrayRef>> {
        let num_keys = self.spec.group_exprs.len();
        if num_keys == 0 || sessions.is_empty() {
            return Ok(Vec::new());
        }
        let firsts = sessions
            .iter()
            .map(|parts| {
                parts
                    .first()
                    .copied()
                    .ok_or_else(|| internal("empty session"))
            })
            .collect::<Result<Vec<_>>>()?;
        let Located {
            chunks: used,
            indices,
        } = self.locate(firsts.into_iter())?;
        (0..num_keys)
            .map(|k| {
                let arrays = used
                    .iter()
                    .map(|c| c.keys.get(k).map(|a| a.as_ref()))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| internal("key column missing"))?;
                Ok(interleave(&arrays, &indices)?)
            })
            .collect()
    }

    /// Fresh accumulators holding one group per session of `sessions`, in
    /// order: the merge of that session's parts.
    fn merge_parts(&self, sessions: &[&[Part]]) -> Result<Vec<Box<dyn GroupsAccumulator>>> {
        let mut accumulators = self.spec.new_accumulators()?;
        let groups = sessions
            .iter()
            .enumerate()
            .flat_map(|(g, parts)| std::iter::repeat_n(g, parts.len()))
            .collect::<Vec<_>>();
        if groups.is_empty() {
            return Ok(accumulators);
        }
        let Located {
            chunks: used,
            indices,
        } = self.locate(sessions.iter().flat_map(|p| p.iter().copied()))?;
        for (a, acc) in accumulators.iter_mut().enumerate() {
            let columns = used
                .first()
                .and_then(|c| c.states.get(a))
                .map_or(0, Vec::len);
            let values = (0..columns)
                .map(|s| {
                    let arrays = used
                        .iter()
                        .map(|c| c.states.get(a).and_then(|st| st.get(s)).map(|x| x.as_ref()))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| internal("state column missing"))?;
                    Ok(interleave(&arrays, &indices)?)
                })
                .collect::<Result<Vec<_>>>()?;
            acc.merge_batch(&values, &groups, sessions.len())?;
        }
        Ok(accumulators)
    }

    /// The partition keys of `sessions` and, per aggregate, the state columns
    /// of each session's merged parts: one row per session, in order.
    fn merged_states(&self, sessions: &[&[Part]]) -> Result<(Vec<ArrayRef>, Vec<Vec<ArrayRef>>)> {
        let keys = self.gather_keys(sessions)?;
        let states = self
            .merge_parts(sessions)?
            .iter_mut()
            .map(|acc| acc.state(EmitTo::All))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        Ok((keys, states))
    }

    /// Marks the parts of fired sessions dead and drops chunks with no live row.
    fn release(&mut self, parts: impl Iterator<Item = Part>) {
        for (id, _) in parts {
            if let Some(chunk) = self.chunks.get_mut(&id) {
                chunk.dead += 1;
                if chunk.dead >= chunk.rows {
                    self.chunk_rows -= chunk.rows;
                    self.chunks.remove(&id);
                }
            }
        }
    }

    /// Takes out every session that has fired at `watermark`, in order of end
    /// (then creation).
    fn take_fired(&mut self, watermark: Timestamp) -> Result<Vec<Session>> {
        let mut fired = Vec::new();
        while let Some(&Reverse((end, serial, slot))) = self.deadlines.peek() {
            if !window_fired(end, watermark) {
                break;
            }
            self.deadlines.pop();
            let current = match self.table.get(slot) {
                Some(s) if s.serial == serial => s.end,
                _ => continue, // absorbed by another session, or already fired
            };
            if current != end {
                // The session grew since this entry was queued.
                self.deadlines.push(Reverse((current, serial, slot)));
                continue;
            }
            let session = self.table.remove(slot)?;
            let entries = self
                .by_key
                .get_mut(session.key)
                .ok_or_else(|| internal("key id out of range"))?;
            // Sessions of a key fire in order of end: this one is the first.
            match entries.iter().position(|e| e.slot == slot) {
                Some(i) => {
                    entries.remove(i);
                }
                None => return Err(internal("fired session not listed under its key")),
            }
            if entries.is_empty() {
                self.live_keys -= 1;
            }
            fired.push(session);
        }
        Ok(fired)
    }

    /// Emits, in one batch, every session that has fired at `watermark`.
    fn fire(&mut self, watermark: Timestamp, out: &mut Output<'_>) -> Result<()> {
        let fired = self.take_fired(watermark)?;
        if fired.is_empty() {
            return Ok(());
        }
        let young_id = self.young.id;
        if fired
            .iter()
            .any(|s| s.parts.iter().any(|&(id, _)| id == young_id))
        {
            self.freeze()?;
        }
        let parts = fired.iter().map(|s| s.parts.as_slice()).collect::<Vec<_>>();
        let keys = self.gather_keys(&parts)?;
        let aggregates = self
            .merge_parts(&parts)?
            .iter_mut()
            .map(|acc| acc.evaluate(EmitTo::All))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        let batch = self.output_batch(&fired, &keys, &aggregates)?;
        self.release(fired.iter().flat_map(|s| s.parts.iter().copied()));
        out.batch(batch);
        Ok(())
    }

    /// Re-merges the parts of every open session into one row per session when
    /// partial states (dead ones included) exceed twice the open sessions.
    fn compact(&mut self) -> Result<()> {
        if self.num_state_rows() <= 2 * self.table.open + self.compact_min_rows {
            return Ok(());
        }
        self.freeze()?;
        let (keys, states) = {
            let parts = self
                .table
                .iter()
                .map(|s| s.parts.as_slice())
                .collect::<Vec<_>>();
            self.merged_states(&parts)?
        };
        // The young accumulators are empty: take their id for the new chunk.
        let id = self.young.id;
        self.young.id += 1;
        let rows = self.table.open;
        self.chunks.clear();
        self.chunk_rows = 0;
        if rows > 0 {
            self.add_chunk(id, keys, states, rows);
        }
        for (row, session) in self.table.slots.iter_mut().flatten().enumerate() {
            session.parts = vec![(id, row as u32)];
            session.young = None;
        }
        Ok(())
    }

    /// Rebuilds the key table with only the keys that have open sessions, when
    /// more than half of the interned keys are idle.
    fn collect_keys(&mut self) -> Result<()> {
        let Some(values) = &self.keys else {
            return Ok(());
        };
        if values.len() <= 2 * self.live_keys + self.key_gc_min_keys {
            return Ok(());
        }
        self.freeze()?;
        let live = (0..self.by_key.len())
            .filter(|&k| !self.by_key[k].is_empty())
            .collect::<Vec<_>>();
        let firsts = live
            .iter()
            .map(|&k| {
                let slot = self.by_key[k][0].slot;
                self.table
                    .get(slot)
                    .map(|s| &s.parts[..s.parts.len().min(1)])
                    .ok_or_else(|| internal("open session missing"))
            })
            .collect::<Result<Vec<_>>>()?;
        let key_columns = self.gather_keys(&firsts)?;
        let mut fresh = new_group_values(self.spec.group_schema.clone(), &GroupOrdering::None)?;
        let mut ids = Vec::new();
        if !live.is_empty() {
            fresh.intern(&key_columns, &mut ids)?;
        }
        let mut by_key = Vec::new();
        by_key.resize_with(fresh.len(), Vec::new);
        for (&old, &new) in live.iter().zip(&ids) {
            let entries = std::mem::take(&mut self.by_key[old]);
            for entry in &entries {
                self.table.get_mut(entry.slot)?.key = new;
            }
            let place = by_key
                .get_mut(new)
                .ok_or_else(|| internal("re-interned key out of range"))?;
            if !Vec::is_empty(place) {
                return Err(internal("two live keys re-interned as one"));
            }
            *place = entries;
        }
        self.by_key = by_key;
        self.keys = Some(fresh);
        Ok(())
    }

    /// The output batch of fired sessions.
    fn output_batch(
        &self,
        fired: &[Session],
        keys: &[ArrayRef],
        aggregates: &[ArrayRef],
    ) -> Result<RecordBatch> {
        let rows = fired.len();
        let times = |f: fn(&Session) -> Timestamp| -> ArrayRef {
            Arc::new(TimestampMillisecondArray::from_iter_values(
                fired.iter().map(f),
            ))
        };
        let missing = || internal("output column missing");
        let schema = self.output.schema();
        let columns = self
            .output
            .columns()
            .iter()
            .zip(schema.fields())
            .map(|(column, field)| {
                let array = match *column {
                    WindowOutputColumn::WindowStart => times(|s| s.start),
                    WindowOutputColumn::WindowEnd => times(|s| s.end),
                    WindowOutputColumn::WindowTime => times(|s| s.end.saturating_sub(1)),
                    WindowOutputColumn::Key(i) => keys.get(i).cloned().ok_or_else(missing)?,
                    WindowOutputColumn::Aggregate(i) => {
                        aggregates.get(i).cloned().ok_or_else(missing)?
                    }
                };
                if array.data_type() == field.data_type() {
                    Ok(array)
                } else {
                    Ok(cast(&array, field.data_type())?)
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            schema, columns, &options,
        )?)
    }

    /// Opens the sessions of a checkpoint batch (see
    /// [`Operator::snapshot`] below): their bounds, keys and merged states
    /// become one new chunk, one row per session.
    fn restore_sessions(&mut self, batch: &RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        let starts = state_column::<Int64Type>(batch, SESSION_START)?;
        let ends = state_column::<Int64Type>(batch, SESSION_END)?;
        if starts.null_count() + ends.null_count() > 0 {
            return Err(malformed_state("a session without its bounds"));
        }
        let state = StateBatch::from_columns(
            batch.schema().fields().get(2..).unwrap_or_default(),
            batch.columns().get(2..).unwrap_or_default(),
            rows,
        )?;
        state.check(&self.spec)?;
        let mut key_ids = Vec::new();
        match &mut self.keys {
            None => key_ids.resize(rows, 0),
            Some(values) => {
                values.intern(state.keys(), &mut key_ids)?;
                if values.len() > self.by_key.len() {
                    self.by_key.resize_with(values.len(), Vec::new);
                }
            }
        }
        // A chunk of its own: the young accumulators are empty before input.
        self.freeze()?;
        let id = self.young.id;
        self.young.id += 1;
        for (row, (&key, (&start, &end))) in key_ids
            .iter()
            .zip(starts.values().iter().zip(ends.values()))
            .enumerate()
        {
            if start >= end {
                return Err(malformed_state(&format!(
                    "session [{start}, {end}) ends before it starts"
                )));
            }
            let entries = self
                .by_key
                .get(key)
                .ok_or_else(|| internal("key id out of range"))?;
            let at = entries.partition_point(|e| e.end < start);
            if entries.get(at).is_some_and(|e| e.start <= end) {
                return Err(malformed_state(&format!(
                    "session [{start}, {end}) overlaps another of its key"
                )));
            }
            let (slot, serial) = self.table.insert(key, start, end)?;
            let row = u32::try_from(row).map_err(|_| internal("too many sessions"))?;
            self.table.get_mut(slot)?.parts = vec![(id, row)];
            let entries = self
                .by_key
                .get_mut(key)
                .ok_or_else(|| internal("key id out of range"))?;
            if entries.is_empty() {
                self.live_keys += 1;
            }
            entries.insert(at, Entry { start, end, slot });
            self.deadlines.push(Reverse((end, serial, slot)));
        }
        if rows > 0 {
            let (keys, states) = state.into_parts();
            self.add_chunk(id, keys, states, rows);
        }
        Ok(())
    }

    fn advance(&mut self, watermark: Timestamp, out: &mut Output<'_>) -> Result<()> {
        self.watermark = self.watermark.max(watermark);
        self.fire(watermark, out)?;
        self.compact()?;
        self.collect_keys()
    }
}

impl Operator for SessionWindowAggregateOperator {
    fn output_schema(&self) -> SchemaRef {
        self.output.schema()
    }

    fn on_batch(&mut self, batch: RecordBatch, out: &mut Output<'_>) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let times = self.event_times(&batch)?;
        let times = times.as_primitive::<TimestampMillisecondType>();
        let input = self.spec.evaluate(&batch)?;

        let mut key_ids = std::mem::take(&mut self.key_ids);
        let assigned = self
            .intern_keys(&input, &mut key_ids)
            .and_then(|()| self.assign(times.values(), &key_ids));
        self.key_ids = key_ids;
        let mut plan = assigned?;

        let kept = plan.groups.len();
        let keep = (kept < rows).then(|| BooleanArray::from(std::mem::take(&mut plan.keep)));
        if let Some(keep) = &keep {
            out.drop_late(
                &batch,
                keep,
                "the row's session already fired",
                self.watermark,
            )?;
        }
        NodeMetrics::add(&out.metrics().rows_aggregated, kept);
        if kept == 0 {
            return Ok(());
        }
        if !plan.new_group_rows.is_empty() && !input.groups.is_empty() {
            let indices = UInt32Array::from(plan.new_group_rows);
            let piece = input
                .groups
                .iter()
                .map(|column| take(column.as_ref(), &indices, None))
                .collect::<Result<Vec<_>, _>>()?;
            self.young.keys.push(piece);
        }
        let input = match &keep {
            Some(keep) => input.filter(keep)?,
            None => input,
        };
        let total = self.young.groups;
        for ((acc, args), filter) in self
            .young
            .accumulators
            .iter_mut()
            .zip(&input.args)
            .zip(&input.filters)
        {
            acc.update_batch(args, &plan.groups, filter.as_ref(), total)?;
        }
        Ok(())
    }

    fn on_watermark(&mut self, watermark: Timestamp, out: &mut Output<'_>) -> Result<()> {
        if watermark > self.watermark {
            out.metrics()
                .record_state(self.state_size(), self.num_keys());
            self.advance(watermark, out)?;
        }
        out.watermark(watermark);
        Ok(())
    }

    fn on_end(&mut self, out: &mut Output<'_>) -> Result<()> {
        self.advance(MAX_WATERMARK, out)
    }

    /// One row per open session, in creation order: `session_start`,
    /// `session_end`, the partition keys and the merge of its partial states
    /// (see [`StateBatch::columns`]), and the watermark. The young epoch is
    /// frozen first, as firing a session would; the sessions are unchanged.
    fn snapshot(&mut self) -> Result<Option<OperatorState>> {
        self.freeze()?;
        let mut sessions: Vec<&Session> = self.table.iter().collect();
        sessions.sort_unstable_by_key(|s| s.serial);
        let parts: Vec<&[Part]> = sessions.iter().map(|s| s.parts.as_slice()).collect();
        let (keys, states) = self.merged_states(&parts)?;
        let rows = sessions.len();
        let (state_fields, state_columns) = StateBatch::new(keys, states, rows).columns();
        let mut fields = vec![
            Field::new(SESSION_START, DataType::Int64, false),
            Field::new(SESSION_END, DataType::Int64, false),
        ];
        fields.extend(state_fields);
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(
                sessions.iter().map(|s| s.start),
            )),
            Arc::new(Int64Array::from_iter_values(sessions.iter().map(|s| s.end))),
        ];
        columns.extend(state_columns);
        let schema = Arc::new(Schema::new(fields));
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        let batches = if rows == 0 {
            Vec::new()
        } else {
            vec![RecordBatch::try_new_with_options(
                schema.clone(),
                columns,
                &options,
            )?]
        };
        OperatorState { schema, batches }
            .with_watermark(self.watermark)
            .map(Some)
    }

    fn restore(&mut self, state: OperatorState) -> Result<()> {
        self.watermark = self.watermark.max(state.watermark()?);
        for batch in state.batches.iter().filter(|b| b.num_rows() > 0) {
            self.restore_sessions(batch)?;
        }
        Ok(())
    }

    fn restore_rescaled(&mut self, rescaled: Rescaled) -> Result<()> {
        let keys = self
            .spec
            .state_key_names(rescaled.keys_of_input(0, "a session window aggregate")?)?;
        self.restore(rescaled.owned_state(&keys)?)
    }
}

#[cfg(test)]
mod tests {
    //! Tests against a row-at-a-time oracle: per key, a list of open sessions
    //! with their rows, merged by the touch rule and fired as the per-row
    //! watermark passes their end.

    use std::collections::{BTreeMap, BTreeSet};

    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::Int64Type;

    use super::*;
    use crate::message::Message;
    use crate::window::output::WindowOutputColumn as C;
    use crate::window::test_support::{Rng, input_schema, spec};

    const KEYS: [Option<&str>; 6] = [Some("a"), Some("b"), Some("c"), Some("dd"), Some("e"), None];

    #[derive(Debug, Clone, Copy)]
    struct Row {
        ts: i64,
        key: Option<&'static str>,
        v: Option<i64>,
    }

    fn row(ts: i64, key: &'static str, v: i64) -> Row {
        Row {
            ts,
            key: Some(key),
            v: Some(v),
        }
    }

    /// `(start, end, time, key, COUNT(v), SUM(v), MAX(v), COUNT(DISTINCT v),
    /// COUNT(v) FILTER (WHERE v > 50))`.
    type ResultRow = (
        i64,
        i64,
        i64,
        Option<String>,
        i64,
        Option<i64>,
        Option<i64>,
        i64,
        i64,
    );

    fn factory(keyed: bool, gap: i64) -> SessionWindowAggregate {
        let spec = spec(keyed);
        // Shuffled, to check the planner can put columns anywhere.
        let mut columns = vec![
            C::Aggregate(3),
            C::WindowEnd,
            C::Aggregate(0),
            C::WindowStart,
            C::Aggregate(1),
            C::Aggregate(2),
            C::WindowTime,
            C::Aggregate(4),
        ];
        if keyed {
            columns.insert(2, C::Key(0));
        }
        let output = WindowOutput::derived(columns, &spec).unwrap();
        SessionWindowAggregate::new(spec, gap, 0, output).unwrap()
    }

    fn batch(rows: &[Row]) -> RecordBatch {
        RecordBatch::try_new(
            input_schema(),
            vec![
                Arc::new(TimestampMillisecondArray::from_iter_values(
                    rows.iter().map(|r| r.ts),
                )),
                Arc::new(StringArray::from_iter(rows.iter().map(|r| r.key))),
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.v))),
            ],
        )
        .unwrap()
    }

    fn results(messages: &[Message]) -> Vec<ResultRow> {
        let mut out = Vec::new();
        for message in messages {
            let Message::Batch(b) = message else { continue };
            let column = |name: &str| b.column_by_name(name).unwrap();
            let ts = |name: &str| {
                column(name)
                    .as_primitive::<TimestampMillisecondType>()
                    .clone()
            };
            let int = |name: &str| column(name).as_primitive::<Int64Type>().clone();
            let (start, end, time) = (ts("window_start"), ts("window_end"), ts("window_time"));
            let (cnt, total, biggest) = (int("cnt"), int("total"), int("biggest"));
            let (distinct, big) = (int("distinct_v"), int("big"));
            let keys = b.column_by_name("k").map(|k| k.as_string::<i32>().clone());
            for r in 0..b.num_rows() {
                let opt = |a: &Int64Array| (!a.is_null(r)).then(|| a.value(r));
                out.push((
                    start.value(r),
                    end.value(r),
                    time.value(r),
                    keys.as_ref()
                        .and_then(|k| (!k.is_null(r)).then(|| k.value(r).to_string())),
                    cnt.value(r),
                    opt(&total),
                    opt(&biggest),
                    distinct.value(r),
                    big.value(r),
                ));
            }
        }
        out
    }

    /// One step of a run.
    #[derive(Debug, Clone)]
    enum Step {
        Batch(Vec<Row>),
        Watermark(i64),
    }

    struct Run {
        results: Vec<ResultRow>,
        counts: crate::metrics::NodeCounts,
    }

    /// Feeds `steps` then the end of input; checks that every session is
    /// emitted at the first watermark reaching `window_end - 1`, and that all
    /// state is gone at the end.
    fn run(op: &mut SessionWindowAggregateOperator, steps: &[Step]) -> Run {
        run_restoring(op, steps, None)
    }

    /// [`run`]; with `restore` = `(step, factory)`, before that step the
    /// operator's snapshot is restored (through Arrow IPC) into a fresh
    /// instance of `factory` that goes on, while the instance that took the
    /// snapshot must keep emitting the same messages.
    fn run_restoring(
        op: &mut SessionWindowAggregateOperator,
        steps: &[Step],
        restore: Option<(usize, &SessionWindowAggregate)>,
    ) -> Run {
        let metrics = NodeMetrics::default();
        let mut all = Vec::new();
        let mut previous = MIN_WATERMARK;
        let mut original: Option<SessionWindowAggregateOperator> = None;
        let feed = |op: &mut SessionWindowAggregateOperator, step: &Step, metrics: &NodeMetrics| {
            let mut messages = Vec::new();
            let mut out = Output::new(&mut messages, metrics);
            match step {
                Step::Batch(rows) => op.on_batch(batch(rows), &mut out).unwrap(),
                Step::Watermark(wm) => op.on_watermark(*wm, &mut out).unwrap(),
            }
            messages
        };
        for (i, step) in steps.iter().enumerate() {
            if let Some((at, factory)) = restore
                && at == i
            {
                let state = op.snapshot().unwrap().unwrap();
                let mut fresh = factory.instance().unwrap();
                fresh
                    .restore(crate::checkpoint::ipc::round_trip(&state))
                    .unwrap();
                assert_eq!(fresh.num_sessions(), op.num_sessions());
                original = Some(std::mem::replace(op, fresh));
            }
            let messages = feed(op, step, &metrics);
            if let Some(original) = original.as_mut() {
                let theirs = feed(original, step, &NodeMetrics::default());
                assert_eq!(
                    format!("{messages:?}"),
                    format!("{theirs:?}"),
                    "step {i}: the restored instance differs"
                );
            }
            match step {
                Step::Batch(_) => assert!(messages.is_empty(), "a batch emits nothing"),
                Step::Watermark(wm) => {
                    assert!(matches!(messages.last(), Some(Message::Watermark(w)) if w == wm));
                    for r in results(&messages) {
                        assert!(r.2 <= *wm && r.2 > previous, "{r:?} fired at {wm}");
                        all.push(r);
                    }
                    previous = previous.max(*wm);
                }
            }
        }
        let mut messages = Vec::new();
        op.on_end(&mut Output::new(&mut messages, &metrics))
            .unwrap();
        for r in results(&messages) {
            assert!(r.2 > previous, "{r:?} fired at the end, after {previous}");
            all.push(r);
        }
        assert_eq!(op.num_sessions(), 0, "all sessions fired at the end");
        assert_eq!(op.num_state_rows(), 0, "all partial states released");
        all.sort();
        let counts = metrics.snapshot();
        assert_eq!(counts.rows_out, all.len() as u64);
        Run {
            results: all,
            counts,
        }
    }

    fn run_once(keyed: bool, gap: i64, steps: &[Step]) -> Run {
        run(&mut factory(keyed, gap).instance().unwrap(), steps)
    }

    /// `(start, end, key, count)` of the results, for hand-written cases.
    fn sessions(run: &Run) -> Vec<(i64, i64, Option<&str>, i64)> {
        run.results
            .iter()
            .map(|r| (r.0, r.1, r.3.as_deref(), r.4))
            .collect()
    }

    #[derive(Default)]
    struct OracleSession {
        start: i64,
        end: i64,
        rows: Vec<Row>,
    }

    fn summarize(s: &OracleSession, key: Option<&str>) -> ResultRow {
        let values: Vec<i64> = s.rows.iter().filter_map(|r| r.v).collect();
        (
            s.start,
            s.end,
            s.end - 1,
            key.map(str::to_string),
            values.len() as i64,
            (!values.is_empty()).then(|| values.iter().sum()),
            values.iter().copied().max(),
            values.iter().collect::<BTreeSet<_>>().len() as i64,
            values.iter().filter(|&&v| v > 50).count() as i64,
        )
    }

    struct Expected {
        results: Vec<ResultRow>,
        late: u64,
    }

    /// Row-at-a-time Flink semantics: before each row the watermark is
    /// `max(ts of earlier rows) - bound`; sessions whose end - 1 it reaches fire
    /// and are forgotten; the row merges with the open sessions of its key it
    /// overlaps or touches, and is late when there are none and its own window
    /// has fired.
    fn oracle(rows: &[Row], keyed: bool, gap: i64, bound: i64) -> Expected {
        let mut open: BTreeMap<Option<&str>, Vec<OracleSession>> = BTreeMap::new();
        let mut results = Vec::new();
        let (mut wm, mut max_ts, mut late) = (MIN_WATERMARK, None::<i64>, 0);
        for row in rows {
            if let Some(m) = max_ts {
                wm = wm.max(m - bound);
            }
            for (key, list) in open.iter_mut() {
                for s in list.extract_if(.., |s| s.end - 1 <= wm) {
                    results.push(summarize(&s, *key));
                }
            }
            let key = if keyed { row.key } else { None };
            let list = open.entry(key).or_default();
            let (lo, hi) = (row.ts, row.ts + gap);
            let touching: Vec<OracleSession> = list
                .extract_if(.., |s| s.start <= hi && s.end >= lo)
                .collect();
            if touching.is_empty() && hi - 1 <= wm {
                late += 1;
            } else {
                let mut merged = OracleSession {
                    start: lo,
                    end: hi,
                    rows: vec![*row],
                };
                for s in touching {
                    merged.start = merged.start.min(s.start);
                    merged.end = merged.end.max(s.end);
                    merged.rows.extend(s.rows);
                }
                list.push(merged);
            }
            max_ts = Some(max_ts.map_or(row.ts, |m| m.max(row.ts)));
        }
        for (key, list) in open {
            for s in list {
                results.push(summarize(&s, key));
            }
        }
        results.sort();
        Expected { results, late }
    }

    /// Batches cut as a watermark assigner with the given bound would cut
    /// them, before every row at `ts <= watermark + 1`, plus random cuts
    /// (`cut_percent`); the watermark in force is sent at every cut.
    fn schedule(rows: &[Row], bound: i64, cut_percent: i64, rng: &mut Rng) -> Vec<Step> {
        let mut steps = Vec::new();
        let (mut wm, mut emitted, mut max_ts) = (MIN_WATERMARK, MIN_WATERMARK, None::<i64>);
        let mut current = Vec::new();
        for row in rows {
            if let Some(m) = max_ts {
                wm = wm.max(m - bound);
            }
            let must = row.ts <= wm.saturating_add(1) && wm > emitted;
            if must || rng.below(100) < cut_percent {
                if !current.is_empty() {
                    steps.push(Step::Batch(std::mem::take(&mut current)));
                }
                if wm > emitted {
                    steps.push(Step::Watermark(wm));
                    emitted = wm;
                }
            }
            current.push(*row);
            max_ts = Some(max_ts.map_or(row.ts, |m| m.max(row.ts)));
        }
        if !current.is_empty() {
            steps.push(Step::Batch(current));
        }
        if let Some(m) = max_ts
            && m - bound > emitted
        {
            steps.push(Step::Watermark(m - bound));
        }
        steps
    }

    /// Mostly in-order rows on a 5 ms grid (so rows exactly a gap apart are
    /// common), some out of order within the bound, some far behind.
    fn random_rows(rng: &mut Rng, bound: i64, keys: usize) -> Vec<Row> {
        let n = 100 + rng.below(300) as usize;
        let mut base = -1_000 - rng.below(100);
        (0..n)
            .map(|_| {
                base += rng.below(4) * 5;
                let lag = match rng.below(100) {
                    0..80 => 0,
                    80..92 => rng.below(bound as u64 + 1),
                    _ => rng.below(60),
                };
                Row {
                    ts: base - lag,
                    key: KEYS[rng.below(keys as u64) as usize],
                    v: (rng.below(10) > 0).then(|| rng.below(100)),
                }
            })
            .collect()
    }

    fn check_against_oracle(keyed: bool, seeds: u64, gc: bool) {
        let (mut late, mut merged_results) = (0, 0);
        for seed in 0..seeds {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let bound = [0, 1, 5, 12, 40][rng.below(5) as usize];
            let gap = [10, 1, 7, 25][rng.below(4) as usize];
            let keys = 1 + rng.below(KEYS.len() as u64) as usize;
            let rows = random_rows(&mut rng, bound, keys);
            let expected = oracle(&rows, keyed, gap, bound);
            for cut_percent in [100, 30, 0] {
                let steps = schedule(&rows, bound, cut_percent, &mut rng);
                let mut op = factory(keyed, gap).instance().unwrap();
                if gc {
                    op.set_gc_thresholds(0, 0);
                }
                let actual = run(&mut op, &steps);
                let context = format!("keyed={keyed} seed={seed} gap={gap} bound={bound}");
                assert_eq!(
                    actual.results, expected.results,
                    "{context} cuts={cut_percent}"
                );
                assert_eq!(actual.counts.rows_late, expected.late, "{context}");
                assert_eq!(
                    actual.counts.rows_late + actual.counts.rows_aggregated,
                    rows.len() as u64
                );
            }
            late += expected.late;
            merged_results += expected.results.iter().filter(|r| r.4 > 1).count();
        }
        assert!(late > 0, "the input exercises late rows");
        assert!(merged_results > 0, "the input exercises merging");
    }

    #[test]
    fn a_restored_snapshot_gives_the_uninterrupted_sessions() {
        for seed in 0..40u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
            let bound = [0, 1, 5, 12, 40][rng.below(5) as usize];
            let gap = [10, 1, 7, 25][rng.below(4) as usize];
            let keys = 1 + rng.below(KEYS.len() as u64) as usize;
            let keyed = seed % 3 != 0;
            let rows = random_rows(&mut rng, bound, keys);
            let expected = oracle(&rows, keyed, gap, bound);
            let steps = schedule(&rows, bound, 30, &mut rng);
            for at in [1, steps.len() / 3, steps.len() / 2] {
                let factory = factory(keyed, gap);
                let mut op = factory.instance().unwrap();
                if seed % 2 == 0 {
                    op.set_gc_thresholds(0, 0);
                }
                let actual = run_restoring(&mut op, &steps, Some((at, &factory)));
                let context = format!("keyed={keyed} seed={seed} restored at {at}");
                assert_eq!(actual.results, expected.results, "{context}");
                assert_eq!(actual.counts.rows_late, expected.late, "{context}");
            }
        }
    }

    #[test]
    fn malformed_session_state_is_an_error() {
        let factory = super::tests::factory(true, 10);
        let mut op = factory.instance().unwrap();
        let metrics = NodeMetrics::default();
        let mut messages = Vec::new();
        let row = |ts, key| Row {
            ts,
            key: Some(key),
            v: Some(1),
        };
        op.on_batch(
            batch(&[row(100, "a"), row(200, "a"), row(105, "b")]),
            &mut Output::new(&mut messages, &metrics),
        )
        .unwrap();
        let state = op.snapshot().unwrap().unwrap();
        assert_eq!(state.num_rows(), 3);
        let batch0 = &state.batches[0];
        let with_bounds = |starts: Vec<i64>, ends: Vec<i64>| {
            let mut columns = batch0.columns().to_vec();
            columns[0] = Arc::new(Int64Array::from(starts));
            columns[1] = Arc::new(Int64Array::from(ends));
            OperatorState {
                schema: state.schema.clone(),
                batches: vec![RecordBatch::try_new(state.schema.clone(), columns).unwrap()],
            }
        };
        let restore = |state: OperatorState| {
            factory
                .instance()
                .unwrap()
                .restore(state)
                .unwrap_err()
                .to_string()
        };
        // Two sessions of key a that overlap.
        let err = restore(with_bounds(vec![100, 140, 105], vec![150, 210, 115]));
        assert!(err.contains("overlaps another of its key"), "{err}");
        // A session that ends before it starts.
        let err = restore(with_bounds(vec![100, 200, 105], vec![90, 210, 115]));
        assert!(err.contains("ends before it starts"), "{err}");
        // The state of an aggregate without partition keys.
        let err = super::tests::factory(false, 10)
            .instance()
            .unwrap()
            .restore(state)
            .unwrap_err()
            .to_string();
        assert!(err.contains("key columns"), "{err}");
    }

    #[test]
    fn keyed_sessions_match_the_oracle() {
        check_against_oracle(true, 60, false);
    }

    #[test]
    fn keyless_sessions_match_the_oracle() {
        check_against_oracle(false, 30, false);
    }

    #[test]
    fn compaction_and_key_collection_keep_results() {
        check_against_oracle(true, 30, true);
        check_against_oracle(false, 10, true);
    }

    #[test]
    fn state_stays_proportional_to_open_sessions() {
        // One session that never closes, plus a new key every row whose
        // session fires soon after: partial states are re-merged and idle keys
        // forgotten, so state follows open sessions, not rows or keys seen.
        let mut op = factory(true, 10).instance().unwrap();
        op.set_gc_thresholds(0, 0);
        let metrics = NodeMetrics::default();
        let mut emitted = Vec::new();
        for i in 0..300i64 {
            let key: &'static str = Box::leak(format!("k{i}").into_boxed_str());
            let rows = [row(i * 5, "a", i), row(i * 5, key, 1)];
            op.on_batch(batch(&rows), &mut Output::new(&mut emitted, &metrics))
                .unwrap();
            op.on_watermark(i * 5 - 1, &mut Output::new(&mut emitted, &metrics))
                .unwrap();
            assert!(op.num_state_rows() <= 2 * op.num_sessions(), "i={i}");
            assert!(op.num_keys() <= 2 * op.num_sessions(), "i={i}");
        }
        let peak = metrics
            .peak_state_bytes
            .load(std::sync::atomic::Ordering::Relaxed);
        assert!(peak > 0, "the session state's size is recorded");
        op.on_end(&mut Output::new(&mut emitted, &metrics)).unwrap();
        let results = results(&emitted);
        assert_eq!(results.len(), 301);
        assert!(results.contains(&(
            0,
            1505,
            1504,
            Some("a".into()),
            300,
            Some(44_850),
            Some(299),
            300,
            249
        )));
        assert_eq!(op.num_keys(), 0);
    }

    #[test]
    fn rows_exactly_a_gap_apart_share_a_session() {
        let rows = vec![
            row(0, "a", 1),
            row(10, "a", 2),
            row(21, "a", 3),
            row(5, "b", 4),
        ];
        let run = run_once(true, 10, &[Step::Batch(rows)]);
        assert_eq!(
            sessions(&run),
            [
                (0, 20, Some("a"), 2),
                (5, 15, Some("b"), 1),
                (21, 31, Some("a"), 1)
            ]
        );
        assert_eq!(run.counts.rows_aggregated, 4);
    }

    #[test]
    fn a_row_between_two_sessions_bridges_them() {
        let mut op = factory(true, 10).instance().unwrap();
        let metrics = NodeMetrics::default();
        let mut messages = Vec::new();
        op.on_batch(
            batch(&[row(0, "a", 1), row(20, "a", 70)]),
            &mut Output::new(&mut messages, &metrics),
        )
        .unwrap();
        assert_eq!(op.num_sessions(), 2);
        let steps = [
            Step::Watermark(5),
            Step::Batch(vec![row(10, "a", 70)]),
            Step::Watermark(28),
        ];
        let run = run(&mut op, &steps);
        assert_eq!(
            run.results,
            [(0, 30, 29, Some("a".into()), 3, Some(141), Some(70), 2, 2)]
        );
    }

    #[test]
    fn late_rows_are_dropped_unless_they_touch_an_open_session() {
        let steps = [
            Step::Batch(vec![row(95, "a", 1)]),
            Step::Watermark(100),
            // [50, 60) has fired and touches nothing open: late. [90, 100) has
            // fired too, but touches the open [95, 105): absorbed.
            Step::Batch(vec![row(50, "a", 2), row(90, "a", 3), row(80, "b", 4)]),
        ];
        let run = run_once(true, 10, &steps);
        assert_eq!(sessions(&run), [(90, 105, Some("a"), 2)]);
        assert_eq!(run.counts.rows_late, 2);
        assert_eq!(run.counts.rows_aggregated, 2);
    }

    #[test]
    fn a_fired_session_is_gone() {
        // As in Flink, a fired session is retired: a row touching it whose own
        // window is still open starts a new session (here overlapping it).
        let steps = [
            Step::Batch(vec![row(0, "a", 1), row(9, "b", 1)]),
            Step::Watermark(9),
            Step::Batch(vec![row(10, "a", 1), row(5, "a", 1)]),
        ];
        let run = run_once(true, 10, &steps);
        assert_eq!(
            sessions(&run),
            [
                (0, 10, Some("a"), 1),
                (5, 20, Some("a"), 2),
                (9, 19, Some("b"), 1)
            ]
        );
        assert_eq!(run.counts.rows_late, 0);
    }

    #[test]
    fn keyless_sessions_span_all_keys() {
        let rows = vec![
            row(0, "a", 1),
            row(8, "b", 1),
            row(18, "c", 60),
            row(40, "a", 1),
        ];
        let run = run_once(false, 10, &[Step::Batch(rows)]);
        assert_eq!(
            run.results,
            [
                (0, 28, 27, None, 3, Some(62), Some(60), 2, 1),
                (40, 50, 49, None, 1, Some(1), Some(1), 1, 0)
            ]
        );
    }

    #[test]
    fn end_of_input_fires_every_open_session() {
        let steps = [
            Step::Batch(vec![row(1_000, "a", 1), row(i64::MAX - 5, "b", 2)]),
            Step::Watermark(0),
        ];
        let run = run_once(true, 60_000, &steps);
        assert_eq!(
            sessions(&run),
            [
                (1_000, 61_000, Some("a"), 1),
                (i64::MAX - 5, i64::MAX, Some("b"), 1)
            ]
        );
    }

    #[test]
    fn explains_and_validates() {
        let f = factory(true, 300_000);
        assert_eq!(f.name(), "SessionWindowAggregate");
        assert_eq!(f.role(), NodeRole::Aggregate);
        assert_eq!(
            f.explain(),
            [
                "window: SESSION(gap 5 min)",
                "partition by: [k]",
                "aggregates: [cnt, total, biggest, distinct_v, big]",
                "emit: once per session, when the watermark passes its end",
            ]
        );
        let output = WindowOutput::derived(vec![C::WindowStart], &spec(false)).unwrap();
        assert!(SessionWindowAggregate::new(spec(false), 0, 0, output).is_err());
    }
}
