//! The `kafka` connector: tables over a Kafka topic (any broker that speaks the
//! Kafka protocol), read and written through librdkafka (`rdkafka`).
//!
//! Options follow Flink's Kafka connector: `topic`,
//! `properties.bootstrap.servers`, `properties.group.id`, any other
//! `properties.*` passed to the client, `scan.startup.mode` (`earliest-offset`,
//! `latest-offset`, `group-offsets`, `timestamp`, `specific-offsets`),
//! `scan.bounded.mode` (`unbounded`, `latest-offset`, `timestamp`,
//! `specific-offsets`), `format` (`csv`, `json`, `raw`; one row per message),
//! `key.format` / `key.fields` (the sink's message key), `sink.partitioner`
//! (`default`, `fixed`, `round-robin`) and `sink.delivery-guarantee` (`none`,
//! `at-least-once`, `exactly-once` with `sink.transactional-id-prefix`).
//!
//! `'connector' = 'upsert-kafka'` writes an updating query's result keyed by
//! the table's `PRIMARY KEY`: an insert or update is a message whose key is the
//! primary key (in `key.format`) and whose value is the row (in
//! `value.format`), a delete is a tombstone (the key with no value), and
//! update-befores are not written. Compacting the topic by key leaves the
//! query's current result.
//!
//! Partitions are the unit of parallel reading: split `i` of `n` reads the
//! partitions `p` with `p % n == i`. Each split's next offset per partition is
//! its checkpoint state and the only thing a restore trusts.

mod client;
mod messages;
mod offsets;
mod records;
mod sink;
mod source;
mod transactions;

pub use offsets::{BoundedMode, StartupMode};
pub use sink::KafkaSinkFactory;
pub use source::KafkaSourceFactory;

use std::collections::BTreeMap;
use std::time::Duration;

use watershed_engine::EngineError;

use crate::format::{FORMAT, FormatConfig};
use crate::options::{CONNECTOR, TableOptions};

/// The connector's name in `'connector' = 'kafka'`.
pub const IDENTIFIER: &str = "kafka";
/// The connector's name in `'connector' = 'upsert-kafka'` (a sink of changes
/// keyed by the primary key).
pub const UPSERT_IDENTIFIER: &str = "upsert-kafka";
/// The topic to read or write.
pub const TOPIC: &str = "topic";
/// Client properties: every `properties.<key>` goes to librdkafka as `<key>`.
pub const PROPERTIES_PREFIX: &str = "properties.";
/// The brokers to connect to.
pub const BOOTSTRAP_SERVERS: &str = "properties.bootstrap.servers";
/// The consumer group (offsets committed for monitoring, and `group-offsets`).
pub const GROUP_ID: &str = "properties.group.id";
/// Where reading starts.
pub const STARTUP_MODE: &str = "scan.startup.mode";
/// `partition:0,offset:42;partition:1,offset:300` for `specific-offsets`.
pub const STARTUP_SPECIFIC_OFFSETS: &str = "scan.startup.specific-offsets";
/// Milliseconds since the epoch for `timestamp`.
pub const STARTUP_TIMESTAMP: &str = "scan.startup.timestamp-millis";
/// Where reading ends (a bounded table).
pub const BOUNDED_MODE: &str = "scan.bounded.mode";
/// End offsets for `scan.bounded.mode` = `specific-offsets` (exclusive).
pub const BOUNDED_SPECIFIC_OFFSETS: &str = "scan.bounded.specific-offsets";
/// End timestamp for `scan.bounded.mode` = `timestamp`.
pub const BOUNDED_TIMESTAMP: &str = "scan.bounded.timestamp-millis";
/// Flink's name for `format` when key and value formats differ.
pub const VALUE_FORMAT: &str = "value.format";
/// Format of the message key the sink writes (`csv`, `json` or `raw`).
pub const KEY_FORMAT: &str = "key.format";
/// Columns the sink writes into the message key, `;`-separated.
pub const KEY_FIELDS: &str = "key.fields";
/// How the sink picks partitions.
pub const SINK_PARTITIONER: &str = "sink.partitioner";
/// `none`, `at-least-once` or `exactly-once`.
pub const SINK_DELIVERY_GUARANTEE: &str = "sink.delivery-guarantee";
/// Transactional id prefix of exactly-once sinks.
pub const SINK_TRANSACTIONAL_ID_PREFIX: &str = "sink.transactional-id-prefix";
/// How long a metadata or offset request to the broker may take before the
/// job fails with an error naming the broker.
pub const REQUEST_TIMEOUT: &str = "watershed.kafka.request-timeout";

