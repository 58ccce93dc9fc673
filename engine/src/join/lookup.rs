//! A stream joined with a bounded table read completely first:
//!
//! ```sql
//! SELECT p.payment_id, p.amount, l.max_amount
//! FROM payments p JOIN card_limits l ON p.card_id = l.card_id
//! WHERE p.amount > l.max_amount
//! ```
//!
//! `card_limits` is a bounded source without a time attribute (a CSV file). The
//! join's answer is the batch join's answer, delivered as the stream flows:
//!
//! - The table input is buffered until it ends (the runtime calls
//!   `on_input_end`); then one hash index over its key columns (Arrow row format,
//!   the [`KeyIndex`] interval joins use) is built. Table rows with a NULL key
//!   are kept out of it: NULL never equals anything.
//! - Stream rows that arrive before the table has ended wait; they are probed
//!   once it has, and every later stream row is probed as it arrives. Each
//!   stream row is therefore joined with the whole table exactly once, and the
//!   output is append-only.
//! - A candidate pair must also satisfy the residual predicate (the rest of the
//!   `ON` condition). With a LEFT join (the stream being the preserved side) a
//!   stream row none of whose candidates pass is emitted once, padded with NULLs.
//!   Keeping unmatched *table* rows is not possible: whether a table row matches
//!   is known only when the stream ends.
//! - Watermarks: the table has no time attribute, so its input holds the
//!   combined watermark at its minimum until it ends. The operator also holds any
//!   watermark back itself until the table is loaded and the waiting stream rows
//!   are out, so that those rows are never behind a watermark already sent.
//!   Afterwards the stream's watermarks pass through.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, RecordBatchOptions,
    UInt32Array, new_null_array,
};
use datafusion::arrow::compute::{concat_batches, filter_record_batch, take_arrays};
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::physical_expr::PhysicalExpr;

use super::interval::{OUTPUT_BATCH_ROWS, output_schema};
use super::key_index::{KeyIndex, to_u32};
use super::side::BatchKeys;
use super::{JoinKind, KeyedInput};
use crate::checkpoint::{OperatorState, Rescaled, StatePart, malformed_state, state_column};
use crate::error::{EngineError, Result};
use crate::metrics::NodeRole;
use crate::operator::{Operator, OperatorFactory, Output};
use crate::time::{MIN_WATERMARK, Timestamp};

/// Which input of a [`BoundedTableJoin`] is the bounded table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableSide {
    /// The left input (input 0) is the table, the right input the stream.
    Left,
    /// The right input (input 1) is the table, the left input the stream.
    Right,
}

impl TableSide {
    /// The input number of the table.
    pub fn table_input(self) -> usize {
        match self {
            TableSide::Left => 0,
            TableSide::Right => 1,
        }
    }

    /// The input number of the stream.
    pub fn stream_input(self) -> usize {
        1 - self.table_input()
    }

    fn name(self) -> &'static str {
        match self {
            TableSide::Left => "left",
            TableSide::Right => "right",
        }
    }
}

/// The description of a stream-to-bounded-table join, and the factory of its
/// instances.
#[derive(Debug, Clone)]
pub struct BoundedTableJoin {
    left: KeyedInput,
    right: KeyedInput,
    table: TableSide,
    kind: JoinKind,
    residual: Option<Arc<dyn PhysicalExpr>>,
    output_schema: SchemaRef,
    key_fields: Vec<SortField>,
}

