//! The `Sink` trait that connectors implement.

use async_trait::async_trait;
use datafusion::arrow::record_batch::RecordBatch;

use crate::error::Result;

/// A writer of result batches to an external system.
#[async_trait]
pub trait Sink: Send {
    /// Writes one batch.
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()>;

    /// The input is finished: flush and make all output visible.
    async fn finish(&mut self) -> Result<()>;
}

/// What kind of changes a sink can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkMode {
    /// Only inserts (every windowed aggregate and filter query produces these).
    AppendOnly,
}

/// Builds sink writers and describes them for EXPLAIN.
pub trait SinkFactory: Send + Sync {
    /// Lines describing the sink for EXPLAIN; deterministic text only.
    fn explain(&self) -> Vec<String>;

    /// True when the sink takes a changelog (`+I`/`-U`/`+U`/`-D` rows with a
    /// `__row_kind` column, from updating queries). Append-only sinks say no, and
    /// the planner refuses updating queries into them.
    fn accepts_changelog(&self) -> bool {
        false
    }

    /// For a sink that refuses changelogs but could take one when configured
    /// differently: what to change (e.g. an option to set), quoted by the
    /// planner when it refuses an updating query. `None` by default.
    fn changelog_hint(&self) -> Option<String> {
        None
    }

    /// Opens the writer of one parallel instance (instances must not overwrite
    /// each other's output, e.g. part files carry the instance index).
    fn create(&self, split: crate::source::Split) -> Result<Box<dyn Sink>>;
}
