//! The `Sink` trait that connectors implement.

use async_trait::async_trait;
use datafusion::arrow::record_batch::RecordBatch;

use crate::checkpoint::{OperatorState, Rescaled, checkpoints_unsupported};
use crate::error::Result;

/// A writer of result batches to an external system.
#[async_trait]
pub trait Sink: Send {
    /// Writes one batch.
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()>;

    /// The input is finished: flush and make all output visible.
    async fn finish(&mut self) -> Result<()>;

    /// A barrier of checkpoint `checkpoint_id` has arrived on every input:
    /// everything written before it must be durable (staged, not yet visible)
    /// once this returns, and the state returned goes into the checkpoint. The
    /// default says the sink cannot take part in checkpoints.
    async fn prepare_checkpoint(&mut self, checkpoint_id: u64) -> Result<Option<OperatorState>> {
        let _ = checkpoint_id;
        Err(checkpoints_unsupported("this sink"))
    }

    /// Checkpoint `checkpoint_id` is complete: make what was staged up to its
    /// barrier visible. Called in order of ids; may skip ids.
    async fn commit_checkpoint(&mut self, checkpoint_id: u64) -> Result<()> {
        let _ = checkpoint_id;
        Ok(())
    }

    /// Restores a fresh instance from its state in a checkpoint: output staged
    /// after that checkpoint is discarded, output it covers is committed.
    async fn restore(&mut self, state: Option<OperatorState>) -> Result<()> {
        let _ = state;
        Err(checkpoints_unsupported("this sink"))
    }

    /// Restores a fresh instance from a checkpoint taken at another
    /// parallelism: the instance takes over the old instances
    /// [`Rescaled::inherited_instances`] names (committing what their states
    /// cover, discarding what they staged later). The default refuses.
    async fn restore_rescaled(&mut self, rescaled: Rescaled) -> Result<()> {
        Err(rescaled.unsupported("this sink"))
    }
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
