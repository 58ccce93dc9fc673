//! The state an operator, source split or sink instance puts into a checkpoint.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, RecordBatchOptions, new_null_array,
};
use datafusion::arrow::compute::filter;
use datafusion::arrow::compute::kernels::cmp::eq;
use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::{EngineError, Result};

/// A snapshot of one instance's state: Arrow batches of one schema, stored as
/// one Arrow IPC object per instance.
#[derive(Debug, Clone)]
pub struct OperatorState {
    /// The schema of `batches`.
    pub schema: SchemaRef,
    /// The state rows.
    pub batches: Vec<RecordBatch>,
}

impl OperatorState {
    /// Rows held by the snapshot.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Schema metadata key of an operator's watermark in its state.
const WATERMARK_KEY: &str = "watershed.watermark";

/// The error of an operator, source or sink that cannot take part in
/// checkpoints yet: jobs with checkpointing on are refused at start.
pub fn checkpoints_unsupported(what: &str) -> EngineError {
    EngineError::Config(format!(
        "{what} does not support checkpoints yet: run the job without \
         'execution.checkpointing.interval'"
    ))
}

impl OperatorState {
    /// State made of batches that share one schema (e.g. one batch per open
    /// window from `StateBatch::to_record_batch`); an empty state has a schema
    /// of just the `tag` column.
    pub fn tagged_batches(batches: Vec<RecordBatch>) -> Result<Self> {
        let schema = match batches.first() {
            Some(first) => first.schema(),
            None => Arc::new(Schema::new(vec![Field::new("tag", DataType::Int64, false)])),
        };
        // Batches from different windows may differ in nullability only.
        let batches = batches
            .into_iter()
            .map(|b| RecordBatch::try_new(schema.clone(), b.columns().to_vec()))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        Ok(OperatorState { schema, batches })
    }

    /// The state with the operator's watermark in its schema's metadata.
    pub fn with_watermark(mut self, watermark: crate::time::Timestamp) -> Result<Self> {
        let mut metadata = self.schema.metadata().clone();
        metadata.insert(WATERMARK_KEY.into(), watermark.to_string());
        let schema = Arc::new(self.schema.as_ref().clone().with_metadata(metadata));
        self.batches = self
            .batches
            .into_iter()
            .map(|b| {
                let options = RecordBatchOptions::new().with_row_count(Some(b.num_rows()));
                RecordBatch::try_new_with_options(schema.clone(), b.columns().to_vec(), &options)
            })
            .collect::<std::result::Result<_, _>>()?;
        self.schema = schema;
        Ok(self)
    }

    /// The watermark [`OperatorState::with_watermark`] stored.
    pub fn watermark(&self) -> Result<crate::time::Timestamp> {
        self.schema
            .metadata()
            .get(WATERMARK_KEY)
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| EngineError::Config("checkpoint state without its watermark".into()))
    }

    /// A one-row state of named integer counters (a source split's read
    /// position, say).
    pub fn counters(values: &[(&str, i64)]) -> Result<Self> {
        let schema = Arc::new(Schema::new(
            values
                .iter()
                .map(|(name, _)| Field::new(*name, DataType::Int64, false))
                .collect::<Vec<_>>(),
        ));
        let columns: Vec<ArrayRef> = values
            .iter()
            .map(|(_, v)| Arc::new(Int64Array::from(vec![*v])) as ArrayRef)
            .collect();
        let batch = RecordBatch::try_new(schema.clone(), columns)?;
        Ok(OperatorState {
            schema,
            batches: vec![batch],
        })
    }

    /// The counter `name` of a state made by [`OperatorState::counters`].
    pub fn counter(&self, name: &str) -> Result<i64> {
        let value = self
            .batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .and_then(|b| b.column_by_name(name))
            .and_then(|c| c.as_primitive_opt::<Int64Type>())
            .filter(|c| !c.is_empty() && !c.is_null(0))
            .map(|c| c.value(0));
        value.ok_or_else(|| {
            EngineError::Config(format!(
                "checkpoint state has no counter '{name}' (it was written by another job?)"
            ))
        })
    }
}

/// The error for a checkpoint state that does not have the layout the
/// restoring operator expects (written by another job or version, or damaged).
pub fn malformed_state(what: &str) -> EngineError {
    EngineError::Config(format!("malformed checkpoint state: {what}"))
}

/// Name of the column of a multi-part state (see [`OperatorState::from_parts`])
/// that says which part each row belongs to.
const PART_COLUMN: &str = "part";

/// One part of a state whose parts have different schemas (the buffered rows
/// of each side of a join, say): its name, its schema and its rows.
#[derive(Debug, Clone)]
pub struct StatePart {
    /// Prefixes the part's columns in the combined schema (`<name>.<column>`).
    pub name: String,
    /// The schema of `batches`.
    pub schema: SchemaRef,
    /// The part's rows.
    pub batches: Vec<RecordBatch>,
}

impl OperatorState {
    /// One state of several parts with different schemas (a state object has
    /// one schema): an Int64 column `part` holds the part number of each row,
    /// then come the columns of every part in order, named `<part
    /// name>.<column>` and nullable, NULL in the rows of the other parts.
    pub fn from_parts(parts: Vec<StatePart>) -> Result<Self> {
        let mut fields = vec![Field::new(PART_COLUMN, DataType::Int64, false)];
        for part in &parts {
            fields.extend(part.schema.fields().iter().map(|f| {
                Field::new(
                    format!("{}.{}", part.name, f.name()),
                    f.data_type().clone(),
                    true,
                )
            }));
        }
        let schema = Arc::new(Schema::new(fields));
        let mut batches = Vec::new();
        for (number, part) in (0i64..).zip(&parts) {
            for batch in part.batches.iter().filter(|b| b.num_rows() > 0) {
                let rows = batch.num_rows();
                let mut columns: Vec<ArrayRef> =
                    vec![Arc::new(Int64Array::from(vec![number; rows]))];
                for other in &parts {
                    if std::ptr::eq(other, part) {
                        columns.extend(batch.columns().iter().cloned());
                    } else {
                        columns.extend(
                            other
                                .schema
                                .fields()
                                .iter()
                                .map(|f| new_null_array(f.data_type(), rows)),
                        );
                    }
                }
                batches.push(RecordBatch::try_new(schema.clone(), columns)?);
            }
        }
        Ok(OperatorState { schema, batches })
    }

