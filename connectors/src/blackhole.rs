//! The `blackhole` sink (`'connector' = 'blackhole'`): accepts and discards
//! every batch, for benchmarks and for jobs run only for their metrics.

use async_trait::async_trait;
use datafusion::arrow::record_batch::RecordBatch;
use watershed_engine::EngineError;
use watershed_engine::connector::TableSpec;
use watershed_engine::sink::{Sink, SinkFactory};
use watershed_engine::source::Split;

use crate::options::{CONNECTOR, TableOptions};

/// The connector's name in `'connector' = '...'`.
pub const IDENTIFIER: &str = "blackhole";

/// Builds sinks that discard their input.
#[derive(Debug, Clone, Copy, Default)]
pub struct BlackholeSinkFactory;

impl BlackholeSinkFactory {
    /// From a table's options (only `'connector'` is accepted).
    pub fn new(table: &TableSpec) -> Result<Self, EngineError> {
        TableOptions::from_spec(table).check_known(IDENTIFIER, &[CONNECTOR])?;
        Ok(BlackholeSinkFactory)
    }
}

impl SinkFactory for BlackholeSinkFactory {
    fn accepts_changelog(&self) -> bool {
        true
    }

    fn explain(&self) -> Vec<String> {
        vec![format!("{CONNECTOR}={IDENTIFIER}")]
    }

    /// Every instance discards its input, so the split is ignored.
    fn create(&self, _split: Split) -> Result<Box<dyn Sink>, EngineError> {
        Ok(Box::new(BlackholeSink))
    }
}

struct BlackholeSink;

#[async_trait]
impl Sink for BlackholeSink {
    async fn write_batch(&mut self, _batch: RecordBatch) -> Result<(), EngineError> {
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), EngineError> {
        Ok(())
    }

    async fn prepare_checkpoint(
        &mut self,
        _checkpoint_id: u64,
    ) -> Result<Option<watershed_engine::checkpoint::OperatorState>, EngineError> {
        Ok(None)
    }

    async fn restore(
        &mut self,
        _state: Option<watershed_engine::checkpoint::OperatorState>,
    ) -> Result<(), EngineError> {
        Ok(())
    }

    async fn restore_rescaled(
        &mut self,
        _rescaled: watershed_engine::checkpoint::Rescaled,
    ) -> Result<(), EngineError> {
        Ok(())
    }
}
