//! Moving messages between tasks: the envelope on every channel and the routing of
//! a task's output over its outgoing edges (forward, hash by key group, broadcast).

use datafusion::arrow::array::{ArrayRef, BooleanArray, UInt32Array};
use datafusion::arrow::buffer::BooleanBuffer;
use datafusion::arrow::compute::{FilterBuilder, take_record_batch};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::hash_utils::{RandomState, create_hashes};
use tokio::sync::mpsc;

use crate::error::{EngineError, Result};
use crate::message::Message;

/// Keys hash into this many key groups; a key group is the unit of keyed state
/// that moves between instances when parallelism changes (as in Flink).
pub const MAX_KEY_GROUPS: usize = 128;

/// A message with where it came from: the input number at the receiving node and
/// the sending instance (for per-channel watermarks and end-of-input).
#[derive(Debug)]
pub struct Envelope {
    /// Input number of the receiving node (0 for single-input nodes).
    pub input: usize,
    /// Index of the sender among the senders of that input.
    pub sender: usize,
    /// The message.
    pub message: Message,
}

/// How an outgoing edge distributes batches.
#[derive(Debug, Clone)]
pub enum Routing {
    /// To the single target (same instance index downstream).
    Forward,
    /// By hash of these columns, through key groups, to one target per row.
    Hash(Vec<usize>),
    /// A copy to every target.
    Broadcast,
}

/// One outgoing edge of a task.
pub struct OutputEdge {
    /// How batches are distributed.
    pub routing: Routing,
    /// Channels of the downstream instances, by instance index.
    pub targets: Vec<mpsc::Sender<Envelope>>,
    /// The input number at the downstream node.
    pub input: usize,
    /// This task's index among the senders of that input.
    pub sender: usize,
}

/// The key group of a hash.
pub fn key_group(hash: u64) -> usize {
    (hash % MAX_KEY_GROUPS as u64) as usize
}

/// The instance, out of `parallelism`, that owns a key group.
pub fn instance_of(key_group: usize, parallelism: usize) -> usize {
    key_group * parallelism / MAX_KEY_GROUPS
}

/// The key group of each of `rows` rows with key `columns` (no columns: every
/// row in the same group). The one place keys are hashed: the exchange routes
/// by it and a restore at another parallelism splits keyed state by it.
pub fn key_groups_of(columns: &[ArrayRef], rows: usize) -> Result<Vec<usize>> {
    let mut hashes = vec![0u64; rows];
    create_hashes(columns, &RandomState::with_seed(0), &mut hashes)?;
    Ok(hashes.into_iter().map(key_group).collect())
}

/// Up to this many targets, a batch is split with one filter mask per target
/// (Arrow's filter kernel, prepared once per mask, beats `take` with index
/// lists); beyond it, with one `take` per target.
const MASK_SPLIT_MAX_TARGETS: usize = 4;

/// Splits a batch by the hash of `keys` into one batch per target instance,
/// keeping the rows' order within each. A target that gets every row gets the
/// batch itself (no copy).
pub fn partition_by_hash(
    batch: &RecordBatch,
    keys: &[usize],
    targets: usize,
) -> Result<Vec<Option<RecordBatch>>> {
    let rows = batch.num_rows();
    let columns: Vec<ArrayRef> = keys.iter().map(|&k| batch.column(k).clone()).collect();
    let owners: Vec<usize> = key_groups_of(&columns, rows)?
        .into_iter()
        .map(|group| instance_of(group, targets))
        .collect();
    if targets <= MASK_SPLIT_MAX_TARGETS {
        return (0..targets)
            .map(|target| {
                let mask =
                    BooleanArray::from(BooleanBuffer::collect_bool(rows, |i| owners[i] == target));
                match mask.true_count() {
                    0 => Ok(None),
                    n if n == rows => Ok(Some(batch.clone())),
                    _ => Ok(Some(
                        FilterBuilder::new(&mask)
                            .optimize()
                            .build()
                            .filter_record_batch(batch)?,
                    )),
                }
            })
            .collect();
    }
    let mut indices: Vec<Vec<u32>> = vec![Vec::new(); targets];
    for (row, &owner) in owners.iter().enumerate() {
        indices[owner].push(row as u32);
    }
    indices
        .into_iter()
        .map(|rows| {
            if rows.is_empty() {
                Ok(None)
            } else {
                Ok(Some(take_record_batch(batch, &UInt32Array::from(rows))?))
            }
        })
        .collect()
}

impl OutputEdge {
    async fn send(&self, target: usize, message: Message) -> Result<()> {
        let envelope = Envelope {
            input: self.input,
            sender: self.sender,
            message,
        };
        self.targets[target]
            .send(envelope)
            .await
            .map_err(|_| EngineError::ChannelClosed)
    }

    /// Sends a message along this edge: batches by the edge's routing, control
    /// messages (watermarks, barriers, end) to every target.
    pub async fn route(&self, message: &Message) -> Result<()> {
        match (message, &self.routing) {
            (Message::Batch(batch), Routing::Forward) => {
                self.send(0, Message::Batch(batch.clone())).await
            }
            (Message::Batch(batch), Routing::Hash(keys)) if self.targets.len() > 1 => {
                for (target, part) in partition_by_hash(batch, keys, self.targets.len())?
                    .into_iter()
                    .enumerate()
                {
                    if let Some(part) = part {
                        self.send(target, Message::Batch(part)).await?;
                    }
                }
                Ok(())
            }
            (message, _) => {
                for target in 0..self.targets.len() {
                    self.send(target, message.clone()).await?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{AsArray, Int64Array};
    use datafusion::arrow::datatypes::{DataType, Field, Int64Type, Schema};
    use std::sync::Arc;

    #[test]
    fn hash_partitioning_keeps_equal_keys_together_in_order_and_loses_nothing() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("row", DataType::Int64, false),
        ]));
        let keys: Vec<i64> = (0..1000).map(|i| i % 37).collect();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(keys.clone())),
                Arc::new(Int64Array::from((0..1000).collect::<Vec<i64>>())),
            ],
        )
        .unwrap();
        // 3 targets split with masks, 8 with index lists.
        for targets in [3, 8] {
            let parts = partition_by_hash(&batch, &[0], targets).unwrap();
            assert_eq!(parts.len(), targets);
            let mut seen = std::collections::HashMap::new();
            let mut total = 0;
            for (target, part) in parts.iter().enumerate() {
                let Some(part) = part else { continue };
                let rows = part.column(1).as_primitive::<Int64Type>().values();
                assert!(rows.windows(2).all(|w| w[0] < w[1]), "order kept");
                for (&k, &row) in part
                    .column(0)
                    .as_primitive::<Int64Type>()
                    .values()
                    .iter()
                    .zip(rows.iter())
                {
                    assert_eq!(*seen.entry(k).or_insert(target), target, "key {k} split");
                    assert_eq!(keys[row as usize], k);
                    total += 1;
                }
            }
            assert_eq!(total, 1000);
            assert_eq!(seen.len(), 37);
        }
    }

    #[test]
    fn a_target_that_gets_every_row_gets_the_batch_itself() {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![5; 100]))]).unwrap();
        let parts = partition_by_hash(&batch, &[0], 2).unwrap();
        let full: Vec<&RecordBatch> = parts.iter().flatten().collect();
        assert_eq!(full.len(), 1);
        assert_eq!(full[0].num_rows(), 100);
    }
}
