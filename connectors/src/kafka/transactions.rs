//! Exactly-once delivery to Kafka: the messages of each checkpoint go out in
//! one Kafka transaction once the checkpoint is complete.
//!
//! librdkafka cannot resume another process's open transaction, which Flink's
//! two-phase commit needs after a crash. So the sink stages instead: the
//! messages written between two barriers form an *epoch*, kept in the
//! checkpoint's state; when the checkpoint completes, each staged epoch is
//! written and committed in one transaction (transactional id
//! `<prefix>-<instance>`). The same transaction commits the epoch's sequence
//! number as the offset of consumer group `<prefix>-<instance>-epochs` on the
//! topic's partition 0, so the topic and the marker change together.
//!
//! On restore, `init_transactions` with the instance's transactional id
//! aborts any transaction a crashed run left open, and the marker tells which
//! staged epochs of the checkpoint were committed before the crash: the others
//! are committed then. So each epoch is committed exactly once, and
//! `read_committed` readers see each row once. Readers with
//! `read_uncommitted` can see aborted messages, as with any Kafka transaction.
//!
//! The cost: output becomes visible only when a checkpoint completes, and the
//! checkpoint's state holds the output of its epoch.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, Int32Array, Int64Array, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Int32Type, Int64Type, Schema, UInt64Type};
use datafusion::arrow::record_batch::RecordBatch;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerGroupMetadata};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use watershed_engine::EngineError;
use watershed_engine::checkpoint::OperatorState;

use super::KafkaConfig;
use super::client::{client_config, kafka_error};
use super::messages::Message;

/// A message and the partition the partitioner picked (`None`: the client's
/// choice, by key hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    /// The partition, when the partitioner picked one.
    pub partition: Option<i32>,
    /// The message.
    pub message: Message,
}

/// The messages written between two barriers, committed together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Epoch {
    /// The checkpoint whose barrier closed the epoch.
    pub checkpoint_id: u64,
    /// The epoch's number among its writer's epochs (increasing from 1); the
    /// marker offset once committed.
    pub sequence: i64,
    /// The messages, in order.
    pub messages: Vec<Staged>,
}

/// How long the broker keeps a transaction open before aborting it.
const TRANSACTION_TIMEOUT_MS: u128 = 60_000;

/// The transactional id of instance `owner`'s writes.
pub fn transactional_id(prefix: &str, owner: usize) -> String {
    format!("{prefix}-{owner}")
}

/// The consumer group whose offset on partition 0 marks instance `owner`'s
/// last committed epoch.
pub fn marker_group(prefix: &str, owner: usize) -> String {
    format!("{prefix}-{owner}-epochs")
}

/// Where an exactly-once sink commits its epochs: one writer's transactions
/// (a Kafka transactional producer, or a test's stand-in).
pub trait EpochLog: Send {
    /// The sequence of the last epoch committed by this writer (0: none).
    fn committed(&self) -> i64;

    /// Commits `epoch` (its messages and its sequence as the new marker)
    /// atomically, unless [`EpochLog::committed`] shows it committed already.
    /// Blocking.
    fn commit(&mut self, epoch: &Epoch) -> Result<(), EngineError>;
}

/// Opens the epoch logs of an exactly-once sink's instances.
pub trait EpochLogs: Send + Sync {
    /// Opens instance `owner`'s log, aborting whatever an earlier run of that
    /// instance left uncommitted. Blocking.
    fn open(&self, owner: usize) -> Result<Box<dyn EpochLog>, EngineError>;

    /// The topic's partition count (for the fixed and round-robin
    /// partitioners). Blocking.
    fn partitions(&self) -> Result<i32, EngineError>;
}

/// The Kafka epoch logs of one table: transactional producers
/// `<prefix>-<instance>`.
pub struct KafkaEpochLogs {
    /// The table, for messages.
    pub table: String,
    /// The table's options.
    pub config: Arc<KafkaConfig>,
    /// The transactional id prefix.
    pub prefix: String,
}

impl EpochLogs for KafkaEpochLogs {
    fn open(&self, owner: usize) -> Result<Box<dyn EpochLog>, EngineError> {
        let producer = TransactionalProducer::open(&self.table, &self.config, &self.prefix, owner)?;
        Ok(Box::new(producer))
    }

    fn partitions(&self) -> Result<i32, EngineError> {
        let producer: BaseProducer = client_config(&self.config, &[])
            .create()
            .map_err(|e| kafka_error(&self.table, &self.config, "cannot connect to", e))?;
        super::client::partition_count(&self.table, &self.config, producer.client())
    }
}

