//! The Kafka source: split `i` of `n` reads the topic's partitions `p` with
//! `p % n == i`, from the offsets of the restored checkpoint, else from the
//! table's startup mode, to the bounded mode's end offsets (or forever).
//!
//! The connection is made at the first read (in a blocking task: metadata and
//! offset requests wait for the broker, at most the request timeout). With no
//! message for [`POLL_INTERVAL`], a read returns an empty batch, so a split
//! waiting for data never holds up a checkpoint barrier and can go idle.
//!
//! A table with a `WATERMARK` gets one batch per partition, tagged with it
//! ([`watershed_engine::watermark::tag_partition`]), so the split's watermark
//! is the minimum of its partitions' watermarks, as in Flink.
//!
//! Checkpoint state: one row per partition of the split, its next offset. A
//! restore assigns exactly those offsets; the consumer group's committed
//! offsets are never read back (they are not committed at all: Watershed's
//! checkpoints are the source of truth).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use datafusion::arrow::array::{Int32Array, Int64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use futures::FutureExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use watershed_engine::EngineError;
use watershed_engine::checkpoint::{OperatorState, state_column};
use watershed_engine::connector::TableSpec;
use watershed_engine::source::{Source, SourceContext, SourceFactory, Split};
use watershed_engine::watermark::tag_partition;

use super::client::{
    POLL_INTERVAL, Watermarks, client_config, end_offsets, kafka_error, partitions, start_offsets,
};
use super::offsets::BoundedMode;
use super::records::Records;
use super::{IDENTIFIER, KafkaConfig, MessageFormat};
use crate::explain::explain_options;
use crate::format::types::ColumnType;
use crate::options::TableOptions;

/// Builds readers of a Kafka table.
#[derive(Debug, Clone)]
pub struct KafkaSourceFactory {
    table: String,
    schema: SchemaRef,
    config: Arc<KafkaConfig>,
    explain: Vec<String>,
    /// The table declares a watermark: batches carry their partition.
    tag_partitions: bool,
}

impl KafkaSourceFactory {
    /// Validates the table's options and columns; the broker is contacted only
    /// when a reader starts, so EXPLAIN works without it.
    pub fn new(table: &TableSpec) -> Result<Self, EngineError> {
        let options = TableOptions::from_spec(table);
        let config = KafkaConfig::from_options(&options, &table.primary_key)?;
        match &config.format {
            MessageFormat::Raw => {
                let ok = matches!(table.schema.fields().as_ref(), [f]
                    if matches!(f.data_type(), DataType::Utf8 | DataType::Binary));
                if !ok {
                    return Err(options
                        .table_error("'format' = 'raw' needs exactly one STRING or BYTES column"));
                }
            }
            MessageFormat::Text(_) => {
                ColumnType::for_schema(&table.name, &table.schema)?;
            }
        }
        Ok(KafkaSourceFactory {
            table: table.name.clone(),
            schema: table.schema.clone(),
            config: Arc::new(config),
            explain: explain_options(IDENTIFIER, &table.options),
            tag_partitions: table.time_column.is_some(),
        })
    }
}

impl SourceFactory for KafkaSourceFactory {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn explain(&self) -> Vec<String> {
        self.explain.clone()
    }

    fn is_bounded(&self) -> bool {
        self.config.bounded != BoundedMode::Unbounded
    }

    fn create(&self, split: Split) -> Result<Box<dyn Source>, EngineError> {
        Ok(Box::new(KafkaSource {
            table: self.table.clone(),
            schema: self.schema.clone(),
            config: self.config.clone(),
            split,
            reader: None,
            restored: None,
            failing_since: None,
            tag_partitions: self.tag_partitions,
            decoded: VecDeque::new(),
        }))
    }
}

/// A connected split: its consumer and where each partition is.
struct Reader {
    consumer: Arc<StreamConsumer>,
    /// Next offset to read, per partition of the split.
    positions: BTreeMap<i32, i64>,
    /// Where each partition ends (exclusive), for a bounded table.
    ends: Option<BTreeMap<i32, i64>>,
    /// When each partition last gave a message (from the connect on).
    last_message: BTreeMap<i32, Instant>,
    /// Partitions read to their end whose last batch was already returned
    /// or queued: their watermarks no longer count.
    drained: std::collections::BTreeSet<i32>,
    /// The partitions the last tag counted.
    last_counted: Vec<String>,
}