/// Default for [`REQUEST_TIMEOUT`].
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The options both connectors read besides `properties.*` and the formats'.
const OPTION_KEYS: &[&str] = &[
    CONNECTOR,
    TOPIC,
    FORMAT,
    VALUE_FORMAT,
    KEY_FORMAT,
    SINK_DELIVERY_GUARANTEE,
    SINK_TRANSACTIONAL_ID_PREFIX,
    REQUEST_TIMEOUT,
    "value.fields-include",
];

/// The options only `kafka` reads (`upsert-kafka` reads no offsets, keys by
/// the primary key and partitions by the key).
const KAFKA_ONLY_OPTION_KEYS: &[&str] = &[
    STARTUP_MODE,
    STARTUP_SPECIFIC_OFFSETS,
    STARTUP_TIMESTAMP,
    BOUNDED_MODE,
    BOUNDED_SPECIFIC_OFFSETS,
    BOUNDED_TIMESTAMP,
    KEY_FIELDS,
    SINK_PARTITIONER,
];

/// What the sink promises about delivery (Flink's `sink.delivery-guarantee`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryGuarantee {
    /// Messages are sent and not waited for: a crash can lose them.
    None,
    /// Every checkpoint waits for the broker to acknowledge the messages sent
    /// before it; a restore sends later ones again (duplicates possible).
    AtLeastOnce,
    /// The messages of each checkpoint are written in one Kafka transaction,
    /// committed once the checkpoint is complete; `read_committed` readers see
    /// each row once.
    ExactlyOnce {
        /// Prefix of the transactional ids (`<prefix>-<instance>`), unique to
        /// the job among everything writing to the cluster.
        transactional_id_prefix: String,
    },
}

/// The format of a message's value (or key): one row per message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageFormat {
    /// CSV or JSON text, decoded and encoded by the shared [`FormatConfig`].
    Text(FormatConfig),
    /// The bytes themselves, as the table's single STRING or BYTES column.
    Raw,
}

impl MessageFormat {
    /// The format named by `key` (`csv`, `json` or `raw`).
    fn from_options(options: &TableOptions<'_>, key: &str) -> Result<Self, EngineError> {
        let name = options.required(key)?;
        if name.trim().eq_ignore_ascii_case("raw") {
            return Ok(MessageFormat::Raw);
        }
        // The shared parser reads `format`: give it this key's value.
        let mut renamed: BTreeMap<String, String> = options.all().clone();
        renamed.insert(FORMAT.to_string(), name.to_string());
        let text = FormatConfig::from_options(&TableOptions::new(options.table(), &renamed))
            .map_err(|_| options.error(key, "unsupported format; supported: csv, json, raw"))?;
        Ok(MessageFormat::Text(text))
    }

    /// The option keys of the format.
    fn option_keys(&self) -> &'static [&'static str] {
        match self {
            MessageFormat::Text(format) => format.option_keys(),
            MessageFormat::Raw => &[],
        }
    }
}

/// A Kafka table's parsed options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// The topic.
    pub topic: String,
    /// Client properties (without the `properties.` prefix).
    pub properties: BTreeMap<String, String>,
    /// The value format.
    pub format: MessageFormat,
    /// Where reading starts.
    pub startup: StartupMode,
    /// Where reading ends.
    pub bounded: BoundedMode,
    /// The key format and the key columns, when the sink writes keys (for
    /// `upsert-kafka`, the primary key).
    pub key: Option<(MessageFormat, Vec<String>)>,
    /// True for `upsert-kafka`: changes keyed by the primary key.
    pub upsert: bool,
    /// How the sink picks a message's partition.
    pub partitioner: Partitioner,
    /// What the sink promises about delivery.
    pub delivery: DeliveryGuarantee,
    /// Bound on metadata and offset requests.
    pub request_timeout: Duration,
}

