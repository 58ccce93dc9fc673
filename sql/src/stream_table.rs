//! The DataFusion face of a catalog table: a `TableProvider` that gives
//! DataFusion's SQL planner and optimizer a schema to work with. It is never
//! scanned by DataFusion; the streaming planner finds it in the logical plan and
//! puts the table's source (and its watermark and window assigners) there.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use watershed_engine::window::TumbleAssigner;

use crate::catalog::TableDef;
use crate::window_tvf::WindowTvf;

/// A catalog table, optionally seen through a window TVF.
#[derive(Debug, Clone)]
pub struct StreamTable {
    /// The table.
    pub table: Arc<TableDef>,
    /// The window TVF applied to it, if any.
    pub window: Option<WindowTvf>,
    schema: SchemaRef,
}

impl StreamTable {
    /// The table as written, without a window.
    pub fn plain(table: Arc<TableDef>) -> Self {
        let schema = table.schema.clone();
        StreamTable {
            table,
            window: None,
            schema,
        }
    }

    /// The table with the window columns of `window` appended.
    pub fn windowed(table: Arc<TableDef>, window: WindowTvf) -> Self {
        let schema = TumbleAssigner::output_schema_for(&table.schema);
        StreamTable {
            table,
            window: Some(window),
            schema,
        }
    }

    /// Finds the `StreamTable` behind a DataFusion table provider.
    pub fn downcast(provider: &dyn TableProvider) -> Option<&StreamTable> {
        (provider as &dyn Any).downcast_ref::<StreamTable>()
    }
}

#[async_trait]
impl TableProvider for StreamTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        Err(DataFusionError::NotImplemented(format!(
            "table '{}' is a streaming table; run queries over it with Watershed",
            self.table.name
        )))
    }
}