impl BoundedTableJoin {
    /// A join of the stream with the table (`table` says which input is which)
    /// on equal keys (`left.keys[i] = right.keys[i]`). `residual`, when given, is
    /// a boolean predicate over the output schema (left columns then right
    /// columns) that a pair must also satisfy.
    ///
    /// Fails when the join would have to emit unmatched table rows (FULL, or an
    /// outer join preserving the table's side), the key lists differ in length or
    /// type, a key column does not exist, or the residual is not boolean.
    pub fn new(
        left: KeyedInput,
        right: KeyedInput,
        table: TableSide,
        kind: JoinKind,
        residual: Option<Arc<dyn PhysicalExpr>>,
    ) -> Result<Self> {
        let config = |msg: String| EngineError::Config(format!("bounded table join: {msg}"));
        let keeps_table_rows = match table {
            TableSide::Left => kind.keeps_unmatched_left(),
            TableSide::Right => kind.keeps_unmatched_right(),
        };
        if keeps_table_rows {
            return Err(config(format!(
                "a {kind} join keeps unmatched rows of the {} input, the table; that is \
                 known only when the stream ends",
                table.name()
            )));
        }
        if left.keys.len() != right.keys.len() {
            return Err(config(format!(
                "{} left keys but {} right keys",
                left.keys.len(),
                right.keys.len()
            )));
        }
        let field = |input: &KeyedInput, side: &str, i: usize| {
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
        Ok(BoundedTableJoin {
            left,
            right,
            table,
            kind,
            residual,
            output_schema,
            key_fields,
        })
    }

    /// A fresh instance with nothing loaded (what [`OperatorFactory::create`] boxes).
    pub fn operator(&self) -> Result<BoundedTableJoinOperator> {
        Ok(BoundedTableJoinOperator {
            converter: RowConverter::new(self.key_fields.clone())?,
            join: Arc::new(self.clone()),
            loading: Vec::new(),
            table: None,
            waiting: Vec::new(),
            held_watermark: None,
        })
    }

    /// The join type.
    pub fn kind(&self) -> JoinKind {
        self.kind
    }

    /// Which input is the table.
    pub fn table_side(&self) -> TableSide {
        self.table
    }

    fn table_input(&self) -> &KeyedInput {
        match self.table {
            TableSide::Left => &self.left,
            TableSide::Right => &self.right,
        }
    }

    fn stream_input(&self) -> &KeyedInput {
        match self.table {
            TableSide::Left => &self.right,
            TableSide::Right => &self.left,
        }
    }

    /// Output columns from the stream's and the table's columns.
    fn assemble(
        &self,
        stream: Vec<ArrayRef>,
        table: Vec<ArrayRef>,
        rows: usize,
    ) -> Result<RecordBatch> {
        let (mut columns, rest) = match self.table {
            TableSide::Right => (stream, table),
            TableSide::Left => (table, stream),
        };
        columns.extend(rest);
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            self.output_schema.clone(),
            columns,
            &options,
        )?)
    }
}

fn column_name(input: &KeyedInput, side: &str, i: usize) -> String {
    match input.schema.fields().get(i) {
        Some(f) => format!("{side}.{}", f.name()),
        None => format!("{side}.#{i}"),
    }
}

impl OperatorFactory for BoundedTableJoin {
    fn name(&self) -> String {
        "BoundedTableJoin".to_string()
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
                        column_name(&self.left, "left", l),
                        column_name(&self.right, "right", r)
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut lines = vec![
            format!("type: {}", self.kind),
            format!(
                "table: the {} input, read to its end before stream rows are joined",
                self.table.name()
            ),
            format!("keys: {keys}"),
        ];
        if let Some(residual) = &self.residual {
            lines.push(format!("residual: {residual}"));
        }
        let mut state = "state: every table row, for the whole job; stream rows (and \
                         watermarks) arriving before the table has ended wait for it"
            .to_string();
        if self.kind != JoinKind::Inner {
            state.push_str("; stream rows without a match are emitted with NULLs at once");
        }
        lines.push(state);
        lines
    }

    fn output_schema(&self) -> SchemaRef {
        self.output_schema.clone()
    }

    fn create(&self) -> Result<Box<dyn Operator>> {
        Ok(Box::new(self.operator()?))
    }
}

/// The loaded table: all its rows in one batch and the index of their keys.
struct Table {
    batch: RecordBatch,
    index: KeyIndex,
}

/// A running stream-to-bounded-table join.
pub struct BoundedTableJoinOperator {
    join: Arc<BoundedTableJoin>,
    converter: RowConverter,
    /// Table batches received so far, until the table ends.
    loading: Vec<RecordBatch>,
    /// The table, once it has ended.
    table: Option<Table>,
    /// Stream batches that arrived before the table ended.
    waiting: Vec<RecordBatch>,
    /// The latest watermark received before the table ended.
    held_watermark: Option<Timestamp>,
}

impl BoundedTableJoinOperator {
    /// True once the table has ended and been indexed.
    pub fn table_loaded(&self) -> bool {
        self.table.is_some()
    }

    /// Rows held: table rows (loading or loaded) and waiting stream rows.
    pub fn state_rows(&self) -> usize {
        let loading: usize = self.loading.iter().map(RecordBatch::num_rows).sum();
        let waiting: usize = self.waiting.iter().map(RecordBatch::num_rows).sum();
        let table = self.table.as_ref().map_or(0, |t| t.batch.num_rows());
        loading + waiting + table
    }

