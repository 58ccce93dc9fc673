//! The Kafka sink: one message per row, the value in the table's format and,
//! with `key.fields` (or, for `upsert-kafka`, the primary key), the key in
//! `key.format` ([`super::messages`]).
//!
//! Delivery: with `none` and `at-least-once` (the default) messages are handed
//! to librdkafka as rows arrive; with `at-least-once` every checkpoint, and the
//! end of the input, waits until the broker has acknowledged every message
//! sent before it, so a completed checkpoint never covers a message that could
//! still be lost (after a restore, messages sent after the checkpoint are sent
//! again). With `exactly-once` messages are staged per checkpoint and committed
//! in Kafka transactions when it completes ([`super::transactions`]). A
//! delivery failure fails the job, naming the topic.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use watershed_engine::EngineError;
use watershed_engine::checkpoint::{OperatorState, Rescaled};
use watershed_engine::connector::TableSpec;
use watershed_engine::sink::{Sink, SinkFactory};
use watershed_engine::source::Split;

use super::client::{client_config, kafka_error, partition_count};
use super::messages::{Message, MessageEncoder};
use super::transactions::{
    Epoch, EpochLog, EpochLogs, KafkaEpochLogs, Staged, epochs_state, restore_epochs,
};
use super::{DeliveryGuarantee, KafkaConfig, MessageFormat, Partitioner};
use crate::explain::explain_options;
use crate::format::types::ColumnType;
use crate::options::TableOptions;

/// Messages awaiting the broker's acknowledgement before the sink stops
/// sending and waits for the oldest.
const MAX_IN_FLIGHT: usize = 100_000;

/// Builds writers of a Kafka table.
#[derive(Debug, Clone)]
pub struct KafkaSinkFactory {
    table: String,
    schema: SchemaRef,
    config: Arc<KafkaConfig>,
    /// Positions of the key columns in the table's schema.
    key_columns: Vec<usize>,
    explain: Vec<String>,
}

