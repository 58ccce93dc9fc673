//! A sink that appends every batch to a shared vector, for tests and small
//! embedded queries.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::record_batch::RecordBatch;
use watershed_engine::EngineError;
use watershed_engine::sink::{Sink, SinkFactory};
use watershed_engine::source::Split;

use super::IDENTIFIER;
use crate::options::CONNECTOR;

/// Builds sinks that append to one shared `Vec<RecordBatch>`.
#[derive(Debug, Clone, Default)]
pub struct CollectSinkFactory {
    batches: Arc<Mutex<Vec<RecordBatch>>>,
}

impl CollectSinkFactory {
    /// A factory with an empty collection.
    pub fn new() -> Self {
        CollectSinkFactory::default()
    }

    /// A factory appending to an existing collection.
    pub fn with_target(batches: Arc<Mutex<Vec<RecordBatch>>>) -> Self {
        CollectSinkFactory { batches }
    }

    /// The shared collection.
    pub fn target(&self) -> Arc<Mutex<Vec<RecordBatch>>> {
        self.batches.clone()
    }

    /// A copy of the batches collected so far.
    pub fn batches(&self) -> Vec<RecordBatch> {
        self.batches
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

impl SinkFactory for CollectSinkFactory {
    fn accepts_changelog(&self) -> bool {
        true
    }

    fn explain(&self) -> Vec<String> {
        vec![
            format!("{CONNECTOR}={IDENTIFIER}"),
            "sink=collect".to_string(),
        ]
    }

    /// Every instance appends to the same collection, so the split is ignored;
    /// with several instances, batches of different instances interleave in
    /// arrival order.
    fn create(&self, _split: Split) -> Result<Box<dyn Sink>, EngineError> {
        Ok(Box::new(CollectSink {
            batches: self.batches.clone(),
        }))
    }
}

struct CollectSink {
    batches: Arc<Mutex<Vec<RecordBatch>>>,
}

#[async_trait]
impl Sink for CollectSink {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<(), EngineError> {
        self.batches
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(batch);
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), EngineError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Int64Array};

    #[tokio::test]
    async fn collects_batches() {
        let factory = CollectSinkFactory::new();
        let mut sink = factory.create(Split::SINGLE).unwrap();
        let a: ArrayRef = Arc::new(Int64Array::from(vec![1, 2]));
        sink.write_batch(RecordBatch::try_from_iter([("a", a)]).unwrap())
            .await
            .unwrap();
        sink.finish().await.unwrap();
        assert_eq!(factory.batches().len(), 1);
        assert_eq!(factory.target().lock().unwrap()[0].num_rows(), 2);
    }
}
