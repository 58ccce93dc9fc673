//! The librdkafka clients of a Kafka table: configuration, the topic's
//! partitions, and the offsets where each partition's reading starts and ends.
//!
//! Every request here is bounded by the table's request timeout, and a broker
//! that cannot be reached is an error naming the brokers and the topic.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::client::{Client, ClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Offset, TopicPartitionList};
use watershed_engine::EngineError;

use super::KafkaConfig;
use super::offsets::{BoundedMode, StartupMode};

/// The client configuration: the table's `properties.*` over our defaults.
pub fn client_config(config: &KafkaConfig, defaults: &[(&str, &str)]) -> ClientConfig {
    let mut client = ClientConfig::new();
    for (key, value) in defaults {
        client.set(*key, *value);
    }
    for (key, value) in &config.properties {
        client.set(key, value);
    }
    client
}

/// An error of the table's client, naming the topic and the brokers.
pub fn kafka_error(
    table: &str,
    config: &KafkaConfig,
    what: &str,
    e: impl std::fmt::Display,
) -> EngineError {
    EngineError::Config(format!(
        "table '{table}': {what} topic '{}' on brokers '{}': {e}",
        config.topic,
        config.brokers()
    ))
}

/// The topic's partition ids, sorted. A topic that does not exist or brokers
/// that do not answer within the request timeout are errors.
pub fn partitions(
    table: &str,
    config: &KafkaConfig,
    consumer: &StreamConsumer,
) -> Result<Vec<i32>, EngineError> {
    let metadata = consumer
        .fetch_metadata(Some(&config.topic), config.request_timeout)
        .map_err(|e| {
            kafka_error(
                table,
                config,
                &format!(
                    "no answer within {} s about",
                    config.request_timeout.as_secs_f64()
                ),
                e,
            )
        })?;
    let topic = metadata
        .topics()
        .iter()
        .find(|t| t.name() == config.topic)
        .ok_or_else(|| kafka_error(table, config, "no metadata for", "missing"))?;
    if let Some(e) = topic.error() {
        return Err(kafka_error(table, config, "cannot read", format!("{e:?}")));
    }
    let mut ids: Vec<i32> = topic.partitions().iter().map(|p| p.id()).collect();
    if ids.is_empty() {
        return Err(kafka_error(
            table,
            config,
            "cannot read",
            "the topic does not exist (or has no partitions)",
        ));
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Each partition's low and high offsets, asked of the broker once per
/// connect (start and end offsets often need the same answer).
pub struct Watermarks<'a> {
    table: &'a str,
    config: &'a KafkaConfig,
    consumer: &'a StreamConsumer,
    known: std::cell::RefCell<BTreeMap<i32, (i64, i64)>>,
}

impl<'a> Watermarks<'a> {
    /// Asks through `consumer` for the table's topic.
    pub fn new(table: &'a str, config: &'a KafkaConfig, consumer: &'a StreamConsumer) -> Self {
        Watermarks {
            table,
            config,
            consumer,
            known: std::cell::RefCell::new(BTreeMap::new()),
        }
    }

    /// The low and high offsets of partition `p`.
    pub fn of(&self, p: i32) -> Result<(i64, i64), EngineError> {
        if let Some(known) = self.known.borrow().get(&p) {
            return Ok(*known);
        }
        let found = self
            .consumer
            .fetch_watermarks(&self.config.topic, p, self.config.request_timeout)
            .map_err(|e| {
                kafka_error(
                    self.table,
                    self.config,
                    &format!("no offsets of partition {p} of"),
                    e,
                )
            })?;
        self.known.borrow_mut().insert(p, found);
        Ok(found)
    }
}

/// The next offset to read of each partition when there is no checkpoint.
pub fn start_offsets(
    table: &str,
    config: &KafkaConfig,
    consumer: &StreamConsumer,
    known: &Watermarks<'_>,
    partitions: &[i32],
) -> Result<BTreeMap<i32, i64>, EngineError> {
    let timeout = config.request_timeout;
    let watermarks = |p: i32| known.of(p);
    let mut offsets = BTreeMap::new();
    match &config.startup {
        StartupMode::Earliest => {
            for &p in partitions {
                offsets.insert(p, watermarks(p)?.0);
            }
        }
        StartupMode::Latest => {
            for &p in partitions {
                offsets.insert(p, watermarks(p)?.1);
            }
        }
        StartupMode::Specific(specific) => {
            for &p in partitions {
                let offset = match specific.get(&p) {
                    Some(&o) => o,
                    None => watermarks(p)?.0,
                };
                offsets.insert(p, offset);
            }
        }
        StartupMode::Timestamp(millis) => {
            offsets = offsets_for_time(table, config, consumer, partitions, *millis)?;
        }
        StartupMode::GroupOffsets => {
            let mut list = TopicPartitionList::new();
            for &p in partitions {
                list.add_partition(&config.topic, p);
            }
            let committed = consumer
                .committed_offsets(list, timeout)
                .map_err(|e| kafka_error(table, config, "no committed offsets of", e))?;
            for &p in partitions {
                let stored =
                    committed
                        .find_partition(&config.topic, p)
                        .and_then(|e| match e.offset() {
                            Offset::Offset(o) => Some(o),
                            _ => None,
                        });
                let offset = match stored {
                    Some(o) => o,
                    None if config
                        .properties
                        .get("auto.offset.reset")
                        .is_some_and(|r| r == "latest" || r == "largest") =>
                    {
                        watermarks(p)?.1
                    }
                    None => watermarks(p)?.0,
                };
                offsets.insert(p, offset);
            }
        }
    }
    Ok(offsets)
}

/// The offset each partition's reading ends before (exclusive); `None` for an
/// unbounded table. Partitions a specific-offsets bound does not list end at
/// once.
pub fn end_offsets(
    table: &str,
    config: &KafkaConfig,
    consumer: &StreamConsumer,
    known: &Watermarks<'_>,
    partitions: &[i32],
) -> Result<Option<BTreeMap<i32, i64>>, EngineError> {
    Ok(match &config.bounded {
        BoundedMode::Unbounded => None,
        BoundedMode::Latest => {
            let mut ends = BTreeMap::new();
            for &p in partitions {
                ends.insert(p, known.of(p)?.1);
            }
            Some(ends)
        }
        BoundedMode::Specific(specific) => Some(
            partitions
                .iter()
                .map(|&p| (p, specific.get(&p).copied().unwrap_or(0)))
                .collect(),
        ),
        BoundedMode::Timestamp(millis) => Some(offsets_for_time(
            table, config, consumer, partitions, *millis,
        )?),
    })
}

/// Per partition, the first offset whose message is at or after `millis`
/// (the end offset when there is none).
fn offsets_for_time(
    table: &str,
    config: &KafkaConfig,
    consumer: &StreamConsumer,
    partitions: &[i32],
    millis: i64,
) -> Result<BTreeMap<i32, i64>, EngineError> {
    let mut list = TopicPartitionList::new();
    for &p in partitions {
        list.add_partition_offset(&config.topic, p, Offset::Offset(millis))
            .map_err(|e| kafka_error(table, config, "bad partition list for", e))?;
    }
    let found = consumer
        .offsets_for_times(list, config.request_timeout)
        .map_err(|e| kafka_error(table, config, "no offsets by time of", e))?;
    let mut offsets = BTreeMap::new();
    for &p in partitions {
        let offset = match found.find_partition(&config.topic, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => {
                consumer
                    .fetch_watermarks(&config.topic, p, config.request_timeout)
                    .map_err(|e| {
                        kafka_error(table, config, &format!("no offsets of partition {p} of"), e)
                    })?
                    .1
            }
        };
        offsets.insert(p, offset);
    }
    Ok(offsets)
}

/// How long [`super::source`] waits for a message before it hands the runtime
/// an empty batch (so checkpoints and idleness are not held up).
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The number of partitions of the table's topic; a topic that does not exist
/// is an error. Blocking.
pub fn partition_count<C: ClientContext>(
    table: &str,
    config: &KafkaConfig,
    client: &Client<C>,
) -> Result<i32, EngineError> {
    let metadata = client
        .fetch_metadata(Some(&config.topic), config.request_timeout)
        .map_err(|e| kafka_error(table, config, "no answer about", e))?;
    let partitions = metadata
        .topics()
        .iter()
        .find(|t| t.name() == config.topic)
        .map_or(0, |t| t.partitions().len());
    if partitions == 0 {
        return Err(kafka_error(
            table,
            config,
            "cannot write",
            "the topic does not exist (or has no partitions)",
        ));
    }
    Ok(i32::try_from(partitions).unwrap_or(i32::MAX))
}