impl KafkaSinkFactory {
    /// Validates the table's options and key columns.
    pub fn new(table: &TableSpec) -> Result<Self, EngineError> {
        let options = TableOptions::from_spec(table);
        let config = KafkaConfig::from_options(&options, &table.primary_key)?;
        if let MessageFormat::Text(_) = config.format {
            ColumnType::for_schema(&table.name, &table.schema)?;
        } else if !matches!(table.schema.fields().as_ref(), [f]
            if matches!(f.data_type(), DataType::Utf8 | DataType::Binary))
        {
            return Err(
                options.table_error("'format' = 'raw' needs exactly one STRING or BYTES column")
            );
        }
        let key_columns = match &config.key {
            Some((format, columns)) => {
                let positions = columns
                    .iter()
                    .map(|c| {
                        table.schema.index_of(c).map_err(|_| {
                            options.error(super::KEY_FIELDS, format!("no column '{c}'"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let raw_key_ok = positions.len() == 1
                    && positions.iter().all(|&p| {
                        matches!(
                            table.schema.field(p).data_type(),
                            DataType::Utf8 | DataType::Binary
                        )
                    });
                if *format == MessageFormat::Raw && !raw_key_ok {
                    return Err(options.error(
                        if config.upsert {
                            super::KEY_FORMAT
                        } else {
                            super::KEY_FIELDS
                        },
                        "'key.format' = 'raw' takes exactly one STRING or BYTES column",
                    ));
                }
                positions
            }
            None => Vec::new(),
        };
        Ok(KafkaSinkFactory {
            table: table.name.clone(),
            schema: table.schema.clone(),
            explain: explain_options(config.connector(), &table.options),
            config: Arc::new(config),
            key_columns,
        })
    }
}

impl SinkFactory for KafkaSinkFactory {
    fn explain(&self) -> Vec<String> {
        self.explain.clone()
    }

    /// `upsert-kafka` takes an updating query's changes; `kafka` only inserts.
    fn accepts_changelog(&self) -> bool {
        self.config.upsert
    }

    fn changelog_hint(&self) -> Option<String> {
        Some(format!(
            "write it to an 'upsert-kafka' table with a PRIMARY KEY (each change becomes a \
             message keyed by the key, a delete a tombstone), not to 'kafka' table '{}'",
            self.table
        ))
    }

    fn create(&self, split: Split) -> Result<Box<dyn Sink>, EngineError> {
        let delivery = match &self.config.delivery {
            DeliveryGuarantee::ExactlyOnce {
                transactional_id_prefix,
            } => Delivery::Transactional(Box::new(Staging {
                logs: Arc::new(KafkaEpochLogs {
                    table: self.table.clone(),
                    config: self.config.clone(),
                    prefix: transactional_id_prefix.clone(),
                }),
                current: Vec::new(),
                pending: VecDeque::new(),
                next_sequence: 1,
                log: None,
            })),
            _ => Delivery::Direct {
                producer: None,
                in_flight: VecDeque::new(),
            },
        };
        Ok(Box::new(KafkaSink {
            table: self.table.clone(),
            config: self.config.clone(),
            instance: split.index,
            encoder: MessageEncoder::new(&self.config, &self.schema, &self.key_columns)?,
            partitions: 0,
            next_partition: split.index,
            delivery,
        }))
    }
}

/// Writes one instance's rows to the topic.
struct KafkaSink {
    table: String,
    config: Arc<KafkaConfig>,
    instance: usize,
    encoder: MessageEncoder,
    /// The topic's partitions (for the fixed and round-robin partitioners);
    /// 0 until connected.
    partitions: i32,
    /// The round-robin partitioner's next partition.
    next_partition: usize,
    delivery: Delivery,
}

/// How messages reach the broker.
enum Delivery {
    /// Sent as rows arrive (`none`, `at-least-once`).
    Direct {
        producer: Option<FutureProducer>,
        in_flight: VecDeque<DeliveryFuture>,
    },
    /// Staged per checkpoint and committed in transactions (`exactly-once`).
    Transactional(Box<Staging>),
}

/// The exactly-once sink's staged messages and epoch log.
struct Staging {
    logs: Arc<dyn EpochLogs>,
    /// Messages since the last barrier.
    current: Vec<Staged>,
    /// Epochs closed by a barrier, awaiting their checkpoint's completion.
    pending: VecDeque<Epoch>,
    /// The next epoch's sequence number.
    next_sequence: i64,
    /// The instance's epoch log (transactional producer); set by the
    /// restore that starts a checkpointed run.
    log: Option<Box<dyn EpochLog>>,
}

/// Runs blocking client work off the async threads.
async fn blocking<T: Send + 'static>(
    table: &str,
    work: impl FnOnce() -> Result<T, EngineError> + Send + 'static,
) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| EngineError::Config(format!("table '{table}': {e}")))?
}

impl KafkaSink {
    /// Connects the direct producer and learns the topic's partitions.
    async fn connect(&mut self) -> Result<FutureProducer, EngineError> {
        let table = self.table.clone();
        let config = self.config.clone();
        let (producer, partitions) = blocking(&self.table, move || {
            let timeout_ms = config.request_timeout.as_millis().to_string();
            let producer: FutureProducer = client_config(
                &config,
                &[
                    // A broker that stays down fails the delivery, and the job.
                    ("message.timeout.ms", &timeout_ms),
                    ("compression.type", "none"),
                ],
            )
            .create()
            .map_err(|e| kafka_error(&table, &config, "cannot create a producer of", e))?;
            let partitions = partition_count(&table, &config, producer.client())?;
            Ok((producer, partitions))
        })
        .await?;
        self.partitions = partitions;
        Ok(producer)
    }

    /// The partition of the next message, when the partitioner picks one.
    fn partition(&mut self) -> Option<i32> {
        let count = usize::try_from(self.partitions.max(1)).unwrap_or(1);
        match self.config.partitioner {
            Partitioner::Default => None,
            Partitioner::Fixed => i32::try_from(self.instance % count).ok(),
            Partitioner::RoundRobin => {
                let p = self.next_partition % count;
                self.next_partition = self.next_partition.wrapping_add(1);
                i32::try_from(p).ok()
            }
        }
    }

    /// Sends `messages` now (`none`, `at-least-once`).
    async fn send(&mut self, messages: Vec<Message>) -> Result<(), EngineError> {
        if matches!(&self.delivery, Delivery::Direct { producer: None, .. }) {
            let connected = self.connect().await?;
            if let Delivery::Direct { producer, .. } = &mut self.delivery {
                *producer = Some(connected);
            }
        }
        for message in messages {
            let partition = self.partition();
            let Delivery::Direct {
                producer: Some(producer),
                in_flight,
            } = &mut self.delivery
            else {
                return Ok(());
            };
            loop {
                let mut record = FutureRecord::<[u8], [u8]>::to(&self.config.topic);
                if let Some(value) = &message.value {
                    record = record.payload(value);
                }
                if let Some(key) = &message.key {
                    record = record.key(key);
                }
                if let Some(p) = partition {
                    record = record.partition(p);
                }
                match producer.send_result(record) {
                    Ok(delivery) => {
                        in_flight.push_back(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        match in_flight.pop_front() {
                            Some(oldest) => acknowledged(&self.table, &self.config, oldest).await?,
                            None => tokio::time::sleep(Duration::from_millis(10)).await,
                        }
                    }
                    Err((e, _)) => {
                        return Err(kafka_error(&self.table, &self.config, "cannot send to", e));
                    }
                }
            }
            if in_flight.len() >= MAX_IN_FLIGHT
                && let Some(oldest) = in_flight.pop_front()
            {
                acknowledged(&self.table, &self.config, oldest).await?;
            }
        }
        Ok(())
    }

    /// Waits until every message sent so far is acknowledged.
    async fn flush(&mut self) -> Result<(), EngineError> {
        if let Delivery::Direct { in_flight, .. } = &mut self.delivery {
            while let Some(oldest) = in_flight.pop_front() {
                acknowledged(&self.table, &self.config, oldest).await?;
            }
        }
        Ok(())
    }

    /// Opens the transactional producers of `owners` (aborting what crashed
    /// runs left open) and commits the staged epochs of `restored` (by owner)
    /// that their markers do not show committed; keeps this instance's
    /// producer for the run.
    async fn restore_transactions(
        &mut self,
        restored: Vec<(usize, Vec<Epoch>)>,
    ) -> Result<(), EngineError> {
        let Delivery::Transactional(staging) = &self.delivery else {
            return Ok(());
        };
        let (logs, instance) = (staging.logs.clone(), self.instance);
        let (log, partitions, next_sequence) = blocking(&self.table, move || {
            let mut own = logs.open(instance)?;
            let mut next_sequence = own.committed() + 1;
            for (owner, epochs) in restored {
                let mut other;
                let log = if owner == instance {
                    &mut own
                } else {
                    other = logs.open(owner)?;
                    &mut other
                };
                for epoch in &epochs {
                    log.commit(epoch)?;
                    if owner == instance {
                        next_sequence = next_sequence.max(epoch.sequence + 1);
                    }
                }
            }
            Ok((own, logs.partitions()?, next_sequence))
        })
        .await?;
        self.partitions = partitions;
        if let Delivery::Transactional(staging) = &mut self.delivery {
            staging.log = Some(log);
            staging.next_sequence = next_sequence;
            staging.current.clear();
            staging.pending.clear();
        }
        Ok(())
    }

    /// Commits every staged epoch closed by checkpoint `checkpoint_id` or
    /// earlier, oldest first, one transaction each.
    async fn commit_epochs(&mut self, checkpoint_id: u64) -> Result<(), EngineError> {
        let Delivery::Transactional(staging) = &mut self.delivery else {
            return Ok(());
        };
        let split = staging
            .pending
            .iter()
            .take_while(|e| e.checkpoint_id <= checkpoint_id)
            .count();
        if split == 0 {
            return Ok(());
        }
        let epochs: Vec<Epoch> = staging.pending.drain(..split).collect();
        let Some(mut log) = staging.log.take() else {
            return Err(not_checkpointed(&self.table));
        };
        let (log, result) = blocking(&self.table, move || {
            let result = epochs.iter().try_for_each(|e| log.commit(e));
            Ok((log, result))
        })
        .await?;
        staging.log = Some(log);
        result
    }
}

/// The error of an exactly-once sink in a job without checkpoints.
fn not_checkpointed(table: &str) -> EngineError {
    EngineError::Config(format!(
        "table '{table}': 'sink.delivery-guarantee' = 'exactly-once' commits one Kafka \
         transaction per checkpoint, and this job takes none: set \
         'execution.checkpointing.interval' and 'execution.checkpointing.dir', or use \
         'at-least-once'"
    ))
}

/// Waits for the broker's acknowledgement of one message.
async fn acknowledged(
    table: &str,
    config: &KafkaConfig,
    delivery: DeliveryFuture,
) -> Result<(), EngineError> {
    match delivery.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((e, _))) => Err(kafka_error(table, config, "cannot deliver to", e)),
        Err(_) => Err(kafka_error(
            table,
            config,
            "cannot deliver to",
            "the producer went away",
        )),
    }
}

#[async_trait]
impl Sink for KafkaSink {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<(), EngineError> {
        let messages = self.encoder.encode(&batch)?;
        if !matches!(self.delivery, Delivery::Transactional(_)) {
            return self.send(messages).await;
        }
        let partitions: Vec<Option<i32>> = messages.iter().map(|_| self.partition()).collect();
        let Delivery::Transactional(staging) = &mut self.delivery else {
            return Ok(());
        };
        if staging.log.is_none() {
            return Err(not_checkpointed(&self.table));
        }
        staging.current.extend(
            messages
                .into_iter()
                .zip(partitions)
                .map(|(message, partition)| Staged { partition, message }),
        );
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), EngineError> {
        // The final checkpoint committed the staged epochs; anything staged
        // later than its barrier cannot exist.
        self.flush().await
    }

    /// With `at-least-once`, every message sent before the barrier is
    /// acknowledged before the checkpoint can complete. With `exactly-once`,
    /// the messages since the last barrier become a staged epoch, held in the
    /// checkpoint with the other epochs not yet committed.
    async fn prepare_checkpoint(
        &mut self,
        checkpoint_id: u64,
    ) -> Result<Option<OperatorState>, EngineError> {
        match &mut self.delivery {
            Delivery::Direct { .. } => {
                if self.config.delivery == DeliveryGuarantee::AtLeastOnce {
                    self.flush().await?;
                }
                Ok(None)
            }
            Delivery::Transactional(staging) => {
                if !staging.current.is_empty() {
                    let sequence = staging.next_sequence;
                    staging.next_sequence += 1;
                    staging.pending.push_back(Epoch {
                        checkpoint_id,
                        sequence,
                        messages: std::mem::take(&mut staging.current),
                    });
                }
                epochs_state(&staging.pending).map(Some)
            }
        }
    }

    async fn commit_checkpoint(&mut self, checkpoint_id: u64) -> Result<(), EngineError> {
        self.commit_epochs(checkpoint_id).await
    }

    /// At-least-once messages are not staged: nothing to commit or discard.
    /// Exactly-once: aborts what a crashed run left open and commits the
    /// checkpoint's staged epochs that were not committed before.
    async fn restore(&mut self, state: Option<OperatorState>) -> Result<(), EngineError> {
        let epochs = match &state {
            Some(state) => restore_epochs(state)?,
            None => Vec::new(),
        };
        self.restore_transactions(vec![(self.instance, epochs)])
            .await
    }

    async fn restore_rescaled(&mut self, rescaled: Rescaled) -> Result<(), EngineError> {
        let mut restored: Vec<(usize, Vec<Epoch>)> = rescaled
            .inherited_instances()
            .map(|owner| (owner, Vec::new()))
            .collect();
        for (owner, state) in rescaled.inherited() {
            let epochs = restore_epochs(state)?;
            match restored.iter_mut().find(|(o, _)| o == owner) {
                Some((_, staged)) => *staged = epochs,
                None => restored.push((*owner, epochs)),
            }
        }
        self.restore_transactions(restored).await
    }
}

#[cfg(test)]
mod tests {
    //! The exactly-once sink's epochs against an in-memory stand-in for Kafka
    //! transactions: whatever point a run stops at, restoring its last
    //! completed checkpoint leaves every row in the topic once. (Against a
    //! real broker with transactions this could not be run here: tansu 0.6
    //! has none.)

    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;
    use crate::options::TableOptions;
    use watershed_engine::runtime::checkpointing::{FINAL_CHECKPOINT_DONE, FINAL_STAGE};

    /// The topic and the markers, as a broker with transactions keeps them.
    #[derive(Default)]
    struct Broker {
        markers: BTreeMap<usize, i64>,
        topic: Vec<String>,
        opened: Vec<usize>,
    }

    struct FakeLogs(Arc<Mutex<Broker>>);

    struct FakeLog {
        owner: usize,
        broker: Arc<Mutex<Broker>>,
    }

    impl EpochLogs for FakeLogs {
        fn open(&self, owner: usize) -> Result<Box<dyn EpochLog>, EngineError> {
            self.0.lock().unwrap().opened.push(owner);
            Ok(Box::new(FakeLog {
                owner,
                broker: self.0.clone(),
            }))
        }

        fn partitions(&self) -> Result<i32, EngineError> {
            Ok(3)
        }
    }

    impl EpochLog for FakeLog {
        fn committed(&self) -> i64 {
            let broker = self.broker.lock().unwrap();
            broker.markers.get(&self.owner).copied().unwrap_or(0)
        }

        fn commit(&mut self, epoch: &Epoch) -> Result<(), EngineError> {
            if epoch.sequence <= self.committed() {
                return Ok(());
            }
            let mut broker = self.broker.lock().unwrap();
            for staged in &epoch.messages {
                let value = staged.message.value.clone().unwrap_or_default();
                broker.topic.push(String::from_utf8(value).unwrap());
            }
            broker.markers.insert(self.owner, epoch.sequence);
            Ok(())
        }
    }

    fn sink(broker: &Arc<Mutex<Broker>>, instance: usize) -> KafkaSink {
        let options: BTreeMap<String, String> = [
            ("connector", "kafka"),
            ("topic", "alerts"),
            ("properties.bootstrap.servers", "127.0.0.1:9"),
            ("format", "csv"),
            ("sink.delivery-guarantee", "exactly-once"),
            ("sink.transactional-id-prefix", "risk"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let config =
            KafkaConfig::from_options(&TableOptions::new("alerts", &options), &[]).unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        KafkaSink {
            table: "alerts".into(),
            instance,
            encoder: MessageEncoder::new(&config, &schema, &[]).unwrap(),
            config: Arc::new(config),
            partitions: 0,
            next_partition: instance,
            delivery: Delivery::Transactional(Box::new(Staging {
                logs: Arc::new(FakeLogs(broker.clone())),
                current: Vec::new(),
                pending: VecDeque::new(),
                next_sequence: 1,
                log: None,
            })),
        }
    }

    async fn write(sink: &mut KafkaSink, ids: &[i64]) {
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids.to_vec()))]).unwrap();
        sink.write_batch(batch).await.unwrap();
    }

