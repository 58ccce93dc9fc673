//! Compaction of an upsert sink's changes: only the last change per primary
//! key within a run of buffered changes is written.
//!
//! An updating aggregate emits a `-U`/`+U` pair for every key an input batch
//! touches, so a busy key changes many times per part file. [`UpsertCompactor`]
//! holds incoming changelog batches (at most [`COMPACTION_ROWS`] rows, so memory
//! stays bounded) and remembers, per primary key (Arrow row format), where the
//! key's latest `+I`, `+U` or `-D` is; `-U` rows are dropped at once. A drain
//! gathers those rows (Arrow `interleave`) in the order they arrived. A reader
//! keeping the last row per key therefore sees the same table as without
//! compaction; a part file holds at most one row per key per drained run.

use std::collections::HashMap;

use datafusion::arrow::array::{Array, ArrayRef};
use datafusion::arrow::compute::interleave;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::row::{RowConverter, SortField};
use watershed_engine::EngineError;
use watershed_engine::changelog::{RowKind, append_row_kind};

use crate::format::changelog::split_row_kinds;

/// Changes held before the compacted run is written.
pub const COMPACTION_ROWS: usize = 65_536;

/// Buffers changes and keeps the last one per primary key.
pub struct UpsertCompactor {
    table: String,
    key_columns: Vec<usize>,
    converter: RowConverter,
    /// Held changes, each with its `__row_kind` column.
    batches: Vec<RecordBatch>,
    /// Primary key (row format bytes) → (batch, row) of its latest change.
    latest: HashMap<Box<[u8]>, (usize, usize)>,
    held_rows: usize,
    max_rows: usize,
}

impl std::fmt::Debug for UpsertCompactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpsertCompactor")
            .field("table", &self.table)
            .field("key_columns", &self.key_columns)
            .field("held_rows", &self.held_rows)
            .field("keys", &self.latest.len())
            .finish()
    }
}

