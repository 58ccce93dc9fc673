//! Window Top-N: the first N rows per window (and partition key) by an ordering.
//!
//! Flink plans
//! `SELECT * FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY window_start,
//! window_end [, k...] ORDER BY ...) AS rownum FROM <windowed aggregate>)
//! WHERE rownum <= N` as a window rank that emits once per window. [`WindowTopN`]
//! buffers the input rows per window end and, when the watermark passes
//! `window_end - 1`, sorts the window's rows by (partition keys, order keys, arrival
//! order) with one `lexsort`, cuts partition boundaries with Arrow's `partition`
//! kernel and `take`s the first N rows of each partition. Equal order keys are
//! numbered in arrival order, so results are deterministic.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, UInt32Array, UInt64Array};
use datafusion::arrow::compute::kernels::partition::partition;
use datafusion::arrow::compute::{
    SortColumn, SortOptions, cast, concat_batches, filter_record_batch, lexsort_to_indices, max,
    min, take,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimestampMillisecondType};
use datafusion::arrow::record_batch::RecordBatch;

use crate::checkpoint::{OperatorState, Rescaled, check_schema, malformed_state};
use crate::error::{EngineError, Result};
use crate::metrics::NodeMetrics;
use crate::operator::{Operator, OperatorFactory, Output};
use crate::time::{MIN_WATERMARK, Timestamp, event_time_type};
use crate::window::{WINDOW_COLUMNS, window_fired};

/// A window Top-N: `ROW_NUMBER() OVER (PARTITION BY window_start, window_end [, k...]
/// ORDER BY ...) <= N` over the rows of a window aggregate.
#[derive(Debug, Clone)]
pub struct WindowTopN {
    spec: Arc<TopNSpec>,
}

#[derive(Debug)]
struct TopNSpec {
    input_schema: SchemaRef,
    output_schema: SchemaRef,
    window_end_column: usize,
    /// The input's `window_start` column, when it has one: it is part of the partition.
    window_start_column: Option<usize>,
    partition_columns: Vec<usize>,
    order_by: Vec<(usize, SortOptions)>,
    limit: usize,
    row_number: bool,
}

impl WindowTopN {
    /// A Top-N over rows of `schema`, whose column `window_end_column` is the window
    /// end. The partition is always the window (`window_start`, found by name, and
    /// `window_end`) plus `partition_columns` (may be empty). Rows are ranked by
    /// `order_by`, and the first `limit` of each partition are kept. With
    /// `row_number` set to a name, a UInt64 column of that name with the rank (DataFusion's ROW_NUMBER type)
    /// (1-based) is appended.
    pub fn new(
        schema: SchemaRef,
        window_end_column: usize,
        partition_columns: Vec<usize>,
        order_by: Vec<(usize, SortOptions)>,
        limit: usize,
        row_number: Option<String>,
    ) -> Result<Self> {
        let n = schema.fields().len();
        let check = |i: usize, what: &str| {
            if i < n {
                Ok(())
            } else {
                Err(EngineError::Config(format!(
                    "window Top-N: {what} column {i} out of range (input has {n} columns)"
                )))
            }
        };
        check(window_end_column, "window_end")?;
        for &i in &partition_columns {
            check(i, "partition")?;
        }
        for &(i, _) in &order_by {
            check(i, "order by")?;
        }
        match schema.field(window_end_column).data_type() {
            DataType::Timestamp(_, _) | DataType::Int64 => {}
            other => {
                return Err(EngineError::Config(format!(
                    "window Top-N: window_end must be a timestamp, got {other}"
                )));
            }
        }
        let window_start_column = schema
            .index_of(WINDOW_COLUMNS[0])
            .ok()
            .filter(|&i| i != window_end_column);
        let mut fields: Vec<Arc<Field>> = schema.fields().iter().cloned().collect();
        let has_row_number = row_number.is_some();
        if let Some(name) = row_number {
            if schema.index_of(&name).is_ok() {
                return Err(EngineError::Config(format!(
                    "window Top-N: row number column '{name}' already exists in the input"
                )));
            }
            fields.push(Arc::new(Field::new(name, DataType::UInt64, false)));
        }
        let output_schema = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
        Ok(WindowTopN {
            spec: Arc::new(TopNSpec {
                input_schema: schema,
                output_schema,
                window_end_column,
                window_start_column,
                partition_columns,
                order_by,
                limit,
                row_number: has_row_number,
            }),
        })
    }
}

