//! The column layout of a window aggregate's output.
//!
//! A window aggregate keeps its group keys without the window columns (the
//! window is the unit of state), but the planner's schema mixes them: DataFusion
//! puts the `GROUP BY` expressions, window columns included, in query order,
//! then the aggregates. [`WindowOutput`] says which column is what, and builds a
//! fired window's batch: keys and aggregates from the accumulators, window
//! columns as constants.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, TimestampMillisecondArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};

use crate::aggregate::AggregateSpec;
use crate::error::{EngineError, Result};
use crate::time::{Timestamp, event_time_type};
use crate::window::WINDOW_COLUMNS;

/// What one output column holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowOutputColumn {
    /// `window_start`.
    WindowStart,
    /// `window_end` (exclusive).
    WindowEnd,
    /// `window_time` (`window_end - 1 ms`).
    WindowTime,
    /// The group key with this index in the spec's group expressions.
    Key(usize),
    /// The aggregate with this index in the spec's calls.
    Aggregate(usize),
}

impl WindowOutputColumn {
    /// `window_start, window_end, [window_time,] keys..., aggregates...`.
    pub fn default_layout(
        num_keys: usize,
        num_aggregates: usize,
        window_time: bool,
    ) -> Vec<WindowOutputColumn> {
        let mut columns = vec![
            WindowOutputColumn::WindowStart,
            WindowOutputColumn::WindowEnd,
        ];
        if window_time {
            columns.push(WindowOutputColumn::WindowTime);
        }
        columns.extend((0..num_keys).map(WindowOutputColumn::Key));
        columns.extend((0..num_aggregates).map(WindowOutputColumn::Aggregate));
        columns
    }
}

/// An output layout and the schema it produces.
#[derive(Debug, Clone)]
pub struct WindowOutput {
    columns: Vec<WindowOutputColumn>,
    schema: SchemaRef,
}

impl WindowOutput {
    /// A layout with the planner's schema. Values are cast to the schema's types
    /// where they differ.
    pub fn new(
        columns: Vec<WindowOutputColumn>,
        schema: SchemaRef,
        spec: &AggregateSpec,
    ) -> Result<Self> {
        if columns.len() != schema.fields().len() {
            return Err(EngineError::Config(format!(
                "window aggregate output layout has {} columns but its schema has {}",
                columns.len(),
                schema.fields().len()
            )));
        }
        for column in &columns {
            let in_range = match *column {
                WindowOutputColumn::Key(i) => i < spec.group_exprs.len(),
                WindowOutputColumn::Aggregate(i) => i < spec.calls.len(),
                _ => true,
            };
            if !in_range {
                return Err(EngineError::Config(format!(
                    "window aggregate output column {column:?} does not exist ({} keys, {} \
                     aggregates)",
                    spec.group_exprs.len(),
                    spec.calls.len()
                )));
            }
        }
        Ok(WindowOutput { columns, schema })
    }

    /// A layout whose schema is derived from the spec: window columns named as
    /// Flink names them, keys from the group schema, aggregates from their fields.
    pub fn derived(columns: Vec<WindowOutputColumn>, spec: &AggregateSpec) -> Result<Self> {
        let fields = columns
            .iter()
            .map(|column| match *column {
                WindowOutputColumn::WindowStart => window_field(0),
                WindowOutputColumn::WindowEnd => window_field(1),
                WindowOutputColumn::WindowTime => window_field(2),
                WindowOutputColumn::Key(i) => spec
                    .group_schema
                    .fields()
                    .get(i)
                    .map(|f| f.as_ref().clone())
                    .unwrap_or_else(|| window_field(0)),
                WindowOutputColumn::Aggregate(i) => spec
                    .calls
                    .get(i)
                    .map(|c| c.function.field().as_ref().clone())
                    .unwrap_or_else(|| window_field(0)),
            })
            .collect::<Vec<_>>();
        WindowOutput::new(columns, Arc::new(Schema::new(fields)), spec)
    }

    /// The output schema.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The layout.
    pub fn columns(&self) -> &[WindowOutputColumn] {
        &self.columns
    }

    /// The batch of one fired window: `rows` groups whose `keys` and
    /// `aggregates` are as the accumulators evaluated them; window columns constant.
    pub fn batch(
        &self,
        window_start: Timestamp,
        window_end: Timestamp,
        rows: usize,
        keys: &[ArrayRef],
        aggregates: &[ArrayRef],
    ) -> Result<RecordBatch> {
        let constant = |value: Timestamp| -> ArrayRef {
            Arc::new(TimestampMillisecondArray::from_value(value, rows))
        };
        let missing = || EngineError::Config("window aggregate output column missing".into());
        let columns = self
            .columns
            .iter()
            .zip(self.schema.fields())
            .map(|(column, field)| {
                let array = match *column {
                    WindowOutputColumn::WindowStart => constant(window_start),
                    WindowOutputColumn::WindowEnd => constant(window_end),
                    WindowOutputColumn::WindowTime => constant(window_end.saturating_sub(1)),
                    WindowOutputColumn::Key(i) => keys.get(i).cloned().ok_or_else(missing)?,
                    WindowOutputColumn::Aggregate(i) => {
                        aggregates.get(i).cloned().ok_or_else(missing)?
                    }
                };
                conform(array, field.data_type())
            })
            .collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &options,
        )?)
    }
}

fn window_field(i: usize) -> Field {
    Field::new(WINDOW_COLUMNS[i], event_time_type(), false)
}

fn conform(array: ArrayRef, data_type: &DataType) -> Result<ArrayRef> {
    if array.data_type() == data_type {
        Ok(array)
    } else {
        Ok(cast(&array, data_type)?)
    }
}
