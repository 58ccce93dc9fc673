//! A sink that appends every batch to a shared vector, for tests and small
//! embedded queries.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::record_batch::RecordBatch;
use watershed_engine::EngineError;
use watershed_engine::checkpoint::{OperatorState, Rescaled};
use watershed_engine::sink::{Sink, SinkFactory};
use watershed_engine::source::Split;

use super::IDENTIFIER;
use crate::options::CONNECTOR;

/// Builds sinks that append to one shared `Vec<RecordBatch>`.
#[derive(Debug, Clone, Default)]
pub struct CollectSinkFactory {
    batches: Arc<Mutex<Vec<RecordBatch>>>,
    committed: Arc<Mutex<HashSet<(usize, u64)>>>,
}

impl CollectSinkFactory {
    /// A factory with an empty collection.
    pub fn new() -> Self {
        CollectSinkFactory::default()
    }

    /// A factory appending to an existing collection.
    pub fn with_target(batches: Arc<Mutex<Vec<RecordBatch>>>) -> Self {
        CollectSinkFactory {
            batches,
            committed: Arc::default(),
        }
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
    fn create(&self, split: Split) -> Result<Box<dyn Sink>, EngineError> {
        Ok(Box::new(CollectSink {
            batches: self.batches.clone(),
            committed: self.committed.clone(),
            instance: split.index,
            staging: None,
        }))
    }
}

/// With checkpoints, a collect sink is exactly-once within its process: batches
/// are staged per checkpoint and appended when the checkpoint completes, and a
/// checkpoint's batches travel in its state, so a restore appends them if the
/// completion notice never arrived.
struct CollectSink {
    batches: Arc<Mutex<Vec<RecordBatch>>>,
    /// (instance, checkpoint) pairs already appended, shared by restarts.
    committed: Arc<Mutex<HashSet<(usize, u64)>>>,
    instance: usize,
    /// `Some` once the job runs with checkpoints.
    staging: Option<Staging>,
}

#[derive(Default)]
struct Staging {
    /// Written since the last barrier.
    open: Vec<RecordBatch>,
    /// Staged per checkpoint, waiting for its completion.
    pending: BTreeMap<u64, Vec<RecordBatch>>,
}

/// Schema metadata key holding the checkpoint id of each batch of a collect
/// sink's state (comma-separated, in batch order).
const CHECKPOINT_KEY: &str = "watershed.collect.checkpoint";

impl CollectSink {
    fn append(&self, checkpoint: Option<u64>, batches: Vec<RecordBatch>) {
        self.append_as(self.instance, checkpoint, batches);
    }

    /// Appends output instance `instance` staged for `checkpoint`, unless that
    /// instance's output for it was appended already.
    fn append_as(&self, instance: usize, checkpoint: Option<u64>, batches: Vec<RecordBatch>) {
        if let Some(id) = checkpoint {
            let mut committed = lock(&self.committed);
            if !committed.insert((instance, id)) {
                return;
            }
        }
        lock(&self.batches).extend(batches);
    }