impl TopNSpec {
    fn column_name(&self, i: usize) -> &str {
        self.input_schema.field(i).name()
    }

    /// The partition key columns to sort and split by within one window
    /// (`window_end` is constant there and left out).
    fn key_columns(&self) -> Vec<usize> {
        self.window_start_column
            .into_iter()
            .chain(self.partition_columns.iter().copied())
            .collect()
    }

    /// Ranks the rows of one window and keeps the first `limit` per partition.
    fn top_n(&self, batches: &[RecordBatch]) -> Result<(RecordBatch, usize)> {
        let input = concat_batches(&self.input_schema, batches)?;
        let rows = input.num_rows();
        if rows == 0 || self.limit == 0 {
            return Ok((RecordBatch::new_empty(self.output_schema.clone()), rows));
        }
        let keys = self.key_columns();
        let len = u32::try_from(rows)
            .map_err(|_| EngineError::Config(format!("window Top-N: {rows} rows in one window")))?;
        let mut sort: Vec<SortColumn> = keys
            .iter()
            .map(|&i| SortColumn {
                values: input.column(i).clone(),
                options: None,
            })
            .chain(self.order_by.iter().map(|&(i, options)| SortColumn {
                values: input.column(i).clone(),
                options: Some(options),
            }))
            .collect();
        // Arrival order breaks ties: ROW_NUMBER is deterministic.
        sort.push(SortColumn {
            values: Arc::new(UInt32Array::from_iter_values(0..len)),
            options: None,
        });
        let sorted = lexsort_to_indices(&sort, None)?;

        let ranges = if keys.is_empty() {
            std::iter::once(0..rows).collect()
        } else {
            let sorted_keys = keys
                .iter()
                .map(|&i| take(input.column(i).as_ref(), &sorted, None))
                .collect::<std::result::Result<Vec<ArrayRef>, _>>()?;
            partition(&sorted_keys)?.ranges()
        };
        let kept_rows: usize = ranges.iter().map(|r| r.len().min(self.limit)).sum();
        let mut kept = Vec::with_capacity(kept_rows);
        let mut numbers = Vec::with_capacity(if self.row_number { kept_rows } else { 0 });
        let positions = sorted.values();
        for range in ranges {
            let end = range.start + range.len().min(self.limit);
            kept.extend_from_slice(&positions[range.start..end]);
            if self.row_number {
                numbers.extend(1..=(end - range.start) as u64);
            }
        }
        let kept = UInt32Array::from(kept);
        let mut columns = input
            .columns()
            .iter()
            .map(|c| take(c.as_ref(), &kept, None))
            .collect::<std::result::Result<Vec<ArrayRef>, _>>()?;
        if self.row_number {
            columns.push(Arc::new(UInt64Array::from(numbers)));
        }
        let batch = RecordBatch::try_new(self.output_schema.clone(), columns)?;
        Ok((batch, rows - kept_rows))
    }
}

fn order_text(name: &str, options: &SortOptions) -> String {
    // Flink's defaults: ASC NULLS FIRST, DESC NULLS LAST.
    match (options.descending, options.nulls_first) {
        (true, false) => format!("{name} DESC"),
        (true, true) => format!("{name} DESC NULLS FIRST"),
        (false, true) => format!("{name} ASC"),
        (false, false) => format!("{name} ASC NULLS LAST"),
    }
}

impl OperatorFactory for WindowTopN {
    fn name(&self) -> String {
        "WindowTopN".to_string()
    }

    fn explain(&self) -> Vec<String> {
        let spec = &self.spec;
        let partition = spec
            .window_start_column
            .into_iter()
            .chain(std::iter::once(spec.window_end_column))
            .chain(spec.partition_columns.iter().copied())
            .map(|i| spec.column_name(i))
            .collect::<Vec<_>>()
            .join(", ");
        let order = spec
            .order_by
            .iter()
            .map(|(i, o)| order_text(spec.column_name(*i), o))
            .collect::<Vec<_>>()
            .join(", ");
        let mut lines = vec![
            format!("partition by: [{partition}]"),
            format!("order by: [{order}]"),
            if spec.limit == usize::MAX {
                "limit: none (every row is numbered)".to_string()
            } else {
                format!("limit: {} per partition", spec.limit)
            },
        ];
        if spec.row_number {
            let name = spec
                .output_schema
                .fields()
                .last()
                .map(|f| f.name().as_str())
                .unwrap_or_default();
            lines.push(format!("row number: {name}"));
        }
        lines.push("emit: once per window, when the watermark passes window_end".to_string());
        lines
    }

