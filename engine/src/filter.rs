//! `WHERE` and `HAVING`: keeps the rows for which a DataFusion predicate is true.

use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::physical_expr::PhysicalExpr;

use crate::error::{EngineError, Result};
use crate::metrics::NodeMetrics;
use crate::operator::{Operator, OperatorFactory, Output};

/// Keeps rows whose predicate evaluates to true; NULL counts as false.
#[derive(Debug, Clone)]
pub struct FilterOperator {
    predicate: Arc<dyn PhysicalExpr>,
    schema: SchemaRef,
}

impl FilterOperator {
    /// A filter over batches of `schema`.
    pub fn new(predicate: Arc<dyn PhysicalExpr>, schema: SchemaRef) -> Self {
        FilterOperator { predicate, schema }
    }
}

impl Operator for FilterOperator {
    fn snapshot(&mut self) -> Result<Option<crate::checkpoint::OperatorState>> {
        // No state across batches.
        Ok(None)
    }

    fn restore(&mut self, _state: crate::checkpoint::OperatorState) -> Result<()> {
        Ok(())
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn on_batch(&mut self, batch: RecordBatch, out: &mut Output<'_>) -> Result<()> {
        let rows = batch.num_rows();
        let mask = self.predicate.evaluate(&batch)?.into_array(rows)?;
        let mask = mask.as_boolean_opt().ok_or_else(|| {
            EngineError::Config(format!(
                "filter predicate {} is not boolean but {}",
                self.predicate,
                mask.data_type()
            ))
        })?;
        let kept = if mask.null_count() == 0 && mask.true_count() == rows {
            batch
        } else {
            filter_record_batch(&batch, mask)?
        };
        NodeMetrics::add(&out.metrics().rows_filtered, rows - kept.num_rows());
        out.batch(kept);
        Ok(())
    }
}

impl OperatorFactory for FilterOperator {
    fn name(&self) -> String {
        "Filter".to_string()
    }

    fn explain(&self) -> Vec<String> {
        vec![format!("predicate: {}", self.predicate)]
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn create(&self) -> Result<Box<dyn Operator>> {
        Ok(Box::new(self.clone()))
    }
}