    fn topic(broker: &Arc<Mutex<Broker>>) -> Vec<String> {
        broker.lock().unwrap().topic.clone()
    }

    fn ids(range: std::ops::RangeInclusive<i64>) -> Vec<String> {
        range.map(|i| i.to_string()).collect()
    }

    #[tokio::test]
    async fn every_row_is_committed_once_whichever_point_a_run_stops_at() {
        let broker = Arc::new(Mutex::new(Broker::default()));
        let mut run = sink(&broker, 0);
        run.restore(None).await.unwrap();
        write(&mut run, &[1, 2]).await;
        let _first = run.prepare_checkpoint(1).await.unwrap();
        assert!(
            topic(&broker).is_empty(),
            "nothing is visible before completion"
        );
        run.commit_checkpoint(1).await.unwrap();
        assert_eq!(topic(&broker), ids(1..=2));

        // Checkpoint 2 completes and is committed, then the run dies before
        // the runtime hears of the commit: the restore must not commit it again.
        write(&mut run, &[3]).await;
        let second = run.prepare_checkpoint(2).await.unwrap();
        run.commit_checkpoint(2).await.unwrap();
        let mut run = sink(&broker, 0);
        run.restore(second.clone()).await.unwrap();
        assert_eq!(topic(&broker), ids(1..=3));

        // The run dies after staging checkpoint 3, which never completes: the
        // input after checkpoint 2 is read again and staged again.
        write(&mut run, &[4]).await;
        let _third = run.prepare_checkpoint(3).await.unwrap();
        let mut run = sink(&broker, 0);
        run.restore(second).await.unwrap();
        write(&mut run, &[4]).await;
        run.prepare_checkpoint(3).await.unwrap();
        run.commit_checkpoint(3).await.unwrap();
        assert_eq!(topic(&broker), ids(1..=4));

        // Checkpoint 4 completes, and the run dies before committing it: the
        // restore commits it.
        write(&mut run, &[5, 6]).await;
        let fourth = run.prepare_checkpoint(4).await.unwrap();
        let mut run = sink(&broker, 0);
        run.restore(fourth).await.unwrap();
        assert_eq!(topic(&broker), ids(1..=6));

        // Epochs of several checkpoints staged before one completion are
        // committed in order; the final checkpoint commits the rest.
        write(&mut run, &[7]).await;
        run.prepare_checkpoint(5).await.unwrap();
        write(&mut run, &[8]).await;
        run.prepare_checkpoint(6).await.unwrap();
        run.commit_checkpoint(6).await.unwrap();
        write(&mut run, &[9]).await;
        run.prepare_checkpoint(FINAL_STAGE).await.unwrap();
        run.commit_checkpoint(FINAL_CHECKPOINT_DONE).await.unwrap();
        run.finish().await.unwrap();
        assert_eq!(topic(&broker), ids(1..=9));
    }