impl UpsertCompactor {
    /// A compactor for table `table` with columns `schema`, keyed by the
    /// columns at `key_columns`, holding up to `max_rows` changes.
    pub fn new(
        table: &str,
        schema: &SchemaRef,
        key_columns: Vec<usize>,
        max_rows: usize,
    ) -> Result<Self, EngineError> {
        let fields = key_columns
            .iter()
            .map(|&i| {
                schema
                    .fields()
                    .get(i)
                    .map(|f| SortField::new(f.data_type().clone()))
                    .ok_or_else(|| {
                        EngineError::Config(format!(
                            "table '{table}': primary key column {i} is out of range"
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(UpsertCompactor {
            table: table.to_string(),
            key_columns,
            converter: RowConverter::new(fields)?,
            batches: Vec::new(),
            latest: HashMap::new(),
            held_rows: 0,
            max_rows: max_rows.max(1),
        })
    }

    /// Adds a batch of changes (a changelog, or append-only rows as `+I`).
    pub fn push(&mut self, batch: &RecordBatch) -> Result<(), EngineError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let (data, kinds) = split_row_kinds(batch)?;
        if let Some(first) = self.batches.first() {
            let types = |b: &RecordBatch| -> Vec<_> {
                b.schema_ref()
                    .fields()
                    .iter()
                    .map(|f| f.data_type().clone())
                    .collect()
            };
            let mut held = types(first);
            held.pop();
            if held != types(&data) {
                return Err(EngineError::InvalidGraph(format!(
                    "table '{}': upsert sink received batches with different column types",
                    self.table
                )));
            }
        }
        let keys = self
            .key_columns
            .iter()
            .map(|&i| {
                data.columns().get(i).cloned().ok_or_else(|| {
                    EngineError::InvalidGraph(format!(
                        "table '{}': a batch of {} columns has no primary key column {i}",
                        self.table,
                        data.num_columns()
                    ))
                })
            })
            .collect::<Result<Vec<ArrayRef>, _>>()?;
        let rows = self.converter.convert_columns(&keys)?;
        let index = self.batches.len();
        for (row, kind) in kinds.iter().enumerate() {
            if *kind == RowKind::UpdateBefore {
                continue;
            }
            let key = rows.row(row);
            match self.latest.get_mut(key.as_ref()) {
                Some(slot) => *slot = (index, row),
                None => {
                    self.latest.insert(key.as_ref().into(), (index, row));
                }
            }
        }
        self.batches.push(append_row_kind(&data, &kinds)?);
        self.held_rows += batch.num_rows();
        Ok(())
    }

    /// True when the held changes should be drained.
    pub fn is_full(&self) -> bool {
        self.held_rows >= self.max_rows
    }

    /// The last change of every key held, in arrival order, as a changelog
    /// batch; `None` when nothing is to be written. Empties the buffer.
    pub fn drain(&mut self) -> Result<Option<RecordBatch>, EngineError> {
        let mut positions: Vec<(usize, usize)> = self.latest.drain().map(|(_, p)| p).collect();
        let batches = std::mem::take(&mut self.batches);
        self.held_rows = 0;
        let Some(first) = batches.first() else {
            return Ok(None);
        };
        if positions.is_empty() {
            return Ok(None);
        }
        positions.sort_unstable();
        let columns = (0..first.num_columns())
            .map(|c| {
                let arrays: Vec<&dyn Array> =
                    batches.iter().map(|b| b.column(c).as_ref()).collect();
                interleave(&arrays, &positions)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(RecordBatch::try_new(first.schema(), columns)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use std::sync::Arc;
    use watershed_engine::changelog::row_kinds;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("key", DataType::Int64, true),
            Field::new("value", DataType::Int64, true),
        ]))
    }

    fn changes(rows: &[(Option<i64>, i64, RowKind)]) -> RecordBatch {
        let data = RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
            ],
        )
        .unwrap();
        let kinds: Vec<RowKind> = rows.iter().map(|r| r.2).collect();
        append_row_kind(&data, &kinds).unwrap()
    }

    fn contents(batch: &RecordBatch) -> Vec<(Option<i64>, i64, RowKind)> {
        let keys = batch.column(0).as_primitive::<Int64Type>();
        let values = batch.column(1).as_primitive::<Int64Type>();
        row_kinds(batch)
            .unwrap()
            .into_iter()
            .enumerate()
            .map(|(i, k)| (keys.is_valid(i).then(|| keys.value(i)), values.value(i), k))
            .collect()
    }

    #[test]
    fn keeps_the_last_change_per_key_in_arrival_order() {
        use RowKind::*;
        let mut compactor = UpsertCompactor::new("t", &schema(), vec![0], 100).unwrap();
        compactor
            .push(&changes(&[
                (Some(1), 10, Insert),
                (Some(2), 20, Insert),
                (None, 5, Insert),
            ]))
            .unwrap();
        compactor
            .push(&changes(&[
                (Some(1), 10, UpdateBefore),
                (Some(1), 11, UpdateAfter),
                (Some(3), 30, Insert),
                (Some(2), 20, Delete),
            ]))
            .unwrap();
        // Append-only rows count as inserts.
        compactor
            .push(&changes(&[(Some(3), 31, Insert)]).project(&[0, 1]).unwrap())
            .unwrap();
        assert!(!compactor.is_full());
        let out = compactor.drain().unwrap().unwrap();
        assert_eq!(
            contents(&out),
            vec![
                (None, 5, Insert),
                (Some(1), 11, UpdateAfter),
                (Some(2), 20, Delete),
                (Some(3), 31, Insert),
            ]
        );
        assert!(compactor.drain().unwrap().is_none());
    }

    #[test]
    fn only_retractions_write_nothing_and_fullness_counts_rows() {
        let mut compactor = UpsertCompactor::new("t", &schema(), vec![0], 3).unwrap();
        compactor
            .push(&changes(&[(Some(1), 1, RowKind::UpdateBefore)]))
            .unwrap();
        assert!(compactor.drain().unwrap().is_none());
        compactor
            .push(&changes(&[
                (Some(1), 1, RowKind::Insert),
                (Some(1), 1, RowKind::UpdateBefore),
                (Some(1), 2, RowKind::UpdateAfter),
            ]))
            .unwrap();
        assert!(compactor.is_full());
        assert_eq!(
            contents(&compactor.drain().unwrap().unwrap()),
            vec![(Some(1), 2, RowKind::UpdateAfter)]
        );
        assert!(!compactor.is_full());
    }

    #[test]
    fn mismatched_batches_and_keys_are_errors() {
        let err = UpsertCompactor::new("t", &schema(), vec![5], 3).unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
        let mut compactor = UpsertCompactor::new("t", &schema(), vec![1], 10).unwrap();
        compactor
            .push(&changes(&[(Some(1), 1, RowKind::Insert)]))
            .unwrap();
        let narrow = changes(&[(Some(1), 1, RowKind::Insert)])
            .project(&[0])
            .unwrap();
        let err = compactor.push(&narrow).unwrap_err().to_string();
        assert!(err.contains("different column types"), "{err}");
    }
}