    fn state_bytes(&self) -> usize {
        let batches =
            |b: &[RecordBatch]| -> usize { b.iter().map(RecordBatch::get_array_memory_size).sum() };
        let table = self.table.as_ref().map_or(0, |t| {
            t.batch.get_array_memory_size() + t.index.memory_size()
        });
        batches(&self.loading) + batches(&self.waiting) + table
    }

    fn record_state(&self, out: &Output<'_>) {
        out.metrics()
            .record_state(self.state_bytes(), self.state_rows());
    }

    /// Indexes the table, joins the waiting stream rows, releases the held
    /// watermark. (After a restore of a loaded table, the table's end arrives
    /// again and changes nothing.)
    fn load_table(&mut self, out: &mut Output<'_>) -> Result<()> {
        if self.table.is_some() {
            return Ok(());
        }
        let rows = std::mem::take(&mut self.loading);
        let table = self.index_table(rows)?;
        for waiting in std::mem::take(&mut self.waiting) {
            self.probe(&table, &waiting, out)?;
        }
        self.table = Some(table);
        self.record_state(out);
        if let Some(wm) = self.held_watermark.take() {
            out.watermark(wm);
        }
        Ok(())
    }

    /// One batch of every table row, with the index of their keys.
    fn index_table(&self, rows: Vec<RecordBatch>) -> Result<Table> {
        let input = self.join.table_input();
        let batch = concat_batches(&input.schema, &rows)?;
        let keys = BatchKeys::new(&batch, &input.keys, None, &self.converter)?;
        let mut index = KeyIndex::default();
        for row in 0..batch.num_rows() {
            if keys.is_valid(row) {
                index.insert(
                    keys.hash(row),
                    keys.bytes(row),
                    0,
                    0,
                    to_u32(row, "table rows")?,
                )?;
            }
        }
        Ok(Table { batch, index })
    }