    /// Splits a state written by [`OperatorState::from_parts`] back into its
    /// parts, given each part's name and schema as the restoring operator
    /// expects them: the rows of each part, as batches of its schema. A state
    /// of another layout is an error naming the first column that differs.
    pub fn parts(&self, expected: &[(&str, SchemaRef)]) -> Result<Vec<Vec<RecordBatch>>> {
        let fields = self.schema.fields();
        if !fields
            .first()
            .is_some_and(|f| f.name() == PART_COLUMN && f.data_type() == &DataType::Int64)
        {
            return Err(malformed_state("no Int64 'part' column first"));
        }
        let width: usize = expected.iter().map(|(_, s)| s.fields().len()).sum();
        if fields.len() != width + 1 {
            return Err(malformed_state(&format!(
                "{} columns where {} were expected",
                fields.len(),
                width + 1
            )));
        }
        // The columns of each part, checking names and types.
        let mut ranges = Vec::with_capacity(expected.len());
        let mut position = 1;
        for (name, schema) in expected {
            let start = position;
            for field in schema.fields() {
                let found = &fields[position];
                let wanted = format!("{name}.{}", field.name());
                if found.name() != &wanted || found.data_type() != field.data_type() {
                    return Err(malformed_state(&format!(
                        "column {position} is '{}' {}, expected '{wanted}' {}",
                        found.name(),
                        found.data_type(),
                        field.data_type()
                    )));
                }
                position += 1;
            }
            ranges.push(start..position);
        }
        let mut parts: Vec<Vec<RecordBatch>> = vec![Vec::new(); expected.len()];
        for batch in &self.batches {
            let tags = batch
                .column(0)
                .as_primitive_opt::<Int64Type>()
                .filter(|t| t.null_count() == 0)
                .ok_or_else(|| malformed_state("a row without its part number"))?;
            if let Some(bad) = tags
                .values()
                .iter()
                .find(|&&t| usize::try_from(t).map_or(true, |t| t >= expected.len()))
            {
                return Err(malformed_state(&format!("unknown part number {bad}")));
            }
            for (number, ((name, schema), range)) in (0i64..).zip(expected.iter().zip(&ranges)) {
                let mask = eq(tags, &Int64Array::new_scalar(number))?;
                if mask.true_count() == 0 {
                    continue;
                }
                let columns = batch.columns()[range.clone()]
                    .iter()
                    .map(|c| filter(c, &mask))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                let options = RecordBatchOptions::new().with_row_count(Some(mask.true_count()));
                let rows = RecordBatch::try_new_with_options(schema.clone(), columns, &options)
                    .map_err(|e| malformed_state(&format!("rows of part '{name}': {e}")))?;
                if let Some(part) = usize::try_from(number).ok().and_then(|n| parts.get_mut(n)) {
                    part.push(rows);
                }
            }
        }
        Ok(parts)
    }
}

/// Column `name` of a state batch as an array of type `T`, or an error naming
/// the column.
pub fn state_column<'a, T: datafusion::arrow::datatypes::ArrowPrimitiveType>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a datafusion::arrow::array::PrimitiveArray<T>> {
    batch
        .column_by_name(name)
        .ok_or_else(|| malformed_state(&format!("no column '{name}'")))?
        .as_primitive_opt::<T>()
        .ok_or_else(|| malformed_state(&format!("column '{name}' is not {}", T::DATA_TYPE)))
}

/// Fails, naming the first column that differs, unless a state's schema has
/// the columns of `expected` (names and types; nullability may differ).
pub fn check_schema(found: &Schema, expected: &Schema) -> Result<()> {
    for (i, wanted) in expected.fields().iter().enumerate() {
        match found.fields().get(i) {
            Some(f) if f.name() == wanted.name() && f.data_type() == wanted.data_type() => {}
            Some(f) => {
                return Err(malformed_state(&format!(
                    "column {i} is '{}' {}, expected '{}' {}",
                    f.name(),
                    f.data_type(),
                    wanted.name(),
                    wanted.data_type()
                )));
            }
            None => {
                return Err(malformed_state(&format!(
                    "no column '{}' (only {} columns)",
                    wanted.name(),
                    found.fields().len()
                )));
            }
        }
    }
    if found.fields().len() > expected.fields().len() {
        return Err(malformed_state(&format!(
            "{} columns where {} were expected",
            found.fields().len(),
            expected.fields().len()
        )));
    }
    Ok(())
}

/// Takes the entries of `pending` (staged output keyed by checkpoint id) that a
/// completed checkpoint `id` covers: every id up to and including `id`.
pub fn take_through<V>(
    pending: &mut std::collections::BTreeMap<u64, V>,
    id: u64,
) -> std::collections::BTreeMap<u64, V> {
    match id.checked_add(1) {
        Some(next) => {
            let later = pending.split_off(&next);
            std::mem::replace(pending, later)
        }
        None => std::mem::take(pending),
    }
}