    #[tokio::test]
    async fn a_rescaled_restore_commits_the_epochs_of_every_inherited_instance() {
        let broker = Arc::new(Mutex::new(Broker::default()));
        let mut states = Vec::new();
        for (instance, rows) in [(0, [1, 2]), (1, [3, 4])] {
            let mut run = sink(&broker, instance);
            run.restore(None).await.unwrap();
            write(&mut run, &rows).await;
            let state = run.prepare_checkpoint(1).await.unwrap().unwrap();
            states.push((instance, state));
        }
        // Checkpoint 1 completed; neither instance committed it.
        assert!(topic(&broker).is_empty());
        let mut run = sink(&broker, 0);
        run.restore_rescaled(Rescaled {
            old_parallelism: 2,
            new_parallelism: 1,
            instance: 0,
            input_keys: vec![None],
            states,
        })
        .await
        .unwrap();
        let mut written = topic(&broker);
        written.sort();
        assert_eq!(written, ids(1..=4));
        // Both old instances' transactional ids were opened (fencing them).
        let mut opened = broker.lock().unwrap().opened.clone();
        opened.sort();
        assert_eq!(opened, [0, 0, 1, 1]);
    }

    #[tokio::test]
    async fn an_exactly_once_sink_without_checkpoints_says_what_to_set() {
        let broker = Arc::new(Mutex::new(Broker::default()));
        let mut run = sink(&broker, 0);
        let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, false)]));
        let batch =
            RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(vec![1]))]).unwrap();
        let err = run.write_batch(batch).await.unwrap_err().to_string();
        assert!(err.contains("'execution.checkpointing.interval'"), "{err}");
    }
}