    fn output_schema(&self) -> SchemaRef {
        self.spec.output_schema.clone()
    }

    fn create(&self) -> Result<Box<dyn Operator>> {
        Ok(Box::new(WindowTopNOperator {
            spec: self.spec.clone(),
            windows: BTreeMap::new(),
            watermark: MIN_WATERMARK,
        }))
    }
}

/// The running instance of a [`WindowTopN`].
pub struct WindowTopNOperator {
    spec: Arc<TopNSpec>,
    /// Rows of open windows, by window end, in arrival order.
    windows: BTreeMap<Timestamp, Vec<RecordBatch>>,
    watermark: Timestamp,
}

impl WindowTopNOperator {
    /// Bytes held by the buffered rows of all open windows.
    pub fn state_size(&self) -> usize {
        self.windows
            .values()
            .flatten()
            .map(RecordBatch::get_array_memory_size)
            .sum()
    }

    /// Number of buffered rows.
    pub fn buffered_rows(&self) -> usize {
        self.windows
            .values()
            .flatten()
            .map(RecordBatch::num_rows)
            .sum()
    }

    fn buffer(&mut self, end: Timestamp, batch: RecordBatch, out: &mut Output<'_>) {
        if window_fired(end, self.watermark) {
            // The window already fired: its rank is final.
            out.drop_late_batch(&batch, "window already ranked", self.watermark);
        } else if batch.num_rows() > 0 {
            self.windows.entry(end).or_default().push(batch);
        }
    }

    /// The rows of `batch` by window end, in arrival order.
    fn split_by_window(&self, batch: RecordBatch) -> Result<Vec<(Timestamp, RecordBatch)>> {
        let ends = cast(
            batch.column(self.spec.window_end_column),
            &event_time_type(),
        )?;
        let ends = ends.as_primitive::<TimestampMillisecondType>();
        if ends.null_count() > 0 {
            return Err(EngineError::Config("window_end must not be NULL".into()));
        }
        let (Some(lo), Some(hi)) = (min(ends), max(ends)) else {
            return Ok(Vec::new());
        };
        if lo == hi {
            return Ok(vec![(hi, batch)]);
        }
        // Rows of several windows: split by window end (few distinct values).
        let mut distinct: Vec<Timestamp> = Vec::new();
        for &e in ends.values().iter() {
            if !distinct.contains(&e) {
                distinct.push(e);
            }
        }
        distinct
            .into_iter()
            .map(|end| {
                let mask = BooleanArray::from_unary(ends, |e| e == end);
                Ok((end, filter_record_batch(&batch, &mask)?))
            })
            .collect()
    }

    fn fire_until(&mut self, watermark: Timestamp, out: &mut Output<'_>) -> Result<()> {
        while let Some(entry) = self.windows.first_entry() {
            if !window_fired(*entry.key(), watermark) {
                break;
            }
            let batches = entry.remove();
            let (batch, dropped) = self.spec.top_n(&batches)?;
            NodeMetrics::add(&out.metrics().rows_filtered, dropped);
            out.batch(batch);
        }
        Ok(())
    }
}

impl Operator for WindowTopNOperator {
    fn output_schema(&self) -> SchemaRef {
        self.spec.output_schema.clone()
    }

    fn on_batch(&mut self, batch: RecordBatch, out: &mut Output<'_>) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        for (end, part) in self.split_by_window(batch)? {
            self.buffer(end, part, out);
        }
        out.metrics()
            .record_state(self.state_size(), self.buffered_rows());
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

    /// The buffered rows of every open window, as batches of the input's
    /// schema in window and arrival order (arrival order breaks ties in the
    /// ranking), and the watermark.
    fn snapshot(&mut self) -> Result<Option<OperatorState>> {
        let state = OperatorState {
            schema: self.spec.input_schema.clone(),
            batches: self.windows.values().flatten().cloned().collect(),
        };
        Ok(Some(state.with_watermark(self.watermark)?))
    }

    fn restore(&mut self, state: OperatorState) -> Result<()> {
        check_schema(&state.schema, &self.spec.input_schema)?;
        self.watermark = self.watermark.max(state.watermark()?);
        for batch in state.batches {
            let batch =
                RecordBatch::try_new(self.spec.input_schema.clone(), batch.columns().to_vec())
                    .map_err(|e| malformed_state(&format!("window Top-N rows: {e}")))?;
            for (end, part) in self.split_by_window(batch)? {
                if part.num_rows() > 0 {
                    self.windows.entry(end).or_default().push(part);
                }
            }
        }
        Ok(())
    }

