//! Projections: computes the output columns of a `SELECT` list from DataFusion
//! physical expressions.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::physical_expr::PhysicalExpr;

use crate::error::Result;
use crate::operator::{Operator, OperatorFactory, Output};

/// Evaluates one expression per output column.
#[derive(Debug, Clone)]
pub struct ProjectOperator {
    exprs: Vec<(Arc<dyn PhysicalExpr>, String)>,
    schema: SchemaRef,
}

impl ProjectOperator {
    /// A projection producing `schema` from `(expression, output name)` pairs.
    pub fn new(exprs: Vec<(Arc<dyn PhysicalExpr>, String)>, schema: SchemaRef) -> Self {
        ProjectOperator { exprs, schema }
    }
}

impl Operator for ProjectOperator {
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
        let columns = self
            .exprs
            .iter()
            .map(|(e, _)| e.evaluate(&batch).and_then(|v| v.into_array(rows)))
            .collect::<datafusion::error::Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        out.batch(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &options,
        )?);
        Ok(())
    }
}

impl OperatorFactory for ProjectOperator {
    fn name(&self) -> String {
        "Project".to_string()
    }

    fn explain(&self) -> Vec<String> {
        let list = self
            .exprs
            .iter()
            .map(|(e, name)| {
                let text = e.to_string();
                if text.split('@').next() == Some(name.as_str()) {
                    text
                } else {
                    format!("{text} AS {name}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        vec![format!("exprs: [{list}]")]
    }

    fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn create(&self) -> Result<Box<dyn Operator>> {
        Ok(Box::new(self.clone()))
    }
}