    /// The layout of this operator's state: the table rows (loading or
    /// loaded), the waiting stream rows, and a status row.
    fn state_parts(&self) -> [(&'static str, SchemaRef); 3] {
        [
            (TABLE_PART, self.join.table_input().schema.clone()),
            (WAITING_PART, self.join.stream_input().schema.clone()),
            (STATUS_PART, status_schema()),
        ]
    }

    /// Puts back table rows, waiting stream rows and the status of a state
    /// (the rows of one instance: with a loaded table, none are waiting).
    fn restore_parts(
        &mut self,
        table_rows: Vec<RecordBatch>,
        waiting: Vec<RecordBatch>,
        loaded: bool,
        held_watermark: Option<Timestamp>,
    ) -> Result<()> {
        if loaded {
            if waiting.iter().any(|b| b.num_rows() > 0) {
                return Err(malformed_state(
                    "bounded table join: stream rows waiting for a loaded table",
                ));
            }
            self.table = Some(self.index_table(table_rows)?);
        } else {
            self.loading = table_rows;
            self.waiting = waiting;
            self.held_watermark = held_watermark;
        }
        Ok(())
    }

    /// The status row of a state: whether the table was loaded, and the
    /// watermark held back until it is.
    fn read_status(batches: &[RecordBatch]) -> Result<(bool, Option<Timestamp>)> {
        let batch = batches
            .iter()
            .find(|b| b.num_rows() == 1)
            .ok_or_else(|| malformed_state("bounded table join: no status row"))?;
        let loaded = state_column::<Int64Type>(batch, "loaded")?.value(0) != 0;
        let held = state_column::<Int64Type>(batch, "held_watermark")?.value(0);
        Ok((loaded, (held != MIN_WATERMARK).then_some(held)))
    }

    /// Joins one stream batch with the loaded table.
    fn probe(&self, table: &Table, batch: &RecordBatch, out: &mut Output<'_>) -> Result<()> {
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let join = &self.join;
        let keys = BatchKeys::new(batch, &join.stream_input().keys, None, &self.converter)?;
        let outer = join.kind != JoinKind::Inner;
        let mut matched = if outer { vec![false; rows] } else { Vec::new() };
        let mut stream_rows: Vec<u32> = Vec::new();
        let mut table_rows: Vec<u32> = Vec::new();
        for i in 0..rows {
            if !keys.is_valid(i) {
                continue;
            }
            if let Some(key) = table.index.find(keys.hash(i), keys.bytes(i)) {
                let row = to_u32(i, "stream rows")?;
                for entry in table.index.chain(key) {
                    stream_rows.push(row);
                    table_rows.push(entry.row);
                }
            }
            if stream_rows.len() >= OUTPUT_BATCH_ROWS {
                self.emit_pairs(table, batch, &stream_rows, &table_rows, &mut matched, out)?;
                stream_rows.clear();
                table_rows.clear();
            }
        }
        self.emit_pairs(table, batch, &stream_rows, &table_rows, &mut matched, out)?;
        if outer {
            let unmatched: Vec<u32> = (0..rows)
                .filter(|&i| !matched[i])
                .map(|i| to_u32(i, "stream rows"))
                .collect::<Result<_>>()?;
            self.emit_unmatched(batch, unmatched, out)?;
        }
        Ok(())
    }

    /// Emits the candidate pairs (stream row, table row) that pass the residual
    /// and marks their stream rows matched (when `matched` is kept).
    fn emit_pairs(
        &self,
        table: &Table,
        batch: &RecordBatch,
        stream_rows: &[u32],
        table_rows: &[u32],
        matched: &mut [bool],
        out: &mut Output<'_>,
    ) -> Result<()> {
        let rows = stream_rows.len();
        if rows == 0 {
            return Ok(());
        }
        let stream = take_arrays(
            batch.columns(),
            &UInt32Array::from(stream_rows.to_vec()),
            None,
        )?;
        let table_columns = take_arrays(
            table.batch.columns(),
            &UInt32Array::from(table_rows.to_vec()),
            None,
        )?;
        let candidates = self.join.assemble(stream, table_columns, rows)?;
        let (result, mask) = match &self.join.residual {
            None => (candidates, None),
            Some(predicate) => {
                let mask = predicate.evaluate(&candidates)?.into_array(rows)?;
                let mask: BooleanArray = mask
                    .as_boolean_opt()
                    .ok_or_else(|| {
                        EngineError::Config(format!(
                            "bounded table join residual {predicate} is not boolean but {}",
                            mask.data_type()
                        ))
                    })?
                    .clone();
                (filter_record_batch(&candidates, &mask)?, Some(mask))
            }
        };
        if !matched.is_empty() {
            for (k, &row) in stream_rows.iter().enumerate() {
                if mask.as_ref().is_none_or(|m| m.is_valid(k) && m.value(k))
                    && let Some(m) = matched.get_mut(row as usize)
                {
                    *m = true;
                }
            }
        }
        out.batch(result);
        Ok(())
    }

    /// Emits stream rows `rows` of `batch` with NULLs for the table's columns.
    fn emit_unmatched(
        &self,
        batch: &RecordBatch,
        rows: Vec<u32>,
        out: &mut Output<'_>,
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let n = rows.len();
        let stream = if n == batch.num_rows() {
            batch.columns().to_vec()
        } else {
            take_arrays(batch.columns(), &UInt32Array::from(rows), None)?
        };
        let nulls = self
            .join
            .table_input()
            .schema
            .fields()
            .iter()
            .map(|f| new_null_array(f.data_type(), n))
            .collect();
        out.batch(self.join.assemble(stream, nulls, n)?);
        Ok(())
    }
}

impl Operator for BoundedTableJoinOperator {
    fn output_schema(&self) -> SchemaRef {
        self.join.output_schema.clone()
    }

    fn on_batch(&mut self, _batch: RecordBatch, _out: &mut Output<'_>) -> Result<()> {
        Err(EngineError::InvalidGraph(
            "a bounded table join has two inputs; batches must say which one".to_string(),
        ))
    }

    fn on_input_batch(
        &mut self,
        input: usize,
        batch: RecordBatch,
        out: &mut Output<'_>,
    ) -> Result<()> {
        let table_input = self.join.table.table_input();
        if input == table_input {
            if self.table.is_some() {
                return Err(EngineError::InvalidGraph(
                    "bounded table join: a table row arrived after the table ended".to_string(),
                ));
            }
            self.loading.push(batch);
            self.record_state(out);
            Ok(())
        } else if input == self.join.table.stream_input() {
            match &self.table {
                Some(table) => self.probe(table, &batch, out),
                None => {
                    self.waiting.push(batch);
                    self.record_state(out);
                    Ok(())
                }
            }
        } else {
            Err(EngineError::InvalidGraph(format!(
                "a bounded table join has inputs 0 and 1, not {input}"
            )))
        }
    }