/// One instance's transactional producer, ready for transactions.
pub struct TransactionalProducer {
    producer: BaseProducer,
    group: ConsumerGroupMetadata,
    /// The sequence of the last epoch committed under this id (0: none).
    committed: i64,
    table: String,
    config: Arc<KafkaConfig>,
}

impl EpochLog for TransactionalProducer {
    fn committed(&self) -> i64 {
        self.committed
    }

    /// Writes `epoch` in one transaction with its marker. A failed
    /// transaction is aborted and the error returned (the job restarts from
    /// its checkpoint, which still stages the epoch).
    fn commit(&mut self, epoch: &Epoch) -> Result<(), EngineError> {
        if epoch.sequence <= self.committed {
            return Ok(());
        }
        let result = self.write(epoch);
        if result.is_err() {
            let _ = self.producer.abort_transaction(self.config.request_timeout);
        }
        result?;
        self.committed = epoch.sequence;
        Ok(())
    }
}

impl TransactionalProducer {
    /// Opens the producer of instance `owner`: aborts any transaction an
    /// earlier run of that instance left open, and reads its marker. Blocking.
    pub fn open(
        table: &str,
        config: &Arc<KafkaConfig>,
        prefix: &str,
        owner: usize,
    ) -> Result<Self, EngineError> {
        let error = |what: &str, e: &dyn std::fmt::Display| kafka_error(table, config, what, e);
        let timeout = config.request_timeout;
        // librdkafka refuses a message timeout above the transaction timeout.
        let timeout_ms = timeout.as_millis().min(TRANSACTION_TIMEOUT_MS).to_string();
        let transaction_timeout_ms = TRANSACTION_TIMEOUT_MS.to_string();
        let id = transactional_id(prefix, owner);
        let producer: BaseProducer = client_config(
            config,
            &[
                ("transactional.id", id.as_str()),
                ("transaction.timeout.ms", transaction_timeout_ms.as_str()),
                ("message.timeout.ms", &timeout_ms),
                ("compression.type", "none"),
            ],
        )
        .create()
        .map_err(|e| error("cannot create a transactional producer of", &e))?;
        producer.init_transactions(timeout).map_err(|e| {
            error(
                &format!(
                    "cannot start transactions (transactional id '{id}'; does the broker \
                     support Kafka transactions?) for"
                ),
                &e,
            )
        })?;
        let group_id = marker_group(prefix, owner);
        let consumer: BaseConsumer = client_config(
            config,
            &[
                ("isolation.level", "read_committed"),
                ("enable.auto.commit", "false"),
            ],
        )
        .set("group.id", &group_id)
        .create()
        .map_err(|e| error("cannot create a marker reader of", &e))?;
        let group = consumer.group_metadata().ok_or_else(|| {
            error(
                "no group metadata for",
                &format!("consumer group '{group_id}'"),
            )
        })?;
        let mut partitions = TopicPartitionList::new();
        partitions.add_partition(&config.topic, 0);
        let committed = consumer
            .committed_offsets(partitions, timeout)
            .map_err(|e| {
                error(
                    &format!("cannot read the epoch marker (group '{group_id}') of"),
                    &e,
                )
            })?
            .find_partition(&config.topic, 0)
            .and_then(|p| match p.offset() {
                Offset::Offset(sequence) => Some(sequence),
                _ => None,
            })
            .unwrap_or(0);
        Ok(TransactionalProducer {
            producer,
            group,
            committed,
            table: table.to_string(),
            config: config.clone(),
        })
    }

    fn write(&self, epoch: &Epoch) -> Result<(), EngineError> {
        let error = |what: &str, e: KafkaError| kafka_error(&self.table, &self.config, what, e);
        let timeout = self.config.request_timeout;
        self.producer
            .begin_transaction()
            .map_err(|e| error("cannot begin a transaction on", e))?;
        for staged in &epoch.messages {
            loop {
                let mut record = BaseRecord::<[u8], [u8]>::to(&self.config.topic);
                if let Some(value) = &staged.message.value {
                    record = record.payload(value);
                }
                if let Some(key) = &staged.message.key {
                    record = record.key(key);
                }
                if let Some(partition) = staged.partition {
                    record = record.partition(partition);
                }
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        self.producer.poll(Duration::from_millis(50));
                    }
                    Err((e, _)) => return Err(error("cannot send to", e)),
                }
            }
        }
        let mut marker = TopicPartitionList::new();
        marker
            .add_partition_offset(&self.config.topic, 0, Offset::Offset(epoch.sequence))
            .map_err(|e| error("cannot mark an epoch of", e))?;
        self.producer
            .send_offsets_to_transaction(&marker, &self.group, timeout)
            .map_err(|e| error("cannot mark an epoch in a transaction on", e))?;
        self.producer
            .commit_transaction(timeout)
            .map_err(|e| error("cannot commit a transaction on", e))
    }
}