/// How the sink picks a message's partition (Flink's `sink.partitioner`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Partitioner {
    /// The client's: by key hash when there is a key, else spread.
    Default,
    /// Sink instance `i` writes partition `i % partitions`.
    Fixed,
    /// Messages go to the partitions in turn.
    RoundRobin,
}

impl KafkaConfig {
    /// Parses and validates a Kafka table's options (for `upsert-kafka`, with
    /// the table's `primary_key`); unknown keys are errors.
    pub fn from_options(
        options: &TableOptions<'_>,
        primary_key: &[String],
    ) -> Result<Self, EngineError> {
        let upsert = options
            .get(CONNECTOR)
            .is_some_and(|c| c.trim().eq_ignore_ascii_case(UPSERT_IDENTIFIER));
        let topic = options.required(TOPIC)?.to_string();
        if topic.contains([',', ';']) || topic.trim().is_empty() {
            return Err(options.error(TOPIC, "expected one topic name"));
        }
        options.required(BOOTSTRAP_SERVERS)?;
        let properties: BTreeMap<String, String> = options
            .all()
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(PROPERTIES_PREFIX)
                    .map(|k| (k.to_string(), v.clone()))
            })
            .collect();
        let format_key = if options.get(VALUE_FORMAT).is_some() {
            VALUE_FORMAT
        } else {
            FORMAT
        };
        let format = MessageFormat::from_options(options, format_key)?;
        let key = match options.get(KEY_FIELDS) {
            _ if upsert => {
                if primary_key.is_empty() {
                    return Err(options.table_error(
                        "an 'upsert-kafka' table needs a primary key: declare PRIMARY KEY \
                         (...) NOT ENFORCED with the columns that identify a result row \
                         (e.g. the GROUP BY keys); they become the message key",
                    ));
                }
                Some((
                    MessageFormat::from_options(options, KEY_FORMAT)?,
                    primary_key.to_vec(),
                ))
            }
            Some(fields) => {
                let columns: Vec<String> = fields
                    .split(';')
                    .map(|f| f.trim().to_string())
                    .filter(|f| !f.is_empty())
                    .collect();
                if columns.is_empty() {
                    return Err(options.error(KEY_FIELDS, "names no column"));
                }
                Some((MessageFormat::from_options(options, KEY_FORMAT)?, columns))
            }
            None if options.get(KEY_FORMAT).is_some() => {
                return Err(options.error(KEY_FORMAT, format!("needs '{KEY_FIELDS}'")));
            }
            None => None,
        };
        let mut known: Vec<&str> = OPTION_KEYS.to_vec();
        if !upsert {
            known.extend_from_slice(KAFKA_ONLY_OPTION_KEYS);
        }
        known.extend_from_slice(format.option_keys());
        if let Some((key_format, _)) = &key {
            known.extend_from_slice(key_format.option_keys());
        }
        let without_properties: BTreeMap<String, String> = options
            .all()
            .iter()
            .filter(|(k, _)| !k.starts_with(PROPERTIES_PREFIX))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let connector = if upsert {
            UPSERT_IDENTIFIER
        } else {
            IDENTIFIER
        };
        TableOptions::new(options.table(), &without_properties).check_known(connector, &known)?;
        if let Some(include) = options.get("value.fields-include")
            && !include.eq_ignore_ascii_case("ALL")
        {
            return Err(options.error(
                "value.fields-include",
                "only 'ALL' is supported (every column is in the value)",
            ));
        }
        let partitioner = match options.string_or(SINK_PARTITIONER, "default").trim() {
            "default" => Partitioner::Default,
            "fixed" => Partitioner::Fixed,
            "round-robin" => Partitioner::RoundRobin,
            _ => {
                return Err(options.error(
                    SINK_PARTITIONER,
                    "expected 'default', 'fixed' or 'round-robin'",
                ));
            }
        };
        let delivery = DeliveryGuarantee::from_options(options)?;
        Ok(KafkaConfig {
            topic,
            properties,
            format,
            startup: StartupMode::from_options(options)?,
            bounded: BoundedMode::from_options(options)?,
            key,
            upsert,
            partitioner,
            delivery,
            request_timeout: options.duration_or(REQUEST_TIMEOUT, DEFAULT_REQUEST_TIMEOUT)?,
        })
    }

    /// The connector's name, for messages.
    pub fn connector(&self) -> &'static str {
        if self.upsert {
            UPSERT_IDENTIFIER
        } else {
            IDENTIFIER
        }
    }

    /// The brokers, for messages.
    pub fn brokers(&self) -> &str {
        self.properties
            .get("bootstrap.servers")
            .map_or("", String::as_str)
    }
}

