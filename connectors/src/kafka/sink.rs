//! The Kafka sink: one message per row, the value in the table's format and,
//! with `key.fields`, the key in `key.format`.
//!
//! Delivery: messages are handed to librdkafka as rows arrive; with
//! `at-least-once` (the default) every checkpoint, and the end of the input,
//! waits until the broker has acknowledged every message sent before it, so a
//! completed checkpoint never covers a message that could still be lost (after
//! a restore, messages sent after the checkpoint are sent again). A delivery
//! failure fails the job, naming the topic.

use std::collections::VecDeque;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use watershed_engine::EngineError;
use watershed_engine::checkpoint::{OperatorState, Rescaled};
use watershed_engine::connector::TableSpec;
use watershed_engine::sink::{Sink, SinkFactory};
use watershed_engine::source::Split;

use super::client::{client_config, kafka_error};
use super::{IDENTIFIER, KafkaConfig, MessageFormat, Partitioner};
use crate::explain::explain_options;
use crate::format::BatchEncoder;
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
        let config = KafkaConfig::from_options(&options)?;
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
                        super::KEY_FIELDS,
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
            config: Arc::new(config),
            key_columns,
            explain: explain_options(IDENTIFIER, &table.options),
        })
    }
}

impl SinkFactory for KafkaSinkFactory {
    fn explain(&self) -> Vec<String> {
        self.explain.clone()
    }

    fn create(&self, split: Split) -> Result<Box<dyn Sink>, EngineError> {
        let encoder = |format: &MessageFormat, schema: &SchemaRef| match format {
            MessageFormat::Text(text) => text.encoder(schema).map(Some),
            MessageFormat::Raw => Ok(None),
        };
        let key_schema = Arc::new(self.schema.project(&self.key_columns)?);
        let key_encoder = match &self.config.key {
            Some((format, _)) => encoder(format, &key_schema)?,
            None => None,
        };
        Ok(Box::new(KafkaSink {
            table: self.table.clone(),
            config: self.config.clone(),
            instance: split.index,
            producer: None,
            partitions: 0,
            next_partition: split.index,
            value_encoder: encoder(&self.config.format, &self.schema)?,
            key_encoder,
            key_columns: self.key_columns.clone(),
            in_flight: VecDeque::new(),
        }))
    }
}

/// Writes one instance's rows to the topic.
struct KafkaSink {
    table: String,
    config: Arc<KafkaConfig>,
    instance: usize,
    producer: Option<FutureProducer>,
    /// The topic's partitions (for the fixed and round-robin partitioners).
    partitions: i32,
    /// The round-robin partitioner's next partition.
    next_partition: usize,
    value_encoder: Option<Box<dyn BatchEncoder>>,
    key_encoder: Option<Box<dyn BatchEncoder>>,
    key_columns: Vec<usize>,
    in_flight: VecDeque<DeliveryFuture>,
}

/// One row's bytes in `format`: the encoder's line without its line break, or
/// the single raw column.
fn row_bytes(
    batch: &RecordBatch,
    encoder: Option<&mut Box<dyn BatchEncoder>>,
    out: &mut Vec<u8>,
) -> Result<Option<()>, EngineError> {
    out.clear();
    match encoder {
        Some(encoder) => {
            encoder.encode(batch, out)?;
            while out.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                out.pop();
            }
            Ok(Some(()))
        }
        None => {
            let column = batch.column(0);
            if column.is_null(0) {
                return Ok(None);
            }
            match column.data_type() {
                DataType::Utf8 => {
                    out.extend_from_slice(column.as_string::<i32>().value(0).as_bytes())
                }
                DataType::Binary => out.extend_from_slice(column.as_binary::<i32>().value(0)),
                other => {
                    return Err(EngineError::Config(format!(
                        "'raw' format needs a STRING or BYTES column, not {other}"
                    )));
                }
            }
            Ok(Some(()))
        }
    }
}