impl Reader {
    /// True once every partition of a bounded table reached its end.
    fn finished(&self) -> bool {
        self.ends.as_ref().is_some_and(|ends| {
            self.positions
                .iter()
                .all(|(p, next)| ends.get(p).is_none_or(|end| next >= end))
        })
    }

    /// Marks `partition` as read to its end.
    fn reach_end(&mut self, partition: i32) {
        if let Some(&end) = self.ends.as_ref().and_then(|ends| ends.get(&partition))
            && let Some(next) = self.positions.get_mut(&partition)
        {
            *next = (*next).max(end);
        }
    }

    /// The partitions whose watermarks count toward the split's: those not
    /// drained and, with an idle timeout, not silent for longer.
    fn counted_partitions(&self, idle_timeout: Option<std::time::Duration>) -> Vec<String> {
        self.positions
            .keys()
            .filter(|p| {
                let active = match (idle_timeout, self.last_message.get(p)) {
                    (Some(timeout), Some(last)) => last.elapsed() < timeout,
                    _ => true,
                };
                !self.drained.contains(p) && active
            })
            .map(|p| p.to_string())
            .collect()
    }

    /// True when `partition` was read to its end.
    fn ended(&self, partition: i32) -> bool {
        match (self.ends.as_ref(), self.positions.get(&partition)) {
            (Some(ends), Some(next)) => ends.get(&partition).is_none_or(|end| next >= end),
            _ => false,
        }
    }

    /// True when `offset` of `partition` is past its end.
    fn past_end(&self, partition: i32, offset: i64) -> bool {
        self.ends
            .as_ref()
            .and_then(|ends| ends.get(&partition))
            .is_some_and(|end| offset >= *end)
    }
}

/// Reads one split of a Kafka table.
struct KafkaSource {
    table: String,
    schema: SchemaRef,
    config: Arc<KafkaConfig>,
    split: Split,
    reader: Option<Reader>,
    /// Offsets from a restored checkpoint, used when the split connects:
    /// per partition, the next offset and the end offset (bounded tables keep
    /// the end they started with, so a restored run reads the same messages).
    restored: Option<BTreeMap<i32, (i64, Option<i64>)>>,
    /// Since when the consumer has reported errors without a message.
    failing_since: Option<Instant>,
    /// Each read's messages become one batch per partition, tagged.
    tag_partitions: bool,
    /// Batches read but not yet returned (one read can yield a batch per
    /// partition), with their partition and first offset.
    decoded: VecDeque<Decoded>,
}

/// A batch of one partition's messages, read but not yet returned.
struct Decoded {
    partition: i32,
    /// The offset of its first message: the partition's position in a
    /// checkpoint taken before it is returned.
    first_offset: i64,
    batch: RecordBatch,
}