    /// The state is input rows, so the keys are the input's own columns.
    fn restore_rescaled(&mut self, rescaled: Rescaled) -> Result<()> {
        let keys: Vec<String> = rescaled
            .keys_of_input(0, "a window Top-N")?
            .iter()
            .map(|&k| self.spec.input_schema.field(k).name().clone())
            .collect();
        self.restore(rescaled.owned_state(&keys)?)
    }
}

#[cfg(test)]
mod tests {
    use std::cmp::Ordering;

    use datafusion::arrow::array::{
        Int32Array, Int64Array, StringArray, TimestampMillisecondArray,
    };
    use datafusion::arrow::datatypes::TimeUnit;

    use super::*;
    use crate::message::Message;

    /// (window_start, window_end, k, x, y, arrival sequence number)
    type Row = (i64, i64, Option<i32>, Option<i64>, Option<String>, i64);

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn schema() -> SchemaRef {
        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        Arc::new(Schema::new(vec![
            Field::new("window_start", ts.clone(), false),
            Field::new("window_end", ts, false),
            Field::new("k", DataType::Int32, true),
            Field::new("x", DataType::Int64, true),
            Field::new("y", DataType::Utf8, true),
            Field::new("seq", DataType::Int64, false),
        ]))
    }

    fn to_batch(rows: &[Row]) -> RecordBatch {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(TimestampMillisecondArray::from_iter_values(
                rows.iter().map(|r| r.0),
            )),
            Arc::new(TimestampMillisecondArray::from_iter_values(
                rows.iter().map(|r| r.1),
            )),
            Arc::new(Int32Array::from_iter(rows.iter().map(|r| r.2))),
            Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.3))),
            Arc::new(StringArray::from_iter(rows.iter().map(|r| r.4.clone()))),
            Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.5))),
        ];
        RecordBatch::try_new(schema(), cols).unwrap()
    }

    /// Output rows as (seq, rownum) pairs, in emission order.
    fn from_batch(batch: &RecordBatch, row_number: bool) -> Vec<(i64, Option<i64>)> {
        let seq = batch
            .column(5)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        (0..batch.num_rows())
            .map(|i| {
                let rn = row_number.then(|| {
                    batch
                        .column(6)
                        .as_primitive::<datafusion::arrow::datatypes::UInt64Type>()
                        .value(i) as i64
                });
                (seq.value(i), rn)
            })
            .collect()
    }

    fn cmp_opt<T: Ord>(a: &Option<T>, b: &Option<T>, o: SortOptions) -> Ordering {
        match (a, b) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => {
                if o.nulls_first {
                    Ordering::Less
                } else {
                    Ordering::Greater
                }
            }
            (Some(_), None) => {
                if o.nulls_first {
                    Ordering::Greater
                } else {
                    Ordering::Less
                }
            }
            (Some(a), Some(b)) => {
                if o.descending {
                    b.cmp(a)
                } else {
                    a.cmp(b)
                }
            }
        }
    }

    /// Brute force: per window (by end), per partition (start, k asc nulls first),
    /// rows by order keys then arrival, first `limit`.
    fn oracle(
        rows: &[Row],
        by_k: bool,
        order: &[(usize, SortOptions)],
        limit: usize,
    ) -> Vec<(i64, Option<i64>)> {
        let mut sorted: Vec<&Row> = rows.iter().collect();
        let asc = SortOptions::default();
        sorted.sort_by(|a, b| {
            let mut c = a.1.cmp(&b.1).then(a.0.cmp(&b.0));
            if by_k {
                c = c.then(cmp_opt(&a.2, &b.2, asc));
            }
            for &(col, o) in order {
                c = c.then(match col {
                    3 => cmp_opt(&a.3, &b.3, o),
                    4 => cmp_opt(&a.4, &b.4, o),
                    _ => unreachable!(),
                });
            }
            c.then(a.5.cmp(&b.5))
        });
        let mut out = Vec::new();
        let mut prev: Option<(i64, i64, Option<i32>)> = None;
        let mut n = 0;
        for r in sorted {
            let key = (r.0, r.1, if by_k { r.2 } else { None });
            if prev != Some(key) {
                prev = Some(key);
                n = 0;
            }
            n += 1;
            if n <= limit {
                out.push((r.5, Some(n as i64)));
            }
        }
        out
    }

    fn run(seed: u64, by_k: bool, order: &[(usize, SortOptions)], limit: usize, rn: bool) {
        run_restoring(seed, by_k, order, limit, rn, false);
    }

    /// [`run`]; with `restore`, half way through the rows the operator's
    /// snapshot is restored (through Arrow IPC) into a fresh instance that
    /// goes on.
    fn run_restoring(
        seed: u64,
        by_k: bool,
        order: &[(usize, SortOptions)],
        limit: usize,
        rn: bool,
        restore: bool,
    ) {
        let mut rng = Rng(seed);
        let windows = 1 + rng.below(5) as i64;
        let mut rows: Vec<(u64, Row)> = Vec::new();
        for w in 0..windows {
            for _ in 0..rng.below(30) {
                let k = (rng.below(5) != 0).then(|| rng.below(4) as i32);
                let x = (rng.below(6) != 0).then(|| rng.below(8) as i64);
                let y = (rng.below(6) != 0).then(|| format!("s{}", rng.below(3)));
                // Same window_end, two different window_starts in odd windows.
                let start = w * 10
                    - if w % 2 == 1 {
                        rng.below(2) as i64 * 5
                    } else {
                        0
                    };
                let arrival = w as u64 * 100 + rng.below(250);
                rows.push((arrival, (start, w * 10 + 10, k, x, y, 0)));
            }
        }
        rows.sort_by_key(|r| r.0);
        let rows: Vec<Row> = rows
            .into_iter()
            .enumerate()
            .map(|(i, (_, mut r))| {
                r.5 = i as i64;
                r
            })
            .collect();

        let factory = WindowTopN::new(
            schema(),
            1,
            if by_k { vec![2] } else { vec![] },
            order.to_vec(),
            limit,
            rn.then(|| "rownum".to_string()),
        )
        .unwrap();
        let mut op = factory.create().unwrap();
        let metrics = NodeMetrics::default();
        let mut messages = Vec::new();
        let mut wm = MIN_WATERMARK;
        let mut i = 0;
        let mut restored = !restore;
        while i < rows.len() {
            if !restored && i >= rows.len() / 2 {
                let state = op.snapshot().unwrap().unwrap();
                op = factory.create().unwrap();
                op.restore(crate::checkpoint::ipc::round_trip(&state))
                    .unwrap();
                restored = true;
            }
            let n = 1 + rng.below(8) as usize;
            let end = (i + n).min(rows.len());
            let mut o = Output::new(&mut messages, &metrics);
            op.on_batch(to_batch(&rows[i..end]), &mut o).unwrap();
            i = end;
            // A watermark that fires no window whose rows are still to come.
            let bound = rows[i..]
                .iter()
                .map(|r| r.1 - 2)
                .min()
                .unwrap_or(windows * 10 + 20);
            if rng.below(3) == 0 && bound > wm {
                wm = wm.max(bound - rng.below(12) as i64);
                op.on_watermark(wm, &mut o).unwrap();
            }
        }
        op.on_end(&mut Output::new(&mut messages, &metrics))
            .unwrap();

        let mut got = Vec::new();
        let by_seq: std::collections::HashMap<i64, &Row> = rows.iter().map(|r| (r.5, r)).collect();
        let mut last_wm = MIN_WATERMARK;
        for (j, m) in messages.iter().enumerate() {
            match m {
                Message::Batch(b) => {
                    assert_eq!(b.schema(), factory.output_schema());
                    let next_wm = messages[j..]
                        .iter()
                        .find_map(|m| match m {
                            Message::Watermark(w) => Some(*w),
                            _ => None,
                        })
                        .unwrap_or(Timestamp::MAX);
                    for r in from_batch(b, rn) {
                        // Emitted by the watermark that fires its window (or the end).
                        let end = by_seq[&r.0].1;
                        assert!(!window_fired(end, last_wm));
                        assert!(window_fired(end, next_wm));
                        got.push(r);
                    }
                }
                Message::Watermark(w) => last_wm = *w,
                _ => {}
            }
        }
        let mut want = oracle(&rows, by_k, order, limit);
        if !rn {
            want.iter_mut().for_each(|r| r.1 = None);
        }
        assert_eq!(got, want, "seed {seed}");
        let filtered = metrics
            .rows_filtered
            .load(std::sync::atomic::Ordering::Relaxed);
        assert_eq!(filtered as usize + got.len(), rows.len());
    }

    fn desc() -> SortOptions {
        SortOptions {
            descending: true,
            nulls_first: false,
        }
    }

    #[test]
    fn top_n_matches_brute_force() {
        let orders: Vec<Vec<(usize, SortOptions)>> = vec![
            vec![(3, desc())],
            vec![(3, SortOptions::default())],
            vec![(3, desc()), (4, SortOptions::default())],
            vec![
                (4, desc()),
                (
                    3,
                    SortOptions {
                        descending: false,
                        nulls_first: false,
                    },
                ),
            ],
            vec![],
        ];
        for seed in 1..60u64 {
            for order in &orders {
                for limit in [1, 3] {
                    for by_k in [false, true] {
                        for rn in [false, true] {
                            run(seed * 7919 + 13, by_k, order, limit, rn);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_restored_snapshot_ranks_as_the_uninterrupted_run() {
        let order = vec![(3, desc()), (4, SortOptions::default())];
        for seed in 1..40u64 {
            for by_k in [false, true] {
                run_restoring(seed * 104_729 + 7, by_k, &order, 2, true, true);
                // Equal order keys: ties are broken by arrival order.
                run_restoring(seed * 104_729 + 7, by_k, &[], 3, true, true);
            }
        }
        // A state of another input is refused.
        let factory = WindowTopN::new(schema(), 1, vec![], vec![], 1, None).unwrap();
        let mut op = factory.create().unwrap();
        let other = OperatorState::counters(&[("position", 3)])
            .unwrap()
            .with_watermark(0)
            .unwrap();
        let err = op.restore(other).unwrap_err().to_string();
        assert!(err.contains("malformed checkpoint state"), "{err}");
    }

    #[test]
    fn top_n_fires_per_window_before_forwarding_watermark() {
        let f = WindowTopN::new(
            schema(),
            1,
            vec![2],
            vec![(3, desc())],
            1,
            Some("rownum".into()),
        )
        .unwrap();
        let mut op = f.create().unwrap();
        let metrics = NodeMetrics::default();
        let mut msgs = Vec::new();
        let mut o = Output::new(&mut msgs, &metrics);
        let r = |s, e, k, x, seq| (s, e, Some(k), Some(x), None, seq);
        // Two windows interleaved, one empty batch, a watermark with nothing to fire.
        op.on_batch(to_batch(&[]), &mut o).unwrap();
        op.on_watermark(0, &mut o).unwrap();
        op.on_batch(to_batch(&[r(0, 10, 1, 5, 0), r(10, 20, 1, 7, 1)]), &mut o)
            .unwrap();
        op.on_batch(to_batch(&[r(0, 10, 1, 9, 2), r(0, 10, 2, 1, 3)]), &mut o)
            .unwrap();
        op.on_watermark(9, &mut o).unwrap();
        // A late row of the fired window is dropped and counted.
        op.on_batch(to_batch(&[r(0, 10, 1, 100, 4)]), &mut o)
            .unwrap();
        op.on_end(&mut o).unwrap();
        let seqs: Vec<Vec<(i64, Option<i64>)>> = msgs
            .iter()
            .map(|m| match m {
                Message::Batch(b) => from_batch(b, true),
                Message::Watermark(w) => vec![(-1, Some(*w))],
                _ => vec![],
            })
            .collect();
        assert_eq!(
            seqs,
            vec![
                vec![(-1, Some(0))],
                vec![(2, Some(1)), (3, Some(1))],
                vec![(-1, Some(9))],
                vec![(1, Some(1))],
            ]
        );
        assert_eq!(
            metrics.rows_late.load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        assert_eq!(
            metrics
                .rows_filtered
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn top_n_explain_and_errors() {
        let f = WindowTopN::new(schema(), 1, vec![2], vec![(3, desc())], 3, None).unwrap();
        assert_eq!(
            f.explain(),
            vec![
                "partition by: [window_start, window_end, k]",
                "order by: [x DESC]",
                "limit: 3 per partition",
                "emit: once per window, when the watermark passes window_end",
            ]
        );
        assert_eq!(f.output_schema().fields().len(), 6);
        assert!(WindowTopN::new(schema(), 1, vec![9], vec![], 1, None).is_err());
        assert!(WindowTopN::new(schema(), 2, vec![], vec![], 1, None).is_err());
        assert!(WindowTopN::new(schema(), 1, vec![], vec![], 1, Some("x".into())).is_err());
    }
}