impl KafkaSink {
    /// Connects the producer and learns the topic's partitions.
    async fn connect(&mut self) -> Result<(), EngineError> {
        let table = self.table.clone();
        let config = self.config.clone();
        let connect = move || -> Result<(FutureProducer, i32), EngineError> {
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
            let metadata = producer
                .client()
                .fetch_metadata(Some(&config.topic), config.request_timeout)
                .map_err(|e| kafka_error(&table, &config, "no answer about", e))?;
            let partitions = metadata
                .topics()
                .iter()
                .find(|t| t.name() == config.topic)
                .map_or(0, |t| t.partitions().len());
            if partitions == 0 {
                return Err(kafka_error(
                    &table,
                    &config,
                    "cannot write",
                    "the topic does not exist (or has no partitions)",
                ));
            }
            Ok((producer, i32::try_from(partitions).unwrap_or(i32::MAX)))
        };
        let (producer, partitions) = tokio::task::spawn_blocking(connect)
            .await
            .map_err(|e| EngineError::Config(format!("table '{}': {e}", self.table)))??;
        self.producer = Some(producer);
        self.partitions = partitions;
        Ok(())
    }

    /// Waits for the broker's acknowledgement of the oldest message in flight.
    async fn await_oldest(&mut self) -> Result<(), EngineError> {
        let Some(delivery) = self.in_flight.pop_front() else {
            return Ok(());
        };
        match delivery.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(kafka_error(
                &self.table,
                &self.config,
                "cannot deliver to",
                e,
            )),
            Err(_) => Err(kafka_error(
                &self.table,
                &self.config,
                "cannot deliver to",
                "the producer went away",
            )),
        }
    }

    /// Waits until every message sent so far is acknowledged.
    async fn flush(&mut self) -> Result<(), EngineError> {
        while !self.in_flight.is_empty() {
            self.await_oldest().await?;
        }
        Ok(())
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
}

#[async_trait]
impl Sink for KafkaSink {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<(), EngineError> {
        if self.producer.is_none() {
            self.connect().await?;
        }
        let keys = match self.config.key {
            Some(_) => Some(batch.project(&self.key_columns)?),
            None => None,
        };
        let (mut value, mut key) = (Vec::new(), Vec::new());
        for row in 0..batch.num_rows() {
            let has_value = row_bytes(
                &batch.slice(row, 1),
                self.value_encoder.as_mut(),
                &mut value,
            )?
            .is_some();
            let has_key = match &keys {
                Some(keys) => {
                    row_bytes(&keys.slice(row, 1), self.key_encoder.as_mut(), &mut key)?.is_some()
                }
                None => false,
            };
            let partition = self.partition();
            loop {
                let mut record = FutureRecord::<[u8], [u8]>::to(&self.config.topic);
                if has_value {
                    record = record.payload(&value);
                }
                if has_key {
                    record = record.key(&key);
                }
                if let Some(p) = partition {
                    record = record.partition(p);
                }
                let Some(producer) = self.producer.as_ref() else {
                    return Ok(());
                };
                match producer.send_result(record) {
                    Ok(delivery) => {
                        self.in_flight.push_back(delivery);
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                        if self.in_flight.is_empty() {
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        } else {
                            self.await_oldest().await?;
                        }
                    }
                    Err((e, _)) => {
                        return Err(kafka_error(&self.table, &self.config, "cannot send to", e));
                    }
                }
            }
            if self.in_flight.len() >= MAX_IN_FLIGHT {
                self.await_oldest().await?;
            }
        }
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), EngineError> {
        self.flush().await
    }

    /// With `at-least-once`, every message sent before the barrier is
    /// acknowledged before the checkpoint can complete.
    async fn prepare_checkpoint(
        &mut self,
        _checkpoint_id: u64,
    ) -> Result<Option<OperatorState>, EngineError> {
        if self.config.at_least_once {
            self.flush().await?;
        }
        Ok(None)
    }

    /// Messages are not staged: nothing to commit or discard.
    async fn restore(&mut self, _state: Option<OperatorState>) -> Result<(), EngineError> {
        Ok(())
    }

    async fn restore_rescaled(&mut self, _rescaled: Rescaled) -> Result<(), EngineError> {
        Ok(())
    }
}