impl KafkaSource {
    /// Connects: the split's partitions, their start (restored, else by the
    /// startup mode) and end offsets, and the consumer assigned to them.
    async fn connect(&self) -> Result<Reader, EngineError> {
        let table = self.table.clone();
        let config = self.config.clone();
        let split = self.split;
        let restored = self.restored.clone();
        let connect = move || -> Result<Reader, EngineError> {
            let consumer: StreamConsumer = client_config(
                &config,
                &[
                    ("group.id", &format!("watershed-{table}")),
                    ("enable.auto.commit", "false"),
                    ("enable.auto.offset.store", "false"),
                    // The end of a partition is reported: a bounded
                    // latest-offset read ends there even when the last
                    // offsets before its end are not messages (transaction
                    // markers).
                    ("enable.partition.eof", "true"),
                    // An offset the broker no longer has (retention) resumes
                    // at the oldest one it has, not at the end.
                    ("auto.offset.reset", "earliest"),
                ],
            )
            .create()
            .map_err(|e| kafka_error(&table, &config, "cannot create a consumer of", e))?;
            let all = partitions(&table, &config, &consumer)?;
            let known = Watermarks::new(&table, &config, &consumer);
            let mine: Vec<i32> = all
                .iter()
                .copied()
                .filter(|p| usize::try_from(*p).is_ok_and(|p| split.owns(p)))
                .collect();
            let (positions, ends) = match restored {
                Some(restored) => {
                    if let Some(p) = mine.iter().find(|p| !restored.contains_key(p)) {
                        return Err(kafka_error(
                            &table,
                            &config,
                            "cannot restore",
                            format!(
                                "the checkpoint has no offset of partition {p} (the topic \
                                 gained partitions, or the parallelism changed)"
                            ),
                        ));
                    }
                    let positions = restored.iter().map(|(p, (next, _))| (*p, *next)).collect();
                    let ends = match config.bounded {
                        BoundedMode::Unbounded => None,
                        _ => Some(
                            restored
                                .iter()
                                .map(|(p, (next, end))| (*p, end.unwrap_or(*next)))
                                .collect(),
                        ),
                    };
                    (positions, ends)
                }
                None => (
                    start_offsets(&table, &config, &consumer, &known, &mine)?,
                    end_offsets(&table, &config, &consumer, &known, &mine)?,
                ),
            };
            let mut assignment = TopicPartitionList::new();
            for (&p, &offset) in &positions {
                assignment
                    .add_partition_offset(&config.topic, p, Offset::Offset(offset))
                    .map_err(|e| kafka_error(&table, &config, "cannot assign", e))?;
            }
            consumer
                .assign(&assignment)
                .map_err(|e| kafka_error(&table, &config, "cannot assign", e))?;
            let now = Instant::now();
            Ok(Reader {
                consumer: Arc::new(consumer),
                last_message: positions.keys().map(|p| (*p, now)).collect(),
                positions,
                ends,
                drained: Default::default(),
                last_counted: Vec::new(),
            })
        };
        tokio::task::spawn_blocking(connect)
            .await
            .map_err(|e| EngineError::Config(format!("table '{}': {e}", self.table)))?
    }
}

/// The schema of a Kafka split's checkpoint state.
fn state_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("partition", DataType::Int32, false),
        Field::new("next_offset", DataType::Int64, false),
        // -1: no end (an unbounded table).
        Field::new("end_offset", DataType::Int64, false),
    ]))
}

#[async_trait]
impl Source for KafkaSource {
    async fn next_batch(
        &mut self,
        ctx: &SourceContext,
    ) -> Result<Option<RecordBatch>, EngineError> {
        if self.reader.is_none() {
            self.reader = Some(self.connect().await?);
        }
        if let Some(decoded) = self.decoded.pop_front() {
            return Ok(Some(decoded.batch));
        }
        let Some(reader) = self.reader.as_mut() else {
            return Ok(None);
        };
        if reader.finished() {
            return Ok(None);
        }
        if reader.positions.is_empty() {
            // No partition for this split: an idle split of a stream.
            tokio::time::sleep(POLL_INTERVAL).await;
            return Ok(Some(RecordBatch::new_empty(self.schema.clone())));
        }
        let consumer = reader.consumer.clone();
        // Per partition when tagging (else all under one key): the first
        // offset read and the messages.
        let mut records: BTreeMap<i32, (i64, Records)> = BTreeMap::new();
        let mut read = 0;
        let mut waited = false;
        while read < ctx.batch_size.max(1) && !reader.finished() {
            let next = if waited {
                match consumer.recv().now_or_never() {
                    Some(next) => next,
                    None => break,
                }
            } else {
                waited = true;
                match tokio::time::timeout(POLL_INTERVAL, consumer.recv()).await {
                    Ok(next) => next,
                    Err(_) => break,
                }
            };
            match next {
                Ok(message) => {
                    self.failing_since = None;
                    let (partition, offset) = (message.partition(), message.offset());
                    if !reader.positions.contains_key(&partition) {
                        continue;
                    }
                    if reader.past_end(partition, offset) {
                        // Offsets below the end that are not messages
                        // (transaction markers, compacted records) must not
                        // keep the partition open.
                        reader.reach_end(partition);
                        continue;
                    }
                    reader.positions.insert(partition, offset + 1);
                    reader.last_message.insert(partition, Instant::now());
                    let group = if self.tag_partitions { partition } else { -1 };
                    records
                        .entry(group)
                        .or_insert_with(|| (offset, Records::default()))
                        .1
                        .push(&self.config.format, partition, offset, message.payload());
                    read += 1;
                }
                Err(KafkaError::PartitionEOF(partition)) => {
                    // The partition's current end is at or past an end taken
                    // from it at the start (latest offset, or a time).
                    if matches!(
                        self.config.bounded,
                        BoundedMode::Latest | BoundedMode::Timestamp(_)
                    ) {
                        reader.reach_end(partition);
                    }
                }
                Err(e) => {
                    let since = *self.failing_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > self.config.request_timeout {
                        return Err(kafka_error(
                            &self.table,
                            &self.config,
                            &format!(
                                "no message for {} s, only errors, reading",
                                self.config.request_timeout.as_secs_f64()
                            ),
                            e,
                        ));
                    }
                    break;
                }
            }
        }
        if self.tag_partitions {
            // Partitions that ended without a message in this read had their
            // last rows queued before.
            let ended: Vec<i32> = reader
                .positions
                .keys()
                .copied()
                .filter(|p| reader.ended(*p) && !records.contains_key(p))
                .collect();
            reader.drained.extend(ended);
        }
        for (partition, (first_offset, messages)) in records {
            let batch = messages.decode(
                &self.config.format,
                &self.table,
                &self.config.topic,
                &self.schema,
                &ctx.metrics,
            )?;
            let batch = if self.tag_partitions {
                let counted = reader.counted_partitions(ctx.idle_timeout);
                let tagged = tag_partition(batch, &partition.to_string(), &counted)?;
                reader.last_counted = counted;
                if reader.ended(partition) {
                    reader.drained.insert(partition);
                }
                tagged
            } else {
                batch
            };
            self.decoded.push_back(Decoded {
                partition,
                first_offset,
                batch,
            });
        }
        if self.tag_partitions && self.decoded.is_empty() {
            // No rows, but partitions went idle (or ended): an empty tagged
            // batch lets the split's watermark move past them.
            let counted = reader.counted_partitions(ctx.idle_timeout);
            if counted != reader.last_counted
                && let Some(first) = counted.first()
            {
                let batch = RecordBatch::new_empty(self.schema.clone());
                let tagged = tag_partition(batch, first, &counted)?;
                reader.last_counted = counted;
                return Ok(Some(tagged));
            }
        }
        match self.decoded.pop_front() {
            Some(decoded) => Ok(Some(decoded.batch)),
            None => Ok(Some(RecordBatch::new_empty(self.schema.clone()))),
        }
    }

