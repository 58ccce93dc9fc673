//! The `Source` trait that connectors implement.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::Result;
use crate::metrics::NodeMetrics;

/// What a source needs from the runtime while it reads.
#[derive(Debug, Clone)]
pub struct SourceContext {
    /// The source node's counters: a source adds every row it reads to `rows_in`
    /// and every malformed row it skips to `rows_rejected`.
    pub metrics: Arc<NodeMetrics>,
    /// Preferred number of rows per batch.
    pub batch_size: usize,
}

/// A reader of external data that yields Arrow batches.
#[async_trait]
pub trait Source: Send {
    /// Returns the next batch, or `None` once a bounded source is exhausted.
    /// Unbounded sources wait for data instead of returning `None`.
    async fn next_batch(&mut self, ctx: &SourceContext) -> Result<Option<RecordBatch>>;
}

/// Builds source readers and describes them for EXPLAIN.
pub trait SourceFactory: Send + Sync {
    /// The schema of the batches the source yields.
    fn schema(&self) -> SchemaRef;

    /// Lines describing the source for EXPLAIN; deterministic text only.
    fn explain(&self) -> Vec<String>;

    /// True when the source ends by itself (a file, a generator with a row count).
    fn is_bounded(&self) -> bool;

    /// Opens a reader.
    fn create(&self) -> Result<Box<dyn Source>>;
}