    /// Appends every checkpoint's output a restored state of instance
    /// `instance` holds (once: see [`CollectSink::append_as`]).
    fn append_restored(&self, instance: usize, state: OperatorState) -> Result<(), EngineError> {
        let bad = || EngineError::Config("collect sink state without its checkpoint ids".into());
        let ids: Vec<u64> = state
            .schema
            .metadata()
            .get(CHECKPOINT_KEY)
            .ok_or_else(bad)?
            .split(',')
            .map(|id| id.parse().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        if ids.len() != state.batches.len() {
            return Err(bad());
        }
        let mut by_checkpoint: BTreeMap<u64, Vec<RecordBatch>> = BTreeMap::new();
        for (id, batch) in ids.into_iter().zip(state.batches) {
            by_checkpoint.entry(id).or_default().push(batch);
        }
        for (id, batches) in by_checkpoint {
            self.append_as(instance, Some(id), batches);
        }
        Ok(())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[async_trait]
impl Sink for CollectSink {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<(), EngineError> {
        match &mut self.staging {
            Some(staging) => staging.open.push(batch),
            None => lock(&self.batches).push(batch),
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), EngineError> {
        if let Some(staging) = self.staging.take() {
            for (id, batches) in staging.pending {
                self.append(Some(id), batches);
            }
            self.append(None, staging.open);
        }
        Ok(())
    }

    async fn prepare_checkpoint(
        &mut self,
        checkpoint_id: u64,
    ) -> Result<Option<OperatorState>, EngineError> {
        let Some(staging) = self.staging.as_mut() else {
            return Ok(None);
        };
        let open = std::mem::take(&mut staging.open);
        if !open.is_empty() {
            staging.pending.insert(checkpoint_id, open);
        }
        // Every batch not yet appended, with its checkpoint: an earlier
        // checkpoint's completion notice may not have been handled yet.
        let tagged: Vec<(u64, &RecordBatch)> = staging
            .pending
            .iter()
            .flat_map(|(id, batches)| batches.iter().map(move |b| (*id, b)))
            .collect();
        let Some((_, first)) = tagged.first() else {
            return Ok(None);
        };
        let ids: Vec<String> = tagged.iter().map(|(id, _)| id.to_string()).collect();
        let metadata = HashMap::from([(CHECKPOINT_KEY.to_string(), ids.join(","))]);
        let schema = Arc::new(first.schema().as_ref().clone().with_metadata(metadata));
        let batches = tagged
            .iter()
            .map(|(_, b)| RecordBatch::try_new(schema.clone(), b.columns().to_vec()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(OperatorState { schema, batches }))
    }

    async fn commit_checkpoint(&mut self, checkpoint_id: u64) -> Result<(), EngineError> {
        let Some(staging) = self.staging.as_mut() else {
            return Ok(());
        };
        let due = watershed_engine::checkpoint::take_through(&mut staging.pending, checkpoint_id);
        for (id, batches) in due {
            self.append(Some(id), batches);
        }
        Ok(())
    }

    async fn restore(&mut self, state: Option<OperatorState>) -> Result<(), EngineError> {
        self.staging = Some(Staging::default());
        match state {
            Some(state) => self.append_restored(self.instance, state),
            None => Ok(()),
        }
    }

    async fn restore_rescaled(&mut self, rescaled: Rescaled) -> Result<(), EngineError> {
        self.staging = Some(Staging::default());
        for (old, state) in rescaled.inherited() {
            self.append_restored(*old, state.clone())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, AsArray, Int64Array};
    use datafusion::arrow::datatypes::Int64Type;

    #[tokio::test]
    async fn with_checkpoints_a_restore_appends_every_uncommitted_batch_once() {
        let factory = CollectSinkFactory::new();
        let batch = |v: i64| {
            let a: ArrayRef = Arc::new(Int64Array::from(vec![v]));
            RecordBatch::try_from_iter([("a", a)]).unwrap()
        };
        let mut sink = factory.create(Split::SINGLE).unwrap();
        sink.restore(None).await.unwrap();
        sink.write_batch(batch(1)).await.unwrap();
        sink.prepare_checkpoint(1).await.unwrap();
        sink.write_batch(batch(2)).await.unwrap();
        // Checkpoint 1 completed but its notice was not handled before 2.
        let state = sink.prepare_checkpoint(2).await.unwrap();
        sink.write_batch(batch(3)).await.unwrap();
        drop(sink);
        assert!(factory.batches().is_empty(), "nothing committed yet");

        for _ in 0..2 {
            let mut restored = factory.create(Split::SINGLE).unwrap();
            restored.restore(state.clone()).await.unwrap();
        }
        let values: Vec<i64> = factory
            .batches()
            .iter()
            .map(|b| b.column(0).as_primitive::<Int64Type>().value(0))
            .collect();
        assert_eq!(values, vec![1, 2], "both checkpoints' batches, once");
    }

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