impl DeliveryGuarantee {
    /// Reads `sink.delivery-guarantee` (default `at-least-once`) and, for
    /// `exactly-once`, the required `sink.transactional-id-prefix`.
    fn from_options(options: &TableOptions<'_>) -> Result<Self, EngineError> {
        let prefix = options.get(SINK_TRANSACTIONAL_ID_PREFIX).map(str::trim);
        let guarantee = match options
            .string_or(SINK_DELIVERY_GUARANTEE, "at-least-once")
            .trim()
        {
            "at-least-once" => DeliveryGuarantee::AtLeastOnce,
            "none" => DeliveryGuarantee::None,
            "exactly-once" => match prefix {
                Some(prefix) if !prefix.is_empty() => DeliveryGuarantee::ExactlyOnce {
                    transactional_id_prefix: prefix.to_string(),
                },
                _ => {
                    return Err(options.error(
                        SINK_DELIVERY_GUARANTEE,
                        format!(
                            "'exactly-once' needs '{SINK_TRANSACTIONAL_ID_PREFIX}': a prefix \
                             of Kafka transactional ids unique to this job"
                        ),
                    ));
                }
            },
            _ => {
                return Err(options.error(
                    SINK_DELIVERY_GUARANTEE,
                    "expected 'none', 'at-least-once' or 'exactly-once'",
                ));
            }
        };
        if prefix.is_some() && !matches!(guarantee, DeliveryGuarantee::ExactlyOnce { .. }) {
            return Err(options.error(
                SINK_TRANSACTIONAL_ID_PREFIX,
                format!("only applies when '{SINK_DELIVERY_GUARANTEE}' is 'exactly-once'"),
            ));
        }
        Ok(guarantee)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn parse(pairs: &[(&str, &str)]) -> Result<KafkaConfig, String> {
        let mut all = vec![
            ("connector", "kafka"),
            ("topic", "payments"),
            ("properties.bootstrap.servers", "127.0.0.1:9092"),
        ];
        all.extend_from_slice(pairs);
        let map = options(&all);
        KafkaConfig::from_options(&TableOptions::new("t", &map), &[]).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_flink_options() {
        let c = parse(&[
            ("format", "json"),
            ("properties.group.id", "risk"),
            ("properties.fetch.min.bytes", "1"),
            ("scan.startup.mode", "specific-offsets"),
            (
                "scan.startup.specific-offsets",
                "partition:0,offset:42;partition:1,offset:300",
            ),
            ("scan.bounded.mode", "latest-offset"),
            ("key.format", "raw"),
            ("key.fields", "card_id"),
            ("sink.partitioner", "round-robin"),
            ("json.ignore-parse-errors", "true"),
        ])
        .unwrap();
        assert_eq!(c.topic, "payments");
        assert_eq!(c.properties["group.id"], "risk");
        assert_eq!(c.properties["fetch.min.bytes"], "1");
        assert_eq!(c.brokers(), "127.0.0.1:9092");
        assert_eq!(
            c.startup,
            StartupMode::Specific(BTreeMap::from([(0, 42), (1, 300)]))
        );
        assert_eq!(c.bounded, BoundedMode::Latest);
        assert_eq!(c.key, Some((MessageFormat::Raw, vec!["card_id".into()])));
        assert_eq!(c.partitioner, Partitioner::RoundRobin);
        assert_eq!(c.delivery, DeliveryGuarantee::AtLeastOnce);
        assert!(!c.upsert);
    }

    #[test]
    fn bad_options_are_refused_naming_them() {
        for (pairs, expected) in [
            (vec![("format", "avro")], "unsupported format"),
            (
                vec![("format", "csv"), ("scan.startup.mode", "now")],
                "scan.startup.mode",
            ),
            (
                vec![("format", "csv"), ("scan.startup.mode", "timestamp")],
                "scan.startup.timestamp-millis",
            ),
            (
                vec![("format", "csv"), ("key.format", "csv")],
                "needs 'key.fields'",
            ),
            (
                vec![("format", "csv"), ("sink.partitioner", "hash")],
                "sink.partitioner",
            ),
            (
                vec![
                    ("format", "csv"),
                    ("sink.delivery-guarantee", "exactly-once"),
                ],
                "needs 'sink.transactional-id-prefix'",
            ),
            (
                vec![("format", "csv"), ("sink.transactional-id-prefix", "risk")],
                "only applies when",
            ),
            (
                vec![("format", "csv"), ("scan.startup.offsets", "x")],
                "unsupported option",
            ),
            (
                vec![
                    ("format", "csv"),
                    ("scan.startup.mode", "specific-offsets"),
                    ("scan.startup.specific-offsets", "partition:0;offset:1"),
                ],
                "partition:<n>,offset:<n>",
            ),
        ] {
            let err = parse(&pairs).unwrap_err();
            assert!(err.contains(expected), "{pairs:?}: {err}");
            assert!(err.contains("table 't'"), "{err}");
        }
    }

    fn parse_upsert(pairs: &[(&str, &str)], primary_key: &[&str]) -> Result<KafkaConfig, String> {
        let mut all = vec![
            ("connector", "upsert-kafka"),
            ("topic", "balances"),
            ("properties.bootstrap.servers", "127.0.0.1:9092"),
        ];
        all.extend_from_slice(pairs);
        let map = options(&all);
        let key: Vec<String> = primary_key.iter().map(|k| k.to_string()).collect();
        KafkaConfig::from_options(&TableOptions::new("t", &map), &key).map_err(|e| e.to_string())
    }

    #[test]
    fn upsert_kafka_keys_by_the_primary_key_and_reads_no_offsets() {
        let formats = [("key.format", "csv"), ("value.format", "json")];
        let c = parse_upsert(&formats, &["account_id"]).unwrap();
        assert!(c.upsert);
        assert_eq!(c.connector(), "upsert-kafka");
        assert!(matches!(c.format, MessageFormat::Text(_)));
        assert!(matches!(&c.key, Some((MessageFormat::Text(_), k)) if k == &["account_id"]));
        let err = parse_upsert(&formats, &[]).unwrap_err();
        assert!(err.contains("needs a primary key"), "{err}");
        for extra in [
            ("key.fields", "account_id"),
            ("scan.startup.mode", "earliest-offset"),
            ("sink.partitioner", "fixed"),
        ] {
            let mut pairs = formats.to_vec();
            pairs.push(extra);
            let err = parse_upsert(&pairs, &["account_id"]).unwrap_err();
            assert!(
                err.contains("unsupported option") && err.contains(extra.0),
                "{err}"
            );
        }
        let err = parse_upsert(&[("value.format", "json")], &["account_id"]).unwrap_err();
        assert!(err.contains("key.format"), "{err}");
    }

    #[test]
    fn exactly_once_takes_a_transactional_id_prefix() {
        let c = parse(&[
            ("format", "csv"),
            ("sink.delivery-guarantee", "exactly-once"),
            ("sink.transactional-id-prefix", " risk-alerts "),
        ])
        .unwrap();
        assert_eq!(
            c.delivery,
            DeliveryGuarantee::ExactlyOnce {
                transactional_id_prefix: "risk-alerts".into()
            }
        );
    }
}