    /// The next and end offset of each partition of the split (those
    /// restored, before the split connected).
    fn snapshot(&self) -> Result<OperatorState, EngineError> {
        let offsets: BTreeMap<i32, (i64, Option<i64>)> = match (&self.reader, &self.restored) {
            (Some(reader), _) => reader
                .positions
                .iter()
                .map(|(p, next)| {
                    let end = reader.ends.as_ref().and_then(|e| e.get(p).copied());
                    // Batches read but not returned are read again.
                    let next = self
                        .decoded
                        .iter()
                        .filter(|d| d.partition == *p)
                        .map(|d| d.first_offset)
                        .min()
                        .unwrap_or(*next);
                    (*p, (next, end))
                })
                .collect(),
            (None, Some(restored)) => restored.clone(),
            (None, None) => BTreeMap::new(),
        };
        let batch = RecordBatch::try_new(
            state_schema(),
            vec![
                Arc::new(Int32Array::from_iter_values(offsets.keys().copied())),
                Arc::new(Int64Array::from_iter_values(offsets.values().map(|o| o.0))),
                Arc::new(Int64Array::from_iter_values(
                    offsets.values().map(|o| o.1.unwrap_or(-1)),
                )),
            ],
        )?;
        Ok(OperatorState {
            schema: state_schema(),
            batches: vec![batch],
        })
    }

    fn restore(&mut self, state: OperatorState) -> Result<(), EngineError> {
        let mut offsets = BTreeMap::new();
        for batch in &state.batches {
            let partitions =
                state_column::<datafusion::arrow::datatypes::Int32Type>(batch, "partition")?;
            let next =
                state_column::<datafusion::arrow::datatypes::Int64Type>(batch, "next_offset")?;
            let end = state_column::<datafusion::arrow::datatypes::Int64Type>(batch, "end_offset")?;
            for ((p, o), e) in partitions
                .values()
                .iter()
                .zip(next.values())
                .zip(end.values())
            {
                offsets.insert(*p, (*o, (*e >= 0).then_some(*e)));
            }
        }
        // An empty state: the split had not connected; start as configured.
        self.restored = (!offsets.is_empty()).then_some(offsets);
        self.reader = None;
        self.decoded.clear();
        Ok(())
    }
}
