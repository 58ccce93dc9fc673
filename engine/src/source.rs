//! The `Source` trait that connectors implement.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;

use crate::checkpoint::{OperatorState, checkpoints_unsupported};
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
    /// The table's idle timeout (`scan.watermark.idle-timeout`), when set: a
    /// source tracking partitions inside a split leaves out of its watermark
    /// those silent for this long.
    pub idle_timeout: Option<std::time::Duration>,
}

/// A reader of external data that yields Arrow batches.
#[async_trait]
pub trait Source: Send {
    /// Returns the next batch, or `None` once a bounded source is exhausted.
    /// A source waiting for data returns an empty batch now and then (every
    /// 100 ms, say) rather than waiting indefinitely, so that checkpoint
    /// barriers are not held up and the split can be declared idle.
    async fn next_batch(&mut self, ctx: &SourceContext) -> Result<Option<RecordBatch>>;

    /// The split's read position for a checkpoint, taken between two batches.
    /// The default says the source cannot take part in checkpoints.
    fn snapshot(&self) -> Result<OperatorState> {
        Err(checkpoints_unsupported("this source"))
    }

    /// Moves a fresh split to a position [`Source::snapshot`] took: the next
    /// batch is the one that followed the snapshot.
    fn restore(&mut self, state: OperatorState) -> Result<()> {
        let _ = state;
        Err(checkpoints_unsupported("this source"))
    }
}

/// Which parallel instance of a node is being created, out of how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Split {
    /// This instance, `0..count`.
    pub index: usize,
    /// Number of parallel instances.
    pub count: usize,
}

impl Split {
    /// The only instance of a node with parallelism 1.
    pub const SINGLE: Split = Split { index: 0, count: 1 };

    /// True when item number `i` of a round-robin assignment belongs to this split.
    pub fn owns(&self, i: usize) -> bool {
        self.count <= 1 || i % self.count == self.index
    }
}

/// Builds source readers and describes them for EXPLAIN.
pub trait SourceFactory: Send + Sync {
    /// The schema of the batches the source yields.
    fn schema(&self) -> SchemaRef;

    /// Lines describing the source for EXPLAIN; deterministic text only.
    fn explain(&self) -> Vec<String>;

    /// True when the source ends by itself (a file, a generator with a row count).
    fn is_bounded(&self) -> bool;

    /// Opens the reader of one split: with parallelism `n`, the `n` splits together
    /// read every row exactly once.
    fn create(&self, split: Split) -> Result<Box<dyn Source>>;

    /// The same source yielding only `columns` (ascending indexes into
    /// [`SourceFactory::schema`]), when producing fewer columns saves it work;
    /// `None`, the default, when it yields whole rows regardless. The planner
    /// asks with the columns a query reads (projection pushdown): a generator
    /// then skips the text it would have made for nothing. The rows, their
    /// order and the checkpointed position must be those of the whole source.
    fn with_columns(&self, _columns: &[usize]) -> Result<Option<Arc<dyn SourceFactory>>> {
        Ok(None)
    }
}