/// The schema of the staged epochs in a checkpoint.
fn state_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("sequence", DataType::Int64, false),
        Field::new("checkpoint_id", DataType::UInt64, false),
        Field::new("partition", DataType::Int32, true),
        Field::new("key", DataType::Binary, true),
        Field::new("value", DataType::Binary, true),
    ]))
}

/// The staged epochs as checkpoint state (one row per message; an epoch
/// without messages is never staged).
pub fn epochs_state(epochs: &VecDeque<Epoch>) -> Result<OperatorState, EngineError> {
    let rows = epochs.iter().flat_map(|e| {
        e.messages
            .iter()
            .map(move |m| (e.sequence, e.checkpoint_id, m))
    });
    let (mut sequences, mut checkpoints, mut partitions, mut keys, mut values) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (sequence, checkpoint, staged) in rows {
        sequences.push(sequence);
        checkpoints.push(checkpoint);
        partitions.push(staged.partition);
        keys.push(staged.message.key.as_deref());
        values.push(staged.message.value.as_deref());
    }
    let schema = state_schema();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(sequences)),
        Arc::new(UInt64Array::from(checkpoints)),
        Arc::new(Int32Array::from(partitions)),
        Arc::new(BinaryArray::from_iter(keys)),
        Arc::new(BinaryArray::from_iter(values)),
    ];
    let batch = RecordBatch::try_new(schema.clone(), columns)?;
    Ok(OperatorState {
        schema,
        batches: vec![batch],
    })
}

/// The staged epochs of a checkpoint's state, in sequence order.
pub fn restore_epochs(state: &OperatorState) -> Result<Vec<Epoch>, EngineError> {
    let mut epochs: Vec<Epoch> = Vec::new();
    for batch in &state.batches {
        if batch.schema().fields() != state_schema().fields() {
            return Err(EngineError::Config(format!(
                "the Kafka sink's checkpoint state has columns {:?}, not the staged epochs \
                 this version writes",
                batch.schema().fields()
            )));
        }
        let sequences = batch.column(0).as_primitive::<Int64Type>();
        let checkpoints = batch.column(1).as_primitive::<UInt64Type>();
        let partitions = batch.column(2).as_primitive::<Int32Type>();
        let keys = batch.column(3).as_binary::<i32>();
        let values = batch.column(4).as_binary::<i32>();
        for row in 0..batch.num_rows() {
            let bytes = |a: &BinaryArray| (!a.is_null(row)).then(|| a.value(row).to_vec());
            let staged = Staged {
                partition: (!partitions.is_null(row)).then(|| partitions.value(row)),
                message: Message {
                    key: bytes(keys),
                    value: bytes(values),
                },
            };
            let sequence = sequences.value(row);
            match epochs.iter_mut().find(|e| e.sequence == sequence) {
                Some(epoch) => epoch.messages.push(staged),
                None => epochs.push(Epoch {
                    checkpoint_id: checkpoints.value(row),
                    sequence,
                    messages: vec![staged],
                }),
            }
        }
    }
    epochs.sort_by_key(|e| e.sequence);
    Ok(epochs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch(
        sequence: i64,
        checkpoint_id: u64,
        messages: &[(Option<i32>, &str, Option<&str>)],
    ) -> Epoch {
        Epoch {
            checkpoint_id,
            sequence,
            messages: messages
                .iter()
                .map(|(partition, key, value)| Staged {
                    partition: *partition,
                    message: Message {
                        key: Some(key.as_bytes().to_vec()),
                        value: value.map(|v| v.as_bytes().to_vec()),
                    },
                })
                .collect(),
        }
    }

    #[test]
    fn staged_epochs_round_trip_through_checkpoint_state() {
        let epochs = VecDeque::from(vec![
            epoch(3, 7, &[(Some(1), "a", Some("1")), (None, "b", None)]),
            epoch(4, 9, &[(None, "a", Some("2"))]),
        ]);
        let state = epochs_state(&epochs).unwrap();
        assert_eq!(state.num_rows(), 3);
        assert_eq!(restore_epochs(&state).unwrap(), Vec::from(epochs));
        let empty = epochs_state(&VecDeque::new()).unwrap();
        assert!(restore_epochs(&empty).unwrap().is_empty());
    }

    #[test]
    fn ids_name_the_prefix_and_instance() {
        assert_eq!(transactional_id("risk", 2), "risk-2");
        assert_eq!(marker_group("risk", 2), "risk-2-epochs");
    }
}
