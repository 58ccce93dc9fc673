//! The state an operator, source split or sink instance puts into a checkpoint.

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::EngineError;

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
    pub fn tagged_batches(batches: Vec<RecordBatch>) -> crate::error::Result<Self> {
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use std::sync::Arc;
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
    pub fn with_watermark(
        mut self,
        watermark: crate::time::Timestamp,
    ) -> crate::error::Result<Self> {
        let mut metadata = self.schema.metadata().clone();
        metadata.insert(WATERMARK_KEY.into(), watermark.to_string());
        let schema = std::sync::Arc::new(self.schema.as_ref().clone().with_metadata(metadata));
        self.batches = self
            .batches
            .into_iter()
            .map(|b| b.with_schema(schema.clone()))
            .collect::<std::result::Result<_, _>>()?;
        self.schema = schema;
        Ok(self)
    }

    /// The watermark [`OperatorState::with_watermark`] stored.
    pub fn watermark(&self) -> crate::error::Result<crate::time::Timestamp> {
        self.schema
            .metadata()
            .get(WATERMARK_KEY)
            .and_then(|w| w.parse().ok())
            .ok_or_else(|| EngineError::Config("checkpoint state without its watermark".into()))
    }

    /// A one-row state of named integer counters (a source split's read
    /// position, say).
    pub fn counters(values: &[(&str, i64)]) -> crate::error::Result<Self> {
        use datafusion::arrow::array::{ArrayRef, Int64Array};
        use datafusion::arrow::datatypes::{DataType, Field, Schema};
        use std::sync::Arc;
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
    pub fn counter(&self, name: &str) -> crate::error::Result<i64> {
        use datafusion::arrow::array::{Array, AsArray};
        use datafusion::arrow::datatypes::Int64Type;
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