    fn on_watermark(&mut self, watermark: Timestamp, out: &mut Output<'_>) -> Result<()> {
        if self.table.is_some() {
            out.watermark(watermark);
        } else {
            self.held_watermark = Some(self.held_watermark.map_or(watermark, |w| w.max(watermark)));
        }
        Ok(())
    }

    fn on_input_end(&mut self, input: usize, out: &mut Output<'_>) -> Result<()> {
        if input == self.join.table.table_input() {
            self.load_table(out)?;
        }
        Ok(())
    }

    fn on_end(&mut self, out: &mut Output<'_>) -> Result<()> {
        // Normally loaded at the table's own end; a runtime that only reports the
        // end of everything still gets every stream row joined.
        self.load_table(out)
    }

    /// The table's rows (as received so far, or loaded), the stream rows
    /// waiting for it, and a status row. Every instance holds the whole table
    /// (it is broadcast), so each checkpoints it.
    fn snapshot(&mut self) -> Result<Option<OperatorState>> {
        let [
            (table_name, table_schema),
            (waiting_name, waiting_schema),
            (status_name, _),
        ] = self.state_parts();
        let table_rows = match &self.table {
            Some(table) => vec![table.batch.clone()],
            None => self.loading.clone(),
        };
        let status = RecordBatch::try_new(
            status_schema(),
            vec![
                Arc::new(Int64Array::from(vec![i64::from(self.table.is_some())])),
                Arc::new(Int64Array::from(vec![
                    self.held_watermark.unwrap_or(MIN_WATERMARK),
                ])),
            ],
        )?;
        let part = |name: &str, schema: SchemaRef, batches: Vec<RecordBatch>| StatePart {
            name: name.to_string(),
            schema,
            batches,
        };
        OperatorState::from_parts(vec![
            part(table_name, table_schema, table_rows),
            part(waiting_name, waiting_schema, self.waiting.clone()),
            part(status_name, status_schema(), vec![status]),
        ])
        .map(Some)
    }

    fn restore(&mut self, state: OperatorState) -> Result<()> {
        let [table_rows, waiting, status] = parts_of(state.parts(&self.state_parts())?)?;
        let (loaded, held) = Self::read_status(&status)?;
        self.restore_parts(table_rows, waiting, loaded, held)
    }

    /// The table is the same in every old instance (it is broadcast): it comes
    /// from the first; the waiting stream rows (not keyed) from the old
    /// instances this one inherits, with the lowest held watermark.
    fn restore_rescaled(&mut self, rescaled: Rescaled) -> Result<()> {
        let expected = self.state_parts();
        let mut first = None;
        let mut waiting = Vec::new();
        let mut held: Option<Timestamp> = None;
        for (old, state) in &rescaled.states {
            let [table_rows, rows, status] = parts_of(state.parts(&expected)?)?;
            let (loaded, held_here) = Self::read_status(&status)?;
            if let Some(w) = held_here {
                held = Some(held.map_or(w, |h| h.min(w)));
            }
            if old % rescaled.new_parallelism == rescaled.instance {
                waiting.extend(rows);
            }
            if first.is_none() {
                first = Some((table_rows, loaded));
            }
        }
        let (table_rows, loaded) =
            first.ok_or_else(|| malformed_state("bounded table join: no instance had state"))?;
        // Every instance saw the same table messages before the barrier, so
        // the first one's table and status stand for all.
        self.restore_parts(table_rows, waiting, loaded, held)
    }
}

/// Part names of the bounded table join's state.
const TABLE_PART: &str = "table";
const WAITING_PART: &str = "waiting";
const STATUS_PART: &str = "status";

/// The status row of the bounded table join's state.
fn status_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("loaded", DataType::Int64, false),
        Field::new("held_watermark", DataType::Int64, false),
    ]))
}

/// The three parts of the bounded table join's state, by name.
fn parts_of(parts: Vec<Vec<RecordBatch>>) -> Result<[Vec<RecordBatch>; 3]> {
    parts
        .try_into()
        .map_err(|_| malformed_state("bounded table join: expected three state parts"))
}
