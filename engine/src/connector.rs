//! The seam between the SQL catalog and connectors: a table's name, schema and
//! `WITH (...)` options go in, a source or sink factory comes out.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;

use crate::error::Result;
use crate::sink::SinkFactory;
use crate::source::SourceFactory;

/// A table as a connector sees it.
#[derive(Debug, Clone)]
pub struct TableSpec {
    /// The table's name in the catalog.
    pub name: String,
    /// The table's physical columns.
    pub schema: SchemaRef,
    /// The `WITH (...)` options, keys as written.
    pub options: BTreeMap<String, String>,
    /// The column that carries event time, when the table declares a watermark.
    pub time_column: Option<String>,
    /// The `PRIMARY KEY (...) NOT ENFORCED` columns, in declaration order; empty
    /// when the table declares none. Not enforced: the query writing the table
    /// vouches that the key is unique, and upsert sinks key their changes by it.
    pub primary_key: Vec<String>,
}

/// Turns table specs into sources and sinks.
pub trait ConnectorRegistry: Send + Sync {
    /// Builds a source for a table that is read from.
    fn source(&self, table: &TableSpec) -> Result<Arc<dyn SourceFactory>>;

    /// Builds a sink for a table that is written to.
    fn sink(&self, table: &TableSpec) -> Result<Arc<dyn SinkFactory>>;
}
